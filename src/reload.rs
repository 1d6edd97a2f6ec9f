//! Reloading the configuration while running (SIGHUP).
//!
//! What a reload applies: the IVR flows and the prompts (a center records a
//! new greeting, changes opening hours or a menu). They are loaded and
//! checked exactly as at start — every flow against the new prompts, its
//! look-up SQL, its loops — and only if all of it is good do they replace
//! the running ones; otherwise the error is logged and the running
//! configuration stays. Calls in progress keep the flow and the prompts
//! they started with to their end (each holds its own `Arc`); calls that
//! arrive after the reload get the new ones. No call is dropped.
//!
//! What it does not apply (yet): everything else — SIP and RTP, HTTP,
//! the database, the registrar's users, the agents and queues, QC and
//! recording settings. A reload that finds any of them changed says so,
//! section by section, in a warning: they take effect at the next
//! restart.

use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use crate::config::Config;

/// A value the daemon replaces while running. Readers take the current
/// `Arc` and keep it as long as they need a consistent view.
#[derive(Debug)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: Arc<T>) -> Live<T> {
        Live(RwLock::new(value))
    }

    /// The value now.
    pub fn now(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value for every later [`Live::now`].
    pub fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// What a reload applied, and what it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub prompts: usize,
    pub flows: usize,
    /// Sections that differ from the running configuration but are only
    /// read at start.
    pub restart_needed: Vec<&'static str>,
}

/// The sections of `new` a reload cannot apply that differ from `running`.
pub fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    fn differs(a: &dyn Debug, b: &dyn Debug) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let sections: [(&'static str, bool); 10] = [
        ("sip", differs(&running.sip, &new.sip)),
        ("rtp", differs(&running.rtp, &new.rtp)),
        (
            "http",
            differs(
                &(&running.http_listen, &running.api_tokens),
                &(&new.http_listen, &new.api_tokens),
            ),
        ),
        (
            "database",
            differs(
                &(&running.database_url, running.seed_demo),
                &(&new.database_url, new.seed_demo),
            ),
        ),
        ("paths.data_dir", running.data_dir != new.data_dir),
        (
            "log",
            differs(
                &(&running.log_filter, running.log_format),
                &(&new.log_filter, new.log_format),
            ),
        ),
        ("clock", running.clock_start != new.clock_start),
        ("registrar", differs(&running.registrar, &new.registrar)),
        ("acd (agents and queues)", differs(&running.acd, &new.acd)),
        (
            "qc, recording and report",
            differs(
                &(&running.qc, &running.recording),
                &(&new.qc, &new.recording),
            ) || differs(&running.report, &new.report),
        ),
    ];
    sections
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| name)
        .collect()
}
