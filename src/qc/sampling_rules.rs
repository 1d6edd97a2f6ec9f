//! `[qc.sampling]`: which recordings QC listen to, as rules.
//!
//! A sampling run covers one period (a day, for the scheduled run) and
//! applies every rule of the list to the recorded agent calls that started
//! in it; each pick names the rule that chose it. The file form
//! ([`SamplingConfig`]) is checked and compiled into a [`SamplingPlan`],
//! with every problem reported under its dotted key (`sampling.rules[2].share`).
//!
//! ```toml
//! [qc.sampling]
//! enabled = true
//! timezone = "Asia/Shanghai"   # shifts, windows and the schedule are local
//! schedule = "01:30"           # daily, sampling the previous local day
//! history_days = 30            # the baseline for "usual length" (medians)
//! # seed = 42                  # default: derived from the period
//! shifts = [{ name = "day", start = "08:00", end = "16:00" }]
//!
//! [[qc.sampling.rules]]
//! name = "random"
//! kind = "random_share"        # share of each agent's calls, at random
//! share = 0.05
//! min_per_agent = 2
//! ```
//!
//! Rule kinds and their keys (defaults in brackets):
//! - `random_share`: `share` (0 < share ≤ 1), `min_per_agent` [0],
//!   `max_per_agent` [none].
//! - `longest` / `shortest`: `relative_to` = `"agent"` | `"queue"` [agent],
//!   `factor` ≥ 1 [2]: at least `factor` × the median talk length
//!   (longest) or at most the median / `factor` (shortest); `per_agent` [1]:
//!   the most extreme of each agent's calls.
//! - `shift_edge`: `minutes` (1-240): calls that start within that many
//!   minutes after a shift's start or before its end; `per_agent` [all].
//! - `time_window`: `windows` (`["11:30-13:00"]`, local, may cross
//!   midnight): calls that start in one; `per_agent` [all].
//! - `queues`: `queues` (names of `[[acd.queues]]`), `share` [1: all]: a
//!   random share of each queue's calls.
//! - `low_survey`: `max_score` (1-5) [2]: the caller rated the call at most
//!   this; `per_agent` [all].
//! - `repeat_caller`: `within_days` (1-90) [7]: the caller had called the
//!   hotline before, within that many days; `per_agent` [all].
//!
//! Where a rule caps its picks per agent (`per_agent`, `max_per_agent`) and
//! more calls qualify, the picks among them are random (seeded).

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::QcConfigError;

/// `[qc.sampling]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// The daemon samples on its schedule (the CLI works either way).
    pub enabled: bool,
    /// The center's time zone (IANA name).
    pub timezone: String,
    /// `HH:MM` local: the daily run, sampling the previous local day.
    pub schedule: String,
    /// A fixed seed; default: one derived from the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Days before the period whose calls make the "usual length" baseline.
    pub history_days: u32,
    pub shifts: Vec<ShiftDef>,
    pub rules: Vec<RuleDef>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            enabled: false,
            timezone: "Asia/Shanghai".into(),
            schedule: "01:30".into(),
            seed: None,
            history_days: 30,
            shifts: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// A shift as written: `{ name = "day", start = "08:00", end = "16:00" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftDef {
    pub name: String,
    pub start: String,
    pub end: String,
}

/// A rule as written: its `kind` says which of the other keys apply.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_agent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_agent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_agent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<u32>,
}

/// Minutes after local midnight, `end < start` crossing midnight; `end`
/// exclusive and possibly 24:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRange {
    pub start: u32,
    pub end: u32,
}

impl LocalRange {
    /// Whether `secs` after local midnight falls in the range.
    pub fn contains(self, secs: u32) -> bool {
        let (s, e) = (self.start * 60, self.end * 60);
        if s < e {
            secs >= s && secs < e
        } else {
            secs >= s || secs < e
        }
    }
}

impl std::fmt::Display for LocalRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A named shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub name: String,
    pub hours: LocalRange,
}

/// Whose usual length a call is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    Agent,
    Queue,
}

/// What a rule picks (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    RandomShare {
        share: f64,
        min_per_agent: u32,
        max_per_agent: Option<u32>,
    },
    Longest {
        relative_to: Baseline,
        factor: f64,
        per_agent: u32,
    },
    Shortest {
        relative_to: Baseline,
        factor: f64,
        per_agent: u32,
    },
    ShiftEdge {
        minutes: u32,
        per_agent: Option<u32>,
    },
    TimeWindow {
        windows: Vec<LocalRange>,
        per_agent: Option<u32>,
    },
    Queues {
        queues: Vec<String>,
        share: f64,
    },
    LowSurvey {
        max_score: i64,
        per_agent: Option<u32>,
    },
    RepeatCaller {
        within_days: u32,
        per_agent: Option<u32>,
    },
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub kind: RuleKind,
}

/// `[qc.sampling]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingPlan {
    pub enabled: bool,
    pub tz: Tz,
    /// Minutes after local midnight.
    pub schedule: u32,
    pub seed: Option<u64>,
    pub history_days: u32,
    pub shifts: Vec<Shift>,
    pub rules: Vec<Rule>,
}

impl SamplingPlan {
    /// The longest look-back any rule needs before the period, in days.
    pub fn lookback_days(&self) -> u32 {
        self.rules
            .iter()
            .map(|r| match r.kind {
                RuleKind::RepeatCaller { within_days, .. } => within_days,
                RuleKind::Longest { .. } | RuleKind::Shortest { .. } => self.history_days,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
}

/// The kinds a rule may have, as written.
pub const KINDS: [&str; 8] = [
    "random_share",
    "longest",
    "shortest",
    "shift_edge",
    "time_window",
    "queues",
    "low_survey",
    "repeat_caller",
];

/// The largest seed (seeds are stored as signed 64-bit integers).
pub const MAX_SEED: u64 = i64::MAX as u64;

/// `HH:MM`; `24:00` only as an end.
pub fn parse_hhmm(s: &str, end: bool) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// `HH:MM-HH:MM`, not empty; crossing midnight allowed (not to 24:00).
pub fn parse_range(s: &str) -> Option<LocalRange> {
    let (a, b) = s.split_once('-')?;
    range(parse_hhmm(a, false)?, parse_hhmm(b, true)?)
}

fn range(start: u32, end: u32) -> Option<LocalRange> {
    if start == end || (end == 24 * 60 && start > end) {
        return None;
    }
    Some(LocalRange { start, end })
}

struct Errors(Vec<QcConfigError>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(QcConfigError {
            key: key.into(),
            message: message.into(),
        });
    }
}

impl SamplingConfig {
    /// Checks the section; every problem with its key below `qc.`.
    pub fn plan(&self) -> Result<SamplingPlan, Vec<QcConfigError>> {
        let mut e = Errors(Vec::new());
        let tz = match self.timezone.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                e.push(
                    "sampling.timezone",
                    format!(
                        "unknown time zone {:?} (use an IANA name such as \"Asia/Shanghai\")",
                        self.timezone
                    ),
                );
                chrono_tz::UTC
            }
        };
        let schedule = parse_hhmm(&self.schedule, false).unwrap_or_else(|| {
            e.push(
                "sampling.schedule",
                format!(
                    "{:?} is not a time of day HH:MM (e.g. \"01:30\")",
                    self.schedule
                ),
            );
            0
        });
        if self.seed.is_some_and(|s| s > MAX_SEED) {
            e.push("sampling.seed", format!("must be at most {MAX_SEED}"));
        }
        if self.history_days == 0 || self.history_days > 365 {
            e.push("sampling.history_days", "must be 1 to 365 days");
        }
        let mut shifts = Vec::new();
        for (i, s) in self.shifts.iter().enumerate() {
            let key = format!("sampling.shifts[{i}]");
            if s.name.trim().is_empty() {
                e.push(format!("{key}.name"), "must not be empty");
            } else if self.shifts[..i].iter().any(|o| o.name == s.name) {
                e.push(
                    format!("{key}.name"),
                    format!("{:?} is listed twice", s.name),
                );
            }
            let start = parse_hhmm(&s.start, false);
            let end = parse_hhmm(&s.end, true);
            if start.is_none() {
                e.push(
                    format!("{key}.start"),
                    format!("{:?} is not a time of day HH:MM", s.start),
                );
            }
            if end.is_none() {
                e.push(
                    format!("{key}.end"),
                    format!("{:?} is not a time of day HH:MM (24:00 allowed)", s.end),
                );
            }
            if let (Some(a), Some(b)) = (start, end) {
                match range(a, b) {
                    Some(hours) => shifts.push(Shift {
                        name: s.name.clone(),
                        hours,
                    }),
                    None => e.push(
                        format!("{key}.end"),
                        "a shift must not be empty (and one crossing midnight ends before 24:00)",
                    ),
                }
            }
        }
        if self.enabled && self.rules.is_empty() {
            e.push(
                "sampling.rules",
                "sampling is enabled: list at least one [[qc.sampling.rules]]",
            );
        }
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("sampling.rules[{i}]");
            if r.name.trim().is_empty() {
                e.push(format!("{key}.name"), "must not be empty");
            } else if r.name.len() > 64 {
                e.push(format!("{key}.name"), "at most 64 characters");
            } else if self.rules[..i].iter().any(|o| o.name == r.name) {
                e.push(
                    format!("{key}.name"),
                    format!(
                        "{:?} is the name of another rule: each pick names its rule",
                        r.name
                    ),
                );
            }
            if let Some(kind) = rule_kind(&key, r, !self.shifts.is_empty(), &mut e) {
                rules.push(Rule {
                    name: r.name.clone(),
                    kind,
                });
            }
        }
        if !e.0.is_empty() {
            return Err(e.0);
        }
        Ok(SamplingPlan {
            enabled: self.enabled,
            tz,
            schedule,
            seed: self.seed,
            history_days: self.history_days,
            shifts,
            rules,
        })
    }
}

/// The keys each kind takes (besides `name` and `kind`).
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "random_share" => &["share", "min_per_agent", "max_per_agent"],
        "longest" | "shortest" => &["relative_to", "factor", "per_agent"],
        "shift_edge" => &["minutes", "per_agent"],
        "time_window" => &["windows", "per_agent"],
        "queues" => &["queues", "share"],
        "low_survey" => &["max_score", "per_agent"],
        "repeat_caller" => &["within_days", "per_agent"],
        _ => &[],
    }
}

fn rule_kind(key: &str, r: &RuleDef, have_shifts: bool, e: &mut Errors) -> Option<RuleKind> {
    if !KINDS.contains(&r.kind.as_str()) {
        e.push(
            format!("{key}.kind"),
            format!(
                "unknown kind {:?} (expected one of {})",
                r.kind,
                KINDS.join(", ")
            ),
        );
        return None;
    }
    let before = e.0.len();
    let given = [
        ("share", r.share.is_some()),
        ("min_per_agent", r.min_per_agent.is_some()),
        ("max_per_agent", r.max_per_agent.is_some()),
        ("per_agent", r.per_agent.is_some()),
        ("relative_to", r.relative_to.is_some()),
        ("factor", r.factor.is_some()),
        ("minutes", r.minutes.is_some()),
        ("windows", r.windows.is_some()),
        ("queues", r.queues.is_some()),
        ("max_score", r.max_score.is_some()),
        ("within_days", r.within_days.is_some()),
    ];
    let allowed = keys_of(&r.kind);
    for (field, set) in given {
        if set && !allowed.contains(&field) {
            e.push(
                format!("{key}.{field}"),
                format!(
                    "does not apply to kind {:?} (it takes {})",
                    r.kind,
                    allowed.join(", ")
                ),
            );
        }
    }
    let share = |e: &mut Errors, required: bool| -> f64 {
        match r.share {
            Some(s) if s > 0.0 && s <= 1.0 => s,
            Some(_) => {
                e.push(
                    format!("{key}.share"),
                    "must be more than 0 and at most 1 (0.05 is 5%)",
                );
                1.0
            }
            None if required => {
                e.push(format!("{key}.share"), "is required (0.05 is 5%)");
                1.0
            }
            None => 1.0,
        }
    };
    let per_agent = |e: &mut Errors| -> Option<u32> {
        match r.per_agent {
            Some(0) => {
                e.push(
                    format!("{key}.per_agent"),
                    "must be at least 1 (or left out)",
                );
                None
            }
            p => p,
        }
    };
    let kind = match r.kind.as_str() {
        "random_share" => {
            let share = share(e, true);
            let min = r.min_per_agent.unwrap_or(0);
            if let Some(max) = r.max_per_agent {
                if max == 0 || max < min {
                    e.push(
                        format!("{key}.max_per_agent"),
                        "must be at least 1 and at least min_per_agent",
                    );
                }
            }
            RuleKind::RandomShare {
                share,
                min_per_agent: min,
                max_per_agent: r.max_per_agent,
            }
        }
        "longest" | "shortest" => {
            let relative_to = match r.relative_to.as_deref() {
                None | Some("agent") => Baseline::Agent,
                Some("queue") => Baseline::Queue,
                Some(other) => {
                    e.push(
                        format!("{key}.relative_to"),
                        format!("{other:?}: expected \"agent\" or \"queue\""),
                    );
                    Baseline::Agent
                }
            };
            let factor = r.factor.unwrap_or(2.0);
            if !(1.0..=100.0).contains(&factor) {
                e.push(
                    format!("{key}.factor"),
                    "must be 1 to 100 (2: twice the median, or half of it for shortest)",
                );
            }
            let per_agent = per_agent(e).unwrap_or(1);
            if r.kind == "longest" {
                RuleKind::Longest {
                    relative_to,
                    factor,
                    per_agent,
                }
            } else {
                RuleKind::Shortest {
                    relative_to,
                    factor,
                    per_agent,
                }
            }
        }
        "shift_edge" => {
            let minutes = match r.minutes {
                Some(m @ 1..=240) => m,
                Some(_) => {
                    e.push(format!("{key}.minutes"), "must be 1 to 240 minutes");
                    1
                }
                None => {
                    e.push(format!("{key}.minutes"), "is required (e.g. 15)");
                    1
                }
            };
            if !have_shifts {
                e.push(
                    format!("{key}.kind"),
                    "shift_edge needs the shifts: set qc.sampling.shifts",
                );
            }
            RuleKind::ShiftEdge {
                minutes,
                per_agent: per_agent(e),
            }
        }
        "time_window" => {
            let mut windows = Vec::new();
            match &r.windows {
                None => e.push(
                    format!("{key}.windows"),
                    "is required (e.g. [\"11:30-13:00\"])",
                ),
                Some(list) if list.is_empty() => {
                    e.push(format!("{key}.windows"), "list at least one window")
                }
                Some(list) => {
                    for (j, w) in list.iter().enumerate() {
                        match parse_range(w) {
                            Some(range) => windows.push(range),
                            None => e.push(
                                format!("{key}.windows[{j}]"),
                                format!(
                                    "{w:?} is not a time window HH:MM-HH:MM (e.g. \"11:30-13:00\")"
                                ),
                            ),
                        }
                    }
                }
            }
            RuleKind::TimeWindow {
                windows,
                per_agent: per_agent(e),
            }
        }
        "queues" => {
            let queues = match &r.queues {
                Some(q) if !q.is_empty() => {
                    for (j, name) in q.iter().enumerate() {
                        if name.trim().is_empty() || q[..j].contains(name) {
                            e.push(
                                format!("{key}.queues[{j}]"),
                                "must be a queue name, listed once",
                            );
                        }
                    }
                    q.clone()
                }
                _ => {
                    e.push(format!("{key}.queues"), "list at least one queue");
                    Vec::new()
                }
            };
            RuleKind::Queues {
                queues,
                share: share(e, false),
            }
        }
        "low_survey" => {
            let max_score = r.max_score.unwrap_or(2);
            if !(1..=5).contains(&max_score) {
                e.push(
                    format!("{key}.max_score"),
                    "must be 1 to 5 (survey scores are 1-5)",
                );
            }
            RuleKind::LowSurvey {
                max_score,
                per_agent: per_agent(e),
            }
        }
        "repeat_caller" => {
            let within_days = r.within_days.unwrap_or(7);
            if !(1..=90).contains(&within_days) {
                e.push(format!("{key}.within_days"), "must be 1 to 90 days");
            }
            RuleKind::RepeatCaller {
                within_days,
                per_agent: per_agent(e),
            }
        }
        _ => return None,
    };
    (e.0.len() == before).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<SamplingPlan, Vec<QcConfigError>> {
        let c: SamplingConfig = toml::from_str(text).unwrap();
        c.plan()
    }

    fn keys(text: &str) -> Vec<String> {
        plan(text).unwrap_err().into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn defaults_are_valid_and_disabled() {
        let p = SamplingConfig::default().plan().unwrap();
        assert!(!p.enabled);
        assert_eq!(p.tz, chrono_tz::Asia::Shanghai);
        assert_eq!(p.schedule, 90);
        assert!(p.rules.is_empty());
    }

    #[test]
    fn every_kind_compiles_with_its_defaults() {
        let p = plan(
            r#"
enabled = true
shifts = [{ name = "night", start = "22:00", end = "06:00" }]
rules = [
  { name = "r", kind = "random_share", share = 0.05, min_per_agent = 2 },
  { name = "l", kind = "longest" },
  { name = "s", kind = "shortest", relative_to = "queue", factor = 3.0, per_agent = 2 },
  { name = "e", kind = "shift_edge", minutes = 15 },
  { name = "w", kind = "time_window", windows = ["11:30-13:00", "23:00-01:00"] },
  { name = "q", kind = "queues", queues = ["12345"] },
  { name = "v", kind = "low_survey" },
  { name = "c", kind = "repeat_caller" },
]
"#,
        )
        .unwrap();
        assert_eq!(
            p.shifts[0].hours,
            LocalRange {
                start: 1320,
                end: 360
            }
        );
        let kinds: Vec<&RuleKind> = p.rules.iter().map(|r| &r.kind).collect();
        assert_eq!(
            kinds[1],
            &RuleKind::Longest {
                relative_to: Baseline::Agent,
                factor: 2.0,
                per_agent: 1
            }
        );
        assert_eq!(
            kinds[5],
            &RuleKind::Queues {
                queues: vec!["12345".into()],
                share: 1.0
            }
        );
        assert_eq!(
            kinds[7],
            &RuleKind::RepeatCaller {
                within_days: 7,
                per_agent: None
            }
        );
        assert_eq!(p.lookback_days(), 30);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let got = keys(
            r#"
enabled = true
timezone = "Asia/Shangai"
schedule = "25:00"
history_days = 0
shifts = [{ name = "day", start = "08:00", end = "08:00" }, { name = "day", start = "8", end = "24:00" }]
rules = [
  { name = "", kind = "random_share", share = 1.5 },
  { name = "a", kind = "coin_toss" },
  { name = "a", kind = "longest", share = 0.1, relative_to = "team", factor = 0.5 },
  { name = "w", kind = "time_window", windows = ["11:30-13:00", "12:00-25:00"] },
  { name = "q", kind = "queues", queues = [] },
  { name = "v", kind = "low_survey", max_score = 6, per_agent = 0 },
  { name = "m", kind = "random_share", share = 0.1, min_per_agent = 3, max_per_agent = 2 },
]
"#,
        );
        assert_eq!(
            got,
            [
                "sampling.timezone",
                "sampling.schedule",
                "sampling.history_days",
                "sampling.shifts[0].end",
                "sampling.shifts[1].name",
                "sampling.shifts[1].start",
                "sampling.rules[0].name",
                "sampling.rules[0].share",
                "sampling.rules[1].kind",
                "sampling.rules[2].name",
                "sampling.rules[2].share",
                "sampling.rules[2].relative_to",
                "sampling.rules[2].factor",
                "sampling.rules[3].windows[1]",
                "sampling.rules[4].queues",
                "sampling.rules[5].max_score",
                "sampling.rules[5].per_agent",
                "sampling.rules[6].max_per_agent",
            ]
        );
    }

    #[test]
    fn shift_edge_needs_shifts_and_enabled_needs_rules() {
        assert_eq!(
            keys("rules = [{ name = \"e\", kind = \"shift_edge\", minutes = 10 }]"),
            ["sampling.rules[0].kind"]
        );
        assert_eq!(keys("enabled = true"), ["sampling.rules"]);
        assert_eq!(
            keys("rules = [{ name = \"e\", kind = \"time_window\" }]"),
            ["sampling.rules[0].windows"]
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_serde() {
        let r: Result<SamplingConfig, _> =
            toml::from_str("rules = [{ name = \"a\", kind = \"longest\", facter = 2.0 }]");
        assert!(r.unwrap_err().to_string().contains("facter"));
    }

    #[test]
    fn ranges_cross_midnight() {
        let r = parse_range("23:00-01:00").unwrap();
        assert!(r.contains(23 * 3600) && r.contains(30 * 60) && !r.contains(3600));
        let r = parse_range("11:30-13:00").unwrap();
        assert!(r.contains(11 * 3600 + 1800) && !r.contains(13 * 3600));
        assert_eq!(r.to_string(), "11:30-13:00");
        for bad in [
            "25:00-26:00",
            "12:00-12:00",
            "24:00-01:00",
            "1130-1300",
            "9:5-10:00",
        ] {
            assert!(parse_range(bad).is_none(), "{bad}");
        }
        assert!(parse_range("16:00-24:00").is_some());
    }
}
