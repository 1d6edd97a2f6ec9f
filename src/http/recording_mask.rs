//! Masking an agent's live recording from the agent desktop (the HTTP
//! twin of the `*7`/`*8` keys): `POST /api/agents/{id}/recording` with
//! `{"masked": true}` silences the recording of the agent's bridged call
//! from now on, `{"masked": false}` ends that. 404 when the agent is on no
//! bridged call, 409 when that call is not recorded.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/agents/{id}/recording", post(set_mask))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskBody {
    masked: bool,
}

async fn set_mask(
    State(state): State<AppState>,
    Path(agent): Path<String>,
    body: Result<Json<MaskBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let call = state
        .live
        .of_agent(&agent)
        .ok_or_else(|| ApiError::not_found(format!("agent {agent} is not on a bridged call")))?;
    let recorder = call.recorder.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!("the call of agent {agent} is not recorded"),
        )
    })?;
    recorder
        .mask(body.masked, &agent)
        .await
        .map_err(|_| ApiError::not_found(format!("agent {agent}'s call has just ended")))?;
    tracing::info!(agent = %agent, call_id = %call.call_id, masked = body.masked, "recording mask set through the API");
    Ok(Json(serde_json::json!({
        "agent": agent,
        "call_id": call.call_id,
        "recording": recorder.id,
        "masked": body.masked,
    })))
}
