//! Semantic checks on incoming messages, after `parse` has accepted their
//! syntax: the rules of RFC 3261 §8.2 (in the order §8.2 gives: method
//! left to the dispatcher, then headers, Request-URI, extensions, content)
//! and the cases of RFC 4475 §3.1.2 and §3.3.
//!
//! `check_request` says which error status a request deserves;
//! `error_response` builds that response if the request is addressable;
//! `response_to_unparsable` does the same for bytes `parse_message` refused.
//! `check_response` tells whether a response is usable or must be dropped
//! (responses are never answered).
//!
//! Left to other layers: 405/501 for methods (dispatcher), 401/407 for
//! authorization (RFC 4475 `regaut01`), 481/482 (transactions, dialogs).

use crate::sip::headers::{parse_accept, ContactValue, HeaderError, MediaType};
use crate::sip::message::{Headers, Method, Request, Response};
use crate::sip::parse::{parse_request_lenient, reason_phrase, ParseError};
use crate::sip::uri::{Scheme, Uri};
use bytes::Bytes;
use thiserror::Error;

/// SIP extensions (option tags) this element supports; a Require naming any
/// other gets 420 (RFC 3261 §8.2.2.3). None yet.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[];

/// Headers that may appear at most once (RFC 3261 §7.3.1, §20; RFC 4475
/// `multi01`, `mcl01`).
const SINGLE_VALUED: &[&str] = &[
    "To",
    "From",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
];

/// Body types accepted on requests that carry offers/answers.
const SESSION_TYPES: &str = "application/sdp, multipart/mixed";
/// Body types accepted on INFO (DTMF, RFC 2976 usage).
const INFO_TYPES: &str = "application/dtmf-relay, application/dtmf";

/// Why a request is refused, and the response that says so.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{status} {reason}")]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    /// Extra headers for the response, e.g. `Unsupported: foo` with 420,
    /// `Accept: application/sdp` with 415.
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
    fn bad(e: HeaderError) -> Self {
        Rejection::new(400, format!("Bad Request ({e})"))
    }
    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

fn check_single_valued(h: &Headers) -> Result<(), HeaderError> {
    for name in SINGLE_VALUED {
        if h.count(name) > 1 {
            return Err(HeaderError::Duplicate(name));
        }
    }
    Ok(())
}

/// The header checks shared by requests and responses: single-valued
/// headers once, the mandatory ones present and well-formed.
fn check_common(h: &Headers, body_len: usize) -> Result<(), HeaderError> {
    check_single_valued(h)?;
    for via in h.vias()? {
        if via.protocol != "SIP/2.0" {
            return Err(HeaderError::Malformed {
                header: "Via",
                reason: "protocol is not SIP/2.0",
            });
        }
    }
    h.from()?;
    h.to()?;
    h.call_id()?;
    h.cseq()?;
    // §18.3: fewer bytes than announced is an error (RFC 4475 clerr).
    if let Some(n) = h.content_length()? {
        if n > body_len {
            return Err(HeaderError::Malformed {
                header: "Content-Length",
                reason: "larger than the body",
            });
        }
    }
    h.content_type()?;
    Ok(())
}

/// Applies RFC 3261 §8.2 to a parsed request. `Ok` means "process it";
/// `Err` carries the status to answer with (send it with `error_response`).
pub fn check_request(req: &Request) -> Result<(), Rejection> {
    let h = &req.headers;
    // §8.1.1: To, From, CSeq, Call-ID, Max-Forwards, Via are mandatory, but
    // an RFC 2543 client sends no Max-Forwards (RFC 4475 inv2543, which must
    // be accepted), so its absence is tolerated (§16.6 step 3 lets a proxy
    // add one); the other five must be present and well-formed (insuf).
    check_common(h, req.body.len()).map_err(Rejection::bad)?;
    let cseq = h.cseq().map_err(Rejection::bad)?;
    // §8.2 / RFC 4475 mismatch01, mismatch02: CSeq method equals the method.
    if cseq.method != req.method {
        return Err(Rejection::new(
            400,
            "Bad Request (CSeq method does not match)",
        ));
    }
    // scalar02: Max-Forwards above 255 is malformed.
    let max_forwards = h.max_forwards().map_err(Rejection::bad)?;
    h.expires().map_err(Rejection::bad)?;
    let contact = h.contact().map_err(Rejection::bad)?;

    // Request-URI (§19.1.1: no headers in a Request-URI, RFC 4475 escruri;
    // ltgtruri fails to parse).
    let uri = Uri::parse(&req.uri)
        .map_err(|e| Rejection::new(400, format!("Bad Request (Request-URI: {e})")))?;
    if !uri.headers.is_empty() {
        return Err(Rejection::new(400, "Bad Request (headers in Request-URI)"));
    }

    if req.method == Method::Register {
        check_register(h, contact.as_ref())?;
    }

    // §8.2.2.1, RFC 4475 unkscm, novelsc: a scheme we cannot handle is 416.
    if let Scheme::Other(_) = uri.scheme {
        return Err(Rejection::new(416, reason_phrase(416)));
    }

    // §8.2.2.3: Require with unknown option tags is 420, listing them in
    // Unsupported (bext01). Not for ACK and CANCEL, which must not be
    // rejected this way; Proxy-Require is for proxies, a UAS ignores it.
    if req.method != Method::Ack && req.method != Method::Cancel {
        let unknown: Vec<&str> = h
            .tokens("Require")
            .filter(|t| {
                !SUPPORTED_EXTENSIONS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        if !unknown.is_empty() {
            return Err(
                Rejection::new(420, reason_phrase(420)).with("Unsupported", unknown.join(", "))
            );
        }
    }

    check_body(req)?;

    // RFC 4475 sdp01: an INVITE whose Accept excludes SDP cannot be
    // answered with a session description: 406 (§21.4.7; the RFC also
    // allows 400).
    if req.method == Method::Invite {
        if let Some(accept) = h.get("Accept") {
            let ranges = parse_accept(accept).map_err(Rejection::bad)?;
            let sdp_ok = ranges.iter().any(|m| {
                (m.mtype == "*" && m.subtype == "*")
                    || (m.mtype == "application" && (m.subtype == "*" || m.subtype == "sdp"))
            });
            if !sdp_ok {
                return Err(Rejection::new(406, reason_phrase(406)).with(
                    "Warning",
                    "399 hotline \"only application/sdp can be sent\"",
                ));
            }
        }
    }

    // Max-Forwards 0: a B2BUA must not build a new leg from this request
    // (§16.3 step 2 for proxies, applied to our outgoing legs); OPTIONS is
    // answered anyway (§11, RFC 4475 zeromf).
    if max_forwards == Some(0) && req.method != Method::Options {
        return Err(Rejection::new(483, reason_phrase(483)));
    }
    Ok(())
}

/// RFC 3261 §10.3: the address of record in To is a SIP or SIPS URI
/// (RFC 4475 unksm2: 400); `Contact: *` only alone and with `Expires: 0`.
fn check_register(h: &Headers, contact: Option<&ContactValue>) -> Result<(), Rejection> {
    let to = h.to().map_err(Rejection::bad)?;
    if !to.uri.is_sip() {
        return Err(Rejection::new(400, "Bad Request (To is not a SIP URI)"));
    }
    if let Some(ContactValue::Star) = contact {
        if h.expires().ok().flatten() != Some(0) {
            return Err(Rejection::new(
                400,
                "Bad Request (Contact * without Expires: 0)",
            ));
        }
    }
    Ok(())
}

/// §8.2.3: bodies we cannot decode or understand are 415 with Accept /
/// Accept-Encoding saying what would do (RFC 4475 invut).
fn check_body(req: &Request) -> Result<(), Rejection> {
    if req.body.is_empty() {
        return Ok(());
    }
    let h = &req.headers;
    for enc in h.tokens("Content-Encoding") {
        if !enc.eq_ignore_ascii_case("identity") {
            return Err(Rejection::new(415, reason_phrase(415)).with("Accept-Encoding", "identity"));
        }
    }
    let ctype = match h.content_type().map_err(Rejection::bad)? {
        Some(c) => c,
        // §20.15: Content-Type MUST be present with a non-empty body.
        None => {
            return Err(Rejection::new(
                400,
                "Bad Request (body without Content-Type)",
            ))
        }
    };
    let accepted = match req.method {
        Method::Invite | Method::Ack | Method::Prack | Method::Update => {
            let ok = ctype.is("application", "sdp")
                || (ctype.is("multipart", "mixed") && multipart_has_sdp(&ctype, &req.body));
            Some((ok, SESSION_TYPES))
        }
        Method::Info => Some((
            ctype.is("application", "dtmf-relay") || ctype.is("application", "dtmf"),
            INFO_TYPES,
        )),
        // Other methods' handlers judge their own bodies (MESSAGE: mpart01).
        _ => None,
    };
    match accepted {
        Some((false, types)) => Err(Rejection::new(415, reason_phrase(415)).with("Accept", types)),
        _ => Ok(()),
    }
}

/// True if a multipart body (RFC 2046 §5.1) has an `application/sdp` part.
fn multipart_has_sdp(ctype: &MediaType, body: &Bytes) -> bool {
    multipart_part(ctype, body, "application", "sdp").is_some()
}

/// The content of the first `application/sdp` part of a multipart/mixed
/// body whose Content-Type header value is `content_type`.
pub fn sdp_from_multipart(content_type: &str, body: &Bytes) -> Option<Bytes> {
    let ctype = crate::sip::headers::parse_media_type(content_type).ok()?;
    multipart_part(&ctype, body, "application", "sdp")
}

/// The content of the first part of type `top/sub` (RFC 2046 §5.1).
fn multipart_part(ctype: &MediaType, body: &Bytes, top: &str, sub: &str) -> Option<Bytes> {
    let boundary = ctype.param("boundary")?;
    let delim = format!("--{boundary}");
    let whole: &[u8] = body;
    let mut parts = split_on(whole, delim.as_bytes()).skip(1);
    parts.find_map(|part| {
        // Each part: CRLF, headers, CRLF CRLF, content. "--" ends the body.
        if part.starts_with(b"--") {
            return None;
        }
        let head_end = find(part, b"\r\n\r\n").unwrap_or(part.len());
        let head = String::from_utf8_lossy(part.get(..head_end).unwrap_or(&[]));
        let is_type = head.split("\r\n").any(|line| {
            line.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("Content-Type")
                    && crate::sip::headers::parse_media_type(v).is_ok_and(|m| m.is(top, sub))
            })
        });
        if !is_type {
            return None;
        }
        let content = part.get(head_end + 4..).unwrap_or(&[]);
        // The CRLF before the next delimiter belongs to the delimiter.
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        Some(body.slice_ref(content))
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_on<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(hay);
    std::iter::from_fn(move || {
        let r = rest?;
        match find(r, needle) {
            Some(i) => {
                rest = r.get(i + needle.len()..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Checks a received response: the headers a client transaction matches on
/// and RFC 3261 §8.1.3.3 relies on must be present and well-formed, once.
/// An `Err` response is dropped (RFC 4475 scalarlg); responses are never
/// answered.
pub fn check_response(resp: &Response) -> Result<(), HeaderError> {
    check_common(&resp.headers, resp.body.len())?;
    if let Some(v) = resp.headers.get("Retry-After") {
        // Retry-After = delta-seconds [comment] *(SEMI param) (§20.33).
        let digits = v.trim_start().split([' ', '(', ';']).next().unwrap_or("");
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.parse::<u32>().is_err()
        {
            return Err(HeaderError::OutOfRange("Retry-After"));
        }
    }
    Ok(())
}

/// Builds the response for a rejected request, if it can be addressed: never
/// for ACK (§17.2.1), and only with a Via (what the client matches the
/// response with, §17.1.3) and a CSeq. Via, From, To, Call-ID and CSeq are
/// copied as sent, the first of each single-valued one, even if malformed
/// (RFC 4475 badinv01 has a broken Via and still deserves its 400): the
/// client recognises its own bytes. The transport sends the response per
/// §18.2.2 using the top Via when it parses (`Headers::top_via`), else to
/// the source address. A To tag is added when To is well-formed and has
/// none (§8.2.6.2).
pub fn error_response(req: &Request, rej: &Rejection) -> Option<Response> {
    if req.method == Method::Ack {
        return None;
    }
    let h = &req.headers;
    h.get("Via")?;
    h.get("CSeq")?;
    let mut headers = Headers::new();
    for v in h.get_all("Via") {
        headers.push("Via", v);
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = h.get(name) {
            headers.push(name, v);
        }
    }
    for (n, v) in &rej.headers {
        headers.push(n.as_str(), v.as_str());
    }
    let mut resp = Response {
        status: rej.status,
        reason: rej.reason.clone(),
        headers,
        body: Bytes::new(),
    };
    if h.to().is_ok() {
        resp.set_to_tag(&format!("{:016x}", rand::random::<u64>()));
    }
    Some(resp)
}

/// The error response for bytes `parse_message` refused, when they still
/// read as an addressable request: 505 for another SIP version (RFC 4475
/// badvers), 513 for an oversized message, 400 otherwise (clerr, lwsstart,
/// lwsruri, trws). `None` means drop silently.
pub fn response_to_unparsable(buf: &[u8], err: &ParseError) -> Option<Response> {
    let req = parse_request_lenient(buf)?;
    let status = err.status();
    let reason = if status == 400 {
        format!("Bad Request ({err})")
    } else {
        reason_phrase(status).to_string()
    };
    error_response(&req, &Rejection::new(status, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;
    use crate::sip::parse::parse_message;

    fn req(text: &str) -> Request {
        match parse_message(text.replace('\n', "\r\n").as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("not a request"),
        }
    }

    const BASE: &str = "INVITE sip:agent@hotline.example SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\n\
From: <sip:caller@example.net>;tag=1\n\
To: <sip:agent@hotline.example>\n\
Call-ID: abc@192.0.2.1\n\
CSeq: 1 INVITE\n\
Max-Forwards: 70\n";

    fn with(extra: &str, body: &str) -> Request {
        req(&format!(
            "{BASE}{extra}Content-Length: {}\n\n{body}",
            body.len() + body.matches('\n').count()
        ))
    }

    #[test]
    fn good_invite_passes() {
        assert_eq!(
            check_request(&with("Content-Type: application/sdp\n", "v=0\n")),
            Ok(())
        );
        assert_eq!(check_request(&with("", "")), Ok(()));
    }

    #[test]
    fn require_gets_420_with_unsupported() {
        let r = check_request(&with("Require: 100rel, timer\n", "")).unwrap_err();
        assert_eq!(r.status, 420);
        assert_eq!(
            r.headers,
            vec![("Unsupported".to_string(), "100rel, timer".to_string())]
        );
    }

    #[test]
    fn content_checks() {
        let r = check_request(&with("Content-Type: text/plain\n", "hi")).unwrap_err();
        assert_eq!((r.status, r.headers[0].0.as_str()), (415, "Accept"));
        let r = check_request(&with(
            "Content-Type: application/sdp\nContent-Encoding: gzip\n",
            "x",
        ))
        .unwrap_err();
        assert_eq!(
            (r.status, r.headers[0].0.as_str()),
            (415, "Accept-Encoding")
        );
        let mp = "--b1\nContent-Type: application/sdp\n\nv=0\n--b1--\n";
        assert_eq!(
            check_request(&with("Content-Type: multipart/mixed;boundary=b1\n", mp)),
            Ok(())
        );
        let mp = "--b1\nContent-Type: text/plain\n\nhi\n--b1--\n";
        assert_eq!(
            check_request(&with("Content-Type: multipart/mixed;boundary=b1\n", mp))
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(check_request(&with("", "v=0\n")).unwrap_err().status, 400);
    }

    #[test]
    fn max_forwards_zero() {
        let r = req(&format!(
            "{}\n",
            BASE.replace("Max-Forwards: 70", "Max-Forwards: 0")
        ));
        assert_eq!(check_request(&r).unwrap_err().status, 483);
    }

    #[test]
    fn error_response_copies_and_tags() {
        let r = with("Require: foo\n", "");
        let rej = check_request(&r).unwrap_err();
        let resp = error_response(&r, &rej).unwrap();
        assert_eq!(resp.status, 420);
        assert_eq!(resp.headers.get("Unsupported"), Some("foo"));
        assert_eq!(resp.headers.get("Call-ID"), Some("abc@192.0.2.1"));
        assert!(resp.to().unwrap().tag().is_some());
        assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bKabc"));
        let ack = req(&format!("{}\n", BASE.replace("INVITE", "ACK")));
        assert_eq!(error_response(&ack, &rej), None);
    }

    #[test]
    fn register_star() {
        let base = "REGISTER sip:hotline.example SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\n\
From: <sip:a@hotline.example>;tag=1\n\
To: <sip:a@hotline.example>\n\
Call-ID: r1\n\
CSeq: 2 REGISTER\n\
Contact: *\n";
        assert_eq!(
            check_request(&req(&format!("{base}Expires: 0\n\n"))),
            Ok(())
        );
        assert_eq!(
            check_request(&req(&format!("{base}Expires: 60\n\n")))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            check_request(&req(&format!("{base}Contact: <sip:a@b>\nExpires: 0\n\n")))
                .unwrap_err()
                .status,
            400
        );
    }
}
