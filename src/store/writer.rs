//! The call-record writer: call handling submits finished records (and
//! queue events, agent states, recordings, audit entries…) to a
//! [`RecordSink`] and goes on; one task writes them to the database in
//! batches, off the call and media path.
//!
//! Guarantees:
//! - **Nothing lost while the database is down**: with a spool
//!   ([`spawn_spooling_writer`], what the daemon runs), a pass that cannot be
//!   written goes to a file on disk ([`super::spool`]), and so does
//!   everything after it, so calls never wait for the database. The writer
//!   checks the database with a back-off (up to 5 s) and, once it answers,
//!   writes the spooled rows in the order they came, then goes back to
//!   writing directly. Rows left in the spool by a stop are written after
//!   the next start, before anything new. Without a spool ([`spawn_writer`])
//!   a failed write is retried with back-off until it succeeds, holding
//!   the queue (back-pressure).
//! - **No duplicates**: a batch is one transaction per kind of row and every
//!   insert is idempotent on its row's key (`call_id`, `uid`, …), so
//!   writing a pass again after an ambiguous commit, or a spool again after
//!   a restart in the middle of its replay, writes nothing twice.
//! - **A row the database refuses for good** (it fails alone, with an
//!   error that is not about reaching the database) is kept in the spool's
//!   rejected file and logged instead of blocking every row after it.
//! - **Drain on shutdown**: when every sink is dropped, or after
//!   [`RecordSink::close`], the task writes everything queued, then exits;
//!   what the database cannot take then stays in the spool.
//!
//! [`RecordSink::flush`] resolves once what was submitted before it is
//! durable: committed, or (while spooling) in the spool on disk.
//!
//! Shutdown order: `sink.close().await` (or drop every sink and await the
//! task), then `store.close().await`. Once the store's pool is closed
//! nothing can be written: rows still queued then are logged as an error
//! and counted in [`WriterStats::abandoned`] (without a spool) or left in
//! the spool.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::audit::AuditRow;
use super::callbacks::{CallbackAttemptRow, CallbackRow};
use super::events::{AgentStateRow, QueueEventRow};
use super::recordings::{RecordingMarkRow, RecordingRow};
use super::spool::Spool;
use super::{CallRecord, Store, StoreError};

/// Most rows written in one transaction.
const MAX_BATCH: usize = 100;
/// First retry delay after a failed write; doubles up to [`MAX_BACKOFF`]
/// (without a spool) or [`MAX_PROBE_INTERVAL`] (checking the database while
/// spooling).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// A check that the database answers gives up after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Spool chunks written before the writer looks at its queue again.
const CHUNKS_PER_PASS: usize = 10;
/// How often the open-call rows of this run are marked still up (the most
/// a recovered record's end can be early).
const OPEN_CALL_REFRESH: Duration = Duration::from_secs(5);

/// One row for the database, as queued and as spooled.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "row", rename_all = "snake_case")]
pub enum Row {
    /// A call answered and still up, as known so far ([`super::open_calls`]).
    CallOpen(Box<CallRecord>),
    Record(Box<CallRecord>),
    Event(Box<QueueEventRow>),
    AgentState(AgentStateRow),
    /// The after-call work of a call whose record was queued before.
    WrapUp {
        call_id: String,
        ms: i64,
    },
    Callback(Box<CallbackRow>),
    CallbackAttempt(Box<CallbackAttemptRow>),
    Recording(Box<RecordingRow>),
    RecordingMark(Box<RecordingMarkRow>),
    Audit(Box<AuditRow>),
}

enum Msg {
    Row(Row),
    /// Answered once everything queued before it is durable.
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
    /// Write attempts that failed (and were retried or spooled).
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
    /// Rows put in the spool, and rows written from it to the database.
    pub spooled: u64,
    pub unspooled: u64,
    /// Rows in the spool now (the database could not be written).
    pub spool_pending: u64,
    /// Calls an earlier run left up, recorded as interrupted at this start.
    pub recovered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    batches: AtomicU64,
    failed_attempts: AtomicU64,
    abandoned: AtomicU64,
    passes: AtomicU64,
    pass_micros: AtomicU64,
    spooled: AtomicU64,
    unspooled: AtomicU64,
    spool_pending: AtomicU64,
    recovered: AtomicU64,
}

/// Queue events kept for a slow live subscriber before it misses some.
const LIVE_EVENTS: usize = 1024;

/// Where call handling hands finished call records. Cheap to clone.
#[derive(Clone)]
pub struct RecordSink {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    /// Every queue event as it is submitted, for live subscribers
    /// (`GET /api/events/stream`).
    live: tokio::sync::broadcast::Sender<QueueEventRow>,
}

impl std::fmt::Debug for RecordSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSink")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Starts the writer task with a queue of `capacity` rows (at least 1) and
/// no spool: a failed write is retried until it succeeds. The task ends
/// after every [`RecordSink`] is dropped or one is closed, once all queued
/// rows are written.
pub fn spawn_writer(store: Store, capacity: usize) -> (RecordSink, JoinHandle<()>) {
    start(store, capacity, None)
}

/// Starts the writer with its spool in `spool_dir` (created if missing):
/// while the database cannot be written, rows go there. Rows left there by
/// an earlier run are written first. Fails when the folder or its file
/// cannot be created or read.
pub fn spawn_spooling_writer(
    store: Store,
    capacity: usize,
    spool_dir: &Path,
) -> std::io::Result<(RecordSink, JoinHandle<()>)> {
    let spool = Spool::open(spool_dir)?;
    if !spool.is_empty() {
        tracing::warn!(path = %spool.path().display(), bytes = spool.pending_bytes(),
            "the spool holds rows an earlier run could not write; writing them first");
    }
    Ok(start(store, capacity, Some(spool)))
}

fn start(store: Store, capacity: usize, spool: Option<Spool<Row>>) -> (RecordSink, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    // A store whose database has not answered yet starts spooling.
    let spooling =
        spool.as_ref().is_some_and(|s| !s.is_empty()) || (spool.is_some() && !store.is_migrated());
    let writer = Writer {
        store,
        counters: counters.clone(),
        spool,
        spooling,
        backoff: FIRST_BACKOFF,
        probe_at: Instant::now(),
        ids: RunIds {
            node: super::open_calls::this_node(),
            run: super::new_uid(),
        },
        open: std::collections::HashSet::new(),
        refresh_at: Instant::now() + OPEN_CALL_REFRESH,
        recovered: false,
    };
    writer.publish_pending();
    let task = tokio::spawn(writer.run(rx));
    let (live, _) = tokio::sync::broadcast::channel(LIVE_EVENTS);
    (RecordSink { tx, counters, live }, task)
}

impl RecordSink {
    async fn send(&self, row: Row) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Row(row))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Notes a call answered (or changed: reached an agent) and still up,
    /// so that a record of it survives the daemon being killed.
    pub async fn submit_open(&self, rec: CallRecord) -> Result<(), StoreError> {
        self.send(Row::CallOpen(Box::new(rec))).await
    }

    /// Queues a record for writing; waits while the queue is full. Fails only
    /// when the writer has been closed.
    pub async fn submit(&self, rec: CallRecord) -> Result<(), StoreError> {
        self.send(Row::Record(Box::new(rec))).await
    }

    /// Queues a queue event (same guarantees and order as records), and
    /// shows it to live subscribers.
    pub async fn submit_event(&self, event: QueueEventRow) -> Result<(), StoreError> {
        // No subscriber is no error.
        let _ = self.live.send(event.clone());
        self.send(Row::Event(Box::new(event))).await
    }

    /// Every queue event submitted from now on, in order. A subscriber
    /// that falls more than 1,024 events behind is told how many it missed
    /// (`RecvError::Lagged`) and goes on from the oldest kept.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<QueueEventRow> {
        self.live.subscribe()
    }

    /// Queues an agent's new stable state.
    pub async fn submit_agent_state(&self, state: AgentStateRow) -> Result<(), StoreError> {
        self.send(Row::AgentState(state)).await
    }

    /// Queues the after-call work of a call whose record was submitted
    /// before (records are written before wrap-ups queued after them).
    pub async fn submit_wrap_up(&self, call_id: String, ms: i64) -> Result<(), StoreError> {
        self.send(Row::WrapUp { call_id, ms }).await
    }

    /// Queues a callback request's new state (insert or update).
    pub async fn submit_callback(&self, row: CallbackRow) -> Result<(), StoreError> {
        self.send(Row::Callback(Box::new(row))).await
    }

    /// Queues one callback attempt.
    pub async fn submit_callback_attempt(&self, row: CallbackAttemptRow) -> Result<(), StoreError> {
        self.send(Row::CallbackAttempt(Box::new(row))).await
    }

    /// Queues a recording's new state (insert or update on its id).
    pub async fn submit_recording(&self, row: RecordingRow) -> Result<(), StoreError> {
        self.send(Row::Recording(Box::new(row))).await
    }

    /// Queues a mark on a recording's timeline.
    pub async fn submit_recording_mark(&self, row: RecordingMarkRow) -> Result<(), StoreError> {
        self.send(Row::RecordingMark(Box::new(row))).await
    }

    /// Queues an audit-log entry.
    pub async fn submit_audit(&self, row: AuditRow) -> Result<(), StoreError> {
        self.send(Row::Audit(Box::new(row))).await
    }

    /// Resolves when every row submitted before this call is durable:
    /// committed, or in the spool while the database is down (returns at
    /// once if the writer has stopped: then all were written).
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
        let c = &self.counters;
        WriterStats {
            written: c.written.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            abandoned: c.abandoned.load(Ordering::Relaxed),
            passes: c.passes.load(Ordering::Relaxed),
            pass_micros: c.pass_micros.load(Ordering::Relaxed),
            backlog: self.tx.max_capacity() - self.tx.capacity(),
            spooled: c.spooled.load(Ordering::Relaxed),
            unspooled: c.unspooled.load(Ordering::Relaxed),
            spool_pending: c.spool_pending.load(Ordering::Relaxed),
            recovered: c.recovered.load(Ordering::Relaxed),
        }
    }
}

/// What one pass of the writer collected, written in this order: open
/// calls (a call's final record, later, deletes its row), call records, queue events, agent states, wrap-up times (whose records were
/// queued before them), then callback requests (in the order queued: a
/// later state of a request wins) and attempts, then recordings (likewise)
/// and their marks, then audit entries.
#[derive(Default)]
struct Batch {
    opens: Vec<CallRecord>,
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
        self.opens.len()
            + self.records.len()
            + self.events.len()
            + self.states.len()
            + self.wrap_ups.len()
            + self.callbacks.len()
            + self.attempts.len()
            + self.recordings.len()
            + self.marks.len()
            + self.audit.len()
    }

    fn push(&mut self, row: Row) {
        match row {
            Row::CallOpen(rec) => self.opens.push(*rec),
            Row::Record(rec) => self.records.push(*rec),
            Row::Event(e) => self.events.push(*e),
            Row::AgentState(s) => self.states.push(s),
            Row::WrapUp { call_id, ms } => self.wrap_ups.push((call_id, ms)),
            Row::Callback(r) => self.callbacks.push(*r),
            Row::CallbackAttempt(a) => self.attempts.push(*a),
            Row::Recording(r) => self.recordings.push(*r),
            Row::RecordingMark(m) => self.marks.push(*m),
            Row::Audit(a) => self.audit.push(*a),
        }
    }

    fn from_rows(rows: impl IntoIterator<Item = Row>) -> Batch {
        let mut batch = Batch::default();
        for row in rows {
            batch.push(row);
        }
        batch
    }

    /// The rows in the order they are written.
    fn into_rows(self) -> Vec<Row> {
        let mut rows = Vec::with_capacity(self.len());
        rows.extend(self.opens.into_iter().map(|r| Row::CallOpen(Box::new(r))));
        rows.extend(self.records.into_iter().map(|r| Row::Record(Box::new(r))));
        rows.extend(self.events.into_iter().map(|e| Row::Event(Box::new(e))));
        rows.extend(self.states.into_iter().map(Row::AgentState));
        rows.extend(
            self.wrap_ups
                .into_iter()
                .map(|(call_id, ms)| Row::WrapUp { call_id, ms }),
        );
        rows.extend(
            self.callbacks
                .into_iter()
                .map(|r| Row::Callback(Box::new(r))),
        );
        rows.extend(
            self.attempts
                .into_iter()
                .map(|a| Row::CallbackAttempt(Box::new(a))),
        );
        rows.extend(
            self.recordings
                .into_iter()
                .map(|r| Row::Recording(Box::new(r))),
        );
        rows.extend(
            self.marks
                .into_iter()
                .map(|m| Row::RecordingMark(Box::new(m))),
        );
        rows.extend(self.audit.into_iter().map(|a| Row::Audit(Box::new(a))));
        rows
    }

    /// Writes the batch once, kind by kind; the first failure is returned
    /// (kinds written before it stay written: writing them again is a no-op).
    async fn write(
        &self,
        store: &Store,
        ids: &RunIds,
        counters: &Counters,
    ) -> Result<(), StoreError> {
        if !self.opens.is_empty() {
            store
                .save_open_calls(&ids.node, &ids.run, chrono::Utc::now(), &self.opens)
                .await?;
        }
        if !self.records.is_empty() {
            store.insert_call_records(&self.records).await?;
            counters
                .written
                .fetch_add(self.records.len() as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        if !self.events.is_empty() {
            store.insert_queue_events(&self.events).await?;
        }
        if !self.states.is_empty() {
            store.save_agent_states(&self.states).await?;
        }
        for (call_id, ms) in &self.wrap_ups {
            if store.set_wrap_up(call_id, *ms).await? == 0 {
                tracing::debug!(
                    call_id,
                    "wrap-up time for a call with no record; kept in the event log only"
                );
            }
        }
        if !self.callbacks.is_empty() {
            store.save_callbacks(&self.callbacks).await?;
        }
        if !self.attempts.is_empty() {
            store.insert_callback_attempts(&self.attempts).await?;
        }
        if !self.recordings.is_empty() {
            store.save_recordings(&self.recordings).await?;
        }
        if !self.marks.is_empty() {
            store.insert_recording_marks(&self.marks).await?;
        }
        if !self.audit.is_empty() {
            store.insert_audit(&self.audit).await?;
        }
        Ok(())
    }

    /// A pointer for logs: the first call id of the batch (rows hold no PIN
    /// in any case, but are not logged whole).
    fn first_call_id(&self) -> Option<&str> {
        self.records.first().map(|r| r.call_id.as_str())
    }
}

fn store_closed(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Query {
            source: sqlx::Error::PoolClosed,
            ..
        }
    )
}

/// Who writes open-call rows: this host, and this start of the daemon.
struct RunIds {
    node: String,
    run: String,
}

struct Writer {
    store: Store,
    ids: RunIds,
    /// Calls of this run with an open-call row (refreshed every
    /// [`OPEN_CALL_REFRESH`] while any is up).
    open: std::collections::HashSet<String>,
    refresh_at: Instant,
    /// Calls earlier runs left up have been recorded (done once the
    /// spool from before is written).
    recovered: bool,
    counters: Arc<Counters>,
    spool: Option<Spool<Row>>,
    /// The database could not be written: rows go to the spool until it
    /// is empty again.
    spooling: bool,
    backoff: Duration,
    /// When to check the database next while spooling.
    probe_at: Instant,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
        let mut close_acks: Vec<oneshot::Sender<()>> = Vec::new();
        self.recover_open_calls().await;
        loop {
            // `recv` yields what is still queued after `rx.close()`, then `None`.
            let first = if self.spooling {
                tokio::select! {
                    biased;
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(self.probe_at) => {
                        self.drain_spool().await;
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    biased;
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(self.refresh_at), if !self.open.is_empty() => {
                        self.refresh_open_calls().await;
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            let mut batch = Batch::default();
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Row(row) => batch.push(row),
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
            let started = Instant::now();
            for rec in &batch.opens {
                self.open.insert(rec.call_id.clone());
            }
            for rec in &batch.records {
                self.open.remove(&rec.call_id);
            }
            if batch.len() > 0 {
                self.take(batch).await;
            }
            self.recover_open_calls().await;
            if self.spooling && Instant::now() >= self.probe_at {
                self.drain_spool().await;
            }
            self.counters.passes.fetch_add(1, Ordering::Relaxed);
            self.counters
                .pass_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
        if self.spooling {
            self.drain_spool().await;
            if let Some(spool) = self.spool.as_ref().filter(|s| !s.is_empty()) {
                tracing::warn!(path = %spool.path().display(), bytes = spool.pending_bytes(),
                    "the database cannot be written at shutdown; the spooled rows stay on disk and are written after the next start");
            }
        }
        tracing::debug!(
            written = self.counters.written.load(Ordering::Relaxed),
            "call-record writer drained and stopped"
        );
        for ack in close_acks {
            let _ = ack.send(());
        }
    }

    /// Once the spool from before is written: records the calls an
    /// earlier run of this node left up as interrupted (their open-call
    /// rows). Tried again after the next pass if the database fails.
    async fn recover_open_calls(&mut self) {
        if self.recovered || self.spooling {
            return;
        }
        match self
            .store
            .recover_open_calls(&self.ids.node, &self.ids.run)
            .await
        {
            Ok(recs) => {
                self.recovered = true;
                for rec in &recs {
                    tracing::warn!(call_id = %rec.call_id, dialed = %rec.dialed,
                        agent = rec.acd.agent.as_deref().unwrap_or(""),
                        duration_ms = rec.duration_ms,
                        "a call was up when the daemon last stopped (killed or crashed): recorded as interrupted");
                }
                self.counters
                    .recovered
                    .store(recs.len() as u64, Ordering::Relaxed);
                if !recs.is_empty() {
                    tracing::warn!(calls = recs.len(), node = %self.ids.node,
                        "calls left up by an earlier run recorded as interrupted");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the calls an earlier run left up; will retry");
            }
        }
    }

    /// Marks this run's open calls still up (the end of their record if
    /// the daemon is killed now).
    async fn refresh_open_calls(&mut self) {
        self.refresh_at = Instant::now() + OPEN_CALL_REFRESH;
        if let Err(error) = self
            .store
            .touch_open_calls(&self.ids.run, chrono::Utc::now())
            .await
        {
            tracing::debug!(%error, "cannot refresh the open calls");
        }
    }

    /// Writes a pass directly, or spools it.
    async fn take(&mut self, batch: Batch) {
        if !self.spooling {
            let error = match batch.write(&self.store, &self.ids, &self.counters).await {
                Ok(()) => return,
                Err(e) => e,
            };
            self.counters
                .failed_attempts
                .fetch_add(1, Ordering::Relaxed);
            if self.spool.is_none() {
                return self.retry_until_written(batch, error).await;
            }
            // With a spool even a closed store loses nothing: the rows wait
            // on disk for the next start.
            tracing::warn!(%error, rows = batch.len(), first_call_id = batch.first_call_id(),
                "the database cannot be written; spooling rows to disk until it is back");
            self.spooling = true;
            self.backoff = FIRST_BACKOFF;
            self.probe_at = Instant::now() + self.backoff;
        }
        let rows = batch.into_rows();
        let n = rows.len() as u64;
        let (rows, appended) = self
            .with_spool(move |s| {
                let r = s.append(rows.iter());
                (rows, r)
            })
            .await;
        match appended {
            Ok(_) => {
                self.counters.spooled.fetch_add(n, Ordering::Relaxed);
                self.publish_pending();
            }
            Err(e) => {
                tracing::error!(error = %e,
                    "cannot write the spool; holding the rows in memory and retrying the database");
                let error = StoreError::Spool(e);
                self.retry_until_written(Batch::from_rows(rows), error)
                    .await;
            }
        }
    }

    /// Without a spool (or when it cannot be written): retries with
    /// back-off until the batch commits or the store is closed.
    async fn retry_until_written(&self, batch: Batch, mut error: StoreError) {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1u32;
        loop {
            if store_closed(&error) {
                self.counters
                    .abandoned
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    rows = batch.len(),
                    "store closed before the call-record writer drained; rows not written \
                     (close the RecordSink before the Store)"
                );
                return;
            }
            tracing::warn!(%error, rows = batch.len(), first_call_id = batch.first_call_id(),
                attempt, retry_in_ms = backoff.as_millis() as u64, "write failed; will retry");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt = attempt.saturating_add(1);
            match batch.write(&self.store, &self.ids, &self.counters).await {
                Ok(()) => {
                    tracing::info!(rows = batch.len(), attempt, "rows written after retrying");
                    return;
                }
                Err(e) => {
                    self.counters
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    error = e;
                }
            }
        }
    }

    /// While spooling: if the database answers, writes spooled rows in
    /// order (a few chunks, then the queue gets its turn); otherwise backs
    /// off.
    async fn drain_spool(&mut self) {
        let answers = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        );
        if !answers {
            return self.back_off();
        }
        if self.spool.as_ref().is_none_or(|s| s.is_empty()) {
            self.spooling = false;
            self.backoff = FIRST_BACKOFF;
            tracing::info!("the database answers; nothing spooled; writing directly");
            return;
        }
        for _ in 0..CHUNKS_PER_PASS {
            let chunk = match self.with_spool(|s| s.read(MAX_BATCH)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool; will retry");
                    return self.back_off();
                }
            };
            let (end, lines, n) = (chunk.end, chunk.lines, chunk.rows.len() as u64);
            if !self.write_spooled(chunk.rows).await {
                return self.back_off();
            }
            if let Err(e) = self.with_spool(move |s| s.consume(end, lines)).await {
                tracing::error!(error = %e, "cannot truncate the spool; will retry");
                return self.back_off();
            }
            self.counters.unspooled.fetch_add(n, Ordering::Relaxed);
            self.publish_pending();
            if self.spool.as_ref().is_none_or(|s| s.is_empty()) {
                self.spooling = false;
                self.backoff = FIRST_BACKOFF;
                tracing::info!(
                    rows = self.counters.unspooled.load(Ordering::Relaxed),
                    "the database is back: every spooled row is written; writing directly again"
                );
                return;
            }
        }
        // More to write: after the queue's turn.
        self.probe_at = Instant::now();
    }

    /// The spool's rows, for [`WriterStats::spool_pending`].
    fn publish_pending(&self) {
        let n = self.spool.as_ref().map_or(0, |s| s.pending_rows());
        self.counters.spool_pending.store(n, Ordering::Relaxed);
    }

    fn back_off(&mut self) {
        self.probe_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_PROBE_INTERVAL);
    }

    /// Writes one chunk read from the spool. A chunk that fails for a
    /// reason other than reaching the database is written row by row; a row
    /// that fails alone that way, while others of its chunk are written, is
    /// set aside in the rejected file. When no row can be written the fault
    /// is the database's (a table gone, permissions), not the rows': they
    /// stay spooled. False when the chunk is not written (try again later).
    async fn write_spooled(&mut self, rows: Vec<Row>) -> bool {
        let n = rows.len();
        let batch = Batch::from_rows(rows);
        let error = match batch.write(&self.store, &self.ids, &self.counters).await {
            Ok(()) => return true,
            Err(e) => e,
        };
        self.counters
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        if error.is_unavailable() || store_closed(&error) {
            tracing::debug!(%error, "spooled rows not written yet");
            return false;
        }
        let mut refused = Vec::new();
        for row in batch.into_rows() {
            let single = Batch::from_rows([row]);
            let Err(error) = single.write(&self.store, &self.ids, &self.counters).await else {
                continue;
            };
            if error.is_unavailable() || store_closed(&error) {
                return false;
            }
            refused.push((single.into_rows().remove(0), error));
        }
        if refused.len() == n {
            tracing::warn!(rows = n, error = %refused[0].1,
                "the database refuses every spooled row of a chunk; keeping them spooled");
            return false;
        }
        for (row, error) in refused {
            let (_, kept) = self
                .with_spool(move |s| {
                    let r = s.reject_row(&row, &error);
                    (row, r)
                })
                .await;
            if let Err(e) = kept {
                tracing::error!(error = %e, "cannot write the rejected file; will retry");
                return false;
            }
        }
        true
    }

    /// Runs blocking spool I/O off the runtime's workers.
    async fn with_spool<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Spool<Row>) -> R + Send + 'static,
    ) -> R {
        let mut spool = self
            .spool
            .take()
            .expect("spool I/O only happens with a spool");
        let (spool, r) = match tokio::task::spawn_blocking(move || {
            let r = f(&mut spool);
            (spool, r)
        })
        .await
        {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.spool = Some(spool);
        r
    }
}
