//! Requests the daemon originates as a UAC, built without I/O: the INVITE
//! that rings an agent's registered contact, the INVITE that calls a
//! citizen through the outbound trunk (callbacks), the OPTIONS keep-alive to a
//! binding, and — from the INVITE exactly as it was sent (top Via included)
//! — its CANCEL (RFC 3261 §9.1) and the ACK for a non-2xx final response
//! (§17.1.1.3). The endpoint adds the Via of new requests and runs their
//! client transactions; the ACK for a 2xx is the dialog's (`Dialog::ack`).
//!
//! Where a binding is reached: the request goes to the binding's `source`,
//! the address and transport its REGISTER really came from (the NAT
//! binding it opened), while the Request-URI is the registered contact URI
//! (§10.2.1 / RFC 5626 §5: the contact is the target, the flow is the path).

use super::message::{Headers, Method, Request, Response};
use super::registrar::Binding;
use super::transport::Peer;
use super::uri::Uri;
use bytes::Bytes;

/// Max-Forwards of every request we originate (RFC 3261 §8.1.1.6).
pub const MAX_FORWARDS: &str = "70";

/// The host (and port) of a `<sip:…>` contact of ours, for From/To URIs.
fn host_of(contact: &str) -> String {
    let inner = contact
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("");
    match Uri::parse(inner) {
        Ok(u) => match u.port {
            Some(p) => format!("{}:{p}", u.host),
            None => u.host,
        },
        Err(_) => "invalid".into(),
    }
}

/// Quotes a display name (RFC 3261 §25.1 `quoted-string`).
fn quoted(display: &str) -> String {
    let mut s = String::with_capacity(display.len() + 2);
    s.push('"');
    for c in display.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The headers of a request outside any dialog (§8.1.1): Max-Forwards,
/// From, To (no tag), Call-ID, CSeq 1, Contact.
fn first_headers(
    to: String,
    from: String,
    call_id: &str,
    method: Method,
    contact: &str,
) -> Headers {
    let mut headers = Headers::new();
    headers.push("Max-Forwards", MAX_FORWARDS);
    headers.push("From", from);
    headers.push("To", to);
    headers.push("Call-ID", call_id);
    headers.push("CSeq", format!("1 {}", method.as_str()));
    headers.push("Contact", contact);
    headers
}

/// Our From: `number` at `host` with `tag`, after a quoted display name.
fn from_value(number: &str, display: Option<&str>, host: &str, tag: &str) -> String {
    match display {
        Some(d) if !d.is_empty() => format!("{} <sip:{number}@{host}>;tag={tag}", quoted(d)),
        _ => format!("<sip:{number}@{host}>;tag={tag}"),
    }
}

/// An INVITE to `uri` with `headers` (from [`first_headers`]), Allow, and
/// the SDP offer if any.
fn invite(uri: String, mut headers: Headers, sdp: &str) -> Request {
    headers.push("Allow", super::endpoint::ALLOW);
    let body = if sdp.is_empty() {
        Bytes::new()
    } else {
        headers.push("Content-Type", "application/sdp");
        Bytes::copy_from_slice(sdp.as_bytes())
    };
    Request {
        method: Method::Invite,
        uri,
        headers,
        body,
    }
}

/// The INVITE that rings one contact of an agent (a UAC leg of the ACD):
/// Request-URI the binding's contact URI, To `<sip:AOR@host>` (no tag),
/// From our number with `local_tag`, CSeq 1 INVITE, Max-Forwards, our
/// `contact` (a `<sip:…>` value, e.g. `LocalAddrs::contact`), and the SDP
/// offer. The host of To and From is the one in `contact` (the address the
/// agent's softphone registered with). Returns the request and where to
/// send it: the binding's `source`. The endpoint adds the Via.
pub fn invite_to_binding(
    binding: &Binding,
    from_number: &str,
    from_display: Option<&str>,
    call_id: &str,
    local_tag: &str,
    contact: &str,
    sdp: &str,
) -> (Request, Peer) {
    let host = host_of(contact);
    let from = from_value(from_number, from_display, &host, local_tag);
    let to = format!("<sip:{}@{host}>", binding.aor);
    let headers = first_headers(to, from, call_id, Method::Invite, contact);
    (
        invite(binding.contact_uri.clone(), headers, sdp),
        binding.source,
    )
}

/// The INVITE that calls a citizen through the outbound trunk (a
/// callback): Request-URI and To `sip:NUMBER@trunk` (the trunk's address;
/// `number` already carries any dialing prefix), From the hotline's
/// `from_number` with `local_tag`, CSeq 1 INVITE, our `contact`, the SDP
/// offer. Sent to the trunk over its transport (RFC 3261 §8.1.2: the
/// request goes to the configured outbound proxy). Returns the request
/// and where to send it.
pub fn invite_to_trunk(
    trunk: Peer,
    number: &str,
    from_number: &str,
    call_id: &str,
    local_tag: &str,
    contact: &str,
    sdp: &str,
) -> (Request, Peer) {
    let host = match trunk.addr {
        std::net::SocketAddr::V4(a) => a.ip().to_string(),
        std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let mut uri = format!("sip:{number}@{host}:{}", trunk.addr.port());
    if trunk.kind == super::transport::TransportKind::Tcp {
        uri.push_str(";transport=tcp");
    }
    let from = from_value(from_number, None, &host_of(contact), local_tag);
    let to = format!("<sip:{number}@{host}>");
    let headers = first_headers(to, from, call_id, Method::Invite, contact);
    (invite(uri, headers, sdp), trunk)
}

/// The OPTIONS keep-alive for one binding (RFC 3261 §11): outside any
/// dialog, a fresh Call-ID and From tag, `Max-Forwards`, our `contact`.
/// Any response proves the contact is there (even a 4xx/5xx).
pub fn options_to_binding(
    binding: &Binding,
    call_id: &str,
    local_tag: &str,
    contact: &str,
) -> (Request, Peer) {
    let host = host_of(contact);
    let from = format!("<sip:hotline@{host}>;tag={local_tag}");
    let to = format!("<sip:{}@{host}>", binding.aor);
    let mut headers = first_headers(to, from, call_id, Method::Options, contact);
    headers.push("Accept", "application/sdp");
    (
        Request {
            method: Method::Options,
            uri: binding.contact_uri.clone(),
            headers,
            body: Bytes::new(),
        },
        binding.source,
    )
}

/// A request of `invite`'s own transaction (its CANCEL, its non-2xx ACK):
/// the INVITE's Request-URI, its one top Via (same branch), Route, From,
/// Call-ID and CSeq number, with `method`, and the To given (or the
/// INVITE's). No body.
fn same_transaction(invite: &Request, method: Method, to: Option<&str>) -> Request {
    let mut headers = Headers::new();
    if let Some(via) = invite.headers.get("Via") {
        headers.push("Via", via.to_string());
    }
    for route in invite.headers.get_all("Route") {
        headers.push("Route", route.to_string());
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            headers.push(name, v.to_string());
        }
    }
    let to = to.or_else(|| invite.headers.get("To")).unwrap_or("");
    headers.push("To", to.to_string());
    headers.push("Max-Forwards", MAX_FORWARDS);
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    headers.push("CSeq", format!("{seq} {}", method.as_str()));
    Request {
        method,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

/// RFC 3261 §9.1: "The Request-URI, Call-ID, To, the numeric part of CSeq,
/// and From header fields in the CANCEL request MUST be identical to those
/// in the request being cancelled, including tags. A CANCEL constructed by
/// a client MUST have only a single Via header field value matching the top
/// Via value in the request being cancelled." Route headers are copied too
/// (same section). `invite` is the INVITE as sent, with its Via.
pub fn cancel_for(invite: &Request) -> Request {
    same_transaction(invite, Method::Cancel, None)
}

/// RFC 3261 §17.1.1.3: the ACK for a 300-699 to `invite` (as sent): same
/// Request-URI, Call-ID, From and CSeq number, CSeq method ACK, the To of
/// the *response* (with the UAS tag), one Via equal to the INVITE's top
/// Via (the same branch), the INVITE's Route headers, no body.
pub fn ack_for_non2xx(invite: &Request, response: &Response) -> Request {
    same_transaction(invite, Method::Ack, response.headers.get("To"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::TransportKind;
    use chrono::Utc;

    fn binding() -> Binding {
        Binding {
            aor: "1001".into(),
            contact_uri: "sip:1001@10.0.0.5:5062;transport=udp".into(),
            raw_contact: "<sip:1001@10.0.0.5:5062;transport=udp>".into(),
            source: Peer {
                kind: TransportKind::Udp,
                addr: "203.0.113.9:40000".parse().unwrap(),
            },
            expires_at: Utc::now() + chrono::Duration::seconds(3600),
            call_id: "reg-1".into(),
            cseq: 1,
            q: None,
            instance: None,
            reg_id: None,
            reachable: true,
        }
    }

    #[test]
    fn invite_goes_to_the_source_with_the_contact_as_target() {
        let b = binding();
        let (req, peer) = invite_to_binding(
            &b,
            "13800138000",
            Some("Citizen \"A\""),
            "c1@hotline",
            "t1",
            "<sip:acd@192.0.2.1:5060>",
            "v=0\r\n",
        );
        assert_eq!(peer, b.source);
        assert_eq!(req.uri, b.contact_uri);
        assert_eq!(req.headers.get("To"), Some("<sip:1001@192.0.2.1:5060>"));
        assert_eq!(
            req.headers.get("From"),
            Some("\"Citizen \\\"A\\\"\" <sip:13800138000@192.0.2.1:5060>;tag=t1")
        );
        assert_eq!(req.headers.get("CSeq"), Some("1 INVITE"));
        assert_eq!(req.headers.get("Content-Type"), Some("application/sdp"));
        assert_eq!(req.headers.get("Max-Forwards"), Some("70"));
        // It parses back as a request the validator accepts once a Via is on.
        let mut with_via = req.clone();
        with_via.headers.0.insert(
            0,
            crate::sip::message::Header {
                name: "Via".into(),
                value: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport".into(),
            },
        );
        let parsed = crate::sip::parse::parse_message(&with_via.to_bytes()).unwrap();
        let crate::sip::SipMessage::Request(p) = parsed else {
            panic!("not a request")
        };
        assert!(crate::sip::validate::check_request(&p).is_ok());
    }

    #[test]
    fn a_trunk_invite_names_the_number_at_the_trunk() {
        use crate::sip::transport::TransportKind;
        let trunk = Peer {
            kind: TransportKind::Tcp,
            addr: "198.51.100.20:5070".parse().unwrap(),
        };
        let (req, peer) = invite_to_trunk(
            trunk,
            "013800138000",
            "12345",
            "cb1@hotline",
            "t2",
            "<sip:12345@192.0.2.1:5060;transport=tcp>",
            "v=0\r\n",
        );
        assert_eq!(peer, trunk);
        assert_eq!(req.uri, "sip:013800138000@198.51.100.20:5070;transport=tcp");
        assert_eq!(
            req.headers.get("To"),
            Some("<sip:013800138000@198.51.100.20>")
        );
        assert_eq!(
            req.headers.get("From"),
            Some("<sip:12345@192.0.2.1:5060>;tag=t2")
        );
        assert_eq!(req.headers.get("Call-ID"), Some("cb1@hotline"));
    }

    fn sent_invite() -> Request {
        let (mut req, _) = invite_to_binding(
            &binding(),
            "12345",
            None,
            "c2@hotline",
            "ft",
            "<sip:acd@192.0.2.1:5060>",
            "",
        );
        req.headers.0.insert(
            0,
            crate::sip::message::Header {
                name: "Via".into(),
                value: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv;rport".into(),
            },
        );
        req.headers.push("Route", "<sip:p1;lr>");
        req
    }

    #[test]
    fn cancel_copies_what_9_1_says() {
        let inv = sent_invite();
        let c = cancel_for(&inv);
        assert_eq!(c.method, Method::Cancel);
        assert_eq!(c.uri, inv.uri);
        for h in ["Via", "From", "To", "Call-ID", "Route"] {
            assert_eq!(c.headers.get(h), inv.headers.get(h), "{h}");
        }
        assert_eq!(c.headers.count("Via"), 1);
        assert_eq!(c.headers.get("CSeq"), Some("1 CANCEL"));
        assert!(c.body.is_empty());
    }

    #[test]
    fn ack_for_a_rejection_takes_the_responses_to() {
        let inv = sent_invite();
        let mut resp = crate::sip::message::response_to(&inv, 486, "Busy Here");
        resp.set_to_tag("uas");
        let ack = ack_for_non2xx(&inv, &resp);
        assert_eq!(ack.headers.get("To"), resp.headers.get("To"));
        assert!(ack.headers.get("To").unwrap().ends_with(";tag=uas"));
        assert_eq!(ack.headers.get("Via"), inv.headers.get("Via"));
        assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
        assert_eq!(ack.headers.get("Route"), Some("<sip:p1;lr>"));
    }
}
