//! The QC report page and its CSV (`/qc/report`, `/qc/report.csv`): the
//! scores given in a period (`from`, `to` as local dates, both included;
//! the last seven days by default). A team lead sees the own team only.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Days, Utc};
use serde::Deserialize;

use super::html::{esc, page, url, with_page_headers};
use super::session::Authed;
use super::worklist_page::day_start;
use super::{Permission, WebError, WebState};
use crate::qc::report::{bar_chart, build, Report};

#[derive(Debug, Deserialize, Default)]
pub struct ReportQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

async fn report_of(
    state: &WebState,
    authed: &Authed,
    q: &ReportQuery,
) -> Result<(Report, String, String), WebError> {
    authed.require(Permission::Report)?;
    let tz = state.web.tz;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let from_s = if q.from.trim().is_empty() {
        (today - Days::new(6)).to_string()
    } else {
        q.from.trim().to_string()
    };
    let to_s = if q.to.trim().is_empty() {
        today.to_string()
    } else {
        q.to.trim().to_string()
    };
    let from: DateTime<Utc> = day_start("from", &from_s, 0, tz)?.unwrap_or_default();
    let to: DateTime<Utc> = day_start("to", &to_s, 1, tz)?.unwrap_or_default();
    if from >= to {
        return Err(WebError::BadRequest(
            "`from` must be on or before `to`".into(),
        ));
    }
    let scores: Vec<_> = state
        .store
        .scores_given(from, to, Utc::now())
        .await?
        .into_iter()
        .filter(|s| authed.sees_agent(&state.web, s.agent.as_deref()))
        .collect();
    Ok((build(&scores, from, to, &state.web.qc), from_s, to_s))
}

fn table(s: &mut String, id: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(s, r#"<table id="{id}"><thead><tr>"#);
    for h in head {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
}

pub async fn report(
    State(state): State<WebState>,
    authed: Authed,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let (r, from, to) = report_of(&state, &authed, &q).await?;
    let web = &state.web;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<form class="filters" method="get" action="/qc/report"><label>From 从 <input type="date" name="from" id="r-from" value="{f}"></label> <label>To 到 <input type="date" name="to" id="r-to" value="{t}"></label> <button type="submit" id="show">Show</button> <a id="csv" href="/qc/report.csv?from={fu}&amp;to={tu}">CSV</a></form>
<p id="summary">Recordings monitored 监听录音 <b id="monitored">{m}</b> · scores {n} · average 平均分 <b id="average">{avg}</b></p><div class="cols"><section>"#,
        f = esc(&from),
        t = esc(&to),
        fu = url(&from),
        tu = url(&to),
        m = r.monitored,
        n = r.scores,
        avg = r.average.map(|a| format!("{a:.1}")).unwrap_or("—".into()),
    );
    let bands: Vec<(String, f64)> = r
        .bands
        .iter()
        .map(|(n, c)| (n.clone(), *c as f64))
        .collect();
    let most = bands.iter().map(|b| b.1).fold(0.0, f64::max);
    s.push_str(&bar_chart("Score bands 分数段", &bands, most));
    let days: Vec<(String, f64)> = r
        .by_day
        .iter()
        .map(|g| (g.key.clone(), g.average))
        .collect();
    s.push_str(&bar_chart("Average per day 每日平均分", &days, 100.0));
    s.push_str("</section><section>");
    let groups = |list: &[crate::qc::report::Group], label: &dyn Fn(&str) -> String| {
        list.iter()
            .map(|g| {
                vec![
                    esc(&label(&g.key)),
                    g.count.to_string(),
                    format!("{:.1}", g.average),
                ]
            })
            .collect::<Vec<_>>()
    };
    s.push_str("<h2>Per team 班组</h2>");
    table(
        &mut s,
        "by-team",
        &["Team", "Scores", "Average"],
        groups(&r.by_team, &|k| k.to_string()),
    );
    s.push_str("<h2>Per agent 坐席</h2>");
    table(
        &mut s,
        "by-agent",
        &["Agent", "Scores", "Average"],
        groups(&r.by_agent, &|k| web.agent_label(Some(k))),
    );
    s.push_str("<h2>Per day 每日</h2>");
    table(
        &mut s,
        "by-day",
        &["Day", "Scores", "Average"],
        groups(&r.by_day, &|k| k.to_string()),
    );
    s.push_str("</section></div><h2>Most deducted items 扣分最多</h2>");
    table(
        &mut s,
        "deducted",
        &["Section", "Item", "Times", "Points lost"],
        r.deducted
            .iter()
            .map(|d| {
                vec![
                    esc(&d.section),
                    esc(&d.item),
                    d.times.to_string(),
                    format!("{:.1}", d.points_lost),
                ]
            })
            .collect(),
    );
    s.push_str("<h2>To coach on 需辅导录音</h2>");
    table(
        &mut s,
        "coach",
        &["Recording", "Agent", "Score", "Items lost"],
        r.coach
            .iter()
            .map(|c| {
                vec![
                    format!(
                        r#"<a href="/qc/recordings/{}#score-{}">{}</a>"#,
                        url(&c.recording_id),
                        esc(&c.score_id),
                        esc(&c.recording_id)
                    ),
                    esc(&web.agent_label(c.agent.as_deref())),
                    format!(
                        "{:.1}{}",
                        c.total,
                        if c.auto_failed { " auto-fail" } else { "" }
                    ),
                    esc(&c.lost.join(", ")),
                ]
            })
            .collect(),
    );
    Ok(page("QC report 质检报表", Some(&authed.viewer()), &s))
}

pub async fn report_csv(
    State(state): State<WebState>,
    authed: Authed,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let (r, from, to) = report_of(&state, &authed, &q).await?;
    let mut resp = with_page_headers(r.csv().into_response(), "text/csv; charset=utf-8");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"qc-report-{from}-{to}.csv\""
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
