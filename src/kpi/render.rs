//! The KPIs as an aligned text table, CSV (one row per group) and JSON.
//! Ratios are rounded here, once: percentages to 0.1 in the table,
//! fractions to 4 places in CSV; JSON carries them unrounded.

use std::fmt::Write;

use serde_json::{json, Value};

use super::{Figures, Group, Kpis};
use crate::qc::report::csv_field;

/// `0.625` → `62.5%`; `-` for none.
pub fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// Milliseconds as seconds to 0.1; `-` for none.
pub fn secs(ms: Option<f64>) -> String {
    ms.map(|v| format!("{:.1}", v / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// Milliseconds as `H:MM:SS`.
pub fn hms(ms: i64) -> String {
    let s = (ms + 500) / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn num(x: Option<f64>, places: usize) -> String {
    x.map(|v| format!("{v:.places$}")).unwrap_or_default()
}

/// The label of a group key: hours as `09:00`.
pub fn label(kind: &str, key: &str) -> String {
    if kind == "hour" {
        format!("{key}:00")
    } else {
        key.to_string()
    }
}

/// Column heads of the call figures (total, queue, hour, day).
pub const CALL_HEAD: [&str; 14] = [
    "offered",
    "answered",
    "answer%",
    "SL%",
    "ASA s",
    "abandoned",
    "short",
    "abandon%",
    "overflow",
    "AHT s",
    "ACW s",
    "CSAT%",
    "score",
    "FCR%",
];

/// The call figures of a group, as [`CALL_HEAD`].
pub fn call_cells(f: &Figures) -> Vec<String> {
    vec![
        f.offered.to_string(),
        f.answered.to_string(),
        pct(f.answer_rate()),
        pct(f.service_level()),
        secs(f.asa_ms()),
        f.abandoned.to_string(),
        f.short_abandoned.to_string(),
        pct(f.abandon_rate()),
        f.overflowed.to_string(),
        secs(f.aht_ms()),
        secs(f.acw_ms()),
        pct(f.satisfaction()),
        score(f.mean_score()),
        pct(f.fcr()),
    ]
}

/// Column heads of the agent figures.
pub const AGENT_HEAD: [&str; 10] = [
    "answered",
    "AHT s",
    "ACW s",
    "staffed",
    "paused",
    "occupancy",
    "surveys",
    "CSAT%",
    "score",
    "FCR%",
];

/// The figures of an agent, as [`AGENT_HEAD`].
pub fn agent_cells(f: &Figures) -> Vec<String> {
    vec![
        f.answered.to_string(),
        secs(f.aht_ms()),
        secs(f.acw_ms()),
        hms(f.staffed_ms),
        hms(f.paused_ms),
        pct(f.occupancy()),
        f.surveys.to_string(),
        pct(f.satisfaction()),
        score(f.mean_score()),
        pct(f.fcr()),
    ]
}

/// A mean score to 0.01; `-` for none.
pub fn score(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// Rows as aligned text: the first column left, the others right.
fn aligned(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i] - c.chars().count());
            if i == 0 {
                l.push_str(c);
                l.push_str(&pad);
            } else {
                l.push_str("  ");
                l.push_str(&pad);
                l.push_str(c);
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    s
}

impl Kpis {
    fn groups(&self) -> [(&'static str, &[Group]); 4] {
        [
            ("queue", &self.queues),
            ("agent", &self.agents),
            ("hour", &self.hours),
            ("day", &self.days),
        ]
    }

    /// The period line: local times, thresholds, the queue filter.
    pub fn heading(&self) -> String {
        let tz = self.settings.tz;
        format!(
            "KPIs {} – {} ({tz}), service level {} s, short abandon < {} s, repeat calls within {} days{}",
            self.from.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            self.to.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            self.settings.service_level_secs,
            self.settings.short_abandon_secs,
            self.settings.repeat_days,
            match &self.queue {
                Some(q) => format!(", queue {q}"),
                None => String::new(),
            }
        )
    }

    /// The KPIs as aligned text for the terminal.
    pub fn text(&self) -> String {
        let mut s = self.heading();
        s.push_str("\n\n");
        for (kind, title, list) in [
            ("queue", "queue", &self.queues),
            ("hour", "hour", &self.hours),
            ("day", "day", &self.days),
        ] {
            let mut head = vec![title];
            head.extend(CALL_HEAD);
            let mut rows: Vec<Vec<String>> = Vec::new();
            if kind == "queue" {
                let mut r = vec!["total".to_string()];
                r.extend(call_cells(&self.total));
                rows.push(r);
            }
            for g in list {
                let mut r = vec![label(kind, &g.key)];
                r.extend(call_cells(&g.figures));
                rows.push(r);
            }
            s.push_str(&aligned(&head, &rows));
            s.push('\n');
        }
        let mut head = vec!["agent"];
        head.extend(AGENT_HEAD);
        let mut rows = Vec::new();
        let mut r = vec!["total".to_string()];
        r.extend(agent_cells(&self.total));
        rows.push(r);
        for g in &self.agents {
            let mut r = vec![g.key.clone()];
            r.extend(agent_cells(&g.figures));
            rows.push(r);
        }
        s.push_str(&aligned(&head, &rows));
        s
    }

    /// The KPIs as CSV: one row per group (`group` = total, queue, agent,
    /// hour, day; `key` its name), counts, seconds to 0.1, ratios as
    /// fractions to 4 places; empty where a ratio has no denominator.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "group,key,offered,answered,answer_rate,service_level,asa_secs,abandoned,\
             short_abandoned,abandon_rate,overflowed,aht_secs,acw_secs,staffed_secs,paused_secs,\
             occupancy,surveys,satisfaction,mean_score,fcr_calls,fcr_resolved,fcr\n",
        );
        let mut row = |group: &str, key: &str, f: &Figures| {
            let s = |ms: Option<f64>| num(ms.map(|v| v / 1000.0), 1);
            let _ = writeln!(
                out,
                "{group},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(key),
                f.offered,
                f.answered,
                num(f.answer_rate(), 4),
                num(f.service_level(), 4),
                s(f.asa_ms()),
                f.abandoned,
                f.short_abandoned,
                num(f.abandon_rate(), 4),
                f.overflowed,
                s(f.aht_ms()),
                s(f.acw_ms()),
                (f.staffed_ms + 500) / 1000,
                (f.paused_ms + 500) / 1000,
                num(f.occupancy(), 4),
                f.surveys,
                num(f.satisfaction(), 4),
                num(f.mean_score(), 2),
                f.fcr_calls,
                f.fcr_resolved,
                num(f.fcr(), 4),
            );
        };
        row("total", "", &self.total);
        for (kind, list) in self.groups() {
            for g in list {
                row(kind, &g.key, &g.figures);
            }
        }
        out
    }

    /// The KPIs as JSON: `period`, `settings`, `queue`, `total`, and
    /// `queues`, `agents`, `hours`, `days` (arrays of objects with `key`).
    /// Ratios unrounded (null without a denominator), times in seconds.
    pub fn json(&self) -> Value {
        let tz = self.settings.tz;
        let list = |l: &[Group]| {
            l.iter()
                .map(|g| {
                    let mut v = figures_json(&g.figures);
                    v["key"] = json!(g.key);
                    v
                })
                .collect::<Vec<_>>()
        };
        json!({
            "period": {
                "from": self.from.with_timezone(&tz).to_rfc3339(),
                "to": self.to.with_timezone(&tz).to_rfc3339(),
                "timezone": tz.name(),
            },
            "settings": {
                "service_level_secs": self.settings.service_level_secs,
                "short_abandon_secs": self.settings.short_abandon_secs,
                "repeat_days": self.settings.repeat_days,
            },
            "queue": self.queue,
            "total": figures_json(&self.total),
            "queues": list(&self.queues),
            "agents": list(&self.agents),
            "hours": list(&self.hours),
            "days": list(&self.days),
        })
    }
}

fn figures_json(f: &Figures) -> Value {
    let s = |ms: Option<f64>| ms.map(|v| v / 1000.0);
    json!({
        "offered": f.offered,
        "answered": f.answered,
        "answered_in_time": f.answered_in_time,
        "abandoned": f.abandoned,
        "short_abandoned": f.short_abandoned,
        "overflowed": f.overflowed,
        "answer_rate": f.answer_rate(),
        "service_level": f.service_level(),
        "abandon_rate": f.abandon_rate(),
        "asa_secs": s(f.asa_ms()),
        "aht_secs": s(f.aht_ms()),
        "acw_secs": s(f.acw_ms()),
        "talk_secs": f.talk_ms as f64 / 1000.0,
        "wrap_up_secs": f.wrap_up_ms as f64 / 1000.0,
        "staffed_secs": f.staffed_ms as f64 / 1000.0,
        "paused_secs": f.paused_ms as f64 / 1000.0,
        "handled_secs": f.handled_ms as f64 / 1000.0,
        "occupancy": f.occupancy(),
        "surveys": f.surveys,
        "satisfied": f.satisfied,
        "satisfaction": f.satisfaction(),
        "mean_score": f.mean_score(),
        "fcr_calls": f.fcr_calls,
        "fcr_resolved": f.fcr_resolved,
        "fcr": f.fcr(),
    })
}
