//! The dialog (RFC 3261 §12): the state two user agents share for the life
//! of a call — Call-ID, tags, CSeq counters, the remote target and the route
//! set — and the requests built within it (BYE, re-INVITE, INFO, and the
//! ACK for a 2xx). `Dialog::uas` builds our side when we answered an INVITE
//! (§12.1.1), `Dialog::uac` when an INVITE we sent got a 2xx (§12.1.2: one
//! dialog per 2xx, so a forked INVITE answered twice gives two).
//!
//! In-dialog requests are sent to the address the dialog's requests arrived
//! from (the peer), not resolved from the remote Contact: a trunk or a
//! softphone behind NAT is reached where it really is (the same rule as
//! symmetric response routing, RFC 3581), and no DNS is needed on the call
//! path.

use super::headers::{ContactValue, NameAddr};
use super::message::{Headers, Method, Request, Response};
use super::transport::Peer;
use bytes::Bytes;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DialogError {
    #[error("missing or malformed {0} header")]
    BadHeader(&'static str),
}

/// Our side of a dialog: created by an incoming INVITE (we are the UAS,
/// `Dialog::uas`) or by a 2xx to our INVITE (we are the UAC, `Dialog::uac`).
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our URI as it appears in From of requests we send (the INVITE's To).
    pub local_uri: String,
    /// The remote URI (the INVITE's From, without its tag).
    pub remote_uri: String,
    /// The remote target: the URI of the INVITE's Contact.
    pub remote_target: String,
    /// Record-Route of the INVITE, in order (§12.1.1: the UAS keeps it as is).
    pub route_set: Vec<String>,
    pub local_seq: u32,
    /// Highest CSeq seen from the remote side.
    pub remote_seq: u32,
    pub peer: Peer,
}

impl Dialog {
    /// Builds the UAS dialog for `invite`, received from `peer`, answered
    /// with `local_tag` (RFC 3261 §12.1.1).
    pub fn uas(invite: &Request, local_tag: &str, peer: Peer) -> Result<Dialog, DialogError> {
        let call_id = invite
            .call_id()
            .map_err(|_| DialogError::BadHeader("Call-ID"))?
            .to_string();
        let from = invite.from().map_err(|_| DialogError::BadHeader("From"))?;
        let to = invite.to().map_err(|_| DialogError::BadHeader("To"))?;
        let cseq = invite.cseq().map_err(|_| DialogError::BadHeader("CSeq"))?;
        let remote_target = match invite.contact() {
            Ok(Some(ContactValue::Addrs(addrs))) if !addrs.is_empty() => addrs[0].uri.to_string(),
            _ => from.uri.to_string(),
        };
        let route_set = invite
            .headers
            .get_all("Record-Route")
            .flat_map(split_header_list)
            .collect();
        Ok(Dialog {
            call_id,
            local_tag: local_tag.to_string(),
            remote_tag: from.tag().map(str::to_string),
            local_uri: without_tag(&to),
            remote_uri: without_tag(&from),
            remote_target,
            route_set,
            local_seq: rand::random::<u16>() as u32 + 1,
            remote_seq: cseq.seq,
            peer,
        })
    }

    /// Builds the UAC dialog for `invite` (as we sent it) from its 2xx
    /// `response`, sent to `peer` (RFC 3261 §12.1.2): "The route set MUST be
    /// set to the list of URIs in the Record-Route header field from the
    /// response, taken in reverse order"; "The remote target MUST be set to
    /// the URI from the Contact header field of the response"; the remote
    /// tag is the To tag of the response, the local tag the From tag of the
    /// request; the local sequence number is the INVITE's CSeq and the
    /// remote one is empty until the peer sends a request.
    pub fn uac(invite: &Request, response: &Response, peer: Peer) -> Result<Dialog, DialogError> {
        let call_id = invite
            .call_id()
            .map_err(|_| DialogError::BadHeader("Call-ID"))?
            .to_string();
        let from = invite.from().map_err(|_| DialogError::BadHeader("From"))?;
        let local_tag = from
            .tag()
            .ok_or(DialogError::BadHeader("From"))?
            .to_string();
        let cseq = invite.cseq().map_err(|_| DialogError::BadHeader("CSeq"))?;
        let to = response.to().map_err(|_| DialogError::BadHeader("To"))?;
        let remote_tag = to.tag().map(str::to_string);
        let remote_target = match response.contact() {
            Ok(Some(ContactValue::Addrs(addrs))) if !addrs.is_empty() => addrs[0].uri.to_string(),
            // §12.1.2 requires a Contact in the 2xx; without one, the
            // Request-URI we reached it by is the best target there is.
            _ => invite.uri.clone(),
        };
        let mut route_set: Vec<String> = response
            .headers
            .get_all("Record-Route")
            .flat_map(split_header_list)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id,
            local_tag,
            remote_tag,
            local_uri: without_tag(&from),
            remote_uri: without_tag(&to),
            remote_target,
            route_set,
            local_seq: cseq.seq,
            remote_seq: 0,
            peer,
        })
    }

    /// The ACK for the 2xx to `invite` (RFC 3261 §13.2.2.4): "The header
    /// fields of the ACK are constructed in the same way as for any request
    /// sent within a dialog ... with the exception of the CSeq and the header
    /// fields related to authentication. The sequence number of the CSeq
    /// header field MUST be the same as the INVITE being acknowledged, but
    /// the CSeq method MUST be ACK." Credentials the INVITE carried are
    /// copied. The endpoint adds a Via with a new branch (`SipHandle::ack`);
    /// the same ACK answers every retransmission of the 2xx.
    pub fn ack(&self, invite: &Request, user_agent: &str) -> Request {
        let seq = invite.cseq().map(|c| c.seq).unwrap_or(self.local_seq);
        let mut ack = self.request_with_seq(Method::Ack, seq, user_agent);
        for name in ["Authorization", "Proxy-Authorization"] {
            for v in invite.headers.get_all(name) {
                ack.headers.push(name, v.to_string());
            }
        }
        ack
    }

    /// Checks the CSeq of an in-dialog request (§12.2.2): lower than the last
    /// one seen → the request is out of order and gets 500.
    pub fn accept_remote_cseq(&mut self, seq: u32, method: &Method) -> bool {
        if *method == Method::Ack || *method == Method::Cancel {
            return true;
        }
        if seq < self.remote_seq {
            return false;
        }
        self.remote_seq = seq;
        true
    }

    /// A new request within the dialog (§12.2.1.1). The endpoint adds the Via.
    pub fn request(&mut self, method: Method, user_agent: &str) -> Request {
        self.local_seq += 1;
        self.request_with_seq(method, self.local_seq, user_agent)
    }

    fn request_with_seq(&self, method: Method, seq: u32, user_agent: &str) -> Request {
        let mut headers = Headers::new();
        for route in &self.route_set {
            headers.push("Route", route.clone());
        }
        headers.push("Max-Forwards", "70");
        headers.push("From", format!("{};tag={}", self.local_uri, self.local_tag));
        headers.push(
            "To",
            match &self.remote_tag {
                Some(tag) => format!("{};tag={}", self.remote_uri, tag),
                None => self.remote_uri.clone(),
            },
        );
        headers.push("Call-ID", self.call_id.clone());
        headers.push("CSeq", format!("{seq} {}", method.as_str()));
        headers.push("User-Agent", user_agent.to_string());
        Request {
            method,
            uri: self.remote_target.clone(),
            headers,
            body: Bytes::new(),
        }
    }
}

/// `name-addr` printed without its `tag` parameter.
fn without_tag(na: &NameAddr) -> String {
    let mut na = na.clone();
    na.params.retain(|(k, _)| !k.eq_ignore_ascii_case("tag"));
    na.to_string()
}

/// Splits a comma-separated header list, respecting `<…>` and quotes.
fn split_header_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth_angle = false;
    let mut quoted = false;
    let mut start = 0;
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth_angle = true,
            b'>' if !quoted => depth_angle = false,
            b',' if !quoted && !depth_angle => {
                out.push(value[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = value[start..].trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::parse::parse_message;
    use crate::sip::transport::TransportKind;
    use crate::sip::SipMessage;

    const INVITE: &str = "INVITE sip:12333@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
From: \"Citizen\" <sip:13800138000@127.0.0.1:5061>;tag=abc\r\n\
To: <sip:12333@127.0.0.1:5060>\r\n\
Call-ID: call-1@127.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:13800138000@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> Request {
        match parse_message(INVITE.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn bye_follows_the_dialog() {
        let peer = Peer {
            kind: TransportKind::Udp,
            addr: "127.0.0.1:5061".parse().unwrap(),
        };
        let mut d = Dialog::uas(&invite(), "local1", peer).unwrap();
        assert_eq!(d.remote_seq, 7);
        assert_eq!(d.route_set.len(), 2);
        let first = d.local_seq;
        let bye = d.request(Method::Bye, "hotline");
        assert_eq!(bye.uri, "sip:13800138000@127.0.0.1:5061");
        assert_eq!(
            bye.headers.get("From").unwrap(),
            "<sip:12333@127.0.0.1:5060>;tag=local1"
        );
        assert!(bye.headers.get("To").unwrap().ends_with(";tag=abc"));
        assert_eq!(
            bye.headers.get("CSeq").unwrap(),
            format!("{} BYE", first + 1)
        );
        let routes: Vec<_> = bye.headers.get_all("Route").collect();
        assert_eq!(
            routes,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let peer = Peer {
            kind: TransportKind::Udp,
            addr: "127.0.0.1:5061".parse().unwrap(),
        };
        let mut d = Dialog::uas(&invite(), "t", peer).unwrap();
        assert!(d.accept_remote_cseq(8, &Method::Bye));
        assert!(!d.accept_remote_cseq(6, &Method::Info));
        assert!(d.accept_remote_cseq(7, &Method::Ack));
    }

    #[test]
    fn uac_dialog_from_a_2xx() {
        let invite = match parse_message(
            b"INVITE sip:1001@10.0.0.5:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\n\
From: <sip:12345@192.0.2.1:5060>;tag=ours\r\n\
To: <sip:1001@192.0.2.1:5060>\r\n\
Call-ID: acd-1@hotline\r\n\
CSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\n\
Authorization: Digest username=\"x\"\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap()
        {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        };
        let ok = match parse_message(
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
From: <sip:12345@192.0.2.1:5060>;tag=ours\r\n\
To: <sip:1001@192.0.2.1:5060>;tag=theirs\r\n\
Call-ID: acd-1@hotline\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@10.0.0.5:5062;ob>\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap()
        {
            SipMessage::Response(r) => r,
            _ => unreachable!(),
        };
        let peer = Peer {
            kind: TransportKind::Udp,
            addr: "203.0.113.9:40000".parse().unwrap(),
        };
        let mut d = Dialog::uac(&invite, &ok, peer).unwrap();
        assert_eq!(d.local_tag, "ours");
        assert_eq!(d.remote_tag.as_deref(), Some("theirs"));
        assert_eq!(d.remote_target, "sip:1001@10.0.0.5:5062;ob");
        // §12.1.2: Record-Route reversed.
        assert_eq!(
            d.route_set,
            vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        let ack = d.ack(&invite, "hotline");
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
        assert_eq!(ack.uri, "sip:1001@10.0.0.5:5062;ob");
        assert!(ack.headers.get("To").unwrap().ends_with(";tag=theirs"));
        assert_eq!(
            ack.headers.get("From"),
            Some("<sip:12345@192.0.2.1:5060>;tag=ours")
        );
        assert!(ack.headers.get("Authorization").is_some());
        let bye = d.request(Method::Bye, "hotline");
        assert_eq!(bye.headers.get("CSeq"), Some("2 BYE"));
        assert_eq!(
            bye.headers.get_all("Route").next(),
            Some("<sip:p2.example.com;lr>")
        );
        // The agent's first request may carry any CSeq.
        assert!(d.accept_remote_cseq(1, &Method::Bye));
    }
}
