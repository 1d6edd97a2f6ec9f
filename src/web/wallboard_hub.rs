//! The wallboard's one source of boards, shared by every viewer.
//!
//! One task ([`Wallboard::run`]) reads the ACD's snapshot every
//! [`POLL`] while at least one stream is open, and publishes the board on a
//! `watch` channel only when it differs from the last one. A `watch` keeps
//! only the newest value: a slow stream skips to it, nothing queues per
//! client and nothing waits for a client. Today's figures come from
//! [`crate::kpi::load`] for the local day (`[report]` time zone) at most
//! once per `[qc.web] wallboard_refresh_secs`, whoever asks (the task, a
//! page, a new stream): never per event. Streams are limited to
//! `wallboard_max_streams` at once, and every stream and the task end on
//! the daemon's shutdown token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::wallboard_state::{Board, TodayFigures};
use crate::call::acd_service::AcdHandle;
use crate::call::WallClock;
use crate::kpi::KpiSettings;
use crate::store::Store;

/// How often the ACD is read while someone watches.
pub const POLL: Duration = Duration::from_secs(1);

/// Why no board (or no stream).
#[derive(Debug, thiserror::Error)]
pub enum WallboardError {
    #[error("the agent queue is not answering (the daemon is stopping)")]
    AcdStopped,
    #[error("too many wallboard streams are open ({0}); try again later")]
    Busy(usize),
    #[error("the daemon is stopping")]
    Stopping,
}

/// A board and when it was read (the daemon's wall clock).
#[derive(Debug, Clone)]
pub struct Stamped {
    pub at: DateTime<Utc>,
    pub board: Board,
}

struct TodayCache {
    read_at: Instant,
    /// `None`: the last read failed.
    figures: Option<TodayFigures>,
}

/// The shared wallboard (in [`crate::http::AppState`]).
pub struct Wallboard {
    acd: AcdHandle,
    store: Store,
    clock: WallClock,
    settings: KpiSettings,
    refresh: Duration,
    today: Mutex<Option<TodayCache>>,
    tx: watch::Sender<Option<Arc<Stamped>>>,
    streams: Arc<Semaphore>,
    max_streams: usize,
    stop: CancellationToken,
}

/// An open stream's hold on the board: its place among the streams, the
/// board it starts with, and the channel of newer ones.
pub struct Subscription {
    pub first: Stamped,
    pub updates: watch::Receiver<Option<Arc<Stamped>>>,
    pub stop: CancellationToken,
    /// Released when the stream is dropped (the client went away).
    pub permit: OwnedSemaphorePermit,
}

impl Wallboard {
    pub fn new(
        acd: AcdHandle,
        store: Store,
        clock: WallClock,
        settings: KpiSettings,
        refresh: Duration,
        max_streams: usize,
        stop: CancellationToken,
    ) -> Arc<Wallboard> {
        Arc::new(Wallboard {
            acd,
            store,
            clock,
            settings,
            refresh,
            today: Mutex::new(None),
            tx: watch::channel(None).0,
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            stop,
        })
    }

    /// The `[report]` time zone the board's day and times are in.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.settings.tz
    }

    /// Today's figures: the cached ones while fresh (and of today), else
    /// read again. One read at a time; callers meanwhile wait for it. A
    /// failed read is logged and kept as "unavailable" until the next
    /// refresh, so a failing database is not asked on every request.
    async fn today(&self) -> Option<TodayFigures> {
        let mut cache = self.today.lock().await;
        let now = self.clock.now();
        let day = now.with_timezone(&self.settings.tz).date_naive();
        if let Some(c) = cache.as_ref() {
            let same_day = c.figures.as_ref().is_none_or(|f| f.day == day);
            if c.read_at.elapsed() < self.refresh && same_day {
                return c.figures.clone();
            }
        }
        let from = crate::qc::local_midnight(day, self.settings.tz);
        let to = crate::qc::local_midnight(day + chrono::Days::new(1), self.settings.tz);
        let figures = match crate::kpi::load(&self.store, &self.settings, from, to, now, None).await
        {
            Ok(k) => Some(TodayFigures::from_kpis(day, k)),
            Err(e) => {
                warn!(error = %e, "wallboard: today's figures not read");
                None
            }
        };
        *cache = Some(TodayCache {
            read_at: Instant::now(),
            figures: figures.clone(),
        });
        figures
    }

    /// The board now: the ACD's snapshot and today's figures.
    pub async fn board(&self) -> Result<Stamped, WallboardError> {
        let snap = self
            .acd
            .snapshot()
            .await
            .map_err(|_| WallboardError::AcdStopped)?;
        let today = self.today().await;
        Ok(Stamped {
            at: self.clock.now(),
            board: Board::build(&snap, today.as_ref()),
        })
    }

    /// A new stream: a place among the streams (else [`WallboardError::Busy`]),
    /// the board now, and the channel of what changes after.
    pub async fn subscribe(&self) -> Result<Subscription, WallboardError> {
        if self.stop.is_cancelled() {
            return Err(WallboardError::Stopping);
        }
        let permit = self
            .streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| WallboardError::Busy(self.max_streams))?;
        // Subscribed before the first board is read: no change in between
        // is missed.
        let updates = self.tx.subscribe();
        let first = self.board().await?;
        Ok(Subscription {
            first,
            updates,
            stop: self.stop.clone(),
            permit,
        })
    }

    /// Publishes `b` unless the board shown is the same.
    fn publish(&self, b: Stamped) {
        self.tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.board == b.board) {
                false
            } else {
                *cur = Some(Arc::new(b));
                true
            }
        });
    }

    /// Reads and publishes the board every [`POLL`] while a stream is
    /// open, until the shutdown token.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if self.tx.receiver_count() == 0 {
                // Nobody watches: forget the last board, so that the next
                // stream's changes are judged against its own first board.
                if self.tx.borrow().is_some() {
                    self.tx.send_replace(None);
                }
                continue;
            }
            match self.board().await {
                Ok(b) => self.publish(b),
                Err(e) => warn!(error = %e, "wallboard: no board"),
            }
        }
    }
}
