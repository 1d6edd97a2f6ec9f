//! One queue entry's state machine: a caller's place in a queue, or a
//! callback request keeping that place.
//!
//! ```text
//!            offer                answered
//! Waiting ─────────▶ Offering ─────────────▶ Connected   (the call task
//!    ▲ │  round over    │ │                               reports the end)
//!    │ └◀───────────────┘ │ caller left / breakout
//!    │                    ▼
//!    │   Abandoned · TimedOut(max_wait | no_agents) · BrokeOut(voicemail)
//!    │                    │
//!    └── callback ────────┘ (from Waiting, Offering or TimedOut)
//! ```
//!
//! - **Order.** An entry's [`QueueKey`] is (priority desc, enqueue time
//!   asc, sequence): fixed for its life, so a caller whose offer failed,
//!   or who asked for a callback, keeps the place it had.
//! - **Offering** holds the agents being rung (one, or several for
//!   ring-all) and the ring deadline. The round is over when the last of
//!   them has missed or been withdrawn; the entry waits again.
//! - **Callback.** The caller hangs up but the entry stays, as a virtual
//!   entry (`EntryKind::Callback`) with no live call, no max wait and no
//!   announcements. At the front with a free agent the ACD places it:
//!   Offering to one agent (`PlaceCallback`), then Connected.
//! - **Timed out.** After `QueueTimeout` the entry leaves the queue but is
//!   remembered until the caller's call says what it did (voicemail,
//!   callback — back at its old place — or hang-up), or joins a queue
//!   again.
//! - Position is not stored in `Waiting`: it changes whenever someone
//!   ahead leaves, and keeping it in every entry would cost O(n) per
//!   departure. The queue computes it when asked (see `queue`).

use std::cmp::Reverse;

use tokio::time::Instant;

use super::{CallId, EntryId};

/// The order of a queue: priority desc, enqueue time asc, then sequence
/// (unique, increasing), comparable across queues (fairness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey {
    pub priority: Reverse<i32>,
    pub enqueued: Instant,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A caller on the line.
    Live,
    /// A callback request: no live call; call the citizen on `number`.
    Callback { number: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReason {
    /// The queue's max wait passed.
    MaxWait,
    /// The last agent left a queue whose rule is `leave`.
    NoAgents,
}

impl TimeoutReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutReason::MaxWait => "max_wait",
            TimeoutReason::NoAgents => "no_agents",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakOut {
    Voicemail,
    Callback,
}

impl BreakOut {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakOut::Voicemail => "voicemail",
            BreakOut::Callback => "callback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    /// In the queue, waiting for an agent since `since` (its enqueue time).
    Waiting {
        since: Instant,
    },
    /// Agents (by index) ringing since `since`, until `until`.
    Offering {
        agents: Vec<usize>,
        since: Instant,
        until: Instant,
    },
    /// An agent (by index) answered.
    Connected {
        agent: usize,
        since: Instant,
    },
    Abandoned,
    TimedOut(TimeoutReason),
    BrokeOut(BreakOut),
}

impl EntryState {
    pub fn name(&self) -> &'static str {
        match self {
            EntryState::Waiting { .. } => "waiting",
            EntryState::Offering { .. } => "offering",
            EntryState::Connected { .. } => "connected",
            EntryState::Abandoned => "abandoned",
            EntryState::TimedOut(_) => "timed_out",
            EntryState::BrokeOut(_) => "broke_out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the queue entry is {state}: cannot {action}")]
pub struct EntryError {
    pub state: &'static str,
    pub action: &'static str,
}

/// One entry.
#[derive(Debug, Clone)]
pub struct Entry {
    id: EntryId,
    call: CallId,
    queue: usize,
    key: QueueKey,
    kind: EntryKind,
    state: EntryState,
    /// The agent who missed this entry's last offer (not rung again at once
    /// unless no one else can be).
    last_missed: Option<usize>,
    /// Agents rung so far.
    offers: u32,
    /// Max wait passed while an offer was out: time out if it fails.
    overdue: bool,
}

impl Entry {
    pub(super) fn new(
        id: EntryId,
        call: CallId,
        queue: usize,
        priority: i32,
        now: Instant,
        seq: u64,
    ) -> Entry {
        Entry {
            id,
            call,
            queue,
            key: QueueKey {
                priority: Reverse(priority),
                enqueued: now,
                seq,
            },
            kind: EntryKind::Live,
            state: EntryState::Waiting { since: now },
            last_missed: None,
            offers: 0,
            overdue: false,
        }
    }

    pub fn id(&self) -> EntryId {
        self.id
    }
    pub fn call(&self) -> &CallId {
        &self.call
    }
    /// The queue's index in the ACD.
    pub fn queue(&self) -> usize {
        self.queue
    }
    pub fn key(&self) -> QueueKey {
        self.key
    }
    pub fn priority(&self) -> i32 {
        self.key.priority.0
    }
    pub fn enqueued(&self) -> Instant {
        self.key.enqueued
    }
    pub fn kind(&self) -> &EntryKind {
        &self.kind
    }
    pub fn is_live(&self) -> bool {
        self.kind == EntryKind::Live
    }
    pub fn state(&self) -> &EntryState {
        &self.state
    }
    pub fn offers(&self) -> u32 {
        self.offers
    }
    pub fn last_missed(&self) -> Option<usize> {
        self.last_missed
    }
    pub fn overdue(&self) -> bool {
        self.overdue
    }

    /// Waiting or Offering: holds a place in its queue.
    pub fn in_queue(&self) -> bool {
        matches!(
            self.state,
            EntryState::Waiting { .. } | EntryState::Offering { .. }
        )
    }

    /// The agents being rung (empty unless Offering).
    pub fn ringing(&self) -> &[usize] {
        match &self.state {
            EntryState::Offering { agents, .. } => agents,
            _ => &[],
        }
    }

    fn err(&self, action: &'static str) -> EntryError {
        EntryError {
            state: self.state.name(),
            action,
        }
    }

    // ----- transitions (the distributor's) -------------------------------

    pub(super) fn offer(
        &mut self,
        now: Instant,
        agents: Vec<usize>,
        until: Instant,
    ) -> Result<(), EntryError> {
        if !matches!(self.state, EntryState::Waiting { .. }) || agents.is_empty() {
            return Err(self.err("offer"));
        }
        self.offers = self.offers.saturating_add(agents.len() as u32);
        self.state = EntryState::Offering {
            agents,
            since: now,
            until,
        };
        Ok(())
    }

    /// `agent`'s offer is over without an answer (`missed`: through the
    /// agent). Returns whether the round is over (no one rings any more):
    /// the entry is Waiting again.
    pub(super) fn offer_ended(&mut self, agent: usize, missed: bool) -> Result<bool, EntryError> {
        let EntryState::Offering { agents, .. } = &mut self.state else {
            return Err(self.err("end an offer"));
        };
        let Some(i) = agents.iter().position(|&a| a == agent) else {
            return Err(self.err("end an offer not made"));
        };
        agents.swap_remove(i);
        if missed {
            self.last_missed = Some(agent);
        }
        if agents.is_empty() {
            self.state = EntryState::Waiting {
                since: self.key.enqueued,
            };
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// `agent` answered: the others ringing are returned, to be cancelled.
    pub(super) fn connect(&mut self, now: Instant, agent: usize) -> Result<Vec<usize>, EntryError> {
        let EntryState::Offering { agents, .. } = &mut self.state else {
            return Err(self.err("connect"));
        };
        if !agents.contains(&agent) {
            return Err(self.err("connect an agent not rung"));
        }
        let others = agents.iter().copied().filter(|&a| a != agent).collect();
        self.state = EntryState::Connected { agent, since: now };
        Ok(others)
    }

    /// Leaves the queue (abandon, voicemail): the agents ringing are
    /// returned, to be cancelled.
    fn leave(&mut self, to: EntryState, action: &'static str) -> Result<Vec<usize>, EntryError> {
        let ringing = match &mut self.state {
            EntryState::Waiting { .. } | EntryState::TimedOut(_) => Vec::new(),
            EntryState::Offering { agents, .. } => std::mem::take(agents),
            _ => return Err(self.err(action)),
        };
        self.state = to;
        Ok(ringing)
    }

    pub(super) fn abandon(&mut self) -> Result<Vec<usize>, EntryError> {
        if !self.is_live() || matches!(self.state, EntryState::TimedOut(_)) {
            return Err(self.err("abandon"));
        }
        self.leave(EntryState::Abandoned, "abandon")
    }

    pub(super) fn time_out(&mut self, reason: TimeoutReason) -> Result<(), EntryError> {
        if !self.is_live() || !matches!(self.state, EntryState::Waiting { .. }) {
            return Err(self.err("time out"));
        }
        self.state = EntryState::TimedOut(reason);
        self.overdue = false;
        Ok(())
    }

    pub(super) fn set_overdue(&mut self) {
        self.overdue = true;
    }

    pub(super) fn voicemail(&mut self) -> Result<Vec<usize>, EntryError> {
        if !self.is_live() {
            return Err(self.err("leave a voice message"));
        }
        self.leave(
            EntryState::BrokeOut(BreakOut::Voicemail),
            "leave a voice message",
        )
    }

    /// Becomes a callback request at the same place: Waiting again.
    pub(super) fn make_callback(&mut self, number: String) -> Result<Vec<usize>, EntryError> {
        if !self.is_live() {
            return Err(self.err("request a callback"));
        }
        let since = self.key.enqueued;
        let ringing = self.leave(EntryState::Waiting { since }, "request a callback")?;
        self.kind = EntryKind::Callback { number };
        self.overdue = false;
        self.last_missed = None;
        Ok(ringing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn key_orders_priority_then_time() {
        let t0 = Instant::now();
        let a = Entry::new(EntryId(1), "a".into(), 0, 0, t0, 1);
        let b = Entry::new(EntryId(2), "b".into(), 0, 5, t0 + Duration::from_secs(9), 2);
        let c = Entry::new(EntryId(3), "c".into(), 0, 0, t0 + Duration::from_secs(1), 3);
        let mut keys = [c.key(), a.key(), b.key()];
        keys.sort();
        assert_eq!(keys, [b.key(), a.key(), c.key()]);
    }

    #[test]
    fn ring_all_round() {
        let t0 = Instant::now();
        let mut e = Entry::new(EntryId(1), "a".into(), 0, 0, t0, 1);
        e.offer(t0, vec![1, 2, 3], t0).unwrap();
        assert!(e.offer(t0, vec![4], t0).is_err());
        assert_eq!(e.offer_ended(2, true), Ok(false));
        assert_eq!(e.connect(t0, 3).unwrap(), vec![1]);
        assert!(e.abandon().is_err());
        assert_eq!(e.state().name(), "connected");
    }

    #[test]
    fn callback_keeps_the_key() {
        let t0 = Instant::now();
        let mut e = Entry::new(EntryId(1), "a".into(), 0, 3, t0, 7);
        let k = e.key();
        e.offer(t0, vec![1], t0).unwrap();
        assert_eq!(e.make_callback("10086".into()).unwrap(), vec![1]);
        assert_eq!(e.key(), k);
        assert!(!e.is_live());
        assert!(matches!(e.state(), EntryState::Waiting { .. }));
        assert!(e.abandon().is_err());
        e.offer(t0, vec![2], t0).unwrap();
        assert_eq!(e.offer_ended(2, true), Ok(true));
        assert_eq!(e.last_missed(), Some(2));
        assert!(matches!(e.state(), EntryState::Waiting { .. }));
    }

    #[test]
    fn timed_out_may_still_ask_for_a_callback() {
        let t0 = Instant::now();
        let mut e = Entry::new(EntryId(1), "a".into(), 0, 0, t0, 1);
        e.time_out(TimeoutReason::MaxWait).unwrap();
        assert!(!e.in_queue());
        assert!(e.abandon().is_err());
        e.make_callback("110".into()).unwrap();
        assert!(e.in_queue());
    }
}
