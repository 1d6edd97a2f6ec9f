//! `hours`: branches on the time of the call, by a calendar defined in the
//! flow's `[calendars.NAME]` (see `ivr::hours`). The time is the call's wall
//! clock as the engine computes it (start time + elapsed).
//!
//! ```toml
//! [nodes.check_hours]
//! kind = "hours"
//! calendar = "agents"
//! open = "to_agent"
//! closed = "after_hours"
//! ```

use serde::Deserialize;

use super::Refs;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursNode {
    pub calendar: String,
    pub open: String,
    pub closed: String,
}

impl HoursNode {
    pub fn successors(&self) -> Refs<'_> {
        vec![
            ("open".to_owned(), self.open.as_str()),
            ("closed".to_owned(), self.closed.as_str()),
        ]
    }
}
