//! A caller waiting in an agent queue: what it hears and which keys work.
//! Sans-IO: the call task feeds it playback ends, the ACD's announcements
//! and the caller's digits, and carries out the [`WaitAction`]s.
//!
//! ```text
//!  join ──▶ Music ──announce──▶ Announcing ──done──▶ Music (from the top)
//!             │  ▲                   │
//!             │  └──── done (loop) ──┘ (the music loops without end)
//!             └── voicemail key ──▶ BreakoutVoicemail (the flow takes over)
//!             └── callback key  ──▶ RequestCallback   (then a confirmation)
//! ```
//!
//! The announcement says the position as the number of callers ahead
//! ("您前面还有 三 位来电者在等候"; nothing when none is ahead), then the
//! estimated wait rounded up to whole minutes when the queue knows one and
//! `announce_wait` is on, then the break-out keys, in the call's language,
//! with the number prompts of the IVR (`say_number`).

use std::time::Duration;

use crate::acd::QueueConfig;
use crate::ivr::say::say_number;
use crate::lang::Lang;

/// Playback ids of queue prompts have this bit set, so they never collide
/// with the IVR's.
pub const QUEUE_PLAY_BIT: u64 = 1 << 62;

/// What the call task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitAction {
    /// Play these prompts (in the call's language), replacing what plays.
    Play { id: u64, prompts: Vec<String> },
    /// The caller wants to leave a voice message: leave the queue, and let
    /// the flow run its voice-message node.
    BreakoutVoicemail,
    /// The caller wants a callback on the calling number.
    RequestCallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Playing {
    Music(u64),
    Announcement(u64),
}

/// One caller's wait.
#[derive(Debug)]
pub struct QueueWait {
    hold_music: String,
    announce_wait: bool,
    voicemail_key: Option<char>,
    callback_key: Option<char>,
    lang: Lang,
    playing: Playing,
    next_id: u64,
    /// Set once a break-out was asked for: later keys do nothing.
    left: bool,
}

fn key(s: &str) -> Option<char> {
    s.chars().next()
}

impl QueueWait {
    pub fn new(queue: &QueueConfig, lang: Lang) -> QueueWait {
        QueueWait {
            hold_music: queue.hold_music.clone(),
            announce_wait: queue.announce_wait,
            voicemail_key: key(&queue.voicemail_key),
            callback_key: key(&queue.callback_key),
            lang,
            playing: Playing::Music(QUEUE_PLAY_BIT),
            next_id: QUEUE_PLAY_BIT,
            left: false,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn music(&mut self) -> WaitAction {
        let id = self.id();
        self.playing = Playing::Music(id);
        WaitAction::Play {
            id,
            prompts: vec![self.hold_music.clone()],
        }
    }

    /// The caller has joined at `position`: a first announcement when
    /// someone is ahead, else the music.
    pub fn start(&mut self, position: u32) -> Vec<WaitAction> {
        self.start_after(position, None)
    }

    /// As `start`, with `intro` (e.g. `transferring`) played first.
    pub fn start_after(&mut self, position: u32, intro: Option<&str>) -> Vec<WaitAction> {
        let mut actions = if position > 1 {
            self.on_announce(position, None)
        } else {
            vec![self.music()]
        };
        if let (Some(intro), Some(WaitAction::Play { prompts, .. })) = (intro, actions.first_mut())
        {
            prompts.insert(0, intro.to_string());
        }
        actions
    }

    pub fn on_playback_done(&mut self, id: u64) -> Vec<WaitAction> {
        match self.playing {
            Playing::Music(m) | Playing::Announcement(m) if m == id && !self.left => {
                vec![self.music()]
            }
            _ => Vec::new(),
        }
    }

    /// The ACD's periodic announcement.
    pub fn on_announce(&mut self, position: u32, wait: Option<Duration>) -> Vec<WaitAction> {
        if self.left {
            return Vec::new();
        }
        let mut prompts = Vec::new();
        let ahead = position.saturating_sub(1);
        if ahead == 1 {
            prompts.push("one_caller_ahead".to_string());
        } else if ahead > 1 {
            prompts.push("queue_position_is".to_string());
            prompts.extend(say_number(self.lang, u64::from(ahead)));
            prompts.push("callers_ahead".to_string());
        }
        if let (true, Some(wait)) = (self.announce_wait, wait) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            prompts.push("queue_wait_is".to_string());
            prompts.extend(say_number(self.lang, minutes));
            prompts.push(if minutes == 1 { "minute" } else { "minutes" }.to_string());
        }
        if prompts.is_empty() {
            prompts.push("queue_thanks_waiting".to_string());
        }
        if self.voicemail_key.is_some() || self.callback_key.is_some() {
            prompts.push("queue_breakout_options".to_string());
        }
        let id = self.id();
        self.playing = Playing::Announcement(id);
        vec![WaitAction::Play { id, prompts }]
    }

    pub fn on_digit(&mut self, digit: char) -> Vec<WaitAction> {
        if self.left {
            return Vec::new();
        }
        if Some(digit) == self.voicemail_key {
            self.left = true;
            return vec![WaitAction::BreakoutVoicemail];
        }
        if Some(digit) == self.callback_key {
            self.left = true;
            return vec![WaitAction::RequestCallback];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> QueueConfig {
        let mut q = QueueConfig::new("12345");
        q.callback_key = "2".into();
        q
    }

    fn prompts(a: &[WaitAction]) -> (u64, Vec<String>) {
        match a {
            [WaitAction::Play { id, prompts }] => (*id, prompts.clone()),
            other => panic!("expected one Play, got {other:?}"),
        }
    }

    #[test]
    fn music_loops_and_resumes_after_an_announcement() {
        let mut w = QueueWait::new(&queue(), Lang::Zh);
        let (m1, p) = prompts(&w.start(1));
        assert_eq!(p, ["hold_music"]);
        let (m2, p) = prompts(&w.on_playback_done(m1));
        assert_eq!(p, ["hold_music"]);
        assert_ne!(m1, m2);
        assert!(w.on_playback_done(m1).is_empty(), "a stale id does nothing");
        let (a, p) = prompts(&w.on_announce(4, Some(Duration::from_secs(130))));
        assert_eq!(
            p,
            [
                "queue_position_is",
                "num_3",
                "callers_ahead",
                "queue_wait_is",
                "num_3",
                "minutes",
                "queue_breakout_options"
            ]
        );
        assert!(
            w.on_playback_done(m2).is_empty(),
            "the replaced music's end is stale"
        );
        let (_, p) = prompts(&w.on_playback_done(a));
        assert_eq!(p, ["hold_music"]);
    }

    #[test]
    fn first_in_line_hears_thanks_and_one_minute() {
        let mut q = queue();
        q.voicemail_key = String::new();
        q.callback_key = String::new();
        let mut w = QueueWait::new(&q, Lang::En);
        let (_, p) = prompts(&w.on_announce(1, None));
        assert_eq!(p, ["queue_thanks_waiting"]);
        let (_, p) = prompts(&w.on_announce(1, Some(Duration::from_secs(5))));
        assert_eq!(p, ["queue_wait_is", "num_1", "minute"]);
        assert!(w.on_digit('1').is_empty(), "no break-out keys configured");
    }

    #[test]
    fn joining_behind_others_announces_at_once() {
        let mut w = QueueWait::new(&queue(), Lang::Zh);
        let (_, p) = prompts(&w.start(3));
        assert_eq!(p[..3], ["queue_position_is", "num_2", "callers_ahead"]);
        let mut w = QueueWait::new(&queue(), Lang::En);
        let (_, p) = prompts(&w.start(2));
        assert_eq!(p[0], "one_caller_ahead", "the singular, said whole");
    }

    #[test]
    fn an_intro_comes_first() {
        let mut w = QueueWait::new(&queue(), Lang::Zh);
        let (id, p) = prompts(&w.start_after(1, Some("transferring")));
        assert_eq!(p, ["transferring", "hold_music"]);
        let (_, p) = prompts(&w.on_playback_done(id));
        assert_eq!(p, ["hold_music"]);
    }

    #[test]
    fn breakout_keys_once() {
        let mut w = QueueWait::new(&queue(), Lang::Zh);
        w.start(1);
        assert!(w.on_digit('5').is_empty());
        assert_eq!(w.on_digit('2'), [WaitAction::RequestCallback]);
        assert!(w.on_digit('1').is_empty(), "already leaving");
        assert!(w.on_announce(2, None).is_empty());
        let mut w = QueueWait::new(&queue(), Lang::Zh);
        assert_eq!(w.on_digit('1'), [WaitAction::BreakoutVoicemail]);
    }
}
