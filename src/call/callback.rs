//! The callback dialer (留置答, deferred answer): places the callbacks the
//! ACD hands out ([`CallbackJob`], when a request reaches the front of its
//! queue with an agent free).
//!
//! Each job is one attempt, run as its own task that owns both its legs:
//!
//! ```text
//!  ring the agent (AgentLeg, ringing::ring_agent) ──no answer──▶ offer_result(miss); the
//!        │ 2xx                                                    request stays in the queue
//!        ▼
//!  offer_result(Answered); INVITE the citizen through [sip.outbound]
//!        │ 2xx                               │ 486 / 408 / 480 / 5xx / no answer
//!        ▼                                   ▼
//!  bridge (citizen = caller side, who    the agent hears callback_citizen_unreachable,
//!  hears callback_intro first); BYE      BYE; call_ended; attempt `failed`, retried after
//!  from either side ends both;           acd.settings.callback_retry_minutes[n] at its
//!  call_ended; request `done`            original place (add_callback with its time),
//!                                        after the last one `given_up`
//! ```
//!
//! The citizen's leg is a UAC INVITE dialog (RFC 3261 §13.2) to the trunk,
//! run by the same sans-IO [`AgentLeg`] state machine with one fork (its
//! final-response mapping — 486/600 busy, 603 declined, 408/480/487 no
//! answer — is what a citizen's leg needs too). Every state change of the
//! request and every attempt goes to the store writer; nothing here waits
//! on the database.
//!
//! The ACD times the agent's ringing: its `CancelOffer` for a callback
//! reaches the attempt as [`CallbackJob::withdrawn`].
//!
//! Known limit: mid-call re-INVITEs (hold) on a callback are refused with
//! 488.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

use super::acd_service::{CallbackJob, CallbackRequest};
use super::agent_leg::{AgentLeg, LegOutput, LegState};
use super::offer_answer::OfferAnswer;
use super::ringing::{answer_in_dialog, forward, ring_agent, run_leg_outputs, LegEvent, RingFrom};
use super::CallContext;
use crate::acd::{AgentId, CallId, EndedBy, OfferResult};
use crate::config::OutboundTrunk;
use crate::lang::Lang;
use crate::media::bridge::{self, BridgeConfig, BridgeEvent, Side};
use crate::media::port_pool::RtpSocket;
use crate::media::sdp::{LocalMedia, Negotiated};
use crate::media::session::{self, LegMedia, MediaEvent, SessionConfig};
use crate::sip::endpoint::{new_tag, DialogEvent};
use crate::sip::message::{reason_phrase, response_to, Method, Request};
use crate::sip::outbound::invite_to_trunk;
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::Peer;
use crate::store::{CallbackAttemptRow, CallbackRow};

/// Capacity of one attempt's leg-event channel.
const LEG_EVENTS: usize = 64;
/// The citizen's phone rings this long before the attempt counts as no
/// answer.
pub const CITIZEN_RING_TIMEOUT: Duration = Duration::from_secs(60);
/// The dialer's own ring timeout for the agent runs this much past the
/// ACD's (which withdraws the offer first).
const WITHDRAW_GRACE: Duration = Duration::from_secs(1);
/// After a CANCEL, wait this long at most for the last final responses.
const LINGER: Duration = Duration::from_secs(5);
/// The agent's "citizen unreachable" prompt plays this long at most.
const PROMPT_MAX: Duration = Duration::from_secs(20);
/// Prompt the citizen hears when it answers.
pub const INTRO_PROMPT: &str = "callback_intro";
/// Prompt the agent hears when the citizen cannot be reached.
pub const UNREACHABLE_PROMPT: &str = "callback_citizen_unreachable";

/// Takes callback jobs until the ACD stops; each runs as its own task.
pub async fn run_dialer(ctx: Arc<CallContext>, mut jobs: mpsc::Receiver<CallbackJob>) {
    while let Some(job) = jobs.recv().await {
        let ctx = ctx.clone();
        let span =
            info_span!("callback", call_id = %job.request.call, attempt = job.request.attempts + 1);
        tokio::spawn(async move { attempt(ctx, job).await }.instrument(span));
    }
    debug!("callback dialer stopped");
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The agent was not reached (the ACD was told; the request stays in
    /// the queue and nothing is recorded).
    AgentNotReached,
    /// Citizen and agent talked.
    Talked { talk: Duration },
    /// The agent answered but the citizen was not reached (`result` as
    /// stored: busy, no_answer, declined, failed, agent_hung_up).
    Failed { result: &'static str },
}

fn result_name(r: OfferResult) -> &'static str {
    match r {
        OfferResult::Answered => "answered",
        OfferResult::NoAnswer => "no_answer",
        OfferResult::Busy => "busy",
        OfferResult::Declined => "declined",
        OfferResult::Failed => "failed",
    }
}

/// One attempt, then its record and, after a failure, the retry.
async fn attempt(ctx: Arc<CallContext>, job: CallbackJob) {
    let started = ctx.clock.now();
    let Some(trunk) = ctx.outbound.clone() else {
        warn!("no outbound trunk; callback not placed");
        let _ = ctx
            .acd
            .offer_result(job.request.call.clone(), job.agent, OfferResult::Failed)
            .await;
        return;
    };
    let outcome = Attempt::new(&ctx, &job, &trunk).run().await;
    let mut request = job.request;
    if outcome == Outcome::AgentNotReached {
        return;
    }
    request.attempts += 1;
    let (result, talk_ms) = match &outcome {
        Outcome::Talked { talk } => ("answered", Some(talk.as_millis() as i64)),
        Outcome::Failed { result } => (*result, None),
        Outcome::AgentNotReached => return,
    };
    let row = CallbackAttemptRow {
        call_id: request.call.0.clone(),
        attempt: i64::from(request.attempts),
        started_at: started,
        agent: job.agent.0.clone(),
        result: result.to_string(),
        talk_ms,
    };
    if let Err(e) = ctx.records.submit_callback_attempt(row).await {
        warn!(error = %e, "callback attempt not stored");
    }
    let retry = ctx
        .callback_retry
        .now()
        .get(request.attempts as usize - 1)
        .copied()
        .filter(|_| result != "answered");
    let now = ctx.clock.now();
    let state = match (&outcome, retry) {
        (Outcome::Talked { .. }, _) => "done",
        (_, Some(_)) => "failed",
        (_, None) => "given_up",
    };
    let mut stored: CallbackRow = request.row(state, now);
    stored.last_result = Some(result.to_string());
    stored.last_agent = Some(job.agent.0.clone());
    stored.next_attempt_at = retry.map(|d| now + chrono::Duration::from_std(d).unwrap_or_default());
    if let Err(e) = ctx.records.submit_callback(stored).await {
        warn!(error = %e, "callback request not stored");
    }
    info!(
        result,
        state,
        attempts = request.attempts,
        "callback attempt over"
    );
    if let Some(delay) = retry {
        schedule_retry(ctx, request, delay).await;
    }
}

/// Puts `request` back in its queue after `delay`, at the place of its
/// original time. At shutdown it stays stored (`failed`) and comes back
/// at the next start.
pub async fn schedule_retry(ctx: Arc<CallContext>, request: CallbackRequest, delay: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = ctx.shutdown.cancelled() => return,
    }
    let call = request.call.clone();
    match ctx.acd.add_callback(request).await {
        Ok(()) => info!(call = %call, "callback retry back in its queue"),
        Err(e) => warn!(call = %call, error = %e, "callback retry not queued"),
    }
}

/// The citizen's leg while it rings or talks.
struct Citizen {
    leg: AgentLeg,
    oa: OfferAnswer,
    socket: Option<RtpSocket>,
}

/// The legs of one attempt.
struct Attempt<'a> {
    ctx: &'a CallContext,
    job: &'a CallbackJob,
    trunk: &'a OutboundTrunk,
    call: CallId,
    events_tx: mpsc::Sender<LegEvent>,
    events: mpsc::Receiver<LegEvent>,
}

impl<'a> Attempt<'a> {
    fn new(ctx: &'a CallContext, job: &'a CallbackJob, trunk: &'a OutboundTrunk) -> Self {
        let (events_tx, events) = mpsc::channel(LEG_EVENTS);
        Attempt {
            ctx,
            job,
            trunk,
            call: job.request.call.clone(),
            events_tx,
            events,
        }
    }

    async fn offer_result(&self, result: OfferResult) -> bool {
        self.ctx
            .acd
            .offer_result(self.call.clone(), self.job.agent.clone(), result)
            .await
            .is_ok()
    }

    async fn run(mut self) -> Outcome {
        let socket = match self.ctx.ports.allocate() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no RTP port for the callback's agent leg");
                self.offer_result(OfferResult::Failed).await;
                return Outcome::AgentNotReached;
            }
        };
        let mut oa = OfferAnswer::new(LocalMedia::new(self.ctx.rtp.advertised, socket.port()));
        let sdp = oa.offer();
        let from = RingFrom {
            number: &self.job.request.number,
            display: Some("callback"),
            contact_user: &self.trunk.from_number,
        };
        let leg_call_id = format!("{}-cb", new_tag());
        let ring = ring_agent(
            &self.ctx.sip,
            self.job.agent.clone(),
            &self.job.extension,
            leg_call_id,
            from,
            &sdp,
            &self.events_tx,
        )
        .await;
        let mut agent = match ring {
            Ok(leg) => leg,
            Err(e) => {
                info!(agent = %self.job.agent, error = %e, "callback: agent not rung");
                self.offer_result(OfferResult::Failed).await;
                return Outcome::AgentNotReached;
            }
        };
        let Some(answer) = self.ring_agent(&mut agent).await else {
            return Outcome::AgentNotReached;
        };
        let usable = oa.accept_answer(&answer).is_ok();
        if !usable || !self.offer_result(OfferResult::Answered).await {
            info!(usable, "callback: agent's answer not used; ending its leg");
            if !usable {
                self.offer_result(OfferResult::Failed).await;
            }
            self.bye(&mut agent).await;
            self.ctx.sip.end_dialog(agent.call_id.clone()).await;
            return Outcome::AgentNotReached;
        }
        let Some(n) = oa.current.clone() else {
            return self.agent_only_failure(agent, None, "failed").await;
        };
        info!(agent = %self.job.agent, "callback: agent answered; calling the citizen");
        let agent_media = LegMedia::new(self.session_config(socket, &n));
        match self.call_citizen(&n).await {
            Ok(mut citizen) => match self.ring_citizen(&mut agent, &mut citizen).await {
                Ok(answer) => self.talk(agent, agent_media, citizen, &answer).await,
                Err(result) => {
                    self.ctx.sip.end_dialog(citizen.leg.call_id.clone()).await;
                    self.agent_only_failure(agent, Some(agent_media), result)
                        .await
                }
            },
            Err(result) => {
                self.agent_only_failure(agent, Some(agent_media), result)
                    .await
            }
        }
    }

    fn session_config(&self, socket: RtpSocket, n: &Negotiated) -> SessionConfig {
        let mut cfg = SessionConfig::negotiated(socket, n);
        cfg.rtp_timeout = self.ctx.rtp.timeout;
        cfg.inband_dtmf = false;
        cfg
    }

    /// Waits for the agent's answer (its SDP); `None` if it did not
    /// answer (the ACD is told) or the ACD withdrew the offer (its ring
    /// timeout; the dialer's own, a little later, is a fallback).
    async fn ring_agent(&mut self, agent: &mut AgentLeg) -> Option<bytes::Bytes> {
        let deadline = Instant::now() + self.job.ring_timeout + WITHDRAW_GRACE;
        loop {
            tokio::select! {
                ev = self.events.recv() => {
                    let (_, ev) = ev?;
                    let outputs = self.leg_event(agent, ev).await;
                    let failed = outputs.iter().find_map(|o| match o {
                        LegOutput::Failed(r) => Some(*r),
                        _ => None,
                    });
                    let answered = run_leg_outputs(&self.ctx.sip, outputs).await;
                    if let Some(r) = failed {
                        info!(agent = %self.job.agent, result = ?r, "callback: agent did not answer");
                        self.offer_result(r).await;
                        self.ctx.sip.end_dialog(agent.call_id.clone()).await;
                        return None;
                    }
                    if answered.is_some() {
                        return answered;
                    }
                }
                _ = self.job.withdrawn.cancelled() => {
                    info!(agent = %self.job.agent, "callback: offer withdrawn; cancelling");
                    self.cancel(agent).await;
                    return None;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    info!(agent = %self.job.agent, "callback: agent rang out");
                    self.cancel(agent).await;
                    self.offer_result(OfferResult::NoAnswer).await;
                    return None;
                }
                _ = self.ctx.shutdown.cancelled() => {
                    self.cancel(agent).await;
                    self.offer_result(OfferResult::Failed).await;
                    return None;
                }
            }
        }
    }

    /// CANCELs a ringing leg and waits (briefly) for its last responses,
    /// so that a 2xx crossing the CANCEL is ACKed and ended (BYE).
    async fn cancel(&mut self, leg: &mut AgentLeg) {
        let outputs = leg.cancel();
        run_leg_outputs(&self.ctx.sip, outputs).await;
        let until = Instant::now() + LINGER;
        while !leg.all_final() {
            tokio::select! {
                ev = self.events.recv() => {
                    let Some((id, ev)) = ev else { break };
                    if id != leg.call_id {
                        continue;
                    }
                    let outputs = self.leg_event(leg, ev).await;
                    run_leg_outputs(&self.ctx.sip, outputs).await;
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        self.ctx.sip.end_dialog(leg.call_id.clone()).await;
    }

    /// A dialog event of a ringing leg: responses go to the leg; requests
    /// (OPTIONS; anything else is unexpected before the answer) are
    /// answered here.
    async fn leg_event(&self, leg: &mut AgentLeg, ev: DialogEvent) -> Vec<LegOutput> {
        match ev {
            DialogEvent::Response { response, key } => leg.on_response(&key, &response),
            DialogEvent::Timeout { key } => leg.on_timeout(&key),
            DialogEvent::Request { request, key, .. } => {
                let status = if request.method == Method::Options {
                    200
                } else {
                    481
                };
                let resp = response_to(&request, status, reason_phrase(status));
                self.ctx.sip.respond(key, resp).await;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// BYE to an answered leg.
    async fn bye(&self, leg: &mut AgentLeg) {
        if let Some(out) = leg.hangup() {
            run_leg_outputs(&self.ctx.sip, vec![out]).await;
        }
    }

    /// Sends the INVITE to the citizen through the trunk.
    async fn call_citizen(&mut self, agent_media: &Negotiated) -> Result<Citizen, &'static str> {
        let socket = self.ctx.ports.allocate().map_err(|e| {
            warn!(error = %e, "no RTP port for the citizen's leg");
            "failed"
        })?;
        let mut oa = OfferAnswer::new(LocalMedia::new(self.ctx.rtp.advertised, socket.port()));
        let sdp = oa.offer_preferring(Some(agent_media.codec));
        let call_id = format!("{}-cbt", new_tag());
        let local_tag = new_tag();
        let trunk = Peer {
            kind: self.trunk.transport,
            addr: self.trunk.address,
        };
        let contact = self
            .ctx
            .sip
            .local
            .contact(&self.trunk.from_number, self.trunk.transport);
        let number = format!("{}{}", self.trunk.prefix, self.job.request.number);
        let (invite, peer) = invite_to_trunk(
            trunk,
            &number,
            &self.trunk.from_number,
            &call_id,
            &local_tag,
            &contact,
            &sdp,
        );
        let rx = self.ctx.sip.open_dialog(&call_id).await;
        forward(call_id.clone(), rx, self.events_tx.clone());
        let mut leg = AgentLeg::new(
            AgentId(number),
            call_id.clone(),
            local_tag,
            &self.ctx.sip.local.user_agent,
        );
        match self.ctx.sip.send_request(invite.clone(), peer).await {
            Some(key) => leg.add_fork(key, invite, peer),
            None => {
                self.ctx.sip.end_dialog(call_id).await;
                return Err("failed");
            }
        }
        info!(trunk = %self.trunk.address, leg = %leg.call_id, "callback: calling the citizen");
        Ok(Citizen {
            leg,
            oa,
            socket: Some(socket),
        })
    }

    /// Waits for the citizen's answer while the agent holds on; the error
    /// is the stored result of the attempt.
    async fn ring_citizen(
        &mut self,
        agent: &mut AgentLeg,
        citizen: &mut Citizen,
    ) -> Result<bytes::Bytes, &'static str> {
        let deadline = Instant::now() + CITIZEN_RING_TIMEOUT;
        loop {
            tokio::select! {
                ev = self.events.recv() => {
                    let Some((id, ev)) = ev else { return Err("failed") };
                    if id == agent.call_id {
                        if self.answered_leg_event(agent, ev).await {
                            info!("callback: the agent hung up while the citizen rang");
                            self.cancel(&mut citizen.leg).await;
                            return Err("agent_hung_up");
                        }
                        continue;
                    }
                    let outputs = self.leg_event(&mut citizen.leg, ev).await;
                    let failed = outputs.iter().find_map(|o| match o {
                        LegOutput::Failed(r) => Some(*r),
                        _ => None,
                    });
                    let answered = run_leg_outputs(&self.ctx.sip, outputs).await;
                    if let Some(r) = failed {
                        info!(result = ?r, "callback: citizen not reached");
                        return Err(result_name(r));
                    }
                    if let Some(sdp) = answered {
                        return Ok(sdp);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    info!("callback: the citizen did not answer");
                    self.cancel(&mut citizen.leg).await;
                    return Err("no_answer");
                }
                _ = self.ctx.shutdown.cancelled() => {
                    self.cancel(&mut citizen.leg).await;
                    return Err("failed");
                }
            }
        }
    }

    /// An event of an answered leg; true if it hung up (BYE, answered).
    async fn answered_leg_event(&self, leg: &mut AgentLeg, ev: DialogEvent) -> bool {
        match ev {
            DialogEvent::Response { response, key } => {
                // A retransmitted 2xx needs its ACK again.
                let outputs = leg.on_response(&key, &response);
                run_leg_outputs(&self.ctx.sip, outputs).await;
                false
            }
            DialogEvent::Request { request, key, .. } => self.in_dialog(leg, request, key).await,
            _ => false,
        }
    }

    /// A request inside an answered leg's dialog; true for a BYE.
    async fn in_dialog(&self, leg: &mut AgentLeg, request: Request, key: TransactionKey) -> bool {
        let ended = answer_in_dialog(&self.ctx.sip, &request, key, "callback").await;
        if ended {
            leg.remote_hangup();
        }
        ended
    }

    /// The citizen was not reached: the agent hears a short prompt, its
    /// leg ends, the ACD is told the call ended.
    async fn agent_only_failure(
        &mut self,
        mut agent: AgentLeg,
        media: Option<LegMedia>,
        result: &'static str,
    ) -> Outcome {
        if agent.state() == LegState::Answered {
            if let Some(media) = media {
                self.tell_agent(&mut agent, media).await;
            }
            self.bye(&mut agent).await;
        }
        self.ctx.sip.end_dialog(agent.call_id.clone()).await;
        let by = if result == "agent_hung_up" {
            EndedBy::Agent
        } else {
            EndedBy::System
        };
        self.ctx.acd.call_ended(self.call.clone(), by).await;
        Outcome::Failed { result }
    }

    /// Plays the "citizen unreachable" prompt to the agent (until it ends,
    /// the agent hangs up, or [`PROMPT_MAX`]).
    async fn tell_agent(&mut self, agent: &mut AgentLeg, media: LegMedia) {
        let (handle, mut media_events) = session::resume(media);
        let prompts: Vec<_> = self
            .ctx
            .prompts
            .now()
            .get(Lang::default(), UNREACHABLE_PROMPT)
            .into_iter()
            .collect();
        let _ = handle.play(1, prompts).await;
        let until = Instant::now() + PROMPT_MAX;
        loop {
            tokio::select! {
                ev = media_events.recv() => match ev {
                    Some(MediaEvent::PlaybackDone { id: 1 }) | None => break,
                    Some(_) => {}
                },
                ev = self.events.recv() => {
                    let Some((id, ev)) = ev else { break };
                    if id == agent.call_id && self.answered_leg_event(agent, ev).await {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        handle.close().await;
    }

    /// Both answered: bridge them, the citizen hears the intro, and either
    /// side's BYE (or RTP stopping, or shutdown) ends both.
    async fn talk(
        &mut self,
        mut agent: AgentLeg,
        agent_media: LegMedia,
        mut citizen: Citizen,
        answer: &[u8],
    ) -> Outcome {
        let n = match citizen.oa.accept_answer(answer) {
            Ok(()) => citizen.oa.current.clone(),
            Err(e) => {
                info!(error = %e, "citizen's answer unusable");
                None
            }
        };
        let (Some(n), Some(socket)) = (n, citizen.socket.take()) else {
            self.bye(&mut citizen.leg).await;
            self.ctx.sip.end_dialog(citizen.leg.call_id.clone()).await;
            return self
                .agent_only_failure(agent, Some(agent_media), "failed")
                .await;
        };
        let citizen_media = LegMedia::new(self.session_config(socket, &n));
        let (bridge, mut bridge_events) =
            bridge::spawn(BridgeConfig::new(citizen_media, agent_media));
        if let Some(p) = self.ctx.prompts.now().get(Lang::default(), INTRO_PROMPT) {
            let _ = bridge.play(Side::Caller, 1, vec![p]).await;
        }
        let since = Instant::now();
        info!(
            codec = n.codec.name(),
            "callback: citizen answered; bridged"
        );
        let by = loop {
            tokio::select! {
                ev = self.events.recv() => {
                    let Some((id, ev)) = ev else { break EndedBy::System };
                    if id == agent.call_id {
                        if self.answered_leg_event(&mut agent, ev).await {
                            break EndedBy::Agent;
                        }
                    } else if id == citizen.leg.call_id
                        && self.answered_leg_event(&mut citizen.leg, ev).await
                    {
                        break EndedBy::Caller;
                    }
                }
                ev = bridge_events.recv() => match ev {
                    Some(BridgeEvent::RtpTimeout { side }) => {
                        info!(?side, "no RTP on a callback; hanging up");
                        break EndedBy::System;
                    }
                    Some(_) => {}
                    None => break EndedBy::System,
                },
                _ = self.ctx.shutdown.cancelled() => break EndedBy::System,
            }
        };
        let talk = since.elapsed();
        info!(
            by = by.as_str(),
            talk_ms = talk.as_millis() as u64,
            "callback ended"
        );
        self.bye(&mut agent).await;
        self.bye(&mut citizen.leg).await;
        self.ctx.sip.end_dialog(agent.call_id.clone()).await;
        self.ctx.sip.end_dialog(citizen.leg.call_id.clone()).await;
        self.ctx.acd.call_ended(self.call.clone(), by).await;
        let _ = bridge.end().await;
        Outcome::Talked { talk }
    }
}

/// Stored requests to restore at start: those due now go to the ACD at
/// once (`acd_service::spawn`), the others after their retry time.
pub fn split_due(
    rows: &[CallbackRow],
    wall_now: DateTime<Utc>,
) -> (Vec<CallbackRequest>, Vec<(CallbackRequest, Duration)>) {
    let mut due = Vec::new();
    let mut later = Vec::new();
    for row in rows {
        let request = CallbackRequest::from_row(row, wall_now);
        match row.next_attempt_at.map(|t| (t - wall_now).to_std()) {
            Some(Ok(wait)) if !wait.is_zero() => later.push((request, wait)),
            _ => due.push(request),
        }
    }
    (due, later)
}
