//! RTP packets of a call's audio stream, the way the media bridge and
//! session handle them: `rtp::parse`, then telephone-event packets
//! (RFC 4733) to the `Rfc4733Receiver` state machine and G.711 audio to the
//! in-band DTMF detector.
//!
//! Input: a sequence of records `[len][len bytes of RTP datagram]`; the
//! telephone-event payload type is 101, audio PCMU (0) or PCMA (8).
//!
//! Properties beyond "never panics": at most one digit per telephone-event
//! packet; and every telephone-event payload carrying a DTMF digit, written
//! again by `RtpSender::write_event`, parses to the same event, end bit and
//! duration.
#![no_main]

use hotline::media::dtmf::inband::InbandDetector;
use hotline::media::dtmf::rfc4733::{event_digit, Rfc4733Receiver, TelephoneEvent};
use hotline::media::rtp::{self, dtmf_event_code, RtpSender};
use hotline::media::{g711, Codec};
use libfuzzer_sys::fuzz_target;

const DTMF_PT: u8 = 101;

fuzz_target!(|data: &[u8]| {
    let mut receiver = Rfc4733Receiver::new();
    let mut inband = InbandDetector::new();
    let mut pcm = Vec::new();
    let mut events = 0usize;
    let mut digits = 0usize;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;

        // The payload on its own, as if it came with the right payload type.
        if let Some(ev) = TelephoneEvent::parse(datagram) {
            round_trip(ev);
        }

        let Ok(packet) = rtp::parse(datagram) else {
            continue;
        };
        match packet.payload_type {
            DTMF_PT => {
                events += 1;
                if receiver
                    .on_rtp(packet.ssrc, packet.timestamp, packet.marker, packet.payload)
                    .is_some()
                {
                    digits += 1;
                }
            }
            0 | 8 => {
                let codec = if packet.payload_type == 0 {
                    Codec::Pcmu
                } else {
                    Codec::Pcma
                };
                pcm.clear();
                g711::decode(codec, packet.payload, &mut pcm);
                inband.process_with(&pcm, |_| {});
            }
            _ => {}
        }
    }
    assert!(digits <= events, "{digits} digits from {events} packets");
});

fn round_trip(ev: TelephoneEvent) {
    let Some(digit) = ev.digit() else {
        return;
    };
    assert_eq!(dtmf_event_code(digit), Some(ev.event));
    assert_eq!(event_digit(ev.event), Some(digit));
    let mut sender = RtpSender::with_initial(1, 2, 3);
    let mut out = [0u8; 16];
    let n = sender
        .write_event(DTMF_PT, digit, ev.duration, ev.end, &mut out)
        .expect("a DTMF digit is written");
    let packet = rtp::parse(&out[..n]).expect("our event packet parses");
    assert_eq!(packet.payload_type, DTMF_PT);
    let back = TelephoneEvent::parse(packet.payload).expect("our event payload parses");
    assert_eq!(
        (back.event, back.end, back.duration),
        (ev.event, ev.end, ev.duration)
    );
}
