//! Live monitoring from the QC pages (同步监听): the agents' calls in
//! progress, and a button per mode — listen silently, whisper to the agent,
//! barge in — that makes the daemon ring the user's softphone (the user's
//! `extension`) and join it to the call. Every start is audited (by the
//! monitor itself, `crate::call::monitor`, however it is started).

use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::info;

use super::html::{esc, page, url};
use super::session::{Authed, Posted};
use super::{Permission, WebError, WebState};
use crate::call::monitor::{MonitorMode, MonitorRequest};

#[derive(Debug, Deserialize, Default)]
pub struct LiveQuery {
    #[serde(default)]
    started: String,
}

const MODES: [(&str, &str); 3] = [
    ("listen", "Listen 监听"),
    ("whisper", "Whisper 耳语"),
    ("barge", "Barge in 强插"),
];

pub async fn live(
    State(state): State<WebState>,
    authed: Authed,
    Query(q): Query<LiveQuery>,
) -> Result<Response, WebError> {
    authed.require(Permission::Monitor)?;
    let web = &state.web;
    let mut s = String::new();
    if !q.started.is_empty() {
        let _ = write!(
            s,
            r#"<p class="notice" id="notice">Your softphone is ringing ({}): answer it to join.</p>"#,
            esc(&q.started)
        );
    }
    match &authed.user.extension {
        Some(ext) => {
            let _ = write!(s, "<p>The daemon rings your softphone, extension <b>{}</b>.</p>", esc(ext));
        }
        None => s.push_str(
            r#"<p class="error">You have no softphone extension: ask the administrator (<code>hotline user add … --extension</code>).</p>"#,
        ),
    }
    s.push_str(r#"<table id="live"><thead><tr><th>Agent 坐席</th><th>Queue</th><th>Call</th><th></th></tr></thead><tbody>"#);
    let csrf = esc(&authed.session.csrf);
    for c in state
        .live
        .all()
        .into_iter()
        .filter(|c| authed.sees_agent(web, Some(&c.agent)))
    {
        let _ = write!(
            s,
            r#"<tr data-agent="{a}"><td>{label}</td><td>{q}</td><td>{call}</td><td>"#,
            a = esc(&c.agent),
            label = esc(&web.agent_label(Some(&c.agent))),
            q = esc(c.queue.as_deref().unwrap_or("—")),
            call = esc(&c.call_id),
        );
        for (mode, label) in MODES {
            let _ = write!(
                s,
                r#"<form method="post" action="/qc/live/{a}/{mode}" style="display:inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="{mode}">{label}</button></form> "#,
                a = url(&c.agent),
            );
        }
        s.push_str("</td></tr>");
    }
    s.push_str("</tbody></table>");
    Ok(page("Live calls 实时通话", Some(&authed.viewer()), &s))
}

pub async fn start(
    State(state): State<WebState>,
    Path((agent, mode)): Path<(String, String)>,
    Posted { authed, .. }: Posted,
) -> Result<Response, WebError> {
    authed.require(Permission::Monitor)?;
    let mode: MonitorMode = mode
        .parse()
        .map_err(|e: crate::call::monitor::UnknownMode| WebError::NotFound(e.to_string()))?;
    if !authed.sees_agent(&state.web, Some(&agent)) {
        return Err(WebError::NotFound(format!(
            "no live call of agent {agent:?}"
        )));
    }
    let extension = authed
        .user
        .extension
        .clone()
        .ok_or_else(|| WebError::Conflict("you have no softphone extension to ring".into()))?;
    let call_id = state
        .monitor
        .start(MonitorRequest {
            agent: agent.clone(),
            extension,
            mode,
            by: authed.user.name.clone(),
        })
        .await
        .map_err(|e| WebError::Conflict(e.to_string()))?;
    info!(user = %authed.user.name, %agent, ?mode, "QC live monitoring started");
    Ok(Redirect::to(&format!("/qc/live?started={}", url(&call_id))).into_response())
}
