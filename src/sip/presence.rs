//! Agent presence as the registrar sees it, without I/O: whether an AOR has
//! at least one usable binding (live and reachable), and the edges of that
//! — none → some, some → none — that the ACD is told about.
//!
//! The endpoint calls `update(aor, usable)` after every change that can
//! move an AOR's state (REGISTER, unregister, expiry, keep-alive failure or
//! recovery) and `start` once with the bindings restored from the database,
//! and sends each `Presence` returned on the ACD's bounded channel with
//! `try_send` (a full channel loses the event, never blocks the endpoint;
//! the ACD can ask `SipHandle::contacts` when in doubt).

use std::collections::HashSet;

/// An agent's reachability changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub aor: String,
    pub reachable: bool,
}

/// The AORs currently reachable.
#[derive(Debug, Default)]
pub struct PresenceTracker {
    usable: HashSet<String>,
}

impl PresenceTracker {
    pub fn new() -> PresenceTracker {
        PresenceTracker::default()
    }

    /// At start: one `reachable: true` per AOR with usable bindings.
    pub fn start<'a>(&mut self, usable_aors: impl IntoIterator<Item = &'a str>) -> Vec<Presence> {
        usable_aors
            .into_iter()
            .filter_map(|aor| self.update(aor, true))
            .collect()
    }

    /// `aor` now has (`usable`) or has not a usable binding: the event, if
    /// that is a change.
    pub fn update(&mut self, aor: &str, usable: bool) -> Option<Presence> {
        let changed = if usable {
            self.usable.insert(aor.to_string())
        } else {
            self.usable.remove(aor)
        };
        changed.then(|| Presence {
            aor: aor.to_string(),
            reachable: usable,
        })
    }

    pub fn is_reachable(&self, aor: &str) -> bool {
        self.usable.contains(aor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_edges_are_reported() {
        let mut p = PresenceTracker::new();
        assert_eq!(p.start(["1001", "1001", "1002"]).len(), 2);
        assert_eq!(p.update("1001", true), None);
        assert_eq!(
            p.update("1001", false),
            Some(Presence {
                aor: "1001".into(),
                reachable: false
            })
        );
        assert_eq!(p.update("1001", false), None);
        assert_eq!(p.update("1003", false), None);
        assert!(p.update("1001", true).unwrap().reachable);
        assert!(p.is_reachable("1002"));
    }
}
