//! The inbound call and its agents: ringing the offered agent's contacts
//! (an [`AgentLeg`] per offer, several at once for ring-all), connecting
//! the first to answer through the media bridge (B2BUA), the bridged call
//! (hold and resume from either side, BYE from either side), and the
//! survey after the agent hangs up.
//!
//! The call task owns every leg: the agents' dialog events reach it on one
//! channel (`agent_rx`, fed by a small forwarder per leg), so its one
//! `select!` loop sees the caller, the agents, the bridge and the timers.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::InboundCall;
use crate::acd::{AcdError, AgentId, CallId, EndedBy, OfferResult};
use crate::call::agent_leg::{AgentLeg, LegOutput, LegState};
use crate::call::offer_answer::OfferAnswer;
use crate::call::ringing::{forward, ring_agent, run_leg_outputs, LegEvent, RingFrom};
use crate::call::survey::{Survey, SurveyAction};
use crate::media::bridge::{self, BridgeConfig, BridgeEvent, BridgeHandle, Side};
use crate::media::port_pool::RtpSocket;
use crate::media::sdp::LocalMedia;
use crate::media::session::{self, LegMedia, SessionConfig};
use crate::recording::{RecorderControl, RecordingMeta};
use crate::sip::endpoint::{new_tag, DialogEvent, ALLOW};
use crate::sip::message::{response_to, Method, Request};
use crate::sip::transaction::TransactionKey;
use crate::store::HangupBy;

/// An agent's dialog event, with the Call-ID of its leg.
pub(super) type AgentEvent = LegEvent;

/// Capacity of the agents' event channel of one call.
pub(super) const AGENT_EVENTS: usize = 64;

/// An agent being rung.
pub(super) struct Offer {
    leg: AgentLeg,
    socket: Option<RtpSocket>,
    oa: OfferAnswer,
}

impl Offer {
    pub(super) fn leg_call_id(&self) -> &str {
        &self.leg.call_id
    }
}

/// The agent the caller talks to.
pub(super) struct Connected {
    leg: AgentLeg,
    oa: OfferAnswer,
    /// The ACD call the agent is connected on, if not this call's own (an
    /// agent leg taken over from a consultation call).
    acd_call: Option<CallId>,
    /// False for an external party (a transfer to a number): the ACD is
    /// not told when it ends.
    in_acd: bool,
    bridge: BridgeHandle,
    pub(super) events: mpsc::Receiver<BridgeEvent>,
    since: Instant,
    hold_since: Option<Instant>,
    held: Duration,
    /// The recording of this part of the call, if recorded.
    recorder: Option<RecorderControl>,
    /// The agent's last digits, for the mask keys.
    keys: String,
}

impl Connected {
    /// An external party (answered through the outbound trunk) bridged to
    /// the caller.
    pub(super) fn external(
        leg: AgentLeg,
        oa: OfferAnswer,
        bridge: BridgeHandle,
        events: mpsc::Receiver<BridgeEvent>,
    ) -> Connected {
        Connected {
            leg,
            oa,
            acd_call: None,
            in_acd: false,
            bridge,
            events,
            since: Instant::now(),
            hold_since: None,
            held: Duration::ZERO,
            recorder: None,
            keys: String::new(),
        }
    }
}

/// A consultation call's agent leg, handed to the call that transfers to
/// it (attended transfer).
pub(crate) struct HandedOver {
    leg: AgentLeg,
    oa: OfferAnswer,
    media: LegMedia,
    /// The consultation call's ACD call: the agent is connected on it.
    acd_call: CallId,
}

/// The next hand-over request, or never.
pub(super) async fn next_handover(
    rx: &mut Option<mpsc::Receiver<super::Handover>>,
) -> Option<super::Handover> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next bridge event, or never when not bridged.
pub(super) async fn next_bridge_event(connected: &mut Option<Connected>) -> Option<BridgeEvent> {
    match connected {
        Some(c) => c.events.recv().await,
        None => std::future::pending().await,
    }
}

/// The consultation Call-ID in a `Refer-To` whose URI carries a
/// `Replaces` header (RFC 3891 §5: `?Replaces=callid%3Bto-tag%3D…`).
fn replaces_call_id(refer_to: &str) -> Option<String> {
    let uri = refer_to.trim().trim_start_matches('<');
    let uri = uri.split('>').next()?;
    let (_, headers) = uri.split_once('?')?;
    headers.split('&').find_map(|h| {
        let (name, value) = h.split_once('=')?;
        if !name.eq_ignore_ascii_case("replaces") {
            return None;
        }
        let decoded = percent_decode(value);
        let call_id = decoded.split(';').next()?.trim().to_string();
        (!call_id.is_empty()).then_some(call_id)
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl InboundCall {
    /// The ACD offers the call to `agent`: ring its registered contacts.
    pub(super) async fn offer_to_agent(
        &mut self,
        agent: AgentId,
        extension: String,
        _ring_timeout: Duration,
    ) {
        let call = CallId(self.record.call_id.clone());
        *self.record.acd.offers.get_or_insert(0) += 1;
        let socket = match self.ctx.ports.allocate() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no RTP port for the agent leg");
                self.fail_offer(call, agent).await;
                return;
            }
        };
        let mut oa = OfferAnswer::new(LocalMedia::new(self.ctx.rtp.advertised, socket.port()));
        let caller_codec = self
            .offer_answer
            .as_ref()
            .and_then(|o| o.current.as_ref())
            .map(|n| n.codec);
        let sdp = oa.offer_preferring(caller_codec);
        let leg_call_id = format!("{}-a{}", new_tag(), self.record.call_id.len());
        let from = RingFrom {
            number: &self.record.caller,
            display: Some(&self.record.dialed),
            contact_user: &self.record.dialed,
        };
        let leg = match ring_agent(
            &self.ctx.sip,
            agent.clone(),
            &extension,
            leg_call_id,
            from,
            &sdp,
            &self.agent_tx,
        )
        .await
        {
            Ok(leg) => leg,
            Err(e) => {
                info!(agent = %agent, error = %e, "offer failed");
                self.fail_offer(call, agent).await;
                return;
            }
        };
        self.offers.push(Offer {
            leg,
            socket: Some(socket),
            oa,
        });
    }

    /// Tells the ACD an offer could not ring (or its answer was unusable).
    async fn fail_offer(&self, call: CallId, agent: AgentId) {
        let _ = self
            .ctx
            .acd
            .offer_result(call, agent, OfferResult::Failed)
            .await;
    }

    /// The ACD withdrew an offer (ring timeout, answered elsewhere, …).
    pub(super) async fn cancel_offer(&mut self, agent: &AgentId) {
        if let Some(i) = self.offers.iter().position(|o| &o.leg.agent == agent) {
            debug!(agent = %agent, "offer withdrawn; cancelling");
            let outputs = self.offers[i].leg.cancel();
            self.run_leg_outputs(outputs).await;
            self.forget_offer_if_done(i).await;
        }
    }

    /// Cancels every offer (the caller leaves or is connected).
    pub(super) async fn cancel_all_offers(&mut self) {
        let mut i = 0;
        while i < self.offers.len() {
            let outputs = self.offers[i].leg.cancel();
            self.run_leg_outputs(outputs).await;
            if !self.forget_offer_if_done(i).await {
                i += 1;
            }
        }
    }

    /// Drops an offer once no more responses will come; true if dropped.
    async fn forget_offer_if_done(&mut self, i: usize) -> bool {
        if self.offers[i].leg.all_final() && self.offers[i].leg.state() != LegState::Answered {
            let o = self.offers.remove(i);
            self.ctx.sip.end_dialog(o.leg.call_id.clone()).await;
            true
        } else {
            false
        }
    }

    async fn run_leg_outputs(&mut self, outputs: Vec<LegOutput>) -> Option<Bytes> {
        run_leg_outputs(&self.ctx.sip, outputs).await
    }

    /// A dialog event of one of the agents' legs.
    pub(super) async fn on_agent_event(&mut self, leg_id: String, ev: DialogEvent) {
        if self
            .connected
            .as_ref()
            .is_some_and(|c| c.leg.call_id == leg_id)
        {
            self.on_connected_event(ev).await;
            return;
        }
        if self
            .external
            .as_ref()
            .is_some_and(|x| x.leg.call_id == leg_id)
        {
            self.on_external_event(ev).await;
            return;
        }
        let Some(i) = self.offers.iter().position(|o| o.leg.call_id == leg_id) else {
            // A leg already forgotten: answer requests so the agent is not
            // left retransmitting.
            if let DialogEvent::Request { request, key, .. } = ev {
                self.reply(&request, key, 481).await;
            }
            return;
        };
        let outputs = match &ev {
            DialogEvent::Response { response, key } => {
                self.offers[i].leg.on_response(key, response)
            }
            DialogEvent::Timeout { key } => self.offers[i].leg.on_timeout(key),
            DialogEvent::Request { request, key, .. } => {
                // Nothing is expected before the answer (maybe OPTIONS).
                let status = if request.method == Method::Options {
                    200
                } else {
                    481
                };
                let resp = response_to(request, status, crate::sip::message::reason_phrase(status));
                self.ctx.sip.respond(key.clone(), resp).await;
                Vec::new()
            }
            _ => Vec::new(),
        };
        let failed = outputs.iter().find_map(|o| match o {
            LegOutput::Failed(r) => Some(*r),
            _ => None,
        });
        let answered = self.run_leg_outputs(outputs).await;
        let agent = self.offers[i].leg.agent.clone();
        let call = CallId(self.record.call_id.clone());
        if let Some(result) = failed {
            info!(agent = %agent, ?result, "agent did not take the call");
            let _ = self.ctx.acd.offer_result(call, agent, result).await;
            self.forget_offer_if_done(i).await;
            return;
        }
        if let Some(sdp) = answered {
            self.agent_answered(i, sdp).await;
            return;
        }
        if self.offers[i].leg.state() == LegState::Ended {
            self.forget_offer_if_done(i).await;
        }
    }

    /// The agent of offer `i` answered: confirm with the ACD, bridge.
    async fn agent_answered(&mut self, i: usize, sdp: Bytes) {
        let agent = self.offers[i].leg.agent.clone();
        let call = CallId(self.record.call_id.clone());
        if let Err(e) = self.offers[i].oa.accept_answer(&sdp) {
            info!(agent = %agent, error = %e, "agent's answer unusable; ending its leg");
            self.end_offer_leg(i).await;
            self.fail_offer(call, agent).await;
            return;
        }
        match self
            .ctx
            .acd
            .offer_result(call, agent.clone(), OfferResult::Answered)
            .await
        {
            Ok(()) => {}
            Err(AcdError::NotOffered { .. }) | Err(_) => {
                info!(agent = %agent, "answer after the offer was withdrawn; ending its leg");
                self.end_offer_leg(i).await;
                return;
            }
        }
        let mut offer = self.offers.remove(i);
        self.cancel_all_offers().await;
        let Some(socket) = offer.socket.take() else {
            return;
        };
        let Some(n) = offer.oa.current.clone() else {
            return;
        };
        // The caller stops hearing hold music; its leg joins the bridge.
        let wait = self
            .queued
            .take()
            .map(|q| q.joined.elapsed())
            .unwrap_or_default();
        self.record.acd.wait_ms = Some(wait.as_millis() as i64);
        let Some(media) = self.media.take() else {
            return;
        };
        self.media_events = None;
        let caller_leg = match media.detach().await {
            Ok(leg) => leg,
            Err(_) => {
                self.hangup(HangupBy::System, "media_failed").await;
                return;
            }
        };
        let mut agent_cfg = SessionConfig::negotiated(socket, &n);
        agent_cfg.rtp_timeout = self.ctx.rtp.timeout;
        agent_cfg.inband_dtmf = false;
        let (bridge, events) = self.bridge_to_agent(caller_leg, LegMedia::new(agent_cfg));
        info!(agent = %agent, codec_agent = n.codec.name(), wait_ms = wait.as_millis() as u64, "agent answered; bridged");
        self.record.acd.agent = Some(agent.0.clone());
        self.note_open().await;
        if self.from_softphone {
            // An agent's consultation call: it may be taken over by an
            // attended transfer from the agent's other call.
            let (tx, rx) = mpsc::channel(1);
            if let Ok(mut map) = self.ctx.consults.lock() {
                map.insert(self.record.call_id.clone(), tx);
            }
            self.handover_rx = Some(rx);
        }
        self.connected = Some(Connected {
            leg: offer.leg,
            oa: offer.oa,
            acd_call: None,
            in_acd: true,
            bridge,
            events,
            since: Instant::now(),
            hold_since: None,
            held: Duration::ZERO,
            recorder: None,
            keys: String::new(),
        });
        self.on_bridged().await;
    }

    /// The caller is bridged to `self.connected`: the call is recorded (if
    /// recording is on and its queue records) and listed as the agent's
    /// live call.
    pub(super) async fn on_bridged(&mut self) {
        let now = Instant::now();
        let wall = self.wall(now);
        let queue = self.record.queue.clone();
        let record = self.ctx.recordings.config.enabled
            && queue
                .as_ref()
                .and_then(|q| self.queues.get(q))
                .is_none_or(|q| q.record);
        let segment = self.segments;
        self.segments += 1;
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        if record {
            let started = self.ctx.recordings.start_call(
                RecordingMeta {
                    call_id: self.record.call_id.clone(),
                    segment,
                    agent: Some(c.leg.agent.0.clone()),
                    queue: queue.clone(),
                    caller: Some(self.record.caller.clone()),
                    dialed: Some(self.record.dialed.clone()),
                },
                c.since,
                wall,
                c.bridge.spawner(),
            );
            if c.bridge.add_tap(started.tap).await.is_ok() {
                c.recorder = Some(started.control);
            }
        }
        self.ctx.live.insert(crate::call::live::LiveCall {
            call_id: self.record.call_id.clone(),
            agent: c.leg.agent.0.clone(),
            queue,
            bridge: c.bridge.control(),
            recorder: c.recorder.clone(),
        });
    }

    /// The bridged part ended at `at`: its recording stops there, the live
    /// entry goes.
    async fn on_unbridged(&self, c: &Connected, at: Instant) {
        if let Some(r) = &c.recorder {
            r.stop_at(at).await;
        }
        // What each side sent and what of it was lost on the way here (its
        // sequence gaps) or by the recording's tap: an operator (and the
        // recording benchmark) tells the network's loss from ours.
        if let Ok(st) = c.bridge.stats().await {
            info!(
                call_id = %self.record.call_id,
                agent = %c.leg.agent,
                caller_received = st.caller.received,
                caller_lost = st.caller.stream.seq_gaps,
                agent_received = st.agent.received,
                agent_lost = st.agent.stream.seq_gaps,
                tap_dropped = st.caller.tap_dropped + st.agent.tap_dropped,
                caller_jitter_us = st.caller.jitter.as_micros() as u64,
                agent_jitter_us = st.agent.jitter.as_micros() as u64,
                "bridge ended"
            );
            let side = |s: &crate::media::bridge::SideStats| crate::metrics::SideFigures {
                received: s.received,
                lost: s.stream.seq_gaps,
                jitter: s.jitter,
            };
            self.ctx
                .metrics
                .bridge_ended(side(&st.caller), side(&st.agent));
        }
        self.ctx.live.remove(&c.leg.agent.0, &self.record.call_id);
    }

    /// A digit the agent keyed while bridged: the mask keys mask or unmask
    /// the recording (the digits still reach the caller).
    async fn on_agent_digit(&mut self, digit: char) {
        let cfg = &self.ctx.recordings.config;
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        c.keys.push(digit);
        let keep = cfg.mask_keys.len().max(cfg.unmask_keys.len());
        if c.keys.len() > keep {
            c.keys.remove(0);
        }
        let on = if c.keys.ends_with(&cfg.mask_keys) {
            true
        } else if c.keys.ends_with(&cfg.unmask_keys) {
            false
        } else {
            return;
        };
        c.keys.clear();
        if let Some(r) = &c.recorder {
            let _ = r.mask(on, &c.leg.agent.0).await;
            info!(agent = %c.leg.agent, masked = on, "recording mask keyed by the agent");
        }
    }

    /// Bridges the caller's leg to an agent's; either side holding gives
    /// the other the queue's hold music in the call's language.
    fn bridge_to_agent(
        &self,
        caller: LegMedia,
        agent: LegMedia,
    ) -> (BridgeHandle, mpsc::Receiver<BridgeEvent>) {
        let lang = self.ivr.as_ref().map(|v| v.language()).unwrap_or_default();
        let mut cfg = BridgeConfig::new(caller, agent);
        cfg.hold_music = self
            .record
            .queue
            .as_ref()
            .and_then(|q| self.queues.get(q))
            .and_then(|q| self.prompts.get(lang, &q.hold_music));
        bridge::spawn(cfg)
    }

    /// BYE to an answered offer that will not be bridged.
    async fn end_offer_leg(&mut self, i: usize) {
        let mut o = self.offers.remove(i);
        if let Some(out) = o.leg.hangup() {
            self.run_leg_outputs(vec![out]).await;
        }
        self.ctx.sip.end_dialog(o.leg.call_id.clone()).await;
    }

    /// An event of the connected agent's dialog.
    async fn on_connected_event(&mut self, ev: DialogEvent) {
        match ev {
            DialogEvent::Response { response, key } => {
                // A retransmitted 2xx to the INVITE needs its ACK again.
                let outputs = match self.connected.as_mut() {
                    Some(c) => c.leg.on_response(&key, &response),
                    None => Vec::new(),
                };
                self.run_leg_outputs(outputs).await;
            }
            DialogEvent::Request { request, key, .. } => self.on_agent_request(request, key).await,
            _ => {}
        }
    }

    async fn on_agent_request(&mut self, request: Request, key: TransactionKey) {
        match request.method {
            Method::Bye => {
                self.reply(&request, key, 200).await;
                info!("agent hung up");
                if let Some(c) = self.connected.as_mut() {
                    c.leg.remote_hangup();
                }
                self.agent_left(EndedBy::Agent).await;
            }
            Method::Invite => self.on_agent_reinvite(request, key).await,
            Method::Refer => self.on_agent_refer(request, key).await,
            Method::Info | Method::Options | Method::Update => {
                let mut resp = response_to(&request, 200, "OK");
                if request.method == Method::Options {
                    resp.headers.push("Allow", ALLOW);
                }
                self.ctx.sip.respond(key, resp).await;
            }
            _ => {
                let mut resp = response_to(&request, 501, "Not Implemented");
                resp.headers.push("Allow", ALLOW);
                self.ctx.sip.respond(key, resp).await;
            }
        }
    }

    /// Hold or resume from the agent's softphone (RFC 3264 §8.4): the
    /// caller hears hold music while the agent holds.
    async fn on_agent_reinvite(&mut self, request: Request, key: TransactionKey) {
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        let sdp = match super::sdp_body(&request) {
            Some(offer) => c.oa.answer(&offer),
            None => Ok(c.oa.offer()),
        };
        let sdp = match sdp {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "agent's re-INVITE refused");
                self.reply(&request, key, 488).await;
                return;
            }
        };
        let kind = c
            .leg
            .dialog
            .as_ref()
            .map(|d| d.peer.kind)
            .unwrap_or(crate::sip::transport::TransportKind::Udp);
        self.respond_with_sdp_on(&request, key, sdp, kind).await;
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        let held = c.oa.held();
        let remote = c.oa.current.as_ref().and_then(|n| n.remote_rtp);
        let _ = c.bridge.set_remote(Side::Agent, remote).await;
        let _ = c.bridge.set_hold(Side::Agent, held).await;
        let now = Instant::now();
        match (held, c.hold_since) {
            (true, None) => c.hold_since = Some(now),
            (false, Some(since)) => {
                c.held += now - since;
                c.hold_since = None;
            }
            _ => {}
        }
        info!(held, "agent changed hold");
    }

    /// Blind transfer (转接答) from the agent's softphone: REFER with
    /// `Refer-To` naming a queue (an expert group) or another agent's
    /// extension (its personal queue). RFC 3515: the REFER is accepted with
    /// 202, the outcome reported by NOTIFY (`message/sipfrag`, §2.4.5);
    /// then the agent's leg ends, its part of the call is over (wrap-up),
    /// and the caller, after `transferring`, waits in the target queue.
    /// A target that cannot take the call now (unknown, or an agent not
    /// logged in) is refused with 403/480 and the call stays bridged.
    async fn on_agent_refer(&mut self, request: Request, key: TransactionKey) {
        let target = request
            .headers
            .get("Refer-To")
            .and_then(|v| crate::sip::headers::parse_name_addr(v).ok())
            .and_then(|na| na.uri.user_or_number().map(str::to_string));
        let Some(target) = target else {
            self.reply(&request, key, 400).await;
            return;
        };
        if let Some(consult) = request.headers.get("Refer-To").and_then(replaces_call_id) {
            self.attended_transfer(request, key, target, consult).await;
            return;
        }
        let Some(queue) = self.transfer_queue(&target).await else {
            if self.ctx.outbound.is_some() && super::external::is_number(&target) {
                self.transfer_external(request, key, target).await;
                return;
            }
            info!(target, "transfer target cannot take the call");
            self.reply(&request, key, 480).await;
            return;
        };
        self.reply(&request, key, 202).await;
        info!(target, queue, "blind transfer");
        self.notify_refer("SIP/2.0 200 OK").await;
        let call = CallId(self.record.call_id.clone());
        self.record.acd.transfer_target = Some(target.clone());
        // The agent's part ends now (Transfer event, then wrap-up).
        self.ctx.acd.transfer(call, target).await;
        let Some(caller_leg) = self.end_connected_silently().await else {
            self.hangup(HangupBy::System, "media_failed").await;
            return;
        };
        let (media, events) = session::resume(caller_leg);
        self.media = Some(media);
        self.media_events = Some(events);
        let first_queue = self.record.queue.clone();
        let joined = self.join_queue(&queue, 0, Some("transferring")).await;
        self.record.queue = first_queue;
        if !joined {
            let now = Instant::now();
            let actions = match self.ivr.as_mut() {
                Some(ivr) => ivr.on_queue_unavailable(now),
                None => Vec::new(),
            };
            self.perform(actions).await;
        }
    }

    /// Attended transfer (RFC 3891 via RFC 3515): the agent consulted
    /// another agent from its softphone (a call the daemon bridged, see
    /// `feature_codes::agent_call_flow`), then REFERs this call with
    /// `Replaces` naming that consultation call. The consultation call hands
    /// its agent leg over; this caller is bridged to it; both of the first
    /// agent's legs end. An unknown consultation gets 481 (RFC 3891 §3).
    async fn attended_transfer(
        &mut self,
        request: Request,
        key: TransactionKey,
        target: String,
        consult: String,
    ) {
        let sender = self
            .ctx
            .consults
            .lock()
            .ok()
            .and_then(|m| m.get(&consult).cloned());
        let (reply, rx) = tokio::sync::oneshot::channel();
        let handed = match sender {
            Some(tx) if tx.send(super::Handover { reply }).await.is_ok() => {
                tokio::time::timeout(Duration::from_secs(2), rx)
                    .await
                    .ok()
                    .and_then(|r| r.ok())
            }
            _ => None,
        };
        let Some(h) = handed else {
            info!(consult, "attended transfer: no such consultation call");
            self.reply(&request, key, 481).await;
            return;
        };
        self.reply(&request, key, 202).await;
        self.notify_refer("SIP/2.0 200 OK").await;
        info!(target, consult, agent = %h.leg.agent, "attended transfer");
        let call = CallId(self.record.call_id.clone());
        self.record.acd.transfer_target = Some(target.clone());
        self.ctx.acd.transfer(call, target).await;
        let Some(caller_leg) = self.end_connected_silently().await else {
            self.hangup(HangupBy::System, "media_failed").await;
            return;
        };
        // The taken-over leg's SIP comes to this call from now on.
        let rx = self.ctx.sip.open_dialog(&h.leg.call_id).await;
        forward(h.leg.call_id.clone(), rx, self.agent_tx.clone());
        let (bridge, events) = self.bridge_to_agent(caller_leg, h.media);
        self.record.acd.agent = Some(h.leg.agent.0.clone());
        self.note_open().await;
        self.connected = Some(Connected {
            leg: h.leg,
            oa: h.oa,
            acd_call: Some(h.acd_call),
            in_acd: true,
            bridge,
            events,
            since: Instant::now(),
            hold_since: None,
            held: Duration::ZERO,
            recorder: None,
            keys: String::new(),
        });
        self.on_bridged().await;
    }

    /// A consultation call gives its agent leg to the call transferring
    /// to it, then ends its own leg to the consulting agent.
    pub(super) async fn hand_over(&mut self, req: super::Handover) {
        self.handover_rx = None;
        if let Ok(mut map) = self.ctx.consults.lock() {
            map.remove(&self.record.call_id);
        }
        let Some(c) = self.connected.take() else {
            return;
        };
        let now = Instant::now();
        self.record.acd.talk_ms = Some((now - c.since).as_millis() as i64);
        self.on_unbridged(&c, now).await;
        let Ok((consulting, agent_media)) = c.bridge.end().await else {
            return;
        };
        drop(consulting);
        let handed = HandedOver {
            leg: c.leg,
            oa: c.oa,
            media: agent_media,
            acd_call: c
                .acd_call
                .unwrap_or_else(|| CallId(self.record.call_id.clone())),
        };
        if req.reply.send(handed).is_err() {
            warn!("attended transfer gave up; consultation already ended");
        }
        info!("consultation handed over (attended transfer)");
        self.hangup(HangupBy::System, "replaced").await;
    }

    /// The queue a transfer to `target` goes to, if it can take the call
    /// now: a configured queue, or a logged-in agent's personal queue.
    async fn transfer_queue(&self, target: &str) -> Option<String> {
        if let Some(agent) = self.ctx.acd.agent_for_extension(target) {
            let snap = self.ctx.acd.snapshot().await.ok()?;
            let a = snap.agents.iter().find(|a| a.id == agent.0)?;
            let here = self.connected.as_ref().map(|c| &c.leg.agent);
            if a.state == "logged_out" || !a.reachable || here == Some(&agent) {
                return None;
            }
            return Some(crate::acd::personal_queue(&agent.0));
        }
        (self.ctx.queues.now().contains_key(target) && !target.contains(':'))
            .then(|| target.to_string())
    }

    /// A NOTIFY for the REFER subscription in the agent's dialog (RFC 3515
    /// §2.4.4), final: the subscription ends with it.
    pub(super) async fn notify_refer(&mut self, sipfrag: &str) {
        let ua = self.ctx.sip.local.user_agent.clone();
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        let Some(d) = c.leg.dialog.as_mut() else {
            return;
        };
        let peer = d.peer;
        let mut notify = d.request(Method::Notify, &ua);
        notify.headers.push("Event", "refer");
        notify
            .headers
            .push("Subscription-State", "terminated;reason=noresource");
        notify
            .headers
            .push("Content-Type", "message/sipfrag;version=2.0");
        notify.body = Bytes::from(format!("{sipfrag}\r\n"));
        self.ctx.sip.request(notify, peer).await;
    }

    /// Ends the bridged part after a transfer: BYE to the agent, talk and
    /// hold times noted, the bridge ended; the ACD was told already.
    pub(super) async fn end_connected_silently(&mut self) -> Option<LegMedia> {
        let mut c = self.connected.take()?;
        let now = Instant::now();
        // The recording ends now, not after the BYE below has gone out
        // (taken, so on_unbridged does not stop it again).
        if let Some(r) = c.recorder.take() {
            r.stop_at(now).await;
        }
        if let Some(out) = c.leg.hangup() {
            self.run_leg_outputs(vec![out]).await;
        }
        self.ctx.sip.end_dialog(c.leg.call_id.clone()).await;
        if let Some(since) = c.hold_since {
            c.held += now - since;
        }
        *self.record.acd.talk_ms.get_or_insert(0) += (now - c.since).as_millis() as i64;
        *self.record.acd.hold_ms.get_or_insert(0) += c.held.as_millis() as i64;
        self.on_unbridged(&c, now).await;
        c.bridge.end().await.ok().map(|(caller, _)| caller)
    }

    /// The caller's re-INVITE while bridged: apply it to the caller's side.
    pub(super) async fn apply_caller_media_to_bridge(
        &mut self,
        remote: Option<std::net::SocketAddr>,
        held: bool,
    ) -> bool {
        let Some(c) = self.connected.as_ref() else {
            return false;
        };
        let _ = c.bridge.set_remote(Side::Caller, remote).await;
        let _ = c.bridge.set_hold(Side::Caller, held).await;
        true
    }

    /// The agent's side ended (its BYE, or its RTP stopped): the ACD is
    /// told, the bridge ends, and the caller hears the survey (if the
    /// queue has one) or is hung up.
    async fn agent_left(&mut self, by: EndedBy) {
        let survey = self
            .record
            .queue
            .as_ref()
            .and_then(|q| self.queues.get(q))
            .is_some_and(|q| q.survey);
        let Some(caller_leg) = self.end_connected(by).await else {
            self.hangup(HangupBy::Agent, "agent_bye").await;
            return;
        };
        if !survey || by != EndedBy::Agent {
            drop(caller_leg);
            self.hangup(HangupBy::Agent, "agent_bye").await;
            return;
        }
        let (media, events) = session::resume(caller_leg);
        self.media = Some(media);
        self.media_events = Some(events);
        let mut s = Survey::new();
        let actions = s.start();
        self.survey = Some(s);
        self.record.hangup_reason = "agent_bye".into();
        self.perform_survey(actions).await;
    }

    /// Ends the bridged part: BYE to the agent if its leg is up, the ACD
    /// told who ended it, the record's talk and hold times. Returns the
    /// caller's leg media.
    pub(super) async fn end_connected(&mut self, by: EndedBy) -> Option<LegMedia> {
        let c = self.connected.as_ref()?;
        let in_acd = c.in_acd;
        self.connected_acd_call = c.acd_call.clone();
        let leg = self.end_connected_silently().await;
        if !in_acd {
            return leg;
        }
        let call = self
            .connected_acd_call
            .take()
            .unwrap_or_else(|| CallId(self.record.call_id.clone()));
        self.ctx.acd.call_ended(call, by).await;
        leg
    }

    pub(super) async fn on_bridge_event(&mut self, ev: BridgeEvent) {
        match ev {
            BridgeEvent::RtpTimeout { side } => {
                info!(?side, "no RTP on a bridged leg; hanging up");
                match side {
                    Side::Agent => {
                        self.end_connected(EndedBy::System).await;
                        self.hangup(HangupBy::System, "rtp_timeout_agent").await;
                    }
                    Side::Caller => self.hangup(HangupBy::System, "rtp_timeout").await,
                }
            }
            BridgeEvent::Digit { side, digit, .. } => {
                debug!(?side, "DTMF relayed");
                if side == Side::Agent {
                    self.on_agent_digit(digit).await;
                }
            }
            BridgeEvent::RemoteLatched { side, addr } => debug!(?side, %addr, "RTP latched"),
            BridgeEvent::PlaybackDone { .. } => {}
        }
    }

    // ----- the survey -------------------------------------------------------

    pub(super) async fn perform_survey(&mut self, actions: Vec<SurveyAction>) {
        for a in actions {
            match a {
                SurveyAction::Play { id, prompt } => {
                    let lang = self.ivr.as_ref().map(|v| v.language()).unwrap_or_default();
                    self.play(id, lang, &[prompt.to_string()]).await;
                }
                SurveyAction::Finish { score } => {
                    info!(score, "survey done");
                    self.record.acd.survey_score = score.map(i64::from);
                    self.survey = None;
                    self.hangup(HangupBy::Agent, "agent_bye").await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replaces_call_id;

    #[test]
    fn replaces_in_refer_to() {
        assert_eq!(
            replaces_call_id("<sip:1002@h?Replaces=abc%40host%3Bto-tag%3Dx%3Bfrom-tag%3Dy>")
                .as_deref(),
            Some("abc@host")
        );
        assert_eq!(
            replaces_call_id("sip:1002@h?X=1&replaces=k1%3Bto-tag%3Dx").as_deref(),
            Some("k1")
        );
        assert_eq!(replaces_call_id("<sip:1002@h>"), None);
        assert_eq!(replaces_call_id("<sip:1002@h?Replaces=>"), None);
        assert_eq!(
            replaces_call_id("<sip:1002@h?Replaces=%zz%3B>").as_deref(),
            Some("%zz")
        );
    }
}
