//! The IVR session: the sans-IO state machine that walks one call through
//! its flow. The call task feeds it events (`start`, keys, playback done,
//! look-up results, voice message done, queue unavailable, timer) with the
//! current `tokio::time::Instant`, performs the [`IvrAction`]s it returns,
//! and calls [`IvrSession::on_timer`] once `now >= deadline()`. The session
//! never reads a clock, sleeps or touches a socket.
//!
//! # States
//! `NotStarted` → one of: `Announce` (a play/say/hangup/voice-message prompt
//! is playing; what follows is fixed), `Menu`, `Collect` (waiting for keys:
//! prompt playing, or a timer running), `Lookup` (a query is out),
//! `Recording` (a voice message; a safety deadline runs), `Queued` (the call
//! task has offered the call to a queue), `Finished` (a `Hangup` was
//! returned). Nodes that do not wait (goto, set_language, hours, a say with
//! nothing to say) are passed through at once. After every event the
//! session waits on something: a playback, a deadline, a look-up, a voice
//! message, a queue, or it is finished ([`IvrSession::waiting`]).
//!
//! # Timers
//! A menu's timeout and a collect node's first-digit timeout start when its
//! prompt has finished playing (`on_playback_done`); the inter-digit timeout
//! starts at each digit. Playback ids increase; a `PlaybackDone` for any id
//! but the current one (replaced or stopped playback) is ignored.
//!
//! # Keys and type-ahead (the exact rule)
//! - Menu and collect prompts are interruptible: a key stops the prompt
//!   (`StopPlayback`) and is taken at once.
//! - A `play` node with `interruptible = true`: a key stops it, the flow
//!   goes on to `next`, and the key is kept as type-ahead.
//! - A key during any other prompt that leads on to more of the flow (a
//!   non-interruptible play, a say readback), during a look-up, or before
//!   `start`, is kept as type-ahead (at most [`MAX_TYPEAHEAD`] keys; more
//!   are dropped).
//! - When a menu or collect node is entered with type-ahead waiting, the
//!   keys are fed to it one by one, exactly as if pressed during its prompt,
//!   and the prompt is not played. Keys it does not use (it moved on) stay
//!   for the next input node.
//! - Keys are dropped, and type-ahead cleared, from the moment a
//!   voice_message, queue or hangup node is entered.
//! - When a collect node ends by reaching `max` digits, the very next key is
//!   dropped if it is that node's terminator ("18 digits then #").
//!
//! # Secrets
//! Digits are never logged. The session's `Debug` shows digit counts, not
//! digits, and hides the values of `secret` variables; the path holds node
//! ids only; `IvrAction`'s `Debug` hides look-up parameters.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::flow::Flow;
use super::nodes::collect::CollectKey;
use super::nodes::menu::MenuKey;
use super::nodes::{Node, NodeKind};
use crate::lang::Lang;
use crate::store::SqlValue;

/// Keys kept as type-ahead at most.
pub const MAX_TYPEAHEAD: usize = 32;
/// Nodes passed through in one step at most (flows are checked for loops
/// with no input; this is the last guard).
const MAX_HOPS: usize = 256;
/// How long past a voice message's maximum length the session waits for
/// the call task to report it before going on anyway.
const RECORDING_GRACE: Duration = Duration::from_secs(30);

/// What the call task must do.
#[derive(Clone, PartialEq)]
pub enum IvrAction {
    /// Play the prompts in order, replacing any playback; report
    /// `PlaybackDone { id }` after the last one.
    Play {
        id: u64,
        lang: Lang,
        prompts: Vec<String>,
        interruptible: bool,
    },
    /// Stop the current playback (no `PlaybackDone` is expected for it).
    StopPlayback,
    /// Run the look-up; report with `on_lookup_result`.
    Lookup { sql: String, params: Vec<SqlValue> },
    /// Record a voice message; report with `on_voice_message_done`.
    RecordVoiceMessage { max: Duration, terminator: char },
    /// Offer the call to an agent queue; if it cannot take the call, report
    /// with `on_queue_unavailable`.
    Queue { queue: String, priority: i32 },
    /// End the call.
    Hangup { reason: String },
}

impl fmt::Debug for IvrAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IvrAction::Play {
                id,
                lang,
                prompts,
                interruptible,
            } => f
                .debug_struct("Play")
                .field("id", id)
                .field("lang", lang)
                .field("prompts", prompts)
                .field("interruptible", interruptible)
                .finish(),
            IvrAction::StopPlayback => f.write_str("StopPlayback"),
            // Parameters may be a PIN.
            IvrAction::Lookup { sql, params } => f
                .debug_struct("Lookup")
                .field("sql", sql)
                .field("params", &format_args!("<{} hidden>", params.len()))
                .finish(),
            IvrAction::RecordVoiceMessage { max, terminator } => f
                .debug_struct("RecordVoiceMessage")
                .field("max", max)
                .field("terminator", terminator)
                .finish(),
            IvrAction::Queue { queue, priority } => f
                .debug_struct("Queue")
                .field("queue", queue)
                .field("priority", priority)
                .finish(),
            IvrAction::Hangup { reason } => {
                f.debug_struct("Hangup").field("reason", reason).finish()
            }
        }
    }
}

/// What the session is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// `start` has not been called.
    Start,
    Playback,
    /// A menu or collect timer (see `deadline`).
    Input,
    Lookup,
    VoiceMessage,
    Queue,
    Finished,
    /// Nothing: a bug (the session would hang). Never expected.
    Nothing,
}

/// Collected digits, shown by count only.
#[derive(Clone, Default, PartialEq)]
struct Digits(String);

impl fmt::Debug for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} digits>", self.0.chars().count())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Then {
    Goto(String),
    Record {
        node: String,
        max: Duration,
        terminator: char,
    },
    Hangup(String),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    NotStarted,
    Announce {
        node: String,
        then: Then,
    },
    Menu {
        node: String,
        failures: u32,
    },
    Collect {
        node: String,
        digits: Digits,
        failures: u32,
    },
    Lookup {
        node: String,
    },
    Recording {
        node: String,
    },
    Queued {
        node: String,
    },
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Playing {
    id: u64,
    interruptible: bool,
}

/// One call's walk through a flow.
pub struct IvrSession {
    flow: Arc<Flow>,
    start: Instant,
    start_wall: DateTime<Utc>,
    lang: Lang,
    state: State,
    playing: Option<Playing>,
    next_play_id: u64,
    deadline: Option<Instant>,
    vars: BTreeMap<String, SqlValue>,
    /// Not-found results per look-up node, for `max_attempts`.
    not_found: BTreeMap<String, u32>,
    typeahead: VecDeque<char>,
    /// Drop the next key if it is this (a terminator after a full collect).
    swallow: Option<char>,
    path: Vec<String>,
    result: Option<String>,
    /// Nodes entered so far (tells a key handler whether the flow moved).
    entries: u64,
}

impl fmt::Debug for IvrSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Vars<'a>(&'a IvrSession);
        impl fmt::Debug for Vars<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut m = f.debug_map();
                for (k, v) in &self.0.vars {
                    if self.0.flow.is_secret_var(k) {
                        m.entry(k, &format_args!("<secret>"));
                    } else {
                        m.entry(k, v);
                    }
                }
                m.finish()
            }
        }
        f.debug_struct("IvrSession")
            .field("flow", &self.flow.name)
            .field("lang", &self.lang)
            .field("state", &self.state)
            .field("playing", &self.playing)
            // Relative to the start, so no clock digits get in the way.
            .field(
                "deadline",
                &self
                    .deadline
                    .map(|d| d.saturating_duration_since(self.start)),
            )
            .field("vars", &Vars(self))
            .field(
                "typeahead",
                &format_args!("<{} keys>", self.typeahead.len()),
            )
            .field("path", &self.path)
            .field("result", &self.result)
            .finish()
    }
}

impl IvrSession {
    /// A session for a call answered at `start` (`start_wall` on the wall
    /// clock at that instant).
    pub fn new(flow: Arc<Flow>, start: Instant, start_wall: DateTime<Utc>) -> IvrSession {
        IvrSession {
            lang: flow.language,
            flow,
            start,
            start_wall,
            state: State::NotStarted,
            playing: None,
            next_play_id: 1,
            deadline: None,
            vars: BTreeMap::new(),
            not_found: BTreeMap::new(),
            typeahead: VecDeque::new(),
            swallow: None,
            path: Vec::new(),
            result: None,
            entries: 0,
        }
    }

    /// Enters the flow's start node. Later calls do nothing.
    pub fn start(&mut self, now: Instant) -> Vec<IvrAction> {
        let mut out = Vec::new();
        if self.state == State::NotStarted {
            let flow = self.flow.clone();
            self.goto(now, &flow.start, &mut out);
        }
        out
    }

    /// A key from the caller (RFC 4733, SIP INFO or in-band).
    pub fn on_digit(&mut self, now: Instant, digit: char) -> Vec<IvrAction> {
        let mut out = Vec::new();
        self.key(now, digit, &mut out);
        out
    }

    /// Playback `play_id` has finished; stale ids are ignored.
    pub fn on_playback_done(&mut self, now: Instant, play_id: u64) -> Vec<IvrAction> {
        let mut out = Vec::new();
        match self.playing {
            Some(p) if p.id == play_id => self.playing = None,
            _ => return out,
        }
        let flow = self.flow.clone();
        match &mut self.state {
            State::Announce { then, .. } => {
                let then = then.clone();
                self.then(now, then, &mut out);
            }
            State::Menu { node, .. } => {
                if let Some(NodeKind::Menu(m)) = flow.node(node).map(|n| &n.kind) {
                    self.deadline = Some(now + secs(m.timeout_secs));
                }
            }
            State::Collect { node, digits, .. } => {
                if let Some(NodeKind::Collect(c)) = flow.node(node).map(|n| &n.kind) {
                    let wait = if digits.0.is_empty() {
                        c.first_digit_timeout_secs
                    } else {
                        c.inter_digit_timeout_secs
                    };
                    self.deadline = Some(now + secs(wait));
                }
            }
            _ => {}
        }
        out
    }

    /// The outcome of the last `Lookup`: a row (its columns become
    /// variables), no row, or an error. Ignored unless a look-up is out.
    pub fn on_lookup_result(
        &mut self,
        now: Instant,
        result: Result<Option<BTreeMap<String, SqlValue>>, String>,
    ) -> Vec<IvrAction> {
        let mut out = Vec::new();
        let State::Lookup { node } = &self.state else {
            return out;
        };
        let flow = self.flow.clone();
        let Some(NodeKind::Lookup(l)) = flow.node(node).map(|n| &n.kind) else {
            return out;
        };
        let next = match result {
            Ok(Some(row)) => {
                self.vars.extend(row);
                &l.found
            }
            Ok(None) => {
                let count = self.not_found.entry(node.clone()).or_default();
                *count += 1;
                match (&l.exhausted, l.max_attempts) {
                    (Some(exhausted), Some(max)) if *count >= max => exhausted,
                    _ => &l.not_found,
                }
            }
            Err(e) => {
                warn!(node = %node, error = %e, "IVR look-up failed");
                &l.error
            }
        };
        self.goto(now, next, &mut out);
        out
    }

    /// The voice message asked for has ended (`saved`: a message was kept).
    pub fn on_voice_message_done(&mut self, now: Instant, saved: bool) -> Vec<IvrAction> {
        let mut out = Vec::new();
        self.voice_message_done(now, saved, &mut out);
        out
    }

    /// The queue could not take the call: the queue node's `next` follows.
    pub fn on_queue_unavailable(&mut self, now: Instant) -> Vec<IvrAction> {
        let mut out = Vec::new();
        let State::Queued { node } = &self.state else {
            return out;
        };
        let flow = self.flow.clone();
        if let Some(NodeKind::Queue(q)) = flow.node(node).map(|n| &n.kind) {
            self.goto(now, &q.next, &mut out);
        }
        out
    }

    /// The caller pressed the queue's voice-message key: the queue node's
    /// `voicemail` node follows (its `next` if it has none).
    pub fn on_queue_voicemail(&mut self, now: Instant) -> Vec<IvrAction> {
        let mut out = Vec::new();
        let State::Queued { node } = &self.state else {
            return out;
        };
        let flow = self.flow.clone();
        if let Some(NodeKind::Queue(q)) = flow.node(node).map(|n| &n.kind) {
            self.goto(now, q.voicemail.as_deref().unwrap_or(&q.next), &mut out);
        }
        out
    }

    /// The deadline has passed (calls before it do nothing).
    pub fn on_timer(&mut self, now: Instant) -> Vec<IvrAction> {
        let mut out = Vec::new();
        match self.deadline {
            Some(d) if now >= d => self.deadline = None,
            _ => return out,
        }
        match &self.state {
            State::Menu { .. } => self.input_failed(now, true, &mut out),
            State::Collect { digits, .. } => {
                if digits.0.is_empty() {
                    self.input_failed(now, true, &mut out);
                } else {
                    // The inter-digit timeout ends the input like a terminator.
                    self.collect_end(now, &mut out);
                }
            }
            State::Recording { .. } => {
                warn!("voice message not reported done in time; going on");
                self.voice_message_done(now, false, &mut out);
            }
            _ => {}
        }
        out
    }

    /// When `on_timer` is due next.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The call's current language.
    pub fn language(&self) -> Lang {
        self.lang
    }

    /// Node ids in the order visited, repeat visits included.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The last self-service result label reached.
    pub fn result(&self) -> Option<&str> {
        self.result.as_deref()
    }

    /// Whether the session has asked for the hang-up.
    pub fn finished(&self) -> bool {
        self.state == State::Finished
    }

    /// What the session waits for now.
    pub fn waiting(&self) -> Waiting {
        match &self.state {
            State::NotStarted => Waiting::Start,
            State::Finished => Waiting::Finished,
            _ if self.playing.is_some() => Waiting::Playback,
            State::Lookup { .. } => Waiting::Lookup,
            State::Recording { .. } => Waiting::VoiceMessage,
            State::Queued { .. } => Waiting::Queue,
            State::Menu { .. } | State::Collect { .. } if self.deadline.is_some() => Waiting::Input,
            _ => Waiting::Nothing,
        }
    }

    // ----- transitions --------------------------------------------------

    fn wall(&self, now: Instant) -> DateTime<Utc> {
        let elapsed = now.saturating_duration_since(self.start);
        self.start_wall + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }

    fn play(&mut self, prompts: Vec<String>, interruptible: bool, out: &mut Vec<IvrAction>) {
        let id = self.next_play_id;
        self.next_play_id += 1;
        self.playing = Some(Playing { id, interruptible });
        out.push(IvrAction::Play {
            id,
            lang: self.lang,
            prompts,
            interruptible,
        });
    }

    fn stop_playback(&mut self, out: &mut Vec<IvrAction>) {
        if self.playing.take().is_some() {
            out.push(IvrAction::StopPlayback);
        }
    }

    fn buffer(&mut self, k: char) {
        if self.typeahead.len() < MAX_TYPEAHEAD {
            self.typeahead.push_back(k);
        }
    }

    fn finish(&mut self, reason: &str, out: &mut Vec<IvrAction>) {
        info!(reason, path = ?self.path, "IVR hangs up");
        self.state = State::Finished;
        self.deadline = None;
        self.playing = None;
        self.typeahead.clear();
        out.push(IvrAction::Hangup {
            reason: reason.to_owned(),
        });
    }

    /// Goes to node `id` and on through nodes that do not wait.
    fn goto(&mut self, now: Instant, id: &str, out: &mut Vec<IvrAction>) {
        let flow = self.flow.clone();
        let mut id = id;
        for _ in 0..MAX_HOPS {
            let Some(node) = flow.node(id) else {
                // Flows are checked at load; this is a last guard.
                warn!(node = %id, "IVR: unknown node");
                self.finish("flow_error", out);
                return;
            };
            match self.enter(now, node, out) {
                Some(next) => id = next,
                None => return,
            }
        }
        warn!(node = %id, "IVR: too many nodes without input");
        self.finish("flow_loop", out);
    }

    /// Enters one node; returns the next node when this one does not wait.
    fn enter<'f>(
        &mut self,
        now: Instant,
        node: &'f Node,
        out: &mut Vec<IvrAction>,
    ) -> Option<&'f str> {
        self.stop_playback(out);
        self.deadline = None;
        self.entries += 1;
        self.path.push(node.id.clone());
        if let Some(r) = &node.result {
            self.result = Some(r.clone());
        }
        debug!(node = %node.id, kind = node.kind.name(), "IVR node");
        let id = node.id.clone();
        match &node.kind {
            NodeKind::Play(p) => {
                if p.prompts.is_empty() {
                    return Some(&p.next);
                }
                self.state = State::Announce {
                    node: id,
                    then: Then::Goto(p.next.clone()),
                };
                self.play(p.prompts.clone(), p.interruptible, out);
                None
            }
            NodeKind::Goto(g) => Some(&g.next),
            NodeKind::SetLanguage(s) => {
                self.lang = s.language;
                Some(&s.next)
            }
            NodeKind::Hours(h) => {
                let at = self.wall(now);
                let open = self
                    .flow
                    .calendars
                    .get(&h.calendar)
                    .is_some_and(|c| c.is_open(at));
                debug!(calendar = %h.calendar, %at, open, "IVR hours");
                Some(if open { &h.open } else { &h.closed })
            }
            NodeKind::Say(s) => match s.render(self.lang, &self.vars) {
                None => Some(s.on_missing.as_deref().unwrap_or(&s.next)),
                Some(p) if p.is_empty() => Some(&s.next),
                Some(p) => {
                    self.state = State::Announce {
                        node: id,
                        then: Then::Goto(s.next.clone()),
                    };
                    self.play(p, false, out);
                    None
                }
            },
            NodeKind::Menu(_) => {
                self.state = State::Menu {
                    node: id,
                    failures: 0,
                };
                self.begin_input(now, node, out);
                None
            }
            NodeKind::Collect(_) => {
                self.state = State::Collect {
                    node: id,
                    digits: Digits::default(),
                    failures: 0,
                };
                self.begin_input(now, node, out);
                None
            }
            NodeKind::Lookup(l) => {
                self.state = State::Lookup { node: id };
                out.push(IvrAction::Lookup {
                    sql: l.sql.clone(),
                    params: l.bind(&self.vars),
                });
                None
            }
            NodeKind::VoiceMessage(v) => {
                self.typeahead.clear();
                let then = Then::Record {
                    node: id.clone(),
                    max: secs(v.max_secs),
                    terminator: v.terminator,
                };
                if v.prompts.is_empty() {
                    self.then(now, then, out);
                } else {
                    self.state = State::Announce { node: id, then };
                    self.play(v.prompts.clone(), false, out);
                }
                None
            }
            NodeKind::Queue(q) => {
                self.typeahead.clear();
                self.state = State::Queued { node: id };
                out.push(IvrAction::Queue {
                    queue: q.queue.clone(),
                    priority: q.priority,
                });
                None
            }
            NodeKind::Hangup(h) => {
                self.typeahead.clear();
                let reason = h.reason(node.result.as_deref()).to_owned();
                if h.prompts.is_empty() {
                    self.finish(&reason, out);
                } else {
                    self.state = State::Announce {
                        node: id,
                        then: Then::Hangup(reason),
                    };
                    self.play(h.prompts.clone(), false, out);
                }
                None
            }
        }
    }

    /// What follows an announcement.
    fn then(&mut self, now: Instant, then: Then, out: &mut Vec<IvrAction>) {
        match then {
            Then::Goto(next) => self.goto(now, &next, out),
            Then::Hangup(reason) => self.finish(&reason, out),
            Then::Record {
                node,
                max,
                terminator,
            } => {
                self.state = State::Recording { node };
                self.deadline = Some(now + max + RECORDING_GRACE);
                out.push(IvrAction::RecordVoiceMessage { max, terminator });
            }
        }
    }

    fn voice_message_done(&mut self, now: Instant, saved: bool, out: &mut Vec<IvrAction>) {
        let State::Recording { node } = &self.state else {
            return;
        };
        info!(node = %node, saved, "voice message done");
        self.deadline = None;
        let flow = self.flow.clone();
        if let Some(NodeKind::VoiceMessage(v)) = flow.node(node).map(|n| &n.kind) {
            self.goto(now, &v.next, out);
        }
    }

    /// A menu or collect node was just entered: type-ahead first, else the
    /// prompt.
    fn begin_input(&mut self, now: Instant, node: &Node, out: &mut Vec<IvrAction>) {
        let entry = self.entries;
        while let Some(k) = self.typeahead.pop_front() {
            self.key(now, k, out);
            if self.entries != entry {
                return; // the keys took the caller elsewhere
            }
        }
        if self.playing.is_none() && self.deadline.is_none() {
            let prompts = match &node.kind {
                NodeKind::Menu(m) => m.prompts.clone(),
                NodeKind::Collect(c) => c.prompts.clone(),
                _ => return,
            };
            self.play(prompts, true, out);
        }
    }

    /// Every key, live or typed ahead, goes through here.
    fn key(&mut self, now: Instant, k: char, out: &mut Vec<IvrAction>) {
        if let Some(t) = self.swallow.take() {
            if t == k {
                return;
            }
        }
        match &self.state {
            State::NotStarted | State::Lookup { .. } => self.buffer(k),
            State::Announce { then, .. } => match then {
                Then::Goto(next) if self.playing.is_some_and(|p| p.interruptible) => {
                    let next = next.clone();
                    self.buffer(k);
                    self.goto(now, &next, out);
                }
                Then::Goto(_) => self.buffer(k),
                Then::Record { .. } | Then::Hangup(_) => {}
            },
            State::Menu { .. } => self.menu_key(now, k, out),
            State::Collect { .. } => self.collect_key(now, k, out),
            State::Recording { .. } | State::Queued { .. } | State::Finished => {}
        }
    }

    fn menu_key(&mut self, now: Instant, k: char, out: &mut Vec<IvrAction>) {
        let flow = self.flow.clone();
        let State::Menu { node, .. } = &self.state else {
            return;
        };
        let Some(NodeKind::Menu(m)) = flow.node(node).map(|n| &n.kind) else {
            return;
        };
        self.stop_playback(out);
        self.deadline = None;
        match m.key(k) {
            MenuKey::Go(target) => self.goto(now, target, out),
            MenuKey::Repeat => self.play(m.prompts.clone(), true, out),
            MenuKey::Invalid => self.input_failed(now, false, out),
        }
    }

    fn collect_key(&mut self, now: Instant, k: char, out: &mut Vec<IvrAction>) {
        let flow = self.flow.clone();
        let State::Collect { node, digits, .. } = &mut self.state else {
            return;
        };
        let Some(NodeKind::Collect(c)) = flow.node(node).map(|n| &n.kind) else {
            return;
        };
        match c.key(k) {
            CollectKey::Digit(d) => {
                digits.0.push(d);
                let full = c.full(digits.0.chars().count());
                self.stop_playback(out);
                if full {
                    // The next key in order is the one to drop: a typed-ahead
                    // one if any, else the next live one.
                    match self.typeahead.front() {
                        Some(&t) if t == c.terminator => {
                            self.typeahead.pop_front();
                        }
                        Some(_) => {}
                        None => self.swallow = Some(c.terminator),
                    }
                    self.collect_end(now, out);
                } else {
                    self.deadline = Some(now + secs(c.inter_digit_timeout_secs));
                }
            }
            CollectKey::Terminate => {
                self.stop_playback(out);
                self.collect_end(now, out);
            }
            CollectKey::Invalid => {
                self.stop_playback(out);
                self.input_failed(now, false, out);
            }
        }
    }

    /// The input is over (terminator, full, or inter-digit timeout): keep
    /// it if long enough, else it is a failure.
    fn collect_end(&mut self, now: Instant, out: &mut Vec<IvrAction>) {
        let flow = self.flow.clone();
        let State::Collect { node, digits, .. } = &mut self.state else {
            return;
        };
        let Some(NodeKind::Collect(c)) = flow.node(node).map(|n| &n.kind) else {
            return;
        };
        self.deadline = None;
        if c.enough(digits.0.chars().count()) {
            let value = std::mem::take(&mut digits.0);
            self.vars.insert(c.var.clone(), SqlValue::Text(value));
            self.goto(now, &c.next, out);
        } else {
            self.input_failed(now, false, out);
        }
    }

    /// No input (`timeout`) or a wrong one: say so and ask again, or give
    /// up when the retries are spent.
    fn input_failed(&mut self, now: Instant, timeout: bool, out: &mut Vec<IvrAction>) {
        let flow = self.flow.clone();
        self.deadline = None;
        let (failures, retries, fail_prompt, prompts, on_fail) = match &mut self.state {
            State::Menu { node, failures } => {
                let Some(NodeKind::Menu(m)) = flow.node(node).map(|n| &n.kind) else {
                    return;
                };
                if let (true, Some(t)) = (timeout, &m.on_timeout) {
                    return self.goto(now, t, out);
                }
                let prompt = if timeout {
                    &m.timeout_prompt
                } else {
                    &m.invalid_prompt
                };
                (failures, m.retries, prompt, &m.prompts, &m.on_fail)
            }
            State::Collect {
                node,
                digits,
                failures,
            } => {
                let Some(NodeKind::Collect(c)) = flow.node(node).map(|n| &n.kind) else {
                    return;
                };
                digits.0.clear();
                let prompt = if timeout {
                    &c.timeout_prompt
                } else {
                    &c.invalid_prompt
                };
                (failures, c.retries, prompt, &c.prompts, &c.on_fail)
            }
            _ => return,
        };
        if *failures < retries {
            *failures += 1;
            let mut all = vec![fail_prompt.clone()];
            all.extend(prompts.iter().cloned());
            self.play(all, true, out);
        } else {
            self.goto(now, on_fail, out);
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::flow::tests::{prompt_exists, shipped, sql_ok};
    use crate::ivr::flow::{parse_flow, FlowSet};
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::path::Path;
    use std::sync::OnceLock;

    const BALANCE_SQL: &str = "SELECT balance_fen, last_paid_year, last_paid_month FROM si_accounts WHERE id_number = $1 AND pin = $2";

    /// 12,345.67 yuan in Mandarin.
    const BALANCE_ZH: &[&str] = &[
        "balance_is",
        "num_1",
        "num_10000",
        "num_2_liang",
        "num_1000",
        "num_3",
        "num_100",
        "num_4",
        "num_10",
        "num_5",
        "yuan",
        "num_6",
        "jiao",
        "num_7",
        "fen",
    ];

    fn flows() -> &'static FlowSet {
        static SET: OnceLock<FlowSet> = OnceLock::new();
        SET.get_or_init(shipped)
    }

    /// Local time in Shanghai.
    fn cst(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .to_utc()
    }

    fn row(balance: i64, year: Option<i64>, month: Option<i64>) -> BTreeMap<String, SqlValue> {
        let v = |x: Option<i64>| x.map_or(SqlValue::Null, SqlValue::Int);
        BTreeMap::from([
            ("balance_fen".to_owned(), SqlValue::Int(balance)),
            ("last_paid_year".to_owned(), v(year)),
            ("last_paid_month".to_owned(), v(month)),
        ])
    }

    /// Plays the call task's part: keeps what is playing, pending look-ups
    /// etc., and checks after every step that the session waits on
    /// something.
    struct Call {
        s: IvrSession,
        start: Instant,
        now: Instant,
        playing: Option<u64>,
        plays: Vec<(Lang, Vec<String>, bool)>,
        lookup: Option<(String, Vec<SqlValue>)>,
        record: Option<(Duration, char)>,
        queue: Option<(String, i32)>,
        hangup: Option<String>,
        stops: usize,
    }

    impl Call {
        fn with_flow(flow: Arc<Flow>, wall: DateTime<Utc>) -> Call {
            let start = Instant::now();
            let mut c = Call {
                s: IvrSession::new(flow, start, wall),
                start,
                now: start,
                playing: None,
                plays: Vec::new(),
                lookup: None,
                record: None,
                queue: None,
                hangup: None,
                stops: 0,
            };
            assert_eq!(c.s.waiting(), Waiting::Start);
            let a = c.s.start(start);
            c.apply(a);
            c
        }

        fn new(dialed: &str, wall: DateTime<Utc>) -> Call {
            Call::with_flow(flows().for_dialed(dialed).unwrap(), wall)
        }

        fn apply(&mut self, actions: Vec<IvrAction>) {
            assert!(
                self.hangup.is_none() || actions.is_empty(),
                "actions after hangup: {actions:?}"
            );
            for a in actions {
                match a {
                    IvrAction::Play {
                        id,
                        lang,
                        prompts,
                        interruptible,
                    } => {
                        assert!(!prompts.is_empty());
                        self.playing = Some(id);
                        self.plays.push((lang, prompts, interruptible));
                    }
                    IvrAction::StopPlayback => {
                        assert!(self.playing.take().is_some(), "stop with nothing playing");
                        self.stops += 1;
                    }
                    IvrAction::Lookup { sql, params } => {
                        assert!(self.lookup.replace((sql, params)).is_none());
                    }
                    IvrAction::RecordVoiceMessage { max, terminator } => {
                        self.record = Some((max, terminator))
                    }
                    IvrAction::Queue { queue, priority } => self.queue = Some((queue, priority)),
                    IvrAction::Hangup { reason } => self.hangup = Some(reason),
                }
            }
            assert_ne!(self.s.waiting(), Waiting::Nothing, "stuck: {:?}", self.s);
            assert_eq!(self.s.finished(), self.hangup.is_some());
        }

        fn done(&mut self) {
            let id = self.playing.take().expect("nothing playing");
            self.now += Duration::from_secs(3);
            let a = self.s.on_playback_done(self.now, id);
            self.apply(a);
        }

        fn press(&mut self, keys: &str) {
            for k in keys.chars() {
                self.now += Duration::from_millis(300);
                let a = self.s.on_digit(self.now, k);
                self.apply(a);
            }
        }

        fn timeout(&mut self) {
            let d = self.s.deadline().expect("a deadline");
            assert!(
                self.s.on_timer(d - Duration::from_millis(1)).is_empty(),
                "early timer does nothing"
            );
            self.now = d;
            let a = self.s.on_timer(d);
            self.apply(a);
        }

        fn lookup_result(&mut self, r: Result<Option<BTreeMap<String, SqlValue>>, String>) {
            self.lookup.take().expect("a look-up");
            self.now += Duration::from_millis(50);
            let a = self.s.on_lookup_result(self.now, r);
            self.apply(a);
        }

        fn last(&self) -> Vec<&str> {
            self.plays
                .last()
                .map(|p| p.1.iter().map(String::as_str).collect())
                .unwrap_or_default()
        }

        fn last_lang(&self) -> Lang {
            self.plays.last().unwrap().0
        }

        /// Through the welcome and language menu to the main menu.
        fn reach_main_menu(&mut self, lang_key: &str) {
            assert_eq!(self.last(), ["welcome_12333"]);
            self.done();
            assert_eq!(self.last(), ["choose_language"]);
            self.done();
            self.press(lang_key);
            assert_eq!(self.last(), ["menu_12333_main"]);
            self.done();
        }

        /// From the main menu, key the ID and reach the PIN prompt.
        fn reach_pin(&mut self, id: &str) {
            self.press("1");
            assert_eq!(self.last(), ["enter_id"]);
            self.done();
            self.press(id);
            self.press("#");
            assert_eq!(self.last(), ["enter_pin"]);
            self.done();
        }
    }

    fn day() -> DateTime<Utc> {
        cst(2026, 11, 23, 10, 0, 0)
    }

    #[test]
    fn balance_readback_in_mandarin() {
        let mut c = Call::new("12333", day());
        assert_eq!(
            c.plays[0],
            (Lang::Zh, vec!["welcome_12333".to_owned()], true)
        );
        c.done();
        assert_eq!(c.last(), ["choose_language"]);
        assert_eq!(c.s.deadline(), None, "no timer while the prompt plays");
        c.done();
        assert_eq!(c.s.deadline(), Some(c.now + Duration::from_secs(5)));
        c.press("1");
        assert_eq!(c.last(), ["menu_12333_main"]);
        c.done();
        c.reach_pin("110101199003071234");
        c.press("864209");
        let stops = c.stops;
        c.press("#"); // after a full PIN: dropped
        assert_eq!(c.stops, stops);
        assert_eq!(
            c.lookup,
            Some((
                BALANCE_SQL.to_owned(),
                vec![
                    SqlValue::Text("110101199003071234".into()),
                    SqlValue::Text("864209".into())
                ]
            ))
        );
        // The PIN is nowhere to be seen.
        let shown = format!("{:?} {:?} {:?}", c.s, c.s.path(), c.s.result());
        assert!(!shown.contains("864209"), "{shown}");
        let action = IvrAction::Lookup {
            sql: BALANCE_SQL.into(),
            params: vec![SqlValue::Text("864209".into())],
        };
        assert!(!format!("{action:?}").contains("864209"));
        assert_eq!(c.s.waiting(), Waiting::Lookup);

        c.lookup_result(Ok(Some(row(1_234_567, Some(2026), Some(10)))));
        assert_eq!(c.last(), BALANCE_ZH);
        assert!(
            !c.plays.last().unwrap().2,
            "the readback is not interruptible"
        );
        assert_eq!(c.s.result(), Some("balance_read"));
        c.done();
        assert_eq!(
            c.last(),
            [
                "last_paid_is",
                "num_2",
                "num_0",
                "num_2",
                "num_6",
                "year",
                "num_10",
                "month"
            ]
        );
        c.done();
        assert_eq!(c.last(), ["main_menu_return", "repeat_hint"]);
        c.done();
        c.timeout();
        assert_eq!(c.last(), ["goodbye"]);
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("flow_end"));
        assert_eq!(c.s.result(), Some("balance_read"));
        assert_eq!(c.s.language(), Lang::Zh);
        assert!(c.plays.iter().all(|p| p.0 == Lang::Zh));
        assert_eq!(
            c.s.path(),
            [
                "welcome",
                "language",
                "mandarin",
                "main_menu",
                "enter_id",
                "enter_pin",
                "check_account",
                "say_balance",
                "say_last_paid",
                "after_balance",
                "goodbye"
            ]
        );
        let shown = format!("{:?} {:?}", c.s, c.s.path());
        assert!(!shown.contains("864209"), "{shown}");
        // Nothing more happens after the hang-up.
        assert!(c.s.on_digit(c.now, '1').is_empty());
        assert!(c.s.on_timer(c.now + Duration::from_secs(999)).is_empty());
    }

    #[test]
    fn english_id_ending_in_x_and_no_payment_record() {
        let mut c = Call::new("12333", day());
        // `2` during the (interruptible) welcome chooses English at once.
        c.press("2");
        assert_eq!(c.stops, 1);
        assert_eq!(c.last(), ["menu_12333_main"]);
        assert_eq!(c.last_lang(), Lang::En);
        assert!(
            !c.plays.iter().any(|p| p.1 == ["choose_language"]),
            "type-ahead skips the prompt"
        );
        c.done();
        c.reach_pin("11010119851212002*");
        c.press("654321");
        let params = &c.lookup.as_ref().unwrap().1;
        assert_eq!(params[0], SqlValue::Text("11010119851212002X".into()));
        c.lookup_result(Ok(Some(row(100, None, None))));
        assert_eq!(c.last(), ["balance_is", "num_1", "yuan"]);
        c.done();
        assert_eq!(c.last(), ["no_payment_record"]);
        c.done();
        assert_eq!(c.last(), ["main_menu_return", "repeat_hint"]);
        // `*` hears the balance again; `9` goes back to the main menu.
        c.press("*");
        assert_eq!(c.last(), ["balance_is", "num_1", "yuan"]);
        c.done();
        c.done();
        c.press("9");
        assert_eq!(c.last(), ["menu_12333_main"]);
        // Everything after the (Mandarin) welcome is in English.
        assert_eq!(c.plays[0].0, Lang::Zh);
        assert!(c.plays[1..].iter().all(|p| p.0 == Lang::En));
        assert_eq!(c.s.language(), Lang::En);
    }

    #[test]
    fn no_language_choice_means_mandarin() {
        let mut c = Call::new("12333", day());
        c.done();
        c.done();
        c.timeout();
        assert_eq!(c.last(), ["menu_12333_main"]);
        assert_eq!(c.last_lang(), Lang::Zh);
        assert_eq!(c.s.path()[..3], ["welcome", "language", "mandarin"]);
    }

    #[test]
    fn wrong_pin_three_times_ends_politely() {
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        c.reach_pin("110101199003071234");
        for attempt in 1..=3 {
            c.press("000000#");
            let (_, params) = c.lookup.clone().unwrap();
            assert_eq!(
                params[0],
                SqlValue::Text("110101199003071234".into()),
                "the ID is kept"
            );
            c.lookup_result(Ok(None));
            if attempt < 3 {
                assert_eq!(c.last(), ["wrong_pin"]);
                c.done();
                assert_eq!(c.last(), ["enter_pin"], "only the PIN is asked again");
                c.done();
            }
        }
        assert_eq!(c.last(), ["too_many_attempts", "goodbye"]);
        assert_eq!(c.s.result(), Some("pin_failed"));
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("pin_failed"));
        let wrong = c.plays.iter().filter(|p| p.1 == ["wrong_pin"]).count();
        assert_eq!(wrong, 2);
        assert_eq!(c.s.path().iter().filter(|p| *p == "enter_id").count(), 1);
        assert_eq!(c.s.path().iter().filter(|p| *p == "enter_pin").count(), 3);
        assert!(!format!("{:?}", c.s).contains("000000"));
    }

    #[test]
    fn lookup_error_and_queue_unavailable() {
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        c.reach_pin("110101199003071234");
        c.press("123456");
        c.lookup_result(Err("timed out".into()));
        assert_eq!(c.last(), ["lookup_failed", "goodbye"]);
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("lookup_failed"));

        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        c.press("0");
        assert_eq!(c.last(), ["transfer_to_agent"]);
        c.done();
        assert_eq!(c.queue, Some(("12333".into(), 0)));
        assert_eq!(c.s.waiting(), Waiting::Queue);
        assert!(
            c.s.on_digit(c.now, '1').is_empty(),
            "the queue has the call"
        );
        let a = c.s.on_queue_unavailable(c.now);
        c.apply(a);
        assert_eq!(c.last(), ["queue_unavailable"]);
        c.done();
        assert_eq!(c.last(), ["menu_12333_main"]);
        // Events that do not fit the state are ignored.
        assert!(c.s.on_queue_unavailable(c.now).is_empty());
        assert!(c.s.on_lookup_result(c.now, Ok(None)).is_empty());
        assert!(c.s.on_voice_message_done(c.now, true).is_empty());
    }

    #[test]
    fn menu_timeouts_invalid_keys_then_goodbye() {
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        let t = c.now;
        assert_eq!(c.s.deadline(), Some(t + Duration::from_secs(5)));
        c.timeout();
        assert_eq!(c.last(), ["no_input", "menu_12333_main"]);
        assert_eq!(c.s.deadline(), None);
        c.done();
        c.press("7");
        assert_eq!(c.last(), ["invalid_input", "menu_12333_main"]);
        // A key during the retry prompt interrupts it.
        c.press("8");
        assert_eq!(c.last(), ["invalid_input", "menu_12333_main"]);
        c.done();
        // Retries (3) are spent: the next failure says goodbye.
        c.timeout();
        assert_eq!(c.last(), ["goodbye"]);
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("flow_end"));
        let menus = c
            .plays
            .iter()
            .filter(|p| p.1.contains(&"menu_12333_main".to_owned()))
            .count();
        assert_eq!(menus, 4);
    }

    #[test]
    fn repeat_key_replays_without_counting() {
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        for _ in 0..5 {
            c.press("*");
            assert_eq!(c.last(), ["menu_12333_main"]);
            c.done();
        }
        for _ in 0..3 {
            c.timeout();
            assert_eq!(c.last(), ["no_input", "menu_12333_main"]);
            c.done();
        }
        c.timeout();
        assert_eq!(c.last(), ["goodbye"]);
        // `2`: opening hours, then back to the menu.
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        c.press("2");
        assert_eq!(c.last(), ["opening_hours"]);
        c.done();
        assert_eq!(c.last(), ["menu_12333_main"]);
    }

    #[test]
    fn stale_playback_done_is_ignored() {
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        c.press("*");
        let first = c.playing.unwrap();
        c.press("*");
        let second = c.playing.unwrap();
        assert_eq!(c.stops, 1, "the first replay was stopped by the second");
        assert!(c.s.on_playback_done(c.now, first).is_empty());
        assert_eq!(c.s.deadline(), None);
        assert_eq!(c.s.waiting(), Waiting::Playback);
        assert!(c.s.on_playback_done(c.now, second + 100).is_empty());
        c.done();
        assert!(c.s.deadline().is_some());
    }

    #[test]
    fn type_ahead_during_prompts_and_look_ups() {
        let mut c = Call::new("12333", day());
        c.reach_main_menu("1");
        c.reach_pin("110101199003071234");
        c.press("000000");
        c.lookup_result(Ok(None));
        assert_eq!(c.last(), ["wrong_pin"]);
        // Typed during the uninterruptible "wrong PIN": kept, no stop.
        let stops = c.stops;
        c.press("123456#");
        assert_eq!(c.stops, stops);
        assert!(c.lookup.is_none());
        c.done();
        assert!(
            c.lookup.is_some(),
            "the PIN prompt is skipped, the typed PIN used"
        );
        assert_eq!(c.last(), ["wrong_pin"]);
        assert_eq!(
            c.lookup.as_ref().unwrap().1[1],
            SqlValue::Text("123456".into())
        );
        // Typed during the look-up and readback: the next menu takes it.
        c.press("9");
        c.lookup_result(Ok(Some(row(5, Some(2025), Some(12)))));
        c.press("0");
        assert!(c.last().starts_with(&["balance_is"]));
        c.done();
        c.done();
        // `9` was taken by the after-balance menu, `0` by the main menu:
        // neither menu prompt was played.
        assert_eq!(c.last(), ["transfer_to_agent"]);
        assert!(!c
            .plays
            .iter()
            .any(|p| p.1.contains(&"main_menu_return".to_owned())));
        let n = c.s.path().len();
        assert_eq!(
            c.s.path()[n - 3..],
            ["after_balance", "main_menu", "to_agent"]
        );
    }

    #[test]
    fn type_ahead_is_bounded_and_dropped_at_hangup() {
        let mut c = Call::new("12333", day());
        c.done(); // welcome
        c.done(); // language menu
        c.press("1");
        c.done();
        c.press("1");
        c.done();
        c.press("1101011990030712");
        c.timeout(); // too few digits
        assert_eq!(c.last(), ["invalid_input", "enter_id"]);
        // Many keys while nothing takes them are bounded.
        let mut s = IvrSession::new(flows().for_dialed("12333").unwrap(), c.start, day());
        for _ in 0..1000 {
            assert!(s.on_digit(c.start, '5').is_empty());
        }
        assert_eq!(s.typeahead.len(), MAX_TYPEAHEAD);
    }

    /// A flow for timer details: collect 4-8 digits.
    fn collect_flow() -> Arc<Flow> {
        let src = r#"
dialed = ["1"]
start = "c"
[nodes.c]
kind = "collect"
prompts = ["enter_id"]
var = "n"
min = 4
max = 8
retries = 1
next = "bye"
on_fail = "fail"
[nodes.bye]
kind = "say"
what = "digits"
var = "n"
next = "end"
[nodes.end]
kind = "hangup"
result = "done"
[nodes.fail]
kind = "hangup"
prompts = ["goodbye"]
reason = "no_digits"
"#;
        Arc::new(parse_flow(Path::new("t.toml"), src, &prompt_exists, &sql_ok).unwrap())
    }

    #[test]
    fn collect_timers() {
        let mut c = Call::with_flow(collect_flow(), day());
        c.done();
        // First-digit timeout: 10 s from the end of the prompt.
        assert_eq!(c.s.deadline(), Some(c.now + Duration::from_secs(10)));
        c.timeout();
        assert_eq!(c.last(), ["no_input", "enter_id"]);
        c.done();
        // Inter-digit timeout: 5 s after each digit; enough digits end it.
        c.press("12");
        assert_eq!(c.s.deadline(), Some(c.now + Duration::from_secs(5)));
        c.press("345");
        c.timeout();
        assert_eq!(
            c.last(),
            ["digit_1_yao", "num_2", "num_3", "num_4", "num_5"]
        );
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("done"));
        assert_eq!(c.s.result(), Some("done"));

        // Too few digits, twice: on_fail.
        let mut c = Call::with_flow(collect_flow(), day());
        c.done();
        c.press("12#");
        assert_eq!(c.last(), ["invalid_input", "enter_id"]);
        c.press("1");
        c.timeout();
        assert_eq!(c.last(), ["goodbye"]);
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("no_digits"));

        // Digits during the prompt count and stop it; `*` is invalid here.
        let mut c = Call::with_flow(collect_flow(), day());
        c.press("12345678");
        assert_eq!(c.stops, 1);
        assert_eq!(c.last(), crate::ivr::say::say_digits(Lang::Zh, "12345678"));
        let mut c = Call::with_flow(collect_flow(), day());
        c.press("12*");
        assert_eq!(c.last(), ["invalid_input", "enter_id"]);
    }

    #[test]
    fn hours_12345_open_at_ten() {
        let mut c = Call::new("12345", cst(2026, 11, 23, 10, 0, 0));
        assert_eq!(c.last(), ["welcome_12345"]);
        c.done();
        assert_eq!(c.last(), ["transfer_to_agent"]);
        c.done();
        assert_eq!(c.queue, Some(("12345".into(), 0)));
        let a = c.s.on_queue_unavailable(c.now);
        c.apply(a);
        assert_eq!(c.last(), ["queue_unavailable"]);
        c.done();
        assert_eq!(c.last(), ["voicemail_prompt", "beep"]);
        c.done();
        assert_eq!(c.record, Some((Duration::from_secs(60), '#')));
        assert_eq!(c.s.waiting(), Waiting::VoiceMessage);
        let a =
            c.s.on_voice_message_done(c.now + Duration::from_secs(20), true);
        c.apply(a);
        assert_eq!(c.last(), ["goodbye"]);
        c.done();
        assert_eq!(c.hangup.as_deref(), Some("flow_end"));
        assert_eq!(c.s.path()[1], "check_hours");
        assert_eq!(c.s.path()[2], "to_agent");
    }

    #[test]
    fn hours_12345_closed_at_night_and_by_elapsed_time() {
        for wall in [
            cst(2026, 11, 23, 21, 0, 0),
            cst(2026, 11, 23, 7, 59, 0),
            cst(2026, 11, 23, 19, 59, 58),
        ] {
            // The last one: open when answered, closed when the welcome has
            // played (3 s later): the time is start + elapsed.
            let mut c = Call::new("12345", wall);
            c.done();
            assert_eq!(c.last(), ["after_hours"], "{wall}");
            assert_eq!(c.s.result(), Some("after_hours"));
            c.done();
            assert_eq!(c.last(), ["voicemail_prompt", "beep"]);
            c.press("#"); // dropped: not type-ahead for anything
            c.done();
            assert!(c.record.is_some());
            // The call task never reports the recording: the safety timer.
            assert_eq!(c.s.deadline(), Some(c.now + Duration::from_secs(90)));
            c.timeout();
            assert_eq!(c.last(), ["thank_you"]);
            c.done();
            assert_eq!(c.hangup.as_deref(), Some("flow_end"));
        }
        let c = Call::new("12345", cst(2026, 11, 23, 19, 59, 56));
        let mut c = c;
        c.done();
        assert_eq!(c.last(), ["transfer_to_agent"], "19:59:59 is still open");
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Key(char),
        Done,
        StaleDone(u64),
        Timer,
        Wait(u64),
        Found(i64, Option<i64>),
        NotFound,
        LookupError,
        QueueUnavailable,
        VoiceDone(bool),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            6 => proptest::sample::select(vec!['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A'])
                .prop_map(Ev::Key),
            4 => Just(Ev::Done),
            1 => (0u64..40).prop_map(Ev::StaleDone),
            3 => Just(Ev::Timer),
            1 => (0u64..20_000).prop_map(Ev::Wait),
            1 => (any::<i64>(), proptest::option::of(1i64..13)).prop_map(|(b, m)| Ev::Found(b, m)),
            1 => Just(Ev::NotFound),
            1 => Just(Ev::LookupError),
            1 => Just(Ev::QueueUnavailable),
            1 => any::<bool>().prop_map(Ev::VoiceDone),
        ]
    }

    fn step(c: &mut Call, e: &Ev) {
        let now = c.now;
        let actions = match *e {
            Ev::Key(k) => c.s.on_digit(now, k),
            Ev::Done => match c.playing.take() {
                Some(id) => c.s.on_playback_done(now, id),
                None => Vec::new(),
            },
            Ev::StaleDone(d) => {
                // Any id but the current one.
                let id = c.playing.map_or(d, |p| p.wrapping_sub(d + 1));
                c.s.on_playback_done(now, id)
            }
            Ev::Timer => match c.s.deadline() {
                Some(d) => {
                    c.now = c.now.max(d);
                    c.s.on_timer(c.now)
                }
                None => c.s.on_timer(now),
            },
            Ev::Wait(ms) => {
                c.now += Duration::from_millis(ms);
                Vec::new()
            }
            Ev::Found(b, m) => {
                let pending = c.lookup.take().is_some();
                let a =
                    c.s.on_lookup_result(now, Ok(Some(row(b, m.map(|_| 2026), m))));
                assert!(pending || a.is_empty());
                a
            }
            Ev::NotFound | Ev::LookupError => {
                let pending = c.lookup.take().is_some();
                let r = if matches!(e, Ev::NotFound) {
                    Ok(None)
                } else {
                    Err("db down".into())
                };
                let a = c.s.on_lookup_result(now, r);
                assert!(pending || a.is_empty());
                a
            }
            Ev::QueueUnavailable => c.s.on_queue_unavailable(now),
            Ev::VoiceDone(saved) => c.s.on_voice_message_done(now, saved),
        };
        if c.hangup.is_some() {
            assert!(actions.is_empty());
            return;
        }
        c.apply(actions);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Random callers never crash the engine nor leave it waiting on
        /// nothing, and silence from any point ends the call.
        #[test]
        fn never_stuck(dialed in prop_oneof![Just("12333"), Just("12345")],
                       hour in 0u32..24,
                       events in proptest::collection::vec(ev(), 0..120)) {
            let mut c = Call::new(dialed, cst(2026, 11, 23, hour, 30, 0));
            for e in &events {
                step(&mut c, e);
            }
            // The PIN, once keyed, is not shown.
            if let Some(SqlValue::Text(pin)) = c.s.vars.get("pin") {
                let id = match c.s.vars.get("id") { Some(SqlValue::Text(id)) => id.clone(), _ => String::new() };
                if !id.contains(pin.as_str()) {
                    let shown = format!("{:?}", c.s);
                    prop_assert!(!shown.contains(pin.as_str()), "{}", shown);
                }
            }
            prop_assert!(c.s.path().iter().all(|p| c.s.flow.node(p).is_some()));
            // Silence: play out, let timers run, answer everything negatively.
            for _ in 0..500 {
                if c.s.finished() {
                    break;
                }
                let e = match c.s.waiting() {
                    Waiting::Playback => Ev::Done,
                    Waiting::Input => Ev::Timer,
                    Waiting::Lookup => Ev::NotFound,
                    Waiting::VoiceMessage => Ev::VoiceDone(false),
                    Waiting::Queue => Ev::QueueUnavailable,
                    w => panic!("unexpected {w:?}"),
                };
                step(&mut c, &e);
            }
            prop_assert!(c.s.finished(), "silence did not end the call: {:?}", c.s);
        }
    }
}
