//! Live monitoring over HTTP (the QC pages call the same
//! [`MonitorHandle::start`](crate::call::monitor::MonitorHandle::start)):
//! `POST /api/agents/{id}/monitor` with
//! `{"extension": "2001", "mode": "listen", "by": "wang"}` rings extension
//! 2001 to listen to agent `id`'s live call (`whisper`: the agent hears
//! the supervisor too; `barge`: both do); 202 `{"call_id": …}` (the
//! monitor leg's) once the INVITE is sent. 404 when the agent is on no
//! live call, 409 when the extension has no registered softphone, is the
//! agent's own, or the agent already has its monitors; 400 for a bad body
//! or mode; 503 when no RTP port or INVITE could be had.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::call::monitor::{MonitorError, MonitorMode, MonitorRequest};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/agents/{id}/monitor", post(start))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorBody {
    extension: String,
    mode: String,
    by: String,
}

/// A SIP user part we ring: 1–32 of `A-Za-z0-9_.-+`.
fn valid_user(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+'))
}

impl From<MonitorError> for ApiError {
    fn from(e: MonitorError) -> ApiError {
        let status = match &e {
            MonitorError::NoLiveCall(_) => StatusCode::NOT_FOUND,
            MonitorError::NotRegistered(_)
            | MonitorError::NotAnswered(_)
            | MonitorError::OwnExtension(_)
            | MonitorError::TooMany { .. } => StatusCode::CONFLICT,
            MonitorError::NoPort | MonitorError::NotSent(_) | MonitorError::NotAudited => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError::new(status, e.to_string())
    }
}

async fn start(
    State(state): State<AppState>,
    Path(agent): Path<String>,
    body: Result<Json<MonitorBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let mode: MonitorMode = body
        .mode
        .parse()
        .map_err(|e: crate::call::monitor::UnknownMode| ApiError::bad_request(e.to_string()))?;
    if !valid_user(&body.extension) {
        return Err(ApiError::bad_request(
            "extension: 1-32 of A-Z a-z 0-9 _ . - +",
        ));
    }
    // Counted in characters (a name in Chinese is 3 bytes a character),
    // before the trim, as the OpenAPI schema has it.
    let by = body.by.trim();
    if by.is_empty() || body.by.chars().count() > 64 || body.by.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "by: 1-64 characters, not only spaces, no control characters",
        ));
    }
    let call_id = state
        .monitor
        .start(MonitorRequest {
            agent: agent.clone(),
            extension: body.extension.clone(),
            mode,
            by: by.to_string(),
        })
        .await?;
    tracing::info!(agent = %agent, extension = %body.extension, by, mode = %mode, leg = %call_id, "monitor started through the API");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "agent": agent,
            "extension": body.extension,
            "mode": mode.as_str(),
            "call_id": call_id,
        })),
    ))
}
