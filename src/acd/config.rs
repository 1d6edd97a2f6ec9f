//! Typed ACD configuration: agents, queues and a few ACD-wide settings
//! (serde), validated as a whole. [`AcdConfig::validate`] returns every
//! problem with its dotted key (`agents[2].skills.elderly`,
//! `queues[0].ring_timeout_secs`), so an operator fixes a config in one
//! pass; the daemon's config loader adds the file name.
//!
//! As it could be written in TOML (the lead decides where it lives):
//!
//! ```toml
//! [acd.settings]
//! max_missed_offers = 3
//!
//! [[acd.queues]]
//! name = "12345"
//! skills = { general = 1 }
//! strategy = "longest_idle"   # ring_all | round_robin | fewest_calls | skill_level
//! ring_timeout_secs = 15
//! max_wait_secs = 300         # 0: no limit
//! max_len = 50
//! when_no_agents = "join"     # refuse | leave
//! announce_every_secs = 30    # 0: no announcements
//!
//! [[acd.agents]]
//! id = "1001"
//! name = "Demo agent 1001"
//! extension = "1001"
//! skills = { general = 1 }
//! queues = ["12345"]
//! wrap_up_secs = 30
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::strategy::Strategy;

/// A queue holds at most this many live callers (`max_len`'s ceiling).
pub const MAX_QUEUE_LEN: usize = 100_000;
/// At most this many agents ring at once for one caller (ring-all).
pub const MAX_RING_ALL: usize = 64;
/// Ring timeout ceiling, seconds.
pub const MAX_RING_TIMEOUT_SECS: u64 = 300;
/// Wrap-up ceiling, seconds.
pub const MAX_WRAP_UP_SECS: u64 = 3600;
/// Skill and skill-requirement levels run 1..=MAX_SKILL_LEVEL.
pub const MAX_SKILL_LEVEL: u8 = 100;

/// What a queue does when none of its agents is logged in (and reachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenNoAgents {
    /// Callers join anyway and wait (for an agent to log in, or max wait).
    #[default]
    Join,
    /// New callers are refused (`Refusal::NoAgents`); callers already
    /// waiting stay.
    Refuse,
    /// New callers are refused, and when the last agent logs out (or
    /// becomes unreachable) every live caller waiting leaves with
    /// `QueueTimeout { reason: NoAgents }`. Callback requests stay.
    Leave,
}

/// ACD-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcdSettings {
    /// An agent who misses this many offers in a row is paused with reason
    /// `no_answer` (0: never).
    pub max_missed_offers: u32,
    /// Ring-all rings at most this many agents at once (longest idle first).
    pub ring_all_max: usize,
    /// Callback requests a queue keeps at most.
    pub max_callbacks_per_queue: usize,
    /// After a callback whose citizen could not be reached, try again
    /// after each of these delays in turn (minutes); then give it up.
    pub callback_retry_minutes: Vec<u32>,
}

impl Default for AcdSettings {
    fn default() -> Self {
        AcdSettings {
            max_missed_offers: 3,
            ring_all_max: 16,
            max_callbacks_per_queue: 1000,
            callback_retry_minutes: vec![5, 15, 60],
        }
    }
}

/// One agent seat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    /// The SIP user part the agent's softphone registers as.
    pub extension: String,
    /// Skill → level (1..=100).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Queues the agent takes calls from (if the skills allow).
    #[serde(default)]
    pub queues: Vec<String>,
    /// After-call work (话后处理), holding across all queues.
    #[serde(default = "default_wrap_up")]
    pub wrap_up_secs: u64,
    /// Log the agent in (ready) as soon as its softphone registers, and out
    /// when its last registration goes. Off: the agent logs in with a
    /// feature code or the HTTP API.
    #[serde(default)]
    pub login_on_register: bool,
    /// The team (班组) the agent sits in: its team lead sees and disputes
    /// its QC scores, and the QC report averages per team.
    #[serde(default)]
    pub team: Option<String>,
}

fn default_wrap_up() -> u64 {
    30
}

/// One queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// Skill → minimum level an agent needs to take this queue's calls.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// Longest wait before `QueueTimeout` (0: no limit).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
    /// Live callers at most (callback requests not counted).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    #[serde(default)]
    pub when_no_agents: WhenNoAgents,
    /// Position and estimated wait, every so often (0: never).
    #[serde(default = "default_announce")]
    pub announce_every_secs: u64,
    /// What the caller hears while waiting and while an agent holds: a
    /// prompt name, played in a loop.
    #[serde(default = "default_hold_music")]
    pub hold_music: String,
    /// Announcements say the estimated wait too (when one is known).
    #[serde(default = "default_true")]
    pub announce_wait: bool,
    /// Break-out key: leave a voice message (the queue node's `next`
    /// flow runs, which records it). Empty: no such key.
    #[serde(default = "default_voicemail_key")]
    pub voicemail_key: String,
    /// Break-out key: ask to be called back on the calling number,
    /// keeping the place in the queue. Empty: no such key.
    #[serde(default = "default_callback_key")]
    pub callback_key: String,
    /// After the agent hangs up, the caller hears the satisfaction survey
    /// and keys a score 1-5.
    #[serde(default)]
    pub survey: bool,
    /// Record the calls agents take from this queue (stereo WAV; see
    /// `[recording]`). A call transferred to an agent is recorded per the
    /// queue it came through.
    #[serde(default = "default_true")]
    pub record: bool,
}

fn default_hold_music() -> String {
    "hold_music".into()
}
fn default_true() -> bool {
    true
}
fn default_voicemail_key() -> String {
    "1".into()
}
fn default_callback_key() -> String {
    // Callbacks need an outbound trunk: without `[sip.outbound]` the
    // daemon's config check clears this default (with a warning).
    "2".into()
}

fn default_ring_timeout() -> u64 {
    15
}
fn default_max_wait() -> u64 {
    300
}
fn default_max_len() -> usize {
    50
}
fn default_announce() -> u64 {
    30
}

impl QueueConfig {
    /// A queue with the defaults.
    pub fn new(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_string(),
            skills: BTreeMap::new(),
            strategy: Strategy::default(),
            ring_timeout_secs: default_ring_timeout(),
            max_wait_secs: default_max_wait(),
            max_len: default_max_len(),
            when_no_agents: WhenNoAgents::default(),
            announce_every_secs: default_announce(),
            hold_music: default_hold_music(),
            announce_wait: true,
            voicemail_key: default_voicemail_key(),
            callback_key: default_callback_key(),
            survey: false,
            record: true,
        }
    }
}

impl AgentConfig {
    /// An agent with no skills in `queues`, default wrap-up.
    pub fn new(id: &str, queues: &[&str]) -> AgentConfig {
        AgentConfig {
            id: id.to_string(),
            name: format!("Agent {id}"),
            extension: id.to_string(),
            skills: BTreeMap::new(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            wrap_up_secs: default_wrap_up(),
            login_on_register: false,
            team: None,
        }
    }
}

/// The ACD's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcdConfig {
    pub settings: AcdSettings,
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentConfig>,
}

impl AcdConfig {
    /// The demo set-up the default config ships (demo only: the lead's
    /// README says so): queue `12345`, agents `1001`–`1004` in it.
    pub fn demo() -> AcdConfig {
        let mut q = QueueConfig::new("12345");
        q.skills.insert("general".into(), 1);
        let agents = (1001..=1004)
            .map(|n| {
                let id = n.to_string();
                let mut a = AgentConfig::new(&id, &["12345"]);
                a.name = format!("Demo agent {id}");
                a.skills.insert("general".into(), 1);
                a
            })
            .collect();
        AcdConfig {
            settings: AcdSettings::default(),
            queues: vec![q],
            agents,
        }
    }

    /// This config plus every agent's personal queue, `agent:<id>`, of
    /// which the agent is the only member: a call transferred to the agent
    /// waits there (hold music, its place kept) until the agent is free; if
    /// the agent is not logged in the queue refuses it. Configured names
    /// cannot contain ':', so these never clash.
    pub fn with_personal_queues(&self) -> AcdConfig {
        let mut config = self.clone();
        for a in &mut config.agents {
            let name = personal_queue(&a.id);
            let mut q = QueueConfig::new(&name);
            q.when_no_agents = WhenNoAgents::Refuse;
            q.max_wait_secs = 120;
            q.callback_key = String::new();
            config.queues.push(q);
            a.queues.push(name);
        }
        config
    }

    /// Every problem, with its key.
    pub fn validate(&self) -> Result<(), AcdConfigErrors> {
        let mut v = Errors::default();
        let s = &self.settings;
        if s.ring_all_max == 0 || s.ring_all_max > MAX_RING_ALL {
            v.push("ring_all_max", format!("must be 1 to {MAX_RING_ALL}"));
        }
        if s.max_callbacks_per_queue == 0 || s.max_callbacks_per_queue > MAX_QUEUE_LEN {
            v.push(
                "max_callbacks_per_queue",
                format!("must be 1 to {MAX_QUEUE_LEN}"),
            );
        }
        let mut queue_names = BTreeSet::new();
        for (i, q) in self.queues.iter().enumerate() {
            let k = |f: &str| format!("queues[{i}].{f}");
            if !valid_name(&q.name) {
                v.push(
                    k("name"),
                    "must be 1 to 64 characters: letters, digits, '_', '-' or '.'",
                );
            } else if !queue_names.insert(q.name.as_str()) {
                v.push(k("name"), format!("queue {:?} is defined twice", q.name));
            }
            skills(&mut v, &k("skills"), &q.skills);
            if q.ring_timeout_secs == 0 || q.ring_timeout_secs > MAX_RING_TIMEOUT_SECS {
                v.push(
                    k("ring_timeout_secs"),
                    format!("must be 1 to {MAX_RING_TIMEOUT_SECS}"),
                );
            }
            if q.max_wait_secs > 86_400 {
                v.push(k("max_wait_secs"), "must be 0 (no limit) to 86400");
            }
            if q.max_len == 0 || q.max_len > MAX_QUEUE_LEN {
                v.push(k("max_len"), format!("must be 1 to {MAX_QUEUE_LEN}"));
            }
            if q.announce_every_secs != 0 && !(10..=3600).contains(&q.announce_every_secs) {
                v.push(k("announce_every_secs"), "must be 0 (never) or 10 to 3600");
            }
            for (field, key) in [
                ("voicemail_key", &q.voicemail_key),
                ("callback_key", &q.callback_key),
            ] {
                if !(key.is_empty() || (key.len() == 1 && "0123456789*#".contains(key.as_str()))) {
                    v.push(
                        k(field),
                        "must be one DTMF key (0-9, * or #), or empty for none",
                    );
                }
            }
            if !q.voicemail_key.is_empty() && q.voicemail_key == q.callback_key {
                v.push(k("callback_key"), "must differ from voicemail_key");
            }
        }
        let mut agent_ids = BTreeSet::new();
        let mut extensions = BTreeSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let k = |f: &str| format!("agents[{i}].{f}");
            if !valid_name(&a.id) {
                v.push(
                    k("id"),
                    "must be 1 to 64 characters: letters, digits, '_', '-' or '.'",
                );
            } else if !agent_ids.insert(a.id.as_str()) {
                v.push(k("id"), format!("agent {:?} is defined twice", a.id));
            }
            if a.name.trim().is_empty() || a.name.len() > 128 {
                v.push(k("name"), "must be 1 to 128 bytes");
            }
            if a.extension.is_empty()
                || a.extension.len() > 32
                || !a
                    .extension
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c))
            {
                v.push(
                    k("extension"),
                    "must be 1 to 32 characters: letters, digits, '_', '-', '.' or '+'",
                );
            } else if !extensions.insert(a.extension.as_str()) {
                v.push(
                    k("extension"),
                    format!("extension {:?} is used twice", a.extension),
                );
            }
            skills(&mut v, &k("skills"), &a.skills);
            let mut seen = BTreeSet::new();
            for (j, q) in a.queues.iter().enumerate() {
                if !queue_names.contains(q.as_str()) {
                    v.push(k(&format!("queues[{j}]")), format!("no queue {q:?}"));
                } else if !seen.insert(q.as_str()) {
                    v.push(
                        k(&format!("queues[{j}]")),
                        format!("queue {q:?} is listed twice"),
                    );
                }
            }
            if a.wrap_up_secs > MAX_WRAP_UP_SECS {
                v.push(
                    k("wrap_up_secs"),
                    format!("must be 0 to {MAX_WRAP_UP_SECS}"),
                );
            }
        }
        if v.0.is_empty() {
            Ok(())
        } else {
            Err(AcdConfigErrors(v.0))
        }
    }
}

/// The name of agent `id`'s personal queue (see
/// [`AcdConfig::with_personal_queues`]).
pub fn personal_queue(id: &str) -> String {
    format!("agent:{id}")
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn skills(v: &mut Errors, key: &str, skills: &BTreeMap<String, u8>) {
    for (name, level) in skills {
        if !valid_name(name) {
            v.push(
                format!("{key}.{name}"),
                "skill names are 1 to 64 characters: letters, digits, '_', '-' or '.'",
            );
        }
        if *level == 0 || *level > MAX_SKILL_LEVEL {
            v.push(
                format!("{key}.{name}"),
                format!("level must be 1 to {MAX_SKILL_LEVEL}"),
            );
        }
    }
}

#[derive(Default)]
struct Errors(Vec<AcdConfigError>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(AcdConfigError {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// One problem: the dotted key under the ACD's section, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for AcdConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found, in config order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AcdConfigErrors(pub Vec<AcdConfigError>);

impl fmt::Display for AcdConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_valid() {
        AcdConfig::demo().validate().unwrap();
    }

    #[test]
    fn parses_toml() {
        let c: AcdConfig = toml::from_str(
            r#"
            [settings]
            max_missed_offers = 2
            [[queues]]
            name = "12345"
            skills = { general = 1 }
            strategy = "ring_all"
            when_no_agents = "leave"
            [[agents]]
            id = "1001"
            name = "A"
            extension = "1001"
            skills = { general = 3 }
            queues = ["12345"]
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.settings.max_missed_offers, 2);
        assert_eq!(c.queues[0].strategy, Strategy::RingAll);
        assert_eq!(c.queues[0].when_no_agents, WhenNoAgents::Leave);
        assert_eq!(c.queues[0].ring_timeout_secs, 15);
        assert_eq!(c.agents[0].wrap_up_secs, 30);
        assert!(
            toml::from_str::<AcdConfig>("[[queues]]\nname = \"q\"\nstrategy = \"random\"\n")
                .is_err()
        );
    }

    #[test]
    fn every_error_with_its_key() {
        let mut c = AcdConfig::demo();
        c.settings.ring_all_max = 0;
        c.queues[0].ring_timeout_secs = 0;
        c.queues[0].max_len = 0;
        c.queues[0].announce_every_secs = 5;
        c.queues[0].skills.insert("bad skill".into(), 0);
        c.queues.push(QueueConfig::new("12345"));
        c.agents[1].id = "1001".into();
        c.agents[2].queues.push("nope".into());
        c.agents[3].wrap_up_secs = 99_999;
        c.agents[3].extension = "1003".into();
        let errs = c.validate().unwrap_err();
        let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ring_all_max",
                "queues[0].skills.bad skill",
                "queues[0].skills.bad skill",
                "queues[0].ring_timeout_secs",
                "queues[0].max_len",
                "queues[0].announce_every_secs",
                "queues[1].name",
                "agents[1].id",
                "agents[2].queues[1]",
                "agents[3].extension",
                "agents[3].wrap_up_secs",
            ]
        );
        assert!(errs
            .to_string()
            .contains("agents[2].queues[1]: no queue \"nope\""));
    }
}
