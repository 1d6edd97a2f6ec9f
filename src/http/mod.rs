//! The HTTP side: health and readiness probes and a read-only view of recent
//! call records. (The QC pages, the wallboard and the full API come later.)

mod callbacks;

use crate::store::Store;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The agent queue: agents' states, queues.
    pub acd: crate::call::acd_service::AcdHandle,
    /// Voice messages and recordings live under this folder.
    pub data_dir: std::path::PathBuf,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/api/calls", get(recent_calls))
        .merge(callbacks::router())
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.recent_call_records(1).await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn recent_calls(State(state): State<AppState>, Query(q): Query<Limit>) -> impl IntoResponse {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    match state.store.recent_call_records(limit).await {
        Ok(rows) => {
            let out: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "call_id": r.call_id,
                        "caller": r.caller,
                        "dialed": r.dialed,
                        "arrived_at": r.arrived_at.to_rfc3339(),
                        "answered_at": r.answered_at.map(|t| t.to_rfc3339()),
                        "ended_at": r.ended_at.to_rfc3339(),
                        "duration_ms": r.duration_ms,
                        "ivr_path": r.ivr_path,
                        "self_service_result": r.self_service_result,
                        "disposition": r.disposition.as_str(),
                        "hangup_by": r.hangup_by.as_str(),
                        "hangup_reason": r.hangup_reason,
                        "sip_status": r.sip_status,
                        "codec": r.codec,
                        "language": r.language,
                        "queue": r.queue,
                        "voice_message": r.voice_message,
                        "voice_message_ms": r.voice_message_ms,
                        "agent": r.acd.agent,
                        "wait_ms": r.acd.wait_ms,
                        "offers": r.acd.offers,
                        "talk_ms": r.acd.talk_ms,
                        "hold_ms": r.acd.hold_ms,
                        "wrap_up_ms": r.acd.wrap_up_ms,
                        "transfer_target": r.acd.transfer_target,
                        "survey_score": r.acd.survey_score,
                    })
                })
                .collect();
            (StatusCode::OK, Json(serde_json::Value::Array(out))).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
