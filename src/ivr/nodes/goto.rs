//! `goto`: goes to another node at once (a named junction, handy as a
//! shared "back to the main menu" target).
//!
//! ```toml
//! [nodes.back]
//! kind = "goto"
//! next = "main_menu"
//! ```

use serde::Deserialize;

use super::Refs;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GotoNode {
    pub next: String,
}

impl GotoNode {
    pub fn successors(&self) -> Refs<'_> {
        vec![("next".to_owned(), self.next.as_str())]
    }
}
