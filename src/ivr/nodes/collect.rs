//! `collect`: plays its prompts and collects a string of digits into a
//! variable (an ID number, a PIN).
//!
//! - Digits pressed during the prompt count (it stops at the first key), as
//!   do digits typed ahead during earlier prompts; with type-ahead waiting,
//!   the prompt is not played at all.
//! - Ends when `max` digits are in, or at the `terminator` (default `#`)
//!   with at least `min` digits, or when `inter_digit_timeout_secs`
//!   (default 5) pass after a digit with at least `min` digits in. A
//!   terminator pressed right after the `max`-th digit is dropped, so
//!   "18 digits then #" does not leak a `#` into the next node.
//! - `first_digit_timeout_secs` (default 10) runs from the end of the
//!   prompt. Failures (no input, too few digits, an unexpected key) play
//!   `timeout_prompt` (default `no_input`) or `invalid_prompt` (default
//!   `invalid_input`) and then the prompt again, up to `retries` times
//!   (default 3); the failure after that goes to `on_fail`.
//! - `star_as = "X"` makes `*` a digit that is stored as `X` (ID numbers
//!   ending in X); otherwise `*` is an unexpected key.
//! - `secret = true` (a PIN): the value is never logged nor shown by the
//!   session's `Debug`; node ids, not values, go in the IVR path.
//!
//! ```toml
//! [nodes.enter_pin]
//! kind = "collect"
//! prompts = ["enter_pin"]
//! var = "pin"
//! min = 6
//! max = 6
//! secret = true
//! next = "check"
//! on_fail = "goodbye"
//! ```

use serde::Deserialize;

use super::{
    default_invalid_prompt, default_retries, default_terminator, default_timeout_prompt, is_dtmf,
    list, Refs, MAX_RETRIES,
};
use crate::ivr::flow::FlowErrorKind;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectNode {
    pub prompts: Vec<String>,
    pub var: String,
    #[serde(default = "default_min")]
    pub min: u32,
    pub max: u32,
    #[serde(default = "default_terminator")]
    pub terminator: char,
    #[serde(default = "default_first_digit")]
    pub first_digit_timeout_secs: u32,
    #[serde(default = "default_inter_digit")]
    pub inter_digit_timeout_secs: u32,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_invalid_prompt")]
    pub invalid_prompt: String,
    #[serde(default = "default_timeout_prompt")]
    pub timeout_prompt: String,
    #[serde(default)]
    pub star_as: Option<char>,
    #[serde(default)]
    pub secret: bool,
    pub next: String,
    pub on_fail: String,
}

fn default_min() -> u32 {
    1
}

fn default_first_digit() -> u32 {
    10
}

fn default_inter_digit() -> u32 {
    5
}

/// Longest digit string a collect node may ask for.
pub const MAX_DIGITS: u32 = 64;

/// What a key does while collecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectKey {
    /// Append this character.
    Digit(char),
    Terminate,
    Invalid,
}

impl CollectNode {
    pub fn key(&self, k: char) -> CollectKey {
        match k {
            _ if k == self.terminator => CollectKey::Terminate,
            '0'..='9' => CollectKey::Digit(k),
            '*' => self.star_as.map_or(CollectKey::Invalid, CollectKey::Digit),
            _ => CollectKey::Invalid,
        }
    }

    /// Whether `n` digits are enough to end the input.
    pub fn enough(&self, n: usize) -> bool {
        n >= self.min as usize
    }

    pub fn full(&self, n: usize) -> bool {
        n >= self.max as usize
    }

    pub fn successors(&self) -> Refs<'_> {
        vec![
            ("next".to_owned(), self.next.as_str()),
            ("on_fail".to_owned(), self.on_fail.as_str()),
        ]
    }

    pub fn prompts(&self) -> Refs<'_> {
        let mut out = list("prompts", &self.prompts);
        out.push(("invalid_prompt".into(), self.invalid_prompt.as_str()));
        out.push(("timeout_prompt".into(), self.timeout_prompt.as_str()));
        out
    }

    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        let mut errs = Vec::new();
        let bad = |m: String| FlowErrorKind::BadValue(m);
        if self.var.trim().is_empty() {
            errs.push(("var".into(), bad("variable name is empty".into())));
        }
        if self.min > self.max {
            errs.push((
                "min".into(),
                FlowErrorKind::MinOverMax {
                    min: self.min,
                    max: self.max,
                },
            ));
        }
        if !(1..=MAX_DIGITS).contains(&self.max) {
            errs.push(("max".into(), bad(format!("must be 1..={MAX_DIGITS}"))));
        }
        if !is_dtmf(self.terminator) {
            errs.push((
                "terminator".into(),
                FlowErrorKind::NotDtmf(self.terminator.to_string()),
            ));
        } else if self.terminator.is_ascii_digit() {
            errs.push((
                "terminator".into(),
                bad("a digit cannot end the input".into()),
            ));
        } else if self.terminator == '*' && self.star_as.is_some() {
            errs.push(("star_as".into(), bad("`*` is the terminator".into())));
        }
        if let Some(c) = self.star_as {
            if c.is_control() || c.is_whitespace() {
                errs.push((
                    "star_as".into(),
                    bad(format!("{c:?} is not a printable character")),
                ));
            }
        }
        for (key, secs) in [
            ("first_digit_timeout_secs", self.first_digit_timeout_secs),
            ("inter_digit_timeout_secs", self.inter_digit_timeout_secs),
        ] {
            if !(1..=120).contains(&secs) {
                errs.push((key.into(), bad("must be 1..=120".into())));
            }
        }
        if self.retries > MAX_RETRIES {
            errs.push(("retries".into(), bad(format!("at most {MAX_RETRIES}"))));
        }
        errs
    }
}
