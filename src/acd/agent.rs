//! One agent seat's state machine (坐席状态).
//!
//! ```text
//!              login                offer              answered
//! LoggedOut ─────────▶ Ready ───────────────▶ Ringing ─────────▶ Talking
//!     ▲                 │ ▲ ▲  missed/cancelled  │                  │ call ended
//!     │ logout          │ │ └────────────────────┘                  ▼
//!     └──────────────── │ └──────────────── (timer / ready) ──── WrapUp{until}
//!                 pause ▼ ▲ unpause                                  │ pending pause
//!                      Paused{reason} ◀──────────────────────────────┘ or logout
//! ```
//!
//! - **Misses.** A miss (no answer, busy, declined, failed, ring timeout)
//!   returns the agent to Ready and counts; `max_misses` in a row pause it
//!   with reason `no_answer`. Answering, unpausing and logging in reset the
//!   count. A cancelled offer (caller left, answered elsewhere) is no miss.
//! - **Wrap-up** (话后处理) starts when a call ends and lasts the agent's
//!   own wrap-up time, whichever queue the call came from. `ready` ends it
//!   early.
//! - **Pending pause or logout.** Asked for while Talking or in WrapUp, a
//!   pause or a logout is kept and applies when wrap-up ends, instead of
//!   Ready; an agent is never logged out in the middle of a call. Asked for
//!   while Ringing, the distributor first cancels the offer (the agent does
//!   not want calls), then it applies at once. `unpause` or `ready` drops a
//!   pending pause/logout.
//! - **Reachability** (registration) is kept beside the state: an
//!   unreachable agent keeps its state but is not offered calls, and does
//!   not count as staffing a queue. Agents start reachable; the registrar
//!   reports losses.
//!
//! Transitions are `pub(super)`: only the distributor drives them, so that
//! the queue entries stay in step.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::config::AgentConfig;
use super::events::EventKind;
use super::{AgentId, CallId};

/// The pause reason the ACD uses after `max_missed_offers` misses.
pub const NO_ANSWER: &str = "no_answer";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    Ready { since: Instant },
    Ringing { call: CallId, since: Instant },
    Talking { call: CallId, since: Instant },
    WrapUp { until: Instant },
    Paused { reason: String, since: Instant },
}

impl AgentState {
    /// Every [`AgentState::name`], in the order the wallboard's columns
    /// show them.
    pub const NAMES: [&'static str; 6] = [
        "ready",
        "ringing",
        "talking",
        "wrap_up",
        "paused",
        "logged_out",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Ready { .. } => "ready",
            AgentState::Ringing { .. } => "ringing",
            AgentState::Talking { .. } => "talking",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused { .. } => "paused",
        }
    }

    /// The call the agent is ringing for or talking on.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            AgentState::Ringing { call, .. } | AgentState::Talking { call, .. } => Some(call),
            _ => None,
        }
    }
}

/// A valid pause reason code: 1 to 32 characters, letters, digits, `_`
/// or `-` (`lunch`, `meeting`, `training`, `no_answer`).
pub fn valid_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason.len() <= 32
        && reason
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A change kept until the agent's call and wrap-up are over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Pause(String),
    Logout,
}

/// A change for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: EventKind,
    pub reason: Option<String>,
}

impl Change {
    fn new(kind: EventKind, reason: Option<&str>) -> Change {
        Change {
            kind,
            reason: reason.map(str::to_string),
        }
    }
}

/// What a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Applied now.
    Now(Change),
    /// Kept until the call and wrap-up are over (or, for `unpause`/`ready`,
    /// a pending change was dropped).
    AfterCall,
    /// Nothing to do (already so).
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("the agent is already logged in")]
    AlreadyLoggedIn,
    #[error("the agent is not logged in")]
    NotLoggedIn,
    #[error("the agent is not paused")]
    NotPaused,
    #[error("the agent is ringing: cancel the offer first")]
    Ringing,
    #[error("the agent is {0}, not ready and reachable")]
    NotOfferable(&'static str),
    #[error("the agent is {0}, not ringing")]
    NotRinging(&'static str),
    #[error("the agent is {0}, not talking")]
    NotTalking(&'static str),
    #[error("the agent is {0}, not in wrap-up")]
    NotInWrapUp(&'static str),
    #[error("a pause reason is 1 to 32 characters: letters, digits, '_' or '-'")]
    BadReason,
}

/// One agent: its config and its state.
#[derive(Debug, Clone)]
pub struct Agent {
    id: AgentId,
    name: String,
    extension: String,
    skills: BTreeMap<String, u8>,
    wrap_up: Duration,
    state: AgentState,
    reachable: bool,
    misses: u32,
    pending: Option<Pending>,
    /// When the agent's last call ended, or when it logged in if later:
    /// the longest-idle key.
    idle_since: Option<Instant>,
    calls_today: u32,
    /// No longer in the configuration (a reload took it out): not found
    /// by id, in no queue, logged out once its call is done.
    removed: bool,
}

impl Agent {
    pub fn new(cfg: &AgentConfig) -> Agent {
        Agent {
            id: AgentId(cfg.id.clone()),
            name: cfg.name.clone(),
            extension: cfg.extension.clone(),
            skills: cfg.skills.clone(),
            wrap_up: Duration::from_secs(cfg.wrap_up_secs),
            state: AgentState::LoggedOut,
            reachable: true,
            misses: 0,
            pending: None,
            idle_since: None,
            calls_today: 0,
            removed: false,
        }
    }

    /// Takes a reloaded config (same id): name, extension, skills and
    /// wrap-up change; the state, misses and counts stay. A wrap-up under
    /// way keeps the end it had.
    pub(super) fn reconfigure(&mut self, cfg: &AgentConfig) {
        debug_assert_eq!(cfg.id, self.id.0);
        self.removed = false;
        self.name = cfg.name.clone();
        self.extension = cfg.extension.clone();
        self.skills = cfg.skills.clone();
        self.wrap_up = Duration::from_secs(cfg.wrap_up_secs);
    }

    /// Taken out of the configuration by a reload (until one puts it back).
    pub(super) fn remove(&mut self) {
        self.removed = true;
    }

    /// Taken out of the configuration by a reload: kept only while its
    /// last call and wrap-up run.
    pub fn removed(&self) -> bool {
        self.removed
    }

    pub fn id(&self) -> &AgentId {
        &self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn extension(&self) -> &str {
        &self.extension
    }
    pub fn skills(&self) -> &BTreeMap<String, u8> {
        &self.skills
    }
    pub fn wrap_up(&self) -> Duration {
        self.wrap_up
    }
    pub fn state(&self) -> &AgentState {
        &self.state
    }
    pub fn reachable(&self) -> bool {
        self.reachable
    }
    /// Offers missed in a row.
    pub fn misses(&self) -> u32 {
        self.misses
    }
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }
    pub fn idle_since(&self) -> Option<Instant> {
        self.idle_since
    }
    /// Calls answered since the last `reset_daily_counts`.
    pub fn calls_today(&self) -> u32 {
        self.calls_today
    }

    pub fn logged_in(&self) -> bool {
        self.state != AgentState::LoggedOut
    }

    /// May be offered a call now.
    pub fn offerable(&self) -> bool {
        self.reachable && matches!(self.state, AgentState::Ready { .. })
    }

    /// Counts as staffing its queues (join/leave rules): logged in and
    /// reachable, paused or not.
    pub fn staffed(&self) -> bool {
        self.reachable && self.logged_in()
    }

    /// Counts for the estimated wait: staffed and not paused.
    pub fn working(&self) -> bool {
        self.staffed() && !matches!(self.state, AgentState::Paused { .. })
    }

    /// Has every skill in `required` at its level or above.
    pub fn has_skills(&self, required: &BTreeMap<String, u8>) -> bool {
        required
            .iter()
            .all(|(s, min)| self.skills.get(s).is_some_and(|l| l >= min))
    }

    /// The sum of the agent's levels in the `required` skills (skill-level
    /// strategy: higher first).
    pub fn skill_score(&self, required: &BTreeMap<String, u8>) -> u32 {
        required
            .keys()
            .map(|s| u32::from(self.skills.get(s).copied().unwrap_or(0)))
            .sum()
    }

    // ----- transitions (the distributor's) -------------------------------

    pub(super) fn login(&mut self, now: Instant) -> Result<Change, AgentError> {
        if self.logged_in() {
            return Err(AgentError::AlreadyLoggedIn);
        }
        self.state = AgentState::Ready { since: now };
        self.misses = 0;
        self.pending = None;
        self.idle_since = Some(self.idle_since.map_or(now, |i| i.max(now)));
        Ok(Change::new(EventKind::Login, None))
    }

    pub(super) fn logout(&mut self, _now: Instant) -> Result<Step, AgentError> {
        match &self.state {
            AgentState::LoggedOut => Err(AgentError::NotLoggedIn),
            AgentState::Ringing { .. } => Err(AgentError::Ringing),
            AgentState::Talking { .. } | AgentState::WrapUp { .. } => {
                self.pending = Some(Pending::Logout);
                Ok(Step::AfterCall)
            }
            AgentState::Ready { .. } | AgentState::Paused { .. } => {
                self.state = AgentState::LoggedOut;
                self.pending = None;
                Ok(Step::Now(Change::new(EventKind::Logout, None)))
            }
        }
    }

    pub(super) fn pause(&mut self, now: Instant, reason: &str) -> Result<Step, AgentError> {
        if !valid_reason(reason) {
            return Err(AgentError::BadReason);
        }
        match &self.state {
            AgentState::LoggedOut => Err(AgentError::NotLoggedIn),
            AgentState::Ringing { .. } => Err(AgentError::Ringing),
            AgentState::Talking { .. } | AgentState::WrapUp { .. } => {
                self.pending = Some(Pending::Pause(reason.to_string()));
                Ok(Step::AfterCall)
            }
            AgentState::Paused { reason: r, .. } if r == reason => Ok(Step::Unchanged),
            AgentState::Ready { .. } | AgentState::Paused { .. } => {
                self.state = AgentState::Paused {
                    reason: reason.to_string(),
                    since: now,
                };
                Ok(Step::Now(Change::new(EventKind::Pause, Some(reason))))
            }
        }
    }

    pub(super) fn unpause(&mut self, now: Instant) -> Result<Step, AgentError> {
        match &self.state {
            AgentState::Paused { reason, .. } => {
                let change = Change::new(EventKind::Unpause, Some(reason));
                self.state = AgentState::Ready { since: now };
                self.misses = 0;
                Ok(Step::Now(change))
            }
            AgentState::Talking { .. } | AgentState::WrapUp { .. }
                if matches!(self.pending, Some(Pending::Pause(_))) =>
            {
                self.pending = None;
                Ok(Step::AfterCall)
            }
            AgentState::LoggedOut => Err(AgentError::NotLoggedIn),
            _ => Err(AgentError::NotPaused),
        }
    }

    /// "I take calls now": logs in, unpauses, ends wrap-up early, and drops
    /// a pending pause or logout. While ringing or talking it only drops
    /// what is pending.
    pub(super) fn ready(&mut self, now: Instant) -> Result<Step, AgentError> {
        let dropped = self.pending.take().is_some();
        match &self.state {
            AgentState::LoggedOut => self.login(now).map(Step::Now),
            AgentState::Paused { .. } => self.unpause(now),
            AgentState::WrapUp { .. } => self.wrap_up_done(now, true).map(Step::Now),
            AgentState::Ready { .. } => Ok(Step::Unchanged),
            AgentState::Ringing { .. } | AgentState::Talking { .. } => Ok(if dropped {
                Step::AfterCall
            } else {
                Step::Unchanged
            }),
        }
    }

    pub(super) fn offer(&mut self, now: Instant, call: CallId) -> Result<(), AgentError> {
        if !self.offerable() {
            return Err(AgentError::NotOfferable(self.state.name()));
        }
        self.state = AgentState::Ringing { call, since: now };
        Ok(())
    }

    pub(super) fn answered(&mut self, now: Instant) -> Result<(), AgentError> {
        let AgentState::Ringing { call, .. } = &self.state else {
            return Err(AgentError::NotRinging(self.state.name()));
        };
        self.state = AgentState::Talking {
            call: call.clone(),
            since: now,
        };
        self.misses = 0;
        self.calls_today = self.calls_today.saturating_add(1);
        Ok(())
    }

    /// The offer failed through the agent: back to Ready, one more miss;
    /// `Some(change)` when that pauses the agent (`max_misses` in a row).
    pub(super) fn missed(
        &mut self,
        now: Instant,
        max_misses: u32,
    ) -> Result<Option<Change>, AgentError> {
        if !matches!(self.state, AgentState::Ringing { .. }) {
            return Err(AgentError::NotRinging(self.state.name()));
        }
        self.misses = self.misses.saturating_add(1);
        if max_misses > 0 && self.misses >= max_misses {
            self.state = AgentState::Paused {
                reason: NO_ANSWER.to_string(),
                since: now,
            };
            Ok(Some(Change::new(EventKind::Pause, Some(NO_ANSWER))))
        } else {
            self.state = AgentState::Ready { since: now };
            Ok(None)
        }
    }

    /// The offer was withdrawn, not through the agent: back to Ready.
    pub(super) fn cancel_offer(&mut self, now: Instant) -> Result<(), AgentError> {
        if !matches!(self.state, AgentState::Ringing { .. }) {
            return Err(AgentError::NotRinging(self.state.name()));
        }
        self.state = AgentState::Ready { since: now };
        Ok(())
    }

    /// The call ended: wrap-up until the returned instant; the talk time.
    pub(super) fn call_ended(&mut self, now: Instant) -> Result<(Instant, Duration), AgentError> {
        let AgentState::Talking { since, .. } = &self.state else {
            return Err(AgentError::NotTalking(self.state.name()));
        };
        let talk = now.saturating_duration_since(*since);
        let until = now + self.wrap_up;
        self.state = AgentState::WrapUp { until };
        self.idle_since = Some(now);
        Ok((until, talk))
    }

    /// Wrap-up is over (its timer, or `early` through `ready`): a pending
    /// pause or logout applies, else Ready.
    pub(super) fn wrap_up_done(&mut self, now: Instant, early: bool) -> Result<Change, AgentError> {
        if !matches!(self.state, AgentState::WrapUp { .. }) {
            return Err(AgentError::NotInWrapUp(self.state.name()));
        }
        Ok(match self.pending.take() {
            Some(Pending::Pause(reason)) => {
                let change = Change::new(EventKind::Pause, Some(&reason));
                self.state = AgentState::Paused { reason, since: now };
                change
            }
            Some(Pending::Logout) => {
                self.state = AgentState::LoggedOut;
                Change::new(EventKind::Logout, None)
            }
            None => {
                self.state = AgentState::Ready { since: now };
                Change::new(
                    EventKind::WrapUpEnd,
                    Some(if early { "early" } else { "timer" }),
                )
            }
        })
    }

    /// Whether it changed.
    pub(super) fn set_reachable(&mut self, reachable: bool) -> bool {
        let changed = self.reachable != reachable;
        self.reachable = reachable;
        changed
    }

    pub(super) fn reset_daily(&mut self) {
        self.calls_today = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn agent(wrap: u64) -> Agent {
        let mut c = AgentConfig::new("1001", &[]);
        c.wrap_up_secs = wrap;
        Agent::new(&c)
    }

    #[test]
    fn a_call_then_wrap_up_then_ready() {
        let t0 = Instant::now();
        let mut a = agent(30);
        assert!(!a.offerable());
        a.login(t0).unwrap();
        assert!(a.offerable());
        a.offer(t0, "c1".into()).unwrap();
        assert_eq!(
            a.offer(t0, "c2".into()),
            Err(AgentError::NotOfferable("ringing"))
        );
        a.answered(t0 + Duration::from_secs(2)).unwrap();
        let (until, talk) = a.call_ended(t0 + Duration::from_secs(62)).unwrap();
        assert_eq!(talk, Duration::from_secs(60));
        assert_eq!(until, t0 + Duration::from_secs(92));
        assert!(!a.offerable());
        let c = a.wrap_up_done(until, false).unwrap();
        assert_eq!(c.kind, EventKind::WrapUpEnd);
        assert_eq!(a.state(), &AgentState::Ready { since: until });
        assert_eq!(a.calls_today(), 1);
        assert_eq!(a.idle_since(), Some(t0 + Duration::from_secs(62)));
    }

    #[test]
    fn misses_pause_after_n_in_a_row() {
        let t0 = Instant::now();
        let mut a = agent(0);
        a.login(t0).unwrap();
        for i in 0..2 {
            a.offer(t0, "c".into()).unwrap();
            assert_eq!(a.missed(t0, 3).unwrap(), None, "miss {i}");
        }
        // An answer resets the count.
        a.offer(t0, "c".into()).unwrap();
        a.answered(t0).unwrap();
        a.call_ended(t0).unwrap();
        a.wrap_up_done(t0, false).unwrap();
        for _ in 0..2 {
            a.offer(t0, "c".into()).unwrap();
            assert_eq!(a.missed(t0, 3).unwrap(), None);
        }
        // A cancelled offer is no miss.
        a.offer(t0, "c".into()).unwrap();
        a.cancel_offer(t0).unwrap();
        a.offer(t0, "c".into()).unwrap();
        let c = a.missed(t0, 3).unwrap().unwrap();
        assert_eq!(c.reason.as_deref(), Some(NO_ANSWER));
        assert!(matches!(a.state(), AgentState::Paused { reason, .. } if reason == NO_ANSWER));
        a.unpause(t0).unwrap();
        assert_eq!(a.misses(), 0);
    }

    #[test]
    fn pause_and_logout_wait_for_the_call_and_wrap_up() {
        let t0 = Instant::now();
        let mut a = agent(10);
        a.login(t0).unwrap();
        a.offer(t0, "c".into()).unwrap();
        assert_eq!(a.pause(t0, "lunch"), Err(AgentError::Ringing));
        assert_eq!(a.logout(t0), Err(AgentError::Ringing));
        a.answered(t0).unwrap();
        assert_eq!(a.pause(t0, "lunch"), Ok(Step::AfterCall));
        let (until, _) = a.call_ended(t0).unwrap();
        let c = a.wrap_up_done(until, false).unwrap();
        assert_eq!(c, Change::new(EventKind::Pause, Some("lunch")));

        a.unpause(t0).unwrap();
        a.offer(t0, "c".into()).unwrap();
        a.answered(t0).unwrap();
        assert_eq!(a.logout(t0), Ok(Step::AfterCall));
        a.call_ended(t0).unwrap();
        // `ready` during wrap-up drops the pending logout and ends wrap-up.
        assert_eq!(
            a.ready(t0),
            Ok(Step::Now(Change::new(EventKind::WrapUpEnd, Some("early"))))
        );
        assert!(a.offerable());
        assert_eq!(a.pause(t0, "bad reason!"), Err(AgentError::BadReason));
    }

    #[test]
    fn unreachable_is_not_offerable() {
        let t0 = Instant::now();
        let mut a = agent(0);
        a.login(t0).unwrap();
        assert!(a.set_reachable(false));
        assert!(!a.offerable());
        assert!(!a.staffed());
        assert!(a.set_reachable(true));
        assert!(a.offerable());
    }
}
