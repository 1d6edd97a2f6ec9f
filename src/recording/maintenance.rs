//! Recordings' upkeep: repairing the files of a daemon that was killed
//! while recording (at start-up), and deleting recordings past their
//! retention period (at start-up and then daily), each deletion logged and
//! written to the audit log.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::wav_file;
use crate::store::{
    AuditRow, RecordSink, RecordingFilter, RecordingRow, RecordingStatus, Store, StoreError,
};

/// The file of a recording row, if its stored path is a plain relative
/// path under the recordings folder (anything else is refused, so no row
/// — however it got there — reaches a file outside the folder).
pub fn file_of(data_dir: &Path, stored: &str) -> Option<PathBuf> {
    let rel = Path::new(stored);
    let mut parts = rel.components();
    if parts.next() != Some(Component::Normal(super::FOLDER.as_ref())) {
        return None;
    }
    if !parts.all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(data_dir.join(rel))
}

/// Puts right every recording left `recording` by a daemon that stopped
/// without finishing it: the file's header is set from its length (every
/// whole frame on disk plays) and the row becomes `interrupted` with its
/// duration, size and checksum; a missing file makes it `failed`. Runs
/// before calls are taken, so no row is being recorded now. Returns how
/// many rows were repaired.
pub async fn repair_interrupted(store: &Store, data_dir: &Path) -> Result<usize, StoreError> {
    let rows = store
        .recordings(RecordingFilter {
            status: Some(RecordingStatus::Recording),
            ..Default::default()
        })
        .await?;
    let mut fixed = Vec::new();
    for mut row in rows {
        let repaired = match file_of(data_dir, &row.path) {
            Some(path) => {
                let channels = row.channels as u16;
                tokio::task::spawn_blocking(move || wav_file::repair(&path, channels))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            }
            None => Err(std::io::Error::other("path outside the recordings folder")),
        };
        match repaired {
            Ok(s) => {
                row.status = RecordingStatus::Interrupted;
                row.duration_ms = Some(s.duration_ms());
                row.size_bytes = Some(s.size as i64);
                row.sha256 = Some(s.sha256.clone());
                row.ended_at =
                    Some(row.started_at + chrono::Duration::milliseconds(s.duration_ms()));
                warn!(recording = %row.id, call_id = %row.call_id, ms = s.duration_ms(),
                    "recording interrupted by a stop of the daemon; file repaired");
            }
            Err(e) => {
                row.status = RecordingStatus::Failed;
                warn!(recording = %row.id, file = %row.path, error = %e,
                    "recording interrupted and its file cannot be repaired");
            }
        }
        fixed.push(row);
    }
    store.save_recordings(&fixed).await?;
    Ok(fixed.len())
}

/// Deletes the files of recordings that started before `now - days` and
/// marks their rows `deleted`, each deletion logged and audited (actor
/// `system`). Returns how many were deleted.
pub async fn delete_expired(
    store: &Store,
    sink: &RecordSink,
    data_dir: &Path,
    days: u32,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let mut deleted = 0;
    for status in [
        RecordingStatus::Complete,
        RecordingStatus::Interrupted,
        RecordingStatus::Failed,
    ] {
        let rows = store
            .recordings(RecordingFilter {
                to: Some(cutoff),
                status: Some(status),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        for row in rows {
            if delete_one(sink, data_dir, row, days, now).await {
                deleted += 1;
            }
        }
    }
    if deleted > 0 {
        sink.flush().await;
    }
    Ok(deleted)
}

async fn delete_one(
    sink: &RecordSink,
    data_dir: &Path,
    mut row: RecordingRow,
    days: u32,
    now: DateTime<Utc>,
) -> bool {
    let Some(path) = file_of(data_dir, &row.path) else {
        warn!(recording = %row.id, file = %row.path, "not deleting a recording whose path is outside the recordings folder");
        return false;
    };
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(e) = removed {
        warn!(recording = %row.id, file = %row.path, error = %e, "cannot delete an expired recording; will retry");
        return false;
    }
    info!(recording = %row.id, call_id = %row.call_id, file = %row.path, retention_days = days,
        "expired recording deleted");
    let mut audit = AuditRow::now(
        "system",
        "delete_recording",
        Some(format!("recording:{}", row.id)),
        Some(format!("retention {days} days; file {}", row.path)),
    );
    audit.at = now;
    row.status = RecordingStatus::Deleted;
    row.deleted_at = Some(now);
    let _ = sink.submit_recording(row).await;
    let _ = sink.submit_audit(audit).await;
    true
}

/// Runs [`delete_expired`] now and then every day until `stop`.
pub async fn run_retention(
    store: Store,
    sink: RecordSink,
    data_dir: PathBuf,
    days: u32,
    clock: crate::call::WallClock,
    stop: tokio_util::sync::CancellationToken,
) {
    if days == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        match delete_expired(&store, &sink, &data_dir, days, clock.now()).await {
            Ok(0) => {}
            Ok(n) => info!(deleted = n, retention_days = days, "retention run done"),
            Err(e) => warn!(error = %e, "retention run failed; next run tomorrow"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_folder_are_files() {
        let d = Path::new("/data");
        assert_eq!(
            file_of(d, "recordings/2026/12/02/a.wav"),
            Some(PathBuf::from("/data/recordings/2026/12/02/a.wav"))
        );
        for bad in [
            "recordings/../hotline.db",
            "/etc/passwd",
            "voicemail/a.wav",
            "recordings/./a.wav/..",
            "../recordings/a.wav",
            "",
        ] {
            assert_eq!(file_of(d, bad), None, "{bad}");
        }
    }
}
