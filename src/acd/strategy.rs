//! Routing strategies: which of a queue's offerable agents the next caller
//! goes to.
//!
//! - `longest_idle` (default): the agent whose last call ended longest ago
//!   (or who logged in longest ago, if later).
//! - `ring_all`: every offerable agent at once (at most `ring_all_max`,
//!   longest idle first); the first to answer takes the call.
//! - `round_robin`: the next member after the one offered last, in
//!   agent-id order (one cursor per queue).
//! - `fewest_calls`: fewest calls answered today; ties longest idle.
//! - `skill_level`: highest level in the queue's skills first (the sum of
//!   the agent's levels over the skills the queue requires); ties longest
//!   idle.
//!
//! Every strategy but ring-all avoids the agent who just missed this
//! caller's offer, unless no one else is offerable. Remaining ties go to
//! the lower agent id. One choice costs O(m) for m members.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    LongestIdle,
    RingAll,
    RoundRobin,
    FewestCalls,
    SkillLevel,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest_idle",
            Strategy::RingAll => "ring_all",
            Strategy::RoundRobin => "round_robin",
            Strategy::FewestCalls => "fewest_calls",
            Strategy::SkillLevel => "skill_level",
        }
    }
}

/// An offerable member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Position in the queue's member list (agent-id order).
    pub pos: usize,
    /// The agent's index in the ACD.
    pub agent: usize,
    pub idle_since: Instant,
    pub calls_today: u32,
    pub skill_score: u32,
}

/// The agents to ring (indices into the ACD's agents), best first.
/// `candidates` are in member order; `avoid` is the agent who just missed;
/// `cursor` is the round-robin cursor (updated when an agent is chosen);
/// `members` is the member count; `max` caps ring-all.
pub fn choose(
    strategy: Strategy,
    candidates: &[Candidate],
    avoid: Option<usize>,
    cursor: &mut Option<usize>,
    members: usize,
    max: usize,
) -> Vec<usize> {
    if candidates.is_empty() || max == 0 {
        return Vec::new();
    }
    if strategy == Strategy::RingAll {
        let mut all: Vec<&Candidate> = candidates.iter().collect();
        all.sort_by_key(|c| (c.idle_since, c.pos));
        return all.iter().take(max).map(|c| c.agent).collect();
    }
    let others = || candidates.iter().filter(|c| Some(c.agent) != avoid);
    let pick = |it: &mut dyn Iterator<Item = &Candidate>| -> Option<Candidate> {
        match strategy {
            Strategy::LongestIdle | Strategy::RingAll => {
                it.min_by_key(|c| (c.idle_since, c.pos)).copied()
            }
            Strategy::FewestCalls => it
                .min_by_key(|c| (c.calls_today, c.idle_since, c.pos))
                .copied(),
            Strategy::SkillLevel => it
                .min_by_key(|c| (std::cmp::Reverse(c.skill_score), c.idle_since, c.pos))
                .copied(),
            Strategy::RoundRobin => {
                // The first after the cursor, cyclically.
                let start = cursor.map_or(0, |c| c + 1);
                it.min_by_key(|c| (c.pos + members - start % members.max(1)) % members.max(1))
                    .copied()
            }
        }
    };
    let chosen = pick(&mut others()).or_else(|| pick(&mut candidates.iter()));
    match chosen {
        Some(c) => {
            if strategy == Strategy::RoundRobin {
                *cursor = Some(c.pos);
            }
            vec![c.agent]
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cands(t0: Instant) -> Vec<Candidate> {
        // agent i at member position i.
        let c = |i: usize, idle: u64, calls: u32, score: u32| Candidate {
            pos: i,
            agent: i,
            idle_since: t0 + Duration::from_secs(idle),
            calls_today: calls,
            skill_score: score,
        };
        vec![
            c(0, 30, 5, 1),
            c(1, 10, 9, 3),
            c(2, 20, 1, 3),
            c(3, 40, 1, 2),
        ]
    }

    fn one(
        s: Strategy,
        c: &[Candidate],
        avoid: Option<usize>,
        cursor: &mut Option<usize>,
    ) -> usize {
        let v = choose(s, c, avoid, cursor, 4, 16);
        assert_eq!(v.len(), 1);
        v[0]
    }

    #[test]
    fn each_strategy_order() {
        let t0 = Instant::now();
        let c = cands(t0);
        let mut cur = None;
        assert_eq!(one(Strategy::LongestIdle, &c, None, &mut cur), 1);
        assert_eq!(
            one(Strategy::FewestCalls, &c, None, &mut cur),
            2,
            "1 call, idle longer than 3"
        );
        assert_eq!(
            one(Strategy::SkillLevel, &c, None, &mut cur),
            1,
            "level 3, idle longer than 2"
        );
        assert_eq!(
            choose(Strategy::RingAll, &c, Some(1), &mut cur, 4, 16),
            vec![1, 2, 0, 3]
        );
        assert_eq!(
            choose(Strategy::RingAll, &c, None, &mut cur, 4, 2),
            vec![1, 2]
        );
        assert_eq!(cur, None);
        let order: Vec<usize> = (0..6)
            .map(|_| one(Strategy::RoundRobin, &c, None, &mut cur))
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn round_robin_skips_missing_members() {
        let t0 = Instant::now();
        let c: Vec<Candidate> = cands(t0).into_iter().filter(|c| c.pos != 2).collect();
        let mut cur = Some(1);
        assert_eq!(one(Strategy::RoundRobin, &c, None, &mut cur), 3);
        assert_eq!(one(Strategy::RoundRobin, &c, None, &mut cur), 0);
    }

    #[test]
    fn avoids_the_agent_who_just_missed_unless_alone() {
        let t0 = Instant::now();
        let c = cands(t0);
        let mut cur = None;
        assert_eq!(one(Strategy::LongestIdle, &c, Some(1), &mut cur), 2);
        assert_eq!(one(Strategy::SkillLevel, &c, Some(1), &mut cur), 2);
        let mut cur = Some(0);
        assert_eq!(one(Strategy::RoundRobin, &c, Some(1), &mut cur), 2);
        let alone = &c[1..2];
        assert_eq!(one(Strategy::LongestIdle, alone, Some(1), &mut None), 1);
        assert!(choose(Strategy::LongestIdle, &[], None, &mut None, 4, 16).is_empty());
    }
}
