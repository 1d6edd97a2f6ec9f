//! `hangup`: plays its prompts (e.g. `goodbye`), then ends the call. The
//! hang-up reason given to the call task is `reason`, else the node's
//! `result` label, else `flow_end`.
//!
//! ```toml
//! [nodes.pin_failed]
//! kind = "hangup"
//! prompts = ["too_many_attempts", "goodbye"]
//! result = "pin_failed"
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangupNode {
    #[serde(default)]
    pub prompts: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl HangupNode {
    /// The reason reported with the hang-up.
    pub fn reason<'a>(&'a self, result: Option<&'a str>) -> &'a str {
        self.reason.as_deref().or(result).unwrap_or("flow_end")
    }
}
