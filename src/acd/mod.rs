//! The automatic call distributor (ACD): agents, queues, routing strategy,
//! announcements and the queue event log, as a sans-IO core.
//!
//! [`Acd`] takes inputs with the current `tokio::time::Instant` (a call
//! joins a queue, a caller leaves, an agent logs in or pauses, an offer was
//! answered or not, a call ended, the timer fired) and queues
//! [`AcdCommand`]s for the daemon (ring this agent, cancel that offer,
//! announce a position, the caller waited too long, place a callback, log
//! an event). It never reads a clock, sleeps, spawns or touches a socket;
//! the daemon calls [`Acd::on_timer`] once `now >= deadline()`.
//!
//! Files, one state machine each:
//! - [`agent`]: one seat (logged out, ready, ringing, talking, wrap-up,
//!   paused), consecutive misses and a pause or logout pending until the
//!   call is done.
//! - [`entry`]: one caller's place in a queue (waiting, offering,
//!   connected, abandoned, timed out, broke out), callbacks as virtual
//!   entries that keep the place.
//! - [`queue`]: a queue's settings, its entries in order (priority desc,
//!   enqueue time asc) and its handle-time history.
//! - [`strategy`]: which ready agent(s) a queue's next caller goes to.
//! - [`distributor`]: [`Acd`], tying them together, with the timers.
//! - [`events`]: [`QueueEvent`], the log record of every change.
//! - [`config`]: serde types for agents and queues, validated with every
//!   error and its key.

pub mod agent;
pub mod config;
pub mod distributor;
pub mod entry;
pub mod events;
pub mod queue;
pub mod strategy;

use std::fmt;

pub use agent::{Agent, AgentError, AgentState};
pub use config::{
    personal_queue, AcdConfig, AcdConfigError, AcdConfigErrors, AcdSettings, AgentConfig,
    QueueConfig, WhenNoAgents,
};
pub use distributor::{
    Acd, AcdCommand, AcdError, Effect, EndedBy, OfferResult, Reconfigured, Refusal, Refused,
};
pub use entry::{BreakOut, Entry, EntryState, TimeoutReason};
pub use events::{EventKind, QueueEvent};
pub use strategy::Strategy;

/// A call, by its SIP Call-ID (the call task's own leg towards the caller).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub String);

impl From<&str> for CallId {
    fn from(s: &str) -> Self {
        CallId(s.to_string())
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An agent, by the id in its config (`1001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub String);

impl From<&str> for AgentId {
    fn from(s: &str) -> Self {
        AgentId(s.to_string())
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One queue entry (a caller's place, or a callback's), unique for the
/// life of the [`Acd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
