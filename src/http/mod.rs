//! The HTTP side: health and readiness probes, a read-only view of recent
//! call records, and the agents' API (agent states and operations, queues,
//! the queue event log, voice messages). (The QC pages and the wallboard
//! come later.)
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/healthz` | `ok` while the process runs (never needs a token) |
//! | GET | `/readyz` | `ready`, or 503 when the database does not answer (never needs a token) |
//! | GET | `/api/openapi.json` | this API in OpenAPI 3.0 (every route below, its parameters, bodies, responses and schemas) |
//! | GET | `/api/bans` | the SIP sources banned now (flood, repeated refusals): address, port (none: every port), reason, age, time left, messages dropped |
//! | GET | `/metrics` | Prometheus metrics ([`crate::metrics`]); needs a token when tokens are configured |
//! | GET | `/api/calls?from=&to=&caller=&dialed=&agent=&queue=&disposition=&limit=` | call records, newest first (default 50, at most 1000); `from` ≤ arrival < `to` (RFC 3339); the others match exactly; 400 for a bad time or disposition |
//! | GET | `/api/agents` | every agent: id, name, extension, state, reason, call_id, reachable, misses, calls_today, queues, skills |
//! | GET | `/api/agents/{id}` | one agent; 404 if unknown |
//! | POST | `/api/agents/{id}/login` | log in; `{"effect", "agent"}` |
//! | POST | `/api/agents/{id}/logout` | log out (after the call, if on one) |
//! | POST | `/api/agents/{id}/pause` | body `{"reason": "lunch"}` (1–32 of `A-Za-z0-9_-`) |
//! | POST | `/api/agents/{id}/unpause` | end a pause (or drop a pending one) |
//! | POST | `/api/agents/{id}/ready` | end wrap-up early / become ready |
//! | POST | `/api/agents/{id}/recording` | body `{"masked": true}` masks the recording of the agent's bridged call from now (silence), `false` ends it; 404 if not on a call, 409 if not recorded |
//! | POST | `/api/agents/{id}/monitor` | body `{"extension": "2001", "mode": "listen", "by": "wang"}` rings the extension to monitor the agent's live call: it hears caller and agent mixed; `listen`: nobody hears it, `whisper`: the agent does, `barge`: both do; 202 `{"call_id"}` of the monitor leg; 404 if not on a call, 409 if the extension has no registered softphone or the agent has its 2 monitors, 400 for a bad body or mode |
//! | GET | `/api/queues` | every queue: name, strategy, waiting, callbacks, staffed |
//! | GET | `/api/events?call_id=&agent=&kind=&limit=` | the queue event log, oldest first (the newest `limit`, default 100, at most 1000) |
//! | GET | `/api/events/stream?call_id=&agent=&kind=` | the queue events as they happen, Server-Sent Events ([`event_stream`]); 503 beyond 64 streams |
//! | GET | `/api/voice-messages?from=&to=&limit=` | calls that left a voice message, newest first; `from` ≤ arrival < `to`, RFC 3339 |
//! | GET | `/api/voice-messages/{call_id}/audio` | the message as `audio/wav`; `Range: bytes=` gives 206 |
//! | GET | `/api/callbacks?state=&limit=` | callback requests, oldest first ([`callbacks`]) |
//! | GET | `/api/callbacks/{call_id}/attempts` | the attempts at one callback |
//!
//! Agent operations answer 200 with `effect` `now`, `after_call` (it happens
//! when the agent's call and wrap-up end) or `unchanged`, and the agent as
//! `GET /api/agents/{id}` shows it; 404 for an unknown agent, 409 when the
//! agent's state does not allow it (the ACD's message), 400 for a bad body or
//! pause reason. Every error under `/api/` is JSON `{"error": "…"}`.
//!
//! Authentication: when `[http] api_tokens` is non-empty, every `/api/`
//! request needs `Authorization: Bearer <token>` (RFC 6750 §2.1), compared in
//! constant time; otherwise 401 with `WWW-Authenticate: Bearer` (§3).

mod agents;
pub(crate) mod audio_file;
pub mod event_stream;
mod monitor;
mod recording_mask;
mod voice_messages;

use std::sync::Arc;

mod callbacks;

use crate::store::Store;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The agent queue: agents' states, queues.
    pub acd: crate::call::acd_service::AcdHandle,
    /// Voice messages and recordings live under this folder.
    pub data_dir: std::path::PathBuf,
    /// Who may use `/api/`.
    pub api_tokens: ApiTokens,
    /// Agents' bridged calls (masking a recording, live monitoring).
    pub live: crate::call::live::LiveCalls,
    /// Starts live monitors of agents' calls.
    pub monitor: crate::call::monitor::MonitorHandle,
    /// The QC pages' configuration.
    pub web: Arc<crate::web::WebContext>,
    /// The calls' shared context: what `/metrics` reads.
    pub calls: Arc<crate::call::CallContext>,
    /// The wallboard's boards and streams (`/qc/wallboard`).
    pub wallboard: Arc<crate::web::wallboard_hub::Wallboard>,
    /// Open `/api/events/stream` streams ([`event_stream::MAX_STREAMS`]).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// The daemon is stopping: streams end.
    pub stop: tokio_util::sync::CancellationToken,
}

/// The accepted bearer tokens, kept as SHA-256 digests so that comparing
/// takes the same time whatever the presented token's length or content.
#[derive(Clone, Default)]
pub struct ApiTokens(Arc<[[u8; 32]]>);

impl ApiTokens {
    pub fn new(tokens: &[String]) -> ApiTokens {
        ApiTokens(tokens.iter().map(|t| digest(t.as_bytes())).collect())
    }

    /// No tokens configured: the API is open.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every token is compared, in
    /// constant time, so the answer's timing tells nothing.
    pub fn allows(&self, presented: &str) -> bool {
        let d = digest(presented.as_bytes());
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |ok, t| ok | t.ct_eq(&d))
            .into()
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// An error answer of the API: a status and `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// The database or the ACD is not answering.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// A `limit` query value: `default` when absent or empty, else an integer
/// clamped to 1..=1000.
pub(crate) fn query_limit(v: Option<String>, default: i64) -> Result<i64, ApiError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .map(|n| n.clamp(1, 1000))
            .map_err(|_| ApiError::bad_request(format!("limit={s:?} is not an integer"))),
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::unavailable(e.to_string())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/bans", get(bans))
        .route("/api/openapi.json", get(openapi))
        .route("/api/calls", get(recent_calls))
        .merge(agents::routes())
        .merge(event_stream::routes())
        .merge(recording_mask::routes())
        .merge(monitor::routes())
        .merge(voice_messages::routes())
        .merge(callbacks::router())
        .merge(crate::web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.api_tokens.clone(),
            require_token,
        ))
        .with_state(state)
}

/// Prometheus metrics (see [`crate::metrics`]); behind the API tokens
/// like `/api/` when tokens are configured.
async fn metrics(State(state): State<AppState>) -> Response {
    let ctx = &state.calls;
    let scraped = crate::metrics::Scraped {
        acd: state.acd.snapshot().await.ok(),
        store: ctx.records.stats(),
        recordings_active: ctx.recordings.active(),
        media: ctx
            .ports
            .media_threads()
            .map(|t| crate::metrics::MediaScraped {
                sockets: t.sockets_per_thread(),
                realtime: matches!(
                    t.priority(),
                    crate::media::media_threads::Priority::Realtime(_)
                ),
            }),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&ctx.metrics, &scraped),
    )
        .into_response()
}

/// The SIP sources banned now ([`crate::sip::source_guard`]).
async fn bans(State(state): State<AppState>) -> Response {
    let now = tokio::time::Instant::now();
    let list: Vec<serde_json::Value> = match state.calls.sip.guard.lock() {
        Ok(g) => g
            .bans(now)
            .into_iter()
            .map(|b| {
                serde_json::json!({
                    "ip": b.ip.to_string(),
                    "port": b.port,
                    "reason": b.reason.as_str(),
                    "banned_secs_ago": now.saturating_duration_since(b.since).as_secs(),
                    "remaining_secs": b.until.saturating_duration_since(now).as_secs(),
                    "dropped": b.dropped,
                })
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    axum::Json(serde_json::json!({ "bans": list })).into_response()
}

/// The API described in OpenAPI 3.0 (`src/http/openapi.json`, checked
/// against the routes by a unit test).
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this resource",
    )
}

/// Lets `/api/` requests through only with a configured bearer token.
async fn require_token(State(tokens): State<ApiTokens>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if tokens.is_open() || !(path == "/api" || path.starts_with("/api/") || path == "/metrics") {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let challenge = match presented {
        Some(t) if tokens.allows(t) => return next.run(req).await,
        // RFC 6750 §3.1: a token was sent but is not valid.
        Some(_) => r#"Bearer realm="hotline", error="invalid_token""#,
        None => r#"Bearer realm="hotline""#,
    };
    let mut resp =
        ApiError::new(StatusCode::UNAUTHORIZED, "a valid bearer token is required").into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    resp
}

/// The token of `Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.recent_call_records(1).await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}

/// `GET /api/calls`: every field optional.
#[derive(Deserialize)]
struct CallSearch {
    limit: Option<String>,
    from: Option<String>,
    to: Option<String>,
    caller: Option<String>,
    dialed: Option<String>,
    agent: Option<String>,
    queue: Option<String>,
    disposition: Option<String>,
}

async fn recent_calls(
    State(state): State<AppState>,
    q: Result<Query<CallSearch>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = q?.0;
    let disposition = match agents::non_empty(q.disposition) {
        None => None,
        Some(d) => Some(crate::store::Disposition::parse(&d).ok_or_else(|| {
            ApiError::bad_request(format!(
                "disposition={d:?} is not one of: {}",
                crate::store::Disposition::ALL
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?),
    };
    let filter = crate::store::CallFilter {
        from: voice_messages::parse_bound("from", q.from)?,
        to: voice_messages::parse_bound("to", q.to)?,
        caller: agents::non_empty(q.caller),
        dialed: agents::non_empty(q.dialed),
        agent: agents::non_empty(q.agent),
        queue: agents::non_empty(q.queue),
        disposition,
        limit: query_limit(q.limit, 50)?,
    };
    let rows = state.store.search_call_records(&filter).await?;
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
    Ok(Json(serde_json::Value::Array(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the HTTP modules register under `/api`, `/healthz`,
    /// `/readyz` and `/metrics` (read from their source), with the agent
    /// actions spelled out.
    fn routed() -> std::collections::BTreeSet<String> {
        let sources = [
            include_str!("mod.rs"),
            include_str!("agents.rs"),
            include_str!("monitor.rs"),
            include_str!("recording_mask.rs"),
            include_str!("voice_messages.rs"),
            include_str!("callbacks.rs"),
            include_str!("event_stream.rs"),
        ];
        let mut out = std::collections::BTreeSet::new();
        for src in sources {
            for part in src.split(".route(\"").skip(1) {
                let path = &part[..part.find('"').unwrap()];
                if !(path.starts_with("/api")
                    || ["/healthz", "/readyz", "/metrics"].contains(&path))
                {
                    continue;
                }
                if path == "/api/agents/{id}/{action}" {
                    for a in ["login", "logout", "pause", "unpause", "ready"] {
                        out.insert(format!("/api/agents/{{id}}/{a}"));
                    }
                } else {
                    out.insert(path.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_describes_every_route_and_only_those() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        let paths = doc["paths"].as_object().unwrap();
        let documented: std::collections::BTreeSet<String> = paths.keys().cloned().collect();
        assert_eq!(documented, routed());
        // Every operation answers something and every reference resolves.
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                assert!(
                    ["get", "post"].contains(&method.as_str()),
                    "{path} {method}"
                );
                assert!(!op["responses"].as_object().unwrap().is_empty(), "{path}");
                assert!(op["operationId"].is_string(), "{path}");
            }
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in OPENAPI.split("\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
        // The enums the handlers check are the document's.
        let param_enum = |path: &str, name: &str| -> Vec<String> {
            paths[path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .and_then(|p| p["schema"]["enum"].as_array())
                .unwrap_or_else(|| panic!("{path} {name}: no enum"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        let dispositions: Vec<String> = crate::store::Disposition::ALL
            .iter()
            .map(|d| d.as_str().to_string())
            .collect();
        assert_eq!(param_enum("/api/calls", "disposition"), dispositions);
        assert_eq!(
            param_enum("/api/callbacks", "state"),
            callbacks::STATES.to_vec()
        );
    }

    #[test]
    fn an_empty_limit_is_the_default_and_a_bad_one_an_error() {
        assert_eq!(query_limit(None, 50).unwrap(), 50);
        assert_eq!(query_limit(Some(String::new()), 50).unwrap(), 50);
        assert_eq!(query_limit(Some("0".into()), 50).unwrap(), 1);
        assert_eq!(query_limit(Some("5000".into()), 50).unwrap(), 1000);
        let e = query_limit(Some("-99999999999999999999".into()), 50).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("not an integer"), "{}", e.message);
    }

    #[test]
    fn tokens_match_exactly() {
        let t = ApiTokens::new(&["a-long-enough-token-1".into(), "second-token-0000".into()]);
        assert!(!t.is_open());
        assert!(t.allows("a-long-enough-token-1"));
        assert!(t.allows("second-token-0000"));
        assert!(!t.allows("a-long-enough-token-"));
        assert!(!t.allows(""));
        assert!(ApiTokens::new(&[]).is_open());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
