//! The node kinds a flow is made of, one file each. A node file holds the
//! kind's configuration (deserialized from its `[nodes.ID]` table, with
//! defaults), what it checks about itself, the nodes it leads to, the prompts
//! it names, and the pure decisions the engine asks of it (which key does
//! what, what to say). The engine (`ivr::engine`) is the one state machine
//! that walks them.
//!
//! Every node has `kind = "..."` and may have `result = "..."`, the
//! self-service result label recorded in the call record when the caller
//! reaches the node (the last one reached wins).

pub mod collect;
pub mod goto;
pub mod hangup;
pub mod hours;
pub mod lookup;
pub mod menu;
pub mod play;
pub mod queue;
pub mod say;
pub mod set_language;
pub mod voice_message;

use serde::de::DeserializeOwned;

use crate::ivr::flow::FlowErrorKind;

pub use collect::CollectNode;
pub use goto::GotoNode;
pub use hangup::HangupNode;
pub use hours::HoursNode;
pub use lookup::LookupNode;
pub use menu::MenuNode;
pub use play::PlayNode;
pub use queue::QueueNode;
pub use say::SayNode;
pub use set_language::SetLanguageNode;
pub use voice_message::VoiceMessageNode;

/// One node of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// Self-service result label set when the node is reached.
    pub result: Option<String>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Play(PlayNode),
    Menu(MenuNode),
    Collect(CollectNode),
    Lookup(LookupNode),
    Say(SayNode),
    Hours(HoursNode),
    SetLanguage(SetLanguageNode),
    Goto(GotoNode),
    VoiceMessage(VoiceMessageNode),
    Queue(QueueNode),
    Hangup(HangupNode),
}

/// The `kind` names, as written in flow files.
pub const KINDS: &[&str] = &[
    "play",
    "menu",
    "collect",
    "lookup",
    "say",
    "hours",
    "set_language",
    "goto",
    "voice_message",
    "queue",
    "hangup",
];

/// A key a phone can send: `0`-`9`, `*`, `#`, `A`-`D` (RFC 4733 events 0-15).
pub fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// A list of `(key path inside the node, value)`.
pub type Refs<'a> = Vec<(String, &'a str)>;

fn de<T: DeserializeOwned>(table: toml::Table) -> Result<T, FlowErrorKind> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| FlowErrorKind::Invalid(e.message().trim().to_owned()))
}

/// Prompt list entries as `prompts[i]`.
fn list<'a>(key: &str, names: &'a [String]) -> Refs<'a> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("{key}[{i}]"), n.as_str()))
        .collect()
}

impl NodeKind {
    /// Builds a node of `kind` from its table (without `kind` and `result`).
    pub fn parse(kind: &str, table: toml::Table) -> Result<NodeKind, FlowErrorKind> {
        Ok(match kind {
            "play" => NodeKind::Play(de(table)?),
            "menu" => NodeKind::Menu(de(table)?),
            "collect" => NodeKind::Collect(de(table)?),
            "lookup" => NodeKind::Lookup(de(table)?),
            "say" => NodeKind::Say(de(table)?),
            "hours" => NodeKind::Hours(de(table)?),
            "set_language" => NodeKind::SetLanguage(de(table)?),
            "goto" => NodeKind::Goto(de(table)?),
            "voice_message" => NodeKind::VoiceMessage(de(table)?),
            "queue" => NodeKind::Queue(de(table)?),
            "hangup" => NodeKind::Hangup(de(table)?),
            other => return Err(FlowErrorKind::UnknownKind(other.to_owned())),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Play(_) => "play",
            NodeKind::Menu(_) => "menu",
            NodeKind::Collect(_) => "collect",
            NodeKind::Lookup(_) => "lookup",
            NodeKind::Say(_) => "say",
            NodeKind::Hours(_) => "hours",
            NodeKind::SetLanguage(_) => "set_language",
            NodeKind::Goto(_) => "goto",
            NodeKind::VoiceMessage(_) => "voice_message",
            NodeKind::Queue(_) => "queue",
            NodeKind::Hangup(_) => "hangup",
        }
    }

    /// The nodes this one can lead to, with the key naming each.
    pub fn successors(&self) -> Refs<'_> {
        match self {
            NodeKind::Play(n) => n.successors(),
            NodeKind::Menu(n) => n.successors(),
            NodeKind::Collect(n) => n.successors(),
            NodeKind::Lookup(n) => n.successors(),
            NodeKind::Say(n) => n.successors(),
            NodeKind::Hours(n) => n.successors(),
            NodeKind::SetLanguage(n) => n.successors(),
            NodeKind::Goto(n) => n.successors(),
            NodeKind::VoiceMessage(n) => n.successors(),
            NodeKind::Queue(n) => n.successors(),
            NodeKind::Hangup(_) => Vec::new(),
        }
    }

    /// The prompt names this node plays (with defaults filled in), with the
    /// key naming each. Values said by a `say` node are not listed: they
    /// come from `ivr::say`, whose prompts exist in every language.
    pub fn prompts(&self) -> Refs<'_> {
        match self {
            NodeKind::Play(n) => list("prompts", &n.prompts),
            NodeKind::Menu(n) => n.prompts(),
            NodeKind::Collect(n) => n.prompts(),
            NodeKind::Say(n) => n.prompts(),
            NodeKind::VoiceMessage(n) => list("prompts", &n.prompts),
            NodeKind::Hangup(n) => list("prompts", &n.prompts),
            NodeKind::Lookup(_)
            | NodeKind::Hours(_)
            | NodeKind::SetLanguage(_)
            | NodeKind::Goto(_)
            | NodeKind::Queue(_) => Vec::new(),
        }
    }

    /// Checks that need nothing outside the node.
    pub fn check(&self) -> Vec<(String, FlowErrorKind)> {
        match self {
            NodeKind::Menu(n) => n.check(),
            NodeKind::Collect(n) => n.check(),
            NodeKind::Lookup(n) => n.check(),
            NodeKind::Say(n) => n.check(),
            NodeKind::VoiceMessage(n) => n.check(),
            NodeKind::Queue(n) => n.check(),
            _ => Vec::new(),
        }
    }

    /// Whether the node waits for the caller (keys or a recording), which
    /// is what breaks a loop: a cycle of nodes that never wait would spin.
    pub fn waits_for_input(&self) -> bool {
        matches!(
            self,
            NodeKind::Menu(_) | NodeKind::Collect(_) | NodeKind::VoiceMessage(_)
        )
    }
}

fn default_retries() -> u32 {
    3
}

fn default_invalid_prompt() -> String {
    "invalid_input".to_owned()
}

fn default_timeout_prompt() -> String {
    "no_input".to_owned()
}

fn default_terminator() -> char {
    '#'
}

/// Largest `retries` accepted (a caller is not kept in a menu forever).
pub const MAX_RETRIES: u32 = 10;
