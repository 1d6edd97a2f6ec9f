//! A third party's voice mixed into what a bridge sends (live monitoring's
//! whisper and barge, 耳语 / 强插): the supervisor's decoded audio comes in
//! on a bounded channel ([`VoiceTx`], filled by the monitor's feed), and the
//! bridge adds it, sample by sample with saturation, to the audio it relays
//! to the side(s) the voice is for ([`VoiceTo`]).
//!
//! The bridge never waits on it: it takes what has arrived (`try_recv`)
//! when it relays a packet and keeps at most [`MAX_QUEUED`] samples per
//! voice and side (the oldest go). The voice rides on the relayed stream:
//! a side that is sent no relayed audio (the other side holds, or sends
//! nothing; a prompt plays to it) does not hear it. A closed channel (the
//! monitor ended) removes the voice, and the little it had queued.

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TryRecvError};

use super::bridge::Side;
use super::{g711, Codec, FRAME_SAMPLES};

/// At most this many samples (60 ms) of a voice wait per side.
pub const MAX_QUEUED: usize = 3 * FRAME_SAMPLES;
/// Frames a voice's channel holds (200 ms).
pub const VOICE_CAPACITY: usize = 10;

/// Who hears a voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceTo {
    /// The agent only (whisper).
    Agent,
    /// Caller and agent (barge, a three-way call).
    Both,
}

/// Sends a voice's frames (linear 16-bit PCM at 8 kHz) to a bridge.
pub type VoiceTx = mpsc::Sender<Vec<i16>>;

/// One voice on a bridge: its channel and what waits for each side
/// (`None`: the side does not hear it).
#[derive(Debug)]
pub struct Voice {
    rx: mpsc::Receiver<Vec<i16>>,
    /// Caller, agent.
    queues: [Option<VecDeque<i16>>; 2],
}

/// Appends `samples` to `queue`, keeping at most `max` (the oldest go):
/// a source faster than the reader never builds up delay.
pub(crate) fn push_bounded(queue: &mut VecDeque<i16>, samples: &[i16], max: usize) {
    queue.extend(samples.iter().copied());
    if queue.len() > max {
        let excess = queue.len() - max;
        queue.drain(..excess);
    }
}

impl Voice {
    /// A voice for `to`, and the sender that feeds it.
    pub fn new(to: VoiceTo) -> (VoiceTx, Voice) {
        let (tx, rx) = mpsc::channel(VOICE_CAPACITY);
        let caller = (to == VoiceTo::Both).then(VecDeque::new);
        (
            tx,
            Voice {
                rx,
                queues: [caller, Some(VecDeque::new())],
            },
        )
    }
}

/// The voices on one bridge.
#[derive(Debug, Default)]
pub struct Voices(Vec<Voice>);

impl Voices {
    pub fn add(&mut self, voice: Voice) {
        self.0.push(voice);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes what has arrived on every voice; closed voices go.
    pub fn pull(&mut self) {
        self.0.retain_mut(|v| loop {
            match v.rx.try_recv() {
                Ok(frame) => {
                    for q in v.queues.iter_mut().flatten() {
                        push_bounded(q, &frame, MAX_QUEUED);
                    }
                }
                Err(TryRecvError::Empty) => break true,
                Err(TryRecvError::Disconnected) => break false,
            }
        });
    }

    /// Mixes the voices waiting for `to` into `payload` (G.711 in
    /// `codec`), in place; `pcm` is scratch space. Untouched if none waits.
    pub fn mix_into(&mut self, to: Side, codec: Codec, payload: &mut [u8], pcm: &mut Vec<i16>) {
        let i = to.index();
        if !self
            .0
            .iter()
            .any(|v| v.queues[i].as_ref().is_some_and(|q| !q.is_empty()))
        {
            return;
        }
        pcm.clear();
        g711::decode(codec, payload, pcm);
        for q in self.0.iter_mut().filter_map(|v| v.queues[i].as_mut()) {
            for s in pcm.iter_mut() {
                let Some(x) = q.pop_front() else { break };
                *s = s.saturating_add(x);
            }
        }
        for (out, &s) in payload.iter_mut().zip(pcm.iter()) {
            *out = g711::encode_sample(codec, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulaw(byte: u8) -> i16 {
        g711::decode_sample(Codec::Pcmu, byte)
    }

    #[test]
    fn a_whisper_is_mixed_to_the_agent_only_and_a_barge_to_both() {
        let mut voices = Voices::default();
        let (whisper, v) = Voice::new(VoiceTo::Agent);
        voices.add(v);
        let mut pcm = Vec::new();
        whisper.try_send(vec![ulaw(0x11); FRAME_SAMPLES]).unwrap();
        voices.pull();
        let mut to_caller = [0x24u8; FRAME_SAMPLES];
        voices.mix_into(Side::Caller, Codec::Pcmu, &mut to_caller, &mut pcm);
        assert_eq!(
            to_caller, [0x24; FRAME_SAMPLES],
            "the caller hears no whisper"
        );
        let mut to_agent = [0x42u8; FRAME_SAMPLES];
        voices.mix_into(Side::Agent, Codec::Pcmu, &mut to_agent, &mut pcm);
        let want = g711::encode_sample(Codec::Pcmu, ulaw(0x42).saturating_add(ulaw(0x11)));
        assert!(to_agent.iter().all(|&b| b == want));
        // Used up: the next packet passes as it is.
        let mut again = [0x42u8; FRAME_SAMPLES];
        voices.mix_into(Side::Agent, Codec::Pcmu, &mut again, &mut pcm);
        assert_eq!(again, [0x42; FRAME_SAMPLES]);

        let (barge, v) = Voice::new(VoiceTo::Both);
        voices.add(v);
        barge.try_send(vec![ulaw(0x11); FRAME_SAMPLES]).unwrap();
        voices.pull();
        let mut to_caller = [0x24u8; FRAME_SAMPLES];
        voices.mix_into(Side::Caller, Codec::Pcmu, &mut to_caller, &mut pcm);
        let want = g711::encode_sample(Codec::Pcmu, ulaw(0x24).saturating_add(ulaw(0x11)));
        assert!(to_caller.iter().all(|&b| b == want));
        // Closed voices go.
        drop(whisper);
        drop(barge);
        voices.pull();
        assert!(voices.is_empty());
    }

    #[test]
    fn a_voice_queues_at_most_60_ms() {
        let mut voices = Voices::default();
        let (tx, v) = Voice::new(VoiceTo::Agent);
        voices.add(v);
        for _ in 0..VOICE_CAPACITY {
            tx.try_send(vec![100; FRAME_SAMPLES]).unwrap();
        }
        assert!(tx.try_send(vec![100; FRAME_SAMPLES]).is_err(), "bounded");
        voices.pull();
        assert_eq!(
            voices.0[0].queues[1].as_ref().map(VecDeque::len),
            Some(MAX_QUEUED)
        );
        assert!(voices.0[0].queues[0].is_none());
    }
}
