//! One queue: its settings, its members, and its entries in order.
//!
//! Two ordered maps hold the entries by [`QueueKey`] (priority desc, enqueue
//! time asc): `present` has every entry holding a place (waiting, being
//! offered, callback requests); `waiting` has those that may be offered now
//! (not already ringing an agent). The head of `waiting` is the next to be
//! served. A caller's position is 1 + the entries in `present` before it.
//!
//! Costs, for n entries in the queue: join, leave, head O(log n); position
//! O(min(ahead, behind)) (counted from both ends; announcements, enter,
//! abandon and break-out events only). An order-statistics tree would make
//! it O(log n) if queues ever hold thousands of callers.
//!
//! Estimated wait (announcements):
//!
//! ```text
//! estimated_wait = AHT × ceil(position / N)
//! ```
//!
//! where AHT is the mean handle time (talk + the agent's wrap-up) of the
//! queue's last [`HANDLE_SAMPLES`] calls, and N the queue's agents who are
//! working (logged in, reachable, not paused: ready, ringing, talking or in
//! wrap-up). With no call handled yet, or N = 0, there is no estimate
//! (`None`): the caller hears the position only.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::Duration;

use super::config::{QueueConfig, WhenNoAgents};
use super::entry::QueueKey;
use super::strategy::Strategy;
use super::EntryId;

/// Handle times kept for the estimated wait.
pub const HANDLE_SAMPLES: usize = 32;

#[derive(Debug, Clone)]
pub struct Queue {
    name: String,
    skills: BTreeMap<String, u8>,
    strategy: Strategy,
    ring_timeout: Duration,
    max_wait: Option<Duration>,
    max_len: usize,
    when_no_agents: WhenNoAgents,
    announce_every: Option<Duration>,
    /// Agent indices able to take this queue's calls, in agent-id order.
    members: Vec<usize>,
    present: BTreeMap<QueueKey, EntryId>,
    waiting: BTreeMap<QueueKey, EntryId>,
    /// Live callers present (for `max_len`).
    live: usize,
    /// Callback requests present.
    callbacks: usize,
    /// Members logged in and reachable.
    staffed: usize,
    /// Round-robin: position in `members` of the last agent offered a call.
    pub(super) rr_cursor: Option<usize>,
    handle_times: VecDeque<Duration>,
    /// Taken out of the configuration by a reload: takes no new callers;
    /// those in it are still served by the members it had.
    closed: bool,
}

impl Queue {
    pub(super) fn new(cfg: &QueueConfig, members: Vec<usize>) -> Queue {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        Queue {
            name: cfg.name.clone(),
            skills: cfg.skills.clone(),
            strategy: cfg.strategy,
            ring_timeout: Duration::from_secs(cfg.ring_timeout_secs),
            max_wait: secs(cfg.max_wait_secs),
            max_len: cfg.max_len,
            when_no_agents: cfg.when_no_agents,
            announce_every: secs(cfg.announce_every_secs),
            members,
            present: BTreeMap::new(),
            waiting: BTreeMap::new(),
            live: 0,
            callbacks: 0,
            staffed: 0,
            rr_cursor: None,
            handle_times: VecDeque::with_capacity(HANDLE_SAMPLES),
            closed: false,
        }
    }

    /// Takes a reloaded config (same name): the settings change; the
    /// entries, their order and the handle-time history stay. Callers
    /// already waiting keep the max-wait and announcement timers they
    /// have; the new values apply to later callers and the next rounds.
    pub(super) fn reconfigure(&mut self, cfg: &QueueConfig) {
        debug_assert_eq!(cfg.name, self.name);
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        self.closed = false;
        self.skills = cfg.skills.clone();
        if self.strategy != cfg.strategy {
            self.rr_cursor = None;
        }
        self.strategy = cfg.strategy;
        self.ring_timeout = Duration::from_secs(cfg.ring_timeout_secs);
        self.max_wait = secs(cfg.max_wait_secs);
        self.max_len = cfg.max_len;
        self.when_no_agents = cfg.when_no_agents;
        self.announce_every = secs(cfg.announce_every_secs);
    }

    /// New members (agent indices in agent-id order), `staffed` of them
    /// logged in and reachable.
    pub(super) fn set_members(&mut self, members: Vec<usize>, staffed: usize) {
        if members != self.members {
            self.rr_cursor = None;
        }
        self.members = members;
        self.staffed = staffed;
    }

    /// Taken out of the configuration by a reload.
    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    /// Taken out of the configuration by a reload: no new callers; shown
    /// while callers or callback requests are still in it.
    pub fn closed(&self) -> bool {
        self.closed
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn skills(&self) -> &BTreeMap<String, u8> {
        &self.skills
    }
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
    pub fn ring_timeout(&self) -> Duration {
        self.ring_timeout
    }
    pub fn max_wait(&self) -> Option<Duration> {
        self.max_wait
    }
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    pub fn when_no_agents(&self) -> WhenNoAgents {
        self.when_no_agents
    }
    pub fn announce_every(&self) -> Option<Duration> {
        self.announce_every
    }
    pub fn members(&self) -> &[usize] {
        &self.members
    }
    /// Live callers holding a place (waiting or being offered).
    pub fn live(&self) -> usize {
        self.live
    }
    pub fn callbacks(&self) -> usize {
        self.callbacks
    }
    pub fn staffed(&self) -> usize {
        self.staffed
    }
    pub fn is_full(&self) -> bool {
        self.live >= self.max_len
    }

    /// Entries holding a place, in order.
    pub fn entries(&self) -> impl Iterator<Item = EntryId> + '_ {
        self.present.values().copied()
    }

    /// The next entry to offer.
    pub fn head(&self) -> Option<(QueueKey, EntryId)> {
        self.waiting.first_key_value().map(|(k, e)| (*k, *e))
    }

    /// 1-based position of the entry with `key`: O(min(ahead, behind)),
    /// counting from both ends at once (a caller who just joined at the
    /// back costs O(1)).
    pub fn position(&self, key: &QueueKey) -> u32 {
        let len = self.present.len() - usize::from(self.present.contains_key(key));
        let mut ahead = self.present.range(..*key);
        let mut behind = self
            .present
            .range((Bound::Excluded(*key), Bound::Unbounded));
        let mut n = 0;
        let before = loop {
            if ahead.next().is_none() {
                break n;
            }
            if behind.next().is_none() {
                break len - n;
            }
            n += 1;
        };
        u32::try_from(before).unwrap_or(u32::MAX - 1) + 1
    }

    pub fn average_handle_time(&self) -> Option<Duration> {
        let n = self.handle_times.len() as u32;
        (n > 0).then(|| self.handle_times.iter().sum::<Duration>() / n)
    }

    /// See the module header for the formula.
    pub fn estimated_wait(&self, position: u32, working: usize) -> Option<Duration> {
        let aht = self.average_handle_time()?;
        let working = u32::try_from(working).ok().filter(|&n| n > 0)?;
        Some(aht * position.div_ceil(working))
    }

    // ----- changes (the distributor's) -----------------------------------

    pub(super) fn insert(&mut self, key: QueueKey, id: EntryId, live: bool) {
        if self.present.insert(key, id).is_none() {
            if live {
                self.live += 1;
            } else {
                self.callbacks += 1;
            }
        }
        self.waiting.insert(key, id);
    }

    pub(super) fn remove(&mut self, key: &QueueKey, live: bool) {
        if self.present.remove(key).is_some() {
            if live {
                self.live -= 1;
            } else {
                self.callbacks -= 1;
            }
        }
        self.waiting.remove(key);
    }

    /// A live entry became a callback request, in place.
    pub(super) fn make_callback(&mut self, key: &QueueKey, id: EntryId) {
        if self.present.contains_key(key) {
            self.live -= 1;
            self.callbacks += 1;
        }
        self.waiting.insert(*key, id);
    }

    /// The entry rings agents: not offered again until the round is over.
    pub(super) fn offering(&mut self, key: &QueueKey) {
        self.waiting.remove(key);
    }

    /// The entry's offer round is over: it may be offered again.
    pub(super) fn waiting_again(&mut self, key: QueueKey, id: EntryId) {
        if self.present.contains_key(&key) {
            self.waiting.insert(key, id);
        }
    }

    pub(super) fn staffed_changed(&mut self, staffed: bool) {
        if staffed {
            self.staffed += 1;
        } else {
            self.staffed = self.staffed.saturating_sub(1);
        }
    }

    pub(super) fn record_handle_time(&mut self, d: Duration) {
        if self.handle_times.len() == HANDLE_SAMPLES {
            self.handle_times.pop_front();
        }
        self.handle_times.push_back(d);
    }

    #[cfg(test)]
    pub(super) fn is_waiting(&self, key: &QueueKey) -> bool {
        self.waiting.contains_key(key)
    }

    #[cfg(test)]
    pub(super) fn check(&self) -> Result<(), String> {
        for (k, id) in &self.waiting {
            if self.present.get(k) != Some(id) {
                return Err(format!("queue {}: waiting {id} not present", self.name));
            }
        }
        if self.live + self.callbacks != self.present.len() {
            return Err(format!("queue {}: counts off", self.name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use tokio::time::Instant;

    fn key(t0: Instant, prio: i32, secs: u64, seq: u64) -> QueueKey {
        QueueKey {
            priority: Reverse(prio),
            enqueued: t0 + Duration::from_secs(secs),
            seq,
        }
    }

    #[test]
    fn order_position_and_estimate() {
        let t0 = Instant::now();
        let mut q = Queue::new(&QueueConfig::new("q"), vec![]);
        q.insert(key(t0, 0, 0, 1), EntryId(1), true);
        q.insert(key(t0, 0, 5, 2), EntryId(2), true);
        q.insert(key(t0, 9, 9, 3), EntryId(3), true);
        assert_eq!(q.head().unwrap().1, EntryId(3));
        assert_eq!(q.position(&key(t0, 0, 5, 2)), 3);
        assert_eq!(q.position(&key(t0, 0, 0, 1)), 2);
        assert_eq!(q.position(&key(t0, 9, 9, 3)), 1);
        // Not present: where it would go.
        assert_eq!(q.position(&key(t0, 0, 1, 9)), 3);
        assert_eq!(q.position(&key(t0, 0, 9, 9)), 4);
        q.offering(&key(t0, 9, 9, 3));
        assert_eq!(q.head().unwrap().1, EntryId(1));
        assert_eq!(
            q.position(&key(t0, 0, 0, 1)),
            2,
            "a caller being offered is still ahead"
        );
        assert_eq!(q.estimated_wait(3, 2), None, "no history yet");
        q.record_handle_time(Duration::from_secs(100));
        q.record_handle_time(Duration::from_secs(200));
        // AHT 150 s, position 3, 2 agents: ceil(3/2) = 2 rounds.
        assert_eq!(q.estimated_wait(3, 2), Some(Duration::from_secs(300)));
        assert_eq!(q.estimated_wait(3, 0), None);
        for _ in 0..100 {
            q.record_handle_time(Duration::from_secs(60));
        }
        assert_eq!(q.average_handle_time(), Some(Duration::from_secs(60)));
        q.remove(&key(t0, 9, 9, 3), true);
        assert_eq!(q.live(), 2);
        q.check().unwrap();
    }
}
