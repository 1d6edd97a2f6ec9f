//! `queue`: hands the call to an agent queue (the ACD). The call task asks
//! the queue; when the queue cannot take the call (closed, full, no agent
//! logged in) it reports back and the flow goes on at `next`.
//!
//! ```toml
//! [nodes.agent]
//! kind = "queue"
//! queue = "12333"
//! priority = 0
//! next = "queue_unavailable"
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
}

impl QueueNode {
    pub fn successors(&self) -> Refs<'_> {
        vec![("next".to_owned(), self.next.as_str())]
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
