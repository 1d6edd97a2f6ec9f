//! IVR flow definitions: one TOML file per flow in a folder
//! (`config/flows/*.toml`), read once at start-up into typed [`Flow`]s and
//! checked as a whole, so a bad flow stops the daemon with every problem
//! listed (file, key path, what is wrong) instead of failing a caller later.
//!
//! A flow file:
//!
//! ```toml
//! dialed = ["12333"]        # the numbers that reach this flow
//! default = false           # true: also every number no flow claims
//! language = "zh"           # the call's language at the start
//! start = "welcome"         # the first node
//!
//! [calendars.agents]        # opening hours, for `hours` nodes (ivr::hours)
//! timezone = "Asia/Shanghai"
//! daily = ["08:00-20:00"]
//!
//! [nodes.welcome]           # one table per node; see ivr::nodes
//! kind = "play"
//! prompts = ["welcome_12333"]
//! next = "main_menu"
//! ```
//!
//! What is checked: TOML syntax (with line and column), unknown keys and
//! wrong types, unknown node kinds, references to undefined nodes, the start
//! node, prompts missing in a language the flow can be in (its default plus
//! any `set_language` target), a loop made only of nodes that never wait
//! for the caller ("loop with no input"), DTMF keys, digit counts, time
//! zones and hours, look-up SQL (by the store's own checker) and its
//! placeholder count, and across files: two flows claiming one number, two
//! default flows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::hours::{Calendar, CalendarDef, HoursError};
use super::nodes::{Node, NodeKind, KINDS};
use crate::lang::Lang;

/// One flow, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// The file stem (`12333` for `12333.toml`).
    pub name: String,
    pub file: PathBuf,
    pub dialed: Vec<String>,
    pub default: bool,
    /// The call's language when the flow starts.
    pub language: Lang,
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
    pub calendars: BTreeMap<String, Calendar>,
}

impl Flow {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// The languages a call in this flow can be in.
    pub fn languages(&self) -> BTreeSet<Lang> {
        let mut langs = BTreeSet::from([self.language]);
        for n in self.nodes.values() {
            if let NodeKind::SetLanguage(s) = &n.kind {
                langs.insert(s.language);
            }
        }
        langs
    }

    /// Whether `var` is collected by a `secret = true` node (a PIN).
    pub fn is_secret_var(&self, var: &str) -> bool {
        self.nodes
            .values()
            .any(|n| matches!(&n.kind, NodeKind::Collect(c) if c.secret && c.var == var))
    }
}

/// All flows, by dialed number.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: Vec<Arc<Flow>>,
    by_number: BTreeMap<String, Arc<Flow>>,
    default: Option<Arc<Flow>>,
}

impl FlowSet {
    /// Groups checked flows; two flows claiming one number, or two default
    /// flows, are errors (reported against the later file).
    pub fn new(flows: Vec<Flow>) -> Result<FlowSet, Vec<FlowError>> {
        let mut set = FlowSet::default();
        let mut errors = Vec::new();
        for flow in flows {
            let flow = Arc::new(flow);
            for (i, number) in flow.dialed.iter().enumerate() {
                if let Some(other) = set.by_number.get(number) {
                    errors.push(FlowError::new(
                        &flow.file,
                        format!("dialed[{i}]"),
                        FlowErrorKind::DuplicateDialed {
                            number: number.clone(),
                            other: other.file.display().to_string(),
                        },
                    ));
                } else {
                    set.by_number.insert(number.clone(), flow.clone());
                }
            }
            if flow.default {
                match &set.default {
                    Some(first) => errors.push(FlowError::new(
                        &flow.file,
                        "default",
                        FlowErrorKind::DuplicateDefault(first.file.display().to_string()),
                    )),
                    None => set.default = Some(flow.clone()),
                }
            }
            set.flows.push(flow);
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The flow for a dialed number: the one listing it, else the default.
    pub fn for_dialed(&self, number: &str) -> Option<Arc<Flow>> {
        self.by_number
            .get(number)
            .or(self.default.as_ref())
            .cloned()
    }

    pub fn flows(&self) -> &[Arc<Flow>] {
        &self.flows
    }

    /// How many flows there are.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowError {
    pub file: PathBuf,
    /// Key path inside the file (`nodes.balance.next`); empty for the file
    /// as a whole.
    pub key: String,
    pub kind: FlowErrorKind,
}

impl FlowError {
    pub fn new(file: &Path, key: impl Into<String>, kind: FlowErrorKind) -> FlowError {
        FlowError {
            file: file.to_path_buf(),
            key: key.into(),
            kind,
        }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for FlowError {}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("no flow files (*.toml) in the folder")]
    NoFlows,
    #[error("TOML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("unknown node kind {0:?} (expected one of: {kinds})", kinds = KINDS.join(", "))]
    UnknownKind(String),
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    #[error("no start node (set `start = \"NODE\"`)")]
    NoStart,
    #[error("start node {0:?} is not defined")]
    MissingStart(String),
    #[error("prompt {name:?} does not exist in {lang}")]
    MissingPrompt { lang: Lang, name: String },
    #[error("loop with no input: {0}")]
    LoopWithNoInput(String),
    #[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
    NotDtmf(String),
    #[error("min {min} is greater than max {max}")]
    MinOverMax { min: u32, max: u32 },
    #[error("{0}")]
    Hours(#[from] HoursError),
    #[error("unknown calendar {0:?}")]
    UnknownCalendar(String),
    #[error("bad look-up SQL: {0}")]
    BadSql(String),
    #[error("the SQL uses {sql} placeholder(s) but {params} param(s) are listed")]
    ParamCount { sql: usize, params: usize },
    #[error("number {number:?} is already claimed by {other}")]
    DuplicateDialed { number: String, other: String },
    #[error("a second default flow (the first is {0})")]
    DuplicateDefault(String),
    #[error("{0}")]
    BadValue(String),
}

/// Loads and checks every `*.toml` flow in `dir` (in file-name order).
/// `prompt_exists` says whether a prompt is recorded in a language;
/// `lookup_sql_ok` vets a look-up's SQL. Returns every error found.
pub fn load_flows(
    dir: &Path,
    prompt_exists: &dyn Fn(Lang, &str) -> bool,
    lookup_sql_ok: &dyn Fn(&str) -> Result<(), String>,
) -> Result<FlowSet, Vec<FlowError>> {
    let io = |e: std::io::Error| vec![FlowError::new(dir, "", FlowErrorKind::Io(e.to_string()))];
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(vec![FlowError::new(dir, "", FlowErrorKind::NoFlows)]);
    }
    let mut flows = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| vec![FlowError::new(&file, "", FlowErrorKind::Io(e.to_string()))])
            .and_then(|src| parse_flow(&file, &src, prompt_exists, lookup_sql_ok));
        match parsed {
            Ok(flow) => flows.push(flow),
            Err(e) => errors.extend(e),
        }
    }
    match FlowSet::new(flows) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.extend(e);
            Err(errors)
        }
    }
}

/// The top-level keys besides `nodes` and `calendars`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    #[serde(default)]
    dialed: Vec<String>,
    #[serde(default)]
    default: bool,
    #[serde(default = "default_language")]
    language: Lang,
    #[serde(default)]
    start: Option<String>,
    /// Free text for people reading the file.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

fn default_language() -> Lang {
    Lang::Zh
}

/// 1-based line and column of byte `offset` in `src`.
fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn invalid(e: toml::de::Error) -> FlowErrorKind {
    FlowErrorKind::Invalid(e.message().trim().to_owned())
}

/// Parses and checks one flow file's text. `file` names it in errors; the
/// flow's name is its stem.
pub fn parse_flow(
    file: &Path,
    src: &str,
    prompt_exists: &dyn Fn(Lang, &str) -> bool,
    lookup_sql_ok: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Flow, Vec<FlowError>> {
    let mut errors = Vec::new();
    let mut err = |key: String, kind: FlowErrorKind| errors.push(FlowError::new(file, key, kind));

    let mut root: toml::Table = match src.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let (line, column) = line_column(src, e.span().map_or(0, |s| s.start));
            let message = e.message().trim().to_owned();
            return Err(vec![FlowError::new(
                file,
                "",
                FlowErrorKind::Syntax {
                    line,
                    column,
                    message,
                },
            )]);
        }
    };
    let raw_nodes = root.remove("nodes");
    let raw_calendars = root.remove("calendars");

    let header: Option<Header> = match toml::Value::Table(root).try_into() {
        Ok(h) => Some(h),
        Err(e) => {
            err(String::new(), invalid(e));
            None
        }
    };

    // Calendars.
    let mut calendars = BTreeMap::new();
    let mut calendar_names = BTreeSet::new();
    match raw_calendars {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (name, value) in t {
                calendar_names.insert(name.clone());
                let key = format!("calendars.{name}");
                let def: CalendarDef = match value.try_into() {
                    Ok(d) => d,
                    Err(e) => {
                        err(key, invalid(e));
                        continue;
                    }
                };
                match Calendar::from_def(&def) {
                    Ok(c) => {
                        calendars.insert(name, c);
                    }
                    Err(es) => {
                        for (sub, e) in es {
                            let k = if sub.is_empty() {
                                key.clone()
                            } else {
                                format!("{key}.{sub}")
                            };
                            err(k, e.into());
                        }
                    }
                }
            }
        }
        Some(_) => err(
            "calendars".into(),
            FlowErrorKind::Invalid("must be a table".into()),
        ),
    }

    // Nodes: each on its own, so one bad node does not hide the others.
    let mut declared = BTreeSet::new();
    let mut nodes = BTreeMap::new();
    match raw_nodes {
        Some(toml::Value::Table(t)) if !t.is_empty() => {
            for (id, value) in t {
                declared.insert(id.clone());
                let key = format!("nodes.{id}");
                let toml::Value::Table(mut table) = value else {
                    err(key, FlowErrorKind::Invalid("a node must be a table".into()));
                    continue;
                };
                let kind = match table.remove("kind") {
                    Some(toml::Value::String(k)) => k,
                    Some(_) => {
                        err(
                            format!("{key}.kind"),
                            FlowErrorKind::Invalid("must be a string".into()),
                        );
                        continue;
                    }
                    None => {
                        err(key, FlowErrorKind::Invalid("missing `kind`".into()));
                        continue;
                    }
                };
                let result = match table.remove("result") {
                    None => None,
                    Some(toml::Value::String(r)) if !r.trim().is_empty() => Some(r),
                    Some(_) => {
                        err(
                            format!("{key}.result"),
                            FlowErrorKind::BadValue("must be a non-empty string".into()),
                        );
                        None
                    }
                };
                match NodeKind::parse(&kind, table) {
                    Ok(kind) => {
                        nodes.insert(id.clone(), Node { id, result, kind });
                    }
                    Err(e @ FlowErrorKind::UnknownKind(_)) => err(format!("{key}.kind"), e),
                    Err(e) => err(key, e),
                }
            }
        }
        Some(toml::Value::Table(_)) | None => err(
            "nodes".into(),
            FlowErrorKind::BadValue("a flow needs nodes".into()),
        ),
        Some(_) => err(
            "nodes".into(),
            FlowErrorKind::Invalid("must be a table".into()),
        ),
    }

    let Some(header) = header else {
        return Err(errors);
    };

    // The flow as a whole.
    if header.dialed.is_empty() && !header.default {
        err(
            "dialed".into(),
            FlowErrorKind::BadValue("no dialed numbers and not the default flow".into()),
        );
    }
    for (i, d) in header.dialed.iter().enumerate() {
        if d.is_empty() || d.chars().any(|c| c.is_whitespace() || c.is_control()) {
            err(
                format!("dialed[{i}]"),
                FlowErrorKind::BadValue(format!("bad number {d:?}")),
            );
        }
    }
    match &header.start {
        None => err("start".into(), FlowErrorKind::NoStart),
        Some(s) if !declared.contains(s) => {
            err("start".into(), FlowErrorKind::MissingStart(s.clone()))
        }
        Some(_) => {}
    }
    let mut languages = BTreeSet::from([header.language]);
    for n in nodes.values() {
        if let NodeKind::SetLanguage(s) = &n.kind {
            languages.insert(s.language);
        }
    }

    for (id, node) in &nodes {
        let key = |sub: &str| format!("nodes.{id}.{sub}");
        for (sub, target) in node.kind.successors() {
            if !declared.contains(target) {
                err(key(&sub), FlowErrorKind::UnknownNode(target.to_owned()));
            }
        }
        for (sub, name) in node.kind.prompts() {
            for &lang in &languages {
                if !prompt_exists(lang, name) {
                    err(
                        key(&sub),
                        FlowErrorKind::MissingPrompt {
                            lang,
                            name: name.to_owned(),
                        },
                    );
                }
            }
        }
        for (sub, e) in node.kind.check() {
            err(key(&sub), e);
        }
        match &node.kind {
            NodeKind::Hours(h) if !calendar_names.contains(&h.calendar) => {
                err(
                    key("calendar"),
                    FlowErrorKind::UnknownCalendar(h.calendar.clone()),
                );
            }
            NodeKind::Lookup(l) => {
                if let Err(e) = lookup_sql_ok(&l.sql) {
                    err(key("sql"), FlowErrorKind::BadSql(e));
                }
            }
            _ => {}
        }
    }
    for cycle in loops_without_input(&nodes) {
        err(
            format!("nodes.{}", cycle[0]),
            FlowErrorKind::LoopWithNoInput(cycle.join(" -> ")),
        );
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Flow {
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file: file.to_path_buf(),
        dialed: header.dialed,
        default: header.default,
        language: header.language,
        start: header.start.unwrap_or_default(),
        nodes,
        calendars,
    })
}

/// Cycles among nodes that never wait for the caller, each once, as the
/// node ids from the smallest id round back to it (`a -> b -> a`).
fn loops_without_input(nodes: &BTreeMap<String, Node>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit<'a>(
        id: &'a str,
        nodes: &'a BTreeMap<String, Node>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        marks.insert(id, Mark::OnStack);
        stack.push(id);
        for (_, next) in nodes[id].kind.successors() {
            let Some((next, node)) = nodes.get_key_value(next) else {
                continue;
            };
            if node.kind.waits_for_input() {
                continue;
            }
            match marks.get(next.as_str()).copied().unwrap_or(Mark::New) {
                Mark::New => visit(next, nodes, marks, stack, found),
                Mark::OnStack => {
                    let from = stack.iter().position(|s| *s == next).unwrap_or(0);
                    let ring = &stack[from..];
                    let low = (0..ring.len()).min_by_key(|&i| ring[i]).unwrap_or(0);
                    let mut cycle: Vec<String> = ring[low..]
                        .iter()
                        .chain(&ring[..low])
                        .map(|s| s.to_string())
                        .collect();
                    cycle.push(cycle[0].clone());
                    found.insert(cycle);
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(id, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = BTreeSet::new();
    for (id, node) in nodes {
        if !node.kind.waits_for_input() && !marks.contains_key(id.as_str()) {
            visit(id, nodes, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The prompt names the shipped flows may use (fixed by the prompts
    /// list), and none else.
    pub(crate) const FLOW_PROMPTS: &[&str] = &[
        "welcome_12333",
        "choose_language",
        "menu_12333_main",
        "enter_id",
        "enter_pin",
        "wrong_pin",
        "too_many_attempts",
        "account_not_found",
        "balance_is",
        "last_paid_is",
        "no_payment_record",
        "lookup_failed",
        "invalid_input",
        "no_input",
        "goodbye",
        "welcome_12345",
        "opening_hours",
        "after_hours",
        "transfer_to_agent",
        "queue_unavailable",
        "voicemail_prompt",
        "beep",
        "thank_you",
        "please_hold",
        "repeat_hint",
        "main_menu_return",
    ];

    pub(crate) fn prompt_exists(_: Lang, name: &str) -> bool {
        FLOW_PROMPTS.contains(&name)
    }

    pub(crate) fn sql_ok(sql: &str) -> Result<(), String> {
        if sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
            Ok(())
        } else {
            Err("only SELECT".into())
        }
    }

    /// `config/flows` of this repository (from this file's path, so it
    /// works whatever the crate root).
    pub(crate) fn shipped_dir() -> PathBuf {
        let here = Path::new(file!());
        let root = here.ancestors().nth(3).unwrap_or(Path::new(""));
        root.join("config/flows")
    }

    pub(crate) fn shipped() -> FlowSet {
        match load_flows(&shipped_dir(), &prompt_exists, &sql_ok) {
            Ok(set) => set,
            Err(errs) => panic!(
                "{}",
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    fn parse(src: &str) -> Result<Flow, Vec<FlowError>> {
        parse_flow(
            Path::new("config/flows/t.toml"),
            src,
            &prompt_exists,
            &sql_ok,
        )
    }

    fn errors(src: &str) -> Vec<FlowError> {
        match parse(src) {
            Ok(f) => panic!("accepted: {f:?}"),
            Err(e) => e,
        }
    }

    /// A small valid flow; tests append or replace parts.
    const BASE: &str = r#"
dialed = ["100"]
start = "menu"

[nodes.menu]
kind = "menu"
prompts = ["menu_12333_main"]
options = { "1" = "bye" }
on_fail = "bye"

[nodes.bye]
kind = "hangup"
prompts = ["goodbye"]
"#;

    #[test]
    fn shipped_flows_load() {
        let set = shipped();
        let f = set.for_dialed("12333").unwrap();
        assert_eq!(f.name, "12333");
        assert_eq!(f.languages(), BTreeSet::from([Lang::Zh, Lang::En]));
        assert!(f.is_secret_var("pin") && !f.is_secret_var("id"));
        assert_eq!(set.for_dialed("12345").unwrap().name, "12345");
        // 12345 is the default flow.
        assert_eq!(set.for_dialed("96345").unwrap().name, "12345");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn shipped_flows_use_only_known_prompts() {
        // A prompt_exists without `repeat_hint` in English rejects 12333.
        let errs = load_flows(
            &shipped_dir(),
            &|l, n| prompt_exists(l, n) && !(l == Lang::En && n == "repeat_hint"),
            &sql_ok,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].file.ends_with("12333.toml"));
        assert_eq!(errs[0].key, "nodes.after_balance.prompts[1]");
        assert_eq!(
            errs[0].kind,
            FlowErrorKind::MissingPrompt {
                lang: Lang::En,
                name: "repeat_hint".into()
            }
        );
    }

    #[test]
    fn base_is_valid() {
        let f = parse(BASE).unwrap();
        assert_eq!(f.start, "menu");
        assert_eq!(f.language, Lang::Zh);
    }

    #[test]
    fn unknown_node_names_file_and_key() {
        let errs = errors(&BASE.replace(
            r#"options = { "1" = "bye" }"#,
            r#"options = { "1" = "balnce" }"#,
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            r#"config/flows/t.toml: nodes.menu.options."1": unknown node "balnce""#
        );
        let errs = errors(&format!(
            "{BASE}\n[nodes.p]\nkind = \"play\"\nprompts = [\"beep\"]\nnext = \"balnce\"\n"
        ));
        assert_eq!(
            errs[0].to_string(),
            r#"config/flows/t.toml: nodes.p.next: unknown node "balnce""#
        );
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let errs = errors("dialed = [\"1\"]\nstart = \"a\"\n[nodes.a\nkind = \"goto\"\n");
        assert_eq!(errs.len(), 1);
        match &errs[0].kind {
            FlowErrorKind::Syntax { line, column, .. } => {
                assert_eq!((*line, *column), (3, 9), "{}", errs[0])
            }
            other => panic!("{other:?}"),
        }
        assert!(errs[0]
            .to_string()
            .starts_with("config/flows/t.toml: TOML syntax error at line 3, column 9"));
    }

    #[test]
    fn unknown_kind_and_unknown_key() {
        let errs = errors(&format!(
            "{BASE}\n[nodes.x]\nkind = \"transfer\"\nnext = \"bye\"\n[nodes.y]\nkind = \"goto\"\nnxt = \"bye\"\n"
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].key, "nodes.x.kind");
        assert!(matches!(&errs[0].kind, FlowErrorKind::UnknownKind(k) if k == "transfer"));
        assert_eq!(errs[1].key, "nodes.y");
        assert!(
            errs[1].to_string().contains("unknown field `nxt`"),
            "{}",
            errs[1]
        );
        let errs = errors(&BASE.replace(
            "prompts = [\"menu_12333_main\"]",
            "prompts = \"menu_12333_main\"",
        ));
        assert_eq!(errs[0].key, "nodes.menu");
        assert!(errs[0].to_string().contains("invalid type"), "{}", errs[0]);
    }

    #[test]
    fn unknown_top_level_key() {
        let errs = errors(&BASE.replace("start = \"menu\"", "start = \"menu\"\nlanguge = \"en\""));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "");
        assert!(errs[0].to_string().contains("languge"), "{}", errs[0]);
    }

    #[test]
    fn start_node_must_exist() {
        let errs = errors(&BASE.replace("start = \"menu\"", "start = \"mneu\""));
        assert_eq!(errs[0].key, "start");
        assert_eq!(errs[0].kind, FlowErrorKind::MissingStart("mneu".into()));
        let errs = errors(&BASE.replace("start = \"menu\"", ""));
        assert_eq!(errs[0].kind, FlowErrorKind::NoStart);
    }

    #[test]
    fn prompts_are_checked_in_every_language_the_flow_can_be_in() {
        let only_zh = |l: Lang, n: &str| prompt_exists(l, n) && (l == Lang::Zh || n != "goodbye");
        // No language choice: only the default language is checked.
        assert!(parse_flow(Path::new("t.toml"), BASE, &only_zh, &sql_ok).is_ok());
        let en_default = BASE.replace("start =", "language = \"en\"\nstart =");
        let errs = parse_flow(Path::new("t.toml"), &en_default, &only_zh, &sql_ok).unwrap_err();
        assert_eq!(errs[0].key, "nodes.bye.prompts[0]");
        // With a set_language node, both.
        let both = format!(
            "{BASE}\n[nodes.en]\nkind = \"set_language\"\nlanguage = \"en\"\nnext = \"menu\"\n"
        )
        .replace(r#"{ "1" = "bye" }"#, r#"{ "1" = "bye", "2" = "en" }"#);
        let errs = parse_flow(Path::new("t.toml"), &both, &only_zh, &sql_ok).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "t.toml: nodes.bye.prompts[0]: prompt \"goodbye\" does not exist in en"
        );
        // Defaults count too.
        let errs = parse_flow(
            Path::new("t.toml"),
            BASE,
            &|l, n| prompt_exists(l, n) && n != "no_input",
            &sql_ok,
        )
        .unwrap_err();
        assert_eq!(errs[0].key, "nodes.menu.timeout_prompt");
    }

    #[test]
    fn loops_without_input_are_refused() {
        let src = format!(
            "{BASE}
[nodes.a]
kind = \"play\"
prompts = [\"beep\"]
next = \"b\"
[nodes.b]
kind = \"goto\"
next = \"c\"
[nodes.c]
kind = \"set_language\"
language = \"zh\"
next = \"a\"
[nodes.self]
kind = \"goto\"
next = \"self\"
[nodes.through_menu]
kind = \"play\"
prompts = [\"beep\"]
next = \"menu\"
"
        )
        .replace(
            r#"{ "1" = "bye" }"#,
            r#"{ "1" = "bye", "2" = "a", "3" = "self", "4" = "through_menu" }"#,
        );
        let errs = errors(&src);
        let loops: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            loops,
            [
                "config/flows/t.toml: nodes.a: loop with no input: a -> b -> c -> a",
                "config/flows/t.toml: nodes.self: loop with no input: self -> self",
            ]
        );
    }

    #[test]
    fn menu_keys_must_be_dtmf() {
        let errs = errors(&BASE.replace(
            r#"options = { "1" = "bye" }"#,
            r#"options = { "1" = "bye", "11" = "bye", "x" = "bye" }
repeat_key = "1""#,
        ));
        let got: Vec<(&str, &FlowErrorKind)> =
            errs.iter().map(|e| (e.key.as_str(), &e.kind)).collect();
        assert_eq!(
            got,
            [
                (
                    "nodes.menu.options.\"11\"",
                    &FlowErrorKind::NotDtmf("11".into())
                ),
                (
                    "nodes.menu.options.\"x\"",
                    &FlowErrorKind::NotDtmf("x".into())
                ),
                (
                    "nodes.menu.repeat_key",
                    &FlowErrorKind::BadValue("the repeat key is also an option".into())
                ),
            ]
        );
    }

    #[test]
    fn collect_min_over_max_and_terminator() {
        let src = format!(
            "{BASE}
[nodes.c]
kind = \"collect\"
prompts = [\"enter_pin\"]
var = \"pin\"
min = 8
max = 6
terminator = \"5\"
next = \"bye\"
on_fail = \"bye\"
"
        );
        let errs = errors(&src);
        let got: Vec<(&str, &FlowErrorKind)> =
            errs.iter().map(|e| (e.key.as_str(), &e.kind)).collect();
        assert_eq!(
            got[0],
            ("nodes.c.min", &FlowErrorKind::MinOverMax { min: 8, max: 6 })
        );
        assert_eq!(got[1].0, "nodes.c.terminator");
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn calendars_time_zones_and_hours() {
        let src = format!(
            "{BASE}
[calendars.agents]
timezone = \"Asia/Shangai\"
daily = [\"08:00-20:00\", \"8-20\"]
[nodes.h]
kind = \"hours\"
calendar = \"agents\"
open = \"bye\"
closed = \"bye\"
[nodes.h2]
kind = \"hours\"
calendar = \"staff\"
open = \"bye\"
closed = \"bye\"
"
        );
        let errs = errors(&src);
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "config/flows/t.toml: calendars.agents.timezone: unknown time zone \"Asia/Shangai\" (use an IANA name such as \"Asia/Shanghai\")",
                "config/flows/t.toml: calendars.agents.daily[1]: bad hours \"8-20\" (expected \"HH:MM-HH:MM\", e.g. \"08:00-12:00\")",
                "config/flows/t.toml: nodes.h2.calendar: unknown calendar \"staff\"",
            ]
        );
        assert!(matches!(
            errs[0].kind,
            FlowErrorKind::Hours(HoursError::BadTimezone(_))
        ));
    }

    #[test]
    fn lookup_sql_and_params() {
        let node = |sql: &str, params: &str| {
            format!(
                "{BASE}
[nodes.l]
kind = \"lookup\"
sql = \"{sql}\"
params = {params}
found = \"bye\"
not_found = \"bye\"
error = \"bye\"
max_attempts = 3
"
            )
        };
        let errs = errors(&node("DELETE FROM t WHERE a = $1", "[\"a\"]"));
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "config/flows/t.toml: nodes.l.exhausted: `max_attempts` needs `exhausted`",
                "config/flows/t.toml: nodes.l.sql: bad look-up SQL: only SELECT",
            ]
        );
        let errs = errors(
            &node("SELECT a FROM t WHERE a = $1 AND b = $2", "[\"a\"]")
                .replace("max_attempts = 3", ""),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "nodes.l.params");
        assert_eq!(
            errs[0].kind,
            FlowErrorKind::ParamCount { sql: 2, params: 1 }
        );
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let src = BASE
            .replace("start = \"menu\"", "start = \"nowhere\"")
            .replace(r#""1" = "bye""#, r#""1" = "gone", "xx" = "bye""#)
            .replace("[\"goodbye\"]", "[\"goodbye\", \"no_such_prompt\"]");
        let errs = errors(&src);
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "start",
                "nodes.bye.prompts[1]",
                "nodes.menu.options.\"1\"",
                "nodes.menu.options.\"xx\"",
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn numbers_are_claimed_once_and_one_default() {
        let a = parse(BASE).unwrap();
        let mut b = parse(&BASE.replace(
            "dialed = [\"100\"]",
            "dialed = [\"200\", \"100\"]\ndefault = true",
        ))
        .unwrap();
        b.file = PathBuf::from("config/flows/b.toml");
        let mut c = parse(&BASE.replace("dialed = [\"100\"]", "default = true")).unwrap();
        c.file = PathBuf::from("config/flows/c.toml");
        let errs = FlowSet::new(vec![a.clone(), b.clone(), c]).unwrap_err();
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "config/flows/b.toml: dialed[1]: number \"100\" is already claimed by config/flows/t.toml",
                "config/flows/c.toml: default: a second default flow (the first is config/flows/b.toml)",
            ]
        );
        let set = FlowSet::new(vec![a]).unwrap();
        assert!(
            set.for_dialed("999").is_none(),
            "no default flow: unknown numbers get none"
        );
        let errs = errors(&BASE.replace("dialed = [\"100\"]", ""));
        assert_eq!(errs[0].key, "dialed");
    }

    #[test]
    fn load_flows_reports_files_and_folders() {
        let dir = std::env::temp_dir().join(format!("hotline-ivr-flows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let errs = load_flows(&dir, &prompt_exists, &sql_ok).unwrap_err();
        assert_eq!(errs[0].kind, FlowErrorKind::NoFlows);
        std::fs::write(dir.join("a.toml"), BASE).unwrap();
        std::fs::write(dir.join("b.toml"), "dialed = [").unwrap();
        std::fs::write(dir.join("c.toml"), BASE).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a flow").unwrap();
        let errs = load_flows(&dir, &prompt_exists, &sql_ok).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].file.ends_with("b.toml")
                && matches!(errs[0].kind, FlowErrorKind::Syntax { .. })
        );
        assert!(
            errs[1].file.ends_with("c.toml")
                && matches!(errs[1].kind, FlowErrorKind::DuplicateDialed { .. })
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let errs = load_flows(&dir, &prompt_exists, &sql_ok).unwrap_err();
        assert!(matches!(errs[0].kind, FlowErrorKind::Io(_)));
    }
}
