//! The prompt store: every WAV under `prompts/<lang>/` (8 kHz, 16-bit, mono)
//! is loaded and encoded to PCMU and PCMA once at start, never per call. A
//! center replaces a prompt by dropping in a recording with the same name.

use crate::lang::Lang;
use std::sync::Arc;
use std::time::Duration;

/// One prompt, ready to send: `pcmu`/`pcma` are the whole prompt encoded,
/// sent as consecutive 160-byte (20 ms) frames; the last frame is padded with
/// silence to a whole frame.
#[derive(Debug)]
pub struct Prompt {
    /// The file stem, e.g. `welcome_12333` or `num_7`.
    pub name: String,
    pub lang: Lang,
    pub samples: Arc<[i16]>,
    pub pcmu: Arc<[u8]>,
    pub pcma: Arc<[u8]>,
}

impl Prompt {
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 125)
    }

    /// The encoded prompt for `codec`.
    pub fn encoded(&self, codec: super::Codec) -> &Arc<[u8]> {
        match codec {
            super::Codec::Pcmu => &self.pcmu,
            super::Codec::Pcma => &self.pcma,
        }
    }
}
