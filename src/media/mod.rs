//! Media: SDP offer/answer, RTP packets and sessions, the RTP port pool,
//! G.711, DTMF detection (RFC 4733, SIP INFO bodies, in-band tones), and the
//! prompt store whose prompts are encoded once at start, and the bridge that
//! relays RTP between a caller's and an agent's leg.
//!
//! Nothing here touches disk or the database once a call is up.

pub mod bridge;
pub mod dtmf;
pub mod events;
pub mod g711;
pub mod jitter;
pub mod latch;
pub mod media_threads;
pub mod monitor_feed;
pub mod player;
pub mod port_pool;
pub mod prompts;
pub mod recorder;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod tap;
#[cfg(test)]
pub(crate) mod testutil;
pub mod udp_batch;
pub mod voice_mix;

/// The audio codecs the daemon speaks (static payload types, RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
