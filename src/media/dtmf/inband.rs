//! In-band DTMF tone detection (Goertzel) on 8 kHz linear audio.
//!
//! For gateways that send keys as tones in the G.711 audio. Runs on every
//! received frame of every call in the IVR, so the hot path is a fixed-size
//! Goertzel recurrence in `f32` with precomputed coefficients, no allocation
//! and no per-sample branching beyond block boundaries.
//!
//! # Method
//!
//! Audio is cut into blocks of [`BLOCK`] = 102 samples (12.75 ms),
//! independent of the 160-sample frames it arrives in (an internal fixed
//! buffer carries partial blocks over). For each block the 8 DTMF
//! frequencies are measured with the Goertzel recurrence, run as two halves
//! of 51 samples: the halves combine coherently into the full-block
//! magnitude, and the phase advance from one half to the other gives the
//! tone's actual frequency.
//!
//! A block is a *hit* for a key when all of these hold (ITU-T Q.24 leaves
//! the figures to each administration; these are the choices made here):
//!
//! | check | value |
//! |---|---|
//! | level of each tone | ≥ −30 dBm0 (0 dBm0 = sine of peak 22 500, G.711 full scale is +3.1 dBm0) |
//! | twist, high-group level minus low-group level | from −8 dB (reverse twist: high group weaker, as after a long line) to +4 dB (normal twist: high group pre-emphasised) |
//! | strongest row/column vs the others of its group | ≥ 8 dB above each |
//! | the two tones' share of the block's energy | ≥ 60 % (rejects speech, music, noise) |
//! | frequency of each tone, measured | within ±2.5 % of nominal (Q.24: operate within ±1.5 %, do not operate beyond ±3.5 %) |
//! | second harmonic of each tone | ≥ 15 dB below it, after allowing for the other tone's spectral leakage (rejects voiced speech and music) |
//!
//! Key presses are then timed (Q.24: recognise ≥ 40 ms, reject short
//! bursts; pauses ≥ 40 ms separate digits, short interruptions do not):
//!
//! - a run of hit blocks for one key is a tone; its length is measured to
//!   within a few samples, not blocks: every block of the run, and the block
//!   on each side of it, contributes its amplitude at the key's two
//!   frequencies divided by the run's largest (full-block) amplitude, so a
//!   block half covered by the tone counts half;
//! - a tone is reported once it has lasted [`MIN_TONE_SAMPLES`] (35 ms) and
//!   covers at least two whole blocks: a 40 ms press is reported, a 30 ms
//!   burst is not. A held key is reported as soon as it reaches 35 ms, so
//!   it can interrupt a prompt;
//! - after a report the key is *held* until [`GAP_BLOCKS`] consecutive
//!   blocks (≈ 25–38 ms of pause, depending on alignment) are not hits for
//!   it. Only then can another digit start: a key pressed twice with a
//!   50 ms pause gives two digits, a 10–20 ms drop-out (a lost packet)
//!   inside one press does not.
//!
//! Pure code: positions come from sample counts, never from a clock.

use std::f64::consts::PI;

/// Sample rate the detector is built for.
pub const SAMPLE_RATE: u32 = 8000;

/// Samples per analysis block (12.75 ms at 8 kHz).
pub const BLOCK: usize = 102;

/// Half a block: the Goertzel recurrence is restarted here to measure phase.
const HALF: usize = BLOCK / 2;

/// A tone must last this long to count (35 ms: between Q.24's 40 ms must
/// operate and the 30 ms bursts we must ignore).
pub const MIN_TONE_SAMPLES: f32 = 280.0;

/// Blocks without the held key before a new digit may start.
pub const GAP_BLOCKS: u32 = 3;

/// Low group (rows) then high group (columns), Hz.
const FREQS: [f64; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];

const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Power (mean square) of a 0 dBm0 sine in 16-bit linear PCM: peak 22 500.
const POWER_0DBM0: f32 = 22_500.0 * 22_500.0 / 2.0;
/// −30 dBm0.
const MIN_TONE_POWER: f32 = POWER_0DBM0 * 1e-3;
/// High group may be up to 4 dB stronger than the low group…
const MAX_NORMAL_TWIST: f32 = 2.511_886; // 10^(4/10)
/// …or up to 8 dB weaker.
const MAX_REVERSE_TWIST: f32 = 6.309_573; // 10^(8/10)
/// The chosen tone is this much above each other tone of its group (8 dB).
const GROUP_MARGIN: f32 = 6.309_573;
/// Share of the block's energy that the two tones must hold.
const MIN_TONE_SHARE: f32 = 0.6;
/// Largest accepted frequency deviation, relative.
const FREQ_TOLERANCE: f32 = 0.025;
/// Second harmonic at most −15 dB relative to its fundamental.
const MAX_HARMONIC: f32 = 0.031_622_8;

/// Per-frequency constants of the Goertzel filters.
#[derive(Debug, Clone, Copy)]
struct Coefs {
    /// 2·cos ω.
    two_cos: [f32; 8],
    /// cos ω, sin ω: to finish a half block, y = s1 − e^{−jω}·s2.
    cos: [f32; 8],
    sin: [f32; 8],
    /// e^{−jω·HALF}: aligns the second half's phase with the first's.
    rot_re: [f32; 8],
    rot_im: [f32; 8],
    /// 2·cos 2ω: second harmonic, over the whole block.
    harm_two_cos: [f32; 8],
    /// Power that a tone at column `c` (any frequency within tolerance)
    /// leaks into the second-harmonic bin of row `r`, relative to its own:
    /// `leak[r][c]`. 2×1394 Hz is only 58 Hz from 1336 Hz, for example.
    leak: [[f32; 4]; 4],
}

impl Coefs {
    fn new() -> Self {
        let w = |f: f64| 2.0 * PI * f / f64::from(SAMPLE_RATE);
        let mut c = Coefs {
            two_cos: [0.0; 8],
            cos: [0.0; 8],
            sin: [0.0; 8],
            rot_re: [0.0; 8],
            rot_im: [0.0; 8],
            harm_two_cos: [0.0; 8],
            leak: [[0.0; 4]; 4],
        };
        for (k, &f) in FREQS.iter().enumerate() {
            let w = w(f);
            c.two_cos[k] = (2.0 * w.cos()) as f32;
            c.cos[k] = w.cos() as f32;
            c.sin[k] = w.sin() as f32;
            c.rot_re[k] = (w * HALF as f64).cos() as f32;
            c.rot_im[k] = (-(w * HALF as f64).sin()) as f32;
            c.harm_two_cos[k] = (2.0 * (2.0 * w).cos()) as f32;
        }
        // Normalised rectangular-window response |D(Δω)|/N, squared, worst
        // case over the accepted frequency range, doubled for margin.
        let response = |dw: f64| {
            let n = BLOCK as f64;
            let den = (dw / 2.0).sin();
            if den.abs() < 1e-12 {
                1.0
            } else {
                ((n * dw / 2.0).sin() / (n * den)).powi(2)
            }
        };
        for (r, leaks) in c.leak.iter_mut().enumerate() {
            for (col, leak) in leaks.iter_mut().enumerate() {
                let harmonic = w(2.0 * FREQS[r]);
                let worst = (-10..=10)
                    .map(|i| {
                        let f = FREQS[4 + col]
                            * (1.0 + f64::from(FREQ_TOLERANCE) * f64::from(i) / 10.0);
                        response(harmonic - w(f))
                    })
                    .fold(0.0, f64::max);
                *leak = (2.0 * worst) as f32;
            }
        }
        c
    }
}

/// Where the detector is between key presses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Track {
    /// No tone.
    Idle,
    /// A run of hit blocks for `key` (index row·4 + column), not yet long
    /// enough. `amp_sum / amp_max` blocks of tone so far.
    Run {
        key: u8,
        hits: u32,
        amp_sum: f32,
        amp_max: f32,
    },
    /// `key` was reported and is still down, or was released less than
    /// [`GAP_BLOCKS`] blocks ago (`misses`).
    Held { key: u8, misses: u32 },
}

/// Digits found but not yet returned (more than one per `process` call only
/// when a caller hands in long stretches of audio at once).
const PENDING: usize = 16;

/// DTMF tone detector for one audio stream.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    coefs: Coefs,
    /// Samples of the current block (for the second-harmonic check).
    block: [f32; BLOCK],
    /// Samples in `block` so far.
    fill: usize,
    /// Goertzel state of the current half block.
    s1: [f32; 8],
    s2: [f32; 8],
    /// First half's result, y = s1 − e^{−jω}s2.
    y1_re: [f32; 8],
    y1_im: [f32; 8],
    /// Tone powers (mean square) of the last block and the one before.
    power: [f32; 8],
    prev_power: [f32; 8],
    track: Track,
    pending: [char; PENDING],
    pending_len: usize,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        Self::with_coefs(Coefs::new())
    }

    fn with_coefs(coefs: Coefs) -> Self {
        Self {
            coefs,
            block: [0.0; BLOCK],
            fill: 0,
            s1: [0.0; 8],
            s2: [0.0; 8],
            y1_re: [0.0; 8],
            y1_im: [0.0; 8],
            power: [0.0; 8],
            prev_power: [0.0; 8],
            track: Track::Idle,
            pending: ['\0'; PENDING],
            pending_len: 0,
        }
    }

    /// Feeds decoded 8 kHz samples (any length, typically one 160-sample
    /// frame). Returns a digit once, when a valid tone has lasted long enough.
    ///
    /// If one call completes several digits (only possible with several
    /// hundred ms of audio per call), the later ones are returned by the
    /// following calls, which may pass an empty slice to collect them.
    pub fn process(&mut self, samples: &[i16]) -> Option<char> {
        let mut pending = std::mem::take(&mut self.pending_len);
        let mut queue = self.pending;
        self.process_with(samples, |d| {
            if pending < PENDING {
                queue[pending] = d;
                pending += 1;
            }
        });
        self.pending = queue;
        self.pending_len = pending;
        if self.pending_len == 0 {
            return None;
        }
        let first = self.pending[0];
        self.pending.copy_within(1..self.pending_len, 0);
        self.pending_len -= 1;
        Some(first)
    }

    /// Feeds samples and calls `on_digit` for every digit completed, in
    /// order. Does not touch the queue used by [`process`](Self::process).
    pub fn process_with(&mut self, mut samples: &[i16], mut on_digit: impl FnMut(char)) {
        while !samples.is_empty() {
            let boundary = if self.fill < HALF { HALF } else { BLOCK };
            let take = (boundary - self.fill).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.run(now);
            samples = rest;
            if self.fill == HALF {
                let (re, im) = self.finish_half();
                self.y1_re = re;
                self.y1_im = im;
            } else if self.fill == BLOCK {
                if let Some(digit) = self.end_block() {
                    on_digit(digit);
                }
                self.fill = 0;
            }
        }
    }

    /// Forgets all state, as for a new stream.
    pub fn reset(&mut self) {
        *self = Self {
            coefs: self.coefs,
            ..Self::new()
        };
    }

    /// The hot loop: Goertzel recurrence for 8 frequencies, no boundary
    /// inside `samples`.
    fn run(&mut self, samples: &[i16]) {
        let two_cos = self.coefs.two_cos;
        let mut s1 = self.s1;
        let mut s2 = self.s2;
        let start = self.fill;
        for (slot, &x) in self.block[start..start + samples.len()]
            .iter_mut()
            .zip(samples)
        {
            let x = f32::from(x);
            *slot = x;
            for k in 0..8 {
                let s0 = x + two_cos[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        self.s1 = s1;
        self.s2 = s2;
        self.fill += samples.len();
    }

    /// y = s1 − e^{−jω}·s2 for each frequency; restarts the recurrence.
    fn finish_half(&mut self) -> ([f32; 8], [f32; 8]) {
        let c = &self.coefs;
        let mut re = [0.0; 8];
        let mut im = [0.0; 8];
        for k in 0..8 {
            re[k] = self.s1[k] - c.cos[k] * self.s2[k];
            im[k] = c.sin[k] * self.s2[k];
        }
        self.s1 = [0.0; 8];
        self.s2 = [0.0; 8];
        (re, im)
    }

    /// A full block is in: classify it and advance the key-press tracker.
    fn end_block(&mut self) -> Option<char> {
        let (y2_re, y2_im) = self.finish_half();
        self.prev_power = self.power;

        // Coherent full-block value X = y1 + e^{−jωH}·y2, and the phase
        // advance between halves, arg(y2·conj(y1)·e^{−jωH}) = Δω·H.
        let c = &self.coefs;
        let norm = 2.0 / (BLOCK * BLOCK) as f32;
        let mut deviation = [0.0f32; 8];
        for k in 0..8 {
            let r_re = y2_re[k] * c.rot_re[k] - y2_im[k] * c.rot_im[k];
            let r_im = y2_re[k] * c.rot_im[k] + y2_im[k] * c.rot_re[k];
            let x_re = self.y1_re[k] + r_re;
            let x_im = self.y1_im[k] + r_im;
            self.power[k] = (x_re * x_re + x_im * x_im) * norm;
            // r · conj(y1)
            let z_re = r_re * self.y1_re[k] + r_im * self.y1_im[k];
            let z_im = r_im * self.y1_re[k] - r_re * self.y1_im[k];
            deviation[k] = z_im.atan2(z_re);
        }

        let hit = self.classify(&deviation);
        self.track_key(hit)
            .map(|key| KEYS[usize::from(key / 4)][usize::from(key % 4)])
    }

    /// The key whose two tones this block holds, if it passes every check
    /// of the module docs.
    fn classify(&self, deviation: &[f32; 8]) -> Option<u8> {
        let p = &self.power;
        let row = strongest(&p[..4]);
        let col = strongest(&p[4..]);
        let (pr, pc) = (p[row], p[4 + col]);

        // Level of each tone.
        if pr < MIN_TONE_POWER || pc < MIN_TONE_POWER {
            return None;
        }
        // Twist.
        if pc > pr * MAX_NORMAL_TWIST || pc * MAX_REVERSE_TWIST < pr {
            return None;
        }
        // Each tone clearly the strongest of its group.
        let dominant = |group: &[f32], best: usize| {
            group
                .iter()
                .enumerate()
                .all(|(i, &q)| i == best || q * GROUP_MARGIN <= group[best])
        };
        if !dominant(&p[..4], row) || !dominant(&p[4..], col) {
            return None;
        }
        // Share of the block's energy.
        let energy: f32 = self.block.iter().map(|x| x * x).sum();
        let total_power = energy / BLOCK as f32;
        if pr + pc < MIN_TONE_SHARE * total_power {
            return None;
        }
        // Frequency: Δf/f = Δω·H / (ω·H).
        for k in [row, 4 + col] {
            let omega_half =
                2.0 * std::f32::consts::PI * FREQS[k] as f32 * HALF as f32 / SAMPLE_RATE as f32;
            if deviation[k].abs() > FREQ_TOLERANCE * omega_half {
                return None;
            }
        }
        // Second harmonics (only computed for candidate blocks).
        let h_row = self.harmonic_power(row);
        let h_col = self.harmonic_power(4 + col);
        if h_row > MAX_HARMONIC * pr + self.coefs.leak[row][col] * pc || h_col > MAX_HARMONIC * pc {
            return None;
        }
        Some((row * 4 + col) as u8)
    }

    /// Power at twice frequency `k` over the current block.
    fn harmonic_power(&self, k: usize) -> f32 {
        let two_cos = self.coefs.harm_two_cos[k];
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in &self.block {
            let s0 = x + two_cos * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - two_cos * s1 * s2) * 2.0 / (BLOCK * BLOCK) as f32
    }

    /// Amplitude at `key`'s two frequencies in a block's powers.
    fn amplitude(power: &[f32; 8], key: u8) -> f32 {
        let (row, col) = (usize::from(key / 4), usize::from(key % 4));
        power[row].sqrt() + power[4 + col].sqrt()
    }

    /// Advances the key-press state machine by one block whose hit is
    /// `hit`. Returns the key to report, if any.
    fn track_key(&mut self, hit: Option<u8>) -> Option<u8> {
        let min_blocks = MIN_TONE_SAMPLES / BLOCK as f32;
        let (next, report) = match self.track {
            Track::Idle => (self.start_run(hit), None),
            Track::Run {
                key,
                hits,
                amp_sum,
                amp_max,
            } => {
                let a = Self::amplitude(&self.power, key);
                if hit == Some(key) {
                    let (hits, amp_sum, amp_max) = (hits + 1, amp_sum + a, amp_max.max(a));
                    if hits >= 2 && amp_sum >= min_blocks * amp_max {
                        (Track::Held { key, misses: 0 }, Some(key))
                    } else {
                        (
                            Track::Run {
                                key,
                                hits,
                                amp_sum,
                                amp_max,
                            },
                            None,
                        )
                    }
                } else {
                    // The run ended; this block holds its tail.
                    let amp_sum = amp_sum + a.min(amp_max);
                    if hits >= 2 && amp_sum >= min_blocks * amp_max {
                        (Track::Held { key, misses: 1 }, Some(key))
                    } else {
                        (self.start_run(hit), None)
                    }
                }
            }
            Track::Held { key, misses } => {
                if hit == Some(key) {
                    (Track::Held { key, misses: 0 }, None)
                } else if misses + 1 >= GAP_BLOCKS {
                    (self.start_run(hit), None)
                } else {
                    (
                        Track::Held {
                            key,
                            misses: misses + 1,
                        },
                        None,
                    )
                }
            }
        };
        self.track = next;
        report
    }

    /// A run starting with this block (its leading edge is in the previous
    /// block), or idle.
    fn start_run(&self, hit: Option<u8>) -> Track {
        match hit {
            Some(key) => {
                let a = Self::amplitude(&self.power, key);
                let lead = Self::amplitude(&self.prev_power, key).min(a);
                Track::Run {
                    key,
                    hits: 1,
                    amp_sum: a + lead,
                    amp_max: a,
                }
            }
            None => Track::Idle,
        }
    }
}

/// Index of the largest value.
fn strongest(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{decode, encode};
    use crate::media::Codec;

    const ALL_KEYS: &str = "123A456B789C*0#D";
    const FS: f64 = 8000.0;
    /// Peak of a −10 dBm0 sine.
    const A_10DBM0: f64 = 7115.0;

    fn freqs(key: char) -> (f64, f64) {
        for (r, row) in KEYS.iter().enumerate() {
            if let Some(c) = row.iter().position(|&k| k == key) {
                return (FREQS[r], FREQS[4 + c]);
            }
        }
        panic!("not a key: {key}");
    }

    fn ms(n: u32) -> usize {
        n as usize * 8
    }

    /// Appends `len` samples of two sines (amplitudes as peaks) to `out`.
    fn push_dual(out: &mut Vec<f64>, f1: f64, a1: f64, f2: f64, a2: f64, len: usize) {
        let start = out.len() as f64;
        out.extend((0..len).map(|n| {
            let t = (start + n as f64) / FS;
            a1 * (2.0 * PI * f1 * t).sin() + a2 * (2.0 * PI * f2 * t + 0.7).sin()
        }));
    }

    fn push_key(out: &mut Vec<f64>, key: char, len: usize) {
        let (r, c) = freqs(key);
        push_dual(out, r, A_10DBM0, c, A_10DBM0, len);
    }

    fn silence(out: &mut Vec<f64>, len: usize) {
        out.extend(std::iter::repeat_n(0.0, len));
    }

    /// Rounds to 16 bits, optionally through G.711 and back.
    fn pcm(signal: &[f64], codec: Option<Codec>) -> Vec<i16> {
        let lin: Vec<i16> = signal
            .iter()
            .map(|&x| x.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        match codec {
            None => lin,
            Some(codec) => {
                let mut enc = Vec::new();
                encode(codec, &lin, &mut enc);
                let mut dec = Vec::new();
                decode(codec, &enc, &mut dec);
                dec
            }
        }
    }

    /// Digits found when `pcm` is fed in chunks of `chunk`, with the sample
    /// index (end of the chunk) at which each was returned.
    fn detect_at(pcm: &[i16], chunk: usize) -> Vec<(char, usize)> {
        let mut det = InbandDetector::new();
        let mut out = Vec::new();
        let mut end = 0;
        for frame in pcm.chunks(chunk) {
            end += frame.len();
            if let Some(d) = det.process(frame) {
                out.push((d, end));
            }
        }
        while let Some(d) = det.process(&[]) {
            out.push((d, end));
        }
        out
    }

    fn detect(pcm: &[i16]) -> String {
        detect_at(pcm, 160).into_iter().map(|(d, _)| d).collect()
    }

    const CODECS: [Option<Codec>; 3] = [Some(Codec::Pcmu), Some(Codec::Pcma), None];

    #[test]
    fn all_keys_all_durations_both_codecs() {
        for codec in CODECS {
            for tone_ms in [40, 50, 100] {
                for offset in [0, 37, 51, 101] {
                    let mut s = Vec::new();
                    silence(&mut s, offset);
                    for key in ALL_KEYS.chars() {
                        push_key(&mut s, key, ms(tone_ms));
                        silence(&mut s, ms(60));
                    }
                    let got = detect(&pcm(&s, codec));
                    assert_eq!(got, ALL_KEYS, "{codec:?} {tone_ms} ms, offset {offset}");
                }
            }
        }
    }

    #[test]
    fn same_key_twice_with_short_pause_gives_two_digits() {
        for codec in CODECS {
            for pause_ms in [40, 50, 80] {
                for offset in (0..BLOCK).step_by(17) {
                    let mut s = Vec::new();
                    silence(&mut s, offset);
                    push_key(&mut s, '5', ms(60));
                    silence(&mut s, ms(pause_ms));
                    push_key(&mut s, '5', ms(60));
                    silence(&mut s, ms(100));
                    let got = detect(&pcm(&s, codec));
                    assert_eq!(got, "55", "{codec:?} pause {pause_ms} ms, offset {offset}");
                }
            }
        }
    }

    #[test]
    fn minimum_duration() {
        for codec in CODECS {
            for offset in 0..BLOCK {
                for (tone_ms, want) in [(30, ""), (40, "8")] {
                    let mut s = Vec::new();
                    silence(&mut s, offset);
                    push_key(&mut s, '8', ms(tone_ms));
                    silence(&mut s, ms(100));
                    let got = detect(&pcm(&s, codec));
                    assert_eq!(got, want, "{codec:?} {tone_ms} ms, offset {offset}");
                }
            }
        }
    }

    #[test]
    fn long_press_is_one_digit_reported_early() {
        let mut s = Vec::new();
        silence(&mut s, ms(20));
        push_key(&mut s, '#', ms(2000));
        silence(&mut s, ms(100));
        let got = detect_at(&pcm(&s, Some(Codec::Pcmu)), 160);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, '#');
        // Reported within the frame that brings the tone to ~50 ms.
        assert!(got[0].1 <= ms(20 + 60), "reported at sample {}", got[0].1);
    }

    #[test]
    fn short_dropout_inside_a_press_is_bridged() {
        for drop_ms in [5, 10, 15] {
            for offset in 0..BLOCK {
                let mut s = Vec::new();
                silence(&mut s, offset);
                push_key(&mut s, '0', ms(100));
                silence(&mut s, ms(drop_ms));
                push_key(&mut s, '0', ms(100));
                silence(&mut s, ms(100));
                let got = detect(&pcm(&s, Some(Codec::Pcma)));
                assert_eq!(got, "0", "drop-out {drop_ms} ms, offset {offset}");
            }
        }
    }

    #[test]
    fn frequency_tolerance() {
        for key in ALL_KEYS.chars() {
            let (r, c) = freqs(key);
            for (dev, want) in [
                (0.015, true),
                (-0.015, true),
                (0.035, false),
                (-0.035, false),
            ] {
                for codec in [Some(Codec::Pcmu), Some(Codec::Pcma)] {
                    let mut s = Vec::new();
                    let f = 1.0 + dev;
                    push_dual(&mut s, r * f, A_10DBM0, c * f, A_10DBM0, ms(60));
                    silence(&mut s, ms(60));
                    let want = if want { key.to_string() } else { String::new() };
                    assert_eq!(detect(&pcm(&s, codec)), want, "{key} {dev:+} {codec:?}");
                    // One tone off alone is enough to reject.
                    if want.is_empty() {
                        for (fr, fc) in [(r * f, c), (r, c * f)] {
                            let mut s = Vec::new();
                            push_dual(&mut s, fr, A_10DBM0, fc, A_10DBM0, ms(60));
                            silence(&mut s, ms(60));
                            assert_eq!(detect(&pcm(&s, codec)), "", "{key} {fr} {fc}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn twist_and_level_limits() {
        let (r, c) = freqs('9');
        let db = |d: f64| A_10DBM0 * 10f64.powf(d / 20.0);
        // (low-group level, high-group level) relative to −10 dBm0.
        for (lo, hi, want) in [
            (0.0, 3.5, "9"),
            (0.0, -7.5, "9"),
            (0.0, 5.0, ""),
            (0.0, -9.5, ""),
            (-17.0, -17.0, "9"), // −27 dBm0 each
            (-25.0, -25.0, ""),  // −35 dBm0 each
            (6.0, 6.0, "9"),     // −4 dBm0 each
        ] {
            for codec in CODECS {
                let mut s = Vec::new();
                push_dual(&mut s, r, db(lo), c, db(hi), ms(60));
                silence(&mut s, ms(60));
                assert_eq!(detect(&pcm(&s, codec)), want, "{lo} {hi} {codec:?}");
            }
        }
    }

    #[test]
    fn tones_in_noise_are_detected() {
        let mut rng = XorShift(0x9E37_79B9);
        let mut s = Vec::new();
        for key in ALL_KEYS.chars() {
            push_key(&mut s, key, ms(60));
            silence(&mut s, ms(60));
        }
        // White noise 20 dB below each tone.
        for x in &mut s {
            *x += rng.gauss() * A_10DBM0 / 2f64.sqrt() / 10.0;
        }
        assert_eq!(detect(&pcm(&s, Some(Codec::Pcmu))), ALL_KEYS);
    }

    struct XorShift(u32);
    impl XorShift {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            f64::from(self.0) / f64::from(u32::MAX)
        }
        /// Approximately standard normal.
        fn gauss(&mut self) -> f64 {
            (0..12).map(|_| self.next()).sum::<f64>() - 6.0
        }
    }

    #[test]
    fn harmonic_speech_like_input_is_rejected() {
        // Voiced-speech stand-in: harmonics of f0 with a −6 dB/octave tilt,
        // ~−10 dBm0 overall, f0 around 200 Hz with and without vibrato.
        for f0 in [100.0, 150.0, 200.0, 233.0, 250.0, 300.0] {
            for vibrato in [0.0, 0.05] {
                let mut phase = [0.0f64; 40];
                let s: Vec<f64> = (0..ms(2000))
                    .map(|n| {
                        let t = n as f64 / FS;
                        let f = f0 * (1.0 + vibrato * (2.0 * PI * 5.0 * t).sin());
                        let mut x = 0.0;
                        for (h, ph) in phase.iter_mut().enumerate() {
                            let fh = f * (h + 1) as f64;
                            if fh < 3800.0 {
                                *ph += 2.0 * PI * fh / FS;
                                x += 6000.0 / (h + 1) as f64 * ph.sin();
                            }
                        }
                        x
                    })
                    .collect();
                for codec in CODECS {
                    assert_eq!(
                        detect(&pcm(&s, codec)),
                        "",
                        "f0 {f0} vibrato {vibrato} {codec:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn pairs_of_speech_harmonics_near_dtmf_are_rejected() {
        // Two strong harmonics of 200 Hz (800 + 1200 Hz, next to '4') with
        // their neighbours: the share-of-energy and harmonic checks hold.
        let s: Vec<f64> = (0..ms(1000))
            .map(|n| {
                let t = n as f64 / FS;
                [
                    (400.0, 3000.0),
                    (800.0, 8000.0),
                    (1200.0, 8000.0),
                    (1600.0, 3000.0),
                    (2400.0, 2000.0),
                ]
                .iter()
                .map(|&(f, a)| a * (2.0 * PI * f * t).sin())
                .sum()
            })
            .collect();
        assert_eq!(detect(&pcm(&s, Some(Codec::Pcmu))), "");
    }

    #[test]
    fn chirp_is_rejected() {
        for (f_start, f_end, secs) in [
            (300.0, 3400.0, 2.0),
            (3400.0, 300.0, 1.0),
            (600.0, 1700.0, 0.5),
        ] {
            let k = (f_end - f_start) / secs;
            let s: Vec<f64> = (0..(secs * FS) as usize)
                .map(|n| {
                    let t = n as f64 / FS;
                    2.0 * A_10DBM0 * (2.0 * PI * (f_start * t + k * t * t / 2.0)).sin()
                })
                .collect();
            for codec in CODECS {
                assert_eq!(detect(&pcm(&s, codec)), "", "{f_start}->{f_end} {codec:?}");
            }
        }
    }

    #[test]
    fn white_noise_is_rejected() {
        let mut rng = XorShift(12345);
        for level in [300.0, 3000.0, 10_000.0] {
            let s: Vec<f64> = (0..ms(3000)).map(|_| rng.gauss() * level).collect();
            for codec in CODECS {
                assert_eq!(detect(&pcm(&s, codec)), "", "level {level} {codec:?}");
            }
        }
    }

    #[test]
    fn single_tones_and_silence_are_rejected() {
        let mut s = Vec::new();
        for f in FREQS {
            push_dual(&mut s, f, 2.0 * A_10DBM0, f, 0.0, ms(100));
        }
        silence(&mut s, ms(500));
        assert_eq!(detect(&pcm(&s, Some(Codec::Pcmu))), "");
        // Extreme input: full-scale square wave, alternating ±32767.
        let sq: Vec<i16> = (0..4000)
            .map(|n| if n % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        assert_eq!(detect(&sq), "");
    }

    #[test]
    fn chunking_does_not_matter() {
        let mut s = Vec::new();
        silence(&mut s, 29);
        for key in "1590#*D".chars() {
            push_key(&mut s, key, ms(45));
            silence(&mut s, ms(55));
        }
        let pcm = pcm(&s, Some(Codec::Pcma));
        for chunk in [1, 7, 51, 102, 160, 161, 1000] {
            let got: String = detect_at(&pcm, chunk).into_iter().map(|(d, _)| d).collect();
            assert_eq!(got, "1590#*D", "chunk {chunk}");
        }
        // All at once: the queue hands them out one per call.
        let mut det = InbandDetector::new();
        let mut got = String::new();
        got.extend(det.process(&pcm));
        while let Some(d) = det.process(&[]) {
            got.push(d);
        }
        assert_eq!(got, "1590#*D");
        // And the callback form.
        let mut det = InbandDetector::new();
        let mut got = String::new();
        det.process_with(&pcm, |d| got.push(d));
        assert_eq!(got, "1590#*D");
    }

    #[test]
    fn reset_forgets_a_held_key() {
        let mut s = Vec::new();
        push_key(&mut s, '2', ms(200));
        let pcm = pcm(&s, None);
        let mut det = InbandDetector::new();
        let (a, b) = pcm.split_at(ms(100));
        let mut got = String::new();
        det.process_with(a, |d| got.push(d));
        det.reset();
        det.process_with(b, |d| got.push(d));
        assert_eq!(got, "22");
    }
}
