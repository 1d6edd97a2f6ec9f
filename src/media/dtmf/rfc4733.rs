//! RFC 4733 telephone-event receiver.

/// Turns a stream of telephone-event payloads into digits: one digit per
/// event, however many packets (and end-bit retransmissions) carry it.
#[derive(Debug, Default)]
pub struct Rfc4733Receiver {}

impl Rfc4733Receiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one RTP packet whose payload type is the negotiated
    /// telephone-event type. Returns the digit when a new event is seen.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<char> {
        let _ = (ssrc, timestamp, payload);
        todo!("owned by the DTMF helper")
    }
}
