//! Serving a recording's WAV file over HTTP, seekable with `Range`
//! requests (RFC 9110 §14), for voice messages (the agents' API) and
//! recordings (the QC pages).
//!
//! The stored path is relative to the data folder and is trusted only after
//! it resolves (symlinks and `..` followed, by `canonicalize`) to a file
//! inside `<data_dir>/recordings/`: a tampered row cannot read any other
//! file; it is treated like a missing one.

use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::warn;

use super::ApiError;

/// The file of a stored relative path, if it is a file inside
/// `<data_dir>/recordings/` once every link and `..` is resolved.
pub(crate) async fn resolve(data_dir: &FsPath, stored: &str) -> Option<PathBuf> {
    let root = tokio::fs::canonicalize(data_dir.join(crate::recording::FOLDER))
        .await
        .ok()?;
    let file = tokio::fs::canonicalize(data_dir.join(stored)).await.ok()?;
    if !file.starts_with(&root) || file == root {
        warn!(
            path = stored,
            "recording path outside the recordings folder refused"
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

/// The WAV file `stored` (relative to `data_dir`) as `audio/wav`: 200 with
/// the whole file, 206 with the part a `Range` asks for, 416 when no byte
/// of it is asked; `None` when there is no such file inside the recordings
/// folder.
pub(crate) async fn serve_wav(
    data_dir: &FsPath,
    stored: &str,
    headers: &HeaderMap,
) -> Option<Result<Response, ApiError>> {
    let path = resolve(data_dir, stored).await?;
    let mut file = tokio::fs::File::open(&path).await.ok()?;
    let len = file.metadata().await.ok()?.len();
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
                format!("the file is {len} bytes"),
            )
            .into_response();
            set(&mut resp, header::CONTENT_RANGE, format!("bytes */{len}"));
            set(&mut resp, header::ACCEPT_RANGES, "bytes".into());
            return Some(Ok(resp));
        }
    };
    file.seek(std::io::SeekFrom::Start(start)).await.ok()?;
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
    Some(Ok(resp))
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
}
