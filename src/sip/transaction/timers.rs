//! Transaction timer values (RFC 3261 §17 and Table 4, RFC 6026 §8) and the
//! doubling retransmission schedule shared by timers A, E, G and the UAS 2xx
//! retransmission of §13.3.1.4.
//!
//! Nothing here reads a clock: every function takes the `now` it is given.

use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// Base timer values. Every per-timer value of RFC 3261 Table 4 is derived
/// from these; nothing is global, each `TransactionLayer` owns one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// T1, RTT estimate (§17.1.1.1, default 500 ms).
    pub t1: Duration,
    /// T2, the maximum retransmit interval for non-INVITE requests and INVITE
    /// responses (default 4 s).
    pub t2: Duration,
    /// T4, the maximum time a message stays in the network (default 5 s).
    pub t4: Duration,
    /// Timer D for unreliable transports: "at least 32 seconds" (§17.1.1.2).
    pub d: Duration,
    /// Guard for an INVITE transaction in Proceeding, modelled on the proxy's
    /// Timer C (§16.6 item 11: "greater than 3 minutes", reset by every
    /// provisional response). Without it a TU that never answers, or a peer
    /// that rings forever, would hold the transaction for ever. The UAS core
    /// refreshes it by sending a provisional response every minute
    /// (§13.3.1.1).
    pub c: Duration,
    /// How long a server INVITE transaction waits for the TU before asking
    /// for a 100 Trying (§17.2.1: "if the TU will not generate a provisional
    /// or final response within 200 ms"). Zero (the default) asks at once.
    pub trying_delay: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
            c: Duration::from_secs(181),
            trying_delay: Duration::ZERO,
        }
    }
}

/// A timer configuration that would break the state machines.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("T1 must be between 1 ms and 60 s, got {0:?}")]
    T1OutOfRange(Duration),
    #[error("T2 must be at least T1 and at most 10 minutes, got {0:?}")]
    T2OutOfRange(Duration),
    #[error("{name} must be at most 1 hour, got {value:?}")]
    TooLong { name: &'static str, value: Duration },
    #[error("Timer C must be at least 1 s, got {0:?}")]
    CTooShort(Duration),
    #[error("the transaction limit must be at least 1")]
    ZeroLimit,
}

const HOUR: Duration = Duration::from_secs(3600);

impl TimerConfig {
    /// Checks the bounds that keep the machines finite: a zero T1 would
    /// retransmit in a loop, an enormous one would overflow `Instant`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.t1 < Duration::from_millis(1) || self.t1 > Duration::from_secs(60) {
            return Err(ConfigError::T1OutOfRange(self.t1));
        }
        if self.t2 < self.t1 || self.t2 > Duration::from_secs(600) {
            return Err(ConfigError::T2OutOfRange(self.t2));
        }
        for (name, value) in [
            ("T4", self.t4),
            ("Timer D", self.d),
            ("Timer C", self.c),
            ("the 100 Trying delay", self.trying_delay),
        ] {
            if value > HOUR {
                return Err(ConfigError::TooLong { name, value });
            }
        }
        if self.c < Duration::from_secs(1) {
            return Err(ConfigError::CTooShort(self.c));
        }
        Ok(())
    }

    fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer A, INVITE request retransmit: initially T1, unreliable only.
    pub fn timer_a(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }
    /// Timer B, INVITE transaction timeout: 64*T1.
    pub fn timer_b(&self) -> Duration {
        self.t1_x64()
    }
    /// Timer D, wait time for response retransmits: >= 32 s UDP, 0 reliable.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.d
        }
    }
    /// Timer E, non-INVITE request retransmit: initially T1, unreliable only.
    pub fn timer_e(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }
    /// Timer F, non-INVITE transaction timeout: 64*T1.
    pub fn timer_f(&self) -> Duration {
        self.t1_x64()
    }
    /// Timer G, INVITE response retransmit: initially T1, unreliable only.
    pub fn timer_g(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }
    /// Timer H, wait time for ACK receipt: 64*T1.
    pub fn timer_h(&self) -> Duration {
        self.t1_x64()
    }
    /// Timer I, wait time for ACK retransmits: T4 UDP, 0 reliable.
    pub fn timer_i(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }
    /// Timer J, wait time for non-INVITE request retransmits: 64*T1 UDP, 0
    /// reliable.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1_x64()
        }
    }
    /// Timer K, wait time for response retransmits: T4 UDP, 0 reliable.
    pub fn timer_k(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }
    /// Timer L (RFC 6026 §8.7), wait time for accepted INVITE request
    /// retransmits: 64*T1.
    pub fn timer_l(&self) -> Duration {
        self.t1_x64()
    }
    /// Timer M (RFC 6026 §8.4), wait time for retransmitted 2xx: 64*T1.
    pub fn timer_m(&self) -> Duration {
        self.t1_x64()
    }
    /// How long the UAS retransmits a 2xx before giving up on the ACK
    /// (§13.3.1.4: "for 64*T1 seconds").
    pub fn ack_timeout(&self) -> Duration {
        self.t1_x64()
    }
    /// The 2xx retransmit interval of §13.3.1.4: T1 doubling up to T2,
    /// unreliable transports only.
    pub fn timer_2xx(&self, reliable: bool) -> Option<Duration> {
        (!reliable).then_some(self.t1)
    }
}

/// `now + d` without the panic of `Instant + Duration` on overflow. The
/// validated configuration keeps every `d` under an hour, so the fallbacks
/// are never reached in practice.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(HOUR))
        .unwrap_or(now)
}

/// The earliest of several optional deadlines.
pub(crate) fn earliest<const N: usize>(deadlines: [Option<Instant>; N]) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// A doubling retransmission schedule: fires at `at`, then every `interval`,
/// the interval doubling after each firing up to `cap` (no cap for Timer A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retransmit {
    pub(crate) at: Instant,
    pub(crate) interval: Duration,
    cap: Option<Duration>,
}

impl Retransmit {
    /// Starts the schedule: first firing `initial` after `now`.
    pub(crate) fn start(now: Instant, initial: Duration, cap: Option<Duration>) -> Self {
        Retransmit {
            at: after(now, initial),
            interval: initial,
            cap,
        }
    }

    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.at <= now
    }

    /// Called when the timer fired: the next firing is one interval after
    /// the nominal time, the interval doubling up to the cap. If the shell was
    /// so late that the next nominal time has passed as well, the schedule
    /// restarts from `now` instead of sending a burst.
    pub(crate) fn fired(&mut self, now: Instant) {
        let doubled = self.interval.saturating_mul(2);
        self.interval = match self.cap {
            Some(cap) => doubled.min(cap),
            None => doubled,
        };
        // §17.1.1.2: after firing at T1 the timer is "reset with a value of
        // 2*T1", then 4*T1, and so on.
        let next = after(self.at, self.interval);
        self.at = if next <= now {
            after(now, self.interval)
        } else {
            next
        };
    }

    /// Sets the interval used after the next firing (Timer E in Proceeding
    /// is "reset with a value of T2", §17.1.2.2).
    pub(crate) fn fix_interval(&mut self, interval: Duration) {
        self.cap = Some(interval);
        self.interval = interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_are_rfc_3261_table_4() {
        let c = TimerConfig::default();
        assert_eq!(c.t1, ms(500));
        assert_eq!(c.t2, ms(4000));
        assert_eq!(c.t4, ms(5000));
        assert_eq!(c.timer_b(), Duration::from_secs(32));
        assert_eq!(c.timer_h(), Duration::from_secs(32));
        assert_eq!(c.timer_j(false), Duration::from_secs(32));
        assert_eq!(c.timer_j(true), Duration::ZERO);
        assert_eq!(c.timer_i(false), ms(5000));
        assert_eq!(c.timer_i(true), Duration::ZERO);
        assert_eq!(c.timer_k(true), Duration::ZERO);
        assert_eq!(c.timer_d(false), Duration::from_secs(32));
        assert_eq!(c.timer_d(true), Duration::ZERO);
        assert_eq!(c.timer_a(true), None);
        assert_eq!(c.timer_e(true), None);
        assert_eq!(c.timer_g(true), None);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validation_rejects_loops_and_overflows() {
        let zero = TimerConfig {
            t1: Duration::ZERO,
            ..TimerConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::T1OutOfRange(Duration::ZERO))
        );
        let t2 = TimerConfig {
            t2: ms(100),
            ..TimerConfig::default()
        };
        assert!(matches!(t2.validate(), Err(ConfigError::T2OutOfRange(_))));
        let huge = TimerConfig {
            t4: Duration::MAX,
            ..TimerConfig::default()
        };
        assert!(matches!(huge.validate(), Err(ConfigError::TooLong { .. })));
    }

    #[test]
    fn capped_schedule_doubles_to_t2() {
        let t0 = Instant::now();
        let mut r = Retransmit::start(t0, ms(500), Some(ms(4000)));
        let mut times = vec![];
        for _ in 0..7 {
            times.push(r.at - t0);
            let at = r.at;
            r.fired(at);
        }
        let expect: Vec<Duration> = [500, 1500, 3500, 7500, 11500, 15500, 19500]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(times, expect);
    }

    #[test]
    fn uncapped_schedule_keeps_doubling() {
        let t0 = Instant::now();
        let mut r = Retransmit::start(t0, ms(500), None);
        let mut times = vec![];
        for _ in 0..6 {
            times.push(r.at - t0);
            let at = r.at;
            r.fired(at);
        }
        let expect: Vec<Duration> = [500, 1500, 3500, 7500, 15500, 31500]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(times, expect);
    }

    #[test]
    fn late_firing_does_not_burst() {
        let t0 = Instant::now();
        let mut r = Retransmit::start(t0, ms(500), Some(ms(4000)));
        r.fired(t0 + ms(10_000));
        assert_eq!(r.at, t0 + ms(11_000));
    }
}
