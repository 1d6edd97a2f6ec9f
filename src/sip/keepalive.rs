//! Keep-alive scheduling for registered contacts, without I/O: which
//! binding gets an OPTIONS when (RFC 3261 §11 used as a liveness probe;
//! the endpoint sends it and reports the outcome).
//!
//! Every live binding is probed once per `interval`. Its phase inside the
//! interval comes from a hash of its AOR and contact URI, so a thousand
//! agents who registered in the same second (a shift starting, a restart
//! restoring bindings) get their OPTIONS spread evenly over the interval
//! rather than in the same millisecond; the phase is stable, so a binding
//! keeps its slot from round to round. A probe still in flight when its
//! next slot comes (the non-INVITE transaction lasts up to 64*T1 = 32 s,
//! longer than the default 30 s interval) skips that slot.
//!
//! The outcome (`Reachability`) is the endpoint's to apply to the
//! registrar: no answer (transaction timeout or transport error) makes the
//! contact unreachable (it is not rung), any response makes it reachable.
//!
//! Time is `tokio::time::Instant`, passed in; nothing here sleeps.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;
use tokio::time::Instant;

/// One binding, as the registrar names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId {
    pub aor: String,
    pub contact_uri: String,
}

#[derive(Debug, Clone)]
struct Slot {
    due: Instant,
    in_flight: bool,
}

/// The schedule of keep-alive probes.
#[derive(Debug)]
pub struct KeepAlive {
    interval: Duration,
    slots: HashMap<BindingId, Slot>,
    /// (due, id): the next probes in time order.
    queue: BTreeSet<(Instant, BindingId)>,
}

impl KeepAlive {
    /// `interval` zero switches keep-alives off.
    pub fn new(interval: Duration) -> KeepAlive {
        KeepAlive {
            interval,
            slots: HashMap::new(),
            queue: BTreeSet::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// Bindings tracked.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The binding's offset inside the interval: stable, and spread.
    fn phase(&self, id: &BindingId) -> Duration {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        let ms = self.interval.as_millis().max(1) as u64;
        Duration::from_millis(h.finish() % ms)
    }

    /// Aligns the tracked set with the registrar's live bindings: new ones
    /// get their first probe at their phase from `now`, gone ones are
    /// forgotten (with any probe in flight: its outcome is then ignored).
    pub fn sync<I>(&mut self, now: Instant, live: I)
    where
        I: IntoIterator<Item = BindingId>,
    {
        if !self.enabled() {
            return;
        }
        let live: HashSet<BindingId> = live.into_iter().collect();
        let gone: Vec<BindingId> = self
            .slots
            .keys()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(slot) = self.slots.remove(&id) {
                self.queue.remove(&(slot.due, id));
            }
        }
        for id in live {
            if self.slots.contains_key(&id) {
                continue;
            }
            // At least one whole phase after registration: the REGISTER
            // just proved the contact reachable.
            let due = now + self.phase(&id).max(Duration::from_millis(1));
            self.queue.insert((due, id.clone()));
            self.slots.insert(
                id,
                Slot {
                    due,
                    in_flight: false,
                },
            );
        }
    }

    /// When the next probe is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// The probes due at `now`; each is rescheduled one interval on (in its
    /// phase) and marked in flight. A binding still in flight skips a slot.
    pub fn due(&mut self, now: Instant) -> Vec<BindingId> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.queue.first() {
            if *at > now {
                break;
            }
            let Some((at, id)) = self.queue.pop_first() else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&id) else {
                continue;
            };
            // Next slot: the first one after `now` in this binding's phase
            // (a stalled loop does not cause a burst of catch-up probes).
            let mut next = at + self.interval;
            while next <= now {
                next += self.interval;
            }
            slot.due = next;
            if !slot.in_flight {
                slot.in_flight = true;
                out.push(id.clone());
            }
            self.queue.insert((next, id));
        }
        out
    }

    /// The probe of `id` ended (any response, or timeout/transport error).
    /// False if the binding is no longer tracked.
    pub fn finished(&mut self, id: &BindingId) -> bool {
        match self.slots.get_mut(id) {
            Some(slot) => {
                slot.in_flight = false;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> BindingId {
        BindingId {
            aor: format!("{}", 1000 + n),
            contact_uri: format!("sip:{}@10.0.{}.{}:5060", 1000 + n, n / 250, n % 250),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_bindings_are_spread_over_the_interval() {
        let interval = Duration::from_secs(30);
        let mut ka = KeepAlive::new(interval);
        let t0 = Instant::now();
        ka.sync(t0, (0..1000).map(id));
        assert_eq!(ka.len(), 1000);
        // Walk the first interval in 1 s steps: no second gets much more
        // than its share (1000 / 30 ≈ 33), and every binding is probed once.
        let mut seen = HashSet::new();
        let mut worst = 0;
        for s in 1..=30 {
            let batch = ka.due(t0 + Duration::from_secs(s));
            worst = worst.max(batch.len());
            for b in batch {
                assert!(seen.insert(b.clone()), "probed twice in one round");
                ka.finished(&b);
            }
        }
        assert_eq!(seen.len(), 1000);
        assert!(worst <= 70, "{worst} probes in one second");
        // Each one again in the next round, in the same phase.
        let second: usize = (31..=60)
            .map(|s| {
                let b = ka.due(t0 + Duration::from_secs(s));
                for x in &b {
                    ka.finished(x);
                }
                b.len()
            })
            .sum();
        assert_eq!(second, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_in_flight_skips_its_next_slot() {
        let mut ka = KeepAlive::new(Duration::from_secs(30));
        let t0 = Instant::now();
        ka.sync(t0, [id(1)]);
        let first = ka.next_deadline().unwrap();
        assert!(first > t0 && first <= t0 + Duration::from_secs(30));
        assert_eq!(ka.due(first), vec![id(1)]);
        // Not finished by the next slot: skipped.
        let second = ka.next_deadline().unwrap();
        assert_eq!(second, first + Duration::from_secs(30));
        assert!(ka.due(second).is_empty());
        assert!(ka.finished(&id(1)));
        assert_eq!(ka.due(second + Duration::from_secs(30)), vec![id(1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn gone_bindings_are_forgotten_and_off_means_nothing() {
        let mut ka = KeepAlive::new(Duration::from_secs(30));
        let t0 = Instant::now();
        ka.sync(t0, [id(1), id(2)]);
        ka.sync(t0, [id(2)]);
        assert_eq!(ka.len(), 1);
        assert!(!ka.finished(&id(1)));
        let all = ka.due(t0 + Duration::from_secs(31));
        assert_eq!(all, vec![id(2)]);

        let mut off = KeepAlive::new(Duration::ZERO);
        off.sync(t0, [id(1)]);
        assert!(off.is_empty());
        assert_eq!(off.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_wake_up_does_not_burst() {
        let mut ka = KeepAlive::new(Duration::from_secs(30));
        let t0 = Instant::now();
        ka.sync(t0, [id(7)]);
        // Woken five intervals late: one probe, next slot after now.
        let late = t0 + Duration::from_secs(150);
        assert_eq!(ka.due(late), vec![id(7)]);
        assert!(ka.next_deadline().unwrap() > late);
        ka.finished(&id(7));
        assert!(ka.due(late).is_empty());
    }
}
