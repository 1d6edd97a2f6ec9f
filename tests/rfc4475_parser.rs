//! RFC 4475 torture messages against the parser and the request checks, one
//! test per message file in `../shared/testdata/rfc4475/`.
//!
//! Each test states the outcome RFC 4475 asks for: a valid message parses and
//! passes `check_request` (or `check_response`); an invalid request gets the
//! RFC's status, either from `check_request` + `error_response` or, when the
//! start line or framing is broken, from `response_to_unparsable`; an invalid
//! response is dropped. Where the RFC leaves a choice, the comment says which
//! one we made.

use hotline::sip::headers::ContactValue;
use hotline::sip::message::{Method, Request, Response, SipMessage};
use hotline::sip::parse::{frame_stream, parse_message, Frame, ParseError};
use hotline::sip::uri::Scheme;
use hotline::sip::validate::{
    check_request, check_response, error_response, response_to_unparsable,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../shared/testdata/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn request(buf: &[u8]) -> Request {
    match parse_message(buf) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn response(buf: &[u8]) -> Response {
    match parse_message(buf) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// RFC 4475 §3.1.1 and friends: parses, and is processed normally.
fn valid(buf: &[u8]) -> Request {
    let r = request(buf);
    assert_eq!(check_request(&r), Ok(()), "{r:#?}");
    r
}

/// Parses, and `check_request` answers `status`; the answer can be sent and
/// survives a round trip through the wire format.
fn rejected(buf: &[u8], status: u16) -> Response {
    let r = request(buf);
    let rej = check_request(&r).expect_err("must be rejected");
    assert_eq!(rej.status, status, "{rej:?}");
    let resp = error_response(&r, &rej).expect("addressable");
    assert_eq!(resp.status, status);
    let mut on_wire = resp.clone();
    on_wire.headers.push("Content-Length", "0");
    assert_eq!(
        parse_message(&resp.to_bytes()),
        Ok(SipMessage::Response(on_wire))
    );
    resp
}

/// `parse_message` refuses it, and the lenient reading still answers `status`.
fn unparsable_answered(buf: &[u8], status: u16) -> (ParseError, Response) {
    let err = parse_message(buf).expect_err("must not parse");
    let resp = response_to_unparsable(buf, &err).expect("addressable");
    assert_eq!(resp.status, status, "{err}");
    (err, resp)
}

macro_rules! torture {
    ($($(#[$m:meta])* $name:ident => $check:expr;)*) => {
        $(
            $(#[$m])*
            #[test]
            fn $name() {
                let buf = load(stringify!($name));
                let check: fn(&[u8]) = $check;
                check(&buf);
            }
        )*
    };
}

torture! {
    // ---- §3.1.1 valid messages ----------------------------------------

    // 3.1.1.1 A short tortuous INVITE: folding, odd case, LWS everywhere.
    wsinv => |b| {
        let r = valid(b);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.max_forwards(), Ok(Some(68)));
        assert_eq!(r.cseq().unwrap().seq, 9);
        assert_eq!(r.call_id(), Ok("wsinv.ndaksdj@192.0.2.1"));
        assert_eq!(r.to().unwrap().tag(), Some("1918181833n"));
        let from = r.from().unwrap();
        assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(from.tag(), Some("98asjd8"));
        let vias = r.vias().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].host, "192.0.2.2");
        assert_eq!(vias[0].branch(), Some("390skdjuw"));
        assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
        assert_eq!(r.headers.get("Subject"), Some(""));
        assert_eq!(
            r.headers.get("NewFangledHeader"),
            Some("newfangled value continued newfangled value")
        );
        let Some(ContactValue::Addrs(c)) = r.contact().unwrap() else { panic!() };
        assert_eq!(c[0].display.as_deref(), Some("Quoted string \"\""));
        assert_eq!(c[0].param("newparam"), Some(Some("newvalue")));
        assert_eq!(c[0].param("q"), Some(Some("0.33")));
        assert_eq!(r.body.len(), 150);
    };
    // 3.1.1.2 Wide range of valid characters. The unknown method is the
    // dispatcher's to answer (405/501), not a validation error.
    intmeth => |b| {
        let r = valid(b);
        assert_eq!(r.method, Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into()));
        let uri = r.request_uri().unwrap();
        assert_eq!(uri.password.as_deref(), Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"));
        assert_eq!(r.to().unwrap().display.as_deref(), Some("BEL:\x07 NUL:\0 DEL:\x7f"));
        assert!(r.headers.get("extensionHeader-!.%*+_`'~").is_some_and(|v| v.starts_with('\u{FEFF}')));
        assert!(r.from().unwrap().param("fromParam''~+*_!.-%").is_some());
    };
    // 3.1.1.3 Escaped characters in URIs are equal to their unescaped form.
    esc01 => |b| {
        let r = valid(b);
        assert_eq!(r.request_uri().unwrap().user.as_deref(), Some("sips:user@example.com"));
        assert_eq!(r.to().unwrap().uri.user.as_deref(), Some("user"));
        assert_eq!(r.from().unwrap().uri.user.as_deref(), Some("I have spaces"));
        let Some(ContactValue::Addrs(c)) = r.contact().unwrap() else { panic!() };
        assert_eq!(c[0].uri.user.as_deref(), Some("caller"));
        assert_eq!(c[0].uri.param("lr"), Some(None));
        assert_eq!(c[0].uri.param("name"), Some(Some("value%41")));
        assert!(r.content_type().unwrap().unwrap().is("application", "sdp"));
    };
    // 3.1.1.4 Escaped NULs in URIs.
    escnull => |b| {
        let r = valid(b);
        assert_eq!(r.to().unwrap().uri.user.as_deref(), Some("null-\0-null"));
        let Some(ContactValue::Addrs(c)) = r.contact().unwrap() else { panic!() };
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].uri.user.as_deref(), Some("\0\0"));
    };
    // 3.1.1.5 '%' that is not an escape: RE%47IST%45R is an unknown method,
    // C%6Fntact an unknown header.
    esc02 => |b| {
        let r = valid(b);
        assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
        let Some(ContactValue::Addrs(c)) = r.contact().unwrap() else { panic!() };
        assert_eq!(c.len(), 2);
        assert_eq!(r.headers.get("C%6Fntact"), Some("<sip:alias2@host2.example.com>"));
        assert_eq!(r.to().unwrap().display.as_deref(), Some("%Z%45"));
    };
    // 3.1.1.6 No LWS between display name and '<'.
    lwsdisp => |b| {
        assert_eq!(valid(b).from().unwrap().display.as_deref(), Some("caller"));
    };
    // 3.1.1.7 Long values; 34 vias, mixed-case and spaced header names.
    longreq => |b| {
        let r = valid(b);
        assert_eq!(r.vias().unwrap().len(), 34);
        assert_eq!(r.headers.count("Via"), 34);
        assert!(r.to().unwrap().uri.param("unknownparam1").is_some());
    };
    // 3.1.1.8 Extra octets after Content-Length in a datagram are discarded.
    dblreq => |b| {
        let r = valid(b);
        assert_eq!(r.method, Method::Register);
        assert!(r.body.is_empty());
        assert_eq!(r.call_id(), Ok("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
    };
    // 3.1.1.9 ';' in the user part of a Request-URI.
    semiuri => |b| {
        let uri = valid(b).request_uri().unwrap();
        assert_eq!(uri.user.as_deref(), Some("user;par=u@example.net"));
        assert_eq!(uri.host, "example.com");
        assert!(uri.params.is_empty());
    };
    // 3.1.1.10 Varied and unknown transports.
    transports => |b| {
        let v = valid(b).vias().unwrap();
        let t: Vec<&str> = v.iter().map(|v| v.transport.as_str()).collect();
        assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    };
    // 3.1.1.11 Multipart MIME body (binary part kept byte for byte).
    mpart01 => |b| {
        let r = valid(b);
        assert_eq!(r.body.len(), 553);
        assert_eq!(&r.body[..], &b[b.len() - 553..]);
        assert_eq!(r.top_via().unwrap().rport(), Some(None));
    };
    // 3.1.1.12 Unusual (UTF-8) reason phrase.
    unreason => |b| {
        let r = response(b);
        assert_eq!(r.status, 200);
        assert!(r.reason.starts_with("= 2**3 * 5**2 "));
        assert!(r.reason.contains('\u{0441}'));
        assert_eq!(check_response(&r), Ok(()));
    };
    // 3.1.1.13 Empty reason phrase.
    noreason => |b| {
        let r = response(b);
        assert_eq!((r.status, r.reason.as_str()), (100, ""));
        assert_eq!(check_response(&r), Ok(()));
    };

    // ---- §3.1.2 invalid messages ----------------------------------------

    // 3.1.2.1 Extraneous separators in Via and Contact.
    badinv01 => |b| { rejected(b, 400); };
    // 3.1.2.2 Content-Length larger than the datagram: a framing error, so
    // parse_message fails; the request is still answered with 400.
    clerr => |b| {
        let (err, _) = unparsable_answered(b, 400);
        assert_eq!(err, ParseError::BodyTooShort { announced: 9999, available: 154 });
    };
    // 3.1.2.3 Negative Content-Length: parsed (body = rest of datagram),
    // rejected by validation.
    ncl => |b| { rejected(b, 400); };
    // 3.1.2.4 CSeq, Max-Forwards, Expires beyond their range: 400 (for CSeq).
    scalar02 => |b| {
        let r = request(b);
        assert!(r.cseq().is_err());
        assert!(r.max_forwards().is_err());
        assert!(r.expires().is_err());
        rejected(b, 400);
    };
    // 3.1.2.5 A response with overlarge scalars: dropped, never answered.
    scalarlg => |b| {
        let r = response(b);
        assert!(check_response(&r).is_err());
    };
    // 3.1.2.6 Unterminated quoted display name.
    quotbal => |b| { rejected(b, 400); };
    // 3.1.2.7 Request-URI in <>: the start line splits fine, the URI fails.
    ltgtruri => |b| { rejected(b, 400); };
    // 3.1.2.8 LWS inside the Request-URI: start line broken.
    lwsruri => |b| { unparsable_answered(b, 400); };
    // 3.1.2.9 Several SPs between start-line elements: start line broken.
    lwsstart => |b| { unparsable_answered(b, 400); };
    // 3.1.2.10 SP after SIP-Version. The RFC lets an element be lenient; we
    // follow the grammar strictly and answer 400 (one start-line rule, no
    // special cases).
    trws => |b| { unparsable_answered(b, 400); };
    // 3.1.2.11 Headers in the Request-URI.
    escruri => |b| { rejected(b, 400); };
    // 3.1.2.12 Non-GMT Date. The RFC allows ignoring the Date header when the
    // element does not use it; we never use Date, so the request is accepted.
    baddate => |b| { valid(b); };
    // 3.1.2.13 Contact addr-spec with URI headers outside <>.
    regbadct => |b| { rejected(b, 400); };
    // 3.1.2.14 Spaces inside <> around the addr-spec. The RFC allows being
    // liberal; we reject with 400 as the grammar says.
    badaspec => |b| { rejected(b, 400); };
    // 3.1.2.15 Unquoted display name with non-token characters. This copy of
    // the message ends without the empty line after the headers, so
    // parse_message already reports it truncated; the lenient reading still
    // answers 400. With the empty line restored, validation answers 400 for
    // the display name, as the RFC means.
    baddn => |b| {
        let (err, _) = unparsable_answered(b, 400);
        assert_eq!(err, ParseError::Truncated);
        let mut fixed = b.to_vec();
        fixed.extend_from_slice(b"\r\n");
        let resp = rejected(&fixed, 400);
        assert!(resp.reason.contains("From"), "{}", resp.reason);
    };
    // 3.1.2.16 SIP/7.0: 505.
    badvers => |b| {
        let (err, resp) = unparsable_answered(b, 505);
        assert_eq!(err, ParseError::UnsupportedVersion("SIP/7.0".into()));
        assert_eq!(resp.headers.get("Call-ID"), Some("badvers.31417@c.example.com"));
    };
    // 3.1.2.17 CSeq method differs from the request method.
    mismatch01 => |b| { rejected(b, 400); };
    // 3.1.2.18 Unknown method with a mismatching CSeq: 400 (the mismatch is
    // checked before the method is dispatched).
    mismatch02 => |b| { rejected(b, 400); };
    // 3.1.2.19 Status code 4294967301: a response, dropped.
    bigcode => |b| {
        let err = parse_message(b).unwrap_err();
        assert_eq!(err, ParseError::BadStatusCode);
        assert_eq!(response_to_unparsable(b, &err), None);
    };

    // ---- §3.2 transaction layer ----------------------------------------

    // 3.2.1 Branch that is only the magic cookie: well-formed, processed.
    badbranch => |b| {
        assert_eq!(valid(b).top_via().unwrap().branch(), Some("z9hG4bK"));
    };

    // ---- §3.3 application layer ----------------------------------------

    // 3.3.1 No Call-ID, From, To (nor Max-Forwards): 400, still addressable
    // through Via and CSeq.
    insuf => |b| {
        let resp = rejected(b, 400);
        assert_eq!(resp.headers.get("CSeq"), Some("193942 INVITE"));
    };
    // 3.3.2 Unknown Request-URI scheme: 416.
    unkscm => |b| { rejected(b, 416); };
    // 3.3.3 Known but unsupported scheme (soap.beep): 416.
    novelsc => |b| { rejected(b, 416); };
    // 3.3.4 Non-SIP URIs in To/From/Contact parse; a registrar answers 400
    // because the address of record in To must be a SIP URI.
    unksm2 => |b| {
        let r = request(b);
        assert_eq!(r.to().unwrap().uri.scheme, Scheme::Other("isbn".into()));
        assert_eq!(r.from().unwrap().uri.scheme, Scheme::Other("http".into()));
        rejected(b, 400);
    };
    // 3.3.5 Unknown Require: 420 listing the tags; Proxy-Require is ignored
    // by a UAS.
    bext01 => |b| {
        let resp = rejected(b, 420);
        assert_eq!(
            resp.headers.get("Unsupported"),
            Some("nothingSupportsThis, nothingSupportsThisEither")
        );
    };
    // 3.3.6 Unknown Content-Type on INVITE: 415 with Accept.
    invut => |b| {
        let resp = rejected(b, 415);
        assert!(resp.headers.get("Accept").unwrap().contains("application/sdp"));
    };
    // 3.3.7 Unknown authorization scheme: well-formed here; the registrar's
    // digest layer answers 401 with a challenge it supports.
    regaut01 => |b| {
        let r = valid(b);
        assert!(r.headers.get("Authorization").unwrap().starts_with("NoOneKnowsThisScheme"));
    };
    // 3.3.8 Duplicate single-valued headers: 400.
    multi01 => |b| { rejected(b, 400); };
    // 3.3.9 Two Content-Lengths: 400.
    mcl01 => |b| { rejected(b, 400); };
    // 3.3.10 A response with a broadcast Via: well-formed; a proxy must not
    // forward it to 255.255.255.255 (`Via::is_broadcast`).
    bcast => |b| {
        let r = response(b);
        assert_eq!(check_response(&r), Ok(()));
        let v = r.vias().unwrap();
        assert!(!v[0].is_broadcast());
        assert!(v[1].is_broadcast());
    };
    // 3.3.11 Max-Forwards 0 on OPTIONS: an endpoint answers it (483 is for
    // other methods we would forward, see validate).
    zeromf => |b| {
        assert_eq!(valid(b).max_forwards(), Ok(Some(0)));
    };
    // 3.3.12 REGISTER, addr-spec Contact: `unknownparam` is a contact param.
    cparam01 => |b| {
        let Some(ContactValue::Addrs(c)) = valid(b).contact().unwrap() else { panic!() };
        assert_eq!(c[0].param("unknownparam"), Some(None));
        assert!(c[0].uri.params.is_empty());
    };
    // 3.3.13 REGISTER, name-addr Contact: `unknownparam` is a URI param.
    cparam02 => |b| {
        let Some(ContactValue::Addrs(c)) = valid(b).contact().unwrap() else { panic!() };
        assert_eq!(c[0].uri.param("unknownparam"), Some(None));
        assert!(c[0].params.is_empty());
    };
    // 3.3.14 Escaped headers in a Contact URI in <>: valid; the registrar
    // stores the contact as sent.
    regescrt => |b| {
        let Some(ContactValue::Addrs(c)) = valid(b).contact().unwrap() else { panic!() };
        assert_eq!(c[0].uri.headers, vec![("Route".to_string(), "<sip:sip.example.com>".to_string())]);
    };
    // 3.3.15 Accept without application/sdp on INVITE: 406 (the RFC also
    // allows 400; 406 says what is wrong).
    sdp01 => |b| { rejected(b, 406); };

    // ---- §3.4 backward compatibility ----------------------------------

    // 3.4.1 RFC 2543 INVITE: no branch, no Max-Forwards, no Content-Length.
    inv2543 => |b| {
        let r = valid(b);
        assert_eq!(r.top_via().unwrap().branch(), None);
        assert_eq!(r.max_forwards(), Ok(None));
        assert_eq!(r.body.len(), 105);
        // On a stream the same bytes cannot be framed (§18.3).
        assert_eq!(frame_stream(b), Err(ParseError::MissingContentLength));
    };
}

const ALL: &[&str] = &[
    "badaspec",
    "badbranch",
    "baddate",
    "baddn",
    "badinv01",
    "badvers",
    "bcast",
    "bext01",
    "bigcode",
    "clerr",
    "cparam01",
    "cparam02",
    "dblreq",
    "esc01",
    "esc02",
    "escnull",
    "escruri",
    "insuf",
    "intmeth",
    "inv2543",
    "invut",
    "longreq",
    "ltgtruri",
    "lwsdisp",
    "lwsruri",
    "lwsstart",
    "mcl01",
    "mismatch01",
    "mismatch02",
    "mpart01",
    "multi01",
    "ncl",
    "noreason",
    "novelsc",
    "quotbal",
    "regaut01",
    "regbadct",
    "regescrt",
    "scalar02",
    "scalarlg",
    "sdp01",
    "semiuri",
    "transports",
    "trws",
    "unkscm",
    "unksm2",
    "unreason",
    "wsinv",
    "zeromf",
];

/// Every file has a test above.
#[test]
fn every_file_is_covered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/rfc4475");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".dat").map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ALL);
}

/// On a stream, a message with a valid Content-Length frames to exactly
/// what `parse_message` reads, also when it arrives byte by byte and after
/// keep-alive CRLFs.
#[test]
fn stream_framing_matches_datagram_parsing() {
    for name in ALL {
        let buf = load(name);
        let Ok(msg) = parse_message(&buf) else {
            continue;
        };
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(&buf);
        let Ok(Frame::KeepAlive(4)) = frame_stream(&stream) else {
            panic!("{name}")
        };
        let stream = &stream[4..];
        match frame_stream(stream) {
            Ok(Frame::Message(n)) => {
                assert_eq!(parse_message(&stream[..n]).as_ref(), Ok(&msg), "{name}");
                for cut in 0..n {
                    assert_eq!(
                        frame_stream(&stream[..cut]),
                        Ok(Frame::Incomplete),
                        "{name} cut at {cut}"
                    );
                }
            }
            // No usable Content-Length: cannot be framed on a stream.
            Err(ParseError::MissingContentLength | ParseError::BadContentLength) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// No torture message, nor any prefix of one, makes anything panic; a
/// request cut inside its headers or body never parses.
#[test]
fn truncations_never_panic_nor_pass() {
    for name in ALL {
        let buf = load(name);
        let full = parse_message(&buf);
        for cut in 0..buf.len() {
            let part = &buf[..cut];
            let r = parse_message(part);
            if let Err(e) = &r {
                let _ = response_to_unparsable(part, e);
            }
            if let Ok(SipMessage::Request(req)) = &r {
                let _ = check_request(req);
            }
            let _ = frame_stream(part);
            // Where the body is exactly Content-Length bytes, any cut loses
            // part of the message and must be an error.
            if let Ok(SipMessage::Request(req)) = &full {
                let exact = !req.body.is_empty()
                    && req.content_length() == Ok(Some(req.body.len()))
                    && buf.ends_with(&req.body)
                    && req.headers.count("Content-Length") == 1;
                if exact {
                    assert!(r.is_err(), "{name} cut at {cut} parsed");
                }
            }
        }
    }
}
