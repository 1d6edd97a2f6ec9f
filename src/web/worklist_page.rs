//! The worklist: the sampled recordings, newest first, with the rules that
//! picked them and whether they are scored; filters by agent, queue, date,
//! rule and scored or not.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::html::{esc, options, page, url};
use super::session::Authed;
use super::{Permission, WebError, WebState};
use crate::qc::waveform::clock;
use crate::store::WorklistFilter;

#[derive(Debug, Deserialize, Default)]
pub struct WorklistQuery {
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub queue: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub scored: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A form's `YYYY-MM-DD` as the start of that local day (`+ extra_days`).
pub fn day_start(
    field: &str,
    value: &str,
    extra_days: u64,
    tz: chrono_tz::Tz,
) -> Result<Option<DateTime<Utc>>, WebError> {
    let Some(v) = opt(value) else {
        return Ok(None);
    };
    let d = NaiveDate::parse_from_str(&v, "%Y-%m-%d")
        .map_err(|_| WebError::BadRequest(format!("{field}: {v:?} is not a date (YYYY-MM-DD)")))?;
    Ok(Some(crate::qc::local_midnight(
        d + chrono::Days::new(extra_days),
        tz,
    )))
}

pub async fn worklist(
    State(state): State<WebState>,
    authed: Authed,
    Query(q): Query<WorklistQuery>,
) -> Result<Response, WebError> {
    authed.require(Permission::Listen)?;
    let web = &state.web;
    let tz = web.tz;
    let scored = match q.scored.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let filter = WorklistFilter {
        agent: opt(&q.agent),
        queue: opt(&q.queue),
        from: day_start("from", &q.from, 0, tz)?,
        to: day_start("to", &q.to, 1, tz)?,
        rule: opt(&q.rule),
        scored,
        limit: 500,
    };
    let rows: Vec<_> = state
        .store
        .worklist(filter)
        .await?
        .into_iter()
        .filter(|r| authed.sees_agent(web, r.agent.as_deref()))
        .collect();

    let agents: Vec<(String, String)> = std::iter::once((String::new(), "all".to_string()))
        .chain(
            web.agents
                .now()
                .iter()
                .filter(|(id, _)| authed.sees_agent(web, Some(id)))
                .map(|(id, _)| (id.clone(), web.agent_label(Some(id)))),
        )
        .collect();
    let scored_opts = [
        ("", "all"),
        ("no", "not scored 未评分"),
        ("yes", "scored 已评分"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<form class="filters" method="get" action="/qc/">
<label>Agent 坐席 <select name="agent" id="f-agent">{agents}</select></label>
<label>Queue 队列 <input name="queue" id="f-queue" value="{queue}" size="8"></label>
<label>From 从 <input name="from" id="f-from" type="date" value="{from}"></label>
<label>To 到 <input name="to" id="f-to" type="date" value="{to}"></label>
<label>Rule 规则 <input name="rule" id="f-rule" value="{rule}" size="12"></label>
<label>Scored <select name="scored" id="f-scored">{scored}</select></label>
<button type="submit" id="filter">Filter 筛选</button></form>
<p id="count">{n} recording(s)</p>
<table id="worklist"><thead><tr><th>Time 时间</th><th>Agent 坐席</th><th>Queue</th><th>Caller 来电</th><th>Length 时长</th><th>Picked by 抽检规则</th><th>Scores</th></tr></thead><tbody>"#,
        agents = options(&agents, Some(q.agent.as_str())),
        queue = esc(&q.queue),
        from = esc(&q.from),
        to = esc(&q.to),
        rule = esc(&q.rule),
        scored = options(&scored_opts, Some(q.scored.as_str())),
        n = rows.len(),
    );
    for r in &rows {
        let picks: Vec<String> = r
            .picks
            .iter()
            .map(|(rule, detail)| match detail {
                Some(d) => format!("<b>{}</b>: {}", esc(rule), esc(d)),
                None => format!("<b>{}</b>", esc(rule)),
            })
            .collect();
        let _ = write!(
            s,
            r#"<tr class="rec" data-id="{id}"><td><a href="/qc/recordings/{uid}">{at}</a></td><td>{agent}</td><td>{queue}</td><td>{caller}</td><td>{len}</td><td>{picks}</td><td>{scores}</td></tr>"#,
            id = esc(&r.recording_id),
            uid = url(&r.recording_id),
            at = r.started_at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            agent = esc(&web.agent_label(r.agent.as_deref())),
            queue = esc(r.queue.as_deref().unwrap_or("—")),
            caller = esc(r.caller.as_deref().unwrap_or("—")),
            len = r
                .duration_ms
                .map(|ms| clock(ms.max(0) as u64))
                .unwrap_or_else(|| "—".into()),
            picks = picks.join("<br>"),
            scores = r.scores,
        );
    }
    s.push_str("</tbody></table>");
    Ok(page("Worklist 待检录音", Some(&authed.viewer()), &s))
}
