//! An inbound call from a citizen: answer, run the dialed number's IVR flow
//! over the call's media session, and leave one call record.
//!
//! The task owns the UAS leg (its dialog and offer/answer state), the RTP
//! session and the IVR session. It waits on four things at once: SIP events
//! for its dialog, media events (digits, playback done, RTP timeout), the
//! IVR's next deadline, and look-up results (run on other tasks so the
//! database never blocks the call). All time comes from tokio.
//!
//! Leg states (RFC 3261 §12/§13): `Proceeding` (INVITE received, maybe
//! ringing) → `Answered` (2xx sent, waiting for ACK) → `Confirmed` →
//! `Ended`. A CANCEL before the 2xx ends the call with 487.

mod agents;
mod external;
mod queueing;

use super::offer_answer::OfferAnswer;
use super::CallContext;
use crate::config::InbandDtmf;
use crate::ivr::engine::{IvrAction, IvrSession};
use crate::lang::Lang;
use crate::media::dtmf::info::parse_info_body;
use crate::media::recorder::{safe_file_stem, Recorder, RecorderError};
use crate::media::sdp::LocalMedia;
use crate::media::session::{self, MediaEvent, MediaHandle, SessionConfig};
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{new_tag, DialogEvent, IncomingCall, ALLOW};
use crate::sip::message::{response_to, Method, Request, Response};
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;
use crate::store::{CallRecord, Disposition, HangupBy, SqlValue};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

/// How long a look-up may take before the flow hears "system busy".
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

type LookupResult = Result<Option<BTreeMap<String, SqlValue>>, String>;

/// Runs one inbound call to its end.
pub async fn run(ctx: Arc<CallContext>, call: IncomingCall) {
    let call_id = call.request.call_id().unwrap_or("").to_string();
    let caller = call
        .request
        .from()
        .ok()
        .and_then(|f| f.uri.user_or_number().map(str::to_string))
        .unwrap_or_default();
    let dialed = dialed_number(&call.request);
    let span = info_span!("call", call_id = %call_id, caller = %caller, dialed = %dialed, trunk = %call.trunk);
    async move {
        info!(from = %call.peer.addr, user = call.user.as_deref().unwrap_or(""), "INVITE");
        // A QC user's or team lead's softphone dialing a monitor code.
        if let Some(user) = call.user.clone() {
            if let Some((mode, agent)) = crate::call::monitor::parse_code(&dialed) {
                let agent = agent.to_string();
                crate::call::monitor::run_dialed(ctx, call, &user, mode, &agent).await;
                return;
            }
        }
        // An agent's softphone dialing a feature code (*11 …).
        let feature = match (&call.user, crate::call::feature_codes::parse(&dialed)) {
            (Some(user), Some(op)) => {
                let (prompt, result) = crate::call::feature_codes::apply(&ctx.acd, user, op).await;
                info!(result, "feature code");
                Some(crate::call::feature_codes::confirmation_flow(
                    &dialed, prompt, &result,
                ))
            }
            // A softphone calling another agent's extension.
            (Some(_), None) => ctx
                .acd
                .agent_for_extension(&dialed)
                .map(|agent| crate::call::feature_codes::agent_call_flow(&dialed, &agent)),
            _ => None,
        };
        let from_softphone = call.user.is_some();
        let mut c = InboundCall::new(ctx, call, call_id, caller, dialed);
        c.flow_override = feature;
        c.from_softphone = from_softphone;
        c.run().await;
        c.finish().await;
    }
    .instrument(span)
    .await
}

/// The dialed number: the user part of the Request-URI, else of To.
fn dialed_number(req: &Request) -> String {
    crate::sip::uri::Uri::parse(&req.uri)
        .ok()
        .and_then(|u| u.user_or_number().map(str::to_string))
        .or_else(|| {
            req.to()
                .ok()
                .and_then(|t| t.uri.user_or_number().map(str::to_string))
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Proceeding,
    Answered,
    Confirmed,
    Ended,
}

struct InboundCall {
    ctx: Arc<CallContext>,
    /// The prompts as when the call came (a reload does not change them
    /// under a call).
    prompts: Arc<crate::media::prompts::PromptStore>,
    /// The queues' settings as when the call last joined a queue (or
    /// came): a reload does not change its hold music, survey or
    /// recording under it.
    queues: Arc<super::QueueConfigs>,
    invite: Request,
    invite_key: TransactionKey,
    peer: Peer,
    events: mpsc::Receiver<DialogEvent>,
    state: LegState,
    local_tag: String,
    dialog: Option<Dialog>,
    media: Option<MediaHandle>,
    media_events: Option<mpsc::Receiver<MediaEvent>>,
    offer_answer: Option<OfferAnswer>,
    ivr: Option<IvrSession>,
    lookups_tx: mpsc::Sender<LookupResult>,
    lookups_rx: mpsc::Receiver<LookupResult>,
    arrived: Instant,
    arrived_wall: DateTime<Utc>,
    answered: Option<Instant>,
    record: CallRecord,
    reached_queue: bool,
    voice_recording: Option<VoiceRecording>,
    /// While the caller is in an agent queue.
    queued: Option<queueing::Queued>,
    /// A closing prompt: the call ends when it has played.
    closing: Option<u64>,
    /// The call ended while waiting in a queue.
    abandoned_in_queue: bool,
    /// Agents being rung for this call.
    offers: Vec<agents::Offer>,
    /// The agent the caller is bridged to.
    connected: Option<agents::Connected>,
    /// Agents bridged so far (the next recording's segment number).
    segments: i64,
    /// Every agent leg's dialog events, tagged with the leg's Call-ID.
    agent_tx: mpsc::Sender<agents::AgentEvent>,
    agent_rx: mpsc::Receiver<agents::AgentEvent>,
    /// The satisfaction survey after the agent hung up.
    survey: Option<crate::call::survey::Survey>,
    /// The flow to run instead of the dialed number's (feature codes).
    flow_override: Option<Arc<crate::ivr::flow::Flow>>,
    /// Placed by an agent's softphone (authenticated), not a trunk.
    from_softphone: bool,
    /// Requests to hand this call's agent leg over (attended transfer).
    handover_rx: Option<mpsc::Receiver<Handover>>,
    /// While ending a bridged part: the ACD call its agent was on.
    connected_acd_call: Option<crate::acd::CallId>,
    /// A transfer to an external number, ringing through the trunk.
    external: Option<external::External>,
}

/// An attended transfer asks a consultation call for its agent leg.
pub struct Handover {
    pub(crate) reply: tokio::sync::oneshot::Sender<agents::HandedOver>,
}

/// A voice message being recorded.
struct VoiceRecording {
    recorder: Recorder,
    /// Relative to the data folder (what the record stores).
    relative: String,
    until: Instant,
    terminator: char,
}

/// Shorter messages are not kept (a caller hanging up at the beep).
const MIN_VOICE_MESSAGE: Duration = Duration::from_secs(1);

impl InboundCall {
    fn new(
        ctx: Arc<CallContext>,
        call: IncomingCall,
        call_id: String,
        caller: String,
        dialed: String,
    ) -> Self {
        let arrived = Instant::now();
        let arrived_wall = ctx.clock.now();
        let (lookups_tx, lookups_rx) = mpsc::channel(4);
        let (agent_tx, agent_rx) = mpsc::channel(agents::AGENT_EVENTS);
        InboundCall {
            prompts: ctx.prompts.now(),
            queues: ctx.queues.now(),
            ctx,
            invite: call.request,
            invite_key: call.key,
            peer: call.peer,
            events: call.events,
            state: LegState::Proceeding,
            local_tag: new_tag(),
            dialog: None,
            media: None,
            media_events: None,
            offer_answer: None,
            ivr: None,
            lookups_tx,
            lookups_rx,
            arrived,
            arrived_wall,
            answered: None,
            record: CallRecord {
                call_id,
                caller,
                dialed,
                arrived_at: arrived_wall,
                answered_at: None,
                ended_at: arrived_wall,
                duration_ms: 0,
                ivr_path: Vec::new(),
                self_service_result: None,
                disposition: Disposition::Rejected,
                hangup_by: HangupBy::System,
                hangup_reason: String::new(),
                sip_status: 0,
                codec: None,
                language: None,
                queue: None,
                voice_message: None,
                voice_message_ms: None,
                acd: Default::default(),
            },
            reached_queue: false,
            voice_recording: None,
            queued: None,
            closing: None,
            abandoned_in_queue: false,
            offers: Vec::new(),
            connected: None,
            segments: 0,
            agent_tx,
            agent_rx,
            survey: None,
            flow_override: None,
            from_softphone: false,
            handover_rx: None,
            connected_acd_call: None,
            external: None,
        }
    }

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        self.arrived_wall + chrono::Duration::from_std(at - self.arrived).unwrap_or_default()
    }

    // ----- answering --------------------------------------------------------

    async fn reject(&mut self, status: u16, reason: &str) {
        info!(status, reason, "call rejected");
        let mut resp = response_to(
            &self.invite,
            status,
            crate::sip::message::reason_phrase(status),
        );
        resp.set_to_tag(&self.local_tag);
        self.ctx.sip.respond(self.invite_key.clone(), resp).await;
        self.record.sip_status = status;
        self.record.disposition = Disposition::Rejected;
        self.record.hangup_by = HangupBy::System;
        self.record.hangup_reason = reason.to_string();
        self.state = LegState::Ended;
    }

    fn response(&self, status: u16) -> Response {
        let mut resp = response_to(
            &self.invite,
            status,
            crate::sip::message::reason_phrase(status),
        );
        resp.set_to_tag(&self.local_tag);
        resp.headers.push(
            "Contact",
            self.ctx
                .sip
                .local
                .contact(&self.record.dialed, self.peer.kind),
        );
        resp
    }

    /// Everything up to our 2xx. Returns false when the call ended before.
    async fn answer(&mut self) -> bool {
        let flow = self
            .flow_override
            .take()
            .or_else(|| self.ctx.flows.now().for_dialed(&self.record.dialed));
        let Some(flow) = flow else {
            self.reject(404, "no_flow").await;
            return false;
        };
        let socket = match self.ctx.ports.allocate() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no RTP port");
                self.reject(503, "no_rtp_port").await;
                return false;
            }
        };
        let local_port = socket.port();
        let mut oa = OfferAnswer::new(LocalMedia::new(self.ctx.rtp.advertised, local_port));
        let body = sdp_body(&self.invite);
        let our_sdp = match body {
            Some(offer) => match oa.answer(&offer) {
                Ok(s) => s,
                Err(e) => {
                    info!(error = %e, "no acceptable media");
                    let mut resp = self.response(488);
                    resp.headers
                        .push("Warning", "305 hotline \"Incompatible media format\"");
                    self.ctx.sip.respond(self.invite_key.clone(), resp).await;
                    self.record.sip_status = 488;
                    self.record.hangup_reason = "no_codec".into();
                    self.state = LegState::Ended;
                    return false;
                }
            },
            None => oa.offer(),
        };
        let dialog = match Dialog::uas(&self.invite, &self.local_tag, self.peer) {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "cannot form a dialog");
                self.reject(400, "bad_request").await;
                return false;
            }
        };
        self.dialog = Some(dialog);

        if !self.ctx.answer_delay.is_zero() {
            let ringing = self.response(180);
            self.ctx.sip.respond(self.invite_key.clone(), ringing).await;
            let until = Instant::now() + self.ctx.answer_delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    ev = self.events.recv() => match ev {
                        Some(DialogEvent::Cancel) | None => {
                            self.cancelled().await;
                            return false;
                        }
                        Some(other) => self.on_early_event(other).await,
                    },
                    _ = self.ctx.shutdown.cancelled() => {
                        self.reject(503, "shutdown").await;
                        return false;
                    }
                }
            }
        }

        let mut ok = self.response(200);
        ok.headers.push("Allow", ALLOW);
        ok.headers.push("Content-Type", "application/sdp");
        ok.body = Bytes::from(our_sdp);
        self.ctx.sip.respond(self.invite_key.clone(), ok).await;
        let now = Instant::now();
        self.answered = Some(now);
        self.record.answered_at = Some(self.wall(now));
        self.record.sip_status = 200;
        self.state = LegState::Answered;
        self.record.codec = oa.current.as_ref().map(|n| n.codec.name().to_string());
        self.note_open().await;

        let mut cfg = match &oa.current {
            Some(n) => SessionConfig::negotiated(socket, n),
            // Our offer is out; nothing is sent until the ACK brings the answer.
            None => SessionConfig::new(socket, None, crate::media::Codec::Pcmu),
        };
        cfg.rtp_timeout = self.ctx.rtp.timeout;
        // Tone detection costs a G.711 decode and a Goertzel pass per
        // received frame: only where digits may come as tones.
        cfg.inband_dtmf = match self.ctx.rtp.inband_dtmf {
            InbandDtmf::Auto => cfg.dtmf_pt.is_none(),
            InbandDtmf::Always => true,
            InbandDtmf::Never => false,
        };
        cfg.held = oa.current.is_none() || oa.held();
        let (handle, events) = session::spawn(cfg);
        self.media = Some(handle);
        self.media_events = Some(events);
        self.offer_answer = Some(oa);
        self.ivr = Some(IvrSession::new(flow, now, self.wall(now)));
        info!(codec = ?self.record.codec, "answered");
        true
    }

    async fn cancelled(&mut self) {
        info!("cancelled by the caller before answer");
        let resp = {
            let mut r = response_to(&self.invite, 487, "Request Terminated");
            r.set_to_tag(&self.local_tag);
            r
        };
        self.ctx.sip.respond(self.invite_key.clone(), resp).await;
        self.record.sip_status = 487;
        self.record.disposition = Disposition::AbandonedInIvr;
        self.record.hangup_by = HangupBy::Caller;
        self.record.hangup_reason = "cancel".into();
        self.state = LegState::Ended;
    }

    /// Requests that arrive while ringing (before our 2xx).
    async fn on_early_event(&mut self, ev: DialogEvent) {
        if let DialogEvent::Request { request, key, .. } = ev {
            let status = if request.method == Method::Options {
                200
            } else {
                491
            };
            let resp = response_to(&request, status, crate::sip::message::reason_phrase(status));
            self.ctx.sip.respond(key, resp).await;
        }
    }

    // ----- the answered call -------------------------------------------------

    async fn run(&mut self) {
        if !self.answer().await {
            return;
        }
        let now = Instant::now();
        let actions = match self.ivr.as_mut() {
            Some(ivr) => ivr.start(now),
            None => Vec::new(),
        };
        self.perform(actions).await;

        while self.state != LegState::Ended {
            let deadline = self.ivr.as_ref().and_then(|i| i.deadline());
            let recording_until = self.voice_recording.as_ref().map(|r| r.until);
            let survey_deadline = self.survey.as_ref().and_then(|s| s.deadline());
            let external_deadline = self.external_deadline();
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_dialog_event(ev).await,
                    None => {
                        self.hangup(HangupBy::System, "endpoint_closed").await;
                    }
                },
                ev = next_media_event(&mut self.media_events) => match ev {
                    Some(ev) => self.on_media_event(ev).await,
                    None => self.hangup(HangupBy::System, "media_failed").await,
                },
                Some((leg, ev)) = self.agent_rx.recv() => self.on_agent_event(leg, ev).await,
                Some(req) = agents::next_handover(&mut self.handover_rx) => {
                    self.hand_over(req).await;
                }
                Some(ev) = agents::next_bridge_event(&mut self.connected) => {
                    self.on_bridge_event(ev).await;
                }
                _ = sleep_until_opt(external_deadline) => self.external_timeout().await,
                _ = sleep_until_opt(survey_deadline) => {
                    let actions = match self.survey.as_mut() {
                        Some(s) => s.on_timer(Instant::now()),
                        None => Vec::new(),
                    };
                    self.perform_survey(actions).await;
                }
                Some(signal) = queueing::next_signal(&mut self.queued) => {
                    self.on_queue_signal(signal).await;
                }
                Some(result) = self.lookups_rx.recv() => {
                    let now = Instant::now();
                    let actions = match self.ivr.as_mut() {
                        Some(ivr) => ivr.on_lookup_result(now, result),
                        None => Vec::new(),
                    };
                    self.perform(actions).await;
                }
                _ = sleep_until_opt(recording_until) => {
                    debug!("voice message reached its maximum length");
                    self.stop_voice_message().await;
                }
                _ = sleep_until_opt(deadline) => {
                    let now = Instant::now();
                    let actions = match self.ivr.as_mut() {
                        Some(ivr) => ivr.on_timer(now),
                        None => Vec::new(),
                    };
                    self.perform(actions).await;
                }
                _ = self.ctx.shutdown.cancelled() => {
                    self.record.disposition = Disposition::Interrupted;
                    self.hangup(HangupBy::System, "shutdown").await;
                }
            }
        }
    }

    async fn on_dialog_event(&mut self, ev: DialogEvent) {
        match ev {
            DialogEvent::Ack { request } => {
                if self.state == LegState::Answered {
                    self.state = LegState::Confirmed;
                    debug!("ACK received; call confirmed");
                }
                let awaiting = self
                    .offer_answer
                    .as_ref()
                    .is_some_and(|oa| oa.awaiting_answer());
                if awaiting {
                    match sdp_body(&request) {
                        Some(answer) => {
                            let result = self
                                .offer_answer
                                .as_mut()
                                .map(|oa| oa.accept_answer(&answer));
                            match result {
                                Some(Ok(())) => self.apply_negotiated().await,
                                _ => {
                                    info!("ACK carried an unacceptable answer; hanging up");
                                    self.hangup(HangupBy::System, "bad_answer").await;
                                }
                            }
                        }
                        None => {
                            info!("ACK carried no SDP answer to our offer; hanging up");
                            self.hangup(HangupBy::System, "no_answer_sdp").await;
                        }
                    }
                }
            }
            DialogEvent::Cancel => {
                // CANCEL after our 2xx has no effect (RFC 3261 §9.2).
            }
            DialogEvent::AckTimeout => {
                info!("our 200 OK was never acknowledged");
                self.hangup(HangupBy::System, "no_ack").await;
            }
            DialogEvent::Response { .. } | DialogEvent::Timeout { .. } => {}
            DialogEvent::Request { request, key, .. } => self.on_request(request, key).await,
        }
    }

    async fn on_request(&mut self, request: Request, key: TransactionKey) {
        let seq_ok = match (self.dialog.as_mut(), request.cseq()) {
            (Some(d), Ok(cseq)) => d.accept_remote_cseq(cseq.seq, &request.method),
            _ => true,
        };
        if !seq_ok {
            let resp = response_to(&request, 500, "Server Internal Error");
            self.ctx.sip.respond(key, resp).await;
            return;
        }
        match request.method {
            Method::Bye => {
                let resp = response_to(&request, 200, "OK");
                self.ctx.sip.respond(key, resp).await;
                info!("caller hung up");
                self.ended(HangupBy::Caller, "bye");
            }
            Method::Invite => self.on_reinvite(request, key).await,
            Method::Info => {
                let ctype = request
                    .headers
                    .get("Content-Type")
                    .unwrap_or("")
                    .to_string();
                let digit = parse_info_body(&ctype, &request.body);
                let resp = response_to(&request, 200, "OK");
                self.ctx.sip.respond(key, resp).await;
                if let Some(d) = digit {
                    self.on_digit(d).await;
                }
            }
            Method::Options => {
                let mut resp = response_to(&request, 200, "OK");
                resp.headers.push("Allow", ALLOW);
                self.ctx.sip.respond(key, resp).await;
            }
            Method::Update => {
                // Session timers / early media are not used; an UPDATE
                // without SDP is accepted as a refresh.
                let status = if sdp_body(&request).is_some() {
                    488
                } else {
                    200
                };
                let resp =
                    response_to(&request, status, crate::sip::message::reason_phrase(status));
                self.ctx.sip.respond(key, resp).await;
            }
            Method::Other(_) => {
                let mut resp = response_to(&request, 501, "Not Implemented");
                resp.headers.push("Allow", ALLOW);
                self.ctx.sip.respond(key, resp).await;
            }
            _ => {
                let mut resp = response_to(&request, 405, "Method Not Allowed");
                resp.headers.push("Allow", ALLOW);
                self.ctx.sip.respond(key, resp).await;
            }
        }
    }

    /// A re-INVITE: hold (sendonly/inactive/0.0.0.0), resume, or a new
    /// address. Answered with our SDP; the same origin, a new version only
    /// if our SDP changed (RFC 3264 §8).
    async fn on_reinvite(&mut self, request: Request, key: TransactionKey) {
        let Some(offer) = sdp_body(&request) else {
            // An offerless re-INVITE: offer our current SDP again.
            let sdp = self
                .offer_answer
                .as_mut()
                .map(|oa| oa.offer())
                .unwrap_or_default();
            self.respond_with_sdp(&request, key, sdp).await;
            return;
        };
        let result = match self.offer_answer.as_mut() {
            Some(oa) => oa.answer(&offer),
            None => return,
        };
        match result {
            Ok(sdp) => {
                self.respond_with_sdp(&request, key, sdp).await;
                self.apply_negotiated().await;
            }
            Err(e) => {
                // The old session stays as it was (RFC 3261 §14.2).
                debug!(error = %e, "re-INVITE refused");
                let resp = response_to(&request, 488, "Not Acceptable Here");
                self.ctx.sip.respond(key, resp).await;
            }
        }
    }

    /// A plain response (no body) to a request of either leg.
    async fn reply(&self, request: &Request, key: TransactionKey, status: u16) {
        let resp = response_to(request, status, crate::sip::message::reason_phrase(status));
        self.ctx.sip.respond(key, resp).await;
    }

    /// A 200 to an in-dialog INVITE carrying our SDP.
    async fn respond_with_sdp(&self, request: &Request, key: TransactionKey, sdp: String) {
        self.respond_with_sdp_on(request, key, sdp, self.peer.kind)
            .await;
    }

    /// A 200 to an in-dialog INVITE carrying our SDP, with our Contact for
    /// a dialog on `kind` (the caller's or an agent's leg).
    async fn respond_with_sdp_on(
        &self,
        request: &Request,
        key: TransactionKey,
        sdp: String,
        kind: crate::sip::transport::TransportKind,
    ) {
        let mut resp = response_to(request, 200, "OK");
        resp.headers.push(
            "Contact",
            self.ctx.sip.local.contact(&self.record.dialed, kind),
        );
        resp.headers.push("Content-Type", "application/sdp");
        resp.body = Bytes::from(sdp);
        self.ctx.sip.respond(key, resp).await;
    }

    async fn apply_negotiated(&mut self) {
        let Some(n) = self.offer_answer.as_ref().and_then(|oa| oa.current.clone()) else {
            return;
        };
        let held = self.offer_answer.as_ref().is_some_and(|oa| oa.held());
        self.record.codec = Some(n.codec.name().to_string());
        if self.apply_caller_media_to_bridge(n.remote_rtp, held).await {
            info!(held, remote = ?n.remote_rtp, "bridged caller media updated");
            return;
        }
        if let Some(media) = self.media.as_ref() {
            let _ = media.set_remote(n.remote_rtp).await;
            let _ = media.set_hold(held).await;
            info!(held, remote = ?n.remote_rtp, "media updated");
        }
    }

    async fn on_media_event(&mut self, ev: MediaEvent) {
        let now = Instant::now();
        match ev {
            MediaEvent::PlaybackDone { id } if id & crate::call::survey::SURVEY_PLAY_BIT != 0 => {
                let actions = match self.survey.as_mut() {
                    Some(s) => s.on_playback_done(now, id),
                    None => Vec::new(),
                };
                self.perform_survey(actions).await;
            }
            MediaEvent::PlaybackDone { id } if id & queueing::QUEUE_PLAY_BIT != 0 => {
                self.on_queue_playback_done(id).await;
            }
            MediaEvent::PlaybackDone { id } => {
                let actions = match self.ivr.as_mut() {
                    Some(ivr) => ivr.on_playback_done(now, id),
                    None => Vec::new(),
                };
                self.perform(actions).await;
            }
            MediaEvent::Digit { digit, source } => {
                // The digit itself is never logged: it may be part of a PIN.
                debug!(?source, "DTMF digit");
                self.on_digit(digit).await;
            }
            MediaEvent::RtpTimeout => {
                info!("no RTP from the caller; hanging up");
                self.hangup(HangupBy::System, "rtp_timeout").await;
            }
            MediaEvent::RemoteLatched(addr) => debug!(%addr, "RTP latched"),
        }
    }

    async fn on_digit(&mut self, digit: char) {
        if let Some(s) = self.survey.as_mut() {
            let actions = s.on_digit(digit);
            self.perform_survey(actions).await;
            return;
        }
        if self.queued.is_some() {
            self.on_queue_digit(digit).await;
            return;
        }
        if let Some(rec) = &self.voice_recording {
            // While recording, only the terminator means anything.
            if digit == rec.terminator {
                self.stop_voice_message().await;
            }
            return;
        }
        let now = Instant::now();
        let actions = match self.ivr.as_mut() {
            Some(ivr) => ivr.on_digit(now, digit),
            None => Vec::new(),
        };
        self.perform(actions).await;
    }

    /// Carries out what the IVR asked for. Actions that complete at once
    /// (an unavailable queue, an unsupported voice message) feed the IVR
    /// again, so this loops until the IVR waits for something.
    async fn perform(&mut self, mut actions: Vec<IvrAction>) {
        while !actions.is_empty() && self.state != LegState::Ended {
            let mut next = Vec::new();
            for action in actions {
                let now = Instant::now();
                match action {
                    IvrAction::Play {
                        id, lang, prompts, ..
                    } => self.play(id, lang, &prompts).await,
                    IvrAction::StopPlayback => {
                        if let Some(m) = &self.media {
                            let _ = m.stop_playback().await;
                        }
                    }
                    IvrAction::Lookup { sql, params } => {
                        let store = self.ctx.store.clone();
                        let tx = self.lookups_tx.clone();
                        tokio::spawn(async move {
                            let result = match tokio::time::timeout(
                                LOOKUP_TIMEOUT,
                                store.lookup(&sql, &params),
                            )
                            .await
                            {
                                Ok(Ok(row)) => Ok(row),
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(_) => Err("look-up timed out".to_string()),
                            };
                            let _ = tx.send(result).await;
                        });
                    }
                    IvrAction::Queue { queue, priority } => {
                        if !self.join_queue(&queue, priority, None).await {
                            if let Some(ivr) = self.ivr.as_mut() {
                                next.extend(ivr.on_queue_unavailable(now));
                            }
                        }
                    }
                    IvrAction::RecordVoiceMessage { max, terminator } => {
                        if let Err(e) = self.start_voice_message(max, terminator).await {
                            warn!(error = %e, "cannot record the voice message");
                            if let Some(ivr) = self.ivr.as_mut() {
                                next.extend(ivr.on_voice_message_done(now, false));
                            }
                        }
                    }
                    IvrAction::Hangup { reason } => {
                        info!(reason, "flow ended the call");
                        self.hangup(HangupBy::System, &reason).await;
                        return;
                    }
                }
            }
            actions = next;
        }
    }

    async fn play(&mut self, id: u64, lang: Lang, names: &[String]) {
        let mut prompts = Vec::with_capacity(names.len());
        for name in names {
            match self.prompts.get(lang, name) {
                Some(p) => prompts.push(p),
                None => warn!(prompt = %name, %lang, "prompt missing at run time; skipped"),
            }
        }
        if let Some(m) = &self.media {
            let _ = m.play(id, prompts).await;
        }
    }

    /// Starts recording what the caller says, under
    /// `recordings/YYYY/MM/DD/HHMMSS-<call-id>-vm.wav` in the data folder.
    async fn start_voice_message(
        &mut self,
        max: Duration,
        terminator: char,
    ) -> Result<(), RecorderError> {
        let now = Instant::now();
        let wall = self.wall(now);
        let relative = format!(
            "{}/{}/{}-{}-vm.wav",
            crate::recording::FOLDER,
            wall.format("%Y/%m/%d"),
            wall.format("%H%M%S"),
            safe_file_stem(&self.record.call_id)
        );
        let codec = self
            .offer_answer
            .as_ref()
            .and_then(|oa| oa.current.as_ref())
            .map(|n| n.codec)
            .unwrap_or(crate::media::Codec::Pcmu);
        let recorder = Recorder::start(&self.ctx.data_dir.join(&relative), codec)?;
        if let Some(m) = &self.media {
            let _ = m.set_tap(Some(recorder.tap.clone())).await;
        }
        info!(file = %relative, ?max, "recording a voice message");
        self.voice_recording = Some(VoiceRecording {
            recorder,
            relative,
            until: now + max,
            terminator,
        });
        Ok(())
    }

    /// The voice message's row among the recordings (checksum and all).
    async fn save_voice_message_row(&self, relative: &str, r: &crate::media::recorder::Recording) {
        let ms = r.duration().as_millis() as i64;
        let ended = self.wall(Instant::now());
        let row = crate::store::RecordingRow {
            id: crate::store::new_uid(),
            call_id: self.record.call_id.clone(),
            kind: crate::store::RecordingKind::VoiceMessage,
            segment: 0,
            agent: None,
            queue: self.record.queue.clone(),
            caller: Some(self.record.caller.clone()),
            dialed: Some(self.record.dialed.clone()),
            path: relative.to_string(),
            channels: 1,
            started_at: ended - chrono::Duration::milliseconds(ms),
            ended_at: Some(ended),
            duration_ms: Some(ms),
            size_bytes: Some(r.size as i64),
            sha256: Some(r.sha256.clone()),
            masked_ms: 0,
            status: crate::store::RecordingStatus::Complete,
            deleted_at: None,
        };
        let _ = self.ctx.records.submit_recording(row).await;
    }

    /// Ends the recording, keeps it if long enough, and tells the IVR.
    async fn stop_voice_message(&mut self) {
        let saved = self.close_voice_message().await;
        let now = Instant::now();
        let actions = match self.ivr.as_mut() {
            Some(ivr) => ivr.on_voice_message_done(now, saved),
            None => Vec::new(),
        };
        Box::pin(self.perform(actions)).await;
    }

    /// Detaches the tap and closes the file; true if a message was kept.
    async fn close_voice_message(&mut self) -> bool {
        let Some(rec) = self.voice_recording.take() else {
            return false;
        };
        if let Some(m) = &self.media {
            let _ = m.set_tap(None).await;
        }
        match rec.recorder.finish().await {
            Ok(r) if r.duration() >= MIN_VOICE_MESSAGE => {
                info!(file = %rec.relative, ms = r.duration().as_millis() as u64, "voice message saved");
                self.save_voice_message_row(&rec.relative, &r).await;
                self.record.voice_message = Some(rec.relative);
                self.record.voice_message_ms = Some(r.duration().as_millis() as i64);
                true
            }
            Ok(r) => {
                debug!(
                    ms = r.duration().as_millis() as u64,
                    "voice message too short; discarded"
                );
                let _ = std::fs::remove_file(&r.path);
                false
            }
            Err(e) => {
                warn!(error = %e, "voice message lost");
                false
            }
        }
    }

    /// We end the call: BYE (or nothing if the leg is already gone).
    async fn hangup(&mut self, by: HangupBy, reason: &str) {
        if self.state == LegState::Ended {
            return;
        }
        if let Some(dialog) = self.dialog.as_mut() {
            let bye = dialog.request(Method::Bye, &self.ctx.sip.local.user_agent);
            self.ctx.sip.request(bye, dialog.peer).await;
        }
        self.ended(by, reason);
    }

    fn ended(&mut self, by: HangupBy, reason: &str) {
        self.state = LegState::Ended;
        self.record.hangup_by = by;
        self.record.hangup_reason = reason.to_string();
    }

    /// Copies what the IVR knows (path, result, language) into the record.
    fn fill_ivr_outcome(&mut self) {
        if let Some(ivr) = &self.ivr {
            self.record.ivr_path = ivr.path().to_vec();
            self.record.self_service_result = ivr.result().map(str::to_string);
            self.record.language = Some(ivr.language().code().to_string());
        }
    }

    /// Journals the call as up, with its record so far, so a record of it
    /// survives the daemon being killed (after answer; again once an agent
    /// has it).
    pub(super) async fn note_open(&mut self) {
        self.fill_ivr_outcome();
        if let Err(e) = self.ctx.records.submit_open(self.record.clone()).await {
            warn!(error = %e, "open call could not be journaled");
        }
    }

    /// Releases the media and hands the record to the writer.
    async fn finish(mut self) {
        let by = match self.record.hangup_by {
            HangupBy::Caller => crate::acd::EndedBy::Caller,
            HangupBy::Agent => crate::acd::EndedBy::Agent,
            HangupBy::System => crate::acd::EndedBy::System,
        };
        if self.handover_rx.take().is_some() {
            if let Ok(mut map) = self.ctx.consults.lock() {
                map.remove(&self.record.call_id);
            }
        }
        self.cancel_external().await;
        self.end_connected(by).await;
        self.cancel_all_offers().await;
        for o in std::mem::take(&mut self.offers) {
            self.ctx.sip.end_dialog(o.leg_call_id().to_string()).await;
        }
        self.leave_queue().await;
        // A caller who hangs up instead of pressing # has still left a message.
        self.close_voice_message().await;
        let now = Instant::now();
        if let Some(m) = self.media.take() {
            m.close().await;
        }
        self.record.ended_at = self.wall(now);
        self.record.duration_ms = self
            .answered
            .map(|a| (now - a).as_millis() as i64)
            .unwrap_or(0);
        self.fill_ivr_outcome();
        if self.answered.is_some() && self.record.disposition != Disposition::Interrupted {
            self.record.disposition = if self.record.voice_message.is_some() {
                Disposition::VoiceMessage
            } else if self.record.acd.agent.is_some() {
                Disposition::Answered
            } else if self.record.hangup_reason == "callback_requested" {
                Disposition::CallbackRequested
            } else if self.abandoned_in_queue {
                Disposition::AbandonedInQueue
            } else if self.reached_queue {
                Disposition::ToQueue
            } else if self.record.self_service_result.is_some()
                || self.record.hangup_by == HangupBy::System
            {
                Disposition::SelfServed
            } else {
                Disposition::AbandonedInIvr
            };
        }
        self.ctx.sip.end_dialog(self.record.call_id.clone()).await;
        info!(
            disposition = self.record.disposition.as_str(),
            hangup_by = self.record.hangup_by.as_str(),
            reason = %self.record.hangup_reason,
            duration_ms = self.record.duration_ms,
            "call ended"
        );
        if let Err(e) = self.ctx.records.submit(self.record).await {
            warn!(error = %e, "call record could not be queued");
        }
    }
}

/// The SDP body of a request, if it has one (alone, or as the SDP part of a
/// multipart/mixed body).
fn sdp_body(req: &Request) -> Option<Bytes> {
    if req.body.is_empty() {
        return None;
    }
    let ctype = req.headers.get("Content-Type").unwrap_or("application/sdp");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/sdp") {
        return Some(req.body.clone());
    }
    if mime.eq_ignore_ascii_case("multipart/mixed") {
        return crate::sip::validate::sdp_from_multipart(ctype, &req.body);
    }
    None
}

async fn next_media_event(events: &mut Option<mpsc::Receiver<MediaEvent>>) -> Option<MediaEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
