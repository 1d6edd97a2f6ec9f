//! Reloading the configuration while running (SIGHUP).
//!
//! What a reload applies, all or nothing — it is loaded and checked
//! exactly as at start, and only if all of it is good does it replace the
//! running one; otherwise the error is logged and the running
//! configuration stays:
//! - the IVR **flows and prompts** (a center records a new greeting,
//!   changes opening hours or a menu): every flow is checked against the
//!   new prompts, its look-up SQL, its loops and the new queues. Calls in
//!   progress keep the flow and the prompts they started with to their end
//!   (each holds its own `Arc`); calls that arrive after the reload get the
//!   new ones;
//! - the **agents and queues** (`[[acd.agents]]`, `[[acd.queues]]`,
//!   `[acd.settings]`): the ACD takes them without losing an agent's state
//!   or a caller's place (`acd::distributor::reconfigure` says what
//!   happens to those taken out); calls keep the queue settings (hold
//!   music, survey, recording) of the queue they joined;
//! - the **softphone users** (`[[registrar.users]]`, with `monitor`): new
//!   ones may register; those taken out lose their registrations.
//!
//! No call is dropped. What it does not apply: SIP and RTP, HTTP, the
//! database, the registrar's realm, algorithms and limits, QC, recording
//! and report settings. A reload that finds any of them changed says so,
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

impl<T: Default> Default for Live<T> {
    fn default() -> Live<T> {
        Live::new(Arc::default())
    }
}

/// What a reload applied, and what it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub prompts: usize,
    pub flows: usize,
    /// Softphone users now configured (`None`: not applied, the registrar
    /// needs a restart).
    pub users: Option<usize>,
    /// Registrations of users taken out, removed.
    pub bindings_removed: usize,
    /// What changed among agents and queues.
    pub acd: crate::acd::Reconfigured,
    /// Sections that differ from the running configuration but are only
    /// read at start.
    pub restart_needed: Vec<&'static str>,
}

/// The section name [`needs_restart`] gives the registrar's realm,
/// algorithms, limits and keep-alive (its users are reloaded).
pub const REGISTRAR: &str = "registrar (realm, algorithms, limits, keep-alive)";

/// The sections of `new` a reload cannot apply that differ from `running`.
pub fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    fn differs(a: &dyn Debug, b: &dyn Debug) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let registrar = |r: &crate::config::RegistrarSettings| {
        format!(
            "{:?}",
            (&r.realm, &r.algorithms, &r.limits, r.keepalive_secs)
        )
    };
    let sections: [(&'static str, bool); 9] = [
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
        (
            REGISTRAR,
            registrar(&running.registrar) != registrar(&new.registrar),
        ),
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
