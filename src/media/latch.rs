//! Symmetric RTP latching (RFC 4961; "comedia"), shared by the RTP session
//! and the bridge.
//!
//! Frames go to the address in the SDP until the first valid RTP packet of
//! one of our payload types arrives; from then on to that packet's source.
//! Later packets from another source are accepted, and re-latched to, only
//! if they carry the latched stream's SSRC (a NAT rebinding); other streams
//! are ignored, so a stray sender cannot steal the call's audio. A packet
//! from the latched address with one of our payload types updates the
//! latched SSRC (the peer restarted its stream).
//!
//! Pure state machine: no I/O, no clock.

use std::net::SocketAddr;

/// What to do with a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the latched peer: handle it.
    Accept,
    /// Handle it; frames now go to this new address (report it).
    Latched(SocketAddr),
    /// Not the call's stream: drop it.
    Ignore,
}

/// Where our frames go and which stream we accept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SymmetricLatch {
    latched: Option<(SocketAddr, u32)>,
}

impl SymmetricLatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one valid RTP packet from `src`; `ours` says whether its
    /// payload type is one negotiated for the leg (audio, telephone-event,
    /// comfort noise). Only `ours` packets latch.
    pub fn on_packet(&mut self, src: SocketAddr, ssrc: u32, ours: bool) -> Verdict {
        match self.latched {
            Some((addr, _)) if addr == src => {
                if ours {
                    self.latched = Some((src, ssrc));
                }
                Verdict::Accept
            }
            Some((_, latched_ssrc)) if ours && latched_ssrc == ssrc => {
                self.latched = Some((src, ssrc));
                Verdict::Latched(src)
            }
            None if ours => {
                self.latched = Some((src, ssrc));
                Verdict::Latched(src)
            }
            _ => Verdict::Ignore,
        }
    }

    /// Forgets the latch (a re-INVITE moved the peer): the next packet
    /// latches again.
    pub fn reset(&mut self) {
        self.latched = None;
    }

    /// The latched address, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.latched.map(|(addr, _)| addr)
    }

    /// Where to send: the latched address, else the SDP's.
    pub fn destination(&self, sdp_remote: Option<SocketAddr>) -> Option<SocketAddr> {
        self.addr().or(sdp_remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn latches_follows_ssrc_and_ignores_strangers() {
        let mut l = SymmetricLatch::new();
        assert_eq!(l.destination(Some(a(1))), Some(a(1)));
        assert_eq!(l.on_packet(a(2), 7, false), Verdict::Ignore);
        assert_eq!(l.on_packet(a(2), 7, true), Verdict::Latched(a(2)));
        assert_eq!(l.destination(Some(a(1))), Some(a(2)));
        assert_eq!(l.on_packet(a(2), 7, false), Verdict::Accept);
        assert_eq!(l.on_packet(a(3), 8, true), Verdict::Ignore);
        assert_eq!(l.on_packet(a(4), 7, true), Verdict::Latched(a(4)));
        // The peer restarts its stream from the same address.
        assert_eq!(l.on_packet(a(4), 9, true), Verdict::Accept);
        assert_eq!(l.on_packet(a(5), 7, true), Verdict::Ignore);
        l.reset();
        assert_eq!(l.addr(), None);
    }
}
