//! The offer/answer state of one call leg (RFC 3264): what we offered or
//! answered, the codec in use, where the far end's RTP goes, and whether it
//! holds us. The origin's session id stays for the life of the leg and its
//! version goes up only when our SDP changes (§8).

use crate::media::sdp::{self, Direction, LocalMedia, SessionDescription, SdpError};
use crate::media::Codec;
use std::net::SocketAddr;

/// Codecs we offer and accept, in our order of preference.
pub const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];
/// The payload type we offer for telephone-event.
pub const DTMF_PT: u8 = 101;

/// The media negotiated so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    pub codec: Codec,
    /// `None` while the far end holds with `c=0.0.0.0` (RFC 2543 style).
    pub remote_rtp: Option<SocketAddr>,
    pub dtmf_pt: Option<u8>,
    /// True while the far end sends `sendonly`/`inactive` or holds with 0.0.0.0.
    pub held: bool,
}

#[derive(Debug)]
pub struct OfferAnswer {
    local: LocalMedia,
    last_sdp: Option<String>,
    pending_offer: bool,
    pub current: Option<Negotiated>,
}

impl OfferAnswer {
    pub fn new(local: LocalMedia) -> Self {
        OfferAnswer {
            local,
            last_sdp: None,
            pending_offer: false,
            current: None,
        }
    }

    /// Answers an offer (the INVITE's, or a re-INVITE's). Returns our SDP.
    pub fn answer(&mut self, offer_text: &str) -> Result<String, SdpError> {
        let offer = SessionDescription::parse(offer_text)?;
        let mut ans = sdp::answer(&offer, &self.local, &CODECS)?;
        if let Some(prev) = &self.last_sdp {
            if strip_origin(prev) != strip_origin(&ans.sdp) {
                self.local.session_version += 1;
                ans = sdp::answer(&offer, &self.local, &CODECS)?;
            } else {
                // Unchanged: repeat the same SDP, same version.
                ans.sdp = prev.clone();
            }
        }
        let held = ans.remote_rtp.is_none()
            || matches!(ans.remote_direction, Direction::SendOnly | Direction::Inactive);
        self.current = Some(Negotiated {
            codec: ans.codec,
            remote_rtp: ans.remote_rtp,
            dtmf_pt: ans.dtmf_pt,
            held,
        });
        self.last_sdp = Some(ans.sdp.clone());
        Ok(ans.sdp)
    }

    /// Our offer, for an INVITE that came without SDP (the answer comes in
    /// the ACK, RFC 3261 §13.2.1).
    pub fn offer(&mut self) -> String {
        let text = sdp::offer(&self.local, &CODECS, DTMF_PT);
        self.pending_offer = true;
        self.last_sdp = Some(text.clone());
        text
    }

    pub fn awaiting_answer(&self) -> bool {
        self.pending_offer
    }

    /// Takes the answer to our offer.
    pub fn accept_answer(&mut self, answer_text: &str) -> Result<(), SdpError> {
        let answer = SessionDescription::parse(answer_text)?;
        let n = sdp::accept_answer(&answer, &CODECS)?;
        self.pending_offer = false;
        self.current = Some(Negotiated {
            codec: n.codec,
            remote_rtp: n.remote_rtp,
            dtmf_pt: n.dtmf_pt,
            held: n.remote_rtp.is_none(),
        });
        Ok(())
    }
}

fn strip_origin(sdp: &str) -> String {
    sdp.lines().filter(|l| !l.starts_with("o=")).collect::<Vec<_>>().join("\n")
}
