//! Call recording: every bridged agent call (per queue, `record = true` by
//! default) as a stereo WAV — caller left, agent right, 8 kHz 16-bit — from
//! connect to hang-up, holds included and marked on the timeline; voice
//! messages as mono WAVs the same way.
//!
//! The path of a recording's audio: the bridge task offers each packet to a
//! tap ([`crate::media::tap`]) and never waits; one recorder task per
//! recording ([`recorder`]) wakes four times a second, decodes what the tap
//! holds onto the stereo [`timeline`], and hands a second of audio at a
//! time to the blocking pool to append to the file ([`wav_file`]), whose
//! header is kept valid as it grows. Rows go to the database through the
//! writer task: `recording` when it starts, `complete` with duration, size
//! and SHA-256 when it ends; a row still `recording` at start-up is
//! repaired ([`maintenance::repair_interrupted`]). The retention run
//! deletes files older than `retention_days`, each deletion in the audit log.
//!
//! Files: `<data_dir>/recordings/YYYY/MM/DD/HHMMSS-<call-id>-<segment>.wav`
//! (UTC date and time of the start; the Call-ID reduced to safe characters),
//! so no request can name a path: the database holds the path, made here.

pub mod maintenance;
pub mod recorder;
pub mod timeline;
pub mod wav_file;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::media::recorder::safe_file_stem;
use crate::media::tap::{TapEvent, TAP_CAPACITY};
use crate::store::{RecordSink, RecordingKind, RecordingRow, RecordingStatus};

pub use recorder::{RecorderControl, RecorderGone};

/// The folder under the data folder that holds recordings.
pub const FOLDER: &str = "recordings";

/// `[recording]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// Record agent calls at all (each queue's `record` chooses too).
    pub enabled: bool,
    /// Recordings older than this many days are deleted (0: kept forever).
    pub retention_days: u32,
    /// Digits the agent keys during a call to mask the recording (silence
    /// while the citizen gives a PIN or an ID), and to end the mask.
    pub mask_keys: String,
    pub unmask_keys: String,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            retention_days: 180,
            mask_keys: "*7".into(),
            unmask_keys: "*8".into(),
        }
    }
}

/// A problem in `[recording]`, with its key below `recording.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfigError {
    pub key: String,
    pub message: String,
}

impl RecordingConfig {
    pub fn validate(&self) -> Result<(), Vec<RecordingConfigError>> {
        let mut errors = Vec::new();
        let keys =
            |k: &str| k.len() >= 2 && k.len() <= 4 && k.chars().all(|c| "0123456789*#".contains(c));
        for (key, v) in [
            ("mask_keys", &self.mask_keys),
            ("unmask_keys", &self.unmask_keys),
        ] {
            if !keys(v) {
                errors.push(RecordingConfigError {
                    key: key.into(),
                    message: format!("{v:?}: 2 to 4 of 0-9, * and #, e.g. \"*7\""),
                });
            }
        }
        if self.mask_keys == self.unmask_keys
            || self.mask_keys.starts_with(&self.unmask_keys)
            || self.unmask_keys.starts_with(&self.mask_keys)
        {
            errors.push(RecordingConfigError {
                key: "unmask_keys".into(),
                message: "must differ from mask_keys (neither a prefix of the other)".into(),
            });
        }
        if self.retention_days > 36_500 {
            errors.push(RecordingConfigError {
                key: "retention_days".into(),
                message: "at most 36500 (100 years); 0 keeps recordings forever".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// What a call recording is of.
#[derive(Debug, Clone, Default)]
pub struct RecordingMeta {
    pub call_id: String,
    /// 0 for the first agent of the call, then 1, 2… after transfers.
    pub segment: i64,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub caller: Option<String>,
    pub dialed: Option<String>,
}

/// The recording service the calls share.
#[derive(Debug, Clone)]
pub struct Recordings {
    pub config: RecordingConfig,
    data_dir: PathBuf,
    sink: RecordSink,
    /// Every recorder task: the daemon waits for them before it stops.
    tasks: TaskTracker,
}

/// A call recording just started: give `tap` to the bridge
/// ([`crate::media::bridge::BridgeHandle::add_tap`]); keep `control` to
/// mask, mark and stop it.
pub struct StartedRecording {
    pub id: String,
    pub path: String,
    pub tap: mpsc::Sender<TapEvent>,
    pub control: RecorderControl,
}

impl Recordings {
    pub fn new(config: RecordingConfig, data_dir: PathBuf, sink: RecordSink) -> Recordings {
        Recordings {
            config,
            data_dir,
            sink,
            tasks: TaskTracker::new(),
        }
    }

    /// Recordings being written now (finishing ones included).
    pub fn active(&self) -> usize {
        self.tasks.len()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Starts recording a bridged call whose bridge started at `t0`
    /// (`wall` on the wall clock); the recorder runs at `at` (the bridge's
    /// media thread).
    pub fn start_call(
        &self,
        meta: RecordingMeta,
        t0: Instant,
        wall: DateTime<Utc>,
        at: &crate::media::media_threads::Spawner,
    ) -> StartedRecording {
        let id = crate::store::new_uid();
        let path = format!(
            "{FOLDER}/{}/{}-{}-{}.wav",
            wall.format("%Y/%m/%d"),
            wall.format("%H%M%S"),
            safe_file_stem(&meta.call_id),
            meta.segment
        );
        let row = RecordingRow {
            id: id.clone(),
            call_id: meta.call_id,
            kind: RecordingKind::Call,
            segment: meta.segment,
            agent: meta.agent,
            queue: meta.queue,
            caller: meta.caller,
            dialed: meta.dialed,
            path: path.clone(),
            channels: 2,
            started_at: wall,
            ended_at: None,
            duration_ms: None,
            size_bytes: None,
            sha256: None,
            masked_ms: 0,
            status: RecordingStatus::Recording,
            deleted_at: None,
        };
        let (tap, taps) = mpsc::channel(TAP_CAPACITY);
        let control = recorder::spawn(
            &self.tasks,
            at,
            row,
            self.data_dir.join(&path),
            t0,
            (tap.clone(), taps),
            self.sink.clone(),
        );
        StartedRecording {
            id,
            path,
            tap,
            control,
        }
    }

    /// Waits (up to `limit`) for every recording to be finished and its row
    /// queued; recordings still going are those of calls still up.
    pub async fn wait(&self, limit: std::time::Duration) -> bool {
        self.tasks.close();
        let done = tokio::time::timeout(limit, self.tasks.wait()).await.is_ok();
        self.tasks.reopen();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_their_keys() {
        assert!(RecordingConfig::default().validate().is_ok());
        let c = RecordingConfig {
            mask_keys: "7".into(),
            unmask_keys: "*".into(),
            retention_days: 40_000,
            ..Default::default()
        };
        let keys: Vec<String> = c
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["mask_keys", "unmask_keys", "retention_days"]);
        let c = RecordingConfig {
            mask_keys: "*7".into(),
            unmask_keys: "*7#".into(),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err()[0].key, "unmask_keys");
    }
}
