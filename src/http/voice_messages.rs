//! Voice messages for agents: the list of calls that left one, and the
//! recording itself as `audio/wav`, seekable with `Range` requests
//! (RFC 9110 §14).
//!
//! The file is served by [`audio_file::serve_wav`]: only from inside
//! `<data_dir>/recordings/`; a tampered row gets 404 like a missing one.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{audio_file, ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/voice-messages", get(list))
        .route("/api/voice-messages/{call_id}/audio", get(audio))
}

#[derive(Deserialize)]
struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

pub(super) fn parse_bound(
    name: &str,
    v: Option<String>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                ApiError::bad_request(format!("{name}={s:?} is not an RFC 3339 time: {e}"))
            }),
    }
}

async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let Query(q) = q?;
    let from = parse_bound("from", q.from)?;
    let to = parse_bound("to", q.to)?;
    let limit = super::query_limit(q.limit, 100)?;
    let rows = state.store.voice_message_records(from, to, limit).await?;
    Ok(Json(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "call_id": r.call_id,
                    "caller": r.caller,
                    "dialed": r.dialed,
                    "queue": r.queue,
                    "arrived_at": r.arrived_at.to_rfc3339(),
                    "length_ms": r.voice_message_ms,
                    "audio_url": format!(
                        "/api/voice-messages/{}/audio",
                        percent_encode_segment(&r.call_id)
                    ),
                })
            })
            .collect(),
    ))
}

/// Percent-encodes everything but RFC 3986 §2.3 unreserved characters, so a
/// Call-ID (`a84b4c76e66710@pc33.example.com`, or worse) is one path segment.
fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn audio(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("no voice message for call {call_id}"));
    let rec = state
        .store
        .call_record(&call_id)
        .await?
        .ok_or_else(missing)?;
    let stored = rec.voice_message.as_deref().ok_or_else(missing)?;
    audio_file::serve_wav(&state.data_dir, stored, &headers)
        .await
        .ok_or_else(missing)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_become_one_segment() {
        assert_eq!(
            percent_encode_segment("a84b4c76e66710@pc33.example.com"),
            "a84b4c76e66710%40pc33.example.com"
        );
        assert_eq!(percent_encode_segment("a/../b c"), "a%2F..%2Fb%20c");
    }
}
