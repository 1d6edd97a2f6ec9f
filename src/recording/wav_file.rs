//! A WAV file that stays playable while it grows: 8 kHz 16-bit PCM, mono
//! or stereo, written in chunks by the recorder. After every chunk the two
//! size fields of the header (RIFF size at byte 4, data size at byte 40)
//! are rewritten in place, so a player (or `hound`) reads every chunk
//! written so far, even when the daemon is killed mid-call. A file whose
//! daemon died between a chunk and its header update is put right by
//! [`repair`] at start-up.
//!
//! Blocking file I/O: call these from `spawn_blocking`, never on a runtime
//! worker that carries calls or media.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Sample rate of every recording.
pub const SAMPLE_RATE: u32 = 8000;
/// The canonical 44-byte header: RIFF, `fmt ` (PCM), `data`.
pub const HEADER_LEN: u64 = 44;

/// A recording file being written.
#[derive(Debug)]
pub struct WavFile {
    file: File,
    path: PathBuf,
    channels: u16,
    data_bytes: u64,
}

/// What a finished file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavSummary {
    /// Frames (samples per channel).
    pub frames: u64,
    /// Bytes of the whole file.
    pub size: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
}

impl WavSummary {
    pub fn duration_ms(&self) -> i64 {
        (self.frames * 1000 / u64::from(SAMPLE_RATE)) as i64
    }
}

fn header(channels: u16, data_bytes: u32) -> [u8; HEADER_LEN as usize] {
    let block_align = channels * 2;
    let byte_rate = SAMPLE_RATE * u32::from(block_align);
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.wrapping_add(data_bytes)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Data bytes a WAV's 32-bit size fields can describe.
const MAX_DATA: u64 = u32::MAX as u64 - 36;

impl WavFile {
    /// Creates `path` (and its folders) with an empty data chunk. Fails if
    /// the file exists: a recording never overwrites another.
    pub fn create(path: &Path, channels: u16) -> io::Result<WavFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(path)?;
        file.write_all(&header(channels, 0))?;
        Ok(WavFile {
            file,
            path: path.to_path_buf(),
            channels,
            data_bytes: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.data_bytes / (u64::from(self.channels) * 2)
    }

    /// Appends samples (interleaved when stereo) and updates the header.
    pub fn append(&mut self, samples: &[i16]) -> io::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let bytes = samples.len() as u64 * 2;
        if self.data_bytes + bytes > MAX_DATA {
            return Err(io::Error::other(
                "recording longer than a WAV file can hold",
            ));
        }
        let mut buf = Vec::with_capacity(bytes as usize);
        for s in samples {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        self.file.write_all_at(&buf, HEADER_LEN + self.data_bytes)?;
        self.data_bytes += bytes;
        self.write_sizes()
    }

    fn write_sizes(&self) -> io::Result<()> {
        let data = self.data_bytes as u32;
        self.file.write_all_at(&(36 + data).to_le_bytes(), 4)?;
        self.file.write_all_at(&data.to_le_bytes(), 40)
    }

    /// Flushes to disk and sums the file.
    pub fn finish(self) -> io::Result<WavSummary> {
        self.write_sizes()?;
        self.file.sync_data()?;
        let frames = self.frames();
        let (size, sha256) = checksum(&self.path)?;
        Ok(WavSummary {
            frames,
            size,
            sha256,
        })
    }
}

/// Size and SHA-256 of a file.
pub fn checksum(path: &Path) -> io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Puts a recording's header right after a crash: the sizes are set from
/// the file's length (a partly written last frame is cut off), so every
/// whole frame on disk plays. A file shorter than a header gets an empty
/// one. Returns the summary of the repaired file.
pub fn repair(path: &Path, channels: u16) -> io::Result<WavSummary> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.seek(SeekFrom::End(0))?;
    let block = u64::from(channels) * 2;
    let data = len.saturating_sub(HEADER_LEN).min(MAX_DATA) / block * block;
    file.set_len(HEADER_LEN + data)?;
    file.write_all_at(&header(channels, data as u32), 0)?;
    file.sync_data()?;
    drop(file);
    let (size, sha256) = checksum(path)?;
    Ok(WavSummary {
        frames: data / block,
        size,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_while_growing_and_after_finishing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("2026/12/02/a.wav");
        let mut w = WavFile::create(&path, 2).unwrap();
        w.append(&[1, -1, 2, -2]).unwrap();
        // Readable now, with both frames.
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.spec().sample_rate, 8000);
        assert_eq!(r.duration(), 2);
        w.append(&[3, -3]).unwrap();
        let s = w.finish().unwrap();
        assert_eq!(s.frames, 3);
        assert_eq!(s.size, 44 + 12);
        let samples: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .collect();
        assert_eq!(samples, [1, -1, 2, -2, 3, -3]);
        assert_eq!(s.sha256, checksum(&path).unwrap().1);
        assert_eq!(s.sha256.len(), 64);
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        WavFile::create(&path, 1).unwrap();
        assert!(WavFile::create(&path, 1).is_err());
    }

    #[test]
    fn repair_sets_sizes_from_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let mut w = WavFile::create(&path, 2).unwrap();
        w.append(&[5; 8]).unwrap();
        drop(w);
        // Data written after the last header update, with a torn frame.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 4 * 3 + 2]).unwrap();
        drop(f);
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 4);
        let s = repair(&path, 2).unwrap();
        assert_eq!(s.frames, 7);
        assert_eq!(s.size, 44 + 28);
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 7);
        // A file cut inside its header gets an empty, valid one.
        let short = dir.path().join("b.wav");
        std::fs::write(&short, b"RIFF").unwrap();
        assert_eq!(repair(&short, 1).unwrap().frames, 0);
        assert_eq!(hound::WavReader::open(&short).unwrap().duration(), 0);
    }
}
