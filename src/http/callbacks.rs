//! The callback requests (留置答) for agents and supervisors:
//!
//! - `GET /api/callbacks?state=&limit=` — requests, oldest first; `state`
//!   is one of `pending`, `failed` (retry due), `done`, `given_up`;
//!   `limit` 1..=1000 (default 100).
//! - `GET /api/callbacks/{call_id}/attempts` — one request's attempts.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::store::{CallbackAttemptRow, CallbackFilter, CallbackRow};

pub(super) const STATES: &[&str] = &["pending", "failed", "done", "given_up"];

/// The routes, to merge into the daemon's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/callbacks", get(list))
        .route("/api/callbacks/{call_id}/attempts", get(attempts))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<CallbackRow>>, ApiError> {
    let Query(q) = q?;
    let wanted = q.state.filter(|s| !s.is_empty());
    if let Some(s) = &wanted {
        if !STATES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "state must be one of {}",
                STATES.join(", ")
            )));
        }
    }
    let filter = CallbackFilter {
        state: wanted,
        limit: super::query_limit(q.limit, 100)?,
    };
    Ok(Json(state.store.callbacks(filter).await?))
}

async fn attempts(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
) -> Result<Json<Vec<CallbackAttemptRow>>, ApiError> {
    Ok(Json(state.store.callback_attempts(&call_id).await?))
}
