//! The daemon's leg towards an agent (a UAC INVITE dialog, RFC 3261 §13.2),
//! as a sans-IO state machine. One `AgentLeg` per offer: the agent's
//! registered contacts are rung in parallel (one INVITE client transaction
//! each, same Call-ID and From tag, like a forking proxy, RFC 3261 §16.7);
//! the first 2xx wins, the other forks are CANCELled (§9.1), and a late 2xx
//! from another fork is ACKed and then ended with BYE (§13.2.2.4, "the UAC
//! core MUST … ACK … and then BYE").
//!
//! ```text
//!   Ringing ──2xx──▶ Answered (dialog, SDP answer) ──BYE either side──▶ Ended
//!      │ all forks final (486/603/408/480/487/…) or timed out
//!      ▼
//!   Failed(OfferResult)
//! ```
//!
//! The call task sends what [`LegOutput`] says and feeds responses back.
//! How an offer ended maps to the ACD's [`OfferResult`]: any 486/600 →
//! busy; a 603 → declined; 408/480/487 or a transaction timeout → no
//! answer; anything else (5xx, 404…) → failed.

use crate::acd::{AgentId, OfferResult};
use crate::sip::dialog::Dialog;
use crate::sip::message::{Method, Request, Response};
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;

/// What the call task must do for the leg.
#[derive(Debug)]
pub enum LegOutput {
    /// ACK a 2xx (outside any transaction).
    Ack { request: Request, peer: Peer },
    /// CANCEL this fork's INVITE.
    Cancel { key: TransactionKey },
    /// End a dialog (a late 2xx from a losing fork).
    Bye { request: Request, peer: Peer },
    /// The agent answered; here is its SDP answer.
    Answered { sdp: bytes::Bytes },
    /// Every fork failed.
    Failed(OfferResult),
}

#[derive(Debug)]
struct Fork {
    key: TransactionKey,
    invite: Request,
    peer: Peer,
    /// Final status, once one arrived (or 408 on timeout).
    final_status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    Ringing,
    Answered,
    /// Failed, cancelled or hung up.
    Ended,
}

/// One offer to one agent.
#[derive(Debug)]
pub struct AgentLeg {
    pub agent: AgentId,
    /// Our Call-ID towards the agent.
    pub call_id: String,
    pub local_tag: String,
    forks: Vec<Fork>,
    state: LegState,
    /// The winning fork's dialog, once answered.
    pub dialog: Option<Dialog>,
    /// The fork that answered first.
    won: Option<usize>,
    cancelled: bool,
    user_agent: String,
}

impl AgentLeg {
    pub fn new(agent: AgentId, call_id: String, local_tag: String, user_agent: &str) -> AgentLeg {
        AgentLeg {
            agent,
            call_id,
            local_tag,
            forks: Vec::new(),
            state: LegState::Ringing,
            dialog: None,
            won: None,
            cancelled: false,
            user_agent: user_agent.to_string(),
        }
    }

    /// An INVITE sent to one contact.
    pub fn add_fork(&mut self, key: TransactionKey, invite: Request, peer: Peer) {
        self.forks.push(Fork {
            key,
            invite,
            peer,
            final_status: None,
        });
    }

    pub fn state(&self) -> LegState {
        self.state
    }

    pub fn forks(&self) -> usize {
        self.forks.len()
    }

    /// Every fork has its final response: nothing more will come.
    pub fn all_final(&self) -> bool {
        self.forks.iter().all(|f| f.final_status.is_some())
    }

    fn fork_of(&self, key: &TransactionKey) -> Option<usize> {
        self.forks.iter().position(|f| &f.key == key)
    }

    /// A response to one of our INVITEs (or to a later in-dialog request,
    /// which is ignored here).
    pub fn on_response(&mut self, key: &TransactionKey, response: &Response) -> Vec<LegOutput> {
        let mut out = Vec::new();
        let Some(i) = self.fork_of(key) else {
            return out;
        };
        let status = response.status;
        if status < 200 {
            return out;
        }
        if status < 300 {
            return self.on_2xx(i, response);
        }
        self.forks[i].final_status.get_or_insert(status);
        self.check_all_failed(&mut out);
        out
    }

    fn on_2xx(&mut self, i: usize, response: &Response) -> Vec<LegOutput> {
        let mut out = Vec::new();
        self.forks[i].final_status = Some(response.status);
        let fork_peer = self.forks[i].peer;
        let Ok(dialog) = Dialog::uac(&self.forks[i].invite, response, fork_peer) else {
            return out;
        };
        let ack = dialog.ack(&self.forks[i].invite, &self.user_agent);
        out.push(LegOutput::Ack {
            request: ack,
            peer: fork_peer,
        });
        let same_dialog = self
            .dialog
            .as_ref()
            .is_some_and(|d| d.remote_tag == dialog.remote_tag && self.won == Some(i));
        if same_dialog {
            // A retransmitted 2xx: the ACK above is all it needs.
            return out;
        }
        if self.won.is_some() || self.cancelled || self.state != LegState::Ringing {
            // A second answer (another fork, or after we gave up): end it.
            let mut d = dialog;
            out.push(LegOutput::Bye {
                request: d.request(Method::Bye, &self.user_agent),
                peer: fork_peer,
            });
            return out;
        }
        self.won = Some(i);
        self.state = LegState::Answered;
        self.dialog = Some(dialog);
        for (j, f) in self.forks.iter().enumerate() {
            if j != i && f.final_status.is_none() {
                out.push(LegOutput::Cancel { key: f.key.clone() });
            }
        }
        out.push(LegOutput::Answered {
            sdp: response.body.clone(),
        });
        out
    }

    /// A fork's transaction timed out (no final response).
    pub fn on_timeout(&mut self, key: &TransactionKey) -> Vec<LegOutput> {
        let mut out = Vec::new();
        if let Some(i) = self.fork_of(key) {
            self.forks[i].final_status.get_or_insert(408);
            self.check_all_failed(&mut out);
        }
        out
    }

    fn check_all_failed(&mut self, out: &mut Vec<LegOutput>) {
        if self.state != LegState::Ringing || self.forks.iter().any(|f| f.final_status.is_none()) {
            return;
        }
        self.state = LegState::Ended;
        if self.cancelled {
            return;
        }
        let statuses: Vec<u16> = self.forks.iter().filter_map(|f| f.final_status).collect();
        out.push(LegOutput::Failed(result_of(&statuses)));
    }

    /// Stop ringing (the ACD withdrew the offer, or the caller left):
    /// CANCEL every fork still ringing (the endpoint holds a CANCEL back
    /// until the fork's first provisional response, §9.1). No result follows.
    pub fn cancel(&mut self) -> Vec<LegOutput> {
        self.cancelled = true;
        if self.state == LegState::Ringing {
            self.state = LegState::Ended;
        }
        self.forks
            .iter()
            .filter(|f| f.final_status.is_none())
            .map(|f| LegOutput::Cancel { key: f.key.clone() })
            .collect()
    }

    /// We end the answered leg: the BYE to send.
    pub fn hangup(&mut self) -> Option<LegOutput> {
        if self.state != LegState::Answered {
            return None;
        }
        self.state = LegState::Ended;
        let d = self.dialog.as_mut()?;
        let peer = d.peer;
        Some(LegOutput::Bye {
            request: d.request(Method::Bye, &self.user_agent),
            peer,
        })
    }

    /// The agent ended the answered leg (its BYE).
    pub fn remote_hangup(&mut self) {
        self.state = LegState::Ended;
    }
}

/// The ACD's reading of the forks' final statuses.
pub fn result_of(statuses: &[u16]) -> OfferResult {
    if statuses.iter().any(|&s| s == 486 || s == 600) {
        OfferResult::Busy
    } else if statuses.contains(&603) {
        OfferResult::Declined
    } else if statuses.iter().any(|&s| matches!(s, 408 | 480 | 487)) {
        OfferResult::NoAnswer
    } else {
        OfferResult::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;
    use crate::sip::parse::parse_message;
    use crate::sip::transport::TransportKind;

    fn peer(port: u16) -> Peer {
        Peer {
            kind: TransportKind::Udp,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        }
    }

    fn invite(branch: &str) -> Request {
        let text = format!(
            "INVITE sip:1001@127.0.0.1:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:12345@127.0.0.1>;tag=ours\r\n\
             To: <sip:1001@127.0.0.1>\r\n\
             Call-ID: leg-1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:hotline@127.0.0.1:5060>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match parse_message(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn response(branch: &str, status: u16, to_tag: &str) -> Response {
        let text = format!(
            "SIP/2.0 {status} X\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
             From: <sip:12345@127.0.0.1>;tag=ours\r\n\
             To: <sip:1001@127.0.0.1>;tag={to_tag}\r\n\
             Call-ID: leg-1\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:1001@127.0.0.1:5062>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: 4\r\n\r\nv=0\n"
        );
        match parse_message(text.as_bytes()).unwrap() {
            SipMessage::Response(r) => r,
            _ => unreachable!(),
        }
    }

    fn key(branch: &str) -> TransactionKey {
        TransactionKey::new(branch, "127.0.0.1:5060", &Method::Invite).unwrap()
    }

    fn leg(forks: &[&str]) -> AgentLeg {
        let mut l = AgentLeg::new(AgentId("1001".into()), "leg-1".into(), "ours".into(), "t");
        for (i, b) in forks.iter().enumerate() {
            l.add_fork(key(b), invite(b), peer(5062 + i as u16));
        }
        l
    }

    fn kinds(out: &[LegOutput]) -> Vec<&'static str> {
        out.iter()
            .map(|o| match o {
                LegOutput::Ack { .. } => "ack",
                LegOutput::Cancel { .. } => "cancel",
                LegOutput::Bye { .. } => "bye",
                LegOutput::Answered { .. } => "answered",
                LegOutput::Failed(_) => "failed",
            })
            .collect()
    }

    #[test]
    fn first_answer_wins_and_the_other_fork_is_cancelled() {
        let (a, b) = ("z9hG4bKa", "z9hG4bKb");
        let mut l = leg(&[a, b]);
        assert!(l.on_response(&key(a), &response(a, 180, "x")).is_empty());
        assert!(l.on_response(&key(b), &response(b, 180, "y")).is_empty());
        let out = l.on_response(&key(a), &response(a, 200, "x"));
        assert_eq!(kinds(&out), ["ack", "cancel", "answered"]);
        assert_eq!(l.state(), LegState::Answered);
        // The 2xx again: ACK again, nothing else.
        assert_eq!(
            kinds(&l.on_response(&key(a), &response(a, 200, "x"))),
            ["ack"]
        );
        // The cancelled fork answers anyway: ACK and BYE it.
        assert_eq!(
            kinds(&l.on_response(&key(b), &response(b, 200, "y"))),
            ["ack", "bye"]
        );
        // Its 487 (had the CANCEL won) would change nothing.
        assert!(l.on_response(&key(b), &response(b, 487, "y")).is_empty());
        let bye = l.hangup().unwrap();
        assert_eq!(kinds(&[bye]), ["bye"]);
        assert_eq!(l.state(), LegState::Ended);
    }

    #[test]
    fn all_forks_failing_gives_one_result() {
        let (a, b) = ("z9hG4bKa", "z9hG4bKb");
        let mut l = leg(&[a, b]);
        assert!(l.on_response(&key(a), &response(a, 480, "x")).is_empty());
        let out = l.on_response(&key(b), &response(b, 486, "y"));
        assert!(matches!(out[..], [LegOutput::Failed(OfferResult::Busy)]));
        let mut l = leg(&[a]);
        let out = l.on_timeout(&key(a));
        assert!(matches!(
            out[..],
            [LegOutput::Failed(OfferResult::NoAnswer)]
        ));
        let mut l = leg(&[a]);
        let out = l.on_response(&key(a), &response(a, 603, "x"));
        assert!(matches!(
            out[..],
            [LegOutput::Failed(OfferResult::Declined)]
        ));
        let mut l = leg(&[a]);
        let out = l.on_response(&key(a), &response(a, 503, "x"));
        assert!(matches!(out[..], [LegOutput::Failed(OfferResult::Failed)]));
    }

    #[test]
    fn cancel_reports_nothing() {
        let (a, b) = ("z9hG4bKa", "z9hG4bKb");
        let mut l = leg(&[a, b]);
        l.on_response(&key(a), &response(a, 180, "x"));
        l.on_response(&key(a), &response(a, 480, "x"));
        assert_eq!(
            kinds(&l.cancel()),
            ["cancel"],
            "only the fork still ringing"
        );
        assert!(!l.all_final());
        assert!(l.on_response(&key(b), &response(b, 100, "y")).is_empty());
        assert!(l.on_response(&key(b), &response(b, 487, "y")).is_empty());
        assert!(l.all_final());
        // An answer racing the CANCEL is ended at once.
        let mut l = leg(&[a]);
        l.cancel();
        assert_eq!(
            kinds(&l.on_response(&key(a), &response(a, 200, "x"))),
            ["ack", "bye"]
        );
        assert!(l.hangup().is_none());
    }
}
