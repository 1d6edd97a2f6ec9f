//! The stereo timeline of a call recording (sans-IO): both sides' decoded
//! audio placed on one clock, the recording's, which starts when the call
//! is bridged. Left channel: the caller; right: the agent.
//!
//! Each side's frames are placed by their RTP timestamps while the stream
//! runs on (a lost packet leaves its 20 ms of silence, a late one whose
//! place has been written is dropped), and by their arrival time when a
//! stream starts, changes SSRC or jumps, or when its timestamps drift more
//! than [`DRIFT`] from the wall clock (a sender that stops while holding,
//! silence suppression without a timestamp jump). Positions count samples
//! at 8 kHz from the start.
//!
//! Output is taken in order up to a position: [`Timeline::flush`] gives
//! what is settled at `now` — everything older than [`LAG`] (a side that
//! sent nothing by then is silence there) — and [`Timeline::finish`] gives
//! the rest, up to the end, so a recording is exactly as long as the
//! bridged time whatever either side sent. Masked spans are silence on
//! both channels.
//!
//! A live monitor's voice (a supervisor whispering or barging in,
//! [`Timeline::push_voice`]) is placed by its arrival and summed, with
//! saturation, into the right channel: the center's side of the call, what
//! the agent and the supervisor said. It never holds the output back.

use std::collections::VecDeque;

/// Samples per millisecond.
const PER_MS: u64 = 8;
/// How long the output waits for a side's audio before calling it silence.
pub const LAG: u64 = 300 * PER_MS;
/// A stream this far from the wall clock is re-placed by arrival time.
pub const DRIFT: u64 = 400 * PER_MS;
/// A monitor's voice frame this late still follows the one before it.
const VOICE_JITTER: u64 = 60 * PER_MS;
/// The longest timestamp gap taken as loss within one stream.
const MAX_GAP: u32 = 5 * 8000;

/// Which channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Left,
    Right,
}

#[derive(Debug, Default)]
struct Lane {
    /// Samples from `Timeline::written` on.
    buf: VecDeque<i16>,
    /// Where the next frame of the running stream goes.
    next: u64,
    /// (SSRC, the timestamp expected next).
    stream: Option<(u32, u32)>,
}

/// A stereo recording's timeline.
#[derive(Debug, Default)]
pub struct Timeline {
    lanes: [Lane; 2],
    /// Monitors' voices, from `written` on, added to the right channel.
    voice: VecDeque<i16>,
    /// Where the next voice frame goes (at the earliest).
    voice_next: u64,
    /// Output so far (frames).
    written: u64,
    /// Masked spans: start, end (None while open).
    masks: Vec<(u64, Option<u64>)>,
    masked: u64,
    late_dropped: u64,
}

/// Position of a time `ms` after the start.
pub fn position_ms(ms: u64) -> u64 {
    ms * PER_MS
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Frames output so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Frames output as silence because masked.
    pub fn masked(&self) -> u64 {
        self.masked
    }

    /// Frames dropped because their place was already written.
    pub fn late_dropped(&self) -> u64 {
        self.late_dropped
    }

    /// A frame of `pcm` from `ch`'s stream `ssrc` with RTP `timestamp`,
    /// received at position `arrival`.
    pub fn push(&mut self, ch: Channel, arrival: u64, ssrc: u32, timestamp: u32, pcm: &[i16]) {
        let n = pcm.len() as u64;
        let lane = &mut self.lanes[ch as usize];
        let by_arrival = arrival.saturating_sub(n).max(lane.next);
        let mut pos = match lane.stream {
            Some((s, expected)) if s == ssrc => {
                let d = timestamp.wrapping_sub(expected);
                if d == 0 {
                    lane.next
                } else if d <= MAX_GAP {
                    lane.next + u64::from(d)
                } else if d.wrapping_neg() <= MAX_GAP {
                    // Older than what was placed: a duplicate or reordered
                    // packet whose place has passed.
                    self.late_dropped += 1;
                    return;
                } else {
                    by_arrival
                }
            }
            _ => by_arrival,
        };
        if pos + n + DRIFT < arrival || pos > arrival + DRIFT {
            pos = by_arrival.max(arrival.saturating_sub(n));
        }
        lane.stream = Some((ssrc, timestamp.wrapping_add(n as u32)));
        lane.next = lane.next.max(pos + n);
        if let Some((start, skip)) = self.place(pos, n) {
            let lane = &mut self.lanes[ch as usize];
            let end = start + pcm.len() - skip;
            if lane.buf.len() < end {
                lane.buf.resize(end, 0);
            }
            for (slot, &s) in lane.buf.range_mut(start..end).zip(&pcm[skip..]) {
                *slot = s;
            }
        }
    }

    /// Where a frame of `n` samples at `pos` goes in the buffers (which
    /// start at `written`), and how many of its first samples are before
    /// that (out already: cut); `None` if all of it is (dropped). Either
    /// counts as late.
    fn place(&mut self, pos: u64, n: u64) -> Option<(usize, usize)> {
        if pos + n <= self.written && n > 0 {
            self.late_dropped += 1;
            return None;
        }
        let skip = self.written.saturating_sub(pos).min(n);
        if skip > 0 {
            self.late_dropped += 1;
        }
        Some(((pos + skip - self.written) as usize, skip as usize))
    }

    /// A frame of a monitor's voice (decoded), received at position
    /// `arrival`: summed into the right channel there, after the voice
    /// frame before it. What falls before the output is dropped.
    pub fn push_voice(&mut self, arrival: u64, pcm: &[i16]) {
        let n = pcm.len() as u64;
        let by_arrival = arrival.saturating_sub(n);
        // Jitter (up to VOICE_JITTER late) keeps the voice contiguous; a
        // longer gap is a pause in what the phone sent.
        let mut pos = if by_arrival > self.voice_next + VOICE_JITTER {
            by_arrival
        } else {
            self.voice_next.max(by_arrival.saturating_sub(VOICE_JITTER))
        };
        if pos > arrival + DRIFT {
            pos = by_arrival;
        }
        self.voice_next = pos + n;
        let Some((start, skip)) = self.place(pos, n) else {
            return;
        };
        let end = start + pcm.len() - skip;
        if self.voice.len() < end {
            self.voice.resize(end, 0);
        }
        for (slot, &s) in self.voice.range_mut(start..end).zip(&pcm[skip..]) {
            *slot = slot.saturating_add(s);
        }
    }

    /// Masks (silences) both channels from position `at` until unmasked.
    /// What is output already stays as it is.
    pub fn mask(&mut self, at: u64) {
        if !self.is_masked() {
            self.masks.push((at.max(self.written), None));
        }
    }

    pub fn unmask(&mut self, at: u64) {
        if let Some(last) = self.masks.last_mut() {
            if last.1.is_none() {
                last.1 = Some(at.max(last.0));
            }
        }
    }

    pub fn is_masked(&self) -> bool {
        self.masks.last().is_some_and(|m| m.1.is_none())
    }

    /// What is settled at position `now`, interleaved (left, right).
    pub fn flush(&mut self, now: u64, out: &mut Vec<i16>) {
        let settled = now.saturating_sub(LAG);
        let upto = self
            .lanes
            .iter()
            .map(|l| l.next.max(settled))
            .min()
            .unwrap_or(settled)
            .min(now);
        self.output(upto, out);
    }

    /// Everything up to the end at position `end` (later audio is dropped).
    pub fn finish(&mut self, end: u64, out: &mut Vec<i16>) {
        self.output(end, out);
        for lane in &mut self.lanes {
            lane.buf.clear();
        }
        self.voice.clear();
    }

    fn output(&mut self, upto: u64, out: &mut Vec<i16>) {
        if upto <= self.written {
            return;
        }
        let n = (upto - self.written) as usize;
        let start = out.len();
        // Interleave both lanes (the voice summed into the right), taking
        // what each holds and silence past it.
        out.resize(start + 2 * n, 0);
        {
            let frames = &mut out[start..];
            let [l, r] = &mut self.lanes;
            take_into(&mut l.buf, frames, 0, |_, s| s);
            take_into(&mut r.buf, frames, 1, |_, s| s);
            take_into(&mut self.voice, frames, 1, i16::saturating_add);
        }
        // Masked spans: silence on both channels.
        let written = self.written;
        self.masks.retain(|m| m.1.is_none_or(|end| end > written));
        for &(s, e) in &self.masks {
            let from = s.max(written);
            let to = e.unwrap_or(upto).min(upto);
            if from < to {
                let (a, b) = ((from - written) as usize, (to - written) as usize);
                out[start + 2 * a..start + 2 * b].fill(0);
                self.masked += to - from;
            }
        }
        self.written = upto;
    }
}

/// Takes the first samples of `buf` (as many as `frames` has frames, or
/// all it holds) into channel `ch` of the interleaved stereo `frames`,
/// combining each with what is there by `f`.
fn take_into(buf: &mut VecDeque<i16>, frames: &mut [i16], ch: usize, f: impl Fn(i16, i16) -> i16) {
    let k = (frames.len() / 2).min(buf.len());
    let (a, b) = buf.as_slices();
    let src = a.iter().chain(b).take(k);
    for (slot, &s) in frames[ch..].iter_mut().step_by(2).zip(src) {
        *slot = f(*slot, s);
    }
    buf.drain(..k);
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: usize = 160;

    fn left(out: &[i16]) -> Vec<i16> {
        out.iter().step_by(2).copied().collect()
    }

    fn right(out: &[i16]) -> Vec<i16> {
        out.iter().skip(1).step_by(2).copied().collect()
    }

    #[test]
    fn both_sides_on_one_clock_and_exactly_as_long_as_the_call() {
        let mut t = Timeline::new();
        // The caller from the start; the agent starts talking at 1 s.
        for i in 0..100u64 {
            t.push(
                Channel::Left,
                (i + 1) * 160,
                5,
                1000 + i as u32 * 160,
                &[100; F],
            );
        }
        for i in 0..50u64 {
            t.push(
                Channel::Right,
                8000 + (i + 1) * 160,
                6,
                7 + i as u32 * 160,
                &[-200; F],
            );
        }
        let mut out = Vec::new();
        t.flush(16000, &mut out);
        t.finish(24000, &mut out);
        assert_eq!(out.len(), 24000 * 2, "3 s of stereo");
        let (l, r) = (left(&out), right(&out));
        assert!(l[..16000].iter().all(|&s| s == 100));
        assert!(l[16000..].iter().all(|&s| s == 0), "the caller stopped");
        assert!(r[..8000].iter().all(|&s| s == 0));
        assert!(r[8000..16000].iter().all(|&s| s == -200));
    }

    #[test]
    fn loss_is_silence_in_place_and_late_packets_are_dropped() {
        let mut t = Timeline::new();
        t.push(Channel::Left, 160, 1, 0, &[1; F]);
        // 160 lost; 320 arrives, then 160 late.
        t.push(Channel::Left, 480, 1, 320, &[3; F]);
        t.push(Channel::Left, 500, 1, 160, &[2; F]);
        let mut out = Vec::new();
        t.finish(480, &mut out);
        let l = left(&out);
        assert!(l[..160].iter().all(|&s| s == 1));
        assert!(l[160..320].iter().all(|&s| s == 0));
        assert!(l[320..].iter().all(|&s| s == 3));
        assert_eq!(t.late_dropped(), 1);
    }

    #[test]
    fn flush_waits_for_a_side_only_up_to_the_lag() {
        let mut t = Timeline::new();
        for i in 0..10u64 {
            t.push(Channel::Left, (i + 1) * 160, 1, i as u32 * 160, &[9; F]);
        }
        let mut out = Vec::new();
        // The agent sent nothing: at 1600 only what is older than the lag.
        t.flush(1600, &mut out);
        assert_eq!(out.len(), 0, "1600 - lag is before anything");
        t.flush(LAG + 800, &mut out);
        assert_eq!(out.len() as u64, 800 * 2);
        // A frame that belongs partly before what is written is cut.
        t.push(Channel::Right, 900, 2, 0, &[5; F]);
        assert_eq!(t.late_dropped(), 1);
        t.finish(LAG + 1600, &mut out);
        assert_eq!(out.len() as u64, (LAG + 1600) * 2);
        let r = right(&out);
        assert!(r[..800].iter().all(|&s| s == 0));
        assert!(r[800..900].iter().all(|&s| s == 5));
    }

    #[test]
    fn a_frame_wholly_before_the_output_is_dropped_not_a_crash() {
        let mut t = Timeline::new();
        for i in 0..10u64 {
            t.push(Channel::Right, (i + 1) * 160, 1, i as u32 * 160, &[4; F]);
        }
        let mut out = Vec::new();
        // The other side sent nothing: the output runs past the right
        // lane's next place (by the lag) to 1800.
        t.flush(1800 + LAG, &mut out);
        assert_eq!(out.len() as u64, 1800 * 2);
        // The stream goes on by its timestamps (late, but within the
        // drift): its place, 1600..1760, is wholly written.
        let late = 1800 + LAG + 100;
        t.push(Channel::Right, late, 1, 1600, &[5; F]);
        assert_eq!(t.late_dropped(), 1);
        t.finish(late, &mut out);
        assert_eq!(out.len() as u64, late * 2);
        assert!(!right(&out).contains(&5), "dropped, not placed");
    }

    #[test]
    fn a_new_stream_or_a_stalled_one_is_placed_by_arrival() {
        let mut t = Timeline::new();
        t.push(Channel::Right, 160, 1, 0, &[1; F]);
        // The phone stops sending (hold) for 2 s, then resumes with the
        // timestamps running on as if it had not stopped.
        t.push(Channel::Right, 16000 + 160, 1, 160, &[2; F]);
        // A new SSRC (a transfer on the phone) at 3 s.
        t.push(Channel::Right, 24000 + 160, 9, 555, &[3; F]);
        let mut out = Vec::new();
        t.finish(24000 + 160, &mut out);
        let r = right(&out);
        assert_eq!(r[0], 1);
        assert!(r[160..16000].iter().all(|&s| s == 0));
        assert!(r[16000..16160].iter().all(|&s| s == 2));
        assert!(r[24000..].iter().all(|&s| s == 3));
    }

    #[test]
    fn a_monitors_voice_is_summed_into_the_right_channel_by_arrival() {
        let mut t = Timeline::new();
        for i in 0..50u64 {
            t.push(Channel::Left, (i + 1) * 160, 1, i as u32 * 160, &[7; F]);
            t.push(Channel::Right, (i + 1) * 160, 2, i as u32 * 160, &[8; F]);
        }
        // The supervisor whispers from 0.2 s to 0.6 s, its frames jittery:
        // two arrive together, each still goes after the one before.
        for i in 0..20u64 {
            let arrival = 1600 + (i + 1) * 160 + if i == 5 { 160 } else { 0 };
            t.push_voice(arrival, &[100; F]);
        }
        // Near saturation: summed with saturation.
        t.push(Channel::Right, 8000 + 160, 2, 50 * 160, &[i16::MAX - 10; F]);
        t.push_voice(8000 + 160, &[100; F]);
        let mut out = Vec::new();
        t.finish(8000 + 160, &mut out);
        let (l, r) = (left(&out), right(&out));
        assert!(
            l[..8000].iter().all(|&s| s == 7),
            "the caller's channel untouched"
        );
        assert!(r[..1600].iter().all(|&s| s == 8));
        assert!(
            r[1600..4800].iter().all(|&s| s == 108),
            "{:?}",
            &r[1590..1610]
        );
        assert!(r[4800..8000].iter().all(|&s| s == 8));
        assert!(r[8000..].iter().all(|&s| s == i16::MAX));
        // A voice frame for what is written already is dropped.
        let before = t.late_dropped();
        t.push_voice(160, &[1; F]);
        assert_eq!(t.late_dropped(), before + 1);
    }

    #[test]
    fn masked_spans_are_silence_on_both_channels() {
        let mut t = Timeline::new();
        for i in 0..50u64 {
            t.push(Channel::Left, (i + 1) * 160, 1, i as u32 * 160, &[7; F]);
            t.push(Channel::Right, (i + 1) * 160, 2, i as u32 * 160, &[8; F]);
        }
        t.mask(1600);
        assert!(t.is_masked());
        t.unmask(4800);
        let mut out = Vec::new();
        t.finish(8000, &mut out);
        let (l, r) = (left(&out), right(&out));
        assert!(l[..1600].iter().all(|&s| s == 7));
        assert!(l[1600..4800].iter().chain(&r[1600..4800]).all(|&s| s == 0));
        assert!(l[4800..].iter().all(|&s| s == 7) && r[4800..].iter().all(|&s| s == 8));
        assert_eq!(t.masked(), 3200);
    }
}
