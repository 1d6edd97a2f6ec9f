//! The center's KPIs (`/qc/kpi`, `/qc/kpi.csv`): the figures of a period
//! (`from`, `to` as local dates, both included; the last seven days by
//! default) and optionally one `queue`, as tables and SVG bar charts (per
//! hour offered and answered, per day the service level). Supervisors and
//! administrators see every agent; a team lead the center's queue, hour
//! and day figures and the own team's agents only. Definitions:
//! [`crate::kpi`].

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{Days, Utc};
use serde::Deserialize;

use super::html::{esc, options, page, url, with_page_headers};
use super::session::Authed;
use super::{Permission, WebError, WebState};
use crate::kpi::render::{agent_cells, call_cells, label, pct, secs, AGENT_HEAD, CALL_HEAD};
use crate::kpi::{day_period, Group, Kpis};
use crate::qc::report::{bar_chart, grouped_bar_chart};

#[derive(Debug, Deserialize, Default)]
pub struct KpiQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    queue: String,
}

struct Shown {
    kpis: Kpis,
    from: String,
    to: String,
    queue: Option<String>,
}

async fn kpis_of(state: &WebState, authed: &Authed, q: &KpiQuery) -> Result<Shown, WebError> {
    authed.require(Permission::Kpi)?;
    let settings = state.web.kpi;
    let today = Utc::now().with_timezone(&settings.tz).date_naive();
    let or = |v: &str, d: String| {
        if v.trim().is_empty() {
            d
        } else {
            v.trim().to_string()
        }
    };
    let from = or(&q.from, (today - Days::new(6)).to_string());
    let to = or(&q.to, today.to_string());
    let (from_t, to_t) = day_period(&from, &to, settings.tz, "").map_err(WebError::BadRequest)?;
    let queue = Some(q.queue.trim().to_string()).filter(|s| !s.is_empty());
    let mut kpis = crate::kpi::load(
        &state.store,
        &settings,
        from_t,
        to_t,
        Utc::now(),
        queue.as_deref(),
    )
    .await?;
    kpis.retain_agents(|a| authed.sees_agent(&state.web, Some(a)));
    Ok(Shown {
        kpis,
        from,
        to,
        queue,
    })
}

fn table(s: &mut String, id: &str, head: &[&str], rows: Vec<(String, Vec<String>)>) {
    let _ = write!(s, r#"<table id="{id}"><thead><tr>"#);
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for (key, cells) in rows {
        let _ = write!(s, r#"<tr data-key="{}">"#, esc(&key));
        for c in cells {
            let _ = write!(s, "<td>{}</td>", esc(&c));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
}

fn call_rows(kind: &str, list: &[Group]) -> Vec<(String, Vec<String>)> {
    list.iter()
        .map(|g| {
            let mut cells = vec![label(kind, &g.key)];
            cells.extend(call_cells(&g.figures));
            (g.key.clone(), cells)
        })
        .collect()
}

pub async fn kpi(
    State(state): State<WebState>,
    authed: Authed,
    Query(q): Query<KpiQuery>,
) -> Result<Response, WebError> {
    let Shown {
        kpis: k,
        from,
        to,
        queue,
    } = kpis_of(&state, &authed, &q).await?;
    let web = &state.web;
    let mut queues = vec![(String::new(), "All queues 全部".to_string())];
    queues.extend(k.all_queues.iter().map(|q| (q.clone(), q.clone())));
    if let Some(q) = &queue {
        if !k.all_queues.contains(q) {
            queues.push((q.clone(), q.clone()));
        }
    }
    let t = &k.total;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<form class="filters" method="get" action="/qc/kpi"><label>From 从 <input type="date" name="from" id="k-from" value="{f}"></label> <label>To 到 <input type="date" name="to" id="k-to" value="{to}"></label> <label>Queue 队列 <select name="queue" id="k-queue">{qo}</select></label> <button type="submit" id="show">Show</button> <a id="csv" href="/qc/kpi.csv?from={fu}&amp;to={tu}&amp;queue={qu}">CSV</a></form>
<p id="period">{heading}</p>
<p id="summary">Offered 呼入 <b id="offered">{offered}</b> · answered 接通 <b id="answered">{answered}</b> · answer rate 接通率 <b id="answer-rate">{ar}</b> · service level 服务水平 <b id="service-level">{sl}</b> · ASA 平均排队 <b id="asa">{asa} s</b> · abandon rate 放弃率 <b id="abandon-rate">{ab}</b> (short abandons <b id="short-abandoned">{short}</b>) · AHT 平均处理 <b id="aht">{aht} s</b> · ACW 话后处理 <b id="acw">{acw} s</b> · occupancy 占用率 <b id="occupancy">{occ}</b> · satisfaction 满意率 <b id="satisfaction">{sat}</b> · FCR 一次性解决率 <b id="fcr">{fcr}</b></p>
<div class="cols"><section>"#,
        f = esc(&from),
        to = esc(&to),
        qo = options(&queues, Some(queue.as_deref().unwrap_or(""))),
        fu = url(&from),
        tu = url(&to),
        qu = url(queue.as_deref().unwrap_or("")),
        heading = esc(&k.heading()),
        offered = t.offered,
        answered = t.answered,
        ar = pct(t.answer_rate()),
        sl = pct(t.service_level()),
        asa = secs(t.asa_ms()),
        ab = pct(t.abandon_rate()),
        short = t.short_abandoned,
        aht = secs(t.aht_ms()),
        acw = secs(t.acw_ms()),
        occ = pct(t.occupancy()),
        sat = pct(t.satisfaction()),
        fcr = pct(t.fcr()),
    );
    let hours: Vec<(String, Vec<f64>)> = k
        .hours
        .iter()
        .map(|g| {
            (
                label("hour", &g.key),
                vec![g.figures.offered as f64, g.figures.answered as f64],
            )
        })
        .collect();
    let most = k
        .hours
        .iter()
        .map(|g| g.figures.offered as f64)
        .fold(0.0, f64::max);
    s.push_str(&grouped_bar_chart(
        "Per hour 每小时: offered 呼入 / answered 接通",
        &["offered 呼入", "answered 接通"],
        &hours,
        most,
    ));
    s.push_str("</section><section>");
    let days: Vec<(String, f64)> = k
        .days
        .iter()
        .map(|g| {
            (
                g.key.clone(),
                (g.figures.service_level().unwrap_or(0.0) * 1000.0).round() / 10.0,
            )
        })
        .collect();
    s.push_str(&bar_chart(
        &format!(
            "Service level per day 每日服务水平 (% within {} s)",
            k.settings.service_level_secs
        ),
        &days,
        100.0,
    ));
    s.push_str("</section></div>");
    let mut head = vec!["Queue"];
    head.extend(CALL_HEAD);
    let mut rows = vec![("total".to_string(), {
        let mut c = vec!["total 合计".to_string()];
        c.extend(call_cells(&k.total));
        c
    })];
    rows.extend(call_rows("queue", &k.queues));
    s.push_str("<h2>Per queue 队列</h2>");
    table(&mut s, "kpi-queues", &head, rows);
    s.push_str("<h2>Per agent 坐席</h2>");
    let mut head = vec!["Agent"];
    head.extend(AGENT_HEAD);
    table(
        &mut s,
        "kpi-agents",
        &head,
        k.agents
            .iter()
            .map(|g| {
                let mut c = vec![web.agent_label(Some(&g.key))];
                c.extend(agent_cells(&g.figures));
                (g.key.clone(), c)
            })
            .collect(),
    );
    s.push_str("<h2>Per hour 每小时</h2>");
    let mut head = vec!["Hour"];
    head.extend(CALL_HEAD);
    table(&mut s, "kpi-hours", &head, call_rows("hour", &k.hours));
    s.push_str("<h2>Per day 每日</h2>");
    let mut head = vec!["Day"];
    head.extend(CALL_HEAD);
    table(&mut s, "kpi-days", &head, call_rows("day", &k.days));
    Ok(page("KPIs 话务指标", Some(&authed.viewer()), &s))
}

pub async fn kpi_csv(
    State(state): State<WebState>,
    authed: Authed,
    Query(q): Query<KpiQuery>,
) -> Result<Response, WebError> {
    let shown = kpis_of(&state, &authed, &q).await?;
    let mut resp = with_page_headers(shown.kpis.csv().into_response(), "text/csv; charset=utf-8");
    // Dates checked above: digits and dashes only.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"kpi-{}-{}.csv\"",
        shown.from, shown.to
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
