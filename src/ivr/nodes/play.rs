//! `play`: plays prompts, then goes on.
//!
//! ```toml
//! [nodes.welcome]
//! kind = "play"
//! prompts = ["welcome_12333"]
//! interruptible = true   # a key stops it (and is kept for the next input)
//! next = "language"
//! ```

use serde::Deserialize;

use super::Refs;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayNode {
    pub prompts: Vec<String>,
    #[serde(default)]
    pub interruptible: bool,
    pub next: String,
}

impl PlayNode {
    pub fn successors(&self) -> Refs<'_> {
        vec![("next".to_owned(), self.next.as_str())]
    }
}
