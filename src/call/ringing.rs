//! Ringing an agent, shared by the inbound call (an agent for a waiting
//! caller) and the callback dialer (an agent for a callback): open the
//! leg's dialog, send one INVITE per registered contact of the agent's
//! extension (an [`AgentLeg`] with one fork each, RFC 3261 §16.7), and run
//! what the leg's state machine asks for ([`LegOutput`]).
//!
//! The leg's dialog events are forwarded, tagged with the leg's Call-ID,
//! to the channel of the task that owns the leg, so that one `select!`
//! loop sees every leg it owns.

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::info;

use crate::acd::AgentId;
use crate::call::agent_leg::{AgentLeg, LegOutput};
use crate::sip::endpoint::{new_tag, DialogEvent, SipHandle};
use crate::sip::outbound::invite_to_binding;

/// A leg's dialog event, with the Call-ID of the leg.
pub type LegEvent = (String, DialogEvent);

/// Why an agent could not be rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("the agent has no reachable contact")]
    NoContact,
    #[error("no INVITE could be sent to the agent's contacts")]
    NotSent,
}

/// Who the agent's phone shows as calling, and the user part of our
/// Contact.
#[derive(Debug, Clone, Copy)]
pub struct RingFrom<'a> {
    /// From's user part (the caller's number, or the hotline's).
    pub number: &'a str,
    /// From's display name (e.g. the number dialed).
    pub display: Option<&'a str>,
    /// User part of our Contact.
    pub contact_user: &'a str,
}

/// Forwards one leg's dialog events to `tx` until the endpoint forgets the
/// dialog (or `tx`'s owner goes).
pub fn forward(call_id: String, mut rx: mpsc::Receiver<DialogEvent>, tx: mpsc::Sender<LegEvent>) {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if tx.send((call_id.clone(), ev)).await.is_err() {
                break;
            }
        }
    });
}

/// Rings every registered contact of `extension` with the SDP offer `sdp`
/// on a new leg `leg_call_id`, whose events go to `events`. On error no
/// dialog is left open.
pub async fn ring_agent(
    sip: &SipHandle,
    agent: AgentId,
    extension: &str,
    leg_call_id: String,
    from: RingFrom<'_>,
    sdp: &str,
    events: &mpsc::Sender<LegEvent>,
) -> Result<AgentLeg, RingError> {
    let contacts = sip.contacts(extension).await;
    if contacts.is_empty() {
        return Err(RingError::NoContact);
    }
    let local_tag = new_tag();
    let rx = sip.open_dialog(&leg_call_id).await;
    forward(leg_call_id.clone(), rx, events.clone());
    let mut leg = AgentLeg::new(
        agent.clone(),
        leg_call_id.clone(),
        local_tag.clone(),
        &sip.local.user_agent,
    );
    for binding in &contacts {
        let contact = sip.local.contact(from.contact_user, binding.source.kind);
        let (invite, peer) = invite_to_binding(
            binding,
            from.number,
            from.display,
            &leg_call_id,
            &local_tag,
            &contact,
            sdp,
        );
        if let Some(key) = sip.send_request(invite.clone(), peer).await {
            leg.add_fork(key, invite, peer);
        }
    }
    info!(agent = %agent, contacts = leg.forks(), leg = %leg_call_id, "ringing agent");
    if leg.forks() == 0 {
        sip.end_dialog(leg_call_id).await;
        return Err(RingError::NotSent);
    }
    Ok(leg)
}

/// Sends what a leg asked for; returns the SDP answer if it answered.
pub async fn run_leg_outputs(sip: &SipHandle, outputs: Vec<LegOutput>) -> Option<Bytes> {
    let mut answered = None;
    for out in outputs {
        match out {
            LegOutput::Ack { request, peer } => sip.ack(request, peer).await,
            LegOutput::Cancel { key } => sip.cancel(&key).await,
            LegOutput::Bye { request, peer } => sip.request(request, peer).await,
            LegOutput::Answered { sdp } => answered = Some(sdp),
            LegOutput::Failed(_) => {}
        }
    }
    answered
}

/// Answers a request inside a daemon-placed leg's dialog that only carries
/// audio (a callback, a monitor): 200 to BYE (returns true: the leg ended),
/// to INFO, UPDATE and OPTIONS (with Allow); 488 to a re-INVITE (`what`
/// names the leg in the log: no hold on these legs); 501 otherwise.
pub async fn answer_in_dialog(
    sip: &SipHandle,
    request: &crate::sip::message::Request,
    key: crate::sip::transaction::TransactionKey,
    what: &str,
) -> bool {
    use crate::sip::endpoint::ALLOW;
    use crate::sip::message::{response_to, Method};
    let (resp, ended) = match request.method {
        Method::Bye => (response_to(request, 200, "OK"), true),
        Method::Info | Method::Update => (response_to(request, 200, "OK"), false),
        Method::Options => {
            let mut r = response_to(request, 200, "OK");
            r.headers.push("Allow", ALLOW);
            (r, false)
        }
        Method::Invite => {
            tracing::debug!("re-INVITE on a {what} refused");
            (response_to(request, 488, "Not Acceptable Here"), false)
        }
        _ => {
            let mut r = response_to(request, 501, "Not Implemented");
            r.headers.push("Allow", ALLOW);
            (r, false)
        }
    };
    sip.respond(key, resp).await;
    ended
}
