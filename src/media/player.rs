//! The prompt player of a media task: which prompt list is playing, and
//! the position in it, one 20 ms frame at a time in the leg's codec (the
//! last frame of a prompt that is not a whole number of frames is padded
//! with silence). Used by the RTP session and, for prompts and hold music,
//! by the bridge.

use super::prompts::Prompt;
use super::{g711, Codec, FRAME_SAMPLES};
use std::sync::Arc;

/// The prompt list being played and the position in it.
#[derive(Debug)]
pub struct Player {
    pub id: u64,
    prompts: Vec<Arc<Prompt>>,
    index: usize,
    offset: usize,
    /// The last frame of a prompt not padded to 160 bytes, padded here.
    padded: [u8; FRAME_SAMPLES],
    /// Start again from the first prompt after the last (hold music).
    looped: bool,
}

impl Default for Player {
    fn default() -> Self {
        Self::new()
    }
}

impl Player {
    pub fn new() -> Self {
        Player {
            id: 0,
            prompts: Vec::new(),
            index: 0,
            offset: 0,
            padded: [0; FRAME_SAMPLES],
            looped: false,
        }
    }

    pub fn start(&mut self, id: u64, prompts: Vec<Arc<Prompt>>, codec: Codec) {
        self.looped = false;
        self.start_list(id, prompts, codec);
    }

    /// Plays `prompts` over and over until stopped (hold music). A list with
    /// no audio at all plays nothing.
    pub fn start_looped(&mut self, prompts: Vec<Arc<Prompt>>, codec: Codec) {
        self.looped = prompts.iter().any(|p| !p.encoded(codec).is_empty());
        self.start_list(0, prompts, codec);
    }

    fn start_list(&mut self, id: u64, prompts: Vec<Arc<Prompt>>, codec: Codec) {
        self.id = id;
        self.prompts = prompts;
        self.index = 0;
        self.offset = 0;
        self.skip_finished(codec);
    }

    pub fn stop(&mut self) {
        self.looped = false;
        self.prompts.clear();
        self.index = 0;
        self.offset = 0;
    }

    pub fn is_playing(&self) -> bool {
        self.index < self.prompts.len()
    }

    /// Moves past prompts whose bytes are all sent (or that are empty).
    pub fn skip_finished(&mut self, codec: Codec) {
        while self.index < self.prompts.len()
            && self.offset >= self.prompts[self.index].encoded(codec).len()
        {
            self.index += 1;
            self.offset = 0;
        }
        if self.index >= self.prompts.len() && self.looped {
            self.index = 0;
            self.offset = 0;
            return;
        }
        if self.index >= self.prompts.len() {
            self.prompts.clear();
            self.index = 0;
        }
    }

    /// The next frame, if a prompt is playing. The caller then calls
    /// `skip_finished` to learn whether that was the last one.
    pub fn next_frame(&mut self, codec: Codec) -> Option<&[u8]> {
        let data = self.prompts.get(self.index)?.encoded(codec);
        let start = self.offset;
        let end = (start + FRAME_SAMPLES).min(data.len());
        self.offset = end;
        let frame = &data[start..end];
        if frame.len() == FRAME_SAMPLES {
            return Some(frame);
        }
        self.padded.fill(g711::silence_byte(codec));
        self.padded[..frame.len()].copy_from_slice(frame);
        Some(&self.padded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn looped_list_starts_again_and_an_empty_one_plays_nothing() {
        let p = Arc::new(Prompt::from_samples("m", Lang::En, vec![0; 200]));
        let mut player = Player::new();
        player.start_looped(vec![p.clone()], Codec::Pcmu);
        for _ in 0..5 {
            assert_eq!(player.next_frame(Codec::Pcmu).map(<[u8]>::len), Some(160));
            player.skip_finished(Codec::Pcmu);
            assert!(player.is_playing());
        }
        player.stop();
        assert!(!player.is_playing());
        let empty = Arc::new(Prompt::from_samples("e", Lang::En, vec![]));
        player.start_looped(vec![empty], Codec::Pcmu);
        assert!(!player.is_playing());
    }
}
