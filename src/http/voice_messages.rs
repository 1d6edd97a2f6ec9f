//! Voice messages for agents: the list of calls that left one, and the
//! recording itself as `audio/wav`, seekable with `Range` requests
//! (RFC 9110 §14).
//!
//! The stored path is relative to the data folder and is trusted only after
//! it resolves (symlinks and `..` followed, by `canonicalize`) to a file
//! inside `<data_dir>/recordings/`: a tampered row cannot read any other
//! file, it gets 404 like a missing one.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::warn;

use super::{ApiError, AppState};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/voice-messages", get(list))
        .route("/api/voice-messages/{call_id}/audio", get(audio))
}

#[derive(Deserialize)]
struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
}

fn parse_bound(name: &str, v: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
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
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
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

/// The message file of a stored relative path, if it is a file inside
/// `<data_dir>/recordings/` once every link and `..` is resolved.
async fn resolve(data_dir: &FsPath, stored: &str) -> Option<PathBuf> {
    let root = tokio::fs::canonicalize(data_dir.join(crate::recording::FOLDER))
        .await
        .ok()?;
    let file = tokio::fs::canonicalize(data_dir.join(stored)).await.ok()?;
    if !file.starts_with(&root) || file == root {
        warn!(
            path = stored,
            "voice message path outside the recordings folder refused"
        );
        return None;
    }
    let meta = tokio::fs::metadata(&file).await.ok()?;
    meta.is_file().then_some(file)
}

/// What a `Range` header asks of a `len`-byte file (RFC 9110 §14.1.2,
/// §14.2: a server may ignore a Range it does not support).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAsk {
    /// No range (or one we ignore: not `bytes`, malformed, several ranges).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// No byte of the file is in the range: 416.
    Unsatisfiable,
}

fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // bytes=-N: the last N bytes.
        return match num(last) {
            None => RangeAsk::Whole,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        };
    }
    let Some(start) = num(first) else {
        return RangeAsk::Whole;
    };
    let end = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(e) if e >= start => Some(e),
            // first > last, or junk: syntactically invalid, ignored.
            _ => return RangeAsk::Whole,
        }
    };
    if start >= len {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    }
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
    let path = resolve(&state.data_dir, stored).await.ok_or_else(missing)?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|_| missing())?;
    let len = file.metadata().await.map_err(|_| missing())?.len();
    let ask = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeAsk::Whole, |v| parse_range(v, len));
    let (status, start, count) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0, len),
        RangeAsk::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeAsk::Unsatisfiable => {
            // RFC 9110 §15.5.17: say how long the representation is.
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the message is {len} bytes"),
            )
            .into_response();
            set(&mut resp, header::CONTENT_RANGE, format!("bytes */{len}"));
            set(&mut resp, header::ACCEPT_RANGES, "bytes".into());
            return Ok(resp);
        }
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| missing())?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut resp = (status, body).into_response();
    set(&mut resp, header::CONTENT_TYPE, "audio/wav".into());
    set(&mut resp, header::CONTENT_LENGTH, count.to_string());
    set(&mut resp, header::ACCEPT_RANGES, "bytes".into());
    set(&mut resp, header::CACHE_CONTROL, "private, no-store".into());
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + count - 1;
        set(
            &mut resp,
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{len}"),
        );
    }
    Ok(resp)
}

fn set(resp: &mut Response, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAsk::*;
        let p = |v| parse_range(v, 1000);
        assert_eq!(p("bytes=0-99"), Part { start: 0, end: 99 });
        assert_eq!(
            p("bytes=500-"),
            Part {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=-100"),
            Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(p("bytes=-5000"), Part { start: 0, end: 999 });
        assert_eq!(
            p("bytes=900-5000"),
            Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(p("bytes=1000-"), Unsatisfiable);
        assert_eq!(p("bytes=-0"), Unsatisfiable);
        assert_eq!(p("bytes=5-1"), Whole);
        assert_eq!(p("bytes=0-1,5-9"), Whole);
        assert_eq!(p("items=0-1"), Whole);
        assert_eq!(p("bytes=x-1"), Whole);
        assert_eq!(p("bytes=+1-2"), Whole);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
    }

    #[test]
    fn call_ids_become_one_segment() {
        assert_eq!(
            percent_encode_segment("a84b4c76e66710@pc33.example.com"),
            "a84b4c76e66710%40pc33.example.com"
        );
        assert_eq!(percent_encode_segment("a/../b c"), "a%2F..%2Fb%20c");
    }
}
