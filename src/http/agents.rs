//! The agents' API: agent states and operations (login, logout, pause with
//! a reason, unpause, ready), the queues, and the queue event log.
//!
//! Every operation goes to the ACD task through [`AcdHandle::agent`], the
//! same way as the feature codes `*11`–`*14`; the answer says when it takes
//! effect. Errors of the ACD map to HTTP here: unknown agent → 404, a bad
//! pause reason → 400, a state that does not allow the change → 409, with
//! the ACD's own message.
//!
//! [`AcdHandle::agent`]: crate::call::acd_service::AcdHandle::agent

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::acd::{AcdError, AgentError, AgentId, Effect};
use crate::call::acd_service::{AcdSnapshot, AgentOp, AgentView, QueueView};
use crate::store::EventFilter;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/agents", get(list_agents))
        .route("/api/agents/{id}", get(one_agent))
        .route("/api/agents/{id}/{action}", post(agent_action))
        .route("/api/queues", get(list_queues))
        .route("/api/events", get(list_events))
}

async fn snapshot(state: &AppState) -> Result<AcdSnapshot, ApiError> {
    state
        .acd
        .snapshot()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

fn unknown_agent(id: &str) -> ApiError {
    ApiError::not_found(format!("no agent {id}"))
}

async fn list_agents(State(state): State<AppState>) -> Result<Json<Vec<AgentView>>, ApiError> {
    Ok(Json(snapshot(&state).await?.agents))
}

async fn find_agent(state: &AppState, id: &str) -> Result<AgentView, ApiError> {
    snapshot(state)
        .await?
        .agents
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| unknown_agent(id))
}

async fn one_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(find_agent(&state, &id).await?))
}

/// The body of `POST …/pause`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: String,
}

/// The operation an action names; `body` matters only for `pause`.
fn parse_action(action: &str, body: &[u8]) -> Result<AgentOp, ApiError> {
    let op = match action {
        "login" => AgentOp::Login,
        "logout" => AgentOp::Logout,
        "ready" => AgentOp::Ready,
        "unpause" => AgentOp::Unpause,
        "pause" => {
            let b: PauseBody = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the body must be JSON {{\"reason\": \"…\"}}: {e}"))
            })?;
            return Ok(AgentOp::Pause(b.reason));
        }
        other => return Err(ApiError::not_found(format!("no agent action {other:?}"))),
    };
    // The other actions take no body; one that is sent must at least be JSON.
    let blank = body.iter().all(u8::is_ascii_whitespace);
    if !blank && serde_json::from_slice::<serde_json::Value>(body).is_err() {
        return Err(ApiError::bad_request("the body, if any, must be JSON"));
    }
    Ok(op)
}

/// The HTTP answer to an ACD refusal.
fn acd_error(e: AcdError) -> ApiError {
    let status = match &e {
        AcdError::UnknownAgent(_) => StatusCode::NOT_FOUND,
        AcdError::BadReason | AcdError::Agent(AgentError::BadReason) => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.to_string())
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Now => "now",
        Effect::AfterCall => "after_call",
        Effect::Unchanged => "unchanged",
    }
}

async fn agent_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let op = parse_action(&action, &body)?;
    let effect = state
        .acd
        .agent(AgentId(id.clone()), op)
        .await
        .map_err(acd_error)?;
    let agent = find_agent(&state, &id).await?;
    Ok(Json(serde_json::json!({
        "effect": effect_name(effect),
        "agent": agent,
    })))
}

async fn list_queues(State(state): State<AppState>) -> Result<Json<Vec<QueueView>>, ApiError> {
    Ok(Json(snapshot(&state).await?.queues))
}

#[derive(Deserialize)]
struct EventsQuery {
    call_id: Option<String>,
    agent: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
}

/// An empty query value (`?agent=`) filters nothing.
pub(super) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

async fn list_events(
    State(state): State<AppState>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let Query(q) = q?;
    let filter = EventFilter {
        call_id: non_empty(q.call_id),
        agent: non_empty(q.agent),
        kind: non_empty(q.kind),
        limit: super::query_limit(q.limit, 100)?,
    };
    let rows = state.store.queue_events(filter).await?;
    Ok(Json(rows.iter().map(event_json).collect()))
}

/// A queue event as the API shows it.
pub(super) fn event_json(e: &crate::store::QueueEventRow) -> serde_json::Value {
    serde_json::json!({
        "uid": e.uid,
        "at": e.at.to_rfc3339(),
        "kind": e.kind,
        "queue": e.queue,
        "call_id": e.call_id,
        "agent": e.agent,
        "position": e.position,
        "wait_ms": e.wait_ms,
        "talk_ms": e.talk_ms,
        "reason": e.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_bodies() {
        assert_eq!(parse_action("login", b"").unwrap(), AgentOp::Login);
        assert_eq!(parse_action("ready", b" {} ").unwrap(), AgentOp::Ready);
        assert_eq!(
            parse_action("pause", br#"{"reason":"lunch"}"#).unwrap(),
            AgentOp::Pause("lunch".into())
        );
        let bad = |a: &str, b: &[u8]| parse_action(a, b).unwrap_err().status;
        assert_eq!(bad("pause", b""), StatusCode::BAD_REQUEST);
        assert_eq!(bad("pause", br#"{"reason":5}"#), StatusCode::BAD_REQUEST);
        assert_eq!(bad("pause", br#"{"why":"x"}"#), StatusCode::BAD_REQUEST);
        assert_eq!(bad("logout", b"not json"), StatusCode::BAD_REQUEST);
        assert_eq!(bad("dance", b""), StatusCode::NOT_FOUND);
    }

    #[test]
    fn acd_errors_map_to_statuses() {
        let s = |e| acd_error(e).status;
        assert_eq!(s(AcdError::UnknownAgent("x".into())), StatusCode::NOT_FOUND);
        assert_eq!(s(AcdError::BadReason), StatusCode::BAD_REQUEST);
        assert_eq!(
            s(AcdError::Agent(AgentError::BadReason)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            s(AcdError::Agent(AgentError::NotLoggedIn)),
            StatusCode::CONFLICT
        );
    }
}
