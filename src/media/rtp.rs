//! RTP packets (RFC 3550 §5.1): a zero-copy header parser for received
//! packets, and [`RtpSender`], which owns one outgoing stream's SSRC,
//! sequence number and timestamp and writes packets into a caller-owned
//! buffer (no allocation per packet). Also writes RFC 4733 telephone-event
//! packets, which the daemon never sends to callers but test clients need.
//!
//! No RTCP here: RTCP is not needed to run a G.711 call, and RTCP packets
//! arriving on the RTP port (rtcp-mux) are rejected by [`parse`] (RFC 5761 §4).

use thiserror::Error;

/// Fixed RTP header length, without CSRCs or extension (RFC 3550 §5.1).
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("packet shorter than its RTP header ({0} bytes)")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    #[error("payload type {0} is RTCP (rtcp-mux), not RTP")]
    Rtcp(u8),
    #[error("CSRC list or header extension runs past the end of the packet")]
    Truncated,
    #[error("padding count {0} is zero or larger than the payload")]
    BadPadding(u8),
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Number of CSRC identifiers (skipped, RFC 3550 §5.1 "CC").
    pub csrc_count: u8,
    /// The header extension's profile-defined 16 bits and data, if X was set.
    pub extension: Option<(u16, &'a [u8])>,
    /// Payload with padding removed.
    pub payload: &'a [u8],
}

/// Parses one RTP packet (RFC 3550 §5.1, with the validity checks of
/// Appendix A.1: version 2, PT not in the RTCP range, padding and extension
/// lengths consistent with the packet length). Never panics.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if buf.len() < HEADER_LEN {
        return Err(RtpError::TooShort(buf.len()));
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let has_ext = buf[0] & 0x10 != 0;
    let csrc_count = buf[0] & 0x0F;
    let marker = buf[1] & 0x80 != 0;
    let payload_type = buf[1] & 0x7F;
    // RFC 5761 §4: RTCP SR/RR/SDES/BYE/APP (200..=204) read as marker + PT 72..=76.
    if (72..=76).contains(&payload_type) {
        return Err(RtpError::Rtcp(payload_type));
    }
    let sequence = u16::from_be_bytes([buf[2], buf[3]]);
    let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);

    let mut start = HEADER_LEN + 4 * csrc_count as usize;
    if start > buf.len() {
        return Err(RtpError::Truncated);
    }
    let mut extension = None;
    if has_ext {
        // RFC 3550 §5.3.1: 16-bit profile field, 16-bit length in 32-bit words.
        if start + 4 > buf.len() {
            return Err(RtpError::Truncated);
        }
        let profile = u16::from_be_bytes([buf[start], buf[start + 1]]);
        let words = u16::from_be_bytes([buf[start + 2], buf[start + 3]]) as usize;
        let data_start = start + 4;
        let data_end = data_start + 4 * words;
        if data_end > buf.len() {
            return Err(RtpError::Truncated);
        }
        extension = Some((profile, &buf[data_start..data_end]));
        start = data_end;
    }
    let mut end = buf.len();
    if padding {
        // RFC 3550 §5.1 "P": the last octet counts the padding, itself included.
        let count = buf[end - 1];
        if count == 0 || count as usize > end - start {
            return Err(RtpError::BadPadding(count));
        }
        end -= count as usize;
    }
    Ok(RtpPacket {
        marker,
        payload_type,
        sequence,
        timestamp,
        ssrc,
        csrc_count,
        extension,
        payload: &buf[start..end],
    })
}

/// The RFC 4733 §3.2 event code of a DTMF digit (`0-9`, `*`, `#`, `A-D`).
pub fn dtmf_event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// One outgoing RTP stream: SSRC, next sequence number, current timestamp.
///
/// The timestamp is the media clock (8 kHz for G.711); it is advanced by the
/// caller with [`RtpSender::advance`] once per 20 ms slot whether or not a
/// packet was sent in that slot, as RFC 3550 §5.1 asks ("the timestamp
/// increments ... even if no packet is sent").
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Start timestamp, code, and ended flag of the current RFC 4733 event.
    event: Option<(u32, u8, bool)>,
}

impl Default for RtpSender {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpSender {
    /// A stream with random SSRC, initial sequence number and timestamp
    /// (RFC 3550 §5.1: "the initial value ... SHOULD be random").
    pub fn new() -> Self {
        Self::with_initial(rand::random(), rand::random(), rand::random())
    }

    /// A stream with chosen initial values (tests).
    pub fn with_initial(ssrc: u32, seq: u16, timestamp: u32) -> Self {
        RtpSender {
            ssrc,
            seq,
            timestamp,
            event: None,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The timestamp the next audio packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Moves the media clock on by `samples` (160 per 20 ms slot at 8 kHz),
    /// whether or not a packet was sent in that slot.
    pub fn advance(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Writes one packet with the current timestamp and the next sequence
    /// number into `out`, returning its length. Does not advance the
    /// timestamp. `marker` should be set on the first packet of a talkspurt,
    /// i.e. the first packet after a period in which none were sent
    /// (RFC 3551 §4.1).
    ///
    /// # Panics
    /// If `out` is shorter than `12 + payload.len()` (a programming error:
    /// size the buffer once for the largest frame).
    pub fn write(&mut self, pt: u8, marker: bool, payload: &[u8], out: &mut [u8]) -> usize {
        let ts = self.timestamp;
        self.write_with_ts(pt, marker, ts, payload, out)
    }

    fn write_with_ts(
        &mut self,
        pt: u8,
        marker: bool,
        ts: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> usize {
        let len = HEADER_LEN + payload.len();
        assert!(out.len() >= len, "RTP output buffer too small");
        self.write_header_at(pt, marker, self.seq, ts, out);
        out[HEADER_LEN..len].copy_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        len
    }

    /// Writes a 12-byte header of this stream (its SSRC) with an explicit
    /// sequence number and timestamp into `out[..12]`, for a relay that maps
    /// them from an incoming stream and writes the payload itself. Changes
    /// nothing; see [`RtpSender::set_position`].
    ///
    /// # Panics
    /// If `out` is shorter than 12 bytes.
    pub fn write_header_at(&self, pt: u8, marker: bool, seq: u16, ts: u32, out: &mut [u8]) {
        out[0] = 0x80; // V=2, P=0, X=0, CC=0
        out[1] = (pt & 0x7F) | if marker { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&seq.to_be_bytes());
        out[4..8].copy_from_slice(&ts.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Moves the stream to `next_seq` and `timestamp` (after a relay wrote
    /// packets with [`RtpSender::write_header_at`]), so that it continues
    /// from there.
    pub fn set_position(&mut self, next_seq: u16, timestamp: u32) {
        self.seq = next_seq;
        self.timestamp = timestamp;
    }

    /// Writes one RFC 4733 telephone-event packet for `digit` into `out`
    /// (at least 16 bytes), returning its length, or `None` if `digit` is
    /// not a DTMF digit.
    ///
    /// RFC 4733 §2.5.1: all packets of one event carry the timestamp of the
    /// event's start and a growing `duration` (in timestamp units); the first
    /// has the marker bit; the end packet (`end = true`) is usually sent three
    /// times, each with a new sequence number (§2.5.1.4). A call for a
    /// different digit, or after the end for the same digit with
    /// `end = false`, starts a new event at the current timestamp. The caller
    /// advances the timestamp past the event (by its duration) before
    /// sending more audio.
    pub fn write_event(
        &mut self,
        pt: u8,
        digit: char,
        duration: u16,
        end: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let code = dtmf_event_code(digit)?;
        let (start_ts, new_event) = match self.event {
            Some((ts, c, ended)) if c == code && (!ended || end) => (ts, false),
            _ => (self.timestamp, true),
        };
        self.event = Some((start_ts, code, end));
        // Event, E bit, R=0, volume 10 (-10 dBm0), duration (RFC 4733 §2.3).
        let d = duration.to_be_bytes();
        let payload = [code, if end { 0x80 } else { 0 } | 10, d[0], d[1]];
        Some(self.write_with_ts(pt, new_event, start_ts, &payload, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_and_parses_back() {
        let mut s = RtpSender::with_initial(0xDEADBEEF, 65535, u32::MAX - 100);
        let mut buf = [0u8; 200];
        let n = s.write(8, true, &[1, 2, 3], &mut buf);
        assert_eq!(n, 15);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(
            (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (true, 8, 65535, u32::MAX - 100, 0xDEADBEEF)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
        s.advance(160);
        let n = s.write(8, false, &[9], &mut buf);
        let p = parse(&buf[..n]).unwrap();
        // Both counters wrap (RFC 3550 §5.1: modulo 2^16 / 2^32).
        assert_eq!((p.sequence, p.timestamp, p.marker), (0, 59, false));
    }

    #[test]
    fn random_initial_values_differ() {
        let a = RtpSender::new();
        let b = RtpSender::new();
        assert!(a.ssrc() != b.ssrc() || a.next_seq() != b.next_seq());
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut p = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0xAA; 4]); // one CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension, one word
        p.extend_from_slice(&[5, 6]); // payload
        p.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let r = parse(&p).unwrap();
        assert_eq!(r.csrc_count, 1);
        assert_eq!(r.extension, Some((0xBEDE, &[7u8, 7, 7, 7][..])));
        assert_eq!(r.payload, &[5, 6]);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        let mut p = [0u8; 12];
        p[0] = 0x40;
        assert_eq!(parse(&p), Err(RtpError::BadVersion(1)));
        p[0] = 0x8F; // 15 CSRCs, none present
        assert_eq!(parse(&p), Err(RtpError::Truncated));
        p[0] = 0x90; // extension header missing
        assert_eq!(parse(&p), Err(RtpError::Truncated));
        p[0] = 0xA0; // padding count 0
        assert_eq!(parse(&p), Err(RtpError::BadPadding(0)));
        p[11] = 13; // padding longer than the payload
        assert_eq!(parse(&p), Err(RtpError::BadPadding(13)));
        p[0] = 0x80;
        p[1] = 200; // RTCP SR on a muxed port
        assert_eq!(parse(&p), Err(RtpError::Rtcp(72)));
    }

    #[test]
    fn telephone_event_packets_follow_rfc4733() {
        let mut s = RtpSender::with_initial(1, 10, 1000);
        let mut buf = [0u8; 32];
        let mut got = Vec::new();
        for (dur, end) in [(160, false), (320, false), (480, true), (480, true)] {
            let n = s.write_event(101, '#', dur, end, &mut buf).unwrap();
            let p = parse(&buf[..n]).unwrap();
            got.push((p.marker, p.sequence, p.timestamp, p.payload.to_vec()));
        }
        assert_eq!(got[0], (true, 10, 1000, vec![11, 10, 0, 160]));
        assert_eq!(got[1], (false, 11, 1000, vec![11, 10, 1, 64]));
        assert_eq!(got[2], (false, 12, 1000, vec![11, 0x8A, 1, 224]));
        assert_eq!(got[3], (false, 13, 1000, vec![11, 0x8A, 1, 224]));
        // The next press of the same digit is a new event at the new time.
        s.advance(480);
        let n = s.write_event(101, '#', 160, false, &mut buf).unwrap();
        let p = parse(&buf[..n]).unwrap();
        assert_eq!((p.marker, p.timestamp), (true, 1480));
        assert_eq!(s.write_event(101, 'x', 160, false, &mut buf), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = parse(&data) {
                prop_assert!(p.payload.len() <= data.len());
            }
        }
    }
}
