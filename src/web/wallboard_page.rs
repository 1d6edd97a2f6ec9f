//! The wallboard (`/qc/wallboard`): per queue the callers waiting, the
//! longest wait, the agents staffed and by state, and today's offered,
//! answered and abandoned calls and service level, with the totals. The
//! page is whole without JavaScript (server-rendered, and it reloads itself
//! every 30 s in a `<noscript>`); with it, `wallboard.js` follows
//! `/qc/wallboard/events`, a Server-Sent Events stream that sends the
//! board at once and then whenever it changes, and updates the cells in
//! place. The boards come from [`super::wallboard_hub`]; what they hold,
//! from [`super::wallboard_state`].

use std::convert::Infallible;
use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::html::{esc, page, with_page_headers};
use super::session::Authed;
use super::wallboard_hub::{Stamped, Subscription, WallboardError};
use super::wallboard_state::{local_time, Board, Row, COLUMNS};
use super::{Permission, WebError, WebState};

/// A comment on an idle stream this often keeps proxies from closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The browser reconnects this long after a stream ends.
const RETRY: Duration = Duration::from_secs(3);

impl From<WallboardError> for WebError {
    fn from(e: WallboardError) -> WebError {
        WebError::Unavailable(e.to_string())
    }
}

/// Column heads, in [`COLUMNS`] order.
const HEADS: [&str; COLUMNS.len()] = [
    "Waiting 排队",
    "Longest wait 最长等待",
    "Staffed 在岗",
    "Ready 空闲",
    "Ringing 振铃",
    "Talking 通话",
    "Wrap-up 话后",
    "Paused 小休",
    "Logged out 未登录",
    "Offered today 今日呼入",
    "Answered 接通",
    "Abandoned 放弃",
    "Service level 服务水平",
];

fn row(s: &mut String, r: &Row) {
    let key = r.queue.as_deref().unwrap_or("");
    let label = r.queue.as_deref().unwrap_or("Total 合计");
    let _ = write!(
        s,
        r#"<tr data-queue="{}"><th>{}</th>"#,
        esc(key),
        esc(label)
    );
    for (f, text) in r.cells() {
        let _ = write!(s, r#"<td data-f="{f}">{}</td>"#, esc(&text));
    }
    s.push_str("</tr>");
}

/// The page's body for `b`, read at `at`.
fn body(b: &Board, at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    let mut s = String::new();
    s.push_str(
        r#"<noscript><meta http-equiv="refresh" content="30"><p>Without JavaScript this page reloads every 30 s.</p></noscript>"#,
    );
    let _ = write!(
        s,
        r#"<p id="wb-status" data-state="static">Updated 更新于 <b id="wb-at">{at}</b> · <span id="wb-conn">not live 未连接</span></p>"#,
        at = esc(&local_time(at, tz)),
    );
    match b.today {
        Some((day, secs)) => {
            let _ = write!(
                s,
                r#"<p id="wb-today">Today 今日 <b id="wb-day">{day}</b>: service level = calls answered within <b>{secs} s</b> ÷ calls offered (ended calls, refreshed every few seconds).</p>"#
            );
        }
        None => s.push_str(
            r#"<p id="wb-today" class="error">Today's figures cannot be read from the database now.</p>"#,
        ),
    }
    s.push_str(
        r#"<table id="wallboard" data-events="/qc/wallboard/events"><thead><tr><th>Queue 队列</th>"#,
    );
    for h in HEADS {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in &b.queues {
        row(&mut s, r);
    }
    s.push_str("</tbody><tfoot>");
    row(&mut s, &b.total);
    s.push_str(r#"</tfoot></table><script src="/qc/static/wallboard.js" defer></script>"#);
    s
}

pub async fn wallboard(
    State(state): State<WebState>,
    authed: Authed,
) -> Result<Response, WebError> {
    authed.require(Permission::Wallboard)?;
    let Stamped { at, board } = state.wallboard.board().await?;
    let s = body(&board, at, state.wallboard.tz());
    Ok(page("Wallboard 实时看板", Some(&authed.viewer()), &s))
}

/// The SSE event of a board.
fn event(s: &Stamped, tz: chrono_tz::Tz) -> Event {
    match serde_json::to_string(&s.board.json(s.at, tz)) {
        Ok(json) => Event::default().event("board").data(json),
        Err(e) => {
            tracing::error!(error = %e, "wallboard: board not encoded");
            Event::default().comment("board not encoded")
        }
    }
}

/// One stream's state between events.
struct Feed {
    sub: Subscription,
    /// The board this stream sent last; `None` before the first.
    last: Option<Board>,
    tz: chrono_tz::Tz,
}

impl Feed {
    /// The next event: the first board at once, then each board that
    /// differs from the one sent last; `None` (the end) on shutdown.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Feed)> {
        if self.last.is_none() {
            let ev = event(&self.sub.first, self.tz).retry(RETRY);
            self.last = Some(self.sub.first.board.clone());
            return Some((Ok(ev), self));
        }
        loop {
            tokio::select! {
                _ = self.sub.stop.cancelled() => return None,
                r = self.sub.updates.changed() => r.ok()?,
            }
            let newest = self.sub.updates.borrow_and_update().clone();
            if let Some(s) = newest {
                if self.last.as_ref() != Some(&s.board) {
                    let ev = event(&s, self.tz);
                    self.last = Some(s.board.clone());
                    return Some((Ok(ev), self));
                }
            }
        }
    }
}

pub async fn events(State(state): State<WebState>, authed: Authed) -> Result<Response, WebError> {
    authed.require(Permission::Wallboard)?;
    let sub = state.wallboard.subscribe().await?;
    let feed = Feed {
        sub,
        last: None,
        tz: state.wallboard.tz(),
    };
    let stream = futures_util::stream::unfold(feed, Feed::next);
    let r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let mut r = with_page_headers(r, "text/event-stream");
    // No buffering by a reverse proxy in front (nginx).
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::acd_service::{AcdSnapshot, QueueView};

    #[test]
    fn the_page_has_a_cell_per_column_per_queue_and_escapes_names() {
        let snap = AcdSnapshot {
            agents: vec![],
            queues: vec![QueueView {
                name: "<q>".into(),
                strategy: "longest_idle",
                waiting: 1,
                callbacks: 0,
                staffed: 0,
                longest_wait_ms: 75_000,
            }],
        };
        let b = Board::build(&snap, None);
        let s = body(&b, chrono::Utc::now(), chrono_tz::Asia::Shanghai);
        assert!(
            s.contains(r#"<tr data-queue="&lt;q&gt;"><th>&lt;q&gt;</th>"#),
            "{s}"
        );
        assert!(s.contains(r#"<td data-f="longest_wait">01:15</td>"#), "{s}");
        assert_eq!(s.matches("<td data-f=").count(), 2 * COLUMNS.len());
        assert!(s.contains(r#"<tr data-queue=""><th>Total"#));
        assert!(s.contains("cannot be read"));
    }
}
