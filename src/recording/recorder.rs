//! One recorder task per call recording.
//!
//! It never runs on the media path: the bridge only offers packets to its
//! tap. Four times a second it takes what the tap holds, decodes it onto
//! the stereo [`Timeline`], and once a second of audio is settled hands it
//! to the blocking pool to append to the file (the file's header is valid
//! after every append). Holds (from the tap) and masks (from
//! [`RecorderControl`]) become marks on the recording's timeline. On
//! [`RecorderControl::stop`] (or when every control is dropped) it writes
//! the rest up to the end instant, so the file is as long as the bridged
//! time, syncs it, sums it, and queues the finished row.
//!
//! A file that cannot be created or written (disk full) is logged once and
//! the row marked `failed`; the call goes on unaffected.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::timeline::{position_ms, Channel, Timeline};
use super::wav_file::{WavFile, WavSummary};
use crate::media::bridge::Side;
use crate::media::g711;
use crate::media::media_threads::Spawner;
use crate::media::tap::TapEvent;
use crate::store::{RecordSink, RecordingMarkRow, RecordingRow, RecordingStatus};

/// How often the recorder takes what the tap holds.
const WAKE_EVERY: Duration = Duration::from_millis(250);
/// Audio settled before it is written: one second of stereo samples.
const WRITE_SAMPLES: usize = 8000 * 2;
/// Commands queued to a recorder.
const CONTROL_CAPACITY: usize = 16;

#[derive(Debug)]
enum Control {
    Mask {
        on: bool,
        at: Instant,
        by: String,
    },
    Mark {
        kind: String,
        detail: Option<String>,
        at: Instant,
    },
    Stop {
        at: Instant,
    },
}

/// The recorder has finished (or failed to start); nothing more can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the recording has ended")]
pub struct RecorderGone;

/// Controls a recorder task. Cheap to clone; the recording stops when
/// [`stop`](Self::stop) is called or every clone is dropped.
#[derive(Debug, Clone)]
pub struct RecorderControl {
    pub id: String,
    tx: mpsc::Sender<Control>,
    /// Into the recorder's tap, for monitors' voices.
    tap: mpsc::Sender<TapEvent>,
}

impl RecorderControl {
    /// Masks (`on`) or unmasks the recording from now; `by` is who asked
    /// (an agent id or a user name), kept with the mark.
    pub async fn mask(&self, on: bool, by: &str) -> Result<(), RecorderGone> {
        self.send(Control::Mask {
            on,
            at: Instant::now(),
            by: by.to_string(),
        })
        .await
    }

    /// Puts a mark (`transfer`, …) on the timeline now.
    pub async fn mark(&self, kind: &str, detail: Option<String>) -> Result<(), RecorderGone> {
        self.send(Control::Mark {
            kind: kind.to_string(),
            detail,
            at: Instant::now(),
        })
        .await
    }

    /// Where a live monitor's feed sends what the supervisor says
    /// ([`TapEvent::Voice`]) while whispering or barging in: it is summed
    /// into the right channel. Offer with `try_send`: a full tap loses it.
    pub fn voice_tap(&self) -> mpsc::Sender<TapEvent> {
        self.tap.clone()
    }

    /// Ends the recording now (the bridge has ended). Does not wait for the
    /// file to be finished.
    pub async fn stop(&self) {
        self.stop_at(Instant::now()).await;
    }

    /// Stops the recording as of `at` (the instant the bridged part ended,
    /// taken before the hang-up's own SIP work): the file ends there, as
    /// long as the talk time noted with the same instant.
    pub async fn stop_at(&self, at: Instant) {
        let _ = self.send(Control::Stop { at }).await;
    }

    async fn send(&self, c: Control) -> Result<(), RecorderGone> {
        self.tx.send(c).await.map_err(|_| RecorderGone)
    }
}

/// Starts the recorder of `row` (status `recording`), writing `file`, with
/// the recording's clock starting at `t0`, reading the tap `taps` (`tap`:
/// its sender, kept for monitors' voices), on `tasks`, spawned at `at`.
pub(super) fn spawn(
    tasks: &TaskTracker,
    at: &Spawner,
    row: RecordingRow,
    file: PathBuf,
    t0: Instant,
    (tap, taps): (mpsc::Sender<TapEvent>, mpsc::Receiver<TapEvent>),
    sink: RecordSink,
) -> RecorderControl {
    let (tx, rx) = mpsc::channel(CONTROL_CAPACITY);
    let id = row.id.clone();
    let recorder = Recorder {
        row,
        file,
        t0,
        sink,
        timeline: Timeline::new(),
        pending: Vec::with_capacity(WRITE_SAMPLES + 8000),
        pcm: Vec::with_capacity(480),
        wav: None,
        failed: false,
        marks: 0,
    }
    .run(taps, rx);
    // Beside the bridge it records (its media thread, at its priority):
    // on a busy machine the recorder keeps up with what it is sent.
    at.spawn(tasks.track_future(recorder));
    RecorderControl { id, tx, tap }
}

struct Recorder {
    row: RecordingRow,
    file: PathBuf,
    t0: Instant,
    sink: RecordSink,
    timeline: Timeline,
    /// Settled samples not yet written.
    pending: Vec<i16>,
    pcm: Vec<i16>,
    wav: Option<WavFile>,
    failed: bool,
    marks: u64,
}

impl Recorder {
    async fn run(
        mut self,
        mut taps: mpsc::Receiver<TapEvent>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let path = self.file.clone();
        match blocking(move || WavFile::create(&path, 2)).await {
            Ok(w) => self.wav = Some(w),
            Err(e) => self.fail(&e),
        }
        let _ = self.sink.submit_recording(self.row.clone()).await;
        info!(recording = %self.row.id, file = %self.row.path, "recording the call");
        let mut wake = tokio::time::interval_at(self.t0 + WAKE_EVERY, WAKE_EVERY);
        wake.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = loop {
            tokio::select! {
                c = control.recv() => match c {
                    None => break Instant::now(),
                    Some(Control::Stop { at }) => break at,
                    Some(Control::Mask { on, at, by }) => {
                        self.take(&mut taps).await;
                        let pos = self.position(at);
                        let changed = on != self.timeline.is_masked();
                        if on { self.timeline.mask(pos) } else { self.timeline.unmask(pos) }
                        if changed {
                            info!(recording = %self.row.id, masked = on, by = %by, "recording mask");
                            self.mark(if on { "mask" } else { "unmask" }, Some(by), at).await;
                        }
                    }
                    Some(Control::Mark { kind, detail, at }) => self.mark(&kind, detail, at).await,
                },
                _ = wake.tick() => {
                    self.take(&mut taps).await;
                    let now = self.position(Instant::now());
                    self.timeline.flush(now, &mut self.pending);
                    if self.pending.len() >= WRITE_SAMPLES {
                        self.write().await;
                    }
                }
            }
        };
        self.take(&mut taps).await;
        let end_pos = self.position(end);
        self.timeline.finish(end_pos, &mut self.pending);
        self.write().await;
        self.finish(end).await;
    }

    fn position(&self, at: Instant) -> u64 {
        let us = at.saturating_duration_since(self.t0).as_micros() as u64;
        us * 8 / 1000
    }

    /// Everything the tap holds, onto the timeline (holds become marks).
    async fn take(&mut self, taps: &mut mpsc::Receiver<TapEvent>) {
        while let Ok(event) = taps.try_recv() {
            match event {
                TapEvent::Audio {
                    side,
                    at,
                    codec,
                    ssrc,
                    timestamp,
                    payload,
                } => {
                    self.pcm.clear();
                    g711::decode(codec, &payload, &mut self.pcm);
                    let ch = match side {
                        Side::Caller => Channel::Left,
                        Side::Agent => Channel::Right,
                    };
                    let pos = self.position(at);
                    self.timeline.push(ch, pos, ssrc, timestamp, &self.pcm);
                }
                TapEvent::Voice { at, pcm } => {
                    let pos = self.position(at);
                    self.timeline.push_voice(pos, &pcm);
                }
                TapEvent::Hold { side, held, at } => {
                    let who = match side {
                        Side::Caller => "caller",
                        Side::Agent => "agent",
                    };
                    let kind = if held { "hold" } else { "resume" };
                    self.mark(kind, Some(who.to_string()), at).await;
                }
            }
        }
    }

    async fn mark(&mut self, kind: &str, detail: Option<String>, at: Instant) {
        self.marks += 1;
        let at_ms = (self.position(at) / position_ms(1)) as i64;
        let _ = self
            .sink
            .submit_recording_mark(RecordingMarkRow {
                uid: format!("{}-{}", self.row.id, self.marks),
                recording_id: self.row.id.clone(),
                at_ms,
                kind: kind.to_string(),
                detail,
            })
            .await;
    }

    /// Appends the settled samples to the file.
    async fn write(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(mut wav) = self.wav.take() else {
            self.pending.clear();
            return;
        };
        let samples = std::mem::take(&mut self.pending);
        let (wav, samples, r) = blocking(move || {
            let r = wav.append(&samples);
            (wav, samples, r)
        })
        .await;
        self.pending = samples;
        self.pending.clear();
        match r {
            Ok(()) => self.wav = Some(wav),
            Err(e) => self.fail(&e),
        }
    }

    fn fail(&mut self, e: &std::io::Error) {
        if !self.failed {
            warn!(recording = %self.row.id, file = %self.file.display(), error = %e,
                "cannot write the recording; the call goes on unrecorded");
        }
        self.failed = true;
        self.row.status = RecordingStatus::Failed;
    }

    async fn finish(mut self, end: Instant) {
        let summary: Option<std::io::Result<WavSummary>> = match self.wav.take() {
            Some(wav) => Some(blocking(move || wav.finish()).await),
            None => None,
        };
        self.row.ended_at = Some(
            self.row.started_at
                + chrono::Duration::from_std(end.saturating_duration_since(self.t0))
                    .unwrap_or_default(),
        );
        self.row.masked_ms = (self.timeline.masked() / position_ms(1)) as i64;
        match summary {
            Some(Ok(s)) if !self.failed => {
                self.row.duration_ms = Some(s.duration_ms());
                self.row.size_bytes = Some(s.size as i64);
                self.row.sha256 = Some(s.sha256.clone());
                self.row.status = RecordingStatus::Complete;
                info!(recording = %self.row.id, ms = s.duration_ms(), bytes = s.size,
                    masked_ms = self.row.masked_ms, late = self.timeline.late_dropped(),
                    "recording finished");
            }
            Some(Err(e)) => self.fail(&e),
            _ => {}
        }
        let _ = self.sink.submit_recording(self.row).await;
    }
}

/// Runs blocking file work on the blocking pool (never on a worker that
/// carries calls; and under tokio's paused test clock, time stands still
/// while it runs).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
