//! One outgoing stream of the bridge: the RTP stream the daemon sends to
//! one leg, fed by the other leg's packets (relayed) or by generated audio
//! (a prompt, hold music). Pure state machine: no I/O; the caller hands in
//! `now` and the incoming header fields and gets the outgoing ones.
//!
//! The bridge is a B2BUA that terminates both legs' RTP sessions, so each
//! outgoing stream keeps its *own leg's* SSRC (that of the leg's
//! [`RtpSender`]), and the far end sees one continuous stream across IVR,
//! bridge and survey. In RFC 7667 terms this is a media-switching mixer
//! (§3.6.2, "the mixer ... uses its own SSRC", and rewrites sequence numbers
//! and timestamps to make one continuous stream out of switched sources),
//! not a translator (§3.5, which would keep the sender's SSRC).
//!
//! Mapping (RFC 3550 §5.1): outgoing sequence number and timestamp are the
//! incoming ones plus an offset, so the receiver still sees the sender's
//! gaps (loss), reordering and timing. The offsets are chosen again — a
//! *rebase*, with the marker bit set on the packet (RFC 3551 §4.1: the
//! first packet after a discontinuity) — when the incoming SSRC changes,
//! after generated audio or a hold ([`OutStream::interrupt`]), and when the
//! sequence number jumps further than [`MAX_DROPOUT`] (the sender restarted,
//! RFC 3550 Appendix A.1). At a rebase the next sequence number of our
//! stream follows on from the last one we sent and the timestamp follows
//! the media clock, which runs with `now` between packets (RFC 3550 §5.1:
//! the timestamp advances even when nothing is sent), but never goes back
//! over audio already sent.
//!
//! Stale packets are dropped: those of the SSRC that was replaced by a new
//! one (late packets of the old stream would otherwise make it switch back
//! and forth), and those older than [`MAX_MISORDER`] sequence numbers behind
//! the newest (RFC 3550 Appendix A.1).

use super::rtp::RtpSender;
use super::session::samples_in;
use tokio::time::Instant;

/// A sequence jump larger than this is a restarted stream (RFC 3550 A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// A packet this far (or more) behind the newest one is stale (RFC 3550 A.1).
pub const MAX_MISORDER: u16 = 100;

/// Header fields for a relayed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub seq: u16,
    pub timestamp: u32,
    /// Set at a rebase; the relay also keeps the incoming packet's marker.
    pub marker: bool,
}

/// Counters of the incoming stream as seen by the mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Sequence numbers skipped by forward jumps (lost, unless they come late).
    pub seq_gaps: u64,
    /// Packets older than the newest one (reordered or duplicated).
    pub late: u64,
    /// Packets dropped as stale (old SSRC, or too old).
    pub stale: u64,
    /// Rebases (marker bit set by the relay).
    pub rebases: u64,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// Newest incoming sequence number.
    highest: u16,
    /// After a packet far behind `highest`: the sequence number that would
    /// confirm the sender restarted its numbering (RFC 3550 A.1 `bad_seq`).
    bad_seq: Option<u16>,
}

/// Is `a` at or after `b` in modulo-2^32 arithmetic?
fn ts_at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// The stream sent to one leg.
#[derive(Debug)]
pub struct OutStream {
    sender: RtpSender,
    /// Media clock: `clock_ts` at `clock_at`, running at 8 kHz.
    clock_ts: u32,
    clock_at: Instant,
    /// The timestamp just past the newest audio sent (a rebase starts here
    /// at the earliest).
    free_ts: u32,
    source: Option<Source>,
    replaced_ssrc: Option<u32>,
    /// The next packet starts a new talkspurt (rebase, marker).
    fresh: bool,
    /// The last packet sent was generated audio.
    generating: bool,
    stats: StreamStats,
}

impl OutStream {
    /// A stream continuing `sender`, whose timestamp is the media clock at
    /// `clock_at`.
    pub fn new(sender: RtpSender, clock_at: Instant) -> Self {
        OutStream {
            clock_ts: sender.timestamp(),
            clock_at,
            free_ts: sender.timestamp(),
            sender,
            source: None,
            replaced_ssrc: None,
            fresh: true,
            generating: false,
            stats: StreamStats::default(),
        }
    }

    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// A discontinuity (hold, a prompt): the next packet, relayed or
    /// generated, starts a new talkspurt with the marker bit.
    pub fn interrupt(&mut self) {
        self.fresh = true;
    }

    fn clock(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.clock_at);
        self.clock_ts.wrapping_add(samples_in(elapsed))
    }

    /// The timestamp for a packet that starts a new talkspurt now.
    fn fresh_ts(&self, now: Instant) -> u32 {
        let t = self.clock(now);
        if ts_at_or_after(t, self.free_ts) {
            t
        } else {
            self.free_ts
        }
    }

    /// Maps one incoming packet; `samples` is its audio duration in
    /// timestamp units (`None` for telephone-events, whose timestamp is the
    /// event's start and does not move the clock). `None`: stale, drop it.
    pub fn relay(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        samples: Option<u32>,
    ) -> Option<Forward> {
        let restart = self.fresh || self.generating;
        let rebase = match &mut self.source {
            Some(src) if src.ssrc == ssrc => {
                let ahead = seq.wrapping_sub(src.highest);
                let behind = src.highest.wrapping_sub(seq);
                if restart || (ahead < 0x8000 && ahead > MAX_DROPOUT) {
                    true
                } else if ahead == 0 || ahead >= 0x8000 {
                    if behind >= MAX_MISORDER {
                        // RFC 3550 A.1: one such packet is stale; the next
                        // in sequence after it means the sender jumped back
                        // (restarted, or replayed a recording): follow it.
                        if src.bad_seq == Some(seq) {
                            true
                        } else {
                            src.bad_seq = Some(seq.wrapping_add(1));
                            self.stats.stale += 1;
                            return None;
                        }
                    } else {
                        self.stats.late += 1;
                        false
                    }
                } else {
                    self.stats.seq_gaps += u64::from(ahead - 1);
                    src.highest = seq;
                    false
                }
            }
            _ if self.replaced_ssrc == Some(ssrc) => {
                self.stats.stale += 1;
                return None;
            }
            other => {
                if let Some(old) = other {
                    self.replaced_ssrc = Some(old.ssrc);
                }
                true
            }
        };
        if rebase {
            let out_seq = self.sender.next_seq();
            let out_ts = self.fresh_ts(now);
            self.source = Some(Source {
                ssrc,
                seq_offset: out_seq.wrapping_sub(seq),
                ts_offset: out_ts.wrapping_sub(timestamp),
                highest: seq,
                bad_seq: None,
            });
            self.fresh = false;
            self.generating = false;
            self.stats.rebases += 1;
        }
        let src = self.source?;
        let out = Forward {
            seq: seq.wrapping_add(src.seq_offset),
            timestamp: timestamp.wrapping_add(src.ts_offset),
            marker: rebase,
        };
        if out.seq.wrapping_sub(self.sender.next_seq()) < 0x8000 {
            let ts = self.sender.timestamp();
            self.sender.set_position(out.seq.wrapping_add(1), ts);
        }
        if let Some(n) = samples {
            let end = out.timestamp.wrapping_add(n);
            if ts_at_or_after(end, self.free_ts) {
                self.free_ts = end;
                self.clock_ts = out.timestamp;
                self.clock_at = now;
            }
        }
        Some(out)
    }

    /// Writes one generated audio frame (a prompt, hold music) into `out`,
    /// returning its length. The first after relayed audio or an
    /// interruption starts a talkspurt (marker, timestamp from the clock);
    /// the next ones follow at `payload.len()` samples each (one per 20 ms
    /// tick).
    pub fn generate(&mut self, now: Instant, pt: u8, payload: &[u8], out: &mut [u8]) -> usize {
        let marker = self.fresh || !self.generating;
        if marker {
            let ts = self.fresh_ts(now);
            let seq = self.sender.next_seq();
            self.sender.set_position(seq, ts);
            self.fresh = false;
            self.generating = true;
        }
        let ts = self.sender.timestamp();
        let n = self.sender.write(pt, marker, payload, out);
        let samples = payload.len() as u32;
        self.sender.advance(samples);
        self.free_ts = ts.wrapping_add(samples);
        self.clock_ts = ts;
        self.clock_at = now;
        n
    }

    /// Ends the stream, handing back the sender positioned after the last
    /// packet, its timestamp the media clock at `now`.
    pub fn finish(mut self, now: Instant) -> RtpSender {
        let ts = self.fresh_ts(now);
        let seq = self.sender.next_seq();
        self.sender.set_position(seq, ts);
        self.sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp;
    use std::time::Duration;

    fn stream() -> (OutStream, Instant) {
        let now = Instant::now();
        (
            OutStream::new(RtpSender::with_initial(0xABCD, 1000, 50_000), now),
            now,
        )
    }

    #[test]
    fn maps_by_offset_keeping_gaps_and_reordering() {
        let (mut s, t0) = stream();
        let f = s.relay(t0, 7, 60_000, 9_000, Some(160)).unwrap();
        assert_eq!(
            f,
            Forward {
                seq: 1000,
                timestamp: 50_000,
                marker: true
            }
        );
        let f = s.relay(t0, 7, 60_001, 9_160, Some(160)).unwrap();
        assert_eq!(
            f,
            Forward {
                seq: 1001,
                timestamp: 50_160,
                marker: false
            }
        );
        // Two lost: the gap shows at the receiver too.
        let f = s.relay(t0, 7, 60_004, 9_640, Some(160)).unwrap();
        assert_eq!((f.seq, f.timestamp), (1004, 50_640));
        // One of them comes late: mapped to its own place.
        let f = s.relay(t0, 7, 60_002, 9_320, Some(160)).unwrap();
        assert_eq!((f.seq, f.timestamp, f.marker), (1002, 50_320, false));
        assert_eq!(s.sender().next_seq(), 1005);
        assert_eq!(
            s.stats(),
            StreamStats {
                seq_gaps: 2,
                late: 1,
                stale: 0,
                rebases: 1
            }
        );
        // Far too old: stale.
        assert_eq!(s.relay(t0, 7, 59_000, 1, Some(160)), None);
        // But the next one in sequence after it: the sender jumped back
        // (a restarted or replayed stream, RFC 3550 A.1): follow it.
        let f = s.relay(t0, 7, 59_001, 161, Some(160)).unwrap();
        assert!(f.marker, "a rebase");
        assert_eq!(f.seq, 1005, "our numbering goes on");
        let f = s.relay(t0, 7, 59_002, 321, Some(160)).unwrap();
        assert_eq!((f.seq, f.marker), (1006, false));
    }

    #[test]
    fn wraps_around() {
        let (mut s, t0) = stream();
        s.relay(t0, 7, 65_535, u32::MAX - 159, Some(160)).unwrap();
        let f = s.relay(t0, 7, 0, 0, Some(160)).unwrap();
        assert_eq!((f.seq, f.timestamp, f.marker), (1001, 50_160, false));
        assert_eq!(s.stats().seq_gaps, 0);
    }

    #[test]
    fn new_ssrc_rebases_and_the_old_one_is_stale() {
        let (mut s, t0) = stream();
        s.relay(t0, 7, 10, 0, Some(160)).unwrap();
        s.relay(t0, 7, 11, 160, Some(160)).unwrap();
        // 100 ms later another stream from the same peer.
        let t1 = t0 + Duration::from_millis(100);
        let f = s.relay(t1, 8, 500, 777, Some(160)).unwrap();
        // Sequence follows on; timestamp from the clock (anchored at the
        // last packet: 50_160 at t0, plus 800 samples).
        assert_eq!(
            f,
            Forward {
                seq: 1002,
                timestamp: 50_960,
                marker: true
            }
        );
        assert_eq!(s.relay(t1, 7, 12, 320, Some(160)), None);
        assert_eq!(s.stats().stale, 1);
        // A big jump of the same SSRC is a restart.
        let f = s.relay(t1, 8, 20_000, 5, Some(160)).unwrap();
        assert!(f.marker);
        assert_eq!(f.seq, 1003);
        // Never back over audio sent: 50_960 + 160 at the earliest.
        assert_eq!(f.timestamp, 51_120);
    }

    #[test]
    fn generated_frames_then_relay_again_with_marker() {
        let (mut s, t0) = stream();
        s.relay(t0, 7, 10, 0, Some(160)).unwrap();
        let mut buf = [0u8; 200];
        let mut got = Vec::new();
        for i in 0..3u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(i + 1));
            let n = s.generate(now, 8, &[0xD5; 160], &mut buf);
            let p = rtp::parse(&buf[..n]).unwrap();
            got.push((p.marker, p.sequence, p.timestamp, p.ssrc));
        }
        assert_eq!(
            got,
            vec![
                (true, 1001, 50_160, 0xABCD),
                (false, 1002, 50_320, 0xABCD),
                (false, 1003, 50_480, 0xABCD)
            ]
        );
        let f = s
            .relay(t0 + Duration::from_millis(80), 7, 14, 640, Some(160))
            .unwrap();
        assert_eq!(
            f,
            Forward {
                seq: 1004,
                timestamp: 50_640,
                marker: true
            }
        );
        // An interruption (hold) also marks the next packet.
        s.interrupt();
        let f = s
            .relay(t0 + Duration::from_secs(2), 7, 15, 800, Some(160))
            .unwrap();
        assert!(f.marker);
        assert_eq!(f.seq, 1005);
        assert_eq!(f.timestamp, 50_640 + 160 * 96);
        let sender = s.finish(t0 + Duration::from_secs(3));
        assert_eq!(sender.next_seq(), 1006);
        assert_eq!(sender.timestamp(), 50_640 + 160 * 96 + 8000);
        assert_eq!(sender.ssrc(), 0xABCD);
    }

    #[test]
    fn events_do_not_move_the_clock() {
        let (mut s, t0) = stream();
        s.relay(t0, 7, 10, 1000, Some(160)).unwrap();
        // An event that started two frames earlier: mapped, clock unmoved.
        let f = s.relay(t0, 7, 11, 680, None).unwrap();
        assert_eq!((f.seq, f.timestamp), (1001, 49_680));
        let sender = s.finish(t0);
        assert_eq!(sender.timestamp(), 50_160);
    }
}
