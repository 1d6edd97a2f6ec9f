//! The queue event log record. Every change of an agent or a queue entry
//! yields one [`QueueEvent`], handed to the daemon as
//! `AcdCommand::Event`; the store persists them, and the figures (answer
//! rate, speed of answer, abandon rate, wrap-up time…) are computed from
//! the stored events, so a restart resets nothing.
//!
//! `at` is a `tokio::time::Instant`; the daemon converts it to wall-clock
//! time (it knows one `(Instant, DateTime)` pair) when it stores the event.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::{AgentId, CallId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A call joined a queue (`position`).
    Enter,
    /// An agent is being rung for a call (`reason = "callback"` for a
    /// callback placed to a citizen).
    Offer,
    /// An offer failed: `reason` is `no_answer`, `busy`, `declined`,
    /// `failed` or `ring_timeout`. Counts as a miss for the agent.
    RingNoAnswer,
    /// An offer was withdrawn, not the agent's fault: `reason` is
    /// `answered_elsewhere` (ring-all), `caller_left`, `breakout`,
    /// `agent_pause`, `agent_logout` or `unreachable`.
    OfferCancelled,
    /// An agent answered (`wait` = time in queue).
    Connect,
    /// The caller hung up in the queue (`position`, `wait`).
    Abandon,
    /// The caller left the queue for the flow's overflow: `reason` is
    /// `max_wait` or `no_agents`.
    Timeout,
    /// The caller broke out: `reason` is `voicemail` or `callback`.
    Breakout,
    /// The agent transferred the call (`reason` = the target).
    Transfer,
    /// A connected call ended: `reason` is `agent`, `caller` or `system`
    /// (who hung up); `talk` is the talk time.
    Complete,
    /// An agent paused (`reason` = the code; `no_answer` when paused by
    /// the ACD after missed offers).
    Pause,
    /// An agent came back from a pause (`reason` = the pause code ended).
    Unpause,
    Login,
    Logout,
    /// An agent's wrap-up ended (`reason`: `timer` or `early`).
    WrapUpEnd,
    /// The agent's registration was lost: not offered calls.
    Unreachable,
    /// The agent's registration is back.
    Reachable,
}

impl EventKind {
    /// The name stored in the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Enter => "enter",
            EventKind::Offer => "offer",
            EventKind::RingNoAnswer => "ring_no_answer",
            EventKind::OfferCancelled => "offer_cancelled",
            EventKind::Connect => "connect",
            EventKind::Abandon => "abandon",
            EventKind::Timeout => "timeout",
            EventKind::Breakout => "breakout",
            EventKind::Transfer => "transfer",
            EventKind::Complete => "complete",
            EventKind::Pause => "pause",
            EventKind::Unpause => "unpause",
            EventKind::Login => "login",
            EventKind::Logout => "logout",
            EventKind::WrapUpEnd => "wrap_up_end",
            EventKind::Unreachable => "unreachable",
            EventKind::Reachable => "reachable",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the queue event log. Fields that do not apply are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEvent {
    pub at: Instant,
    pub kind: EventKind,
    pub queue: Option<String>,
    pub call: Option<CallId>,
    pub agent: Option<AgentId>,
    /// 1-based place in the queue.
    pub position: Option<u32>,
    /// Time in the queue so far.
    pub wait: Option<Duration>,
    /// Talk time, on `complete` and `transfer`.
    pub talk: Option<Duration>,
    pub reason: Option<String>,
}

impl QueueEvent {
    pub fn new(at: Instant, kind: EventKind) -> QueueEvent {
        QueueEvent {
            at,
            kind,
            queue: None,
            call: None,
            agent: None,
            position: None,
            wait: None,
            talk: None,
            reason: None,
        }
    }

    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_string());
        self
    }

    pub fn call(mut self, call: &CallId) -> Self {
        self.call = Some(call.clone());
        self
    }

    pub fn agent(mut self, agent: &AgentId) -> Self {
        self.agent = Some(agent.clone());
        self
    }

    pub fn position(mut self, position: u32) -> Self {
        self.position = Some(position);
        self
    }

    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    pub fn talk(mut self, talk: Duration) -> Self {
        self.talk = Some(talk);
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}
