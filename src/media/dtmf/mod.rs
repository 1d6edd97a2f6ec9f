//! DTMF from the three places it arrives: RFC 4733 telephone-events in RTP,
//! SIP INFO bodies, and tones in the audio itself (gateways that send in-band).

pub mod inband;
pub mod info;
pub mod rfc4733;

/// Where a digit was detected, for the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    Rfc4733,
    SipInfo,
    Inband,
}
