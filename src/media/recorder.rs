//! Recording what a caller says to a mono WAV file (voice messages).
//!
//! The RTP session hands each received frame to a bounded channel (its tap);
//! a recorder task — never the RTP loop — decodes G.711 into 8 kHz 16-bit
//! samples and hands a second at a time to the blocking pool to append to
//! a [`WavFile`], whose header is valid after every append, so a file stays
//! playable if the daemon is killed while recording. Gaps in the RTP
//! timestamps (lost packets, DTMF events, a pause in sending) are filled
//! with silence, so the file's length follows the caller's clock.

use super::g711;
use super::session::ReceivedFrame;
use super::Codec;
use crate::recording::wav_file::WavFile;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

/// Frames queued between the RTP task and the recorder (2 s of audio).
pub const TAP_QUEUE: usize = 100;
/// The longest gap filled with silence; longer jumps (a new stream) are not.
const MAX_GAP_SAMPLES: u32 = 8000 * 5;
/// Samples collected before they are appended to the file.
const WRITE_EVERY: usize = 8000;

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub path: PathBuf,
    pub samples: u64,
    /// Bytes of the file.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

impl Recording {
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples * 125)
    }
}

/// A recording in progress: feed `tap` to the media session; drop the tap
/// (or stop the session's tap) and await `finish` for the result.
pub struct Recorder {
    pub tap: mpsc::Sender<ReceivedFrame>,
    task: tokio::task::JoinHandle<Result<Recording, RecorderError>>,
}

impl Recorder {
    /// Creates `path` (and its folder) and starts the writer task.
    pub fn start(path: &Path, codec: Codec) -> Result<Recorder, RecorderError> {
        let wav = WavFile::create(path, 1).map_err(|source| RecorderError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        let task = tokio::spawn(write_frames(wav, rx, codec));
        Ok(Recorder { tap: tx, task })
    }

    /// Waits for the writer to drain and close the file. Every sender of
    /// the tap must be gone (the session's tap detached, `self.tap` dropped).
    pub async fn finish(self) -> Result<Recording, RecorderError> {
        drop(self.tap);
        match self.task.await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Appends `samples` on the blocking pool; gives the file and buffer back.
async fn append(mut wav: WavFile, samples: Vec<i16>) -> (WavFile, Vec<i16>, std::io::Result<()>) {
    let r = tokio::task::spawn_blocking(move || {
        let r = wav.append(&samples);
        (wav, samples, r)
    })
    .await;
    match r {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn write_frames(
    mut wav: WavFile,
    mut rx: mpsc::Receiver<ReceivedFrame>,
    codec: Codec,
) -> Result<Recording, RecorderError> {
    let path = wav.path().to_path_buf();
    let err = |source| RecorderError::Write {
        path: path.clone(),
        source,
    };
    let mut pending: Vec<i16> = Vec::with_capacity(WRITE_EVERY + 480);
    let mut samples: u64 = 0;
    let mut next_ts: Option<(u32, u32)> = None; // (ssrc, expected timestamp)
    while let Some(frame) = rx.recv().await {
        // Fill a gap in the same stream with silence (RFC 3550 timestamps
        // count samples).
        if let Some((ssrc, expected)) = next_ts {
            if ssrc == frame.ssrc {
                let gap = frame.timestamp.wrapping_sub(expected);
                if gap > 0 && gap <= MAX_GAP_SAMPLES {
                    pending.resize(pending.len() + gap as usize, 0);
                    samples += u64::from(gap);
                } else if gap > u32::MAX / 2 {
                    // A late (reordered) packet whose place has passed.
                    continue;
                }
            }
        }
        let before = pending.len();
        g711::decode(codec, &frame.payload, &mut pending);
        let n = pending.len() - before;
        samples += n as u64;
        next_ts = Some((frame.ssrc, frame.timestamp.wrapping_add(n as u32)));
        if pending.len() >= WRITE_EVERY {
            let (w, mut buf, r) = append(wav, pending).await;
            r.map_err(err)?;
            buf.clear();
            wav = w;
            pending = buf;
        }
    }
    let (wav, _, r) = append(wav, pending).await;
    r.map_err(err)?;
    let summary = tokio::task::spawn_blocking(move || wav.finish())
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(err)?;
    Ok(Recording {
        path,
        samples,
        size: summary.size,
        sha256: summary.sha256,
    })
}

/// A file name made only of safe characters from a Call-ID (which the
/// caller chose), so no request can name a path outside the folder.
pub fn safe_file_stem(call_id: &str) -> String {
    let mut s: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(ts: u32, byte: u8) -> ReceivedFrame {
        ReceivedFrame {
            ssrc: 7,
            sequence: (ts / 160) as u16,
            timestamp: ts,
            marker: false,
            payload: Bytes::from(vec![byte; 160]),
        }
    }

    #[tokio::test]
    async fn writes_frames_and_fills_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/msg.wav");
        let rec = Recorder::start(&path, Codec::Pcmu).unwrap();
        // 0x80 decodes to a loud sample in μ-law.
        rec.tap.send(frame(1000, 0x80)).await.unwrap();
        rec.tap.send(frame(1160, 0x80)).await.unwrap();
        // One frame lost: 1320 missing.
        rec.tap.send(frame(1480, 0x80)).await.unwrap();
        // A reordered late frame is dropped.
        rec.tap.send(frame(1320, 0x80)).await.unwrap();
        let r = rec.finish().await.unwrap();
        assert_eq!(r.samples, 160 * 4);
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        let s: Vec<i16> = reader.into_samples().map(|s| s.unwrap()).collect();
        assert_eq!(s.len(), 640);
        assert!(s[..320].iter().all(|&x| x.abs() > 1000));
        assert!(s[320..480].iter().all(|&x| x == 0), "the gap is silence");
        assert!(s[480..].iter().all(|&x| x.abs() > 1000));
    }

    #[tokio::test]
    async fn file_is_playable_before_it_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.wav");
        let rec = Recorder::start(&path, Codec::Pcma).unwrap();
        for i in 0..60u32 {
            rec.tap.send(frame(i * 160, 0xD5)).await.unwrap();
        }
        // Let the writer catch up, then read the file while it is open.
        let mut len = 0;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            len = hound::WavReader::open(&path).unwrap().len();
            if len >= 8000 {
                break;
            }
        }
        assert!(len >= 8000, "header updated while recording: {len}");
        let r = rec.finish().await.unwrap();
        assert_eq!(r.samples, 60 * 160);
        assert_eq!(r.duration(), Duration::from_millis(1200));
    }

    #[test]
    fn call_ids_cannot_escape_the_folder() {
        assert_eq!(safe_file_stem("../../etc/passwd"), "______etc_passwd");
        assert_eq!(safe_file_stem("abc-1@host"), "abc-1_host");
        assert_eq!(safe_file_stem(""), "_");
    }
}
