//! An RTP datagram through `media::rtp::parse`, the parser every media
//! socket runs on what it receives.
//!
//! Round trip: a packet that parses, written again by `RtpSender` (no CSRC,
//! extension or padding), parses to the same header fields and payload.
#![no_main]

use hotline::media::rtp::{self, RtpSender, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = rtp::parse(data) else {
        return;
    };
    assert!(p.payload_type < 128);
    assert!(HEADER_LEN + 4 * p.csrc_count as usize + p.payload.len() <= data.len());
    if let Some((_, ext)) = p.extension {
        assert_eq!(ext.len() % 4, 0);
    }

    let mut sender = RtpSender::with_initial(p.ssrc, p.sequence, p.timestamp);
    let mut out = vec![0u8; HEADER_LEN + p.payload.len()];
    let n = sender.write(p.payload_type, p.marker, p.payload, &mut out);
    assert_eq!(n, out.len());
    let q = rtp::parse(&out[..n]).expect("a re-serialized packet parses");
    assert_eq!(
        (
            q.marker,
            q.payload_type,
            q.sequence,
            q.timestamp,
            q.ssrc,
            q.payload
        ),
        (
            p.marker,
            p.payload_type,
            p.sequence,
            p.timestamp,
            p.ssrc,
            p.payload
        ),
    );
    assert_eq!(q.csrc_count, 0);
    assert!(q.extension.is_none());
    assert_eq!(sender.next_seq(), p.sequence.wrapping_add(1));
});
