//! The center's KPIs (话务指标) of a period, computed from the stored call
//! records and the agents' state events: pure computation here
//! ([`compute`]); [`load`] reads the store, [`render`] prints a table, CSV
//! or JSON. `hotline report`, `/qc/kpi` and `/qc/kpi.csv` show them.
//!
//! A period is `[from, to)`; a call belongs to it by its arrival time.
//! Hours and days are the center's local ones (`[report] timezone`, else
//! `[qc.sampling] timezone`). Counts are integers and sums are kept in
//! milliseconds; every ratio is a fraction of two counts (or sums), rounded
//! once, when it is displayed.
//!
//! # Definitions
//!
//! - **Offered** (呼入排队): citizen calls that reached an agent queue — a
//!   call record with `queue` set (the queue the caller first joined; a
//!   caller the queue refused, e.g. no agents, counts too: the center did
//!   not answer). Monitor legs (`disposition = monitor`, a supervisor
//!   listening) and calls rejected before answer are never offered.
//! - **Answered** (接通): offered calls connected to an agent (the record
//!   names an agent).
//! - **Answer rate** (接通率) = answered ÷ offered.
//! - **Service level** (服务水平) = calls answered within
//!   `service_level_secs` (wait ≤ threshold; default 15 s after GB/T 33358)
//!   ÷ **offered** (every offered call in the denominator, short abandons
//!   included, as in the center's definition "answered within N s ÷
//!   offered").
//! - **ASA** (平均排队时间) = mean wait in queue of the answered calls.
//! - **Abandoned** (放弃): offered calls whose caller hung up in the queue
//!   (ringing an agent included). Those that waited less than
//!   `short_abandon_secs` are **short abandons**, counted apart (a
//!   misdial, a caller who changed their mind) and left out of the abandon
//!   rate's numerator: **abandon rate** = abandons of at least
//!   `short_abandon_secs` ÷ offered.
//! - **Overflowed**: offered calls neither answered nor abandoned — they
//!   left the queue for its overflow (time-out, no agents), broke out to a
//!   voice message or a callback request, or were refused by the queue.
//! - **AHT** (平均处理时长) = mean of talk (holds included) + wrap-up of
//!   the answered calls; **ACW** (话后处理时长) = mean wrap-up of the
//!   answered calls (a wrap-up not yet written counts 0).
//! - **Occupancy** (占用率) = handle time (talk + wrap-up of the calls the
//!   agent answered in the period, every queue) ÷ **staffed time**: logged
//!   in and not paused, from the `login`/`logout`/`pause`/`unpause` events,
//!   clipped to the period (and to now). The state an agent starts the
//!   period in is that of its last such event before the period (none:
//!   logged out, unless its first event in the period is a log-out or a
//!   pause, which says it was logged in). `unreachable` does not stop the
//!   staffed time. The total is all agents' handle time ÷ all staffed time.
//! - **Satisfaction** (满意率) = survey answers of 4 or 5 ÷ survey answers
//!   (scores 1–5 of answered calls); the **mean score** beside it.
//! - **First-contact resolution** (一次性解决率) = answered calls whose
//!   caller did not call again within `repeat_days` days after (any later
//!   call record from the same number but a monitor leg, to any line) ÷
//!   answered calls with a caller number (empty and anonymous numbers are
//!   left out). The later calls are read up to `repeat_days` past the
//!   period's end, so a recent period's FCR rises as the days pass.
//!
//! Groups: the total; per queue; per agent (the agent who took the call;
//! the page and the table show answered, AHT, ACW, staffed time,
//! occupancy, satisfaction and FCR); per hour of day (0–23, all the
//! period's days together) and per day, by arrival. A queue filter keeps
//! the calls of that queue only, except in the occupancy's handle time
//! (staffed time is not per queue).

mod load;
pub mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::store::{CallRecord, Disposition, QueueEventRow};

pub use load::load;

/// `[report]`: the KPIs' thresholds and time zone.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// The center's time zone for hours and days; none: `qc.sampling.timezone`.
    pub timezone: Option<String>,
    /// Answered within this many seconds counts for the service level.
    pub service_level_secs: u32,
    /// Abandons after a shorter wait are short abandons (0: none).
    pub short_abandon_secs: u32,
    /// A call from the same number within this many days after an
    /// answered call makes it not resolved at first contact.
    pub repeat_days: u32,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            timezone: None,
            service_level_secs: 15,
            short_abandon_secs: 5,
            repeat_days: 3,
        }
    }
}

/// A problem in `[report]`, with its key below `report.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfigError {
    pub key: String,
    pub message: String,
}

impl ReportConfig {
    /// Every problem of the section.
    pub fn validate(&self) -> Result<(), Vec<ReportConfigError>> {
        let mut errors = Vec::new();
        let mut err = |key: &str, message: String| {
            errors.push(ReportConfigError {
                key: key.into(),
                message,
            })
        };
        if let Some(tz) = &self.timezone {
            if tz.parse::<Tz>().is_err() {
                err(
                    "timezone",
                    format!("{tz:?} is not a time zone name (e.g. \"Asia/Shanghai\")"),
                );
            }
        }
        if !(1..=600).contains(&self.service_level_secs) {
            err("service_level_secs", "must be 1 to 600".into());
        }
        if self.short_abandon_secs > 120 {
            err(
                "short_abandon_secs",
                "must be 0 to 120 (0: no short abandons)".into(),
            );
        }
        if !(1..=90).contains(&self.repeat_days) {
            err("repeat_days", "must be 1 to 90".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The settings the computation runs on; `fallback` is the time zone
    /// when none is set here (or it is invalid: validation reports that).
    pub fn settings(&self, fallback: Tz) -> KpiSettings {
        KpiSettings {
            tz: self
                .timezone
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or(fallback),
            service_level_secs: self.service_level_secs,
            short_abandon_secs: self.short_abandon_secs,
            repeat_days: self.repeat_days,
        }
    }
}

/// What [`compute`] needs to know besides the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KpiSettings {
    pub tz: Tz,
    pub service_level_secs: u32,
    pub short_abandon_secs: u32,
    pub repeat_days: u32,
}

impl Default for KpiSettings {
    fn default() -> Self {
        ReportConfig::default().settings(chrono_tz::Asia::Shanghai)
    }
}

/// The sums and counts of one group; the ratios are methods (`None` when
/// the denominator is 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub offered: u64,
    pub answered: u64,
    /// Answered with a wait of at most the service-level threshold.
    pub answered_in_time: u64,
    /// Abandons in queue after at least `short_abandon_secs`.
    pub abandoned: u64,
    /// Abandons in queue after less than `short_abandon_secs`.
    pub short_abandoned: u64,
    /// Neither answered nor abandoned (time-out, break-out, refused).
    pub overflowed: u64,
    /// Sum of the answered calls' waits.
    pub answered_wait_ms: i64,
    /// Sum of the answered calls' talk times.
    pub talk_ms: i64,
    /// Sum of the answered calls' wrap-up times.
    pub wrap_up_ms: i64,
    /// Survey answers (1–5) of answered calls; those of 4 or 5; their sum.
    pub surveys: u64,
    pub satisfied: u64,
    pub score_sum: i64,
    /// Answered calls with a caller number; those with no repeat call.
    pub fcr_calls: u64,
    pub fcr_resolved: u64,
    /// Agents: logged in and not paused, within the period; paused.
    pub staffed_ms: i64,
    pub paused_ms: i64,
    /// Agents: talk + wrap-up of every call answered in the period (all
    /// queues), the occupancy's numerator.
    pub handled_ms: i64,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn mean(sum: i64, n: u64) -> Option<f64> {
    (n > 0).then(|| sum as f64 / n as f64)
}

impl Figures {
    pub fn answer_rate(&self) -> Option<f64> {
        ratio(self.answered, self.offered)
    }

    /// Answered within the threshold ÷ offered.
    pub fn service_level(&self) -> Option<f64> {
        ratio(self.answered_in_time, self.offered)
    }

    /// Abandons (short ones left out) ÷ offered.
    pub fn abandon_rate(&self) -> Option<f64> {
        ratio(self.abandoned, self.offered)
    }

    /// Average speed of answer, in milliseconds.
    pub fn asa_ms(&self) -> Option<f64> {
        mean(self.answered_wait_ms, self.answered)
    }

    /// Average handle time (talk + wrap-up), in milliseconds.
    pub fn aht_ms(&self) -> Option<f64> {
        mean(self.talk_ms + self.wrap_up_ms, self.answered)
    }

    /// Average after-call work, in milliseconds.
    pub fn acw_ms(&self) -> Option<f64> {
        mean(self.wrap_up_ms, self.answered)
    }

    /// Handle time ÷ staffed time.
    pub fn occupancy(&self) -> Option<f64> {
        (self.staffed_ms > 0).then(|| self.handled_ms as f64 / self.staffed_ms as f64)
    }

    /// Survey answers of 4 or 5 ÷ survey answers.
    pub fn satisfaction(&self) -> Option<f64> {
        ratio(self.satisfied, self.surveys)
    }

    pub fn mean_score(&self) -> Option<f64> {
        mean(self.score_sum, self.surveys)
    }

    /// Answered calls with no repeat call ÷ answered calls with a number.
    pub fn fcr(&self) -> Option<f64> {
        ratio(self.fcr_resolved, self.fcr_calls)
    }

    fn add(&mut self, o: &Figures) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.answered_in_time += o.answered_in_time;
        self.abandoned += o.abandoned;
        self.short_abandoned += o.short_abandoned;
        self.overflowed += o.overflowed;
        self.answered_wait_ms += o.answered_wait_ms;
        self.talk_ms += o.talk_ms;
        self.wrap_up_ms += o.wrap_up_ms;
        self.surveys += o.surveys;
        self.satisfied += o.satisfied;
        self.score_sum += o.score_sum;
        self.fcr_calls += o.fcr_calls;
        self.fcr_resolved += o.fcr_resolved;
        self.staffed_ms += o.staffed_ms;
        self.paused_ms += o.paused_ms;
        self.handled_ms += o.handled_ms;
    }
}

/// One group's key (a queue, an agent, `09` for 09:00–10:00, a day) and
/// figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: String,
    pub figures: Figures,
}

/// The KPIs of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpis {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub settings: KpiSettings,
    /// The queue filter, if any.
    pub queue: Option<String>,
    /// Every queue offered calls in the period, whatever the filter.
    pub all_queues: Vec<String>,
    pub total: Figures,
    pub queues: Vec<Group>,
    pub agents: Vec<Group>,
    /// Hours of day with offered calls, `00`…`23`.
    pub hours: Vec<Group>,
    /// Days with offered calls, `YYYY-MM-DD`.
    pub days: Vec<Group>,
}

impl Kpis {
    fn group<'a>(list: &'a [Group], key: &str) -> Option<&'a Figures> {
        list.iter().find(|g| g.key == key).map(|g| &g.figures)
    }

    pub fn queue(&self, key: &str) -> Option<&Figures> {
        Kpis::group(&self.queues, key)
    }

    pub fn agent(&self, key: &str) -> Option<&Figures> {
        Kpis::group(&self.agents, key)
    }

    /// `hour` 0–23.
    pub fn hour(&self, hour: u32) -> Option<&Figures> {
        Kpis::group(&self.hours, &format!("{hour:02}"))
    }

    /// `day` as `YYYY-MM-DD`.
    pub fn day(&self, day: &str) -> Option<&Figures> {
        Kpis::group(&self.days, day)
    }

    /// Keeps the agents `keep` says yes to (a team lead's own team); the
    /// other groups are the center's and stay as they are.
    pub fn retain_agents(&mut self, keep: impl Fn(&str) -> bool) {
        self.agents.retain(|g| keep(&g.key));
    }
}

/// What [`compute`] reads.
#[derive(Debug, Clone, Copy)]
pub struct KpiInput<'a> {
    /// The period.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Staffed time is not counted past this instant.
    pub now: DateTime<Utc>,
    /// Call records arrived in `from` .. `to` + `repeat_days` (the later
    /// ones are read only as repeat calls), any order.
    pub records: &'a [CallRecord],
    /// Agent state events (login, logout, pause, unpause) of the period,
    /// with each agent's last one before it; other kinds are ignored.
    pub agent_events: &'a [QueueEventRow],
    /// Only the calls of this queue.
    pub queue: Option<&'a str>,
}

/// The period of the local days `from` to `to`, both included, as
/// `[midnight of from, midnight after to)`; `prefix` names the fields in
/// errors (`--` on the command line). At most 366 days.
pub fn day_period(
    from: &str,
    to: &str,
    tz: Tz,
    prefix: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let day = |what: &str, s: &str| {
        chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("{prefix}{what} {s:?} is not a date (YYYY-MM-DD)"))
    };
    let (f, t) = (day("from", from)?, day("to", to)?);
    if f > t {
        return Err(format!(
            "{prefix}from ({f}) must be on or before {prefix}to ({t})"
        ));
    }
    if (t - f).num_days() >= 366 {
        return Err(format!("the period is longer than 366 days ({f} to {t})"));
    }
    Ok((
        crate::qc::local_midnight(f, tz),
        crate::qc::local_midnight(t + chrono::Days::new(1), tz),
    ))
}

/// A caller number that identifies nobody.
pub fn anonymous_caller(caller: &str) -> bool {
    let c = caller.trim().to_ascii_lowercase();
    c.is_empty()
        || c.chars().all(|ch| ch == '0')
        || [
            "anonymous",
            "unknown",
            "restricted",
            "private",
            "unavailable",
        ]
        .contains(&c.as_str())
}

/// Computes the KPIs of `input`'s period.
pub fn compute(input: &KpiInput<'_>, settings: &KpiSettings) -> Kpis {
    let tz = settings.tz;
    let (from, to) = (input.from, input.to);
    let sl_ms = i64::from(settings.service_level_secs) * 1000;
    let short_ms = i64::from(settings.short_abandon_secs) * 1000;
    let window = Duration::days(i64::from(settings.repeat_days));

    // Every citizen call per number, for the repeat look-up.
    let mut by_caller: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    for r in input.records {
        if r.disposition != Disposition::Monitor && !anonymous_caller(&r.caller) {
            by_caller
                .entry(r.caller.trim())
                .or_default()
                .push(r.arrived_at);
        }
    }
    for times in by_caller.values_mut() {
        times.sort();
    }
    let called_again = |r: &CallRecord| {
        by_caller.get(r.caller.trim()).is_some_and(|times| {
            times
                .iter()
                .any(|t| *t > r.arrived_at && *t <= r.arrived_at + window)
        })
    };

    let mut total = Figures::default();
    let mut queues: BTreeMap<String, Figures> = BTreeMap::new();
    let mut agents: BTreeMap<String, Figures> = BTreeMap::new();
    let mut hours: BTreeMap<String, Figures> = BTreeMap::new();
    let mut days: BTreeMap<String, Figures> = BTreeMap::new();
    let mut all_queues = std::collections::BTreeSet::new();

    for r in input.records {
        if r.arrived_at < from || r.arrived_at >= to {
            continue;
        }
        if matches!(r.disposition, Disposition::Monitor | Disposition::Rejected) {
            continue;
        }
        let Some(queue) = r.queue.as_deref() else {
            continue;
        };
        all_queues.insert(queue.to_string());
        let a = &r.acd;
        let handle = a.talk_ms.unwrap_or(0) + a.wrap_up_ms.unwrap_or(0);
        // Occupancy counts every queue's calls.
        if let Some(agent) = &a.agent {
            agents.entry(agent.clone()).or_default().handled_ms += handle;
        }
        if input.queue.is_some_and(|q| q != queue) {
            continue;
        }
        let mut f = Figures {
            offered: 1,
            ..Default::default()
        };
        let wait = a.wait_ms.unwrap_or(0);
        if a.agent.is_some() {
            f.answered = 1;
            f.answered_in_time = u64::from(wait <= sl_ms);
            f.answered_wait_ms = wait;
            f.talk_ms = a.talk_ms.unwrap_or(0);
            f.wrap_up_ms = a.wrap_up_ms.unwrap_or(0);
            if let Some(s) = a.survey_score.filter(|s| (1..=5).contains(s)) {
                f.surveys = 1;
                f.satisfied = u64::from(s >= 4);
                f.score_sum = s;
            }
            if !anonymous_caller(&r.caller) {
                f.fcr_calls = 1;
                f.fcr_resolved = u64::from(!called_again(r));
            }
        } else if r.disposition == Disposition::AbandonedInQueue {
            if wait < short_ms {
                f.short_abandoned = 1;
            } else {
                f.abandoned = 1;
            }
        } else {
            f.overflowed = 1;
        }
        let local = r.arrived_at.with_timezone(&tz);
        total.add(&f);
        queues.entry(queue.to_string()).or_default().add(&f);
        hours
            .entry(local.format("%H").to_string())
            .or_default()
            .add(&f);
        days.entry(local.format("%Y-%m-%d").to_string())
            .or_default()
            .add(&f);
        if let Some(agent) = &a.agent {
            // (`f.handled_ms` is 0: the handle time is counted above.)
            agents.entry(agent.clone()).or_default().add(&f);
        }
    }

    let end = to.min(input.now).max(from);
    for (agent, (staffed, paused)) in staffed_time(input.agent_events, from, end) {
        let f = agents.entry(agent).or_default();
        f.staffed_ms += staffed;
        f.paused_ms += paused;
    }
    for f in agents.values() {
        total.staffed_ms += f.staffed_ms;
        total.paused_ms += f.paused_ms;
        total.handled_ms += f.handled_ms;
    }
    let list = |m: BTreeMap<String, Figures>| {
        m.into_iter()
            .map(|(key, figures)| Group { key, figures })
            .collect::<Vec<_>>()
    };
    Kpis {
        from,
        to,
        settings: *settings,
        queue: input.queue.map(str::to_string),
        all_queues: all_queues.into_iter().collect(),
        total,
        queues: list(queues),
        agents: list(agents),
        hours: list(hours),
        days: list(days),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentState {
    LoggedOut,
    Staffed,
    Paused,
}

/// Per agent: (staffed ms, paused ms) within `from` .. `end`.
fn staffed_time(
    events: &[QueueEventRow],
    from: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BTreeMap<String, (i64, i64)> {
    let mut per_agent: BTreeMap<&str, Vec<&QueueEventRow>> = BTreeMap::new();
    for e in events {
        if let (Some(a), true) = (
            e.agent.as_deref(),
            matches!(e.kind.as_str(), "login" | "logout" | "pause" | "unpause"),
        ) {
            per_agent.entry(a).or_default().push(e);
        }
    }
    let mut out = BTreeMap::new();
    for (agent, mut evs) in per_agent {
        evs.sort_by_key(|e| e.at);
        let after = |kind: &str, state: AgentState| match kind {
            "login" => match state {
                AgentState::LoggedOut => AgentState::Staffed,
                s => s,
            },
            "logout" => AgentState::LoggedOut,
            "pause" => AgentState::Paused,
            _ => AgentState::Staffed,
        };
        // The state at `from`: the last event before it, else what the
        // first event of the period implies.
        let mut state = match evs.iter().rev().find(|e| e.at < from) {
            Some(e) => after(&e.kind, AgentState::LoggedOut),
            None => match evs.first().map(|e| e.kind.as_str()) {
                Some("logout") | Some("pause") => AgentState::Staffed,
                Some("unpause") => AgentState::Paused,
                _ => AgentState::LoggedOut,
            },
        };
        let (mut staffed, mut paused) = (0i64, 0i64);
        let mut cursor = from;
        let mut count = |state: AgentState, a: DateTime<Utc>, b: DateTime<Utc>| {
            let ms = (b.min(end) - a.max(from)).num_milliseconds().max(0);
            match state {
                AgentState::Staffed => staffed += ms,
                AgentState::Paused => paused += ms,
                AgentState::LoggedOut => {}
            }
        };
        for e in evs.iter().filter(|e| e.at >= from && e.at < end) {
            count(state, cursor, e.at);
            cursor = e.at;
            state = after(&e.kind, state);
        }
        count(state, cursor, end);
        if staffed > 0 || paused > 0 {
            out.insert(agent.to_string(), (staffed, paused));
        }
    }
    out
}

#[cfg(test)]
mod tests;
