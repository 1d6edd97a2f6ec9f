//! Live monitoring (同步监听): a QC user or team lead listens to an agent's
//! bridged call on their own softphone. [`MonitorHandle::start`] (the HTTP
//! API `POST /api/agents/{id}/monitor`, and the QC pages on top of it)
//! rings the supervisor's extension and returns the monitor leg's Call-ID
//! once the INVITE is out; the leg then runs as its own task:
//!
//! ```text
//!  ring the extension (ringing::ring_agent, From "Monitor <agent>")
//!        │ 2xx                       │ no answer / rejected / the call ended first
//!        ▼                           ▼
//!  tap the agent's bridge;          CANCEL (if ringing); done
//!  feed the supervisor the mix
//!  (media::monitor_feed)
//!        │ the supervisor's BYE           │ the bridged call ends (tap closed,
//!        ▼                                ▼  or the agent's live call gone) / shutdown
//!  200; stop the feed; done         BYE to the supervisor; done
//! ```
//!
//! In every mode the supervisor hears caller and agent mixed. Listening,
//! what it sends is dropped, so neither party hears it; whispering (耳语)
//! the bridge mixes it into what the agent hears only, barging in (强插)
//! into what both hear — a three-way call ([`crate::media::voice_mix`]).
//!
//! The bridge is never made to wait: the tap is bounded and the bridge
//! drops frames when it is full. At most [`MAX_PER_AGENT`] monitors run on
//! one agent at a time.
//!
//! A supervisor's phone that sends no RTP for `[rtp] timeout_secs` is
//! hung up (it vanished without a BYE). Its re-INVITEs (hold, resume, a
//! new address or codec) are answered and applied to the feed; while it
//! holds, it is sent nothing.
//!
//! A recorded call keeps what the supervisor says: whispering or barging
//! in, it is summed into the recording's right channel (the center's side),
//! and every monitor puts marks on the recording's timeline (`monitor`
//! when connected, with mode and user; `monitor_end`). Each monitor leg
//! writes its own call record (disposition `monitor`; the monitored agent
//! and queue, the supervisor's extension as the caller).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use super::agent_leg::{AgentLeg, LegOutput};
use super::live::LiveCall;
use super::offer_answer::OfferAnswer;
use super::ringing::{
    answer_in_dialog, ring_agent, run_leg_outputs, LegEvent, RingError, RingFrom,
};
use super::CallContext;
use crate::acd::AgentId;
use crate::media::monitor_feed::{self, FeedEnd, SupervisorVoice};
use crate::media::port_pool::RtpSocket;
use crate::media::sdp::{LocalMedia, Negotiated};
use crate::media::session::{LegMedia, SessionConfig};
use crate::media::tap::TapEvent;
use crate::media::voice_mix::{Voice, VoiceTo};
use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{new_tag, DialogEvent, IncomingCall, SipHandle, ALLOW};
use crate::sip::message::{reason_phrase, response_to, Method, Request};
use crate::sip::transaction::TransactionKey;
use crate::sip::transport::TransportKind;
use crate::store::{CallRecord, Disposition, HangupBy, QueueOutcome};

/// At most this many monitors listen to one agent at a time.
pub const MAX_PER_AGENT: usize = 2;
/// The supervisor's phone rings this long before the monitor gives up.
pub const RING_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the monitor looks whether the agent's call is still the one
/// it monitors (besides the tap closing when the bridge ends).
const LIVE_CHECK: Duration = Duration::from_secs(1);
/// Capacity of the tap on the agent's bridge: 1 s of both sides.
const TAP_CAPACITY: usize = 100;
/// Capacity of the monitor leg's dialog events.
const LEG_EVENTS: usize = 32;
/// After a CANCEL, wait this long at most for the last final responses.
const LINGER: Duration = Duration::from_secs(5);

/// How the supervisor takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorMode {
    /// Hears both parties; nobody hears the supervisor.
    Listen,
    /// Also talks to the agent only.
    Whisper,
    /// Talks to both (a three-way call).
    Barge,
}

impl MonitorMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }
}

impl fmt::Display for MonitorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is none of `listen`, `whisper`, `barge`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown monitor mode {0:?} (listen, whisper or barge)")]
pub struct UnknownMode(pub String);

impl FromStr for MonitorMode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, UnknownMode> {
        match s {
            "listen" => Ok(MonitorMode::Listen),
            "whisper" => Ok(MonitorMode::Whisper),
            "barge" => Ok(MonitorMode::Barge),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

/// What to monitor, from where, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorRequest {
    /// The monitored agent's id.
    pub agent: String,
    /// The supervisor's extension (its registered softphone is rung).
    pub extension: String,
    pub mode: MonitorMode,
    /// The QC user or team lead (for the log and the audit entry).
    pub by: String,
}

/// Why a monitor was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    #[error("agent {0} is not on a live call")]
    NoLiveCall(String),
    #[error("extension {0} has no registered softphone")]
    NotRegistered(String),
    #[error("extension {0} did not answer")]
    NotAnswered(String),
    #[error("agent {agent} already has {max} monitors listening")]
    TooMany { agent: String, max: usize },
    #[error("extension {0} is the monitored agent's own phone")]
    OwnExtension(String),
    #[error("no RTP port free for the monitor leg")]
    NoPort,
    #[error("the INVITE to extension {0} could not be sent")]
    NotSent(String),
    #[error("the audit log is not being written: monitoring refused")]
    NotAudited,
}

/// The monitors running and who may dial the monitor codes; shared by
/// the [`MonitorHandle`] and softphone calls ([`CallContext::monitors`]).
#[derive(Debug, Clone, Default)]
pub struct Monitors {
    active: Arc<Mutex<HashMap<String, usize>>>,
    /// Extensions allowed to dial `*31`…`*33` (`[[registrar.users]]
    /// monitor = true`), as of the last reload.
    allowed: Arc<crate::reload::Live<HashSet<String>>>,
    /// The legs run here, beside the calls: shutdown waits for them (their
    /// BYE and call record) as for any call.
    tasks: TaskTracker,
}

impl Monitors {
    pub fn new(allowed: impl IntoIterator<Item = String>, tasks: TaskTracker) -> Self {
        Monitors {
            active: Arc::default(),
            allowed: Arc::new(crate::reload::Live::new(Arc::new(
                allowed.into_iter().collect(),
            ))),
            tasks,
        }
    }

    /// Whether the softphone `extension` may dial the monitor codes.
    pub fn may_monitor(&self, extension: &str) -> bool {
        self.allowed.now().contains(extension)
    }

    /// A reload's monitor users (monitors already running go on).
    pub fn set_allowed(&self, allowed: impl IntoIterator<Item = String>) {
        self.allowed.set(Arc::new(allowed.into_iter().collect()));
    }

    /// Monitors running on `agent` now.
    pub fn active(&self, agent: &str) -> usize {
        self.active
            .lock()
            .map(|m| m.get(agent).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn reserve(&self, agent: &str) -> Result<Slot, MonitorError> {
        let too_many = || MonitorError::TooMany {
            agent: agent.to_string(),
            max: MAX_PER_AGENT,
        };
        let mut map = self.active.lock().map_err(|_| too_many())?;
        let n = map.entry(agent.to_string()).or_insert(0);
        if *n >= MAX_PER_AGENT {
            return Err(too_many());
        }
        *n += 1;
        Ok(Slot {
            active: self.active.clone(),
            agent: agent.to_string(),
        })
    }
}

/// One agent's monitor slot, given back when dropped.
struct Slot {
    active: Arc<Mutex<HashMap<String, usize>>>,
    agent: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.active.lock() {
            if let Some(n) = map.get_mut(&self.agent) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.agent);
                }
            }
        }
    }
}

/// The checks before a monitor leg: the agent's live call, not the
/// agent's own phone, a free slot.
async fn prepare(
    ctx: &CallContext,
    req: &MonitorRequest,
) -> Result<(LiveCall, Slot), MonitorError> {
    let live = ctx
        .live
        .of_agent(&req.agent)
        .ok_or_else(|| MonitorError::NoLiveCall(req.agent.clone()))?;
    if ctx
        .acd
        .snapshot()
        .await
        .ok()
        .and_then(|s| s.agents.into_iter().find(|a| a.id == req.agent))
        .is_some_and(|a| a.extension == req.extension)
    {
        return Err(MonitorError::OwnExtension(req.extension.clone()));
    }
    let slot = ctx.monitors.reserve(&req.agent)?;
    Ok((live, slot))
}

/// Writes the audit entry of a monitor that is going ahead (ringing, or
/// answered from a dialed code), whichever way it was started — the QC
/// page, the API, a code — before the supervisor hears anything: through
/// the record writer, so never lost and never on the media path.
async fn audit_start(
    ctx: &CallContext,
    req: &MonitorRequest,
    live: &LiveCall,
) -> Result<(), MonitorError> {
    let audit = crate::store::AuditRow::now(
        &req.by,
        "monitor",
        Some(format!("agent:{}", req.agent)),
        Some(format!(
            "{} call {} to {}",
            req.mode, live.call_id, req.extension
        )),
    );
    ctx.records
        .submit_audit(audit)
        .await
        .map_err(|_| MonitorError::NotAudited)
}

fn span_of(req: &MonitorRequest, live: &LiveCall, leg: &str) -> tracing::Span {
    info_span!(
        "monitor",
        call_id = %live.call_id,
        agent = %req.agent,
        by = %req.by,
        mode = %req.mode,
        leg = %leg,
    )
}

/// Starts monitors. Cheap to clone.
#[derive(Clone)]
pub struct MonitorHandle {
    ctx: Arc<CallContext>,
}

impl fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorHandle").finish_non_exhaustive()
    }
}

impl MonitorHandle {
    pub fn new(ctx: Arc<CallContext>) -> Self {
        MonitorHandle { ctx }
    }

    /// Rings `req.extension` to monitor `req.agent`'s live call; returns
    /// the monitor leg's Call-ID once the INVITE is sent. The leg runs on
    /// as its own task (see the module).
    pub async fn start(&self, req: MonitorRequest) -> Result<String, MonitorError> {
        let (live, slot) = prepare(&self.ctx, &req).await?;
        let socket = self.ctx.ports.allocate().map_err(|e| {
            warn!(error = %e, "no RTP port for a monitor leg");
            MonitorError::NoPort
        })?;
        let mut oa = OfferAnswer::new(LocalMedia::new(self.ctx.rtp.advertised, socket.port()));
        let sdp = oa.offer();
        let display = format!("Monitor {}", req.agent);
        let from = RingFrom {
            number: &req.agent,
            display: Some(&display),
            contact_user: "monitor",
        };
        let leg_call_id = format!("{}-mon", new_tag());
        let (events_tx, events) = mpsc::channel(LEG_EVENTS);
        let mut leg = ring_agent(
            &self.ctx.sip,
            AgentId(req.extension.clone()),
            &req.extension,
            leg_call_id.clone(),
            from,
            &sdp,
            &events_tx,
        )
        .await
        .map_err(|e| match e {
            RingError::NoContact => MonitorError::NotRegistered(req.extension.clone()),
            RingError::NotSent => MonitorError::NotSent(req.extension.clone()),
        })?;
        if let Err(e) = audit_start(&self.ctx, &req, &live).await {
            run_leg_outputs(&self.ctx.sip, leg.cancel()).await;
            return Err(e);
        }
        let span = span_of(&req, &live, &leg_call_id);
        info!(parent: &span, extension = %req.extension, "monitor: ringing the supervisor");
        let task = MonitorLeg {
            ctx: self.ctx.clone(),
            req,
            live,
            call_id: leg_call_id.clone(),
            leg: Supervisor::Rung(leg),
            oa,
            socket: Some(socket),
            events,
            _events_tx: events_tx,
            _slot: slot,
            media: None,
            arrived: self.ctx.clock.now(),
            answered: None,
            dialed: "monitor".to_string(),
        };
        self.ctx.monitors.tasks.spawn(task.run().instrument(span));
        Ok(leg_call_id)
    }
}

/// The digit after `*3` that dials `mode`.
fn mode_digit(mode: MonitorMode) -> char {
    match mode {
        MonitorMode::Listen => '1',
        MonitorMode::Whisper => '2',
        MonitorMode::Barge => '3',
    }
}

/// What a softphone dialed, if it is a monitor code: `*31<ext>` listen,
/// `*32<ext>` whisper, `*33<ext>` barge in, `<ext>` the monitored agent's
/// extension.
pub fn parse_code(dialed: &str) -> Option<(MonitorMode, &str)> {
    let rest = dialed.strip_prefix('*')?;
    let (mode, ext) = match rest.get(..2)? {
        "31" => (MonitorMode::Listen, &rest[2..]),
        "32" => (MonitorMode::Whisper, &rest[2..]),
        "33" => (MonitorMode::Barge, &rest[2..]),
        _ => return None,
    };
    (!ext.is_empty()).then_some((mode, ext))
}

/// A softphone (authenticated as `user`) dialed a monitor code: answered
/// at once if allowed and the agent is on a call, then the same monitor
/// leg as [`MonitorHandle::start`]'s; refused otherwise (403 not allowed,
/// 404 no such agent, 480 not on a call, 486 too many monitors, 488 no
/// usable SDP offer, 503 no RTP port).
pub async fn run_dialed(
    ctx: Arc<CallContext>,
    call: IncomingCall,
    user: &str,
    mode: MonitorMode,
    agent_extension: &str,
) {
    let call_id = call.request.call_id().unwrap_or("").to_string();
    let arrived = ctx.clock.now();
    let dialed = format!("*3{}{agent_extension}", mode_digit(mode));
    let local_tag = new_tag();
    let reject = |status: u16| {
        let mut r = response_to(&call.request, status, reason_phrase(status));
        r.set_to_tag(&local_tag);
        r
    };
    if !ctx.monitors.may_monitor(user) {
        info!(
            user,
            "monitor code from an extension not allowed to monitor"
        );
        ctx.sip.respond(call.key.clone(), reject(403)).await;
        return;
    }
    let Some(agent) = ctx.acd.agent_for_extension(agent_extension) else {
        info!(user, agent_extension, "monitor code: no such agent");
        ctx.sip.respond(call.key.clone(), reject(404)).await;
        return;
    };
    let req = MonitorRequest {
        agent: agent.0.clone(),
        extension: user.to_string(),
        mode,
        by: user.to_string(),
    };
    let (live, slot) = match prepare(&ctx, &req).await {
        Ok(p) => p,
        Err(e) => {
            info!(user, error = %e, "monitor code refused");
            let status = match e {
                MonitorError::NoLiveCall(_) => 480,
                MonitorError::TooMany { .. } => 486,
                _ => 403,
            };
            ctx.sip.respond(call.key.clone(), reject(status)).await;
            return;
        }
    };
    let Ok(socket) = ctx.ports.allocate() else {
        ctx.sip.respond(call.key.clone(), reject(503)).await;
        return;
    };
    let mut oa = OfferAnswer::new(LocalMedia::new(ctx.rtp.advertised, socket.port()));
    let answer = match oa.answer(&call.request.body) {
        Ok(sdp) if !call.request.body.is_empty() => sdp,
        _ => {
            info!(user, "monitor code without a usable SDP offer");
            ctx.sip.respond(call.key.clone(), reject(488)).await;
            return;
        }
    };
    let Ok(dialog) = Dialog::uas(&call.request, &local_tag, call.peer) else {
        ctx.sip.respond(call.key.clone(), reject(400)).await;
        return;
    };
    if audit_start(&ctx, &req, &live).await.is_err() {
        ctx.sip.respond(call.key.clone(), reject(503)).await;
        return;
    }
    let mut ok = reject(200);
    ok.headers
        .push("Contact", ctx.sip.local.contact("monitor", call.peer.kind));
    ok.headers.push("Allow", ALLOW);
    ok.headers.push("Content-Type", "application/sdp");
    ok.body = Bytes::from(answer);
    ctx.sip.respond(call.key.clone(), ok).await;
    let (events_tx, events) = mpsc::channel(LEG_EVENTS);
    super::ringing::forward(call_id.clone(), call.events, events_tx.clone());
    let span = span_of(&req, &live, &call_id);
    info!(parent: &span, "monitor: dialed by the supervisor; answered");
    let task = MonitorLeg {
        ctx: ctx.clone(),
        req,
        live,
        call_id,
        leg: Supervisor::Dialed {
            dialog,
            ended: false,
        },
        oa,
        socket: Some(socket),
        events,
        _events_tx: events_tx,
        _slot: slot,
        media: None,
        arrived,
        answered: None,
        dialed,
    };
    task.run_answered().instrument(span).await;
}

/// How a monitor leg ended (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    NotAnswered(String),
    SupervisorHungUp,
    SupervisorSilent,
    CallOver,
    Shutdown,
    Failed(&'static str),
}

/// The supervisor's leg: we rang its phone (UAC), or it dialed a monitor
/// code (UAS, answered).
enum Supervisor {
    Rung(AgentLeg),
    Dialed { dialog: Dialog, ended: bool },
}

/// One monitor leg's task.
struct MonitorLeg {
    ctx: Arc<CallContext>,
    req: MonitorRequest,
    live: LiveCall,
    /// The supervisor leg's Call-ID.
    call_id: String,
    leg: Supervisor,
    oa: OfferAnswer,
    socket: Option<RtpSocket>,
    events: mpsc::Receiver<LegEvent>,
    /// Kept so the channel stays open while the leg runs.
    _events_tx: mpsc::Sender<LegEvent>,
    _slot: Slot,
    /// The leg's offer/answer, to the feed (re-INVITEs), once connected.
    media: Option<watch::Sender<Negotiated>>,
    /// For the leg's call record: when it began, when it was connected
    /// (the supervisor hears the call), what was dialed.
    arrived: DateTime<Utc>,
    answered: Option<(Instant, DateTime<Utc>)>,
    dialed: String,
}

/// A dialed leg whose 2xx was never ACKed is over (we still BYE it);
/// for a rung leg the event does not happen.
fn false_or_hangup(leg: &mut Supervisor) -> bool {
    matches!(leg, Supervisor::Dialed { .. })
}

/// The monitored call is still `live.agent`'s live call.
fn is_live(ctx: &CallContext, live: &LiveCall) -> bool {
    ctx.live
        .of_agent(&live.agent)
        .is_some_and(|c| c.call_id == live.call_id)
}

/// A dialog event of a ringing leg.
async fn ringing_event(sip: &SipHandle, leg: &mut AgentLeg, ev: DialogEvent) -> Vec<LegOutput> {
    match ev {
        DialogEvent::Response { response, key } => leg.on_response(&key, &response),
        DialogEvent::Timeout { key } => leg.on_timeout(&key),
        DialogEvent::Request { request, key, .. } => {
            let status = if request.method == Method::Options {
                200
            } else {
                481
            };
            sip.respond(key, response_to(&request, status, reason_phrase(status)))
                .await;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// CANCELs a ringing leg and waits (briefly) for its last responses, so
/// that a 2xx crossing the CANCEL is ACKed and ended.
async fn cancel(sip: &SipHandle, leg: &mut AgentLeg, events: &mut mpsc::Receiver<LegEvent>) {
    let outputs = leg.cancel();
    run_leg_outputs(sip, outputs).await;
    let until = Instant::now() + LINGER;
    while !leg.all_final() {
        tokio::select! {
            ev = events.recv() => {
                let Some((_, ev)) = ev else { break };
                let outputs = ringing_event(sip, leg, ev).await;
                run_leg_outputs(sip, outputs).await;
            }
            _ = tokio::time::sleep_until(until) => break,
        }
    }
}

impl MonitorLeg {
    async fn run(mut self) {
        let ended = match self.ring().await {
            Ok(answer) => self.listen(Some(&answer)).await,
            Err(e) => e,
        };
        self.finish(ended).await;
    }

    /// A dialed leg, already answered (its offer/answer done).
    async fn run_answered(mut self) {
        let ended = self.listen(None).await;
        self.finish(ended).await;
    }

    async fn finish(&mut self, ended: Ended) {
        self.ctx.sip.end_dialog(self.call_id.clone()).await;
        match &ended {
            Ended::NotAnswered(why) => {
                info!(why = %why, "{}", MonitorError::NotAnswered(self.req.extension.clone()))
            }
            other => info!(ended = ?other, "monitor ended"),
        }
        if self.answered.is_some() {
            if let Some(rec) = &self.live.recorder {
                let _ = rec.mark("monitor_end", Some(self.req.by.clone())).await;
            }
        }
        let record = self.record(&ended);
        if self.ctx.records.submit(record).await.is_err() {
            warn!("monitor: the record writer is closed; the leg's record is lost");
        }
    }

    /// The monitor leg's call record.
    fn record(&self, ended: &Ended) -> CallRecord {
        let now = self.ctx.clock.now();
        let (hangup_by, reason) = match ended {
            Ended::NotAnswered(_) => (HangupBy::System, "not_answered"),
            Ended::SupervisorHungUp => (HangupBy::Caller, "bye"),
            Ended::SupervisorSilent => (HangupBy::System, "rtp_timeout"),
            Ended::CallOver => (HangupBy::System, "call_over"),
            Ended::Shutdown => (HangupBy::System, "shutdown"),
            Ended::Failed(why) => (HangupBy::System, *why),
        };
        let talk_ms = self.answered.map(|(at, _)| at.elapsed().as_millis() as i64);
        CallRecord {
            call_id: self.call_id.clone(),
            caller: self.req.extension.clone(),
            dialed: self.dialed.clone(),
            arrived_at: self.arrived,
            answered_at: self.answered.map(|(_, wall)| wall),
            ended_at: now,
            duration_ms: talk_ms.unwrap_or(0),
            ivr_path: Vec::new(),
            self_service_result: Some(format!("{} by {}", self.req.mode, self.req.by)),
            disposition: Disposition::Monitor,
            hangup_by,
            hangup_reason: reason.to_string(),
            sip_status: if self.answered.is_some() { 200 } else { 0 },
            codec: self.oa.current.as_ref().map(|n| n.codec.name().to_string()),
            language: None,
            queue: self.live.queue.clone(),
            voice_message: None,
            voice_message_ms: None,
            acd: QueueOutcome {
                agent: Some(self.req.agent.clone()),
                talk_ms,
                ..Default::default()
            },
        }
    }

    /// Waits for the supervisor's answer (its SDP).
    async fn ring(&mut self) -> Result<bytes::Bytes, Ended> {
        let Supervisor::Rung(leg) = &mut self.leg else {
            return Err(Ended::Failed("not a rung leg"));
        };
        let sip = &self.ctx.sip;
        let deadline = Instant::now() + RING_TIMEOUT;
        let mut check = tokio::time::interval(LIVE_CHECK);
        loop {
            tokio::select! {
                ev = self.events.recv() => {
                    let Some((_, ev)) = ev else { return Err(Ended::Failed("leg events closed")) };
                    let outputs = ringing_event(sip, leg, ev).await;
                    let failed = outputs.iter().find_map(|o| match o {
                        LegOutput::Failed(r) => Some(*r),
                        _ => None,
                    });
                    let answered = run_leg_outputs(sip, outputs).await;
                    if let Some(r) = failed {
                        return Err(Ended::NotAnswered(format!("{r:?}")));
                    }
                    if let Some(sdp) = answered {
                        return Ok(sdp);
                    }
                }
                _ = check.tick() => {
                    if !is_live(&self.ctx, &self.live) {
                        info!("monitor: the call ended while the supervisor rang");
                        cancel(sip, leg, &mut self.events).await;
                        return Err(Ended::CallOver);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    cancel(sip, leg, &mut self.events).await;
                    return Err(Ended::NotAnswered("ring timeout".into()));
                }
                _ = self.ctx.shutdown.cancelled() => {
                    cancel(sip, leg, &mut self.events).await;
                    return Err(Ended::Shutdown);
                }
            }
        }
    }

    /// We end the answered leg.
    async fn bye(&mut self) {
        let sip = &self.ctx.sip;
        match &mut self.leg {
            Supervisor::Rung(leg) => {
                if let Some(out) = leg.hangup() {
                    run_leg_outputs(sip, vec![out]).await;
                }
            }
            Supervisor::Dialed { dialog, ended } => {
                if !*ended {
                    *ended = true;
                    let peer = dialog.peer;
                    let bye = dialog.request(Method::Bye, &sip.local.user_agent);
                    sip.request(bye, peer).await;
                }
            }
        }
    }

    /// Answered: tap the bridge and feed the supervisor until either ends.
    /// `answer`: the SDP answer to our offer (a rung leg).
    async fn listen(&mut self, answer: Option<&[u8]>) -> Ended {
        if let Some(answer) = answer {
            if let Err(e) = self.oa.accept_answer(answer) {
                info!(error = %e, "monitor: the supervisor's answer is unusable");
                self.bye().await;
                return Ended::Failed("unusable SDP answer");
            }
        }
        let (Some(n), Some(socket)) = (self.oa.current.clone(), self.socket.take()) else {
            self.bye().await;
            return Ended::Failed("no media");
        };
        let (tap_tx, tap_rx) = mpsc::channel::<TapEvent>(TAP_CAPACITY);
        if self.live.bridge.add_tap(tap_tx).await.is_err() || !is_live(&self.ctx, &self.live) {
            info!("monitor: the call ended before the supervisor answered");
            self.bye().await;
            return Ended::CallOver;
        }
        let voice = match self.req.mode {
            MonitorMode::Listen => None,
            MonitorMode::Whisper => Some(VoiceTo::Agent),
            MonitorMode::Barge => Some(VoiceTo::Both),
        };
        let voice = match voice {
            None => None,
            Some(to) => {
                let (tx, voice) = Voice::new(to);
                if self.live.bridge.add_voice(voice).await.is_err() {
                    self.bye().await;
                    return Ended::CallOver;
                }
                Some(SupervisorVoice {
                    bridge: tx,
                    recording: self.live.recorder.as_ref().map(|r| r.voice_tap()),
                })
            }
        };
        let mut cfg = SessionConfig::negotiated(socket, &n);
        cfg.rtp_timeout = self.ctx.rtp.timeout;
        cfg.inband_dtmf = false;
        let stop = CancellationToken::new();
        let (media_tx, media_rx) = watch::channel(n.clone());
        self.media = Some(media_tx);
        let mut feed =
            monitor_feed::spawn(LegMedia::new(cfg), tap_rx, voice, media_rx, stop.clone());
        self.answered = Some((Instant::now(), self.ctx.clock.now()));
        if let Some(rec) = &self.live.recorder {
            let detail = format!(
                "{} by {} (extension {})",
                self.req.mode, self.req.by, self.req.extension
            );
            let _ = rec.mark("monitor", Some(detail)).await;
        }
        info!(
            codec = n.codec.name(),
            "monitor: supervisor answered; connected"
        );
        let mut check = tokio::time::interval(LIVE_CHECK);
        let ended = loop {
            tokio::select! {
                end = &mut feed => {
                    match end {
                        Ok(FeedEnd::SupervisorSilent) => {
                            info!("monitor: no RTP from the supervisor's phone; hanging up");
                            break Ended::SupervisorSilent;
                        }
                        Ok(FeedEnd::TapClosed) | Ok(FeedEnd::Stopped) => {}
                        Err(e) => warn!(error = %e, "monitor feed task failed"),
                    }
                    break Ended::CallOver;
                }
                ev = self.events.recv() => {
                    let Some((_, ev)) = ev else { break Ended::Failed("leg events closed") };
                    if self.answered_event(ev).await {
                        break Ended::SupervisorHungUp;
                    }
                }
                _ = check.tick() => {
                    if !is_live(&self.ctx, &self.live) {
                        break Ended::CallOver;
                    }
                }
                _ = self.ctx.shutdown.cancelled() => break Ended::Shutdown,
            }
        };
        stop.cancel();
        if !feed.is_finished() {
            let _ = feed.await;
        }
        if ended != Ended::SupervisorHungUp {
            self.bye().await;
        }
        ended
    }

    /// An event of the answered leg; true if the supervisor hung up (or,
    /// dialed, never ACKed our 2xx).
    async fn answered_event(&mut self, ev: DialogEvent) -> bool {
        match ev {
            DialogEvent::Response { response, key } => {
                if let Supervisor::Rung(leg) = &mut self.leg {
                    // A retransmitted 2xx needs its ACK again.
                    let outputs = leg.on_response(&key, &response);
                    run_leg_outputs(&self.ctx.sip, outputs).await;
                }
                false
            }
            DialogEvent::Request {
                request, key, peer, ..
            } if request.method == Method::Invite => {
                self.on_reinvite(request, key, peer.kind).await;
                false
            }
            DialogEvent::Request { request, key, .. } => self.in_dialog(request, key).await,
            DialogEvent::Ack { request } => {
                // The answer to the offer we made in a 200 to an offerless
                // re-INVITE.
                if self.oa.awaiting_answer() && !request.body.is_empty() {
                    match self.oa.accept_answer(&request.body) {
                        Ok(()) => self.renegotiated(),
                        Err(e) => info!(error = %e, "monitor: the ACK's SDP answer is unusable"),
                    }
                }
                false
            }
            DialogEvent::AckTimeout => {
                info!("monitor: our 2xx was never ACKed");
                false_or_hangup(&mut self.leg)
            }
            _ => false,
        }
    }

    /// The supervisor's phone re-INVITEs (hold, resume, a new address or
    /// codec): answered with our SDP (an offer if it sent none) and applied
    /// to the feed; an unusable offer gets 488 and changes nothing.
    async fn on_reinvite(&mut self, request: Request, key: TransactionKey, kind: TransportKind) {
        let sdp = if request.body.is_empty() {
            Ok(self.oa.offer())
        } else {
            self.oa.answer(&request.body)
        };
        let sdp = match sdp {
            Ok(sdp) => sdp,
            Err(e) => {
                info!(error = %e, "monitor: the supervisor's re-INVITE refused");
                let resp = response_to(&request, 488, reason_phrase(488));
                self.ctx.sip.respond(key, resp).await;
                return;
            }
        };
        let mut ok = response_to(&request, 200, "OK");
        ok.headers
            .push("Contact", self.ctx.sip.local.contact("monitor", kind));
        ok.headers.push("Content-Type", "application/sdp");
        ok.body = Bytes::from(sdp);
        self.ctx.sip.respond(key, ok).await;
        if !request.body.is_empty() {
            self.renegotiated();
        }
    }

    /// The leg's current offer/answer, to the feed.
    fn renegotiated(&self) {
        if let (Some(tx), Some(n)) = (&self.media, &self.oa.current) {
            info!(
                held = self.oa.held(),
                codec = n.codec.name(),
                "monitor: the supervisor's media changed"
            );
            let _ = tx.send(n.clone());
        }
    }

    /// A request inside the answered leg's dialog; true for a BYE.
    async fn in_dialog(&mut self, request: Request, key: TransactionKey) -> bool {
        let ended = answer_in_dialog(&self.ctx.sip, &request, key, "monitor leg").await;
        if ended {
            match &mut self.leg {
                Supervisor::Rung(leg) => leg.remote_hangup(),
                Supervisor::Dialed { ended, .. } => *ended = true,
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [
            MonitorMode::Listen,
            MonitorMode::Whisper,
            MonitorMode::Barge,
        ] {
            assert_eq!(m.as_str().parse::<MonitorMode>(), Ok(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!("spy".parse::<MonitorMode>(), Err(UnknownMode("spy".into())));
    }

    #[test]
    fn monitor_codes() {
        assert_eq!(parse_code("*311001"), Some((MonitorMode::Listen, "1001")));
        assert_eq!(parse_code("*321001"), Some((MonitorMode::Whisper, "1001")));
        assert_eq!(parse_code("*331001"), Some((MonitorMode::Barge, "1001")));
        assert_eq!(parse_code("*31"), None);
        assert_eq!(parse_code("*11"), None);
        assert_eq!(parse_code("*3"), None);
        assert_eq!(parse_code("311001"), None);
    }

    #[test]
    fn at_most_two_monitors_per_agent_and_slots_come_back() {
        let m = Monitors::new(["2001".to_string()], TaskTracker::new());
        assert!(m.may_monitor("2001"));
        assert!(!m.may_monitor("1002"));
        let a = m.reserve("1001").unwrap();
        let b = m.reserve("1001").unwrap();
        assert_eq!(m.active("1001"), 2);
        assert!(matches!(
            m.reserve("1001"),
            Err(MonitorError::TooMany { max: 2, .. })
        ));
        let other = m.reserve("1003").unwrap();
        drop(a);
        assert_eq!(m.active("1001"), 1);
        let _c = m.reserve("1001").unwrap();
        drop(b);
        drop(other);
        assert_eq!(m.active("1003"), 0);
    }

    #[test]
    fn errors_read_for_an_operator() {
        assert_eq!(
            MonitorError::NoLiveCall("1001".into()).to_string(),
            "agent 1001 is not on a live call"
        );
        assert_eq!(
            MonitorError::NotRegistered("2001".into()).to_string(),
            "extension 2001 has no registered softphone"
        );
        assert_eq!(
            MonitorError::TooMany {
                agent: "1001".into(),
                max: 2
            }
            .to_string(),
            "agent 1001 already has 2 monitors listening"
        );
    }
}
