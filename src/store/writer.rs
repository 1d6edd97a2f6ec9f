//! The call-record writer: call handling submits finished records to a
//! [`RecordSink`] and goes on; one task writes them to the database in
//! batches, off the call and media path.
//!
//! Guarantees:
//! - **Back-pressure, never loss**: the channel is bounded; when it is full
//!   `submit` waits. A failed write is retried with exponential backoff
//!   (logged) until it succeeds — a record is never dropped. While retrying,
//!   the writer takes nothing new, so memory stays bounded by the channel plus
//!   one batch.
//! - **No duplicates**: a batch is one transaction and inserts are idempotent
//!   on `call_id`, so a retry after an ambiguous commit writes nothing twice.
//! - **Drain on shutdown**: when every sink is dropped, or after
//!   [`RecordSink::close`], the task writes everything queued, then exits.
//!
//! Shutdown order: `sink.close().await` (or drop every sink and await the
//! task), then `store.close().await`. Retrying cannot help once the store's
//! pool is closed, so records still queued then are logged as an error and
//! counted in [`WriterStats::abandoned`] instead of retried forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::audit::AuditRow;
use super::callbacks::{CallbackAttemptRow, CallbackRow};
use super::events::{AgentStateRow, QueueEventRow};
use super::recordings::{RecordingMarkRow, RecordingRow};
use super::{CallRecord, Store, StoreError};

/// Most records written in one transaction.
const MAX_BATCH: usize = 100;
/// First retry delay after a failed write; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

enum Msg {
    Record(Box<CallRecord>),
    Event(Box<QueueEventRow>),
    AgentState(AgentStateRow),
    WrapUp {
        call_id: String,
        ms: i64,
    },
    Callback(Box<CallbackRow>),
    CallbackAttempt(Box<CallbackAttemptRow>),
    Recording(Box<RecordingRow>),
    RecordingMark(Box<RecordingMarkRow>),
    Audit(Box<AuditRow>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
    /// Stop taking records; answered when everything queued is written.
    Close(oneshot::Sender<()>),
}

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records committed (including ones already stored, ignored as duplicates).
    pub written: u64,
    /// Batches committed.
    pub batches: u64,
    /// Write attempts that failed (and were retried).
    pub failed_attempts: u64,
    /// Records given up because the [`Store`] was closed while they were
    /// queued (a shutdown-order bug: close the sink first). Always 0 otherwise.
    pub abandoned: u64,
    /// Writer passes (each writes what was queued, records and rows of
    /// every kind), and the time they took in all, in microseconds.
    pub passes: u64,
    pub pass_micros: u64,
    /// Messages queued for the writer now.
    pub backlog: usize,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    batches: AtomicU64,
    failed_attempts: AtomicU64,
    abandoned: AtomicU64,
    passes: AtomicU64,
    pass_micros: AtomicU64,
}

/// Where call handling hands finished call records. Cheap to clone.
#[derive(Clone)]
pub struct RecordSink {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for RecordSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSink")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Starts the writer task with a queue of `capacity` records (at least 1).
/// The task ends after every [`RecordSink`] is dropped or one is closed, once
/// all queued records are written.
pub fn spawn_writer(store: Store, capacity: usize) -> (RecordSink, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let task = tokio::spawn(run(store, rx, counters.clone()));
    (RecordSink { tx, counters }, task)
}

impl RecordSink {
    /// Queues a record for writing; waits while the queue is full. Fails only
    /// when the writer has been closed.
    pub async fn submit(&self, rec: CallRecord) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Record(Box::new(rec)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues a queue event (same guarantees and order as records).
    pub async fn submit_event(&self, event: QueueEventRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Event(Box::new(event)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues an agent's new stable state.
    pub async fn submit_agent_state(&self, state: AgentStateRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::AgentState(state))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues the after-call work of a call whose record was submitted
    /// before (records are written before wrap-ups queued after them).
    pub async fn submit_wrap_up(&self, call_id: String, ms: i64) -> Result<(), StoreError> {
        self.tx
            .send(Msg::WrapUp { call_id, ms })
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues a callback request's new state (insert or update).
    pub async fn submit_callback(&self, row: CallbackRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Callback(Box::new(row)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues one callback attempt.
    pub async fn submit_callback_attempt(&self, row: CallbackAttemptRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::CallbackAttempt(Box::new(row)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues a recording's new state (insert or update on its id).
    pub async fn submit_recording(&self, row: RecordingRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Recording(Box::new(row)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues a mark on a recording's timeline.
    pub async fn submit_recording_mark(&self, row: RecordingMarkRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::RecordingMark(Box::new(row)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues an audit-log entry.
    pub async fn submit_audit(&self, row: AuditRow) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Audit(Box::new(row)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Resolves when every record submitted before this call is committed
    /// (returns at once if the writer has stopped: then all were written).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Stops the writer: later `submit`s fail with
    /// [`StoreError::WriterClosed`]; resolves when everything queued before is
    /// written and the task is finishing.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            written: self.counters.written.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            failed_attempts: self.counters.failed_attempts.load(Ordering::Relaxed),
            abandoned: self.counters.abandoned.load(Ordering::Relaxed),
            passes: self.counters.passes.load(Ordering::Relaxed),
            pass_micros: self.counters.pass_micros.load(Ordering::Relaxed),
            backlog: self.tx.max_capacity() - self.tx.capacity(),
        }
    }
}

/// What one pass of the writer collected, written in this order: call
/// records, queue events, agent states, wrap-up times (whose records were
/// queued before them), then callback requests (in the order queued: a
/// later state of a request wins) and attempts, then recordings (likewise)
/// and their marks, then audit entries.
#[derive(Default)]
struct Batch {
    records: Vec<CallRecord>,
    events: Vec<QueueEventRow>,
    states: Vec<AgentStateRow>,
    wrap_ups: Vec<(String, i64)>,
    callbacks: Vec<CallbackRow>,
    attempts: Vec<CallbackAttemptRow>,
    recordings: Vec<RecordingRow>,
    marks: Vec<RecordingMarkRow>,
    audit: Vec<AuditRow>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len()
            + self.events.len()
            + self.states.len()
            + self.wrap_ups.len()
            + self.callbacks.len()
            + self.attempts.len()
            + self.recordings.len()
            + self.marks.len()
            + self.audit.len()
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Msg>, counters: Arc<Counters>) {
    let mut batch = Batch::default();
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut close_acks: Vec<oneshot::Sender<()>> = Vec::new();
    // `recv` yields what is still queued after `rx.close()`, then `None`.
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(rec) => batch.records.push(*rec),
                Msg::Event(e) => batch.events.push(*e),
                Msg::AgentState(s) => batch.states.push(s),
                Msg::WrapUp { call_id, ms } => batch.wrap_ups.push((call_id, ms)),
                Msg::Callback(r) => batch.callbacks.push(*r),
                Msg::CallbackAttempt(a) => batch.attempts.push(*a),
                Msg::Recording(r) => batch.recordings.push(*r),
                Msg::RecordingMark(m) => batch.marks.push(*m),
                Msg::Audit(a) => batch.audit.push(*a),
                Msg::Flush(ack) => acks.push(ack),
                Msg::Close(ack) => {
                    rx.close();
                    close_acks.push(ack);
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let started = tokio::time::Instant::now();
        if !batch.records.is_empty() {
            write_batch(&store, &batch.records, &counters).await;
            batch.records.clear();
        }
        if !batch.events.is_empty() {
            let events = std::mem::take(&mut batch.events);
            retry("queue events", events.len(), &counters, || {
                store.insert_queue_events(&events)
            })
            .await;
        }
        if !batch.states.is_empty() {
            let states = std::mem::take(&mut batch.states);
            retry("agent states", states.len(), &counters, || {
                store.save_agent_states(&states)
            })
            .await;
        }
        for (call_id, ms) in std::mem::take(&mut batch.wrap_ups) {
            let done = retry("a wrap-up time", 1, &counters, || {
                store.set_wrap_up(&call_id, ms)
            })
            .await;
            if done == Some(0) {
                tracing::debug!(
                    call_id,
                    "wrap-up time for a call with no record; kept in the event log only"
                );
            }
        }
        if !batch.callbacks.is_empty() {
            let rows = std::mem::take(&mut batch.callbacks);
            retry("callback requests", rows.len(), &counters, || {
                store.save_callbacks(&rows)
            })
            .await;
        }
        if !batch.attempts.is_empty() {
            let rows = std::mem::take(&mut batch.attempts);
            retry("callback attempts", rows.len(), &counters, || {
                store.insert_callback_attempts(&rows)
            })
            .await;
        }
        if !batch.recordings.is_empty() {
            let rows = std::mem::take(&mut batch.recordings);
            retry("recordings", rows.len(), &counters, || {
                store.save_recordings(&rows)
            })
            .await;
        }
        if !batch.marks.is_empty() {
            let rows = std::mem::take(&mut batch.marks);
            retry("recording marks", rows.len(), &counters, || {
                store.insert_recording_marks(&rows)
            })
            .await;
        }
        if !batch.audit.is_empty() {
            let rows = std::mem::take(&mut batch.audit);
            retry("audit entries", rows.len(), &counters, || {
                store.insert_audit(&rows)
            })
            .await;
        }
        counters.passes.fetch_add(1, Ordering::Relaxed);
        counters
            .pass_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    tracing::debug!(
        written = counters.written.load(Ordering::Relaxed),
        "call-record writer drained and stopped"
    );
    for ack in close_acks {
        let _ = ack.send(());
    }
}

/// Runs `write` until it succeeds (backing off), or the store is closed
/// (then `None`, logged as an error).
async fn retry<T, F, Fut>(what: &str, items: usize, counters: &Counters, write: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1u32;
    loop {
        match write().await {
            Ok(v) => return Some(v),
            Err(StoreError::Query {
                source: sqlx::Error::PoolClosed,
                ..
            }) => {
                counters
                    .abandoned
                    .fetch_add(items as u64, Ordering::Relaxed);
                tracing::error!(
                    what,
                    items,
                    "store closed before the writer drained; not written"
                );
                return None;
            }
            Err(error) => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, what, items, attempt, retry_in_ms = backoff.as_millis() as u64,
                    "write failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Writes one batch, retrying until it commits.
async fn write_batch(store: &Store, batch: &[CallRecord], counters: &Counters) {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1u32;
    loop {
        match store.insert_call_records(batch).await {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                if attempt > 1 {
                    tracing::info!(
                        records = batch.len(),
                        attempt,
                        "call records written after retrying"
                    );
                }
                return;
            }
            Err(StoreError::Query {
                source: sqlx::Error::PoolClosed,
                ..
            }) => {
                // The store was closed under the writer: no retry can succeed.
                counters
                    .abandoned
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    records = batch.len(),
                    "store closed before the call-record writer drained; records not written \
                     (close the RecordSink before the Store)"
                );
                return;
            }
            Err(error) => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                // Records are not logged (call ids only in the first one, as
                // a pointer); they hold no PIN in any case.
                tracing::warn!(
                    %error,
                    records = batch.len(),
                    first_call_id = %batch[0].call_id,
                    attempt,
                    retry_in_ms = backoff.as_millis() as u64,
                    "writing call records failed; will retry"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt = attempt.saturating_add(1);
            }
        }
    }
}
