//! The QC report of a period (pure): recordings monitored, the average
//! score, averages per team, agent and day, the count in each score band,
//! the most deducted items, and the problem recordings to coach on — as a
//! table for the page and the CLI, as CSV, and as SVG bar charts.
//!
//! Each score counts with the total that stands (a settled dispute's
//! revised total, else the given one). Days are the center's local days.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::QcConfig;
use crate::store::ScoreRow;

/// Count and average of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: String,
    pub count: usize,
    pub average: f64,
}

/// An item often answered "no".
#[derive(Debug, Clone, PartialEq)]
pub struct Deduction {
    pub section: String,
    pub item: String,
    pub times: usize,
    pub points_lost: f64,
}

/// A recording to coach on: auto-failed or scored below `coach_below`.
#[derive(Debug, Clone, PartialEq)]
pub struct Coach {
    pub recording_id: String,
    pub score_id: String,
    pub agent: Option<String>,
    pub total: f64,
    pub auto_failed: bool,
    /// The items lost.
    pub lost: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Distinct recordings scored.
    pub monitored: usize,
    pub scores: usize,
    pub average: Option<f64>,
    pub by_team: Vec<Group>,
    pub by_agent: Vec<Group>,
    pub by_day: Vec<Group>,
    /// Every band of the config, best first, with its count.
    pub bands: Vec<(String, usize)>,
    /// The ten most deducted items, most points lost first.
    pub deducted: Vec<Deduction>,
    pub coach: Vec<Coach>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn groups(map: BTreeMap<String, (usize, f64)>) -> Vec<Group> {
    map.into_iter()
        .map(|(key, (count, sum))| Group {
            key,
            count,
            average: round1(sum / count as f64),
        })
        .collect()
}

/// The report of `scores` (those given in `from`..`to`).
pub fn build(scores: &[ScoreRow], from: DateTime<Utc>, to: DateTime<Utc>, qc: &QcConfig) -> Report {
    let tz: Tz = qc.tz();
    let (mut team, mut agent, mut day) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut bands: Vec<(String, usize)> = qc.bands.iter().map(|b| (b.name.clone(), 0)).collect();
    let mut items: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    let mut recordings = std::collections::BTreeSet::new();
    let mut coach = Vec::new();
    let mut sum = 0.0;
    for s in scores {
        let total = s.effective_total();
        sum += total;
        recordings.insert(s.recording_id.clone());
        let add = |m: &mut BTreeMap<String, (usize, f64)>, k: String| {
            let e = m.entry(k).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += total;
        };
        add(
            &mut team,
            s.team.clone().unwrap_or_else(|| "(no team)".into()),
        );
        add(
            &mut agent,
            s.agent.clone().unwrap_or_else(|| "(no agent)".into()),
        );
        add(
            &mut day,
            s.created_at
                .with_timezone(&tz)
                .format("%Y-%m-%d")
                .to_string(),
        );
        let band = qc.band_of(total);
        if let Some(b) = bands.iter_mut().find(|(n, _)| n == band) {
            b.1 += 1;
        }
        let mut lost = Vec::new();
        for i in s.items.iter().filter(|i| i.answer == "no") {
            let e = items
                .entry((i.section.clone(), i.item.clone()))
                .or_insert((0, 0.0));
            e.0 += 1;
            e.1 += i.weight - i.points;
            lost.push(i.item.clone());
        }
        if s.auto_failed || total < qc.coach_below {
            coach.push(Coach {
                recording_id: s.recording_id.clone(),
                score_id: s.id.clone(),
                agent: s.agent.clone(),
                total,
                auto_failed: s.auto_failed,
                lost,
            });
        }
    }
    let mut deducted: Vec<Deduction> = items
        .into_iter()
        .map(|((section, item), (times, points_lost))| Deduction {
            section,
            item,
            times,
            points_lost,
        })
        .collect();
    deducted.sort_by(|a, b| {
        b.points_lost
            .total_cmp(&a.points_lost)
            .then(b.times.cmp(&a.times))
            .then(a.item.cmp(&b.item))
    });
    deducted.truncate(10);
    coach.sort_by(|a, b| {
        a.total
            .total_cmp(&b.total)
            .then(a.score_id.cmp(&b.score_id))
    });
    Report {
        from,
        to,
        monitored: recordings.len(),
        scores: scores.len(),
        average: (!scores.is_empty()).then(|| round1(sum / scores.len() as f64)),
        by_team: groups(team),
        by_agent: groups(agent),
        by_day: groups(day),
        bands,
        deducted,
        coach,
    }
}

/// One CSV field: quoted when it holds a comma, quote or line end, and
/// defused (a leading `'`) when a spreadsheet would run it as a formula.
pub fn csv_field(s: &str) -> String {
    // A leading = + - @ would run as a formula in a spreadsheet.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl Report {
    /// The report as CSV: `kind,name,count,value,detail`, one line per
    /// figure (summary, team, agent, day, band, item, coach).
    pub fn csv(&self) -> String {
        let mut out = String::from("kind,name,count,value,detail\n");
        let mut line = |kind: &str, name: &str, count: String, value: String, detail: &str| {
            let _ = writeln!(
                out,
                "{kind},{},{count},{value},{}",
                csv_field(name),
                csv_field(detail)
            );
        };
        line(
            "summary",
            "monitored",
            self.monitored.to_string(),
            String::new(),
            "",
        );
        line(
            "summary",
            "average",
            self.scores.to_string(),
            self.average.map(|a| format!("{a:.1}")).unwrap_or_default(),
            "",
        );
        for (kind, list) in [
            ("team", &self.by_team),
            ("agent", &self.by_agent),
            ("day", &self.by_day),
        ] {
            for g in list {
                line(
                    kind,
                    &g.key,
                    g.count.to_string(),
                    format!("{:.1}", g.average),
                    "",
                );
            }
        }
        for (name, n) in &self.bands {
            line("band", name, n.to_string(), String::new(), "");
        }
        for d in &self.deducted {
            line(
                "item",
                &d.item,
                d.times.to_string(),
                format!("{:.1}", d.points_lost),
                &d.section,
            );
        }
        for c in &self.coach {
            line(
                "coach",
                &c.recording_id,
                String::new(),
                format!("{:.1}", c.total),
                &format!(
                    "{}{}{}",
                    c.agent.as_deref().unwrap_or(""),
                    if c.auto_failed { " auto-fail" } else { "" },
                    if c.lost.is_empty() {
                        String::new()
                    } else {
                        format!(" lost: {}", c.lost.join(" "))
                    }
                ),
            );
        }
        out
    }

    /// The report as text for the terminal.
    pub fn text(&self, tz: Tz) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "QC report {} – {}",
            self.from.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            self.to.with_timezone(&tz).format("%Y-%m-%d %H:%M")
        );
        let _ = writeln!(
            s,
            "recordings monitored {}   scores {}   average {}",
            self.monitored,
            self.scores,
            self.average
                .map(|a| format!("{a:.1}"))
                .unwrap_or("—".into())
        );
        for (title, list) in [
            ("team", &self.by_team),
            ("agent", &self.by_agent),
            ("day", &self.by_day),
        ] {
            let _ = writeln!(s, "\n{title:<12} {:>6} {:>8}", "scores", "average");
            for g in list {
                let _ = writeln!(s, "{:<12} {:>6} {:>8.1}", g.key, g.count, g.average);
            }
        }
        let _ = writeln!(s, "\nband         count");
        for (n, c) in &self.bands {
            let _ = writeln!(s, "{n:<12} {c:>5}");
        }
        let _ = writeln!(s, "\nmost deducted items    times  points lost");
        for d in &self.deducted {
            let _ = writeln!(s, "{:<22} {:>5} {:>12.1}", d.item, d.times, d.points_lost);
        }
        let _ = writeln!(s, "\nto coach on (recording, agent, score)");
        for c in &self.coach {
            let _ = writeln!(
                s,
                "{}  {}  {:.1}{}",
                c.recording_id,
                c.agent.as_deref().unwrap_or("—"),
                c.total,
                if c.auto_failed { " auto-fail" } else { "" }
            );
        }
        s
    }
}

/// A horizontal bar chart as SVG: one bar per `(label, value)`, scaled to
/// `max`, the value printed after it.
pub fn bar_chart(title: &str, bars: &[(String, f64)], max: f64) -> String {
    const ROW: f64 = 22.0;
    const LABEL: f64 = 110.0;
    const WIDTH: f64 = 420.0;
    let max = if max > 0.0 { max } else { 1.0 };
    let height = ROW * bars.len().max(1) as f64 + 24.0;
    let esc = crate::web::html::esc;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {height}" role="img" aria-label="{t}"><text x="0" y="14" font-size="13" font-weight="bold">{t}</text>"##,
        w = LABEL + WIDTH + 60.0,
        t = esc(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 24.0 + ROW * i as f64;
        let w = (value / max).clamp(0.0, 1.0) * WIDTH;
        let _ = write!(
            s,
            r##"<text x="0" y="{ty}" font-size="12">{l}</text><rect class="bar" x="{LABEL}" y="{y}" width="{w:.1}" height="{h}" fill="#4a78a8"/><text x="{vx:.1}" y="{ty}" font-size="12">{v}</text>"##,
            ty = y + 14.0,
            l = esc(label),
            h = ROW - 6.0,
            vx = LABEL + w + 4.0,
            v = if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.1}")
            }
        );
    }
    s.push_str("</svg>");
    s
}

/// A horizontal bar chart of several series as SVG: per row one bar per
/// series (colours named in a legend), all scaled to `max`, each value
/// printed after its bar.
pub fn grouped_bar_chart(
    title: &str,
    series: &[&str],
    rows: &[(String, Vec<f64>)],
    max: f64,
) -> String {
    const COLOURS: [&str; 4] = ["#4a78a8", "#d08c2c", "#5a9a5a", "#a05a8a"];
    const BAR: f64 = 12.0;
    const LABEL: f64 = 110.0;
    const WIDTH: f64 = 420.0;
    let max = if max > 0.0 { max } else { 1.0 };
    let n = series.len().max(1) as f64;
    let row = BAR * n + 8.0;
    let top = 40.0;
    let height = top + row * rows.len().max(1) as f64;
    let esc = crate::web::html::esc;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {height}" role="img" aria-label="{t}"><text x="0" y="14" font-size="13" font-weight="bold">{t}</text>"##,
        w = LABEL + WIDTH + 60.0,
        t = esc(title)
    );
    for (i, name) in series.iter().enumerate() {
        let x = LABEL + 120.0 * i as f64;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="22" width="10" height="10" fill="{c}"/><text x="{tx}" y="31" font-size="12">{n}</text>"##,
            c = COLOURS[i % COLOURS.len()],
            tx = x + 14.0,
            n = esc(name)
        );
    }
    for (r, (label, values)) in rows.iter().enumerate() {
        let y0 = top + row * r as f64;
        let _ = write!(
            s,
            r##"<text x="0" y="{ty}" font-size="12">{l}</text>"##,
            ty = y0 + row / 2.0 + 2.0,
            l = esc(label)
        );
        for (i, value) in values.iter().enumerate() {
            let y = y0 + BAR * i as f64;
            let w = (value / max).clamp(0.0, 1.0) * WIDTH;
            let _ = write!(
                s,
                r##"<rect class="bar" x="{LABEL}" y="{y}" width="{w:.1}" height="{h}" fill="{c}"/><text x="{vx:.1}" y="{ty}" font-size="11">{v}</text>"##,
                h = BAR - 2.0,
                c = COLOURS[i % COLOURS.len()],
                vx = LABEL + w + 4.0,
                ty = y + BAR - 3.0,
                v = if value.fract() == 0.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.1}")
                }
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ScoreItemRow, ScoreStatus};

    fn score(id: &str, agent: &str, team: &str, total: f64, day: u32, lost: &[&str]) -> ScoreRow {
        let at = DateTime::parse_from_rfc3339(&format!("2026-12-{day:02}T02:00:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        ScoreRow {
            id: id.into(),
            recording_id: format!("rec-{id}"),
            scorecard: "hotline".into(),
            scorecard_version: 1,
            scorer: "qc1".into(),
            agent: Some(agent.into()),
            queue: Some("12345".into()),
            team: Some(team.into()),
            total,
            auto_failed: total == 0.0,
            status: ScoreStatus::Final,
            final_total: None,
            dispute_until: None,
            created_at: at,
            items: lost
                .iter()
                .map(|i| ScoreItemRow {
                    section: "Opening".into(),
                    item: i.to_string(),
                    answer: "no".into(),
                    weight: 10.0,
                    points: 0.0,
                    auto_fail: false,
                })
                .collect(),
            comments: vec![],
            dispute: None,
        }
    }

    #[test]
    fn figures_per_group_band_item_and_coach_list() {
        let mut revised = score("d", "1002", "B", 50.0, 2, &["greeting"]);
        revised.final_total = Some(85.0);
        let scores = vec![
            score("a", "1001", "A", 95.0, 1, &[]),
            score("b", "1001", "A", 0.0, 1, &["greeting", "close"]),
            score("c", "1002", "B", 70.0, 2, &["greeting"]),
            revised,
        ];
        let from = scores[0].created_at;
        let r = build(&scores, from, from, &QcConfig::default());
        assert_eq!(r.monitored, 4);
        assert_eq!(r.average, Some(62.5));
        assert_eq!(
            r.by_team,
            vec![
                Group {
                    key: "A".into(),
                    count: 2,
                    average: 47.5
                },
                Group {
                    key: "B".into(),
                    count: 2,
                    average: 77.5
                }
            ]
        );
        assert_eq!(r.by_day.len(), 2);
        assert_eq!(
            r.bands,
            vec![
                ("excellent".into(), 1),
                ("good".into(), 1),
                ("pass".into(), 1),
                ("fail".into(), 1)
            ]
        );
        assert_eq!(r.deducted[0].item, "greeting");
        assert_eq!(r.deducted[0].times, 3);
        assert_eq!(r.coach.len(), 1);
        assert_eq!(r.coach[0].recording_id, "rec-b");
        let csv = r.csv();
        assert!(csv.starts_with("kind,name,count,value,detail\nsummary,monitored,4,,\n"));
        assert!(csv.contains("\nteam,A,2,47.5,\n"), "{csv}");
        assert!(csv.contains("\ncoach,rec-b,,0.0,1001 auto-fail lost: greeting close\n"));
        let svg = bar_chart("bands", &[("a<b".into(), 2.0)], 4.0);
        assert!(svg.contains("a&lt;b") && svg.contains(r#"width="210.0""#));
        let svg = grouped_bar_chart(
            "hours",
            &["in", "out"],
            &[("09".into(), vec![4.0, 1.0])],
            4.0,
        );
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert!(svg.contains(r#"width="420.0""#) && svg.contains(r#"width="105.0""#));
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
