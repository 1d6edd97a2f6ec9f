//! `GET /api/events/stream?call_id=&agent=&kind=`: the queue events as they
//! happen, as Server-Sent Events, for agent desktops and the center's
//! ticket system. Each event is `event: queue_event`, `id:` its uid, and
//! `data:` the event as `GET /api/events` shows it. The filters match
//! exactly, like `GET /api/events`'s. An event is streamed when it is
//! submitted, before the record writer has it in the database. A subscriber that falls more than
//! 1,024 events behind gets `event: lagged` with the number it missed (the
//! log at `GET /api/events` has them all) and goes on. A keep-alive comment
//! every 15 s; at most [`MAX_STREAMS`] streams at once (then 503); streams
//! end when the daemon stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};

use super::agents::{event_json, non_empty};
use super::{ApiError, AppState};
use crate::store::QueueEventRow;

/// Streams open at once, at most.
pub const MAX_STREAMS: usize = 64;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/events/stream", get(stream))
}

/// The limit on open streams (one per daemon).
pub fn stream_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_STREAMS))
}

/// The query, and the filter it is (an empty value matches all).
#[derive(Deserialize)]
struct Filter {
    call_id: Option<String>,
    agent: Option<String>,
    kind: Option<String>,
}

impl Filter {
    fn normalized(self) -> Filter {
        Filter {
            call_id: non_empty(self.call_id),
            agent: non_empty(self.agent),
            kind: non_empty(self.kind),
        }
    }

    fn matches(&self, e: &QueueEventRow) -> bool {
        let is = |want: &Option<String>, got: &Option<String>| {
            want.as_ref().is_none_or(|w| got.as_ref() == Some(w))
        };
        is(&self.call_id, &e.call_id)
            && is(&self.agent, &e.agent)
            && self.kind.as_ref().is_none_or(|k| *k == e.kind)
    }
}

struct Feed {
    rx: broadcast::Receiver<QueueEventRow>,
    filter: Filter,
    stop: tokio_util::sync::CancellationToken,
    /// Held while the stream is open.
    _slot: OwnedSemaphorePermit,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Feed)> {
        loop {
            let got = tokio::select! {
                got = self.rx.recv() => got,
                _ = self.stop.cancelled() => return None,
            };
            let event = match got {
                Ok(e) if self.filter.matches(&e) => Event::default()
                    .event("queue_event")
                    .id(e.uid.clone())
                    .data(event_json(&e).to_string()),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), self));
        }
    }
}

async fn stream(
    State(state): State<AppState>,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let slot = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::unavailable(format!(
                "{MAX_STREAMS} event streams are open already; try again later"
            ))
        })?;
    let feed = Feed {
        rx: state.calls.records.subscribe_events(),
        filter: q.normalized(),
        stop: state.stop.clone(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
