//! The SIP wire format: bytes to `SipMessage` and back (RFC 3261 §7, §18.3,
//! §25), framing on streams (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives),
//! and the building blocks of responses (§8.2.6).
//!
//! Parsing is in two layers. This module is the syntax layer: start line,
//! header lines (folding joined, compact names expanded, well-known names
//! canonicalised), and framing of the body. Header *values* stay raw, so a
//! request with a broken From or CSeq still parses and `validate` can answer
//! it with 400. Only a broken start line or broken framing fails here; for
//! those `validate::response_to_unparsable` can still build a 400/505 from
//! `parse_request_lenient`.

use crate::sip::headers::parse_name_addr;
use crate::sip::message::{Header, Headers, Method, Request, Response, SipMessage};
use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Largest message accepted, in bytes (datagram or framed stream message).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Most header fields accepted in one message.
pub const MAX_HEADERS: usize = 200;
/// Longest header field (name, colon and value, folding included).
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message longer than {MAX_MESSAGE_LEN} bytes")]
    TooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("header field longer than {MAX_HEADER_LEN} bytes")]
    HeaderTooLong,
    #[error("no empty line ends the header section (truncated message)")]
    Truncated,
    #[error("malformed start line: {0}")]
    BadStartLine(&'static str),
    #[error("status code not in 100..=699")]
    BadStatusCode,
    #[error("unsupported SIP version {0:?}")]
    UnsupportedVersion(String),
    #[error("malformed header line {line}: {reason}")]
    BadHeaderLine { line: usize, reason: &'static str },
    #[error("header line {line} is not valid UTF-8")]
    InvalidUtf8 { line: usize },
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    #[error("malformed or conflicting Content-Length on a stream transport")]
    BadContentLength,
    #[error("body has {available} bytes, Content-Length announces {announced}")]
    BodyTooShort { announced: usize, available: usize },
}

impl ParseError {
    /// The status a request failing this way deserves, if it can be
    /// answered at all (RFC 3261 §21.4.1, §21.5.12, §21.5.17).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::UnsupportedVersion(_) => 505,
            ParseError::TooLarge => 513,
            _ => 400,
        }
    }
}

/// The outcome of looking at the front of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet for a complete message.
    Incomplete,
    /// The buffer starts with this many bytes of CRLF keep-alive; skip them.
    /// RFC 5626 §3.5.1: a "ping" is CRLFCRLF (4 bytes), answered with a
    /// single CRLF "pong"; a lone CRLF is a pong and gets no answer.
    KeepAlive(usize),
    /// The first message is complete and this long; hand `&buf[..n]` to
    /// `parse_message`.
    Message(usize),
}

// ---------------------------------------------------------------------------
// Header names

/// Canonical spellings of well-known header names, with compact forms
/// (RFC 3261 §7.3.3, §20; RFC 3515, 3892, 3265, 3841, 4028, 4474, 6665).
const KNOWN_HEADERS: &[(&str, Option<u8>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some(b'a')),
    ("Accept-Encoding", None),
    ("Accept-Language", None),
    ("Alert-Info", None),
    ("Allow", None),
    ("Allow-Events", Some(b'u')),
    ("Authentication-Info", None),
    ("Authorization", None),
    ("Call-ID", Some(b'i')),
    ("Call-Info", None),
    ("Contact", Some(b'm')),
    ("Content-Disposition", None),
    ("Content-Encoding", Some(b'e')),
    ("Content-Language", None),
    ("Content-Length", Some(b'l')),
    ("Content-Type", Some(b'c')),
    ("CSeq", None),
    ("Date", None),
    ("Diversion", None),
    ("Error-Info", None),
    ("Event", Some(b'o')),
    ("Expires", None),
    ("From", Some(b'f')),
    ("History-Info", None),
    ("Identity", Some(b'y')),
    ("Identity-Info", Some(b'n')),
    ("In-Reply-To", None),
    ("Max-Forwards", None),
    ("MIME-Version", None),
    ("Min-Expires", None),
    ("Min-SE", None),
    ("Organization", None),
    ("P-Asserted-Identity", None),
    ("P-Preferred-Identity", None),
    ("Path", None),
    ("Priority", None),
    ("Privacy", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Reason", None),
    ("Record-Route", None),
    ("Refer-To", Some(b'r')),
    ("Referred-By", Some(b'b')),
    ("Reject-Contact", Some(b'j')),
    ("Replaces", None),
    ("Reply-To", None),
    ("Request-Disposition", Some(b'd')),
    ("Require", None),
    ("Retry-After", None),
    ("Route", None),
    ("RSeq", None),
    ("Server", None),
    ("Service-Route", None),
    ("Session-Expires", Some(b'x')),
    ("Subject", Some(b's')),
    ("Subscription-State", None),
    ("Supported", Some(b'k')),
    ("Timestamp", None),
    ("To", Some(b't')),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some(b'v')),
    ("Warning", None),
    ("WWW-Authenticate", None),
];

/// The canonical name for a header name as sent; unknown names are kept.
fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let c = name.as_bytes()[0].to_ascii_lowercase();
        for (canon, compact) in KNOWN_HEADERS {
            if *compact == Some(c) {
                return (*canon).to_string();
            }
        }
        return name.to_string();
    }
    for (canon, _) in KNOWN_HEADERS {
        if canon.len() == name.len() && canon.eq_ignore_ascii_case(name) {
            return (*canon).to_string();
        }
    }
    name.to_string()
}

/// token characters (RFC 3261 §25.1).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

// ---------------------------------------------------------------------------
// Lines

/// The line starting at `pos` without its line end (CRLF, or a bare LF,
/// tolerated), and where the next line starts. `None` if no LF follows.
#[inline]
fn next_line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let lf = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, pos + lf + 1))
}

/// Number of bytes of CRLF (or bare LF) at the front of `buf`.
fn leading_crlf(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match buf.get(i..) {
            Some([b'\r', b'\n', ..]) => i += 2,
            Some([b'\n', ..]) => i += 1,
            _ => return i,
        }
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

// ---------------------------------------------------------------------------
// Start line

enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { status: u16, reason: &'a str },
}

/// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive (§7.1).
/// `Ok(true)` for 2.0, `Ok(false)` for another well-formed version.
fn check_version(v: &str) -> Result<bool, ParseError> {
    let b = v.as_bytes();
    if b.len() < 4 || !b[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ParseError::BadStartLine("bad SIP-Version"));
    }
    let (major, minor) = v[4..]
        .split_once('.')
        .ok_or(ParseError::BadStartLine("bad SIP-Version"))?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(ParseError::BadStartLine("bad SIP-Version"));
    }
    let is_two = major.trim_start_matches('0') == "2" && minor.bytes().all(|c| c == b'0');
    Ok(is_two)
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::BadStartLine("not UTF-8"))?;
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
        let (version, rest) = line
            .split_once(' ')
            .ok_or(ParseError::BadStartLine("no status code"))?;
        if !check_version(version)? {
            return Err(ParseError::UnsupportedVersion(version.to_string()));
        }
        // "SIP/2.0 100" without the SP before an empty reason is tolerated.
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::BadStatusCode);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::BadStatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode);
        }
        if reason.bytes().any(|c| c < b' ' && c != b'\t') {
            return Err(ParseError::BadStartLine(
                "control character in reason phrase",
            ));
        }
        return Ok(StartLine::Response { status, reason });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF (§7.1): exactly
    // two single spaces. RFC 4475 lwsstart, lwsruri and trws fail here.
    let (method, rest) = line
        .split_once(' ')
        .ok_or(ParseError::BadStartLine("no Request-URI"))?;
    let (uri, version) = rest
        .rsplit_once(' ')
        .ok_or(ParseError::BadStartLine("no SIP-Version"))?;
    if !is_token(method) {
        return Err(ParseError::BadStartLine("method is not a token"));
    }
    if uri.is_empty() || uri.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return Err(ParseError::BadStartLine("whitespace in Request-URI"));
    }
    if !check_version(version)? {
        return Err(ParseError::UnsupportedVersion(version.to_string()));
    }
    Ok(StartLine::Request { method, uri })
}

// ---------------------------------------------------------------------------
// Header section

/// Parses header lines from `pos` up to and including the empty line.
/// Returns the headers and where the body starts.
fn parse_header_section(buf: &[u8], mut pos: usize) -> Result<(Headers, usize), ParseError> {
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut line_no = 1;
    loop {
        let (line, next) = next_line(buf, pos).ok_or(ParseError::Truncated)?;
        line_no += 1;
        pos = next;
        if line.is_empty() {
            break;
        }
        let text =
            std::str::from_utf8(line).map_err(|_| ParseError::InvalidUtf8 { line: line_no })?;
        if is_ws(line[0]) {
            // Folding (§7.3.1): the CRLF and surrounding whitespace are one SP.
            let last = headers.last_mut().ok_or(ParseError::BadHeaderLine {
                line: line_no,
                reason: "continuation line before any header",
            })?;
            let cont = trim_ws(text);
            if !cont.is_empty() {
                let kept = last.value.trim_end_matches([' ', '\t']).len();
                last.value.truncate(kept);
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(cont);
            }
            if last.name.len() + last.value.len() + 1 > MAX_HEADER_LEN {
                return Err(ParseError::HeaderTooLong);
            }
            continue;
        }
        if line.len() > MAX_HEADER_LEN {
            return Err(ParseError::HeaderTooLong);
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        // header = field-name HCOLON field-value; HCOLON = *(SP/HTAB) ":" SWS
        let name_end =
            line.iter()
                .position(|&c| !is_token_char(c))
                .ok_or(ParseError::BadHeaderLine {
                    line: line_no,
                    reason: "no colon",
                })?;
        if name_end == 0 {
            return Err(ParseError::BadHeaderLine {
                line: line_no,
                reason: "empty header name",
            });
        }
        let mut colon = name_end;
        while colon < line.len() && is_ws(line[colon]) {
            colon += 1;
        }
        if line.get(colon) != Some(&b':') {
            return Err(ParseError::BadHeaderLine {
                line: line_no,
                reason: "no colon after name",
            });
        }
        let name = &text[..name_end];
        let value = text.get(colon + 1..).map(trim_ws).unwrap_or("");
        headers.push(Header {
            name: canonical_name(name),
            value: value.to_string(),
        });
    }
    for h in &mut headers {
        // A folded value may end in whitespace only if the last line did.
        let kept = h.value.trim_end_matches([' ', '\t']).len();
        h.value.truncate(kept);
    }
    Ok((Headers(headers), pos))
}

/// Content-Length = 1*DIGIT, no sign, no overflow.
pub(crate) fn parse_content_length(v: &str) -> Option<usize> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

// ---------------------------------------------------------------------------
// Entry points

/// Parses one complete message, as received in one UDP datagram (or framed
/// by `frame_stream`).
///
/// RFC 3261 §18.3: with a Content-Length the body is that many bytes, any
/// further bytes are discarded (RFC 4475 `dblreq`), fewer bytes are an
/// error (`clerr`); without one, the body is the rest of the datagram. A
/// malformed Content-Length (`ncl`: -999) is left for `validate` to answer
/// with 400, and the body is then the rest of the datagram. CRLFs before the
/// start line are skipped (§7.5).
pub fn parse_message(buf: &[u8]) -> Result<SipMessage, ParseError> {
    if buf.len() > MAX_MESSAGE_LEN {
        return Err(ParseError::TooLarge);
    }
    let buf = buf.get(leading_crlf(buf)..).unwrap_or(&[]);
    if buf.is_empty() {
        return Err(ParseError::Empty);
    }
    let (line, pos) = next_line(buf, 0).ok_or(ParseError::Truncated)?;
    let start = parse_start_line(line)?;
    let (headers, body_start) = parse_header_section(buf, pos)?;
    let available = buf.len().saturating_sub(body_start);
    let body_len = match headers.get("Content-Length").and_then(parse_content_length) {
        Some(n) if n > available => {
            return Err(ParseError::BodyTooShort {
                announced: n,
                available,
            })
        }
        Some(n) => n,
        None => available,
    };
    let body = buf
        .get(body_start..body_start + body_len)
        .map(Bytes::copy_from_slice)
        .unwrap_or_default();
    Ok(match start {
        StartLine::Request { method, uri } => SipMessage::Request(Request {
            method: Method::from_token(method),
            uri: uri.to_string(),
            headers,
            body,
        }),
        StartLine::Response { status, reason } => SipMessage::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        }),
    })
}

/// Finds the first message in a stream buffer (TCP/TLS). RFC 3261 §18.3: on
/// a stream Content-Length is mandatory; missing or malformed, the stream
/// cannot be framed and the connection should be closed.
pub fn frame_stream(buf: &[u8]) -> Result<Frame, ParseError> {
    let skip = leading_crlf(buf);
    if skip > 0 {
        return Ok(Frame::KeepAlive(skip));
    }
    if buf.is_empty() || buf == b"\r" {
        return Ok(Frame::Incomplete);
    }
    // Find the empty line ending the header section.
    let mut pos = 0;
    let mut content_length: Option<usize> = None;
    let mut in_cl = false;
    let mut first = true;
    let body_start = loop {
        let Some((line, next)) = next_line(buf, pos) else {
            return if buf.len() > MAX_MESSAGE_LEN {
                Err(ParseError::TooLarge)
            } else {
                Ok(Frame::Incomplete)
            };
        };
        if next > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLarge);
        }
        pos = next;
        if line.is_empty() {
            break next;
        }
        if first {
            first = false;
            continue;
        }
        if is_ws(line[0]) {
            // A folded Content-Length value (legal, never seen).
            if in_cl {
                let v = std::str::from_utf8(line).map_err(|_| ParseError::BadContentLength)?;
                let v = trim_ws(v);
                if !v.is_empty() {
                    if content_length.is_some() {
                        return Err(ParseError::BadContentLength);
                    }
                    content_length =
                        Some(parse_content_length(v).ok_or(ParseError::BadContentLength)?);
                }
            }
            continue;
        }
        in_cl = false;
        let name_end = line
            .iter()
            .position(|&c| !is_token_char(c))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let rest = &line[name_end..];
            let colon = rest
                .iter()
                .position(|&c| c == b':')
                .ok_or(ParseError::BadContentLength)?;
            let v = std::str::from_utf8(&rest[colon + 1..])
                .map_err(|_| ParseError::BadContentLength)?;
            let v = trim_ws(v);
            in_cl = true;
            if v.is_empty() {
                continue;
            }
            let n = parse_content_length(v).ok_or(ParseError::BadContentLength)?;
            match content_length {
                Some(m) if m != n => return Err(ParseError::BadContentLength),
                _ => content_length = Some(n),
            }
        }
    };
    let n = content_length.ok_or(ParseError::MissingContentLength)?;
    let total = body_start.checked_add(n).ok_or(ParseError::TooLarge)?;
    if total > MAX_MESSAGE_LEN {
        return Err(ParseError::TooLarge);
    }
    Ok(if buf.len() >= total {
        Frame::Message(total)
    } else {
        Frame::Incomplete
    })
}

/// Best-effort reading of a request that `parse_message` rejected, only to
/// address an error response to it (RFC 4475 §3.1.2 asks for a 400 where a
/// response can be sent). Whitespace in the request line is tolerated,
/// unreadable header lines are skipped, the body is dropped. `None` if this
/// does not even look like a request.
pub fn parse_request_lenient(buf: &[u8]) -> Option<Request> {
    let buf = buf.get(leading_crlf(buf)..)?;
    let buf = buf.get(..buf.len().min(MAX_MESSAGE_LEN))?;
    let (line, mut pos) = next_line(buf, 0)?;
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_ascii_whitespace();
    let method = parts.next()?;
    if method.len() >= 4 && method.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        || !is_token(method)
    {
        return None;
    }
    let uri = parts.next().unwrap_or("");
    let mut headers = Headers::new();
    while let Some((line, next)) = next_line(buf, pos) {
        pos = next;
        if line.is_empty() || headers.0.len() >= MAX_HEADERS {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line.first().copied().is_some_and(is_ws) {
            if let Some(last) = headers.0.last_mut() {
                if last.value.len() < MAX_HEADER_LEN {
                    last.value.push(' ');
                    last.value.push_str(trim_ws(&text));
                }
            }
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = trim_ws(name);
        if !is_token(name) {
            continue;
        }
        headers.push(canonical_name(name), trim_ws(value));
    }
    Some(Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
        headers,
        body: Bytes::new(),
    })
}

// ---------------------------------------------------------------------------
// Serialization and responses

fn write_headers(out: &mut BytesMut, headers: &Headers, body_len: usize) {
    let mut cl_written = false;
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("Content-Length") || h.name.eq_ignore_ascii_case("l") {
            if !cl_written {
                write_content_length(out, body_len);
                cl_written = true;
            }
            continue;
        }
        out.put_slice(h.name.as_bytes());
        out.put_slice(b": ");
        if h.value.bytes().any(|c| c == b'\r' || c == b'\n') {
            // Never let a value smuggle in a header line.
            for c in h.value.bytes() {
                out.put_u8(if c == b'\r' || c == b'\n' { b' ' } else { c });
            }
        } else {
            out.put_slice(h.value.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
    if !cl_written {
        write_content_length(out, body_len);
    }
    out.put_slice(b"\r\n");
}

fn write_content_length(out: &mut BytesMut, n: usize) {
    out.put_slice(b"Content-Length: ");
    out.put_slice(n.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

fn headers_len(headers: &Headers) -> usize {
    headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum::<usize>()
        + 24
}

impl Request {
    /// The request on the wire: request line, headers in order, exactly one
    /// Content-Length equal to the body length (at the place of the first
    /// one, or last), empty line, body.
    pub fn to_bytes(&self) -> Bytes {
        let m = self.method.as_str();
        let mut out = BytesMut::with_capacity(
            m.len() + self.uri.len() + 12 + headers_len(&self.headers) + self.body.len(),
        );
        out.put_slice(m.as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        write_headers(&mut out, &self.headers, self.body.len());
        out.put_slice(&self.body);
        out.freeze()
    }
}

impl Response {
    /// The response on the wire; see `Request::to_bytes`.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            self.reason.len() + 16 + headers_len(&self.headers) + self.body.len(),
        );
        out.put_slice(b"SIP/2.0 ");
        out.put_slice(self.status.to_string().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        write_headers(&mut out, &self.headers, self.body.len());
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Adds `;tag=<tag>` to the To header unless it already has a tag
    /// (RFC 3261 §8.2.6.2). Does nothing if there is no To header.
    pub fn set_to_tag(&mut self, tag: &str) {
        let Some(to) = self
            .headers
            .0
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case("To"))
        else {
            return;
        };
        let has_tag = match parse_name_addr(&to.value) {
            Ok(na) => na.tag().is_some(),
            // Unparsable: look for a tag parameter after the URI.
            Err(_) => to
                .value
                .rsplit_once('>')
                .map(|(_, p)| p)
                .unwrap_or(&to.value)
                .split(';')
                .skip(1)
                .any(|p| trim_ws(p.split('=').next().unwrap_or("")).eq_ignore_ascii_case("tag")),
        };
        if !has_tag {
            to.value.push_str(";tag=");
            to.value.push_str(tag);
        }
    }
}

impl SipMessage {
    /// The message on the wire.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

/// A response to `req` per RFC 3261 §8.2.6.2: every Via in order, From, To,
/// Call-ID, CSeq (and Timestamp, §8.2.6.1) copied; empty body. Add the To tag
/// with `Response::set_to_tag` where the response needs one.
pub fn response_to(req: &Request, status: u16, reason: &str) -> Response {
    let mut headers = Vec::with_capacity(8);
    for h in req.headers.iter() {
        let copy = ["Via", "From", "To", "Call-ID", "CSeq", "Timestamp"]
            .iter()
            .any(|n| h.name.eq_ignore_ascii_case(n));
        if copy {
            headers.push(h.clone());
        }
    }
    // Keep the conventional order: Vias first, in their order.
    headers.sort_by_key(|h| !h.name.eq_ignore_ascii_case("Via"));
    Response {
        status,
        reason: reason.to_string(),
        headers: Headers(headers),
        body: Bytes::new(),
    }
}

/// The standard reason phrase for a status code (RFC 3261 §21 and the
/// extensions a hotline sends); "Unknown" for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INVITE: &str = "INVITE sip:agent@hotline.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.net>;tag=9fxced76sl\r\n\
To: <sip:agent@hotline.example>\r\n\
Call-ID: 3848276298220188511@example.net\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.1:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Supported: replaces, timer\r\n\
User-Agent: Softphone 1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 116\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n";

    fn req(buf: &[u8]) -> Request {
        match parse_message(buf) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn typical_invite() {
        assert_eq!(INVITE.len() - INVITE.find("\r\n\r\n").unwrap() - 4, 116);
        let r = req(INVITE.as_bytes());
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri, "sip:agent@hotline.example");
        assert_eq!(r.headers.0.len(), 12);
        assert_eq!(
            r.headers.get("call-id"),
            Some("3848276298220188511@example.net")
        );
        assert_eq!(r.body.len(), 116);
        // Printing it gives the same bytes back.
        assert_eq!(&r.to_bytes()[..], INVITE.as_bytes());
    }

    #[test]
    fn compact_and_canonical_names() {
        let m = "OPTIONS sip:a@b SIP/2.0\r\ni: x\r\nM: <sip:c@d>\r\nf: <sip:a@b>\r\nT: <sip:a@b>\r\nv: SIP/2.0/UDP h\r\n\
l: 0\r\nc: text/plain\r\nk: timer\r\ns: hi\r\ne: gzip\r\no: dialog\r\nr: <sip:x@y>\r\nb: <sip:z@w>\r\n\
u: talk\r\nCALL-id: y\r\ncseq: 1 OPTIONS\r\nwww-authenticate: Digest\r\nX-Custom: 1\r\n\r\n";
        let r = req(m.as_bytes());
        let names: Vec<&str> = r.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Call-ID",
                "Contact",
                "From",
                "To",
                "Via",
                "Content-Length",
                "Content-Type",
                "Supported",
                "Subject",
                "Content-Encoding",
                "Event",
                "Refer-To",
                "Referred-By",
                "Allow-Events",
                "Call-ID",
                "CSeq",
                "WWW-Authenticate",
                "X-Custom"
            ]
        );
    }

    #[test]
    fn folding_and_whitespace() {
        let m = "OPTIONS sip:a@b SIP/2.0\r\nSubject: one  \r\n\t two\r\n   three \r\nTO :\r\n sip:a@b\r\nEmpty:\r\n\r\n";
        let r = req(m.as_bytes());
        assert_eq!(r.headers.get("Subject"), Some("one two three"));
        assert_eq!(r.headers.get("To"), Some("sip:a@b"));
        assert_eq!(r.headers.get("Empty"), Some(""));
        let bad = "OPTIONS sip:a@b SIP/2.0\r\n continuation first\r\n\r\n";
        assert!(matches!(
            parse_message(bad.as_bytes()),
            Err(ParseError::BadHeaderLine { .. })
        ));
    }

    #[test]
    fn leading_crlf_and_bare_lf() {
        let r = req(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nCall-ID: x\n\n");
        assert_eq!(r.headers.get("Call-ID"), Some("x"));
        assert_eq!(parse_message(b"\r\n\r\n"), Err(ParseError::Empty));
    }

    #[test]
    fn body_framing_on_datagrams() {
        let head = "MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n";
        // No Content-Length: the rest of the datagram.
        assert_eq!(
            &req(format!("{head}\r\nhello").as_bytes()).body[..],
            b"hello"
        );
        // Extra bytes discarded.
        assert_eq!(
            &req(format!("{head}l: 3\r\n\r\nhello").as_bytes()).body[..],
            b"hel"
        );
        // Fewer bytes than announced.
        assert_eq!(
            parse_message(format!("{head}Content-Length: 9\r\n\r\nhello").as_bytes()),
            Err(ParseError::BodyTooShort {
                announced: 9,
                available: 5
            })
        );
        // A malformed Content-Length is for validate; the body is the rest.
        let r = req(format!("{head}Content-Length: -1\r\n\r\nhello").as_bytes());
        assert_eq!(&r.body[..], b"hello");
        assert!(r.content_length().is_err());
    }

    #[test]
    fn header_errors() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: \xff\xfe\r\n\r\n";
        assert_eq!(parse_message(m), Err(ParseError::InvalidUtf8 { line: 2 }));
        for bad in ["No colon here", ": no name", "Bad Name: x", "Na(me: x"] {
            let m = format!("OPTIONS sip:a@b SIP/2.0\r\n{bad}\r\n\r\n");
            assert!(
                matches!(
                    parse_message(m.as_bytes()),
                    Err(ParseError::BadHeaderLine { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nA: b\r\n"),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn limits() {
        let mut m = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for i in 0..=MAX_HEADERS {
            m.push_str(&format!("X-{i}: v\r\n"));
        }
        m.push_str("\r\n");
        assert_eq!(parse_message(m.as_bytes()), Err(ParseError::TooManyHeaders));
        let m = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_LEN)
        );
        assert_eq!(parse_message(m.as_bytes()), Err(ParseError::HeaderTooLong));
        let m = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nX: a\r\n{}\r\n\r\n",
            " b".repeat(MAX_HEADER_LEN)
        );
        assert_eq!(parse_message(m.as_bytes()), Err(ParseError::HeaderTooLong));
        let m = vec![b'a'; MAX_MESSAGE_LEN + 1];
        assert_eq!(parse_message(&m), Err(ParseError::TooLarge));
    }

    #[test]
    fn start_lines() {
        let resp = |s: &str| parse_message(format!("{s}\r\nCall-ID: x\r\n\r\n").as_bytes());
        match resp("SIP/2.0 180 Ringing").unwrap() {
            SipMessage::Response(r) => assert_eq!((r.status, r.reason.as_str()), (180, "Ringing")),
            _ => panic!(),
        }
        match resp("SIP/2.0 100").unwrap() {
            SipMessage::Response(r) => assert_eq!((r.status, r.reason.as_str()), (100, "")),
            _ => panic!(),
        }
        assert_eq!(resp("SIP/2.0 700 Nope"), Err(ParseError::BadStatusCode));
        assert_eq!(resp("SIP/2.0 099 Nope"), Err(ParseError::BadStatusCode));
        assert_eq!(resp("SIP/2.0 4294967301 x"), Err(ParseError::BadStatusCode));
        assert_eq!(
            resp("SIP/3.0 200 OK"),
            Err(ParseError::UnsupportedVersion("SIP/3.0".into()))
        );
        assert!(resp("sip/2.0 200 OK").is_ok());
        for bad in [
            "INVITE  sip:a@b SIP/2.0",
            "INVITE sip:a@b  SIP/2.0",
            "INVITE sip:a@b SIP/2.0 ",
            "INVITE sip:a@b; lr SIP/2.0",
            "INVITE sip:a@b",
            "INVITE",
            "INV(ITE sip:a@b SIP/2.0",
            "INVITE sip:a@b HTTP/1.1",
            "INVITE sip:a@b SIP/2",
        ] {
            assert!(
                matches!(resp(bad), Err(ParseError::BadStartLine(_))),
                "{bad}"
            );
        }
        assert_eq!(
            resp("INVITE sip:a@b SIP/7.0"),
            Err(ParseError::UnsupportedVersion("SIP/7.0".into()))
        );
    }

    #[test]
    fn stream_framing() {
        assert_eq!(frame_stream(b""), Ok(Frame::Incomplete));
        assert_eq!(frame_stream(b"\r"), Ok(Frame::Incomplete));
        assert_eq!(frame_stream(b"\r\n\r\nINV"), Ok(Frame::KeepAlive(4)));
        assert_eq!(
            frame_stream(b"INVITE sip:a@b SIP/2.0\r\nl: 2\r\n"),
            Ok(Frame::Incomplete)
        );
        let two = format!("{INVITE}{INVITE}");
        assert_eq!(
            frame_stream(two.as_bytes()),
            Ok(Frame::Message(INVITE.len()))
        );
        assert_eq!(
            frame_stream(&INVITE.as_bytes()[..INVITE.len() - 1]),
            Ok(Frame::Incomplete)
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"),
            Err(ParseError::MissingContentLength)
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\n"),
            Err(ParseError::TooLarge)
        );
        assert_eq!(
            frame_stream(&vec![b'a'; MAX_MESSAGE_LEN + 1]),
            Err(ParseError::TooLarge)
        );
        // Folded Content-Length value.
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nab"),
            Ok(Frame::Message(50))
        );
    }

    #[test]
    fn serialization_fixes_content_length() {
        let mut r = req(INVITE.as_bytes());
        r.body = Bytes::from_static(b"v=0\r\n");
        r.headers.push("Content-Length", "999");
        let text = String::from_utf8(r.to_bytes().to_vec()).unwrap();
        assert_eq!(text.matches("Content-Length").count(), 1);
        assert!(text.contains("Content-Length: 5\r\n"));
        // Its place is kept: before the empty line here, after Content-Type.
        assert!(text.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        r.headers.remove("Content-Length");
        assert!(String::from_utf8(r.to_bytes().to_vec())
            .unwrap()
            .ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        // No header injection through a value.
        r.headers.push("Subject", "a\r\nEvil: 1");
        assert!(!String::from_utf8(r.to_bytes().to_vec())
            .unwrap()
            .contains("\r\nEvil"));
    }

    #[test]
    fn responses_to_requests() {
        let mut m = INVITE.replace(
            "Via: SIP",
            "Via: SIP/2.0/TCP proxy.example;branch=z9hG4bKp1\r\nVia: SIP",
        );
        m = m.replace("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nTimestamp: 54\r\n");
        let r = req(m.as_bytes());
        let mut resp = response_to(&r, 180, reason_phrase(180));
        let names: Vec<&str> = resp.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["Via", "Via", "From", "To", "Call-ID", "CSeq", "Timestamp"]
        );
        assert_eq!(
            resp.headers.get("Via"),
            Some("SIP/2.0/TCP proxy.example;branch=z9hG4bKp1")
        );
        resp.set_to_tag("abc");
        resp.set_to_tag("def");
        assert_eq!(
            resp.headers.get("To"),
            Some("<sip:agent@hotline.example>;tag=abc")
        );
        let bytes = resp.to_bytes();
        assert!(bytes.starts_with(b"SIP/2.0 180 Ringing\r\n"));
        assert!(bytes.ends_with(b"Content-Length: 0\r\n\r\n"));
        assert_eq!(reason_phrase(486), "Busy Here");
        assert_eq!(reason_phrase(299), "Unknown");
    }

    #[test]
    fn lenient_reading_for_error_responses() {
        let r = parse_request_lenient(
            b"INVITE  sip:a@b  SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nbroken line\r\nCSeq: 1 INVITE\r\n",
        )
        .unwrap();
        assert_eq!(r.uri, "sip:a@b");
        assert_eq!(r.headers.0.len(), 2);
        assert_eq!(parse_request_lenient(b"SIP/2.0 200 OK\r\n\r\n"), None);
        assert_eq!(parse_request_lenient(b""), None);
    }

    /// Rough speed check: `cargo test --lib parse_speed -- --ignored --nocapture`
    /// (meaningful only with optimisations).
    #[test]
    #[ignore = "timing, run by hand"]
    fn parse_speed() {
        let n = 200_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(parse_message(std::hint::black_box(INVITE.as_bytes())).is_ok());
        }
        let parse = t.elapsed() / n;
        let r = req(INVITE.as_bytes());
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                crate::sip::validate::check_request(std::hint::black_box(&r)).is_ok(),
            );
        }
        let check = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(std::hint::black_box(&r).to_bytes());
        }
        println!(
            "parse {parse:?}, check_request {check:?}, to_bytes {:?}",
            t.elapsed() / n
        );
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let method = prop_oneof![
            Just("INVITE".to_string()),
            Just("ACK".to_string()),
            Just("BYE".to_string()),
            Just("REGISTER".to_string()),
            "[A-Za-z][A-Za-z0-9.!%*_+`'~-]{0,12}",
        ];
        let name = prop_oneof![
            Just("Via".to_string()),
            Just("From".to_string()),
            Just("To".to_string()),
            Just("Call-ID".to_string()),
            Just("CSeq".to_string()),
            Just("Contact".to_string()),
            Just("WWW-Authenticate".to_string()),
            "X-[A-Za-z0-9!%*_+`'~.-]{1,12}",
        ];
        let value = "[ -~\u{a0}-\u{2000}]{0,40}".prop_map(|v| v.trim_matches(' ').to_string());
        (
            method,
            "[a-zA-Z0-9:@;=.%+?&/-]{1,40}",
            proptest::collection::vec((name, value), 0..20),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(m, uri, hs, body)| {
                let mut headers = Headers::new();
                for (n, v) in hs {
                    headers.push(n, v);
                }
                headers.set("Content-Length", body.len().to_string());
                Request {
                    method: Method::from_token(&m),
                    uri,
                    headers,
                    body: Bytes::from(body),
                }
            })
    }

    proptest! {
        #[test]
        fn request_round_trip(r in arb_request()) {
            let bytes = r.to_bytes();
            prop_assert_eq!(parse_message(&bytes), Ok(SipMessage::Request(r.clone())));
            prop_assert_eq!(frame_stream(&bytes), Ok(Frame::Message(bytes.len())));
        }

        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_message(&buf);
            let _ = frame_stream(&buf);
            let _ = parse_request_lenient(&buf);
        }

        #[test]
        fn mangled_invite_never_panics(
            cut in 0..INVITE.len(),
            edits in proptest::collection::vec((0..INVITE.len(), any::<u8>()), 0..8),
        ) {
            let mut buf = INVITE.as_bytes().to_vec();
            for (i, b) in edits {
                buf[i] = b;
            }
            buf.truncate(cut);
            let r = parse_message(&buf);
            if let Ok(SipMessage::Request(req)) = &r {
                let _ = crate::sip::validate::check_request(req);
                let _ = req.vias();
                let _ = req.contact();
            }
            if let Err(e) = &r {
                let _ = crate::sip::validate::response_to_unparsable(&buf, e);
            }
            let _ = frame_stream(&buf);
        }

        #[test]
        fn truncated_invite_is_an_error(cut in 0..INVITE.len()) {
            // Content-Length is present: any cut, in the headers or the
            // body, must fail rather than yield a shorter message.
            prop_assert!(parse_message(&INVITE.as_bytes()[..cut]).is_err());
        }
    }
}
