//! Picking recordings for QC (pure): the rules of a [`SamplingPlan`] applied
//! to the recordings of a period, with a seed. No I/O and no clock: the same
//! records, plan and seed give the same picks, whatever order the records
//! come in (auditable: a run can be repeated from its stored seed and rules).
//!
//! What a rule may pick: recorded agent calls (not voice messages) that
//! started in the period and can be played (`complete` or `interrupted`;
//! not still recording, failed or deleted). Rules about an agent's own work
//! (`random_share`, `longest`, `shortest`, `shift_edge`, `time_window`)
//! take only calls with an agent; `queues`, `low_survey` and
//! `repeat_caller` take any such call. A recording chosen by two rules is
//! picked twice, once per rule, each with its reason.
//!
//! Randomness: each rule draws, for each agent (or queue), from a ChaCha8
//! generator seeded with the run's seed, the rule's name and the agent, over
//! the calls sorted by recording id: one agent's calls (or another rule)
//! never change the draw for another agent.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Timelike, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::sampling_rules::{Baseline, RuleKind, SamplingPlan, MAX_SEED};
use crate::store::{CallerContact, RecordingKind, RecordingStatus, SampleCandidate, SamplePick};

/// A median of fewer calls than this is no "usual length": `longest` and
/// `shortest` skip an agent (or queue) with fewer in the baseline.
pub const MIN_BASELINE_CALLS: usize = 5;

/// What a run samples from.
#[derive(Debug, Clone, Copy)]
pub struct SampleInput<'a> {
    /// `from` ≤ a picked recording's start < `to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The period's recordings, and those of the `history_days` before it
    /// (the baseline of `longest`/`shortest`; never picked).
    pub recordings: &'a [SampleCandidate],
    /// Calls to the hotline (call records) of the period and of the
    /// `within_days` before it, for `repeat_caller`.
    pub contacts: &'a [CallerContact],
}

/// The seed of a period when none is given: a hash of the period, so a
/// re-run of the same period draws the same way.
pub fn period_seed(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    let text = format!(
        "hotline qc sample {} {}",
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    first_u64(&Sha256::digest(text.as_bytes())) & MAX_SEED
}

fn first_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

/// The generator of one rule's draw for one agent (or queue).
fn rng(seed: u64, rule: &str, key: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    ChaCha8Rng::seed_from_u64(first_u64(&h.finalize()))
}

/// `n` of `items` at random, in their order.
fn choose<T: Copy>(mut rng: ChaCha8Rng, items: &[T], n: usize) -> Vec<T> {
    if n >= items.len() {
        return items.to_vec();
    }
    let mut idx = rand::seq::index::sample(&mut rng, items.len(), n).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| items[i]).collect()
}

fn secs(ms: i64) -> i64 {
    (ms + 500) / 1000
}

fn percent(share: f64) -> String {
    format!("{}%", (share * 1000.0).round() / 10.0)
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// A caller id that names a person's phone: digits (after an optional
/// `+`), at least 5 (not `anonymous`, not an extension).
fn is_phone_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    d.len() >= 5 && d.bytes().all(|b| b.is_ascii_digit())
}

type Candidates<'a> = Vec<&'a SampleCandidate>;

struct Sampler<'a> {
    plan: &'a SamplingPlan,
    seed: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Every recording given, by id (period and history).
    all: Candidates<'a>,
    /// Pickable recordings of the period, by id.
    eligible: Candidates<'a>,
    /// The pickable ones with an agent, by agent, each by id.
    by_agent: BTreeMap<&'a str, Candidates<'a>>,
    contacts: BTreeMap<&'a str, Vec<&'a CallerContact>>,
}

/// The picks of every rule of `plan`, rule by rule in the plan's order,
/// each rule's by start time.
pub fn pick(plan: &SamplingPlan, seed: u64, input: &SampleInput<'_>) -> Vec<SamplePick> {
    let mut all: Candidates<'_> = input.recordings.iter().collect();
    all.sort_by(|a, b| a.recording_id.cmp(&b.recording_id));
    all.dedup_by(|a, b| a.recording_id == b.recording_id);
    let eligible: Candidates<'_> = all
        .iter()
        .copied()
        .filter(|c| {
            c.kind == RecordingKind::Call
                && matches!(
                    c.status,
                    RecordingStatus::Complete | RecordingStatus::Interrupted
                )
                && c.started_at >= input.from
                && c.started_at < input.to
        })
        .collect();
    let mut by_agent: BTreeMap<&str, Candidates<'_>> = BTreeMap::new();
    for c in &eligible {
        if let Some(a) = c.agent.as_deref().filter(|a| !a.is_empty()) {
            by_agent.entry(a).or_default().push(c);
        }
    }
    let mut contacts: BTreeMap<&str, Vec<&CallerContact>> = BTreeMap::new();
    for c in input.contacts {
        contacts.entry(c.caller.as_str()).or_default().push(c);
    }
    for list in contacts.values_mut() {
        list.sort_by(|a, b| (a.arrived_at, &a.call_id).cmp(&(b.arrived_at, &b.call_id)));
    }
    let s = Sampler {
        plan,
        seed,
        from: input.from,
        to: input.to,
        all,
        eligible,
        by_agent,
        contacts,
    };
    let mut out = Vec::new();
    for rule in &plan.rules {
        let mut picks = s.apply(&rule.name, &rule.kind);
        picks.sort_by(|a, b| {
            (a.0.started_at, &a.0.recording_id).cmp(&(b.0.started_at, &b.0.recording_id))
        });
        picks.dedup_by(|a, b| a.0.recording_id == b.0.recording_id);
        out.extend(picks.into_iter().map(|(c, detail)| SamplePick {
            recording_id: c.recording_id.clone(),
            rule: rule.name.clone(),
            detail,
        }));
    }
    out
}

type Picks<'a> = Vec<(&'a SampleCandidate, String)>;

impl<'a> Sampler<'a> {
    fn apply(&self, rule: &str, kind: &RuleKind) -> Picks<'a> {
        match kind {
            RuleKind::RandomShare {
                share,
                min_per_agent,
                max_per_agent,
            } => self.random_share(rule, *share, *min_per_agent, *max_per_agent),
            RuleKind::Longest {
                relative_to,
                factor,
                per_agent,
            } => self.extreme(*relative_to, *factor, *per_agent, true),
            RuleKind::Shortest {
                relative_to,
                factor,
                per_agent,
            } => self.extreme(*relative_to, *factor, *per_agent, false),
            RuleKind::ShiftEdge { minutes, per_agent } => {
                let m = self.agents_calls(|c| self.shift_edge(c, *minutes));
                self.capped(rule, m, *per_agent)
            }
            RuleKind::TimeWindow { windows, per_agent } => {
                let m = self.agents_calls(|c| {
                    let local = c.started_at.with_timezone(&self.plan.tz);
                    let t = local.num_seconds_from_midnight();
                    windows
                        .iter()
                        .find(|w| w.contains(t))
                        .map(|w| format!("started {}, in the window {w}", local.format("%H:%M")))
                });
                self.capped(rule, m, *per_agent)
            }
            RuleKind::Queues { queues, share } => self.queues(rule, queues, *share),
            RuleKind::LowSurvey {
                max_score,
                per_agent,
            } => {
                let m = self
                    .eligible
                    .iter()
                    .filter_map(|&c| {
                        let s = c.survey_score.filter(|s| s <= max_score)?;
                        Some((c, format!("survey score {s} (at most {max_score})")))
                    })
                    .collect();
                self.capped(rule, m, *per_agent)
            }
            RuleKind::RepeatCaller {
                within_days,
                per_agent,
            } => {
                let m = self
                    .eligible
                    .iter()
                    .filter_map(|&c| Some((c, self.repeat(c, *within_days)?)))
                    .collect();
                self.capped(rule, m, *per_agent)
            }
        }
    }

    /// Calls with an agent for which `why` has a reason.
    fn agents_calls(&self, why: impl Fn(&SampleCandidate) -> Option<String>) -> Picks<'a> {
        self.by_agent
            .values()
            .flatten()
            .filter_map(|&c| Some((c, why(c)?)))
            .collect()
    }

    /// At most `cap` of each agent's matches (at random); calls without an
    /// agent are all kept.
    fn capped(&self, rule: &str, matches: Picks<'a>, cap: Option<u32>) -> Picks<'a> {
        let Some(cap) = cap else { return matches };
        let mut groups: BTreeMap<Option<&str>, Picks<'a>> = BTreeMap::new();
        for m in matches {
            groups.entry(m.0.agent.as_deref()).or_default().push(m);
        }
        let mut out = Vec::new();
        for (agent, mut list) in groups {
            match agent {
                None => out.extend(list),
                Some(a) => {
                    list.sort_by(|x, y| x.0.recording_id.cmp(&y.0.recording_id));
                    let idx: Vec<usize> = (0..list.len()).collect();
                    let keep = choose(rng(self.seed, rule, a), &idx, cap as usize);
                    out.extend(keep.into_iter().map(|i| list[i].clone()));
                }
            }
        }
        out
    }

    fn random_share(&self, rule: &str, share: f64, min: u32, max: Option<u32>) -> Picks<'a> {
        let mut out = Vec::new();
        for (agent, calls) in &self.by_agent {
            let len = calls.len();
            let mut n = ((share * len as f64).ceil() as usize).max(min as usize);
            if let Some(max) = max {
                n = n.min(max as usize);
            }
            let n = n.min(len);
            let mut detail = format!(
                "at random: {n} of the agent's {len} calls (share {}",
                percent(share)
            );
            if min > 0 {
                detail.push_str(&format!(", at least {min}"));
            }
            if let Some(max) = max {
                detail.push_str(&format!(", at most {max}"));
            }
            detail.push(')');
            for c in choose(rng(self.seed, rule, agent), calls, n) {
                out.push((c, detail.clone()));
            }
        }
        out
    }

    /// Medians of the baseline's talk lengths, by agent or queue: calls
    /// (any but still recording or failed) of the history and the period.
    fn medians(&self, by: Baseline) -> BTreeMap<&'a str, (i64, usize)> {
        let since = self.from - Duration::days(i64::from(self.plan.history_days));
        let mut lengths: BTreeMap<&'a str, Vec<i64>> = BTreeMap::new();
        for &c in &self.all {
            let key = match by {
                Baseline::Agent => c.agent.as_deref(),
                Baseline::Queue => c.queue.as_deref(),
            };
            let (Some(key), Some(ms)) = (key, c.duration_ms) else {
                continue;
            };
            if c.kind != RecordingKind::Call
                || matches!(
                    c.status,
                    RecordingStatus::Recording | RecordingStatus::Failed
                )
                || ms <= 0
                || c.started_at < since
                || c.started_at >= self.to
            {
                continue;
            }
            lengths.entry(key).or_default().push(ms);
        }
        lengths
            .into_iter()
            .filter(|(_, v)| v.len() >= MIN_BASELINE_CALLS)
            .map(|(k, v)| {
                let n = v.len();
                (k, (median(v), n))
            })
            .collect()
    }

    fn extreme(&self, by: Baseline, factor: f64, per_agent: u32, longest: bool) -> Picks<'a> {
        let medians = self.medians(by);
        let mut out = Vec::new();
        for calls in self.by_agent.values() {
            let mut m: Vec<(&SampleCandidate, f64, String)> = Vec::new();
            for &c in calls {
                let key = match by {
                    Baseline::Agent => c.agent.as_deref(),
                    Baseline::Queue => c.queue.as_deref(),
                };
                let (Some(key), Some(ms)) = (key, c.duration_ms) else {
                    continue;
                };
                let Some(&(med, n)) = medians.get(key) else {
                    continue;
                };
                let ratio = ms as f64 / med as f64;
                let hit = if longest {
                    ratio >= factor
                } else {
                    ratio <= 1.0 / factor
                };
                if !hit {
                    continue;
                }
                let whose = match by {
                    Baseline::Agent => "the agent's median".to_string(),
                    Baseline::Queue => format!("queue {key}'s median"),
                };
                let r = if ratio >= 1.0 {
                    format!("{ratio:.1}")
                } else {
                    format!("{ratio:.2}")
                };
                let detail = format!("{} s, {r}× {whose} {} s ({n} calls)", secs(ms), secs(med));
                m.push((c, ratio, detail));
            }
            m.sort_by(|a, b| {
                let o = a.1.total_cmp(&b.1);
                let o = if longest { o.reverse() } else { o };
                o.then_with(|| a.0.recording_id.cmp(&b.0.recording_id))
            });
            out.extend(
                m.into_iter()
                    .take(per_agent as usize)
                    .map(|(c, _, d)| (c, d)),
            );
        }
        out
    }

    fn shift_edge(&self, c: &SampleCandidate, minutes: u32) -> Option<String> {
        const DAY: i64 = 24 * 3600;
        let local = c.started_at.with_timezone(&self.plan.tz);
        let t = i64::from(local.num_seconds_from_midnight());
        let edge = i64::from(minutes) * 60;
        let at = local.format("%H:%M");
        for s in &self.plan.shifts {
            let (start, end) = (i64::from(s.hours.start) * 60, i64::from(s.hours.end) * 60);
            let after_start = (t - start).rem_euclid(DAY);
            if after_start < edge {
                return Some(format!(
                    "started {at}, {} min after the start of shift {} ({})",
                    after_start / 60,
                    s.name,
                    s.hours
                ));
            }
            let before_end = (end - t).rem_euclid(DAY);
            if before_end > 0 && before_end <= edge {
                return Some(format!(
                    "started {at}, {} min before the end of shift {} ({})",
                    (before_end + 59) / 60,
                    s.name,
                    s.hours
                ));
            }
        }
        None
    }

    fn queues(&self, rule: &str, queues: &[String], share: f64) -> Picks<'a> {
        let mut out = Vec::new();
        for q in queues {
            let calls: Candidates<'a> = self
                .eligible
                .iter()
                .copied()
                .filter(|c| c.queue.as_deref() == Some(q.as_str()))
                .collect();
            let len = calls.len();
            let n = ((share * len as f64).ceil() as usize).min(len);
            let detail = if n == len {
                format!("queue {q}: every call")
            } else {
                format!(
                    "queue {q}: at random, {n} of {len} calls (share {})",
                    percent(share)
                )
            };
            for c in choose(rng(self.seed, rule, q), &calls, n) {
                out.push((c, detail.clone()));
            }
        }
        out
    }

    fn repeat(&self, c: &SampleCandidate, within_days: u32) -> Option<String> {
        let caller = c.caller.as_deref().filter(|n| is_phone_number(n))?;
        let since = c.started_at - Duration::days(i64::from(within_days));
        let earlier: Vec<&&CallerContact> = self
            .contacts
            .get(caller)?
            .iter()
            .filter(|k| {
                k.call_id != c.call_id && k.arrived_at >= since && k.arrived_at < c.started_at
            })
            .collect();
        let last = earlier.last()?;
        let n = earlier.len();
        Some(format!(
            "the caller called {n} time{} in the {within_days} days before (last {})",
            if n == 1 { "" } else { "s" },
            last.arrived_at
                .with_timezone(&self.plan.tz)
                .format("%Y-%m-%d %H:%M")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qc::sampling_rules::SamplingConfig;
    use std::collections::BTreeSet;

    /// 2026-10-08 local (Asia/Shanghai).
    fn period() -> (DateTime<Utc>, DateTime<Utc>) {
        (
            t("2026-10-08T00:00:00+08:00"),
            t("2026-10-09T00:00:00+08:00"),
        )
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A complete call recording of `agent` in queue 12345, starting at
    /// local `hhmm` on 2026-10-08, `secs` long.
    fn rec(id: &str, agent: &str, hhmm: &str, secs: i64) -> SampleCandidate {
        SampleCandidate {
            recording_id: id.into(),
            call_id: format!("call-{id}"),
            kind: RecordingKind::Call,
            status: RecordingStatus::Complete,
            agent: (!agent.is_empty()).then(|| agent.to_string()),
            queue: Some("12345".into()),
            caller: Some("13800138000".into()),
            started_at: t(&format!("2026-10-08T{hhmm}:00+08:00")),
            duration_ms: Some(secs * 1000),
            survey_score: None,
        }
    }

    /// `n` ordinary calls of `agent` (100 s each, 09:00 onwards).
    fn calls(agent: &str, n: usize) -> Vec<SampleCandidate> {
        (0..n)
            .map(|i| {
                let mut r = rec(&format!("{agent}-{i:03}"), agent, "09:00", 100);
                r.started_at += Duration::minutes(i as i64);
                r
            })
            .collect()
    }

    fn plan(rules: &str) -> SamplingPlan {
        let text = format!(
            "enabled = true\nshifts = [{{ name = \"day\", start = \"08:00\", end = \"16:00\" }}, \
             {{ name = \"night\", start = \"22:00\", end = \"06:00\" }}]\nrules = [{rules}]\n"
        );
        let c: SamplingConfig = toml::from_str(&text).unwrap();
        c.plan().unwrap()
    }

    fn run(plan: &SamplingPlan, seed: u64, recs: &[SampleCandidate]) -> Vec<SamplePick> {
        run_with(plan, seed, recs, &[])
    }

    fn run_with(
        plan: &SamplingPlan,
        seed: u64,
        recs: &[SampleCandidate],
        contacts: &[CallerContact],
    ) -> Vec<SamplePick> {
        let (from, to) = period();
        pick(
            plan,
            seed,
            &SampleInput {
                from,
                to,
                recordings: recs,
                contacts,
            },
        )
    }

    fn ids(picks: &[SamplePick]) -> Vec<&str> {
        picks.iter().map(|p| p.recording_id.as_str()).collect()
    }

    fn per_agent(picks: &[SamplePick]) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for p in picks {
            let agent = p.recording_id.split('-').next().unwrap().to_string();
            *m.entry(agent).or_insert(0) += 1;
        }
        m
    }

    const RANDOM: &str =
        "{ name = \"random\", kind = \"random_share\", share = 0.1, min_per_agent = 2 }";

    #[test]
    fn random_share_takes_a_share_of_each_agent_with_a_minimum() {
        let mut recs = calls("1001", 40);
        recs.extend(calls("1002", 3));
        recs.extend(calls("1003", 1));
        let picks = run(&plan(RANDOM), 7, &recs);
        let counts = per_agent(&picks);
        assert_eq!(counts["1001"], 4, "10% of 40");
        assert_eq!(counts["1002"], 2, "the minimum");
        assert_eq!(counts["1003"], 1, "all there is");
        assert!(picks.iter().all(|p| p.rule == "random"));
        let p = picks
            .iter()
            .find(|p| p.recording_id.starts_with("1001"))
            .unwrap();
        assert_eq!(
            p.detail,
            "at random: 4 of the agent's 40 calls (share 10%, at least 2)"
        );
        // A cap.
        let capped =
            plan("{ name = \"r\", kind = \"random_share\", share = 0.5, max_per_agent = 3 }");
        assert_eq!(per_agent(&run(&capped, 7, &recs))["1001"], 3);
    }

    #[test]
    fn same_seed_same_picks_different_seed_different_picks() {
        let mut recs = calls("1001", 50);
        recs.extend(calls("1002", 50));
        let p = plan(RANDOM);
        let a = run(&p, 42, &recs);
        // The same records in another order: the same picks.
        let mut shuffled = recs.clone();
        shuffled.reverse();
        shuffled.rotate_left(17);
        assert_eq!(run(&p, 42, &shuffled), a);
        assert_eq!(run(&p, 42, &recs), a);
        let owned = |picks: &[SamplePick]| -> Vec<String> {
            picks.iter().map(|p| p.recording_id.clone()).collect()
        };
        let others: BTreeSet<Vec<String>> = (0..5u64)
            .map(|s| owned(&run(&p, 1000 + s, &recs)))
            .collect();
        assert!(others.len() > 1, "different seeds draw differently");
        assert!(
            !others.contains(&owned(&a)),
            "seed 42 differs from 1000..1005"
        );
        // One agent's calls do not change another agent's draw.
        let only_1001 = run(&p, 42, &calls("1001", 50));
        let a_1001: Vec<&str> = ids(&a)
            .into_iter()
            .filter(|i| i.starts_with("1001"))
            .collect();
        assert_eq!(ids(&only_1001), a_1001);
    }

    #[test]
    fn the_seed_of_a_period_is_stable() {
        let (from, to) = period();
        assert_eq!(period_seed(from, to), period_seed(from, to));
        assert_ne!(
            period_seed(from, to),
            period_seed(from, to + Duration::days(1))
        );
        assert!(period_seed(from, to) <= MAX_SEED);
    }

    #[test]
    fn longest_and_shortest_against_the_agents_median() {
        let mut recs = calls("1001", 9); // 100 s each
        recs.push(rec("1001-long", "1001", "10:00", 312));
        recs.push(rec("1001-longer", "1001", "10:30", 400));
        recs.push(rec("1001-short", "1001", "11:00", 20));
        // Too few calls for a median: never extreme.
        recs.push(rec("1002-a", "1002", "10:00", 10));
        recs.push(rec("1002-b", "1002", "10:00", 1000));
        let p = plan(
            "{ name = \"long\", kind = \"longest\", factor = 2.0 }, \
             { name = \"short\", kind = \"shortest\", factor = 3.0, per_agent = 5 }",
        );
        let picks = run(&p, 1, &recs);
        assert_eq!(ids(&picks), ["1001-longer", "1001-short"]);
        assert_eq!(
            picks[0].detail,
            "400 s, 4.0× the agent's median 100 s (12 calls)"
        );
        assert_eq!(
            picks[1].detail,
            "20 s, 0.20× the agent's median 100 s (12 calls)"
        );
        // Two per agent: both long ones, the longest first in ratio order.
        let p2 = plan("{ name = \"long\", kind = \"longest\", per_agent = 2 }");
        assert_eq!(ids(&run(&p2, 1, &recs)), ["1001-long", "1001-longer"]);
    }

    #[test]
    fn the_baseline_includes_history_but_history_is_never_picked() {
        // The agent's usual length is 300 s, set by last week's calls.
        let mut recs: Vec<SampleCandidate> = calls("1001", 10)
            .into_iter()
            .map(|mut r| {
                r.started_at -= Duration::days(7);
                r.duration_ms = Some(300_000);
                r
            })
            .collect();
        let mut old_long = rec("1001-old", "1001", "09:00", 5000);
        old_long.started_at -= Duration::days(3);
        recs.push(old_long);
        recs.push(rec("1001-today", "1001", "09:00", 100));
        let p = plan("{ name = \"short\", kind = \"shortest\", factor = 2.5 }");
        let picks = run(&p, 1, &recs);
        assert_eq!(ids(&picks), ["1001-today"]);
        assert!(
            picks[0].detail.contains("median 300 s (12 calls)"),
            "{}",
            picks[0].detail
        );
    }

    #[test]
    fn longest_against_the_queues_median() {
        // 1001's calls are all long for the queue, even if usual for 1001.
        let mut recs = calls("1002", 10);
        let mut long = calls("1001", 3);
        for r in &mut long {
            r.duration_ms = Some(500_000);
        }
        recs.extend(long);
        let p = plan(
            "{ name = \"long\", kind = \"longest\", relative_to = \"queue\", factor = 3.0, per_agent = 2 }",
        );
        let picks = run(&p, 1, &recs);
        assert_eq!(ids(&picks), ["1001-000", "1001-001"]);
        assert_eq!(
            picks[0].detail,
            "500 s, 5.0× queue 12345's median 100 s (13 calls)"
        );
    }

    #[test]
    fn shift_edges_in_local_time_across_midnight() {
        let recs = vec![
            rec("a-start", "1001", "08:05", 60),
            rec("a-mid", "1001", "12:00", 60),
            rec("a-end", "1001", "15:52", 60),
            rec("a-night-start", "1001", "22:00", 60),
            rec("a-night-end", "1001", "05:50", 60),
            rec("a-after-night", "1001", "06:00", 60),
            rec("a-before-day", "1001", "07:59", 60),
        ];
        let p = plan("{ name = \"edge\", kind = \"shift_edge\", minutes = 10 }");
        let picks = run(&p, 1, &recs);
        assert_eq!(
            ids(&picks),
            ["a-night-end", "a-start", "a-end", "a-night-start"]
        );
        assert_eq!(
            picks[1].detail,
            "started 08:05, 5 min after the start of shift day (08:00-16:00)"
        );
        assert_eq!(
            picks[2].detail,
            "started 15:52, 8 min before the end of shift day (08:00-16:00)"
        );
        assert_eq!(
            picks[0].detail,
            "started 05:50, 10 min before the end of shift night (22:00-06:00)"
        );
    }

    #[test]
    fn time_windows_with_a_cap_per_agent() {
        let mut recs = Vec::new();
        for i in 0..6 {
            recs.push(rec(
                &format!("1001-lunch{i}"),
                "1001",
                &format!("12:{:02}", i * 5),
                60,
            ));
        }
        recs.push(rec("1001-late", "1001", "13:00", 60));
        recs.push(rec("1002-peak", "1002", "09:15", 60));
        let p = plan(
            "{ name = \"lunch\", kind = \"time_window\", windows = [\"11:30-13:00\"], per_agent = 2 }, \
             { name = \"peak\", kind = \"time_window\", windows = [\"09:00-10:00\", \"14:00-15:00\"] }",
        );
        let picks = run(&p, 3, &recs);
        let lunch: Vec<&SamplePick> = picks.iter().filter(|p| p.rule == "lunch").collect();
        assert_eq!(lunch.len(), 2);
        assert!(lunch.iter().all(|p| p.recording_id.contains("lunch")));
        assert!(
            lunch[0].detail.ends_with("in the window 11:30-13:00"),
            "{}",
            lunch[0].detail
        );
        let peak: Vec<&str> = picks
            .iter()
            .filter(|p| p.rule == "peak")
            .map(|p| p.recording_id.as_str())
            .collect();
        assert_eq!(peak, ["1002-peak"]);
    }

    #[test]
    fn queues_all_or_a_share_and_agentless_calls_count() {
        let mut recs = calls("1001", 4);
        let mut complaints = calls("1002", 10);
        for r in &mut complaints {
            r.queue = Some("12345-complaints".into());
        }
        let mut agentless = rec("x-noagent", "", "10:00", 60);
        agentless.queue = Some("12345-complaints".into());
        complaints.push(agentless);
        recs.extend(complaints);
        let all =
            plan("{ name = \"complaints\", kind = \"queues\", queues = [\"12345-complaints\"] }");
        let picks = run(&all, 1, &recs);
        assert_eq!(picks.len(), 11);
        assert!(picks.iter().any(|p| p.recording_id == "x-noagent"));
        assert_eq!(picks[0].detail, "queue 12345-complaints: every call");
        let some = plan(
            "{ name = \"complaints\", kind = \"queues\", queues = [\"12345-complaints\"], share = 0.2 }",
        );
        let picks = run(&some, 1, &recs);
        assert_eq!(picks.len(), 3, "ceil(20% of 11)");
        assert_eq!(
            picks[0].detail,
            "queue 12345-complaints: at random, 3 of 11 calls (share 20%)"
        );
    }

    #[test]
    fn low_survey_scores() {
        let mut recs = calls("1001", 5);
        recs[0].survey_score = Some(1);
        recs[1].survey_score = Some(2);
        recs[2].survey_score = Some(3);
        recs[3].survey_score = Some(5);
        let p = plan("{ name = \"unhappy\", kind = \"low_survey\", max_score = 2 }");
        let picks = run(&p, 1, &recs);
        assert_eq!(ids(&picks), ["1001-000", "1001-001"]);
        assert_eq!(picks[0].detail, "survey score 1 (at most 2)");
    }

    #[test]
    fn repeat_callers_within_n_days() {
        let mut recs = calls("1001", 4);
        for r in &mut recs {
            r.caller = Some("13800138000".into());
        }
        recs[1].caller = Some("13900139000".into());
        recs[2].caller = Some("anonymous".into());
        recs[3].caller = Some("13700137000".into());
        let contact = |call_id: &str, caller: &str, at: &str| CallerContact {
            call_id: call_id.into(),
            caller: caller.into(),
            arrived_at: t(at),
        };
        let contacts = vec![
            // 1001-000's caller called three days before, and its own call.
            contact("old-1", "13800138000", "2026-10-05T10:12:00+08:00"),
            contact("call-1001-000", "13800138000", "2026-10-08T08:59:00+08:00"),
            // 1001-001's caller: only 10 days before (outside 7 days).
            contact("old-2", "13900139000", "2026-09-28T10:00:00+08:00"),
            contact("old-3", "anonymous", "2026-10-07T10:00:00+08:00"),
            // 1001-003's caller called after it, not before: no repeat.
            contact("later", "13700137000", "2026-10-08T20:00:00+08:00"),
        ];
        let p = plan("{ name = \"again\", kind = \"repeat_caller\", within_days = 7 }");
        let picks = run_with(&p, 1, &recs, &contacts);
        assert_eq!(ids(&picks), ["1001-000"]);
        assert_eq!(
            picks[0].detail,
            "the caller called 1 time in the 7 days before (last 2026-10-05 10:12)"
        );
    }

    #[test]
    fn voice_messages_agentless_and_unplayable_recordings_are_left_out() {
        let mut recs = calls("1001", 3);
        let mut vm = rec("1001-vm", "1001", "09:30", 60);
        vm.kind = RecordingKind::VoiceMessage;
        vm.survey_score = Some(1);
        let mut deleted = rec("1001-deleted", "1001", "09:31", 60);
        deleted.status = RecordingStatus::Deleted;
        deleted.survey_score = Some(1);
        let mut failed = rec("1001-failed", "1001", "09:32", 60);
        failed.status = RecordingStatus::Failed;
        let mut live = rec("1001-live", "1001", "09:33", 60);
        live.status = RecordingStatus::Recording;
        let mut interrupted = rec("1001-interrupted", "1001", "09:34", 60);
        interrupted.status = RecordingStatus::Interrupted;
        let mut agentless = rec("noagent", "", "09:35", 60);
        agentless.survey_score = Some(1);
        let mut next_day = rec("1001-tomorrow", "1001", "09:00", 60);
        next_day.started_at += Duration::days(1);
        recs.extend([vm, deleted, failed, live, interrupted, agentless, next_day]);
        let p = plan(
            "{ name = \"all\", kind = \"random_share\", share = 1.0 }, \
             { name = \"unhappy\", kind = \"low_survey\", max_score = 1 }",
        );
        let picks = run(&p, 1, &recs);
        let all: BTreeSet<&str> = picks
            .iter()
            .filter(|p| p.rule == "all")
            .map(|p| p.recording_id.as_str())
            .collect();
        assert_eq!(
            all,
            BTreeSet::from(["1001-000", "1001-001", "1001-002", "1001-interrupted"])
        );
        let unhappy: Vec<&str> = picks
            .iter()
            .filter(|p| p.rule == "unhappy")
            .map(|p| p.recording_id.as_str())
            .collect();
        assert_eq!(
            unhappy,
            ["noagent"],
            "not per agent: the agentless call counts"
        );
    }

    #[test]
    fn a_recording_picked_by_two_rules_has_two_picks() {
        let mut recs = calls("1001", 2);
        recs[0].survey_score = Some(1);
        let p = plan(
            "{ name = \"all\", kind = \"random_share\", share = 1.0 }, \
             { name = \"unhappy\", kind = \"low_survey\" }",
        );
        let picks = run(&p, 1, &recs);
        let of_first: Vec<&str> = picks
            .iter()
            .filter(|p| p.recording_id == "1001-000")
            .map(|p| p.rule.as_str())
            .collect();
        assert_eq!(of_first, ["all", "unhappy"]);
        assert_eq!(picks.len(), 3);
        // The same recording twice in the input is one candidate.
        let mut twice = recs.clone();
        twice.push(recs[0].clone());
        assert_eq!(run(&p, 1, &twice), picks);
    }
}
