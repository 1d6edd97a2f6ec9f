//! The agents' live bridged calls, by agent id: how the HTTP API masks an
//! agent's recording, and how live monitoring finds the bridge to listen
//! to. The call task inserts its entry when an agent is bridged and
//! removes it when the bridge ends.
//!
//! A std mutex: held only to insert, remove or clone an entry, never
//! across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::media::bridge::BridgeControl;
use crate::recording::RecorderControl;

/// One agent's bridged call.
#[derive(Debug, Clone)]
pub struct LiveCall {
    /// The caller's Call-ID (the call task's).
    pub call_id: String,
    pub agent: String,
    pub queue: Option<String>,
    pub bridge: BridgeControl,
    /// The call's recording, if it is recorded.
    pub recorder: Option<RecorderControl>,
}

/// The registry. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveCalls(Arc<Mutex<HashMap<String, LiveCall>>>);

impl LiveCalls {
    pub fn insert(&self, call: LiveCall) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(call.agent.clone(), call);
        }
    }

    /// Removes `agent`'s entry if it is still the one of `call_id`.
    pub fn remove(&self, agent: &str, call_id: &str) {
        if let Ok(mut map) = self.0.lock() {
            if map.get(agent).is_some_and(|c| c.call_id == call_id) {
                map.remove(agent);
            }
        }
    }

    /// `agent`'s bridged call, if any.
    pub fn of_agent(&self, agent: &str) -> Option<LiveCall> {
        self.0.lock().ok()?.get(agent).cloned()
    }

    /// Every live call, by agent id.
    pub fn all(&self) -> Vec<LiveCall> {
        let Ok(map) = self.0.lock() else {
            return Vec::new();
        };
        let mut v: Vec<LiveCall> = map.values().cloned().collect();
        v.sort_by(|a, b| a.agent.cmp(&b.agent));
        v
    }
}
