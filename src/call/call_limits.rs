//! Concurrent calls from softphones, per authenticated user and per source
//! address: a stolen password or a runaway phone cannot take the daemon's
//! call capacity (`sip.max_calls`) from the citizens. Calls from trunks are
//! not counted here (a trunk carries the citizens' calls; only
//! `sip.max_calls` bounds them).
//!
//! [`CallLimits::admit`] takes a slot, or says which limit refused; the
//! slot is given back when its [`CallSlot`] drops (the call task ends).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The limits (`sip.max_calls_per_user`, `sip.max_calls_per_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimitConfig {
    pub per_user: usize,
    pub per_source: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Source(IpAddr),
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("user {user} already has {max} calls")]
    User { user: String, max: usize },
    #[error("{address} already has {max} softphone calls")]
    Source { address: IpAddr, max: usize },
}

impl LimitRefusal {
    /// Policy, not overload: 403, which a phone does not retry at once
    /// (RFC 3261 §21.4.4), rather than 503.
    pub fn reason(&self) -> &'static str {
        match self {
            LimitRefusal::User { .. } => "Too Many Calls From This User",
            LimitRefusal::Source { .. } => "Too Many Calls From This Address",
        }
    }
}

#[derive(Debug)]
pub struct CallLimits {
    config: CallLimitConfig,
    /// Only keys with a call up; a std mutex, held to count, never across
    /// an await.
    active: Mutex<HashMap<Key, usize>>,
}

/// A call's place in the counts; given back on drop.
#[derive(Debug)]
pub struct CallSlot {
    limits: Option<Arc<CallLimits>>,
    keys: Vec<Key>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let Some(limits) = &self.limits else { return };
        let mut active = limits.active.lock().unwrap_or_else(|e| e.into_inner());
        for key in self.keys.drain(..) {
            if let Some(n) = active.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    active.remove(&key);
                }
            }
        }
    }
}

impl CallLimits {
    pub fn new(config: CallLimitConfig) -> Arc<Self> {
        Arc::new(CallLimits {
            config,
            active: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a call from `source`, authenticated as `user` (a
    /// softphone), or from a trunk (`from_trunk`: always admitted, not
    /// counted). Either every count is taken or none.
    pub fn admit(
        self: &Arc<Self>,
        from_trunk: bool,
        user: Option<&str>,
        source: IpAddr,
    ) -> Result<CallSlot, LimitRefusal> {
        if from_trunk {
            return Ok(CallSlot {
                limits: None,
                keys: Vec::new(),
            });
        }
        let mut keys = vec![Key::Source(source)];
        if let Some(u) = user {
            keys.push(Key::User(u.to_string()));
        }
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        for key in &keys {
            let n = active.get(key).copied().unwrap_or(0);
            match key {
                Key::User(user) if n >= self.config.per_user => {
                    return Err(LimitRefusal::User {
                        user: user.clone(),
                        max: self.config.per_user,
                    })
                }
                Key::Source(address) if n >= self.config.per_source => {
                    return Err(LimitRefusal::Source {
                        address: *address,
                        max: self.config.per_source,
                    })
                }
                _ => {}
            }
        }
        for key in &keys {
            *active.entry(key.clone()).or_insert(0) += 1;
        }
        Ok(CallSlot {
            limits: Some(self.clone()),
            keys,
        })
    }

    /// Keys with calls up (for tests: nothing leaks).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.active.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_user_and_per_source_limits_hold_and_slots_come_back() {
        let l = CallLimits::new(CallLimitConfig {
            per_user: 2,
            per_source: 3,
        });
        let office = ip("10.0.0.1");
        let a1 = l.admit(false, Some("1001"), office).unwrap();
        let a2 = l.admit(false, Some("1001"), office).unwrap();
        assert_eq!(
            l.admit(false, Some("1001"), ip("10.0.0.2")).unwrap_err(),
            LimitRefusal::User {
                user: "1001".into(),
                max: 2
            }
        );
        let b1 = l.admit(false, Some("1002"), office).unwrap();
        let refused = l.admit(false, Some("1003"), office).unwrap_err();
        assert_eq!(
            refused,
            LimitRefusal::Source {
                address: office,
                max: 3
            }
        );
        assert_eq!(refused.reason(), "Too Many Calls From This Address");
        // The refusal took nothing: 1003 from elsewhere is fine.
        let c1 = l.admit(false, Some("1003"), ip("10.0.0.3")).unwrap();
        // Trunks are not counted.
        let trunk: Vec<_> = (0..10)
            .map(|_| l.admit(true, None, office).unwrap())
            .collect();
        drop(a1);
        let a3 = l.admit(false, Some("1001"), office).unwrap();
        drop((a2, a3, b1, c1, trunk));
        assert_eq!(l.tracked(), 0);
    }
}
