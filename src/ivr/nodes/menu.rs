//! `menu`: plays its prompts and waits for one key.
//!
//! - The prompt is interruptible: a key pressed during it is taken at once
//!   (the playback is stopped). Keys typed ahead during earlier,
//!   uninterruptible prompts are taken before the prompt is played; the
//!   prompt is then skipped.
//! - The timeout (`timeout_secs`, default 5) starts when the prompt has
//!   finished playing.
//! - A key in `options` goes to its node; `repeat_key` (e.g. `*`) plays the
//!   prompt again without counting as a failure; any other key is invalid.
//! - An invalid key or a timeout is a failure: the menu plays
//!   `invalid_prompt` (default `invalid_input`) or `timeout_prompt` (default
//!   `no_input`) and then its prompt again, up to `retries` times (default
//!   3); the failure after that goes to `on_fail`. With `on_timeout` set, a
//!   timeout goes there at once instead (e.g. "no choice = Mandarin").
//!
//! ```toml
//! [nodes.main_menu]
//! kind = "menu"
//! prompts = ["menu_12333_main"]
//! options = { "1" = "balance", "2" = "hours_info", "0" = "agent" }
//! repeat_key = "*"
//! on_fail = "goodbye"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    default_invalid_prompt, default_retries, default_timeout_prompt, is_dtmf, list, Refs,
    MAX_RETRIES,
};
use crate::ivr::flow::FlowErrorKind;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuNode {
    pub prompts: Vec<String>,
    pub options: BTreeMap<String, String>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u32,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_invalid_prompt")]
    pub invalid_prompt: String,
    #[serde(default = "default_timeout_prompt")]
    pub timeout_prompt: String,
    #[serde(default)]
    pub repeat_key: Option<char>,
    pub on_fail: String,
    #[serde(default)]
    pub on_timeout: Option<String>,
}

fn default_timeout_secs() -> u32 {
    5
}

/// What a key does in a menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuKey<'a> {
    Go(&'a str),
    Repeat,
    Invalid,
}

impl MenuNode {
    pub fn key(&self, k: char) -> MenuKey<'_> {
        let mut buf = [0u8; 4];
        if let Some(target) = self.options.get(&*k.encode_utf8(&mut buf)) {
            MenuKey::Go(target)
        } else if self.repeat_key == Some(k) {
            MenuKey::Repeat
        } else {
            MenuKey::Invalid
        }
    }

    pub fn successors(&self) -> Refs<'_> {
        let mut out: Refs<'_> = self
            .options
            .iter()
            .map(|(k, v)| (format!("options.\"{k}\""), v.as_str()))
            .collect();
        out.push(("on_fail".into(), self.on_fail.as_str()));
        if let Some(t) = &self.on_timeout {
            out.push(("on_timeout".into(), t.as_str()));
        }
        out
    }

    pub fn prompts(&self) -> Refs<'_> {
        let mut out = list("prompts", &self.prompts);
        out.push(("invalid_prompt".into(), self.invalid_prompt.as_str()));
        out.push(("timeout_prompt".into(), self.timeout_prompt.as_str()));
        out
    }

    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        let mut errs = Vec::new();
        let bad = |m: &str| FlowErrorKind::BadValue(m.to_owned());
        if self.prompts.is_empty() {
            errs.push(("prompts".into(), bad("a menu needs a prompt")));
        }
        if self.options.is_empty() {
            errs.push(("options".into(), bad("a menu needs at least one option")));
        }
        for k in self.options.keys() {
            let mut chars = k.chars();
            let ok = matches!((chars.next(), chars.next()), (Some(c), None) if is_dtmf(c));
            if !ok {
                errs.push((
                    format!("options.\"{k}\""),
                    FlowErrorKind::NotDtmf(k.clone()),
                ));
            }
        }
        if let Some(r) = self.repeat_key {
            if !is_dtmf(r) {
                errs.push(("repeat_key".into(), FlowErrorKind::NotDtmf(r.to_string())));
            } else if self.options.contains_key(&r.to_string()) {
                errs.push(("repeat_key".into(), bad("the repeat key is also an option")));
            }
        }
        if !(1..=120).contains(&self.timeout_secs) {
            errs.push(("timeout_secs".into(), bad("must be 1..=120")));
        }
        if self.retries > MAX_RETRIES {
            errs.push((
                "retries".into(),
                FlowErrorKind::BadValue(format!("at most {MAX_RETRIES}")),
            ));
        }
        errs
    }
}
