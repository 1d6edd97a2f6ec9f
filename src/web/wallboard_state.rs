//! What the wallboard shows, as data: per configured queue the callers
//! waiting, the longest wait, the agents staffed and by state, and today's
//! offered, answered and abandoned calls and service level; then the
//! totals. Pure: a [`Board`] is built from an ACD snapshot and today's
//! KPIs ([`TodayFigures`], computed by [`crate::kpi`]), two boards compare
//! equal when nothing shown differs (the stream pushes only then), and
//! [`Board::cells`] gives every cell's text, which both the server-rendered
//! page and the pushed JSON use, so the page's script formats nothing.
//!
//! Agents' personal queues (`agent:<id>`, for transfers) are left out:
//! the board shows the configured queues.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::acd::AgentState;
use crate::call::acd_service::AcdSnapshot;
use crate::kpi::render::pct;
use crate::kpi::{Figures, Kpis};

/// Agents by state, in [`AgentState::NAMES`] order (JSON: an object of
/// state name → count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts([u32; AgentState::NAMES.len()]);

impl AgentCounts {
    /// Counts an agent in `state` (an [`AgentState::name`]; anything else
    /// counts as logged out).
    fn add(&mut self, state: &str) {
        let i = AgentState::NAMES
            .iter()
            .position(|n| *n == state)
            .unwrap_or(AgentState::NAMES.len() - 1);
        self.0[i] += 1;
    }

    /// The count of agents in `state`.
    pub fn get(&self, state: &str) -> u32 {
        self.by_state()
            .find(|(n, _)| *n == state)
            .map_or(0, |(_, c)| c)
    }

    /// (state name, count), in the columns' order.
    pub fn by_state(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        AgentState::NAMES.into_iter().zip(self.0)
    }
}

impl Serialize for AgentCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.by_state())
    }
}

/// Today's KPIs as the wallboard keeps them: the total and per queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodayFigures {
    /// The local day they are of.
    pub day: NaiveDate,
    /// `[report] service_level_secs`.
    pub service_level_secs: u32,
    pub total: Figures,
    pub queues: BTreeMap<String, Figures>,
}

impl TodayFigures {
    pub fn from_kpis(day: NaiveDate, kpis: Kpis) -> TodayFigures {
        TodayFigures {
            day,
            service_level_secs: kpis.settings.service_level_secs,
            total: kpis.total,
            queues: kpis
                .queues
                .into_iter()
                .map(|g| (g.key, g.figures))
                .collect(),
        }
    }
}

/// One row: a queue, or the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The queue's name; `None` for the totals.
    pub queue: Option<String>,
    /// Callers waiting or being offered.
    pub waiting: usize,
    /// The longest a caller now waiting has waited (0: none).
    pub longest_wait_ms: u64,
    /// Agents logged in and reachable.
    pub staffed: usize,
    pub agents: AgentCounts,
    /// Today's figures; `None` when they could not be read.
    pub today: Option<Figures>,
}

/// The whole board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub queues: Vec<Row>,
    pub total: Row,
    /// `None`: today's figures could not be read (the database).
    pub today: Option<(NaiveDate, u32)>,
}

/// `ms` as `mm:ss` (minutes past 99 as they are).
pub fn mmss(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// The column keys of a row, in order (`data-f` on the page, keys of
/// `cells` in the pushed JSON); the agents' states are
/// [`AgentState::NAMES`], in its order (a test checks).
pub const COLUMNS: [&str; 13] = [
    "waiting",
    "longest_wait",
    "staffed",
    "ready",
    "ringing",
    "talking",
    "wrap_up",
    "paused",
    "logged_out",
    "offered",
    "answered",
    "abandoned",
    "service_level",
];

impl Row {
    /// Every column's text, with its key, in [`COLUMNS`] order.
    pub fn cells(&self) -> Vec<(&'static str, String)> {
        let mut values = vec![
            self.waiting.to_string(),
            mmss(self.longest_wait_ms),
            self.staffed.to_string(),
        ];
        values.extend(self.agents.by_state().map(|(_, n)| n.to_string()));
        let today = |f: fn(&Figures) -> String| self.today.as_ref().map_or("-".to_string(), f);
        values.extend([
            today(|f| f.offered.to_string()),
            today(|f| f.answered.to_string()),
            today(|f| (f.abandoned + f.short_abandoned).to_string()),
            today(|f| pct(f.service_level())),
        ]);
        COLUMNS.into_iter().zip(values).collect()
    }
}

impl Board {
    /// The board of `snap` with `today`'s figures (`None`: unavailable).
    pub fn build(snap: &AcdSnapshot, today: Option<&TodayFigures>) -> Board {
        let figures = |q: Option<&str>| {
            today.map(|t| match q {
                Some(q) => t.queues.get(q).cloned().unwrap_or_default(),
                None => t.total.clone(),
            })
        };
        let queues: Vec<Row> = snap
            .queues
            .iter()
            .filter(|q| !q.name.contains(':'))
            .map(|q| {
                let mut agents = AgentCounts::default();
                for a in snap.agents.iter().filter(|a| a.queues.contains(&q.name)) {
                    agents.add(a.state);
                }
                Row {
                    queue: Some(q.name.clone()),
                    waiting: q.waiting,
                    longest_wait_ms: q.longest_wait_ms,
                    staffed: q.staffed,
                    agents,
                    today: figures(Some(&q.name)),
                }
            })
            .collect();
        let mut agents = AgentCounts::default();
        for a in &snap.agents {
            agents.add(a.state);
        }
        let total = Row {
            queue: None,
            waiting: queues.iter().map(|r| r.waiting).sum(),
            longest_wait_ms: queues.iter().map(|r| r.longest_wait_ms).max().unwrap_or(0),
            staffed: snap
                .agents
                .iter()
                .filter(|a| a.reachable && a.state != "logged_out")
                .count(),
            agents,
            today: figures(None),
        };
        Board {
            queues,
            total,
            today: today.map(|t| (t.day, t.service_level_secs)),
        }
    }
}

/// A row as pushed: the figures and the cells' text.
#[derive(Debug, Serialize)]
pub struct RowJson<'a> {
    pub queue: Option<&'a str>,
    pub waiting: usize,
    pub longest_wait_ms: u64,
    pub staffed: usize,
    pub agents: AgentCounts,
    pub offered: Option<u64>,
    pub answered: Option<u64>,
    pub abandoned: Option<u64>,
    /// Answered within the threshold ÷ offered; `None` with nothing offered.
    pub service_level: Option<f64>,
    pub cells: BTreeMap<&'static str, String>,
}

impl<'a> From<&'a Row> for RowJson<'a> {
    fn from(r: &'a Row) -> RowJson<'a> {
        RowJson {
            queue: r.queue.as_deref(),
            waiting: r.waiting,
            longest_wait_ms: r.longest_wait_ms,
            staffed: r.staffed,
            agents: r.agents,
            offered: r.today.as_ref().map(|f| f.offered),
            answered: r.today.as_ref().map(|f| f.answered),
            abandoned: r.today.as_ref().map(|f| f.abandoned + f.short_abandoned),
            service_level: r.today.as_ref().and_then(Figures::service_level),
            cells: r.cells().into_iter().collect(),
        }
    }
}

/// One pushed event: the board and when it was read.
#[derive(Debug, Serialize)]
pub struct BoardJson<'a> {
    /// The daemon's wall clock, RFC 3339.
    pub at: String,
    /// The same, local `HH:MM:SS` (`[report]` time zone).
    pub at_local: String,
    /// The day today's figures are of; `None`: unavailable.
    pub day: Option<String>,
    pub service_level_secs: Option<u32>,
    pub queues: Vec<RowJson<'a>>,
    pub total: RowJson<'a>,
}

impl Board {
    pub fn json(&self, at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> BoardJson<'_> {
        BoardJson {
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            at_local: local_time(at, tz),
            day: self.today.map(|(d, _)| d.to_string()),
            service_level_secs: self.today.map(|(_, s)| s),
            queues: self.queues.iter().map(RowJson::from).collect(),
            total: RowJson::from(&self.total),
        }
    }
}

/// `at` as local `HH:MM:SS`.
pub fn local_time(at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::acd_service::{AgentView, QueueView};

    fn queue(name: &str, waiting: usize, longest: u64, staffed: usize) -> QueueView {
        QueueView {
            name: name.into(),
            strategy: "longest_idle",
            waiting,
            callbacks: 0,
            staffed,
            longest_wait_ms: longest,
        }
    }

    fn agent(id: &str, state: &'static str, queues: &[&str]) -> AgentView {
        AgentView {
            id: id.into(),
            name: id.into(),
            extension: id.into(),
            state,
            reason: None,
            call_id: None,
            reachable: state != "logged_out",
            misses: 0,
            calls_today: 0,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            skills: Default::default(),
        }
    }

    fn snapshot() -> AcdSnapshot {
        AcdSnapshot {
            agents: vec![
                agent("1001", "talking", &["12345"]),
                agent("1002", "ready", &["12345", "12333"]),
                agent("1003", "logged_out", &["12333"]),
            ],
            queues: vec![
                queue("12345", 2, 65_400, 2),
                queue("12333", 1, 3_000, 1),
                queue("agent:1001", 1, 99_000, 1),
            ],
        }
    }

    fn today() -> TodayFigures {
        let figures = |offered, answered, in_time, abandoned, short| Figures {
            offered,
            answered,
            answered_in_time: in_time,
            abandoned,
            short_abandoned: short,
            ..Default::default()
        };
        TodayFigures {
            day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            service_level_secs: 15,
            total: figures(10, 8, 6, 1, 1),
            queues: [("12345".to_string(), figures(8, 7, 6, 1, 0))].into(),
        }
    }

    #[test]
    fn rows_per_configured_queue_with_agents_by_state_and_totals() {
        let b = Board::build(&snapshot(), Some(&today()));
        let names: Vec<_> = b.queues.iter().map(|r| r.queue.as_deref()).collect();
        assert_eq!(names, [Some("12345"), Some("12333")], "no personal queue");
        let q = &b.queues[0];
        assert_eq!((q.waiting, q.longest_wait_ms, q.staffed), (2, 65_400, 2));
        let by = |a: &AgentCounts| (a.get("talking"), a.get("ready"), a.get("logged_out"));
        assert_eq!(by(&q.agents), (1, 1, 0));
        assert_eq!(b.queues[1].agents.get("logged_out"), 1);
        assert_eq!(b.queues[1].agents.get("ready"), 1);
        // Each agent once in the totals, however many queues it is in.
        let t = &b.total;
        assert_eq!((t.waiting, t.longest_wait_ms, t.staffed), (3, 65_400, 2));
        assert_eq!(by(&t.agents), (1, 1, 1));
        let cells: BTreeMap<_, _> = q.cells().into_iter().collect();
        assert_eq!(cells["longest_wait"], "01:05");
        assert_eq!(cells["offered"], "8");
        assert_eq!(cells["abandoned"], "1");
        assert_eq!(cells["service_level"], "75.0%");
        let keys: Vec<_> = q.cells().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, COLUMNS);
        assert_eq!(COLUMNS[3..9], AgentState::NAMES, "the states' columns");
        // A queue without calls today: zeros, and no service level.
        let cells: BTreeMap<_, _> = b.queues[1].cells().into_iter().collect();
        assert_eq!(
            (cells["offered"].as_str(), cells["service_level"].as_str()),
            ("0", "-")
        );
        let cells: BTreeMap<_, _> = t.cells().into_iter().collect();
        assert_eq!(
            (cells["abandoned"].as_str(), cells["service_level"].as_str()),
            ("2", "60.0%")
        );
    }

    #[test]
    fn unavailable_figures_show_as_dashes_and_the_json_says_null() {
        let b = Board::build(&snapshot(), None);
        let cells: BTreeMap<_, _> = b.total.cells().into_iter().collect();
        assert_eq!(cells["offered"], "-");
        assert_eq!(cells["service_level"], "-");
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T02:03:04Z")
            .unwrap()
            .to_utc();
        let j = serde_json::to_value(b.json(at, chrono_tz::Asia::Shanghai)).unwrap();
        assert_eq!(j["at_local"], "10:03:04");
        assert_eq!(j["day"], serde_json::Value::Null);
        assert_eq!(j["total"]["offered"], serde_json::Value::Null);
        assert_eq!(j["queues"][0]["agents"]["talking"], 1);
        assert_eq!(j["queues"][0]["cells"]["waiting"], "2");
    }

    #[test]
    fn boards_differ_only_when_something_shown_does() {
        let a = Board::build(&snapshot(), Some(&today()));
        assert_eq!(a, Board::build(&snapshot(), Some(&today())));
        let mut s = snapshot();
        s.queues[0].longest_wait_ms += 1000;
        assert_ne!(a, Board::build(&s, Some(&today())), "a growing wait");
        let mut s = snapshot();
        s.agents[1].state = "ringing";
        assert_ne!(a, Board::build(&s, Some(&today())), "an agent's state");
        let mut t = today();
        t.total.offered += 1;
        assert_ne!(a, Board::build(&snapshot(), Some(&t)), "today's figures");
    }

    #[test]
    fn waits_as_minutes_and_seconds() {
        assert_eq!(mmss(0), "00:00");
        assert_eq!(mmss(59_999), "00:59");
        assert_eq!(mmss(61_000), "01:01");
        assert_eq!(mmss(6_000_000), "100:00");
    }
}
