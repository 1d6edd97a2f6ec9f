//! Quality control: sampling recordings for QC, scorecards and scores,
//! disputes, and the QC report. (The web pages are in `crate::web`.)
//!
//! Configuration lives under `[qc]` in the daemon's config file; each part
//! validates its own section and reports every problem with its dotted key.

pub mod call_timeline;
pub mod report;
pub mod sample_run;
pub mod sample_schedule;
pub mod sampling;
pub mod sampling_rules;
pub mod scorecard;
pub mod waveform;
pub mod working_days;

use chrono_tz::Tz;
use serde::Deserialize;

pub use scorecard::Scorecard;
pub use working_days::{CalendarConfig, WorkingDays};

/// `[qc]`: everything QC configures.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QcConfig {
    /// Working days a team lead has to dispute a score (after the day it
    /// was given).
    pub dispute_working_days: u32,
    pub calendar: CalendarConfig,
    /// The scorecards; the first is the one new scores use.
    pub scorecards: Vec<Scorecard>,
    /// Score bands of the report, best first.
    pub bands: Vec<Band>,
    /// Scores below this (or auto-failed) are problem recordings to coach on.
    pub coach_below: f64,
    pub web: WebConfig,
    /// `[qc.sampling]`: the rules that pick recordings for QC.
    pub sampling: sampling_rules::SamplingConfig,
}

impl Default for QcConfig {
    fn default() -> Self {
        QcConfig {
            dispute_working_days: 2,
            calendar: CalendarConfig::default(),
            scorecards: Vec::new(),
            bands: default_bands(),
            coach_below: 60.0,
            web: WebConfig::default(),
            sampling: sampling_rules::SamplingConfig::default(),
        }
    }
}

/// A report band: scores of at least `min` (and below the band above).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub name: String,
    pub min: f64,
}

fn default_bands() -> Vec<Band> {
    [
        ("excellent", 90.0),
        ("good", 80.0),
        ("pass", 60.0),
        ("fail", 0.0),
    ]
    .iter()
    .map(|(n, m)| Band {
        name: n.to_string(),
        min: *m,
    })
    .collect()
}

/// `[qc.web]`: the QC pages' log-in and the wallboard.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// A session ends after this long without a request.
    pub session_idle_minutes: u32,
    /// …and this long after log-in in any case.
    pub session_max_hours: u32,
    /// This many wrong passwords in a row lock the user…
    pub lock_after_failures: u32,
    /// …for this long.
    pub lock_minutes: u32,
    /// Mark cookies `Secure` (set when TLS is in front of the daemon).
    pub secure_cookies: bool,
    /// The wallboard reads today's figures from the database this often
    /// (seconds; the queues and agents are read every second).
    pub wallboard_refresh_secs: u32,
    /// At most this many wallboard streams at once; more get 503.
    pub wallboard_max_streams: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            lock_after_failures: 5,
            lock_minutes: 15,
            secure_cookies: false,
            wallboard_refresh_secs: 20,
            wallboard_max_streams: 64,
        }
    }
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
        let mut err = |key: &str, message: String| {
            errors.push(QcConfigError {
                key: key.to_string(),
                message,
            })
        };
        if !(1..=30).contains(&self.dispute_working_days) {
            err("dispute_working_days", "must be 1 to 30".into());
        }
        if self.bands.is_empty() {
            err("bands", "give at least one band".into());
        }
        for (i, pair) in self.bands.windows(2).enumerate() {
            if pair[1].min >= pair[0].min {
                err(
                    &format!("bands[{}].min", i + 1),
                    "bands go best first: each min below the one before".into(),
                );
            }
        }
        if !(0.0..=100.0).contains(&self.coach_below) {
            err("coach_below", "must be 0 to 100".into());
        }
        let w = &self.web;
        if w.session_idle_minutes == 0 || w.session_max_hours == 0 {
            err(
                "web",
                "session_idle_minutes and session_max_hours must be above 0".into(),
            );
        }
        if !(1..=600).contains(&w.wallboard_refresh_secs) {
            err(
                "web.wallboard_refresh_secs",
                "must be 1 to 600 (seconds)".into(),
            );
        }
        if !(1..=1024).contains(&w.wallboard_max_streams) {
            err("web.wallboard_max_streams", "must be 1 to 1024".into());
        }
        if w.lock_after_failures == 0 || w.lock_minutes == 0 {
            err(
                "web",
                "lock_after_failures and lock_minutes must be above 0".into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, card) in self.scorecards.iter().enumerate() {
            card.validate(&format!("scorecards[{i}]"), &mut errors);
            if !names.insert(card.name.clone()) {
                errors.push(QcConfigError {
                    key: format!("scorecards[{i}].name"),
                    message: format!(
                        "{:?} is configured twice (raise `version` to change a card)",
                        card.name
                    ),
                });
            }
        }
        WorkingDays::from_config(&self.calendar, &mut errors);
        if let Err(e) = self.sampling.plan() {
            errors.extend(e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The center's time zone (`qc.sampling.timezone`): sampling windows,
    /// working days, report days. Asia/Shanghai if invalid (validation
    /// reports that).
    pub fn tz(&self) -> Tz {
        self.sampling
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    pub fn working_days(&self) -> WorkingDays {
        WorkingDays::from_config(&self.calendar, &mut Vec::new())
    }

    /// The scorecard new scores use.
    pub fn current_scorecard(&self) -> Option<&Scorecard> {
        self.scorecards.first()
    }

    /// The band a total falls in.
    pub fn band_of(&self, total: f64) -> &str {
        self.bands
            .iter()
            .find(|b| total >= b.min)
            .or(self.bands.last())
            .map(|b| b.name.as_str())
            .unwrap_or("")
    }
}

/// The UTC instant of local midnight starting `day` in `tz` (the earliest,
/// should a clock change make it ambiguous; an hour later in a zone whose
/// clock skips midnight).
pub fn local_midnight(day: chrono::NaiveDate, tz: Tz) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let at = |naive: chrono::NaiveDateTime| {
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    at(midnight)
        .or_else(|| at(midnight + chrono::Duration::hours(1)))
        .unwrap_or_else(|| midnight.and_utc())
}
