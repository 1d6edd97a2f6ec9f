//! The ACD task: the async shell around the sans-IO [`Acd`].
//!
//! One task owns the distributor. Call tasks, the registrar (presence),
//! feature codes and the HTTP API send it [`AcdInput`]s over one bounded
//! channel ([`AcdHandle`]); for each it calls the matching `Acd` method with
//! `Instant::now()`, then routes every [`AcdCommand`]:
//!
//! - `Offer`, `CancelOffer`, `Connected`, `Announce`, `QueueTimeout` → the
//!   call's task, as a [`QueueSignal`] on the channel the call gave when it
//!   joined (`try_send`: a call task that cannot keep up loses an
//!   announcement, never blocks the ACD; an offer it misses times out);
//! - `Event` → the store writer as a [`QueueEventRow`] with wall-clock time,
//!   and, for login/logout/pause/unpause, the agent's stable state
//!   ([`AgentStateRow`]), which is read back at the next start so that a
//!   restart logs nobody out;
//! - `PlaceCallback` → the callback dialer (see [`super::callback`]) as a
//!   [`CallbackJob`], with the request's queue, priority and original time
//!   (kept here per request, [`CallbackRequest`]); a new request is also
//!   handed to the store writer (a [`CallbackRow`], `pending`), and stored
//!   requests come back at start ([`spawn`]'s `callbacks`) at their place.
//!
//! Between inputs it sleeps until [`Acd::deadline`] and runs
//! [`Acd::on_timer`]. Nothing here touches a socket or the database
//! directly: the writer does, in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::acd::{
    Acd, AcdCommand, AcdConfig, AcdConfigErrors, AcdError, AgentId, CallId, Effect, EndedBy,
    EventKind, OfferResult, QueueEvent, Reconfigured, Refused, TimeoutReason,
};
use crate::reload::Live;
use crate::store::writer::RecordSink;
use crate::store::{AgentStateRow, CallbackRow, QueueEventRow};

use super::WallClock;

/// Capacity of the ACD's input channel.
const INPUT_CAPACITY: usize = 4096;
/// Capacity of each call's signal channel.
pub const SIGNAL_CAPACITY: usize = 16;

/// What the ACD tells a call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSignal {
    /// Ring this agent's contacts; report with [`AcdHandle::offer_result`].
    Offer {
        agent: AgentId,
        extension: String,
        ring_timeout: Duration,
    },
    /// Stop ringing this agent (CANCEL); no result expected.
    CancelOffer { agent: AgentId },
    /// Tell the caller its position (1-based) and estimated wait.
    Announce {
        position: u32,
        estimated_wait: Option<Duration>,
    },
    /// The caller leaves the queue for the flow's overflow.
    Timeout { reason: TimeoutReason },
}

/// An agent operation (feature codes, HTTP API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOp {
    Login,
    Logout,
    Pause(String),
    Unpause,
    Ready,
}

/// One agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub extension: String,
    pub state: &'static str,
    /// Pause reason, when paused.
    pub reason: Option<String>,
    /// The call it rings for or talks on.
    pub call_id: Option<String>,
    pub reachable: bool,
    pub misses: u32,
    pub calls_today: u32,
    pub queues: Vec<String>,
    pub skills: std::collections::BTreeMap<String, u8>,
}

/// One queue as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueView {
    pub name: String,
    pub strategy: &'static str,
    /// Callers waiting or being offered.
    pub waiting: usize,
    pub callbacks: usize,
    /// Agents logged in and reachable.
    pub staffed: usize,
    /// The longest a caller now in the queue has waited, in ms (0: none).
    pub longest_wait_ms: u64,
}

/// A picture of the ACD for the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AcdSnapshot {
    pub agents: Vec<AgentView>,
    pub queues: Vec<QueueView>,
}

enum AcdInput {
    Join {
        call: CallId,
        queue: String,
        priority: i32,
        signals: mpsc::Sender<QueueSignal>,
        reply: oneshot::Sender<Result<u32, Refused>>,
    },
    CallerLeft {
        call: CallId,
    },
    OfferResult {
        call: CallId,
        agent: AgentId,
        result: OfferResult,
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    CallEnded {
        call: CallId,
        by: EndedBy,
    },
    Transfer {
        call: CallId,
        target: String,
    },
    BreakoutVoicemail {
        call: CallId,
    },
    RequestCallback {
        call: CallId,
        number: String,
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    AddCallback {
        request: CallbackRequest,
        reply: oneshot::Sender<Result<(), AcdError>>,
    },
    Agent {
        agent: AgentId,
        op: AgentOp,
        reply: oneshot::Sender<Result<Effect, AcdError>>,
    },
    Presence {
        extension: String,
        reachable: bool,
    },
    Snapshot {
        reply: oneshot::Sender<AcdSnapshot>,
    },
    /// Agents' stored states read late (the database did not answer at
    /// start): applied to the agents still logged out.
    RestoreStates {
        rows: Vec<AgentStateRow>,
        reply: oneshot::Sender<usize>,
    },
    Reconfigure {
        config: Box<AcdConfig>,
        registered: HashMap<String, bool>,
        reply: oneshot::Sender<Result<Reconfigured, AcdConfigErrors>>,
    },
}

/// Logs in (and pauses, with the stored reason) the agents whose stored
/// state says so and who are logged out now; returns how many.
fn restore_states(acd: &mut Acd, now: Instant, rows: &[AgentStateRow]) -> usize {
    let mut n = 0;
    for row in rows {
        let id = AgentId(row.agent.clone());
        if acd.agent(&id).is_none_or(|a| a.logged_in()) {
            continue;
        }
        match row.state.as_str() {
            "ready" => {
                let _ = acd.agent_login(now, &id);
            }
            "paused" => {
                let _ = acd.agent_login(now, &id);
                let reason = row.reason.as_deref().unwrap_or("restored");
                let _ = acd.agent_pause(now, &id, reason);
            }
            _ => continue,
        }
        n += 1;
    }
    n
}

/// Extension → agent id, replaced by a reload.
type Extensions = Arc<Live<HashMap<String, AgentId>>>;

fn extensions(acd: &Acd) -> HashMap<String, AgentId> {
    acd.agents()
        .iter()
        .filter(|a| !a.removed())
        .map(|a| (a.extension().to_string(), a.id().clone()))
        .collect()
}

fn login_on_register(config: &AcdConfig) -> HashMap<AgentId, bool> {
    config
        .agents
        .iter()
        .map(|a| (AgentId(a.id.clone()), a.login_on_register))
        .collect()
}

/// The way to the ACD task. Cheap to clone.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::Sender<AcdInput>,
    /// Extension → agent id (as of the last reload).
    by_extension: Extensions,
}

/// The ACD task has stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the agent queue has stopped")]
pub struct AcdStopped;

impl AcdHandle {
    /// The agent whose softphone registers as `extension`.
    pub fn agent_for_extension(&self, extension: &str) -> Option<AgentId> {
        self.by_extension.now().get(extension).cloned()
    }

    /// Applies agents' stored states read after the start (the database
    /// did not answer then) to the agents still logged out; returns how
    /// many were restored.
    pub async fn restore_states(&self, rows: Vec<AgentStateRow>) -> Result<usize, AcdStopped> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdInput::RestoreStates { rows, reply }).await?;
        rx.await.map_err(|_| AcdStopped)
    }

    /// Applies reloaded agents and queues (see [`Acd::reconfigure`]).
    /// `registered`: extension → whether its softphone has a live
    /// registration now, for the agents added or given a new extension
    /// (their earlier registrar reports went to no agent).
    pub async fn reconfigure(
        &self,
        config: AcdConfig,
        registered: HashMap<String, bool>,
    ) -> Result<Result<Reconfigured, AcdConfigErrors>, AcdStopped> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdInput::Reconfigure {
            config: Box::new(config),
            registered,
            reply,
        })
        .await?;
        rx.await.map_err(|_| AcdStopped)
    }

    /// Puts the call in `queue`; signals come on `signals`. Returns the
    /// caller's position.
    pub async fn join(
        &self,
        call: CallId,
        queue: &str,
        priority: i32,
        signals: mpsc::Sender<QueueSignal>,
    ) -> Result<Result<u32, Refused>, AcdStopped> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdInput::Join {
            call,
            queue: queue.to_string(),
            priority,
            signals,
            reply,
        })
        .await?;
        rx.await.map_err(|_| AcdStopped)
    }

    pub async fn caller_left(&self, call: CallId) {
        let _ = self.send(AcdInput::CallerLeft { call }).await;
    }

    /// How ringing an agent ended. `Err(NotOffered)` for an answer means the
    /// ACD withdrew the offer meanwhile: hang the agent's leg up.
    pub async fn offer_result(
        &self,
        call: CallId,
        agent: AgentId,
        result: OfferResult,
    ) -> Result<(), AcdError> {
        let (reply, rx) = oneshot::channel();
        let input = AcdInput::OfferResult {
            call: call.clone(),
            agent: agent.clone(),
            result,
            reply,
        };
        let stopped = AcdError::NotOffered { call, agent };
        if self.send(input).await.is_err() {
            return Err(stopped);
        }
        rx.await.unwrap_or(Err(stopped))
    }

    pub async fn call_ended(&self, call: CallId, by: EndedBy) {
        let _ = self.send(AcdInput::CallEnded { call, by }).await;
    }

    pub async fn transfer(&self, call: CallId, target: String) {
        let _ = self.send(AcdInput::Transfer { call, target }).await;
    }

    pub async fn breakout_voicemail(&self, call: CallId) {
        let _ = self.send(AcdInput::BreakoutVoicemail { call }).await;
    }

    pub async fn request_callback(&self, call: CallId, number: String) -> Result<(), AcdError> {
        let (reply, rx) = oneshot::channel();
        let input = AcdInput::RequestCallback {
            call: call.clone(),
            number,
            reply,
        };
        if self.send(input).await.is_err() {
            return Err(AcdError::UnknownCall(call));
        }
        rx.await.unwrap_or(Err(AcdError::UnknownCall(call)))
    }

    /// Puts a callback request (back) in its queue at the place its
    /// `since` gives it (a retry keeps the original time).
    pub async fn add_callback(&self, request: CallbackRequest) -> Result<(), AcdError> {
        let call = request.call.clone();
        let (reply, rx) = oneshot::channel();
        if self
            .send(AcdInput::AddCallback { request, reply })
            .await
            .is_err()
        {
            return Err(AcdError::UnknownCall(call));
        }
        rx.await.unwrap_or(Err(AcdError::UnknownCall(call)))
    }

    /// Log in, log out, pause, unpause or make ready.
    pub async fn agent(&self, agent: AgentId, op: AgentOp) -> Result<Effect, AcdError> {
        let (reply, rx) = oneshot::channel();
        let unknown = AcdError::UnknownAgent(agent.clone());
        if self
            .send(AcdInput::Agent { agent, op, reply })
            .await
            .is_err()
        {
            return Err(unknown);
        }
        rx.await.unwrap_or(Err(unknown))
    }

    /// The registrar's word on an extension: some contact reachable or none.
    pub async fn presence(&self, extension: String, reachable: bool) {
        let _ = self
            .send(AcdInput::Presence {
                extension,
                reachable,
            })
            .await;
    }

    pub async fn snapshot(&self) -> Result<AcdSnapshot, AcdStopped> {
        let (reply, rx) = oneshot::channel();
        self.send(AcdInput::Snapshot { reply }).await?;
        rx.await.map_err(|_| AcdStopped)
    }

    async fn send(&self, input: AcdInput) -> Result<(), AcdStopped> {
        self.tx.send(input).await.map_err(|_| AcdStopped)
    }
}

/// A callback request as the daemon keeps it between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// The call that asked (the ACD's key for the request).
    pub call: CallId,
    pub queue: String,
    pub priority: i32,
    pub number: String,
    /// When the caller joined the queue (wall clock, stored).
    pub requested_at: DateTime<Utc>,
    /// The same on tokio's clock: the request's place.
    pub since: Instant,
    /// Attempts made so far.
    pub attempts: u32,
}

impl CallbackRequest {
    /// The stored row of this request in `state`.
    pub fn row(&self, state: &str, now: DateTime<Utc>) -> CallbackRow {
        CallbackRow {
            call_id: self.call.0.clone(),
            number: self.number.clone(),
            queue: self.queue.clone(),
            priority: i64::from(self.priority),
            requested_at: self.requested_at,
            state: state.to_string(),
            attempts: i64::from(self.attempts),
            next_attempt_at: None,
            last_result: None,
            last_agent: None,
            updated_at: now,
        }
    }

    /// A stored request; `since` is its time on tokio's clock given that
    /// the wall clock reads `wall_now` now (never later than now).
    pub fn from_row(row: &CallbackRow, wall_now: DateTime<Utc>) -> CallbackRequest {
        let now = Instant::now();
        let ago = (wall_now - row.requested_at).to_std().unwrap_or_default();
        CallbackRequest {
            call: CallId(row.call_id.clone()),
            queue: row.queue.clone(),
            priority: i32::try_from(row.priority).unwrap_or(0),
            number: row.number.clone(),
            requested_at: row.requested_at,
            since: now.checked_sub(ago).unwrap_or(now),
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        }
    }
}

/// A callback the ACD wants placed (agent first, then the citizen).
#[derive(Debug, Clone)]
pub struct CallbackJob {
    pub request: CallbackRequest,
    pub agent: AgentId,
    pub extension: String,
    pub ring_timeout: Duration,
    /// Fired when the ACD withdraws the offer to the agent (its ring
    /// timeout, the agent logging out…): stop ringing, report nothing.
    pub withdrawn: tokio_util::sync::CancellationToken,
}

/// Starts the ACD task. `restored` are the agents' stored states; agents
/// start unreachable until the registrar reports a live registration.
/// `requests` are the stored callback requests to place, each put back in
/// its queue at the place its original time gives it (oldest first).
/// Callback jobs go to `callbacks`. The task ends when every handle is
/// dropped.
pub fn spawn(
    config: &AcdConfig,
    restored: Vec<AgentStateRow>,
    requests: Vec<CallbackRequest>,
    records: RecordSink,
    clock: WallClock,
    callbacks: mpsc::Sender<CallbackJob>,
) -> Result<(AcdHandle, tokio::task::JoinHandle<()>), crate::acd::AcdConfigErrors> {
    let mut acd = Acd::new(config)?;
    let now = Instant::now();
    let by_extension = extensions(&acd);
    let login_on_register = login_on_register(config);
    let ids: Vec<AgentId> = acd.agents().iter().map(|a| a.id().clone()).collect();
    for id in &ids {
        let _ = acd.agent_reachable(now, id, false);
    }
    restore_states(&mut acd, now, &restored);
    let mut kept = HashMap::new();
    let mut requests = requests;
    requests.sort_by_key(|r| (r.since, r.requested_at));
    for r in requests {
        let since = r.since;
        match acd.add_callback(now, r.call.clone(), &r.queue, r.priority, &r.number, since) {
            Ok(_) => {
                kept.insert(r.call.clone(), r);
            }
            Err(e) => warn!(call = %r.call, error = %e, "stored callback request not restored"),
        }
    }
    // The restore's own events are not news: the log has them already.
    let _ = acd.drain_commands().count();
    info!(
        agents = ids.len(),
        restored = restored.len(),
        callbacks = kept.len(),
        queues = acd.queues().len(),
        "agent queue started"
    );
    let (tx, rx) = mpsc::channel(INPUT_CAPACITY);
    let by_extension = Arc::new(Live::new(Arc::new(by_extension)));
    let service = Service {
        acd,
        by_extension: by_extension.clone(),
        calls: HashMap::new(),
        records,
        clock,
        origin: (now, Utc::now()),
        seq: 0,
        boot: format!("{:08x}", rand::random::<u32>()),
        login_on_register,
        last_call: HashMap::new(),
        callbacks,
        requests: kept,
        new_requests: Vec::new(),
        callback_offers: HashMap::new(),
    };
    let task = tokio::spawn(service.run(rx));
    Ok((AcdHandle { tx, by_extension }, task))
}

struct Service {
    acd: Acd,
    /// Extension → agent id (the same map as the handles').
    by_extension: Extensions,
    /// Each queued call's signal channel.
    calls: HashMap<CallId, mpsc::Sender<QueueSignal>>,
    records: RecordSink,
    clock: WallClock,
    /// One (tokio instant, wall time) pair to date events by.
    origin: (Instant, DateTime<Utc>),
    seq: u64,
    /// Event uids are `<boot>-<seq>`: unique across restarts.
    boot: String,
    login_on_register: HashMap<AgentId, bool>,
    /// Each agent's last completed call and when it ended (for wrap-up).
    last_call: HashMap<AgentId, (CallId, Instant)>,
    callbacks: mpsc::Sender<CallbackJob>,
    /// Callback requests in the ACD, by the call that asked.
    requests: HashMap<CallId, CallbackRequest>,
    /// Requests made since the last `route`, to store.
    new_requests: Vec<CallbackRow>,
    /// The latest offer of each callback to an agent, to withdraw.
    callback_offers: HashMap<CallId, tokio_util::sync::CancellationToken>,
}

impl Service {
    async fn run(mut self, mut rx: mpsc::Receiver<AcdInput>) {
        self.origin = (Instant::now(), self.clock.now());
        loop {
            let deadline = self.acd.deadline();
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
                _ = sleep_until_opt(deadline) => self.acd.on_timer(Instant::now()),
            }
            self.route().await;
        }
        debug!("agent queue stopped");
    }

    fn on_input(&mut self, input: AcdInput) {
        let now = Instant::now();
        match input {
            AcdInput::Join {
                call,
                queue,
                priority,
                signals,
                reply,
            } => {
                let result = self
                    .acd
                    .add_call(now, call.clone(), &queue, priority)
                    .map(|_| self.acd.position(&call).unwrap_or(1));
                if result.is_ok() {
                    self.calls.insert(call, signals);
                }
                let _ = reply.send(result);
            }
            AcdInput::CallerLeft { call } => {
                if let Err(e) = self.acd.caller_left(now, &call) {
                    debug!(call = %call, error = %e, "caller_left");
                }
                self.calls.remove(&call);
            }
            AcdInput::OfferResult {
                call,
                agent,
                result,
                reply,
            } => {
                let r = self.acd.offer_result(now, &call, &agent, result);
                let _ = reply.send(r);
            }
            AcdInput::CallEnded { call, by } => {
                if let Err(e) = self.acd.call_ended(now, &call, by) {
                    debug!(call = %call, error = %e, "call_ended");
                }
                self.calls.remove(&call);
                // A callback's attempt is over: the dialer puts a retry
                // back itself.
                self.requests.remove(&call);
                self.callback_offers.remove(&call);
            }
            AcdInput::Transfer { call, target } => {
                if let Err(e) = self.acd.transfer(now, &call, &target) {
                    debug!(call = %call, error = %e, "transfer");
                }
                self.calls.remove(&call);
            }
            AcdInput::BreakoutVoicemail { call } => {
                if let Err(e) = self.acd.breakout_voicemail(now, &call) {
                    debug!(call = %call, error = %e, "breakout_voicemail");
                }
                self.calls.remove(&call);
            }
            AcdInput::RequestCallback {
                call,
                number,
                reply,
            } => {
                let r = self.acd.request_callback(now, &call, &number);
                if r.is_ok() {
                    // The live call goes; the request keeps its place.
                    self.calls.remove(&call);
                    self.remember_request(&call, number);
                }
                let _ = reply.send(r);
            }
            AcdInput::AddCallback { request, reply } => {
                let r = &request;
                let result = self
                    .acd
                    .add_callback(
                        now,
                        r.call.clone(),
                        &r.queue,
                        r.priority,
                        &r.number,
                        r.since,
                    )
                    .map(|_| ());
                if result.is_ok() {
                    self.requests.insert(request.call.clone(), request);
                }
                let _ = reply.send(result);
            }
            AcdInput::Agent { agent, op, reply } => {
                let r = match op {
                    AgentOp::Login => self.acd.agent_login(now, &agent),
                    AgentOp::Logout => self.acd.agent_logout(now, &agent),
                    AgentOp::Pause(reason) => self.acd.agent_pause(now, &agent, &reason),
                    AgentOp::Unpause => self.acd.agent_unpause(now, &agent),
                    AgentOp::Ready => self.acd.agent_ready(now, &agent),
                };
                let _ = reply.send(r);
            }
            AcdInput::Presence {
                extension,
                reachable,
            } => self.on_presence(now, &extension, reachable),
            AcdInput::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            AcdInput::RestoreStates { rows, reply } => {
                let n = restore_states(&mut self.acd, now, &rows);
                info!(agents = n, "agents' stored states restored");
                let _ = reply.send(n);
            }
            AcdInput::Reconfigure {
                config,
                registered,
                reply,
            } => {
                let _ = reply.send(self.reconfigure(now, &config, &registered));
            }
        }
    }

    /// A reload's agents and queues; the extension map and the
    /// login-on-register flags follow, and the agents added or given a new
    /// extension take their softphone's registration as it is now.
    fn reconfigure(
        &mut self,
        now: Instant,
        config: &AcdConfig,
        registered: &HashMap<String, bool>,
    ) -> Result<Reconfigured, AcdConfigErrors> {
        let before = self.by_extension.now();
        let report = self.acd.reconfigure(now, config)?;
        let after = extensions(&self.acd);
        self.login_on_register = login_on_register(config);
        self.by_extension.set(Arc::new(after.clone()));
        for (extension, id) in &after {
            if before.get(extension) != Some(id) {
                let reachable = registered.get(extension).copied().unwrap_or(false);
                self.on_presence(now, extension, reachable);
            }
        }
        info!(
            added = ?report.agents_added,
            removed = ?report.agents_removed,
            changed = ?report.agents_changed,
            queues_added = ?report.queues_added,
            queues_removed = ?report.queues_removed,
            queues_changed = ?report.queues_changed,
            "agents and queues reloaded"
        );
        Ok(report)
    }

    /// Keeps a new callback request (queue, priority, place) and queues
    /// its row for the store.
    fn remember_request(&mut self, call: &CallId, number: String) {
        let Some(e) = self.acd.entry(call) else {
            return;
        };
        let queue = self.acd.queues()[e.queue()].name().to_string();
        let request = CallbackRequest {
            call: call.clone(),
            queue,
            priority: e.priority(),
            number,
            requested_at: self.wall(e.enqueued()),
            since: e.enqueued(),
            attempts: 0,
        };
        let at = self.wall(Instant::now());
        self.new_requests.push(request.row("pending", at));
        self.requests.insert(call.clone(), request);
    }

    fn on_presence(&mut self, now: Instant, extension: &str, reachable: bool) {
        let Some(id) = self.by_extension.now().get(extension).cloned() else {
            return;
        };
        let _ = self.acd.agent_reachable(now, &id, reachable);
        if self.login_on_register.get(&id).copied().unwrap_or(false) {
            let logged_in = self.acd.agent(&id).is_some_and(|a| a.logged_in());
            if reachable && !logged_in {
                let _ = self.acd.agent_login(now, &id);
            } else if !reachable && logged_in {
                let _ = self.acd.agent_logout(now, &id);
            }
        }
    }

    fn snapshot(&self) -> AcdSnapshot {
        let queues = self.acd.queues();
        // Agents a reload removed are shown while their last call runs;
        // queues it removed while callers are still in them.
        let agents = self
            .acd
            .agents()
            .iter()
            .filter(|a| !a.removed() || a.logged_in())
            .map(|a| AgentView {
                id: a.id().0.clone(),
                name: a.name().to_string(),
                extension: a.extension().to_string(),
                state: a.state().name(),
                reason: match a.state() {
                    crate::acd::AgentState::Paused { reason, .. } => Some(reason.clone()),
                    _ => None,
                },
                call_id: a.state().call().map(|c| c.0.clone()),
                reachable: a.reachable(),
                misses: a.misses(),
                calls_today: a.calls_today(),
                // The configured memberships (not the personal queue).
                queues: queues
                    .iter()
                    .filter(|q| !q.name().contains(':'))
                    .filter(|q| {
                        q.members()
                            .iter()
                            .any(|&m| self.acd.agents()[m].id() == a.id())
                    })
                    .map(|q| q.name().to_string())
                    .collect(),
                skills: a.skills().clone(),
            })
            .collect();
        let now = Instant::now();
        let queues = queues
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.closed() || q.live() + q.callbacks() > 0)
            .map(|(i, q)| QueueView {
                name: q.name().to_string(),
                strategy: q.strategy().as_str(),
                waiting: q.live(),
                callbacks: q.callbacks(),
                staffed: q.staffed(),
                longest_wait_ms: self
                    .acd
                    .longest_wait(i, now)
                    .map_or(0, |d| d.as_millis() as u64),
            })
            .collect();
        AcdSnapshot { agents, queues }
    }

    /// Routes every command the last input produced.
    async fn route(&mut self) {
        for row in std::mem::take(&mut self.new_requests) {
            if let Err(err) = self.records.submit_callback(row).await {
                warn!(error = %err, "callback request not stored");
            }
        }
        while let Some(cmd) = self.acd.poll_command() {
            match cmd {
                AcdCommand::Offer {
                    call,
                    agent,
                    extension,
                    ring_timeout,
                } => {
                    let signal = QueueSignal::Offer {
                        agent: agent.clone(),
                        extension,
                        ring_timeout,
                    };
                    if !self.signal(&call, signal) {
                        // The call task is gone: the offer cannot ring.
                        let _ = self.acd.offer_result(
                            Instant::now(),
                            &call,
                            &agent,
                            OfferResult::Failed,
                        );
                    }
                }
                AcdCommand::CancelOffer { call, agent } => {
                    if !self.signal(&call, QueueSignal::CancelOffer { agent }) {
                        // Not a live call: a callback's offer, maybe.
                        if let Some(t) = self.callback_offers.remove(&call) {
                            t.cancel();
                        }
                    }
                }
                AcdCommand::Connected { call, agent } => {
                    debug!(call = %call, agent = %agent, "connected");
                }
                AcdCommand::Announce {
                    call,
                    position,
                    estimated_wait,
                } => {
                    self.signal(
                        &call,
                        QueueSignal::Announce {
                            position,
                            estimated_wait,
                        },
                    );
                }
                AcdCommand::QueueTimeout { call, reason } => {
                    self.signal(&call, QueueSignal::Timeout { reason });
                }
                AcdCommand::PlaceCallback {
                    call,
                    agent,
                    extension,
                    number,
                    ring_timeout,
                    ..
                } => {
                    let Some(request) = self.requests.get(&call).cloned() else {
                        warn!(call = %call, number = %number, "callback with no request kept");
                        let _ = self.acd.offer_result(
                            Instant::now(),
                            &call,
                            &agent,
                            OfferResult::Failed,
                        );
                        continue;
                    };
                    let withdrawn = tokio_util::sync::CancellationToken::new();
                    self.callback_offers.insert(call.clone(), withdrawn.clone());
                    let job = CallbackJob {
                        request,
                        agent: agent.clone(),
                        extension,
                        ring_timeout,
                        withdrawn,
                    };
                    if self.callbacks.try_send(job).is_err() {
                        warn!(call = %call, "callback dialer busy; the callback waits for the next turn");
                        let _ = self.acd.offer_result(
                            Instant::now(),
                            &call,
                            &agent,
                            OfferResult::Failed,
                        );
                    }
                }
                AcdCommand::Event(e) => self.store_event(e).await,
            }
        }
    }

    /// Sends a signal to a call's task; false if the task is gone.
    fn signal(&mut self, call: &CallId, signal: QueueSignal) -> bool {
        let Some(tx) = self.calls.get(call) else {
            return false;
        };
        match tx.try_send(signal) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(call = %call, "call task not keeping up; queue signal dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.calls.remove(call);
                false
            }
        }
    }

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        let (i0, w0) = self.origin;
        if at >= i0 {
            w0 + chrono::Duration::from_std(at - i0).unwrap_or_default()
        } else {
            w0 - chrono::Duration::from_std(i0 - at).unwrap_or_default()
        }
    }

    async fn store_event(&mut self, e: QueueEvent) {
        self.seq += 1;
        let at = self.wall(e.at);
        let row = QueueEventRow {
            uid: format!("{}-{}", self.boot, self.seq),
            at,
            kind: e.kind.as_str().to_string(),
            queue: e.queue.clone(),
            call_id: e.call.as_ref().map(|c| c.0.clone()),
            agent: e.agent.as_ref().map(|a| a.0.clone()),
            position: e.position.map(i64::from),
            wait_ms: e.wait.map(|d| d.as_millis() as i64),
            talk_ms: e.talk.map(|d| d.as_millis() as i64),
            reason: e.reason.clone(),
        };
        info!(
            event = %e.kind,
            queue = e.queue.as_deref().unwrap_or(""),
            call_id = row.call_id.as_deref().unwrap_or(""),
            agent = row.agent.as_deref().unwrap_or(""),
            reason = e.reason.as_deref().unwrap_or(""),
            "queue event"
        );
        if let Err(err) = self.records.submit_event(row).await {
            warn!(error = %err, "queue event not stored");
        }
        let Some(agent) = e.agent.clone() else {
            return;
        };
        let state = match e.kind {
            EventKind::Login | EventKind::Unpause => Some(("ready", None)),
            EventKind::Logout => Some(("logged_out", None)),
            EventKind::Pause => Some(("paused", e.reason.clone())),
            _ => None,
        };
        if let Some((state, reason)) = state {
            let row = AgentStateRow {
                agent: agent.0.clone(),
                state: state.to_string(),
                reason,
                updated_at: at,
            };
            if let Err(err) = self.records.submit_agent_state(row).await {
                warn!(error = %err, "agent state not stored");
            }
        }
        match e.kind {
            EventKind::Complete | EventKind::Transfer => {
                if let Some(call) = e.call {
                    self.last_call.insert(agent, (call, e.at));
                }
            }
            EventKind::WrapUpEnd => {
                if let Some((call, ended)) = self.last_call.remove(&agent) {
                    let ms = e.at.saturating_duration_since(ended).as_millis() as i64;
                    if let Err(err) = self.records.submit_wrap_up(call.0, ms).await {
                        warn!(error = %err, "wrap-up time not stored");
                    }
                }
            }
            _ => {}
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
