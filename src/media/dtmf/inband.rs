//! In-band DTMF tone detection (Goertzel) on 8 kHz linear audio.

#[derive(Debug, Default)]
pub struct InbandDetector {}

impl InbandDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds decoded 8 kHz samples (any length, typically one 160-sample
    /// frame). Returns a digit once, when a valid tone has lasted long enough.
    pub fn process(&mut self, samples: &[i16]) -> Option<char> {
        let _ = samples;
        todo!("owned by the DTMF helper")
    }
}
