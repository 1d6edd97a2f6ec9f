//! Quality control: sampling recordings for QC, scorecards and scores,
//! disputes, and the QC report. (The web pages are in `crate::web`.)
//!
//! Configuration lives under `[qc]` in the daemon's config file; each part
//! validates its own section and reports every problem with its dotted key.

pub mod call_timeline;
pub mod sample_run;
pub mod sample_schedule;
pub mod sampling;
pub mod sampling_rules;
pub mod waveform;

use serde::Deserialize;

/// `[qc]`: everything QC configures.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QcConfig {
    /// `[qc.sampling]`: the rules that pick recordings for QC.
    pub sampling: sampling_rules::SamplingConfig,
}

/// A problem in `[qc]`, with its key below `qc.` (`sampling.rules[2].share`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcConfigError {
    pub key: String,
    pub message: String,
}

impl QcConfig {
    /// Every problem of the section.
    pub fn validate(&self) -> Result<(), Vec<QcConfigError>> {
        let mut errors: Vec<QcConfigError> = Vec::new();
        if let Err(e) = self.sampling.plan() {
            errors.extend(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
