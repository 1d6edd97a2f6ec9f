//! The callback requests (留置答) for agents and supervisors:
//!
//! - `GET /api/callbacks?state=&limit=` — requests, oldest first; `state`
//!   is one of `pending`, `failed` (retry due), `done`, `given_up`;
//!   `limit` 1..=1000 (default 100).
//! - `GET /api/callbacks/{call_id}/attempts` — one request's attempts.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::AppState;
use crate::store::CallbackFilter;

const STATES: &[&str] = &["pending", "failed", "done", "given_up"];

/// The routes, to merge into the daemon's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/callbacks", get(list))
        .route("/api/callbacks/{call_id}/attempts", get(attempts))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let wanted = q.state.filter(|s| !s.is_empty());
    if let Some(s) = &wanted {
        if !STATES.contains(&s.as_str()) {
            let msg = format!("state must be one of {}", STATES.join(", "));
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
    }
    let filter = CallbackFilter {
        state: wanted,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    match state.store.callbacks(filter).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn attempts(State(state): State<AppState>, Path(call_id): Path<String>) -> Response {
    match state.store.callback_attempts(&call_id).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
