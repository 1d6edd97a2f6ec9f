//! The waveform picture of a recording for the QC call page: an SVG (no
//! JavaScript) with one lane per channel — caller above, agent below for a
//! call; one lane for a voice message — each column the peak level of its
//! slice of the recording, the holds and masks of the recording's timeline
//! shaded, and a time axis.
//!
//! [`peaks`] reads the file (blocking: call it from `spawn_blocking`);
//! [`svg`] is pure. [`PeaksCache`] keeps the peaks of the recordings viewed
//! last, so a recording is read once, not on every view: a finished
//! recording does not change, and its key holds its checksum, so a file
//! repaired or rewritten is read again.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::store::RecordingMarkRow;

/// Columns of the picture.
pub const COLUMNS: usize = 800;

/// Peak levels of a recording, per channel and column (0..=1).
#[derive(Debug, Clone, PartialEq)]
pub struct Peaks {
    pub channels: Vec<Vec<f32>>,
    /// Length of the recording.
    pub duration_ms: u64,
}

/// Peaks of this many recordings are kept (about 6 KiB each).
pub const CACHED: usize = 256;

/// The peaks of the recordings viewed last, by key (the recording's id and
/// checksum); the oldest entry goes when [`CACHED`] are kept.
#[derive(Debug, Default)]
pub struct PeaksCache {
    inner: Mutex<CacheEntries>,
}

/// The entries, and their keys oldest first.
#[derive(Debug, Default)]
struct CacheEntries {
    map: HashMap<String, Arc<Peaks>>,
    order: VecDeque<String>,
}

impl PeaksCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<Arc<Peaks>> {
        self.inner.lock().ok()?.map.get(key).cloned()
    }

    pub fn put(&self, key: String, peaks: Arc<Peaks>) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let CacheEntries { map, order } = &mut *guard;
        if map.insert(key.clone(), peaks).is_none() {
            order.push_back(key);
        }
        while order.len() > CACHED {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `path` (a 16-bit PCM WAV) into `columns` peaks per channel.
pub fn peaks(path: &Path, columns: usize) -> Result<Peaks, hound::Error> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(hound::Error::Unsupported);
    }
    let ch = usize::from(spec.channels.max(1));
    let frames = reader.duration() as usize;
    let columns = columns.max(1);
    let per = frames.div_ceil(columns).max(1);
    let mut out = vec![vec![0f32; columns]; ch];
    for (i, s) in reader.samples::<i16>().enumerate() {
        let s = s?;
        let (frame, c) = (i / ch, i % ch);
        let col = (frame / per).min(columns - 1);
        let v = f32::from(s.unsigned_abs().min(32767)) / 32767.0;
        if v > out[c][col] {
            out[c][col] = v;
        }
    }
    Ok(Peaks {
        channels: out,
        duration_ms: (frames as u64) * 1000 / u64::from(spec.sample_rate.max(1)),
    })
}

/// Spans of the timeline between a start mark and its end mark (an open
/// span runs to the end), in ms.
fn spans(marks: &[RecordingMarkRow], start: &str, end: &str, until: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for m in marks {
        let at = m.at_ms.max(0) as u64;
        if m.kind == start && open.is_none() {
            open = Some(at);
        } else if m.kind == end {
            if let Some(s) = open.take() {
                out.push((s, at.max(s)));
            }
        }
    }
    if let Some(s) = open {
        out.push((s, until.max(s)));
    }
    out
}

/// `mm:ss` of a time in ms.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// The SVG of `peaks` with `marks` shaded; `labels` name the lanes.
pub fn svg(peaks: &Peaks, marks: &[RecordingMarkRow], labels: &[&str]) -> String {
    const LANE: f32 = 60.0;
    const AXIS: f32 = 18.0;
    let cols = peaks.channels.first().map_or(1, Vec::len).max(1);
    let lanes = peaks.channels.len().max(1);
    let width = cols as f32;
    let height = LANE * lanes as f32 + AXIS;
    let dur = peaks.duration_ms.max(1);
    let x_of = |ms: u64| (ms.min(dur) as f32) / dur as f32 * width;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="none" role="img" aria-label="waveform, {len}">"##,
        len = clock(peaks.duration_ms)
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#fbfbfb"/>"##
    );
    let shades = [
        ("hold", "resume", "hold", "#fde9b8"),
        ("mask", "unmask", "masked", "#d9d9d9"),
    ];
    for (start, end, what, fill) in shades {
        for (a, b) in spans(marks, start, end, dur) {
            let _ = write!(
                s,
                r##"<rect class="{start}" x="{:.1}" y="0" width="{:.1}" height="{}" fill="{fill}"><title>{what} {}–{}</title></rect>"##,
                x_of(a),
                (x_of(b) - x_of(a)).max(1.0),
                LANE * lanes as f32,
                clock(a),
                clock(b)
            );
        }
    }
    for (lane, chan) in peaks.channels.iter().enumerate() {
        let mid = LANE * lane as f32 + LANE / 2.0;
        let mut d = String::new();
        for (x, &p) in chan.iter().enumerate() {
            let h = (p * (LANE / 2.0 - 2.0)).max(0.5);
            let _ = write!(d, "M{x} {:.1}V{:.1}", mid - h, mid + h);
        }
        let color = if lane == 0 { "#2a6fb0" } else { "#b0552a" };
        let _ = write!(
            s,
            r##"<path d="{d}" stroke="{color}" stroke-width="1" fill="none"/>"##
        );
        let label = labels.get(lane).copied().unwrap_or("");
        let _ = write!(
            s,
            r##"<text x="4" y="{:.0}" font-size="11" fill="#333">{}</text>"##,
            LANE * lane as f32 + 12.0,
            escape(label)
        );
    }
    // Axis: a tick every so many seconds, about ten over the width.
    let step = [1u64, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800]
        .into_iter()
        .map(|s| s * 1000)
        .find(|&s| dur / s <= 10)
        .unwrap_or(3_600_000);
    let axis_y = LANE * lanes as f32;
    let mut t = 0;
    while t <= dur {
        let x = x_of(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{axis_y}" x2="{x:.1}" y2="{:.0}" stroke="#999"/><text x="{:.1}" y="{:.0}" font-size="10" fill="#555">{}</text>"##,
            axis_y + 4.0,
            x + 2.0,
            axis_y + 14.0,
            clock(t)
        );
        t += step;
    }
    s.push_str("</svg>");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::wav_file::WavFile;

    fn mark(at_ms: i64, kind: &str) -> RecordingMarkRow {
        RecordingMarkRow {
            uid: format!("{kind}{at_ms}"),
            recording_id: "r".into(),
            at_ms,
            kind: kind.into(),
            detail: None,
        }
    }

    #[test]
    fn the_cache_keeps_the_last_recordings_viewed() {
        let cache = PeaksCache::new();
        let p = |ms| {
            Arc::new(Peaks {
                channels: vec![vec![0.5; 4]],
                duration_ms: ms,
            })
        };
        assert!(cache.get("r0").is_none());
        for i in 0..CACHED + 10 {
            cache.put(format!("r{i}"), p(i as u64));
        }
        assert_eq!(cache.len(), CACHED);
        assert!(cache.get("r9").is_none(), "the oldest went");
        assert_eq!(cache.get("r10").map(|x| x.duration_ms), Some(10));
        // Put again under the same key: replaced, not counted twice.
        cache.put("r10".into(), p(7));
        assert_eq!(cache.len(), CACHED);
        assert_eq!(cache.get("r10").map(|x| x.duration_ms), Some(7));
    }

    #[test]
    fn peaks_follow_each_channel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recordings/a.wav");
        let mut w = WavFile::create(&path, 2).unwrap();
        // 1 s: caller loud in the first half, agent loud in the second.
        let mut s = Vec::new();
        for i in 0..8000 {
            let (l, r) = if i < 4000 { (16000, 0) } else { (0, -32000) };
            s.extend_from_slice(&[l, r]);
        }
        w.append(&s).unwrap();
        w.finish().unwrap();
        let p = peaks(&path, 10).unwrap();
        assert_eq!(p.duration_ms, 1000);
        assert_eq!(p.channels.len(), 2);
        assert!(p.channels[0][..5].iter().all(|&v| (v - 0.488).abs() < 0.01));
        assert!(p.channels[0][5..].iter().all(|&v| v == 0.0));
        assert!(p.channels[1][5..].iter().all(|&v| v > 0.97));
    }

    #[test]
    fn the_picture_is_svg_with_holds_masks_and_an_axis() {
        let p = Peaks {
            channels: vec![vec![0.5; 100], vec![0.1; 100]],
            duration_ms: 95_000,
        };
        let marks = [
            mark(10_000, "hold"),
            mark(20_000, "resume"),
            mark(30_000, "mask"),
        ];
        let svg = svg(&p, &marks, &["caller <1>", "agent"]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"hold\"").count(), 1);
        assert!(svg.contains("<title>hold 00:10–00:20</title>"));
        // An open mask runs to the end.
        assert!(svg.contains("<title>masked 00:30–01:35</title>"));
        assert!(svg.contains("caller &lt;1&gt;"), "labels escaped");
        assert!(svg.contains(">01:30<"), "ticks every 10 s");
        assert_eq!(clock(83_000), "01:23");
    }
}
