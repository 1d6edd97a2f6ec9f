//! The post-call satisfaction survey (满意度评价): after the agent hangs up,
//! a caller in a queue with `survey = true` hears the question and keys a
//! score from 1 (very dissatisfied) to 5 (very satisfied). Sans-IO.
//!
//! ```text
//! Asking ──digit 1-5──▶ Thanking ──done──▶ Done(Some(score))
//!   │ other key / 10 s silence: ask again, at most twice more
//!   └──────────────────────────────────────▶ Done(None) (goodbye)
//! ```
//! The score goes into the call record; a caller who hangs up during the
//! survey leaves no score.

use std::time::Duration;

use tokio::time::Instant;

/// How long the caller has to key a score after the question.
pub const ANSWER_TIME: Duration = Duration::from_secs(10);
/// The question is asked at most this many times.
const MAX_ASKS: u32 = 3;
/// Playback ids of the survey (distinct from the IVR's and the queue's).
pub const SURVEY_PLAY_BIT: u64 = 1 << 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurveyAction {
    Play {
        id: u64,
        prompt: &'static str,
    },
    /// The survey is over; hang up (score, if one was given).
    Finish {
        score: Option<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Asking { id: u64, asks: u32 },
    Waiting { until: Instant, asks: u32 },
    Closing { id: u64, score: Option<u8> },
    Done,
}

#[derive(Debug)]
pub struct Survey {
    state: State,
    next_id: u64,
}

impl Default for Survey {
    fn default() -> Self {
        Self::new()
    }
}

impl Survey {
    pub fn new() -> Survey {
        Survey {
            state: State::Done,
            next_id: SURVEY_PLAY_BIT,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn ask(&mut self, asks: u32) -> Vec<SurveyAction> {
        let id = self.id();
        self.state = State::Asking { id, asks };
        vec![SurveyAction::Play {
            id,
            prompt: "satisfaction_survey",
        }]
    }

    fn close(&mut self, score: Option<u8>) -> Vec<SurveyAction> {
        let id = self.id();
        self.state = State::Closing { id, score };
        let prompt = if score.is_some() {
            "survey_thanks"
        } else {
            "goodbye"
        };
        vec![SurveyAction::Play { id, prompt }]
    }

    pub fn start(&mut self) -> Vec<SurveyAction> {
        self.ask(1)
    }

    /// When the caller's time to answer runs out.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until, .. } => Some(until),
            _ => None,
        }
    }

    pub fn on_playback_done(&mut self, now: Instant, id: u64) -> Vec<SurveyAction> {
        match self.state {
            State::Asking { id: a, asks } if a == id => {
                self.state = State::Waiting {
                    until: now + ANSWER_TIME,
                    asks,
                };
                Vec::new()
            }
            State::Closing { id: c, score } if c == id => {
                self.state = State::Done;
                vec![SurveyAction::Finish { score }]
            }
            _ => Vec::new(),
        }
    }

    /// A key, during the question or after it (type-ahead counts).
    pub fn on_digit(&mut self, digit: char) -> Vec<SurveyAction> {
        let asks = match self.state {
            State::Asking { asks, .. } | State::Waiting { asks, .. } => asks,
            _ => return Vec::new(),
        };
        match digit.to_digit(10) {
            Some(d @ 1..=5) => self.close(Some(d as u8)),
            _ if asks < MAX_ASKS => self.ask(asks + 1),
            _ => self.close(None),
        }
    }

    pub fn on_timer(&mut self, now: Instant) -> Vec<SurveyAction> {
        match self.state {
            State::Waiting { until, asks } if now >= until => {
                if asks < MAX_ASKS {
                    self.ask(asks + 1)
                } else {
                    self.close(None)
                }
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(a: &[SurveyAction]) -> (u64, &'static str) {
        match a {
            [SurveyAction::Play { id, prompt }] => (*id, prompt),
            other => panic!("expected a Play, got {other:?}"),
        }
    }

    #[test]
    fn a_score_is_thanked_and_kept() {
        let now = Instant::now();
        let mut s = Survey::new();
        let (q, p) = play(&s.start());
        assert_eq!(p, "satisfaction_survey");
        assert!(s.on_playback_done(now, q).is_empty());
        assert_eq!(s.deadline(), Some(now + ANSWER_TIME));
        let (t, p) = play(&s.on_digit('4'));
        assert_eq!(p, "survey_thanks");
        assert!(s.on_digit('5').is_empty(), "one score only");
        assert_eq!(
            s.on_playback_done(now, t),
            [SurveyAction::Finish { score: Some(4) }]
        );
    }

    #[test]
    fn type_ahead_during_the_question_counts() {
        let mut s = Survey::new();
        s.start();
        let (_, p) = play(&s.on_digit('1'));
        assert_eq!(p, "survey_thanks");
    }

    #[test]
    fn silence_or_bad_keys_ask_again_then_goodbye() {
        let now = Instant::now();
        let mut s = Survey::new();
        let (q, _) = play(&s.start());
        s.on_playback_done(now, q);
        assert!(s.on_timer(now).is_empty(), "not yet");
        let (q, p) = play(&s.on_timer(now + ANSWER_TIME));
        assert_eq!(p, "satisfaction_survey");
        let (_, p) = play(&s.on_digit('9'));
        assert_eq!(p, "satisfaction_survey", "third and last time");
        let (t, p) = play(&s.on_digit('0'));
        assert_eq!(p, "goodbye");
        assert!(s.on_playback_done(now, q).is_empty(), "stale id");
        assert_eq!(
            s.on_playback_done(now, t),
            [SurveyAction::Finish { score: None }]
        );
    }
}
