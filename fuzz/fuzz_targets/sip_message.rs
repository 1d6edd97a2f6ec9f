//! A received SIP message, through what the endpoint runs on every UDP
//! datagram and every TCP-framed message: `endpoint::screen` (parse, the
//! error response for what cannot be parsed, Via stamping, RFC 3261 §8.2
//! validation and its error response, transaction keys), and the TCP
//! framer (`parse::frame_stream`) on the same bytes.
//!
//! Properties beyond "never panics":
//! - every response the endpoint would send back parses as a response with
//!   the same status (we never emit what we could not read ourselves);
//! - a message that parses, serialized again, parses to the same message
//!   (Content-Length aside: `to_bytes` writes the body's real length);
//! - the framer never frames more bytes than it was given.
#![no_main]

use hotline::sip::endpoint::{screen, Screened};
use hotline::sip::parse::{frame_stream, parse_message, Frame, MAX_MESSAGE_LEN};
use hotline::sip::{Headers, Response, SipMessage};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    // Alternate the source family so Via stamping sees both (deterministic
    // in the input, so a crasher replays the same way).
    let source: SocketAddr = if data.len() % 2 == 0 {
        "192.0.2.7:5062".parse().unwrap()
    } else {
        "[2001:db8::7]:5062".parse().unwrap()
    };
    check_screen(data, source);

    match frame_stream(data) {
        Ok(Frame::Message(n)) => {
            assert!(
                n > 0 && n <= data.len(),
                "framed {n} of {} bytes",
                data.len()
            );
            check_screen(&data[..n], source);
        }
        Ok(Frame::KeepAlive(n)) => assert!(n > 0 && n <= data.len()),
        Ok(Frame::Incomplete) | Err(_) => {}
    }

    round_trip(data);
});

fn check_screen(bytes: &[u8], source: SocketAddr) {
    match screen(bytes, source) {
        Screened::Unparsable { response, .. } => {
            if let Some(r) = response {
                reparses(&r);
            }
        }
        Screened::Rejected { response, .. } => {
            if let Some(r) = response {
                reparses(&r);
            }
        }
        Screened::Request { .. } | Screened::Response { .. } => {}
    }
}

/// A response we would send must parse back as that response.
fn reparses(r: &Response) {
    let bytes = r.to_bytes();
    match parse_message(&bytes) {
        Ok(SipMessage::Response(back)) => assert_eq!(back.status, r.status),
        other => panic!(
            "our own {} response does not parse: {other:?}\n{}",
            r.status,
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// parse → to_bytes → parse gives the same message.
fn round_trip(data: &[u8]) {
    let Ok(first) = parse_message(data) else {
        return;
    };
    let bytes = first.to_bytes();
    if bytes.len() > MAX_MESSAGE_LEN {
        return;
    }
    let second = parse_message(&bytes).unwrap_or_else(|e| {
        panic!(
            "a parsed message, serialized, does not parse: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(
        normalized(first),
        normalized(second),
        "round trip changed the message"
    );
}

/// The message without its Content-Length headers (serialization writes the
/// body's real length) and with header values as serialization writes them
/// (a bare CR inside a value becomes a space).
fn normalized(m: SipMessage) -> SipMessage {
    fn fix(h: &mut Headers) {
        h.remove("Content-Length");
        for h in &mut h.0 {
            h.value = h
                .value
                .replace('\r', " ")
                .trim_matches([' ', '\t'])
                .to_string();
        }
    }
    match m {
        SipMessage::Request(mut r) => {
            fix(&mut r.headers);
            SipMessage::Request(r)
        }
        SipMessage::Response(mut r) => {
            fix(&mut r.headers);
            SipMessage::Response(r)
        }
    }
}
