//! An SDP body through `SessionDescription::parse` and the RFC 3264
//! offer/answer code a call runs on it: `answer` (an INVITE's offer),
//! `SdpSession::answer` (re-INVITEs) and `accept_answer` (the answer to an
//! offer of ours).
//!
//! Round trip: when we answer an offer, our answer parses, has as many
//! `m=` lines as the offer, and read back with `accept_answer` gives the
//! codec, payload types and direction we answered with. Answering the same
//! offer twice in one session leaves the SDP (and its version) unchanged.
#![no_main]

use hotline::media::sdp::{accept_answer, answer, LocalMedia, SdpSession, SessionDescription};
use hotline::media::Codec;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = SessionDescription::parse(data) else {
        return;
    };
    let local = LocalMedia {
        ip: IpAddr::from([192, 0, 2, 1]),
        port: 40000,
        session_id: 4242,
        session_version: 4242,
    };
    for supported in [&[Codec::Pcmu, Codec::Pcma][..], &[Codec::Pcma][..]] {
        let a = match answer(&offer, &local, supported) {
            Ok(a) => a,
            Err(e) => {
                assert!(matches!(e.sip_status(), 400 | 488));
                continue;
            }
        };
        assert!(supported.contains(&a.codec));
        let back = SessionDescription::parse(a.sdp.as_bytes())
            .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{}", a.sdp));
        assert_eq!(back.media.len(), offer.media.len(), "{}", a.sdp);
        let n = accept_answer(&back, &[a.codec])
            .unwrap_or_else(|e| panic!("our answer is not acceptable: {e}\n{}", a.sdp));
        assert_eq!(n.codec, a.codec, "{}", a.sdp);
        assert_eq!(n.audio_pt, a.audio_pt, "{}", a.sdp);
        assert_eq!(n.dtmf_pt, a.dtmf_pt, "{}", a.sdp);
        assert_eq!(n.remote_direction, a.direction, "{}", a.sdp);

        let mut session = SdpSession::new(local.clone());
        let first = session.answer(&offer, supported).expect("answered once");
        let again = session.answer(&offer, supported).expect("answered twice");
        assert_eq!(first.sdp, again.sdp);
        assert_eq!(session.local().session_version, local.session_version);
    }
    // As the answer to an offer of ours.
    let _ = accept_answer(&offer, &[Codec::Pcmu, Codec::Pcma]);
});
