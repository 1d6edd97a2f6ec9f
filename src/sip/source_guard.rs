//! Defence against SIP scanners and password guessing (sans-IO; time is
//! passed in): every message's source goes through [`SourceGuard::check`]
//! before it is parsed, and refused requests (wrong password, an INVITE
//! from outside every trunk, an unknown user) through
//! [`SourceGuard::failure`].
//!
//! - **Rate**: each source (address *and* port: one scanner socket, one
//!   softphone) has a token bucket of `burst` messages refilled at
//!   `rate_per_sec`; what goes over is dropped unanswered. A source that
//!   keeps going over (more than `burst` messages dropped within
//!   [`FLOOD_WINDOW`]) is banned: a steady flood also gets a token now and
//!   then as the bucket refills, so drops are counted over a window, not
//!   in a row.
//! - **Failures**: `max_failures` refused requests from one address within
//!   [`FAILURE_WINDOW`] ban that address (every port), as a sipvicious-style
//!   sweep or a password guesser produces.
//! - **Bans** last `ban_secs`; a banned source's messages are dropped
//!   unanswered (a scanner learns nothing), counted, and the ban is listed
//!   ([`SourceGuard::bans`]) until it expires.
//!
//! Trusted addresses (the configured trunks) are never limited or banned.
//! At most `max_sources` sources are tracked; past that the idlest go, and
//! a source never seen again costs nothing after [`IDLE`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

/// Refused requests are counted over this window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Over-rate drops are counted over this window.
pub const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// A source idle this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    pub rate_per_sec: u32,
    pub burst: u32,
    pub max_failures: u32,
    pub ban: Duration,
    pub max_sources: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            rate_per_sec: 100,
            burst: 200,
            max_failures: 10,
            ban: Duration::from_secs(600),
            max_sources: 100_000,
        }
    }
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the rate: dropped, not answered.
    OverRate,
    /// Banned: dropped, not answered.
    Banned,
}

/// Why a source was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// It kept sending over the rate (a flood).
    Flood,
    /// Too many refused requests (a sweep, password guessing).
    Failures,
}

impl BanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::Flood => "flood",
            BanReason::Failures => "failures",
        }
    }
}

/// A ban in force: a source (one port) or a whole address (`port` None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub ip: IpAddr,
    pub port: Option<u16>,
    pub reason: BanReason,
    pub since: Instant,
    pub until: Instant,
    /// Messages dropped under this ban so far.
    pub dropped: u64,
}

/// A ban just made (to log).
pub type BanEvent = Ban;

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Messages dropped over the rate since `over_since`.
    over: u32,
    /// Start of the window `over` counts in ([`FLOOD_WINDOW`]).
    over_since: Instant,
}

#[derive(Debug, Clone, Default)]
struct Failures {
    times: Vec<Instant>,
}

pub struct SourceGuard {
    cfg: GuardConfig,
    trusted: Box<dyn Fn(IpAddr) -> bool + Send + Sync>,
    buckets: HashMap<SocketAddr, Bucket>,
    failures: HashMap<IpAddr, Failures>,
    /// Bans by (address, port); port None bans the address.
    bans: HashMap<(IpAddr, Option<u16>), Ban>,
    checks: u64,
}

impl std::fmt::Debug for SourceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceGuard")
            .field("cfg", &self.cfg)
            .field("tracked", &self.buckets.len())
            .field("bans", &self.bans.len())
            .finish_non_exhaustive()
    }
}

impl SourceGuard {
    pub fn new(cfg: GuardConfig, trusted: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> Self {
        SourceGuard {
            cfg,
            trusted: Box::new(trusted),
            buckets: HashMap::new(),
            failures: HashMap::new(),
            bans: HashMap::new(),
            checks: 0,
        }
    }

    fn banned(&mut self, now: Instant, src: SocketAddr) -> bool {
        for key in [(src.ip(), Some(src.port())), (src.ip(), None)] {
            if let Some(b) = self.bans.get_mut(&key) {
                if now < b.until {
                    b.dropped += 1;
                    return true;
                }
                self.bans.remove(&key);
            }
        }
        false
    }

    /// A message from `src` at `now`; and the ban it caused, if any.
    pub fn check(&mut self, now: Instant, src: SocketAddr) -> (Verdict, Option<BanEvent>) {
        if (self.trusted)(src.ip()) {
            return (Verdict::Allow, None);
        }
        self.checks += 1;
        if self.checks.is_multiple_of(4096) {
            self.sweep(now);
        }
        if self.banned(now, src) {
            return (Verdict::Banned, None);
        }
        if self.buckets.len() >= self.cfg.max_sources && !self.buckets.contains_key(&src) {
            self.sweep(now);
            if self.buckets.len() >= self.cfg.max_sources {
                // Still full of live sources: the idlest goes.
                if let Some(idlest) = self
                    .buckets
                    .iter()
                    .min_by_key(|(_, b)| b.at)
                    .map(|(k, _)| *k)
                {
                    self.buckets.remove(&idlest);
                }
            }
        }
        let (rate, burst) = (f64::from(self.cfg.rate_per_sec), f64::from(self.cfg.burst));
        let b = self.buckets.entry(src).or_insert(Bucket {
            tokens: burst,
            at: now,
            over: 0,
            over_since: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if now.saturating_duration_since(b.over_since) >= FLOOD_WINDOW {
            b.over = 0;
            b.over_since = now;
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return (Verdict::Allow, None);
        }
        b.over += 1;
        if b.over > self.cfg.burst {
            self.buckets.remove(&src);
            let ban = self.ban(now, src.ip(), Some(src.port()), BanReason::Flood);
            return (Verdict::Banned, Some(ban));
        }
        (Verdict::OverRate, None)
    }

    /// A request from `src` was refused (authentication, trunk ACL, unknown
    /// user); the ban it caused, if any.
    pub fn failure(&mut self, now: Instant, src: SocketAddr) -> Option<BanEvent> {
        if (self.trusted)(src.ip()) || self.cfg.max_failures == 0 {
            return None;
        }
        let f = self.failures.entry(src.ip()).or_default();
        f.times
            .retain(|&t| now.saturating_duration_since(t) < FAILURE_WINDOW);
        f.times.push(now);
        if f.times.len() as u32 >= self.cfg.max_failures {
            self.failures.remove(&src.ip());
            return Some(self.ban(now, src.ip(), None, BanReason::Failures));
        }
        None
    }

    fn ban(&mut self, now: Instant, ip: IpAddr, port: Option<u16>, reason: BanReason) -> Ban {
        let ban = Ban {
            ip,
            port,
            reason,
            since: now,
            until: now + self.cfg.ban,
            dropped: 0,
        };
        self.bans.insert((ip, port), ban.clone());
        ban
    }

    /// The bans in force at `now`, oldest first.
    pub fn bans(&self, now: Instant) -> Vec<Ban> {
        let mut v: Vec<Ban> = self
            .bans
            .values()
            .filter(|b| now < b.until)
            .cloned()
            .collect();
        v.sort_by_key(|b| (b.since, b.ip, b.port));
        v
    }

    /// Sources tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets idle sources, old failures and expired bans.
    fn sweep(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.at) < IDLE);
        self.failures.retain(|_, f| {
            f.times
                .last()
                .is_some_and(|&t| now.saturating_duration_since(t) < FAILURE_WINDOW)
        });
        self.bans.retain(|_, b| now < b.until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn guard() -> SourceGuard {
        SourceGuard::new(
            GuardConfig {
                rate_per_sec: 10,
                burst: 20,
                max_failures: 3,
                ban: Duration::from_secs(60),
                max_sources: 4,
            },
            |ip| ip == IpAddr::from([10, 0, 0, 1]),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_limited_then_banned_and_other_sources_go_on() {
        let mut g = guard();
        let t0 = Instant::now();
        // The burst passes, then the rate limits, then the flood is banned.
        let verdicts: Vec<Verdict> = (0..100).map(|_| g.check(t0, src(5000)).0).collect();
        assert!(verdicts[..20].iter().all(|v| *v == Verdict::Allow));
        assert!(
            verdicts[20..40].iter().all(|v| *v == Verdict::OverRate),
            "{verdicts:?}"
        );
        assert!(verdicts[40..].iter().all(|v| *v == Verdict::Banned));
        let bans = g.bans(t0);
        assert_eq!(bans.len(), 1);
        assert_eq!(
            (bans[0].port, bans[0].reason),
            (Some(5000), BanReason::Flood)
        );
        assert_eq!(bans[0].dropped, 59);
        // Another source on the same address (a softphone) is not touched.
        assert_eq!(g.check(t0, src(5001)).0, Verdict::Allow);
        // A source under the rate is never limited.
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(100 * i);
            assert_eq!(g.check(at, src(6000)).0, Verdict::Allow, "message {i}");
        }
        // The ban ends.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(g.check(later, src(5000)).0, Verdict::Allow);
        assert!(g.bans(later).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_flood_is_banned_though_the_bucket_lets_one_through_now_and_then() {
        let mut g = guard();
        let t0 = Instant::now();
        // 100 messages/s, evenly spaced, against 10/s: a token comes back
        // every 10th message, so drops are never more than 9 in a row.
        let mut banned_at = None;
        let mut passed = 0;
        for i in 0..2_000u64 {
            let at = t0 + Duration::from_millis(10 * i);
            match g.check(at, src(7000)) {
                (Verdict::Allow, _) => passed += 1,
                (_, Some(ban)) => {
                    assert_eq!(ban.reason, BanReason::Flood);
                    banned_at = Some(i);
                    break;
                }
                _ => {}
            }
        }
        // The burst (20, and 2 refilled meanwhile), then 1 in 10, until
        // more than 20 were dropped within the window.
        let i = banned_at.expect("a steady flood is banned");
        assert!(i < 60, "banned after {i} messages");
        assert!(passed <= 26, "{passed} passed");
        // Bursts over the rate now and then are limited, not banned: 25
        // messages at once every 3 s drop 5 a time, 20 within a window.
        let mut g = guard();
        let mut dropped = 0;
        for round in 0..30u64 {
            let at = t0 + Duration::from_secs(3 * round);
            for _ in 0..25 {
                match g.check(at, src(7001)).0 {
                    Verdict::Banned => panic!("banned in round {round}"),
                    Verdict::OverRate => dropped += 1,
                    Verdict::Allow => {}
                }
            }
        }
        assert_eq!(dropped, 30 * 5);
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_ban_the_address_on_every_port() {
        let mut g = guard();
        let t0 = Instant::now();
        assert_eq!(g.failure(t0, src(7000)), None);
        // Failures far apart are forgotten.
        let t1 = t0 + FAILURE_WINDOW + Duration::from_secs(1);
        assert_eq!(g.failure(t1, src(7001)), None);
        assert_eq!(g.failure(t1, src(7002)), None);
        let ban = g
            .failure(t1, src(7003))
            .expect("banned at the third failure in a minute");
        assert_eq!((ban.port, ban.reason), (None, BanReason::Failures));
        assert_eq!(g.check(t1, src(9999)).0, Verdict::Banned, "every port");
        // Trusted addresses are never limited nor banned.
        let trunk = SocketAddr::from(([10, 0, 0, 1], 5060));
        for _ in 0..10 {
            assert_eq!(g.failure(t1, trunk), None);
        }
        for _ in 0..1000 {
            assert_eq!(g.check(t1, trunk).0, Verdict::Allow);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sources_tracked_are_bounded() {
        let mut g = guard();
        let t0 = Instant::now();
        for p in 0..50u16 {
            g.check(t0 + Duration::from_millis(u64::from(p)), src(1000 + p));
        }
        assert_eq!(g.tracked(), 4);
        // Idle ones are swept.
        g.check(t0 + IDLE + Duration::from_secs(60), src(1));
        assert_eq!(g.tracked(), 1);
    }
}
