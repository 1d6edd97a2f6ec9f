//! The offer/answer state of one call leg (RFC 3264) on top of
//! `media::sdp::SdpSession`: what was negotiated last, and whether our offer
//! (sent in a 2xx to an INVITE without SDP) still waits for its answer in
//! the ACK (RFC 3261 §13.2.1).

use crate::media::sdp::{
    accept_answer, LocalMedia, Negotiated, SdpError, SdpSession, SessionDescription,
};
use crate::media::Codec;

/// Codecs we offer and accept, in our order of preference.
pub const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
/// The payload type we offer for telephone-event.
pub const DTMF_PT: u8 = 101;

#[derive(Debug)]
pub struct OfferAnswer {
    session: SdpSession,
    awaiting_answer: bool,
    pub current: Option<Negotiated>,
}

impl OfferAnswer {
    pub fn new(local: LocalMedia) -> Self {
        OfferAnswer {
            session: SdpSession::new(local),
            awaiting_answer: false,
            current: None,
        }
    }

    /// Answers an offer (the INVITE's or a re-INVITE's); returns our SDP. A
    /// refused offer leaves the negotiated state as it was.
    pub fn answer(&mut self, offer: &[u8]) -> Result<String, SdpError> {
        let offer = SessionDescription::parse(offer)?;
        let ans = self.session.answer(&offer, &CODECS)?;
        self.current = Some(ans.negotiated());
        Ok(ans.sdp)
    }

    /// Our offer, for an INVITE (or re-INVITE) that came without SDP.
    pub fn offer(&mut self) -> String {
        self.awaiting_answer = true;
        self.session.offer(&CODECS, DTMF_PT)
    }

    /// Our offer with `first` as the preferred codec (the other leg's, so
    /// that a bridge need not transcode), for the INVITE to an agent.
    pub fn offer_preferring(&mut self, first: Option<Codec>) -> String {
        self.awaiting_answer = true;
        let mut codecs = CODECS;
        if first == Some(Codec::Pcma) {
            codecs.reverse();
        }
        self.session.offer(&codecs, DTMF_PT)
    }

    pub fn awaiting_answer(&self) -> bool {
        self.awaiting_answer
    }

    /// Takes the answer to our offer.
    pub fn accept_answer(&mut self, answer: &[u8]) -> Result<(), SdpError> {
        let answer = SessionDescription::parse(answer)?;
        let n = accept_answer(&answer, &CODECS)?;
        self.awaiting_answer = false;
        self.current = Some(n);
        Ok(())
    }

    /// True while the far end does not send to us, or has nowhere for us to
    /// send (hold, RFC 3264 §8.4).
    pub fn held(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|n| n.remote_rtp.is_none() || !n.direction.sends())
    }
}
