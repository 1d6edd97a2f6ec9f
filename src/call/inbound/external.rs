//! Blind transfer to an external number (an expert, a department) through
//! the outbound trunk (`[sip.outbound]`): the agent's REFER names a number
//! that is no agent and no queue. The REFER gets 202 at once; the daemon
//! calls the number (a UAC leg through the trunk, the same `AgentLeg`
//! state machine with one fork) while the caller stays with the agent.
//! When the number answers, the agent's REFER subscription is told
//! `SIP/2.0 200 OK` (RFC 3515 §2.4.5, `message/sipfrag`), the agent's leg
//! ends (its part of the call is over, wrap-up), and the caller is bridged
//! to the external party. If the number is busy or does not answer, the
//! NOTIFY carries that status and the caller stays with the agent.

use bytes::Bytes;
use tracing::{info, warn};

use super::InboundCall;
use crate::acd::{AgentId, CallId};
use crate::call::agent_leg::{AgentLeg, LegOutput};
use crate::call::offer_answer::OfferAnswer;
use crate::call::ringing::{forward, run_leg_outputs};
use crate::media::bridge::{self, BridgeConfig};
use crate::media::port_pool::RtpSocket;
use crate::media::sdp::LocalMedia;
use crate::media::session::{LegMedia, SessionConfig};
use crate::sip::endpoint::{new_tag, DialogEvent};
use crate::sip::message::{response_to, Request};
use crate::sip::outbound::invite_to_trunk;
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;
use crate::store::HangupBy;

/// How long the external number may ring.
const EXTERNAL_RING: std::time::Duration = std::time::Duration::from_secs(45);

/// The external leg being rung.
pub(super) struct External {
    pub(super) leg: AgentLeg,
    socket: Option<RtpSocket>,
    oa: OfferAnswer,
    number: String,
    until: tokio::time::Instant,
}

/// 3 to 32 digits, optionally after '+' (what the trunk may dial).
pub(super) fn is_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    (3..=32).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
}

/// The status line a NOTIFY reports for a failed external leg.
fn sipfrag_for(outputs: &[LegOutput]) -> Option<&'static str> {
    outputs.iter().find_map(|o| match o {
        LegOutput::Failed(r) => Some(match r {
            crate::acd::OfferResult::Busy => "SIP/2.0 486 Busy Here",
            crate::acd::OfferResult::Declined => "SIP/2.0 603 Decline",
            crate::acd::OfferResult::NoAnswer => "SIP/2.0 480 Temporarily Unavailable",
            _ => "SIP/2.0 503 Service Unavailable",
        }),
        _ => None,
    })
}

impl InboundCall {
    pub(super) async fn transfer_external(
        &mut self,
        request: Request,
        key: TransactionKey,
        number: String,
    ) {
        let Some(trunk) = self.ctx.outbound.clone() else {
            return;
        };
        if self.external.is_some() {
            self.reply(&request, key, 491).await;
            return;
        }
        let socket = match self.ctx.ports.allocate() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no RTP port for the external leg");
                self.reply(&request, key, 503).await;
                return;
            }
        };
        self.reply(&request, key, 202).await;
        let mut oa = OfferAnswer::new(LocalMedia::new(self.ctx.rtp.advertised, socket.port()));
        let caller_codec = self
            .offer_answer
            .as_ref()
            .and_then(|o| o.current.as_ref())
            .map(|n| n.codec);
        let sdp = oa.offer_preferring(caller_codec);
        let leg_id = format!("{}-x", new_tag());
        let local_tag = new_tag();
        let rx = self.ctx.sip.open_dialog(&leg_id).await;
        forward(leg_id.clone(), rx, self.agent_tx.clone());
        let peer = Peer {
            kind: trunk.transport,
            addr: trunk.address,
        };
        let contact = self.ctx.sip.local.contact(&trunk.from_number, peer.kind);
        let dial = format!("{}{}", trunk.prefix, number);
        let (invite, peer) = invite_to_trunk(
            peer,
            &dial,
            &trunk.from_number,
            &leg_id,
            &local_tag,
            &contact,
            &sdp,
        );
        let mut leg = AgentLeg::new(
            AgentId(format!("external:{number}")),
            leg_id,
            local_tag,
            &self.ctx.sip.local.user_agent,
        );
        match self.ctx.sip.send_request(invite.clone(), peer).await {
            Some(k) => leg.add_fork(k, invite, peer),
            None => {
                self.notify_refer("SIP/2.0 503 Service Unavailable").await;
                return;
            }
        }
        info!(
            number,
            "transfer to an external number: ringing it through the trunk"
        );
        self.external = Some(External {
            leg,
            socket: Some(socket),
            oa,
            number,
            until: tokio::time::Instant::now() + EXTERNAL_RING,
        });
    }

    /// When the external number has rung long enough.
    pub(super) fn external_deadline(&self) -> Option<tokio::time::Instant> {
        self.external.as_ref().map(|x| x.until)
    }

    /// Gives up ringing the external number (the caller stays with the agent).
    pub(super) async fn external_timeout(&mut self) {
        info!("the external number did not answer");
        self.cancel_external().await;
        self.notify_refer("SIP/2.0 480 Temporarily Unavailable")
            .await;
    }

    /// Stops ringing the external number, if it rings.
    pub(super) async fn cancel_external(&mut self) {
        if let Some(mut x) = self.external.take() {
            let outputs = x.leg.cancel();
            run_leg_outputs(&self.ctx.sip, outputs).await;
            self.ctx.sip.end_dialog(x.leg.call_id.clone()).await;
        }
    }

    pub(super) async fn on_external_event(&mut self, ev: DialogEvent) {
        let Some(x) = self.external.as_mut() else {
            return;
        };
        let outputs = match &ev {
            DialogEvent::Response { response, key } => x.leg.on_response(key, response),
            DialogEvent::Timeout { key } => x.leg.on_timeout(key),
            DialogEvent::Request { request, key, .. } => {
                let resp = response_to(request, 481, "Call/Transaction Does Not Exist");
                self.ctx.sip.respond(key.clone(), resp).await;
                Vec::new()
            }
            _ => Vec::new(),
        };
        if let Some(frag) = sipfrag_for(&outputs) {
            info!(frag, "the external number did not take the call");
            run_leg_outputs(&self.ctx.sip, outputs).await;
            if let Some(x) = self.external.take() {
                self.ctx.sip.end_dialog(x.leg.call_id.clone()).await;
            }
            self.notify_refer(frag).await;
            return;
        }
        if let Some(sdp) = run_leg_outputs(&self.ctx.sip, outputs).await {
            self.external_answered(sdp).await;
        }
    }

    async fn external_answered(&mut self, sdp: Bytes) {
        let Some(mut x) = self.external.take() else {
            return;
        };
        let negotiated = match x.oa.accept_answer(&sdp) {
            Ok(()) => x.oa.current.clone(),
            Err(e) => {
                info!(error = %e, "the external party's answer is unusable");
                None
            }
        };
        let (Some(n), Some(socket)) = (negotiated, x.socket.take()) else {
            if let Some(out) = x.leg.hangup() {
                run_leg_outputs(&self.ctx.sip, vec![out]).await;
            }
            self.ctx.sip.end_dialog(x.leg.call_id.clone()).await;
            self.notify_refer("SIP/2.0 488 Not Acceptable Here").await;
            return;
        };
        self.notify_refer("SIP/2.0 200 OK").await;
        info!(number = %x.number, "external party answered; the agent's part ends");
        self.record.acd.transfer_target = Some(x.number.clone());
        self.ctx
            .acd
            .transfer(CallId(self.record.call_id.clone()), x.number.clone())
            .await;
        let Some(caller_leg) = self.end_connected_silently().await else {
            self.hangup(HangupBy::System, "media_failed").await;
            return;
        };
        let mut cfg = SessionConfig::negotiated(socket, &n);
        cfg.rtp_timeout = self.ctx.rtp.timeout;
        cfg.inband_dtmf = false;
        let (bridge, events) = bridge::spawn(BridgeConfig::new(caller_leg, LegMedia::new(cfg)));
        self.connected = Some(super::agents::Connected::external(
            x.leg, x.oa, bridge, events,
        ));
        self.on_bridged().await;
    }
}
