//! [`Acd`]: the distributor. It holds the agents, the queues and their
//! entries, matches waiting callers to agents, and runs the timers (ring
//! timeouts, max waits, announcements, wrap-up ends).
//!
//! # Driving it
//! One ACD task in the daemon owns the `Acd`. Call tasks and the registrar
//! send it their inputs over a bounded channel; for each, the task calls the
//! matching method with `tokio::time::Instant::now()`, then drains
//! [`Acd::poll_command`] and routes each [`AcdCommand`]: `Offer`,
//! `CancelOffer`, `Connected`, `Announce` and `QueueTimeout` to the call's
//! task (which rings the agent's contacts, CANCELs, bridges, plays);
//! `PlaceCallback` to the callback dialer; `Event` to the store writer. It
//! sleeps until [`Acd::deadline`] (or the next input) and then calls
//! [`Acd::on_timer`], which handles everything due.
//!
//! Races the daemon meets: an offer result for an offer the ACD has
//! already cancelled (ring timeout, caller gone) gets
//! `AcdError::NotOffered`; if it was an answer, the call task hangs up the
//! agent's leg. Results of cancelled offers are not expected but harmless.
//! After `breakout_voicemail` or an abandon the ACD forgets the call; after
//! `QueueTimeout` it remembers it (for `request_callback` at the same
//! place) until `caller_left`, `breakout_voicemail` or a new `add_call`.
//!
//! # Matching (fairness)
//! After every input, `dispatch` serves queue heads in global order: of
//! all queues' next callers (heads of their `waiting` maps), the one first
//! by (priority desc, enqueue time asc) goes first, to its queue's
//! strategy's choice among the offerable members. So an agent in several
//! queues gets the longest-waiting caller across them unless a higher
//! priority says otherwise. A queue whose head finds no agent is skipped
//! for the rest of the round (all its callers need the same skills).
//!
//! # Rules worth knowing
//! - An agent takes a queue's calls only with all its skills at the
//!   queue's minimum levels (membership is computed at start and at each
//!   reload: [`Acd::reconfigure`], in `distributor/reconfigure.rs`).
//! - After a miss the caller is offered to the next agent by the strategy,
//!   not the same one again unless no one else is offerable.
//! - Max wait reached while an agent rings: the ring runs on; if it fails,
//!   the caller times out then.
//! - A callback request keeps its place, has no max wait, and counts
//!   against `max_callbacks_per_queue`, not `max_len`.
//!
//! # Costs
//! With Q queues, m members per queue, n entries per queue: an input costs
//! O(log n) for the maps and timers plus `dispatch`, which costs
//! O((k + Q) · (Q + m)) for k offers made (usually 0 or 1). No step is
//! quadratic in the number of agents. Positions cost O(min(ahead,
//! behind)) (see `queue`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::agent::{self, Agent, AgentError, AgentState, Change, Step};
use super::config::{AcdConfig, AcdConfigErrors, AcdSettings, WhenNoAgents};
use super::entry::{Entry, EntryError, EntryKind, EntryState, TimeoutReason};
use super::events::{EventKind, QueueEvent};
use super::queue::Queue;
use super::strategy::{self, Candidate, Strategy};
use super::{AgentId, CallId, EntryId};

mod reconfigure;
pub use reconfigure::Reconfigured;

/// How an offer ended, as the call task saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferResult {
    /// 200 OK from one of the agent's contacts.
    Answered,
    /// 408/480, or the contacts stopped ringing without a final answer.
    NoAnswer,
    /// 486/600.
    Busy,
    /// 603 or another decline.
    Declined,
    /// No contact, transport error, 5xx.
    Failed,
}

impl OfferResult {
    fn reason(self) -> &'static str {
        match self {
            OfferResult::Answered => "answered",
            OfferResult::NoAnswer => "no_answer",
            OfferResult::Busy => "busy",
            OfferResult::Declined => "declined",
            OfferResult::Failed => "failed",
        }
    }
}

/// Who ended a connected call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Agent,
    Caller,
    System,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Agent => "agent",
            EndedBy::Caller => "caller",
            EndedBy::System => "system",
        }
    }
}

/// Why a queue would not take a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_len` live callers already.
    Full,
    /// No agent logged in, and the queue's rule is `refuse` or `leave`.
    NoAgents,
    UnknownQueue,
    /// The call is in a queue already.
    AlreadyQueued,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue refused the call: {reason:?}")]
pub struct Refused {
    pub reason: Refusal,
}

/// When a request takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Now,
    /// After the agent's call and wrap-up (or: a pending change dropped).
    AfterCall,
    /// It was so already.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("no agent {0}")]
    UnknownAgent(AgentId),
    #[error("no queue entry for call {0}")]
    UnknownCall(CallId),
    /// A stale result (the offer was cancelled or timed out): the call
    /// task hangs up the agent's leg if it answered.
    #[error("agent {agent} is not being offered call {call}")]
    NotOffered { call: CallId, agent: AgentId },
    #[error("call {0} is not connected to an agent")]
    NotConnected(CallId),
    #[error("call {0} is connected to an agent: report its end with call_ended")]
    Connected(CallId),
    #[error("a callback number is 3 to 32 digits, optionally after '+'")]
    BadNumber,
    #[error("queue {0} holds as many callback requests as it may")]
    CallbacksFull(String),
    #[error("no queue {0}")]
    UnknownQueue(String),
    #[error("call {0} is in a queue already")]
    AlreadyQueued(CallId),
    #[error("a pause reason is 1 to 32 characters: letters, digits, '_' or '-'")]
    BadReason,
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Entry(#[from] EntryError),
}

/// What the daemon must do (or log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdCommand {
    /// Ring the agent's contacts for the call; report with `offer_result`.
    /// The ACD cancels it itself after `ring_timeout` (`CancelOffer`).
    Offer {
        call: CallId,
        agent: AgentId,
        extension: String,
        ring_timeout: Duration,
    },
    /// Stop ringing the agent (CANCEL); no `offer_result` is expected.
    CancelOffer { call: CallId, agent: AgentId },
    /// The agent answered: bridge the call (informational for the ACD).
    Connected { call: CallId, agent: AgentId },
    /// Tell the caller its position and, if known, the estimated wait.
    Announce {
        call: CallId,
        position: u32,
        estimated_wait: Option<Duration>,
    },
    /// The caller leaves the queue for the flow's overflow (voicemail,
    /// callback — `request_callback` puts it back at its place — or
    /// another queue).
    QueueTimeout { call: CallId, reason: TimeoutReason },
    /// A callback request reached the front with a free agent: ring the
    /// agent, and when it answers (`offer_result(call, agent, Answered)`)
    /// call the citizen on `number`; report the end with `call_ended`.
    PlaceCallback {
        entry: EntryId,
        call: CallId,
        agent: AgentId,
        extension: String,
        number: String,
        ring_timeout: Duration,
    },
    /// For the queue event log.
    Event(QueueEvent),
}

/// 3 to 32 digits, optionally after '+'.
fn valid_number(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Timer {
    Ring(EntryId),
    MaxWait(EntryId),
    Announce(EntryId),
    WrapUp(usize),
}

/// Keyed timers: set, clear and pop in O(log n).
#[derive(Debug, Default)]
struct Timers {
    by_time: BTreeSet<(Instant, Timer)>,
    at: HashMap<Timer, Instant>,
}

impl Timers {
    fn set(&mut self, t: Timer, when: Instant) {
        if let Some(old) = self.at.insert(t, when) {
            self.by_time.remove(&(old, t));
        }
        self.by_time.insert((when, t));
    }

    fn clear(&mut self, t: Timer) {
        if let Some(old) = self.at.remove(&t) {
            self.by_time.remove(&(old, t));
        }
    }

    fn clear_entry(&mut self, id: EntryId) {
        self.clear(Timer::Ring(id));
        self.clear(Timer::MaxWait(id));
        self.clear(Timer::Announce(id));
    }

    fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let &(at, t) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.pop_first();
        self.at.remove(&t);
        Some(t)
    }
}

/// The automatic call distributor.
#[derive(Debug)]
pub struct Acd {
    settings: AcdSettings,
    agents: Vec<Agent>,
    agent_ix: HashMap<AgentId, usize>,
    /// Per agent: the queues it is a member of.
    agent_queues: Vec<Vec<usize>>,
    queues: Vec<Queue>,
    queue_ix: HashMap<String, usize>,
    entries: HashMap<EntryId, Entry>,
    by_call: HashMap<CallId, EntryId>,
    timers: Timers,
    next_entry: u64,
    out: VecDeque<AcdCommand>,
    /// The configuration applied (with the personal queues).
    config: AcdConfig,
}

impl Acd {
    /// An ACD for a checked config; every agent logged out.
    pub fn new(config: &AcdConfig) -> Result<Acd, AcdConfigErrors> {
        config.validate()?;
        let config = config.with_personal_queues();
        let agents: Vec<Agent> = config.agents.iter().map(Agent::new).collect();
        let agent_ix = agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id().clone(), i))
            .collect();
        let queue_ix: HashMap<String, usize> = config
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.name.clone(), i))
            .collect();
        let queues: Vec<Queue> = config
            .queues
            .iter()
            .map(|c| Queue::new(c, Vec::new()))
            .collect();
        let mut acd = Acd {
            settings: config.settings.clone(),
            agents,
            agent_ix,
            agent_queues: Vec::new(),
            queues,
            queue_ix,
            entries: HashMap::new(),
            by_call: HashMap::new(),
            timers: Timers::default(),
            next_entry: 1,
            out: VecDeque::new(),
            config,
        };
        acd.compute_members();
        Ok(acd)
    }

    // ----- outputs ---------------------------------------------------------

    /// The next command for the daemon.
    pub fn poll_command(&mut self) -> Option<AcdCommand> {
        self.out.pop_front()
    }

    /// Every command waiting.
    pub fn drain_commands(&mut self) -> impl Iterator<Item = AcdCommand> + '_ {
        self.out.drain(..)
    }

    /// When `on_timer` is due next.
    pub fn deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- views -------------------------------------------------------------

    /// A configured agent (not one a reload removed).
    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agent_ix
            .get(id)
            .map(|&i| &self.agents[i])
            .filter(|a| !a.removed())
    }
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queue_ix.get(name).map(|&i| &self.queues[i])
    }
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }
    /// The queue entry of a call (in a queue, connected, or timed out).
    pub fn entry(&self, call: &CallId) -> Option<&Entry> {
        self.by_call.get(call).and_then(|e| self.entries.get(e))
    }
    /// How long the caller who has waited longest in queue `q` (an index
    /// into [`Acd::queues`]) has waited at `now`: callers on the line
    /// only, not callback requests keeping a place.
    pub fn longest_wait(&self, q: usize, now: Instant) -> Option<std::time::Duration> {
        self.queues[q]
            .entries()
            .filter_map(|id| self.entries.get(&id))
            .filter(|e| e.is_live())
            .map(|e| now.saturating_duration_since(e.enqueued()))
            .max()
    }
    /// The call's 1-based position, while it holds a place.
    pub fn position(&self, call: &CallId) -> Option<u32> {
        let e = self.entry(call)?;
        e.in_queue()
            .then(|| self.queues[e.queue()].position(&e.key()))
    }

    /// Zeroes every agent's calls-today count (at local midnight).
    pub fn reset_daily_counts(&mut self) {
        self.agents.iter_mut().for_each(Agent::reset_daily);
    }

    // ----- calls -------------------------------------------------------------

    /// A caller joins `queue`. Refused when the queue is unknown, full,
    /// or unstaffed with a `refuse`/`leave` rule. A call timed out of a
    /// queue may join another (its old entry is forgotten).
    pub fn add_call(
        &mut self,
        now: Instant,
        call: CallId,
        queue: &str,
        priority: i32,
    ) -> Result<EntryId, Refused> {
        let refuse = |reason| Err(Refused { reason });
        let Some(qi) = self.open_queue(queue) else {
            return refuse(Refusal::UnknownQueue);
        };
        if let Some(&old) = self.by_call.get(&call) {
            if matches!(self.entries[&old].state(), EntryState::TimedOut(_)) {
                self.forget(old);
            } else {
                return refuse(Refusal::AlreadyQueued);
            }
        }
        let q = &mut self.queues[qi];
        if q.is_full() {
            info!(%call, queue, "queue full: call refused");
            return refuse(Refusal::Full);
        }
        if q.staffed() == 0 && q.when_no_agents() != WhenNoAgents::Join {
            info!(%call, queue, "no agents: call refused");
            return refuse(Refusal::NoAgents);
        }
        let id = EntryId(self.next_entry);
        self.next_entry += 1;
        let entry = Entry::new(id, call.clone(), qi, priority, now, id.0);
        let key = entry.key();
        q.insert(key, id, true);
        let position = q.position(&key);
        if let Some(max) = q.max_wait() {
            self.timers.set(Timer::MaxWait(id), now + max);
        }
        if let Some(every) = q.announce_every() {
            self.timers.set(Timer::Announce(id), now + every);
        }
        self.entries.insert(id, entry);
        self.by_call.insert(call.clone(), id);
        debug!(%call, queue, priority, position, "call joined the queue");
        self.event(
            QueueEvent::new(now, EventKind::Enter)
                .queue(queue)
                .call(&call)
                .position(position),
        );
        self.dispatch(now);
        Ok(id)
    }

    /// The caller hung up while in the queue (abandon, with its position
    /// and wait; any agent ringing is cancelled). For a timed-out call it
    /// forgets the entry; for a callback request it does nothing (the
    /// request stands). A connected call ends with `call_ended` instead.
    pub fn caller_left(&mut self, now: Instant, call: &CallId) -> Result<(), AcdError> {
        let eid = self.entry_id(call)?;
        let e = &self.entries[&eid];
        match e.state() {
            EntryState::Connected { .. } => return Err(AcdError::Connected(call.clone())),
            EntryState::TimedOut(_) => {
                self.forget(eid);
                return Ok(());
            }
            _ if !e.is_live() => return Ok(()),
            _ => {}
        }
        let (qi, key) = (e.queue(), e.key());
        let position = self.queues[qi].position(&key);
        let wait = now.saturating_duration_since(e.enqueued());
        let ringing = self.entries.get_mut(&eid).map(Entry::abandon).transpose()?;
        self.cancel_agents(now, qi, call, &ringing.unwrap_or_default(), "caller_left");
        self.queues[qi].remove(&key, true);
        let name = self.queues[qi].name().to_string();
        info!(%call, queue = %name, position, wait_ms = wait.as_millis() as u64, "caller abandoned");
        self.event(
            QueueEvent::new(now, EventKind::Abandon)
                .queue(&name)
                .call(call)
                .position(position)
                .wait(wait),
        );
        self.forget(eid);
        self.dispatch(now);
        Ok(())
    }

    /// How the offer of `call` to `agent` ended.
    pub fn offer_result(
        &mut self,
        now: Instant,
        call: &CallId,
        agent: &AgentId,
        result: OfferResult,
    ) -> Result<(), AcdError> {
        let ai = self.agent_index(agent)?;
        let not_offered = || AcdError::NotOffered {
            call: call.clone(),
            agent: agent.clone(),
        };
        let eid = self.by_call.get(call).copied().ok_or_else(not_offered)?;
        let ringing_this = matches!(self.agents[ai].state(),
            AgentState::Ringing { call: c, .. } if c == call);
        if !ringing_this || !self.entries[&eid].ringing().contains(&ai) {
            return Err(not_offered());
        }
        if result == OfferResult::Answered {
            self.connect(now, eid, ai)?;
        } else {
            self.miss(now, eid, ai, result.reason())?;
        }
        self.dispatch(now);
        Ok(())
    }

    /// A connected call ended (either side hung up; `by` says who).
    /// The agent goes to wrap-up.
    pub fn call_ended(&mut self, now: Instant, call: &CallId, by: EndedBy) -> Result<(), AcdError> {
        self.finish_call(now, call, EventKind::Complete, by.as_str())
    }

    /// The agent transferred a connected call to `target` (another agent,
    /// a queue, an external number): the agent's part is over (wrap-up).
    /// To put the call in another queue, `add_call` it afterwards.
    pub fn transfer(&mut self, now: Instant, call: &CallId, target: &str) -> Result<(), AcdError> {
        self.finish_call(now, call, EventKind::Transfer, target)
    }

    /// The caller asks to be called back on `number`, keeping its place
    /// (also after a `QueueTimeout`: it goes back to the place it had).
    /// The live call may then hang up; `caller_left` will not remove the
    /// request.
    pub fn request_callback(
        &mut self,
        now: Instant,
        call: &CallId,
        number: &str,
    ) -> Result<(), AcdError> {
        if !valid_number(number) {
            return Err(AcdError::BadNumber);
        }
        let eid = self.entry_id(call)?;
        let e = &self.entries[&eid];
        let (qi, key) = (e.queue(), e.key());
        let was_in_queue = e.in_queue();
        if e.is_live() && self.queues[qi].callbacks() >= self.settings.max_callbacks_per_queue {
            return Err(AcdError::CallbacksFull(self.queues[qi].name().to_string()));
        }
        let wait = now.saturating_duration_since(e.enqueued());
        let ringing = self
            .entries
            .get_mut(&eid)
            .map(|e| e.make_callback(number.to_string()))
            .transpose()?
            .unwrap_or_default();
        self.cancel_agents(now, qi, call, &ringing, "breakout");
        self.timers.clear_entry(eid);
        if was_in_queue {
            self.queues[qi].make_callback(&key, eid);
        } else {
            self.queues[qi].insert(key, eid, false);
        }
        let position = self.queues[qi].position(&key);
        let name = self.queues[qi].name().to_string();
        info!(%call, queue = %name, position, "callback requested; place kept");
        self.event(
            QueueEvent::new(now, EventKind::Breakout)
                .queue(&name)
                .call(call)
                .position(position)
                .wait(wait)
                .reason("callback"),
        );
        self.dispatch(now);
        Ok(())
    }

    /// Puts a callback request into `queue` at the place it would have
    /// had if it had joined at `since` (at most `now`): for requests kept
    /// in the store across a restart, and for a retry after the citizen
    /// could not be reached (the daemon picks `since`: the original time
    /// keeps the place, `now` goes to the back).
    pub fn add_callback(
        &mut self,
        now: Instant,
        call: CallId,
        queue: &str,
        priority: i32,
        number: &str,
        since: Instant,
    ) -> Result<EntryId, AcdError> {
        if !valid_number(number) {
            return Err(AcdError::BadNumber);
        }
        let qi = self
            .open_queue(queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.to_string()))?;
        if let Some(&old) = self.by_call.get(&call) {
            if matches!(self.entries[&old].state(), EntryState::TimedOut(_)) {
                self.forget(old);
            } else {
                return Err(AcdError::AlreadyQueued(call));
            }
        }
        if self.queues[qi].callbacks() >= self.settings.max_callbacks_per_queue {
            return Err(AcdError::CallbacksFull(queue.to_string()));
        }
        let id = EntryId(self.next_entry);
        self.next_entry += 1;
        let mut entry = Entry::new(id, call.clone(), qi, priority, since.min(now), id.0);
        entry.make_callback(number.to_string())?;
        let key = entry.key();
        self.queues[qi].insert(key, id, false);
        let position = self.queues[qi].position(&key);
        self.entries.insert(id, entry);
        self.by_call.insert(call.clone(), id);
        self.event(
            QueueEvent::new(now, EventKind::Enter)
                .queue(queue)
                .call(&call)
                .position(position)
                .reason("callback"),
        );
        self.dispatch(now);
        Ok(id)
    }

    /// The caller leaves the queue to record a voice message. The ACD
    /// forgets the call (a later `caller_left` gets `UnknownCall`).
    pub fn breakout_voicemail(&mut self, now: Instant, call: &CallId) -> Result<(), AcdError> {
        let eid = self.entry_id(call)?;
        let e = &self.entries[&eid];
        let (qi, key) = (e.queue(), e.key());
        let was_in_queue = e.in_queue();
        let position = was_in_queue.then(|| self.queues[qi].position(&key));
        let wait = now.saturating_duration_since(e.enqueued());
        let ringing = self
            .entries
            .get_mut(&eid)
            .map(Entry::voicemail)
            .transpose()?
            .unwrap_or_default();
        self.cancel_agents(now, qi, call, &ringing, "breakout");
        if was_in_queue {
            self.queues[qi].remove(&key, true);
        }
        let name = self.queues[qi].name().to_string();
        let mut ev = QueueEvent::new(now, EventKind::Breakout)
            .queue(&name)
            .call(call)
            .wait(wait)
            .reason("voicemail");
        ev.position = position;
        self.event(ev);
        self.forget(eid);
        self.dispatch(now);
        Ok(())
    }

    // ----- agents ------------------------------------------------------------

    pub fn agent_login(&mut self, now: Instant, agent: &AgentId) -> Result<Effect, AcdError> {
        let ai = self.agent_index(agent)?;
        let was = self.agents[ai].staffed();
        let change = self.agents[ai].login(now)?;
        info!(agent = %agent, "agent logged in");
        self.agent_event(now, ai, change);
        self.restaff(now, ai, was);
        self.dispatch(now);
        Ok(Effect::Now)
    }

    /// Logs out now (an offer ringing is cancelled first), or after the
    /// call and wrap-up if talking or in wrap-up.
    pub fn agent_logout(&mut self, now: Instant, agent: &AgentId) -> Result<Effect, AcdError> {
        let ai = self.agent_index(agent)?;
        if !self.agents[ai].logged_in() {
            return Err(AgentError::NotLoggedIn.into());
        }
        self.withdraw(now, ai, "agent_logout", false)?;
        let was = self.agents[ai].staffed();
        let step = self.agents[ai].logout(now)?;
        let effect = self.step(now, ai, step);
        self.restaff(now, ai, was);
        self.dispatch(now);
        Ok(effect)
    }

    /// Pauses with a reason code now (an offer ringing is cancelled
    /// first), or after the call and wrap-up.
    pub fn agent_pause(
        &mut self,
        now: Instant,
        agent: &AgentId,
        reason: &str,
    ) -> Result<Effect, AcdError> {
        let ai = self.agent_index(agent)?;
        if !agent::valid_reason(reason) {
            return Err(AcdError::BadReason);
        }
        if !self.agents[ai].logged_in() {
            return Err(AgentError::NotLoggedIn.into());
        }
        self.withdraw(now, ai, "agent_pause", false)?;
        let step = self.agents[ai].pause(now, reason)?;
        let effect = self.step(now, ai, step);
        self.dispatch(now);
        Ok(effect)
    }

    /// Ends a pause (or drops a pending one).
    pub fn agent_unpause(&mut self, now: Instant, agent: &AgentId) -> Result<Effect, AcdError> {
        let ai = self.agent_index(agent)?;
        let step = self.agents[ai].unpause(now)?;
        let effect = self.step(now, ai, step);
        self.dispatch(now);
        Ok(effect)
    }

    /// "Ready": logs in, unpauses or ends wrap-up early, whichever applies,
    /// and drops a pending pause or logout.
    pub fn agent_ready(&mut self, now: Instant, agent: &AgentId) -> Result<Effect, AcdError> {
        let ai = self.agent_index(agent)?;
        let was = self.agents[ai].staffed();
        let step = self.agents[ai].ready(now)?;
        if !matches!(self.agents[ai].state(), AgentState::WrapUp { .. }) {
            self.timers.clear(Timer::WrapUp(ai));
        }
        let effect = self.step(now, ai, step);
        self.restaff(now, ai, was);
        self.dispatch(now);
        Ok(effect)
    }

    /// The registrar's word on the agent's softphone: an unreachable agent
    /// is not offered calls (an offer ringing is cancelled and the caller
    /// offered elsewhere), and does not staff its queues.
    pub fn agent_reachable(
        &mut self,
        now: Instant,
        agent: &AgentId,
        reachable: bool,
    ) -> Result<Effect, AcdError> {
        let ai = self.agent_index(agent)?;
        if !reachable {
            self.withdraw(now, ai, "unreachable", true)?;
        }
        let was = self.agents[ai].staffed();
        if !self.agents[ai].set_reachable(reachable) {
            return Ok(Effect::Unchanged);
        }
        let kind = if reachable {
            EventKind::Reachable
        } else {
            EventKind::Unreachable
        };
        info!(agent = %agent, reachable, "agent reachability changed");
        self.agent_event(now, ai, Change { kind, reason: None });
        self.restaff(now, ai, was);
        self.dispatch(now);
        Ok(Effect::Now)
    }

    // ----- time --------------------------------------------------------------

    /// Handles every timer due at `now` (calls before `deadline()` do
    /// nothing but match waiting callers).
    pub fn on_timer(&mut self, now: Instant) {
        while let Some(t) = self.timers.pop_due(now) {
            let r = match t {
                Timer::Ring(eid) => self.ring_timeout(now, eid),
                Timer::MaxWait(eid) => self.max_wait(now, eid),
                Timer::Announce(eid) => {
                    self.announce(now, eid);
                    Ok(())
                }
                Timer::WrapUp(ai) => self.end_wrap_up(now, ai, false),
            };
            if let Err(e) = r {
                warn!(error = %e, timer = ?t, "ACD timer found an unexpected state");
            }
        }
        self.dispatch(now);
    }

    // ----- internals -----------------------------------------------------------

    fn event(&mut self, e: QueueEvent) {
        self.out.push_back(AcdCommand::Event(e));
    }

    fn agent_event(&mut self, now: Instant, ai: usize, change: Change) {
        let mut e = QueueEvent::new(now, change.kind).agent(self.agents[ai].id());
        e.reason = change.reason;
        self.event(e);
    }

    fn step(&mut self, now: Instant, ai: usize, step: Step) -> Effect {
        match step {
            Step::Now(change) => {
                info!(agent = %self.agents[ai].id(), change = %change.kind,
                    reason = change.reason.as_deref().unwrap_or(""), "agent state changed");
                self.agent_event(now, ai, change);
                Effect::Now
            }
            Step::AfterCall => Effect::AfterCall,
            Step::Unchanged => Effect::Unchanged,
        }
    }

    fn agent_index(&self, agent: &AgentId) -> Result<usize, AcdError> {
        self.agent_ix
            .get(agent)
            .copied()
            .filter(|&i| !self.agents[i].removed())
            .ok_or_else(|| AcdError::UnknownAgent(agent.clone()))
    }

    /// A queue that takes new callers (not one a reload removed).
    fn open_queue(&self, name: &str) -> Option<usize> {
        self.queue_ix
            .get(name)
            .copied()
            .filter(|&i| !self.queues[i].closed())
    }

    fn entry_id(&self, call: &CallId) -> Result<EntryId, AcdError> {
        self.by_call
            .get(call)
            .copied()
            .ok_or_else(|| AcdError::UnknownCall(call.clone()))
    }

    fn forget(&mut self, eid: EntryId) {
        self.timers.clear_entry(eid);
        if let Some(e) = self.entries.remove(&eid) {
            if self.by_call.get(e.call()) == Some(&eid) {
                self.by_call.remove(e.call());
            }
        }
    }

    /// The agent's staffing changed: update its queues, and empty those
    /// left with no one under a `leave` rule.
    fn restaff(&mut self, now: Instant, ai: usize, was: bool) {
        let is = self.agents[ai].staffed();
        if was == is {
            return;
        }
        for i in 0..self.agent_queues[ai].len() {
            let qi = self.agent_queues[ai][i];
            self.queues[qi].staffed_changed(is);
            if self.queues[qi].staffed() == 0
                && self.queues[qi].when_no_agents() == WhenNoAgents::Leave
            {
                self.send_away(now, qi);
            }
        }
    }

    /// The live callers of queue `qi` leave it (`QueueTimeout` with
    /// `NoAgents`): at once if waiting, when the ringing ends if offered.
    /// Callback requests stay.
    fn send_away(&mut self, now: Instant, qi: usize) {
        let live: Vec<EntryId> = self.queues[qi]
            .entries()
            .filter(|id| self.entries[id].is_live())
            .collect();
        for eid in live {
            if matches!(self.entries[&eid].state(), EntryState::Waiting { .. }) {
                self.time_out(now, eid, TimeoutReason::NoAgents);
            } else if let Some(e) = self.entries.get_mut(&eid) {
                e.set_overdue();
            }
        }
    }

    /// Withdraws the agent's ringing offer, if any (not a miss for the
    /// agent; `avoid`: not offered to it again at once).
    fn withdraw(
        &mut self,
        now: Instant,
        ai: usize,
        reason: &str,
        avoid: bool,
    ) -> Result<(), AcdError> {
        let AgentState::Ringing { call, .. } = self.agents[ai].state() else {
            return Ok(());
        };
        let call = call.clone();
        let eid = self.entry_id(&call)?;
        let qi = self.entries[&eid].queue();
        self.cancel_agents(now, qi, &call, &[ai], reason);
        let over = self
            .entries
            .get_mut(&eid)
            .map(|e| e.offer_ended(ai, avoid))
            .transpose()?
            .unwrap_or(false);
        if over {
            self.round_over(now, eid);
        }
        Ok(())
    }

    /// Cancels the offers to `agents` (agent side only): CancelOffer and
    /// an event each.
    fn cancel_agents(
        &mut self,
        now: Instant,
        qi: usize,
        call: &CallId,
        agents: &[usize],
        reason: &str,
    ) {
        for &ai in agents {
            if let Err(e) = self.agents[ai].cancel_offer(now) {
                warn!(error = %e, agent = %self.agents[ai].id(), "cancelling an offer");
            }
            let agent = self.agents[ai].id().clone();
            let ev = QueueEvent::new(now, EventKind::OfferCancelled)
                .queue(self.queues[qi].name())
                .call(call)
                .agent(&agent)
                .reason(reason);
            self.out.push_back(AcdCommand::CancelOffer {
                call: call.clone(),
                agent,
            });
            self.event(ev);
        }
    }

    fn connect(&mut self, now: Instant, eid: EntryId, ai: usize) -> Result<(), AcdError> {
        let e = self.entries.get_mut(&eid).ok_or(EntryError {
            state: "gone",
            action: "connect",
        })?;
        let others = e.connect(now, ai)?;
        let (qi, key, live, call) = (e.queue(), e.key(), e.is_live(), e.call().clone());
        let wait = now.saturating_duration_since(e.enqueued());
        self.agents[ai].answered(now)?;
        self.cancel_agents(now, qi, &call, &others, "answered_elsewhere");
        self.queues[qi].remove(&key, live);
        self.timers.clear_entry(eid);
        let agent = self.agents[ai].id().clone();
        info!(%call, agent = %agent, wait_ms = wait.as_millis() as u64, "call connected");
        let mut ev = QueueEvent::new(now, EventKind::Connect)
            .queue(self.queues[qi].name())
            .call(&call)
            .agent(&agent)
            .wait(wait);
        if !live {
            ev = ev.reason("callback");
        }
        self.out.push_back(AcdCommand::Connected { call, agent });
        self.event(ev);
        Ok(())
    }

    /// The agent missed the entry's offer.
    fn miss(
        &mut self,
        now: Instant,
        eid: EntryId,
        ai: usize,
        reason: &str,
    ) -> Result<(), AcdError> {
        let paused = self.agents[ai].missed(now, self.settings.max_missed_offers)?;
        let e = &self.entries[&eid];
        let (qi, call) = (e.queue(), e.call().clone());
        let agent = self.agents[ai].id().clone();
        debug!(%call, agent = %agent, reason, "offer missed");
        self.event(
            QueueEvent::new(now, EventKind::RingNoAnswer)
                .queue(self.queues[qi].name())
                .call(&call)
                .agent(&agent)
                .reason(reason),
        );
        if let Some(change) = paused {
            info!(agent = %agent, misses = self.settings.max_missed_offers, "agent paused: missed offers");
            self.agent_event(now, ai, change);
        }
        let over = self
            .entries
            .get_mut(&eid)
            .map(|e| e.offer_ended(ai, true))
            .transpose()?
            .unwrap_or(false);
        if over {
            self.round_over(now, eid);
        }
        Ok(())
    }

    /// No one rings for the entry any more: it waits again at its place,
    /// or times out if its max wait passed meanwhile.
    fn round_over(&mut self, now: Instant, eid: EntryId) {
        self.timers.clear(Timer::Ring(eid));
        let e = &self.entries[&eid];
        if e.overdue() && e.is_live() {
            self.time_out(now, eid, TimeoutReason::MaxWait);
        } else {
            let (qi, key) = (e.queue(), e.key());
            self.queues[qi].waiting_again(key, eid);
        }
    }

    fn time_out(&mut self, now: Instant, eid: EntryId, reason: TimeoutReason) {
        let e = &self.entries[&eid];
        let (qi, key, call) = (e.queue(), e.key(), e.call().clone());
        let wait = now.saturating_duration_since(e.enqueued());
        let position = self.queues[qi].position(&key);
        if let Some(Err(err)) = self.entries.get_mut(&eid).map(|e| e.time_out(reason)) {
            warn!(error = %err, %call, "time-out in an unexpected state");
            return;
        }
        self.queues[qi].remove(&key, true);
        self.timers.clear_entry(eid);
        info!(%call, queue = self.queues[qi].name(), reason = reason.as_str(), "caller leaves the queue for overflow");
        let ev = QueueEvent::new(now, EventKind::Timeout)
            .queue(self.queues[qi].name())
            .call(&call)
            .position(position)
            .wait(wait)
            .reason(reason.as_str());
        self.out
            .push_back(AcdCommand::QueueTimeout { call, reason });
        self.event(ev);
    }

    fn finish_call(
        &mut self,
        now: Instant,
        call: &CallId,
        kind: EventKind,
        reason: &str,
    ) -> Result<(), AcdError> {
        let eid = self.entry_id(call)?;
        let e = &self.entries[&eid];
        let EntryState::Connected { agent: ai, .. } = *e.state() else {
            return Err(AcdError::NotConnected(call.clone()));
        };
        let qi = e.queue();
        let (until, talk) = self.agents[ai].call_ended(now)?;
        let wrap_up = self.agents[ai].wrap_up();
        self.queues[qi].record_handle_time(talk + wrap_up);
        let ev = QueueEvent::new(now, kind)
            .queue(self.queues[qi].name())
            .call(call)
            .agent(self.agents[ai].id())
            .talk(talk)
            .reason(reason);
        self.event(ev);
        self.forget(eid);
        if until <= now {
            self.end_wrap_up(now, ai, false)?;
        } else {
            self.timers.set(Timer::WrapUp(ai), until);
        }
        self.dispatch(now);
        Ok(())
    }

    fn end_wrap_up(&mut self, now: Instant, ai: usize, early: bool) -> Result<(), AcdError> {
        self.timers.clear(Timer::WrapUp(ai));
        let was = self.agents[ai].staffed();
        let change = self.agents[ai].wrap_up_done(now, early)?;
        self.step(now, ai, Step::Now(change));
        self.restaff(now, ai, was);
        Ok(())
    }

    fn ring_timeout(&mut self, now: Instant, eid: EntryId) -> Result<(), AcdError> {
        let Some(e) = self.entries.get(&eid) else {
            return Ok(());
        };
        let call = e.call().clone();
        for ai in e.ringing().to_vec() {
            self.out.push_back(AcdCommand::CancelOffer {
                call: call.clone(),
                agent: self.agents[ai].id().clone(),
            });
            self.miss(now, eid, ai, "ring_timeout")?;
        }
        Ok(())
    }

    fn max_wait(&mut self, now: Instant, eid: EntryId) -> Result<(), AcdError> {
        let Some(e) = self.entries.get_mut(&eid) else {
            return Ok(());
        };
        match e.state() {
            EntryState::Waiting { .. } if e.is_live() => {
                self.time_out(now, eid, TimeoutReason::MaxWait)
            }
            EntryState::Offering { .. } if e.is_live() => e.set_overdue(),
            _ => {}
        }
        Ok(())
    }

    fn announce(&mut self, now: Instant, eid: EntryId) {
        let Some(e) = self.entries.get(&eid) else {
            return;
        };
        if !e.is_live() || !e.in_queue() {
            return;
        }
        let q = &self.queues[e.queue()];
        if let EntryState::Waiting { .. } = e.state() {
            let position = q.position(&e.key());
            let working = q
                .members()
                .iter()
                .filter(|&&ai| self.agents[ai].working())
                .count();
            let cmd = AcdCommand::Announce {
                call: e.call().clone(),
                position,
                estimated_wait: q.estimated_wait(position, working),
            };
            self.out.push_back(cmd);
        }
        if let Some(every) = q.announce_every() {
            self.timers.set(Timer::Announce(eid), now + every);
        }
    }

    /// Serves queue heads in global order while agents are free (see the
    /// module header).
    fn dispatch(&mut self, now: Instant) {
        let mut blocked = vec![false; self.queues.len()];
        loop {
            let mut best: Option<(super::entry::QueueKey, usize, EntryId)> = None;
            for (qi, q) in self.queues.iter().enumerate() {
                if blocked[qi] {
                    continue;
                }
                if let Some((k, id)) = q.head() {
                    if best.is_none_or(|(bk, _, _)| k < bk) {
                        best = Some((k, qi, id));
                    }
                }
            }
            let Some((_, qi, eid)) = best else {
                break;
            };
            let chosen = self.choose(now, qi, eid);
            if chosen.is_empty() {
                blocked[qi] = true;
                continue;
            }
            if let Err(e) = self.offer(now, qi, eid, chosen) {
                warn!(error = %e, "offer failed to start");
                blocked[qi] = true;
            }
        }
    }

    fn choose(&mut self, now: Instant, qi: usize, eid: EntryId) -> Vec<usize> {
        let q = &self.queues[qi];
        let e = &self.entries[&eid];
        let candidates: Vec<Candidate> = q
            .members()
            .iter()
            .enumerate()
            .filter(|(_, &ai)| self.agents[ai].offerable())
            .map(|(pos, &ai)| {
                let a = &self.agents[ai];
                Candidate {
                    pos,
                    agent: ai,
                    idle_since: a.idle_since().unwrap_or(now),
                    calls_today: a.calls_today(),
                    skill_score: a.skill_score(q.skills()),
                }
            })
            .collect();
        let (strategy, max) = if e.is_live() {
            (q.strategy(), self.settings.ring_all_max)
        } else if q.strategy() == Strategy::RingAll {
            // A callback rings one agent.
            (Strategy::LongestIdle, 1)
        } else {
            (q.strategy(), 1)
        };
        let avoid = if strategy == Strategy::RingAll {
            None
        } else {
            e.last_missed()
        };
        let members = q.members().len();
        let mut cursor = q.rr_cursor;
        let chosen = strategy::choose(strategy, &candidates, avoid, &mut cursor, members, max);
        self.queues[qi].rr_cursor = cursor;
        chosen
    }

    fn offer(
        &mut self,
        now: Instant,
        qi: usize,
        eid: EntryId,
        agents: Vec<usize>,
    ) -> Result<(), AcdError> {
        let ring = self.queues[qi].ring_timeout();
        let until = now + ring;
        let e = self.entries.get_mut(&eid).ok_or(EntryError {
            state: "gone",
            action: "offer",
        })?;
        e.offer(now, agents.clone(), until)?;
        let (call, key, kind) = (e.call().clone(), e.key(), e.kind().clone());
        let wait = now.saturating_duration_since(e.enqueued());
        self.queues[qi].offering(&key);
        self.timers.set(Timer::Ring(eid), until);
        for ai in agents {
            self.agents[ai].offer(now, call.clone())?;
            let a = &self.agents[ai];
            let (agent, extension) = (a.id().clone(), a.extension().to_string());
            debug!(%call, agent = %agent, "offering the call");
            let mut ev = QueueEvent::new(now, EventKind::Offer)
                .queue(self.queues[qi].name())
                .call(&call)
                .agent(&agent)
                .wait(wait);
            let cmd = match &kind {
                EntryKind::Live => AcdCommand::Offer {
                    call: call.clone(),
                    agent,
                    extension,
                    ring_timeout: ring,
                },
                EntryKind::Callback { number } => {
                    ev = ev.reason("callback");
                    AcdCommand::PlaceCallback {
                        entry: eid,
                        call: call.clone(),
                        agent,
                        extension,
                        number: number.clone(),
                        ring_timeout: ring,
                    }
                }
            };
            self.out.push_back(cmd);
            self.event(ev);
        }
        Ok(())
    }

    /// Every internal invariant (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut in_offers = vec![0usize; self.agents.len()];
        for (eid, e) in &self.entries {
            if self.by_call.get(e.call()) != Some(eid) {
                return Err(format!("{eid}: not found by its call"));
            }
            let q = &self.queues[e.queue()];
            let ids: Vec<EntryId> = q.entries().filter(|i| i == eid).collect();
            match (e.in_queue(), ids.len()) {
                (true, 1) | (false, 0) => {}
                (inq, n) => return Err(format!("{eid}: in_queue {inq} but present {n} times")),
            }
            if e.in_queue()
                && q.is_waiting(&e.key()) != matches!(e.state(), EntryState::Waiting { .. })
            {
                return Err(format!(
                    "{eid}: {} but waiting map disagrees",
                    e.state().name()
                ));
            }
            match e.state() {
                EntryState::Offering { agents, .. } => {
                    if !self.timers.at.contains_key(&Timer::Ring(*eid)) {
                        return Err(format!("{eid}: offering without a ring timer"));
                    }
                    for &ai in agents {
                        in_offers[ai] += 1;
                        if self.agents[ai].state().call() != Some(e.call())
                            || !matches!(self.agents[ai].state(), AgentState::Ringing { .. })
                        {
                            return Err(format!(
                                "{eid}: agent {ai} offered but {:?}",
                                self.agents[ai].state()
                            ));
                        }
                    }
                }
                EntryState::Connected { agent, .. }
                    if !matches!(self.agents[*agent].state(),
                        AgentState::Talking { call, .. } if call == e.call()) =>
                {
                    return Err(format!(
                        "{eid}: connected but agent {:?}",
                        self.agents[*agent].state()
                    ));
                }
                _ => {}
            }
        }
        for (call, eid) in &self.by_call {
            if self.entries.get(eid).map(Entry::call) != Some(call) {
                return Err(format!("{call}: by_call points at a wrong entry"));
            }
        }
        let mut present = 0;
        for (qi, q) in self.queues.iter().enumerate() {
            q.check()?;
            for id in q.entries() {
                present += 1;
                match self.entries.get(&id) {
                    Some(e) if e.queue() == qi && e.in_queue() => {}
                    _ => return Err(format!("queue {}: holds {id} wrongly", q.name())),
                }
            }
            let staffed = q
                .members()
                .iter()
                .filter(|&&ai| self.agents[ai].staffed())
                .count();
            if staffed != q.staffed() {
                return Err(format!(
                    "queue {}: staffed {} != {}",
                    q.name(),
                    q.staffed(),
                    staffed
                ));
            }
        }
        let in_queue = self.entries.values().filter(|e| e.in_queue()).count();
        if present != in_queue {
            return Err(format!(
                "{present} places held, {in_queue} entries in queues"
            ));
        }
        for (ai, a) in self.agents.iter().enumerate() {
            match a.state() {
                AgentState::Ringing { call, .. } => {
                    let ok = self
                        .by_call
                        .get(call)
                        .and_then(|e| self.entries.get(e))
                        .is_some_and(|e| e.ringing().contains(&ai));
                    if !ok || in_offers[ai] != 1 {
                        return Err(format!(
                            "agent {ai} ringing for {call} with {} offers",
                            in_offers[ai]
                        ));
                    }
                }
                AgentState::Talking { call, .. } => {
                    let ok = self
                        .by_call
                        .get(call)
                        .and_then(|e| self.entries.get(e))
                        .is_some_and(|e| matches!(e.state(), EntryState::Connected { agent, .. } if *agent == ai));
                    if !ok {
                        return Err(format!(
                            "agent {ai} talking on {call} with no connected entry"
                        ));
                    }
                }
                AgentState::WrapUp { until } => {
                    if self.timers.at.get(&Timer::WrapUp(ai)) != Some(until) {
                        return Err(format!("agent {ai} in wrap-up without its timer"));
                    }
                }
                _ => {
                    if in_offers[ai] != 0 {
                        return Err(format!("agent {ai} offered while {}", a.state().name()));
                    }
                }
            }
        }
        Ok(())
    }
}
