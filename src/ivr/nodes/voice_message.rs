//! `voice_message`: plays its prompts (default `voicemail_prompt`, `beep`),
//! then asks the call task to record a message of at most `max_secs`,
//! ended early by the `terminator` key (the recorder watches for it). When
//! the call task reports the recording done, the flow goes on at `next`.
//! Keys pressed before or during the recording are not kept as type-ahead.
//!
//! ```toml
//! [nodes.message]
//! kind = "voice_message"
//! max_secs = 60
//! next = "goodbye"
//! ```

use serde::Deserialize;

use super::{default_terminator, is_dtmf, Refs};
use crate::ivr::flow::FlowErrorKind;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceMessageNode {
    #[serde(default = "default_prompts")]
    pub prompts: Vec<String>,
    #[serde(default = "default_max_secs")]
    pub max_secs: u32,
    #[serde(default = "default_terminator")]
    pub terminator: char,
    pub next: String,
}

fn default_prompts() -> Vec<String> {
    vec!["voicemail_prompt".to_owned(), "beep".to_owned()]
}

fn default_max_secs() -> u32 {
    60
}

/// Longest message accepted.
pub const MAX_MESSAGE_SECS: u32 = 600;

impl VoiceMessageNode {
    pub fn successors(&self) -> Refs<'_> {
        vec![("next".to_owned(), self.next.as_str())]
    }

    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        let mut errs = Vec::new();
        if !(1..=MAX_MESSAGE_SECS).contains(&self.max_secs) {
            errs.push((
                "max_secs".into(),
                FlowErrorKind::BadValue(format!("must be 1..={MAX_MESSAGE_SECS}")),
            ));
        }
        if !is_dtmf(self.terminator) {
            errs.push((
                "terminator".into(),
                FlowErrorKind::NotDtmf(self.terminator.to_string()),
            ));
        }
        errs
    }
}
