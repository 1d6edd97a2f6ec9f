//! A small HTTP/1.1 client for the tests: one request per connection
//! (`Connection: close`), over a tokio `TcpStream` to 127.0.0.1, reading
//! `Content-Length` or chunked bodies. Enough to test the daemon's API
//! without a client library.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// One response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The first header of that (case-insensitive) name in `headers`
/// (names lower-cased).
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

impl HttpResponse {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as JSON (panics with the body shown if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// An API client for one daemon, optionally with a bearer token.
#[derive(Debug, Clone)]
pub struct HttpClient {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> HttpClient {
        HttpClient { addr, token: None }
    }

    pub fn with_token(mut self, token: &str) -> HttpClient {
        self.token = Some(token.to_string());
        self
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"").await
    }

    /// A POST with a JSON body.
    pub async fn post(&self, path: &str, json: &str) -> HttpResponse {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        )
        .await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let exchange = async {
            let mut s = TcpStream::connect(self.addr).await.expect("connect");
            s.write_all(head.as_bytes()).await.expect("send head");
            s.write_all(body).await.expect("send body");
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).await.expect("read response");
            raw
        };
        let raw = timeout(Duration::from_secs(10), exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no response in 10 s"));
        parse_response(&raw, method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {path}: bad response ({e}): {raw:?}"))
    }
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l.split_once(':').ok_or("bad header line")?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let rest = &raw[end + 4..];
    let resp = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only {
        return Ok(resp);
    }
    let body = if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(n) = resp.header("content-length") {
        let n: usize = n.parse().map_err(|_| "bad content-length")?;
        if rest.len() < n {
            return Err(format!("body cut short: {} of {n} bytes", rest.len()));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { body, ..resp })
}

/// The chunk-size line at the start of `buf`: the size and the line's
/// length with its CRLF; `None` while the line is incomplete.
fn chunk_head(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let size_text = String::from_utf8_lossy(&buf[..eol]);
    let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        .map_err(|_| format!("bad chunk size {size_text:?}"))?;
    Ok(Some((size, eol + 2)))
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let (size, line) = chunk_head(rest)?.ok_or("no chunk size line")?;
        rest = &rest[line..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The value of cookie `name` set by `r`.
pub fn set_cookie(r: &HttpResponse, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The body as text.
pub fn body(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// An `application/x-www-form-urlencoded` body of `fields`.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// One Server-Sent Event: its `event:` name (`message` when none) and its
/// `data:` lines joined by newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (panics with the data shown if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }
}

/// A `text/event-stream` response read as it comes: the head at once,
/// then [`SseStream::next_event`]. Dropping it closes the connection.
#[derive(Debug)]
pub struct SseStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// A refusal's whole body (status not 200); empty on a stream.
    pub body: Vec<u8>,
    conn: TcpStream,
    chunked: bool,
    /// Received and not yet de-chunked.
    wire: Vec<u8>,
    /// De-chunked and not yet parsed into events.
    text: Vec<u8>,
    ended: bool,
}

impl HttpClient {
    /// A GET of an event stream with `headers` (e.g. the session cookie).
    pub async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> SseStream {
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            self.addr
        );
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut conn = TcpStream::connect(self.addr).await.expect("connect");
        conn.write_all(head.as_bytes()).await.expect("send head");
        let mut raw = Vec::new();
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut buf = [0u8; 4096];
            let n = timeout(Duration::from_secs(10), conn.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("GET {path}: no response head in 10 s"))
                .expect("read response head");
            assert!(n > 0, "GET {path}: connection closed before the head");
            raw.extend_from_slice(&buf[..n]);
        };
        let mut resp = parse_response(&raw[..end + 4], true)
            .unwrap_or_else(|e| panic!("GET {path}: bad head ({e}): {raw:?}"));
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let mut s = SseStream {
            status: resp.status,
            headers: std::mem::take(&mut resp.headers),
            body: Vec::new(),
            conn,
            chunked,
            wire: raw[end + 4..].to_vec(),
            text: Vec::new(),
            ended: false,
        };
        if s.status != 200 {
            // A refusal: its body, whole (the server closes or sends a length).
            let _ = timeout(Duration::from_secs(5), async {
                while s.wire.len() < s.content_length().unwrap_or(usize::MAX) {
                    let mut buf = [0u8; 4096];
                    match s.conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => s.wire.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            s.body = if s.chunked {
                dechunk(&s.wire).unwrap_or_default()
            } else {
                std::mem::take(&mut s.wire)
            };
        }
        s
    }
}

impl SseStream {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// Moves the complete chunks of `wire` into `text`.
    fn dechunk_some(&mut self) {
        if !self.chunked {
            self.text.append(&mut self.wire);
            return;
        }
        loop {
            let Some((size, line)) = chunk_head(&self.wire).unwrap_or_else(|e| panic!("{e}"))
            else {
                return;
            };
            if size == 0 {
                self.ended = true;
                self.wire.clear();
                return;
            }
            if self.wire.len() < line + size + 2 {
                return;
            }
            self.text.extend_from_slice(&self.wire[line..line + size]);
            self.wire.drain(..line + size + 2);
        }
    }

    /// The next complete event already received (comments and `retry:`
    /// only — keep-alives — are skipped).
    fn parsed(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.text.windows(2).position(|w| w == b"\n\n")?;
            let block = String::from_utf8_lossy(&self.text[..end]).into_owned();
            self.text.drain(..end + 2);
            let mut event = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim_start().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if event.is_some() || !data.is_empty() {
                return Some(SseEvent {
                    event: event.unwrap_or_else(|| "message".into()),
                    data: data.join("\n"),
                });
            }
        }
    }

    /// The next event within `within`; `None` when the stream ended (the
    /// server closed it) or nothing came in time.
    pub async fn next_event(&mut self, within: Duration) -> Option<SseEvent> {
        let until = tokio::time::Instant::now() + within;
        loop {
            self.dechunk_some();
            if let Some(e) = self.parsed() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            let mut buf = [0u8; 8192];
            match tokio::time::timeout_at(until, self.conn.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.ended = true;
                    return None;
                }
                Ok(Ok(n)) => self.wire.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Whether the server ended the stream within `within` (events
    /// meanwhile are read and dropped).
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return self.ended;
            }
            if self.next_event(left).await.is_none() {
                return self.ended;
            }
        }
    }

    /// The first event within `within` for which `pred` holds, as JSON.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let until = tokio::time::Instant::now() + within;
        let mut last = None;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(e) => {
                    let j = e.json();
                    if pred(&j) {
                        return j;
                    }
                    last = Some(j);
                }
                None => panic!("no event with {what} within {within:?}; last: {last:#?}"),
            }
        }
    }
}
