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
            IvrAction::Hangup { reason } => f.debug_struct("Hangup").field("reason", reason).finish(),
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
    Announce { node: String, then: Then },
    Menu { node: String, failures: u32 },
    Collect { node: String, digits: Digits, failures: u32 },
    Lookup { node: String },
    Recording { node: String },
    Queued { node: String },
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
            .field("deadline", &self.deadline)
            .field("vars", &Vars(self))
            .field("typeahead", &format_args!("<{} keys>", self.typeahead.len()))
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
    fn enter<'f>(&mut self, now: Instant, node: &'f Node, out: &mut Vec<IvrAction>) -> Option<&'f str> {
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
                let open = self.flow.calendars.get(&h.calendar).is_some_and(|c| c.is_open(at));
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
                self.state = State::Menu { node: id, failures: 0 };
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
            Then::Record { node, max, terminator } => {
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
                    self.swallow = Some(c.terminator);
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
                let prompt = if timeout { &m.timeout_prompt } else { &m.invalid_prompt };
                (failures, m.retries, prompt, &m.prompts, &m.on_fail)
            }
            State::Collect { node, digits, failures } => {
                let Some(NodeKind::Collect(c)) = flow.node(node).map(|n| &n.kind) else {
                    return;
                };
                digits.0.clear();
                let prompt = if timeout { &c.timeout_prompt } else { &c.invalid_prompt };
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
