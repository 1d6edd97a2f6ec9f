//! Taps on a bridge: what each side of a bridged call sends, as it arrives,
//! for the call recorder (and live monitoring). A tap is a bounded channel;
//! the bridge never waits on it: a full tap loses the frame (counted in
//! [`super::bridge::SideStats::tap_dropped`]) and a closed tap is detached.
//!
//! Each [`TapEvent::Audio`] carries the instant the packet was read, so a
//! consumer can place both sides on one timeline (the recorder's stereo
//! file), and the side's codec, so it can decode. Hold and resume are
//! reported in the same stream, in order with the audio.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use super::bridge::Side;
use super::Codec;

/// What a tap receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapEvent {
    /// An audio packet `side` sent (its negotiated codec, before any
    /// transcoding; comfort noise and telephone-events are not tapped).
    Audio {
        side: Side,
        at: Instant,
        codec: Codec,
        ssrc: u32,
        timestamp: u32,
        payload: Bytes,
    },
    /// `side` put the call on hold (`held`) or resumed it.
    Hold { side: Side, held: bool, at: Instant },
    /// A live monitor's voice (whisper, barge), decoded, as it reached the
    /// daemon. Not from the bridge: the monitor's feed sends it straight to
    /// the call's recorder ([`crate::recording::RecorderControl::voice_tap`]).
    Voice { at: Instant, pcm: Arc<[i16]> },
}

/// Frames a recorder's tap holds: 5 s of both sides at 20 ms.
pub const TAP_CAPACITY: usize = 512;

/// The taps of one bridge.
#[derive(Debug, Default)]
pub(crate) struct Taps(Vec<mpsc::Sender<TapEvent>>);

impl Taps {
    pub(crate) fn add(&mut self, tap: mpsc::Sender<TapEvent>) {
        self.0.push(tap);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Offers `event` to every tap; returns how many were full (lost it).
    /// Closed taps are removed. The last tap gets the event itself, the
    /// others a copy (with one tap, the recorder's, nothing is copied).
    pub(crate) fn send(&mut self, event: TapEvent) -> u64 {
        let mut full = 0;
        let mut left = self.0.len();
        let mut event = Some(event);
        self.0.retain(|tap| {
            left -= 1;
            let e = if left == 0 {
                event.take()
            } else {
                event.clone()
            };
            match tap.try_send(e.expect("taken by the last tap only")) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    full += 1;
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
        full
    }
}
