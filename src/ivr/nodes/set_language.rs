//! `set_language`: sets the call's language (prompts are played in it from
//! then on), then goes on. A flow with such a node has its prompts checked
//! in every language it can switch to.
//!
//! ```toml
//! [nodes.english]
//! kind = "set_language"
//! language = "en"
//! next = "main_menu"
//! ```

use serde::Deserialize;

use super::Refs;
use crate::lang::Lang;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLanguageNode {
    pub language: Lang,
    pub next: String,
}

impl SetLanguageNode {
    pub fn successors(&self) -> Refs<'_> {
        vec![("next".to_owned(), self.next.as_str())]
    }
}
