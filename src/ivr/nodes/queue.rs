//! `queue`: hands the call to an agent queue (the ACD). The call task asks
//! the queue; when the queue cannot take the call (closed, full, no agent
//! logged in) it reports back and the flow goes on at `next`.
//!
//! ```toml
//! [nodes.agent]
//! kind = "queue"
//! queue = "12333"
//! priority = 0
//! next = "queue_unavailable"     # full, no agents, waited too long
//! voicemail = "leave_message"    # the caller pressed the voice-message key
//! ```

use serde::Deserialize;

use super::Refs;
use crate::ivr::flow::FlowErrorKind;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueNode {
    pub queue: String,
    #[serde(default)]
    pub priority: i32,
    pub next: String,
    /// Where a caller who presses the queue's voice-message key goes
    /// (default: `next`).
    #[serde(default)]
    pub voicemail: Option<String>,
}

impl QueueNode {
    pub fn successors(&self) -> Refs<'_> {
        let mut refs = vec![("next".to_owned(), self.next.as_str())];
        if let Some(v) = &self.voicemail {
            refs.push(("voicemail".to_owned(), v.as_str()));
        }
        refs
    }

    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        if self.queue.trim().is_empty() {
            return vec![(
                "queue".into(),
                FlowErrorKind::BadValue("queue name is empty".into()),
            )];
        }
        Vec::new()
    }
}
