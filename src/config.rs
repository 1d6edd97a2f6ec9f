//! Typed configuration, read from one TOML file (`config/hotline.toml` by
//! default) and validated once at start-up. Every error names the file and the
//! key it is about, and all errors are reported together, so an operator can
//! fix a config in one pass (`hotline check-config`).
//!
//! Relative paths in the file (`prompts`, `flows`) are relative to the folder
//! the config file is in; `data_dir` is relative to the working directory.
//! Command-line flags override the file (see `Overrides`).

use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem in the configuration: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Dotted key path, e.g. `sip.trunks[0].addresses[1]`; empty for the
    /// file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// All the problems found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
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

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------
// The file as written (serde), with defaults.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    sip: FileSip,
    rtp: FileRtp,
    http: FileHttp,
    database: FileDatabase,
    paths: FilePaths,
    log: FileLog,
    clock: FileClock,
    registrar: FileRegistrar,
    acd: crate::acd::AcdConfig,
    qc: crate::qc::QcConfig,
    recording: crate::recording::RecordingConfig,
    report: crate::kpi::ReportConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileRegistrar {
    realm: String,
    algorithms: Vec<String>,
    min_expires: u32,
    max_expires: u32,
    default_expires: u32,
    max_contacts: usize,
    max_bindings_per_source: usize,
    keepalive_secs: u64,
    users: Vec<FileSipUser>,
}

impl Default for FileRegistrar {
    fn default() -> Self {
        FileRegistrar {
            realm: "hotline".into(),
            algorithms: vec!["MD5".into()],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 3,
            max_bindings_per_source: 1000,
            keepalive_secs: 30,
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSipUser {
    user: String,
    ha1_md5: Option<String>,
    ha1_sha256: Option<String>,
    /// May dial the live-monitor codes (`*31`/`*32`/`*33` + extension).
    #[serde(default)]
    monitor: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileClock {
    start: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileSip {
    listen: String,
    advertised_address: Option<String>,
    transports: Vec<String>,
    user_agent: String,
    max_calls: usize,
    max_calls_per_user: usize,
    max_calls_per_source: usize,
    answer_delay_ms: u64,
    max_message_bytes: usize,
    trunks: Vec<FileTrunk>,
    outbound: Option<FileOutbound>,
    guard: FileGuard,
}

/// `[sip.guard]`: per-source rate limits and bans (scanners, floods,
/// password guessing); trunks are exempt.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileGuard {
    rate_per_sec: u32,
    burst: u32,
    max_failures: u32,
    ban_secs: u64,
    max_sources: usize,
}

impl Default for FileGuard {
    fn default() -> Self {
        let d = crate::sip::source_guard::GuardConfig::default();
        FileGuard {
            rate_per_sec: d.rate_per_sec,
            burst: d.burst,
            max_failures: d.max_failures,
            ban_secs: d.ban.as_secs(),
            max_sources: d.max_sources,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutbound {
    address: String,
    #[serde(default = "default_outbound_transport")]
    transport: String,
    from_number: String,
    #[serde(default)]
    prefix: String,
}

fn default_outbound_transport() -> String {
    "udp".into()
}

impl Default for FileSip {
    fn default() -> Self {
        FileSip {
            listen: "0.0.0.0:5060".into(),
            advertised_address: None,
            transports: vec!["udp".into(), "tcp".into()],
            user_agent: format!("hotline/{}", env!("CARGO_PKG_VERSION")),
            max_calls: 4000,
            max_calls_per_user: 4,
            max_calls_per_source: 200,
            answer_delay_ms: 0,
            max_message_bytes: 65_535,
            trunks: Vec::new(),
            outbound: None,
            guard: FileGuard::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTrunk {
    name: String,
    addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileRtp {
    address: String,
    advertised_address: Option<String>,
    ports: String,
    timeout_secs: u64,
    inband_dtmf: String,
    /// Absent: one per CPU.
    media_threads: Option<usize>,
    realtime_priority: u8,
    media_nap_us: u64,
}

impl Default for FileRtp {
    fn default() -> Self {
        FileRtp {
            address: "0.0.0.0".into(),
            advertised_address: None,
            ports: "20000-29999".into(),
            timeout_secs: 30,
            inband_dtmf: "auto".into(),
            media_threads: None,
            realtime_priority: DEFAULT_REALTIME_PRIORITY,
            media_nap_us: 250,
        }
    }
}

/// The media threads' `SCHED_RR` priority unless configured (1–99; the
/// kernel's own threads that must preempt it, such as its watchdogs, run at
/// 99 or 50).
pub const DEFAULT_REALTIME_PRIORITY: u8 = 10;
/// More media threads than this is a typing error, not a machine.
const MAX_MEDIA_THREADS: usize = 256;
/// A longer nap than this would be heard (RTP frames are 20 ms).
const MAX_MEDIA_NAP_US: u64 = 5_000;

/// The shortest HTTP API token accepted (a guessable token is no lock).
const MIN_API_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileHttp {
    listen: String,
    api_tokens: Vec<String>,
}

impl Default for FileHttp {
    fn default() -> Self {
        FileHttp {
            listen: "127.0.0.1:8080".into(),
            api_tokens: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileDatabase {
    url: Option<String>,
    seed_demo: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FilePaths {
    data_dir: String,
    prompts: String,
    flows: String,
}

impl Default for FilePaths {
    fn default() -> Self {
        FilePaths {
            data_dir: "data".into(),
            prompts: "../prompts".into(),
            flows: "flows".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileLog {
    filter: String,
    format: String,
}

impl Default for FileLog {
    fn default() -> Self {
        FileLog {
            filter: "info".into(),
            format: "text".into(),
        }
    }
}

// ---------------------------------------------------------------------------
// The validated configuration the daemon runs on.
// ---------------------------------------------------------------------------

/// An IP network in CIDR form, e.g. `192.0.2.0/24` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 address may arrive as IPv4-mapped IPv6 on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A carrier trunk or PSTN gateway trusted to send calls without
/// authentication, identified by its source addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub networks: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct SipConfig {
    pub listen: SocketAddr,
    /// The address put in Via, Contact and our own URIs (defaults to the
    /// listen address, or 127.0.0.1 when listening on every interface).
    pub advertised: IpAddr,
    pub udp: bool,
    pub tcp: bool,
    pub user_agent: String,
    pub max_calls: usize,
    /// Softphone calls up at once per authenticated user, and per source
    /// address (trunks' calls are not counted); more get 403.
    pub call_limits: crate::call::call_limits::CallLimitConfig,
    /// Ring for this long (180 Ringing) before answering; 0 answers at once.
    pub answer_delay: Duration,
    pub max_message_bytes: usize,
    pub trunks: Vec<Trunk>,
    /// The trunk callbacks to citizens go out through; none: no callbacks.
    pub outbound: Option<OutboundTrunk>,
    /// `[sip.guard]`.
    pub guard: crate::sip::source_guard::GuardConfig,
}

/// The carrier trunk or PSTN gateway the daemon calls citizens through
/// (callbacks): INVITEs go to `address` over `transport`, with the
/// hotline's `from_number` as the caller, to `prefix` + the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTrunk {
    pub address: SocketAddr,
    pub transport: crate::sip::transport::TransportKind,
    pub from_number: String,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct RtpConfig {
    pub bind: IpAddr,
    /// The address put in SDP.
    pub advertised: IpAddr,
    pub port_low: u16,
    pub port_high: u16,
    /// A call whose RTP stops for this long is hung up.
    pub timeout: Duration,
    pub inband_dtmf: InbandDtmf,
    /// Threads that run the calls' RTP (crate::media::media_threads); 0:
    /// none, media runs on the main runtime (embedded daemons, tests).
    pub media_threads: usize,
    /// `SCHED_RR` priority the media threads ask for; 0: normal priority.
    pub realtime_priority: u8,
    /// How long a media thread naps before it waits for packets again.
    pub media_nap: Duration,
}

/// When to listen for DTMF tones in the received audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InbandDtmf {
    /// Only when the caller did not negotiate telephone-event (RFC 4733):
    /// a gateway that offers RFC 4733 sends digits that way.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub file: PathBuf,
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub http_listen: SocketAddr,
    /// Bearer tokens for `/api/`; empty: the API is open (listen on
    /// loopback only then).
    pub api_tokens: Vec<String>,
    pub database_url: String,
    /// Create the 12333 demo accounts at start (the shipped config does).
    pub seed_demo: bool,
    pub data_dir: PathBuf,
    pub prompts_dir: PathBuf,
    pub flows_dir: PathBuf,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// For tests and demos: the wall clock starts at this time.
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
    pub registrar: RegistrarSettings,
    /// Agents and queues (checked: `Acd::new` accepts it).
    pub acd: crate::acd::AcdConfig,
    /// Quality control: sampling, scorecards, disputes (`[qc]`).
    pub qc: crate::qc::QcConfig,
    /// Call recording (`[recording]`).
    pub recording: crate::recording::RecordingConfig,
    /// The KPIs' thresholds and time zone (`[report]`).
    pub report: crate::kpi::ReportConfig,
    /// Things that work but may surprise (shown by `check-config` and
    /// logged at start).
    pub warnings: Vec<String>,
}

/// A softphone user (an agent's extension) and its stored digest hashes:
/// HA1 = H(user:realm:password), never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUser {
    pub user: String,
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    /// May dial the live-monitor codes (QC, team leads).
    pub monitor: bool,
}

/// Registration of agents' softphones (digest-authenticated).
#[derive(Debug, Clone)]
pub struct RegistrarSettings {
    pub realm: String,
    /// Offered in this order of preference (SHA-256 before MD5).
    pub algorithms: Vec<crate::sip::digest::Algorithm>,
    pub limits: crate::sip::registrar::RegistrarConfig,
    /// OPTIONS keep-alive to every binding this often; 0 = off.
    pub keepalive_secs: u64,
    pub users: Vec<SipUser>,
}

/// Values given on the command line; each replaces the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sip_listen: Option<String>,
    pub http_listen: Option<String>,
    pub database: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub rtp_ports: Option<String>,
}

impl Config {
    /// Reads and validates `path`, applying `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Config::from_toml(path, &text, overrides)
    }

    /// Validates `text` as if read from `path`.
    pub fn from_toml(
        path: &Path,
        text: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigErrors> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let (key, message) = describe_toml_error(text, &e);
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                key,
                message,
            }])
        })?;
        let explicit_callback_keys = explicit_callback_keys(text);
        let mut v = Validator::new(path);
        v.explicit_callback_keys = explicit_callback_keys;
        v.run(file, overrides)
    }
}

/// How `log.filter` (and `HOTLINE_LOG`) are read: `RUST_LOG` syntax, but
/// the values in `target[span{field=value}]` directives match as literal
/// text, never as regular expressions. As a regular expression a value of
/// a few hundred bytes can make tracing build a DFA of gigabytes (found by
/// the `config` fuzz target, `fuzz/regressions/config/`), and tracing itself
/// advises against regexes in filters from outside the program.
pub fn log_filter_builder() -> tracing_subscriber::filter::Builder {
    tracing_subscriber::EnvFilter::builder().with_regex(false)
}

/// Indexes of the `[[acd.queues]]` that set `callback_key` themselves
/// (the file already parsed, so a parse error here cannot happen).
fn explicit_callback_keys(text: &str) -> Vec<usize> {
    let Ok(v) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    v.get("acd")
        .and_then(|a| a.get("queues"))
        .and_then(|q| q.as_array())
        .map(|qs| {
            qs.iter()
                .enumerate()
                .filter(|(_, q)| q.get("callback_key").is_some())
                .map(|(i, _)| i)
                .collect()
        })
        .unwrap_or_default()
}

/// Turns a toml/serde error into (key, message with line and column).
fn describe_toml_error(text: &str, e: &toml::de::Error) -> (String, String) {
    let msg = e.message().trim().to_string();
    let (line, col) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before
                .rsplit('\n')
                .next()
                .map(|l| l.chars().count())
                .unwrap_or(0)
                + 1;
            (line, col)
        }
        None => (0, 0),
    };
    let key = e
        .span()
        .and_then(|span| key_at_line(text, span.start))
        .unwrap_or_default();
    if line > 0 {
        (key, format!("{msg} (line {line}, column {col})"))
    } else {
        (key, msg)
    }
}

/// Best-effort dotted key for the line holding byte `pos`: the enclosing
/// `[table]` plus the key on that line.
fn key_at_line(text: &str, pos: usize) -> Option<String> {
    let mut table = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        }
        if pos < offset + line.len() {
            let key = trimmed.split('=').next().map(str::trim).unwrap_or("");
            let is_key = !trimmed.starts_with('[') && trimmed.contains('=') && !key.is_empty();
            return Some(match (table.is_empty(), is_key) {
                (_, false) => table,
                (true, true) => key.to_string(),
                (false, true) => format!("{table}.{key}"),
            });
        }
        offset += line.len();
    }
    None
}

struct Validator {
    file: PathBuf,
    base: PathBuf,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// Indexes of the `[[acd.queues]]` whose `callback_key` the file sets.
    explicit_callback_keys: Vec<usize>,
}

impl Validator {
    fn new(path: &Path) -> Self {
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Validator {
            file: path.to_path_buf(),
            base,
            errors: Vec::new(),
            warnings: Vec::new(),
            explicit_callback_keys: Vec::new(),
        }
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn socket_addr(&mut self, key: &str, value: &str, default: SocketAddr) -> SocketAddr {
        match value.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.error(
                    key,
                    format!("{value:?} is not an ADDRESS:PORT (e.g. 0.0.0.0:5060 or [::]:5060)"),
                );
                default
            }
        }
    }

    fn ip(&mut self, key: &str, value: &str) -> Option<IpAddr> {
        match value.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(key, format!("{value:?} is not an IP address"));
                None
            }
        }
    }

    fn run(mut self, f: FileConfig, o: &Overrides) -> Result<Config, ConfigErrors> {
        let any4: SocketAddr = "0.0.0.0:5060".parse().expect("literal");
        let (sip_listen_key, sip_listen_val) = match &o.sip_listen {
            Some(v) => ("--sip-listen", v.clone()),
            None => ("sip.listen", f.sip.listen.clone()),
        };
        let sip_listen = self.socket_addr(sip_listen_key, &sip_listen_val, any4);
        let sip_advertised = match &f.sip.advertised_address {
            Some(a) => self.ip("sip.advertised_address", a),
            None => None,
        }
        .unwrap_or_else(|| default_advertised(sip_listen.ip()));

        let mut udp = false;
        let mut tcp = false;
        for (i, t) in f.sip.transports.iter().enumerate() {
            match t.to_ascii_lowercase().as_str() {
                "udp" => udp = true,
                "tcp" => tcp = true,
                other => self.error(
                    &format!("sip.transports[{i}]"),
                    format!("unknown transport {other:?} (expected \"udp\" or \"tcp\")"),
                ),
            }
        }
        if !udp && !tcp {
            self.error(
                "sip.transports",
                "at least one of \"udp\" and \"tcp\" is needed",
            );
        }
        if f.sip.max_calls == 0 {
            self.error("sip.max_calls", "must be at least 1");
        }
        if f.sip.max_calls_per_user == 0 {
            self.error("sip.max_calls_per_user", "must be at least 1");
        }
        if f.sip.max_calls_per_source == 0 {
            self.error("sip.max_calls_per_source", "must be at least 1");
        }
        if f.sip.max_message_bytes < 1500 || f.sip.max_message_bytes > 65_535 {
            self.error("sip.max_message_bytes", "must be between 1500 and 65535");
        }
        let g = &f.sip.guard;
        if g.rate_per_sec == 0 {
            self.error("sip.guard.rate_per_sec", "must be at least 1");
        }
        if g.burst == 0 {
            self.error("sip.guard.burst", "must be at least 1");
        }
        if g.ban_secs == 0 || g.ban_secs > 7 * 86_400 {
            self.error(
                "sip.guard.ban_secs",
                "must be between 1 and 604800 (a week)",
            );
        }
        if g.max_sources < 100 {
            self.error("sip.guard.max_sources", "must be at least 100");
        }
        let mut trunks = Vec::new();
        for (i, t) in f.sip.trunks.iter().enumerate() {
            if t.name.trim().is_empty() {
                self.error(&format!("sip.trunks[{i}].name"), "must not be empty");
            }
            if t.addresses.is_empty() {
                self.error(
                    &format!("sip.trunks[{i}].addresses"),
                    "list at least one address or network",
                );
            }
            let mut networks = Vec::new();
            for (j, a) in t.addresses.iter().enumerate() {
                match IpNet::parse(a) {
                    Ok(n) => networks.push(n),
                    Err(e) => self.error(&format!("sip.trunks[{i}].addresses[{j}]"), e),
                }
            }
            trunks.push(Trunk {
                name: t.name.clone(),
                networks,
            });
        }

        let rtp_bind = self
            .ip("rtp.address", &f.rtp.address)
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let rtp_advertised = match &f.rtp.advertised_address {
            Some(a) => self.ip("rtp.advertised_address", a),
            None => None,
        }
        .unwrap_or_else(|| {
            if rtp_bind.is_unspecified() {
                sip_advertised
            } else {
                rtp_bind
            }
        });
        let (ports_key, ports_val) = match &o.rtp_ports {
            Some(v) => ("--rtp-ports", v.clone()),
            None => ("rtp.ports", f.rtp.ports.clone()),
        };
        let (port_low, port_high) = match parse_port_range(&ports_val) {
            Ok(r) => r,
            Err(e) => {
                self.error(ports_key, e);
                (20000, 29999)
            }
        };
        if f.rtp.timeout_secs == 0 {
            self.error("rtp.timeout_secs", "must be at least 1");
        }
        let inband_dtmf = match f.rtp.inband_dtmf.as_str() {
            "auto" => InbandDtmf::Auto,
            "always" => InbandDtmf::Always,
            "never" => InbandDtmf::Never,
            other => {
                self.error(
                    "rtp.inband_dtmf",
                    format!("{other:?}: expected \"auto\", \"always\" or \"never\""),
                );
                InbandDtmf::Auto
            }
        };
        let media_threads = f.rtp.media_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if media_threads > MAX_MEDIA_THREADS {
            self.error(
                "rtp.media_threads",
                format!(
                    "{media_threads}: at most {MAX_MEDIA_THREADS} (0: none, absent: one per CPU)"
                ),
            );
        }
        if f.rtp.media_nap_us > MAX_MEDIA_NAP_US {
            self.error(
                "rtp.media_nap_us",
                format!(
                    "{} µs: at most {MAX_MEDIA_NAP_US} (each µs is delay added to relayed audio)",
                    f.rtp.media_nap_us
                ),
            );
        }
        if f.rtp.realtime_priority > 99 {
            self.error(
                "rtp.realtime_priority",
                format!(
                    "{}: a SCHED_RR priority is 1 to 99 (0: normal priority)",
                    f.rtp.realtime_priority
                ),
            );
        }

        let (http_key, http_val) = match &o.http_listen {
            Some(v) => ("--http-listen", v.clone()),
            None => ("http.listen", f.http.listen.clone()),
        };
        let http_listen = self.socket_addr(
            http_key,
            &http_val,
            "127.0.0.1:8080".parse().expect("literal"),
        );

        for (i, t) in f.http.api_tokens.iter().enumerate() {
            if t.len() < MIN_API_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
                self.error(
                    &format!("http.api_tokens[{i}]"),
                    format!(
                        "a token is at least {MIN_API_TOKEN_LEN} printable ASCII characters \
                         without spaces"
                    ),
                );
            }
        }

        let data_dir = o
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(&f.paths.data_dir));
        let database_url = o
            .database
            .clone()
            .or(f.database.url.clone())
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("hotline.db").display()));
        let db_key = if o.database.is_some() {
            "--database"
        } else {
            "database.url"
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            self.error(
                db_key,
                format!("{database_url:?}: expected sqlite:PATH or postgres://USER@HOST:PORT/DB"),
            );
        }

        let prompts_dir = self.base.join(&f.paths.prompts);
        if !prompts_dir.is_dir() {
            self.error(
                "paths.prompts",
                format!("{} is not a folder", prompts_dir.display()),
            );
        }
        let flows_dir = self.base.join(&f.paths.flows);
        if !flows_dir.is_dir() {
            self.error(
                "paths.flows",
                format!("{} is not a folder", flows_dir.display()),
            );
        }

        let log_format = match f.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                self.error(
                    "log.format",
                    format!("{other:?}: expected \"text\" or \"json\""),
                );
                LogFormat::Text
            }
        };
        if let Err(e) = log_filter_builder().parse(&f.log.filter) {
            self.error("log.filter", format!("{e}"));
        }

        let registrar = self.registrar(&f.registrar);
        self.acd(&f.acd, &registrar);
        if let Err(errs) = f.recording.validate() {
            for e in errs {
                self.error(&format!("recording.{}", e.key), e.message);
            }
        }
        if let Err(errs) = f.qc.validate() {
            for e in errs {
                self.error(&format!("qc.{}", e.key), e.message);
            }
        }
        self.qc_queues(&f.qc, &f.acd);
        if let Err(errs) = f.report.validate() {
            for e in errs {
                self.error(&format!("report.{}", e.key), e.message);
            }
        }
        let outbound = self.outbound(f.sip.outbound.as_ref());
        let mut acd = f.acd;
        // A trunk with errors is reported as such, not as missing.
        self.callbacks(&mut acd, f.sip.outbound.is_some());
        let clock_start = match &f.clock.start {
            None => None,
            Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(e) => {
                    self.error(
                        "clock.start",
                        format!("{t:?} is not an RFC 3339 time ({e})"),
                    );
                    None
                }
            },
        };

        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        Ok(Config {
            file: self.file,
            sip: SipConfig {
                listen: sip_listen,
                advertised: sip_advertised,
                udp,
                tcp,
                user_agent: f.sip.user_agent,
                max_calls: f.sip.max_calls,
                call_limits: crate::call::call_limits::CallLimitConfig {
                    per_user: f.sip.max_calls_per_user,
                    per_source: f.sip.max_calls_per_source,
                },
                answer_delay: Duration::from_millis(f.sip.answer_delay_ms),
                max_message_bytes: f.sip.max_message_bytes,
                trunks,
                outbound,
                guard: crate::sip::source_guard::GuardConfig {
                    rate_per_sec: f.sip.guard.rate_per_sec,
                    burst: f.sip.guard.burst,
                    max_failures: f.sip.guard.max_failures,
                    ban: Duration::from_secs(f.sip.guard.ban_secs),
                    max_sources: f.sip.guard.max_sources,
                },
            },
            rtp: RtpConfig {
                bind: rtp_bind,
                advertised: rtp_advertised,
                port_low,
                port_high,
                timeout: Duration::from_secs(f.rtp.timeout_secs),
                inband_dtmf,
                media_threads: media_threads.min(MAX_MEDIA_THREADS),
                realtime_priority: f.rtp.realtime_priority.min(99),
                media_nap: Duration::from_micros(f.rtp.media_nap_us),
            },
            http_listen,
            api_tokens: f.http.api_tokens,
            database_url,
            seed_demo: f.database.seed_demo,
            data_dir,
            prompts_dir,
            flows_dir,
            log_filter: f.log.filter,
            log_format,
            clock_start,
            registrar,
            acd,
            qc: f.qc,
            recording: f.recording,
            report: f.report,
            warnings: self.warnings,
        })
    }

    /// The ACD's own checks, under `acd.`; and every agent's extension must
    /// be a registrar user, or its softphone could never register.
    fn acd(&mut self, acd: &crate::acd::AcdConfig, registrar: &RegistrarSettings) {
        if let Err(errs) = acd.validate() {
            for e in errs.0 {
                self.error(&format!("acd.{}", e.key), e.message);
            }
        }
        for (i, a) in acd.agents.iter().enumerate() {
            if !registrar.users.iter().any(|u| u.user == a.extension) {
                self.error(
                    &format!("acd.agents[{i}].extension"),
                    format!(
                        "{:?} is not a [[registrar.users]] user: its softphone could not register",
                        a.extension
                    ),
                );
            }
        }
    }

    /// A sampling rule's queues must be queues of `[[acd.queues]]` (or an
    /// agent's own, `agent:ID`): a misspelt one would sample nothing.
    fn qc_queues(&mut self, qc: &crate::qc::QcConfig, acd: &crate::acd::AcdConfig) {
        let known = acd.with_personal_queues();
        for (i, r) in qc.sampling.rules.iter().enumerate() {
            for (j, q) in r.queues.iter().flatten().enumerate() {
                if !q.trim().is_empty() && !known.queues.iter().any(|k| &k.name == q) {
                    self.error(
                        &format!("qc.sampling.rules[{i}].queues[{j}]"),
                        format!("{q:?} is not a queue of [[acd.queues]]"),
                    );
                }
            }
        }
    }

    /// `[sip.outbound]`: the trunk callbacks go out through.
    fn outbound(&mut self, o: Option<&FileOutbound>) -> Option<OutboundTrunk> {
        use crate::sip::transport::TransportKind;
        let o = o?;
        let before = self.errors.len();
        let address = match o.address.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_unspecified() && a.port() != 0 => Some(a),
            _ => {
                self.error(
                    "sip.outbound.address",
                    format!(
                        "{:?} is not an IP address and port (e.g. \"198.51.100.20:5060\")",
                        o.address
                    ),
                );
                None
            }
        };
        let transport = match o.transport.to_ascii_lowercase().as_str() {
            "udp" => TransportKind::Udp,
            "tcp" => TransportKind::Tcp,
            other => {
                self.error(
                    "sip.outbound.transport",
                    format!("unknown transport {other:?} (expected \"udp\" or \"tcp\")"),
                );
                TransportKind::Udp
            }
        };
        let digits = |s: &str, plus: bool| {
            let d = if plus {
                s.strip_prefix('+').unwrap_or(s)
            } else {
                s
            };
            d.bytes().all(|b| b.is_ascii_digit())
        };
        if o.from_number.is_empty() || o.from_number.len() > 32 || !digits(&o.from_number, true) {
            self.error(
                "sip.outbound.from_number",
                "must be the hotline's number: 1 to 32 digits, optionally after '+'",
            );
        }
        if o.prefix.len() > 8 || !digits(&o.prefix, true) {
            self.error(
                "sip.outbound.prefix",
                "must be at most 8 digits (optionally after '+'), or empty",
            );
        }
        if self.errors.len() != before {
            return None;
        }
        Some(OutboundTrunk {
            address: address?,
            transport,
            from_number: o.from_number.clone(),
            prefix: o.prefix.clone(),
        })
    }

    /// Callbacks need an outbound trunk: without one a queue's default
    /// `callback_key` is disabled (a warning), one the file sets is an
    /// error. The retry schedule is checked here too.
    fn callbacks(&mut self, acd: &mut crate::acd::AcdConfig, have_trunk: bool) {
        let retries = &acd.settings.callback_retry_minutes;
        if retries.len() > 10 {
            self.error("acd.settings.callback_retry_minutes", "at most 10 retries");
        }
        if let Some(i) = retries.iter().position(|&m| m == 0 || m > 7 * 24 * 60) {
            self.error(
                &format!("acd.settings.callback_retry_minutes[{i}]"),
                "must be 1 to 10080 minutes",
            );
        }
        if have_trunk {
            return;
        }
        let mut disabled = Vec::new();
        for (i, q) in acd.queues.iter_mut().enumerate() {
            if q.callback_key.is_empty() {
                continue;
            }
            if self.explicit_callback_keys.contains(&i) {
                self.error(
                    &format!("acd.queues[{i}].callback_key"),
                    "callbacks need an outbound trunk: configure [sip.outbound] or set callback_key = \"\"",
                );
            } else {
                disabled.push(q.name.clone());
                q.callback_key.clear();
            }
        }
        if !disabled.is_empty() {
            self.warnings.push(format!(
                "no [sip.outbound] trunk: the callback key is disabled in queue(s) {}",
                disabled.join(", ")
            ));
        }
    }

    fn registrar(&mut self, r: &FileRegistrar) -> RegistrarSettings {
        use crate::sip::digest::Algorithm;
        if r.realm.trim().is_empty() || r.realm.contains('"') {
            self.error("registrar.realm", "must be a non-empty name without quotes");
        }
        let mut algorithms = Vec::new();
        for (i, a) in r.algorithms.iter().enumerate() {
            match Algorithm::parse(a) {
                Some(alg) if !alg.is_sess() => algorithms.push(alg),
                _ => self.error(
                    &format!("registrar.algorithms[{i}]"),
                    format!("{a:?}: expected \"MD5\" or \"SHA-256\""),
                ),
            }
        }
        if r.algorithms.is_empty() {
            self.error(
                "registrar.algorithms",
                "list at least one of \"MD5\", \"SHA-256\"",
            );
        }
        if r.min_expires == 0 || r.min_expires > r.max_expires {
            self.error(
                "registrar.min_expires",
                "must be at least 1 and at most max_expires",
            );
        }
        if r.max_bindings_per_source == 0 {
            self.error("registrar.max_bindings_per_source", "must be at least 1");
        }
        if r.max_contacts == 0 {
            self.error("registrar.max_contacts", "must be at least 1");
        }
        let mut users = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, u) in r.users.iter().enumerate() {
            let key = format!("registrar.users[{i}]");
            if u.user.is_empty()
                || !u
                    .user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                self.error(
                    &format!("{key}.user"),
                    format!("{:?}: letters, digits, - _ . only", u.user),
                );
            }
            if !seen.insert(u.user.clone()) {
                self.error(
                    &format!("{key}.user"),
                    format!("{:?} is listed twice", u.user),
                );
            }
            for (field, value, len) in [
                ("ha1_md5", &u.ha1_md5, 32),
                ("ha1_sha256", &u.ha1_sha256, 64),
            ] {
                if let Some(v) = value {
                    if v.len() != len || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                        self.error(
                            &format!("{key}.{field}"),
                            format!("must be {len} hex digits (see `hotline ha1`)"),
                        );
                    }
                }
            }
            if u.ha1_md5.is_none() && u.ha1_sha256.is_none() {
                self.error(&key, "needs ha1_md5 or ha1_sha256 (see `hotline ha1`)");
            }
            users.push(SipUser {
                user: u.user.clone(),
                ha1_md5: u.ha1_md5.as_ref().map(|s| s.to_ascii_lowercase()),
                ha1_sha256: u.ha1_sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                monitor: u.monitor,
            });
        }
        RegistrarSettings {
            realm: r.realm.clone(),
            algorithms,
            limits: crate::sip::registrar::RegistrarConfig {
                min_expires: r.min_expires,
                max_expires: r.max_expires,
                default_expires: r.default_expires,
                max_contacts_per_aor: r.max_contacts,
                max_bindings_per_source: r.max_bindings_per_source,
            },
            keepalive_secs: r.keepalive_secs,
            users,
        }
    }
}

fn default_advertised(listen: IpAddr) -> IpAddr {
    if listen.is_unspecified() {
        if listen.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            "::1".parse().expect("literal")
        }
    } else {
        listen
    }
}

/// `LOW-HIGH`, both even-aligned to RTP/RTCP pairs, at least 2 ports.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a port range LOW-HIGH (e.g. 20000-29999)"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("{lo:?} is not a port number"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("{hi:?} is not a port number"))?;
    if lo < 1024 || hi <= lo {
        return Err(format!("{s:?}: need 1024 <= LOW < HIGH"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
        std::fs::create_dir_all(dir.path().join("conf/flows")).unwrap();
        let path = dir.path().join("conf/hotline.toml");
        Config::from_toml(&path, text, &Overrides::default())
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("").unwrap();
        assert_eq!(c.sip.listen.port(), 5060);
        assert!(c.sip.udp && c.sip.tcp);
        assert_eq!((c.rtp.port_low, c.rtp.port_high), (20000, 29999));
        assert!(c.database_url.starts_with("sqlite:"));
    }

    #[test]
    fn media_threads_default_to_one_per_cpu_at_real_time_and_are_checked() {
        let c = load("").unwrap();
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.rtp.media_threads, cpus);
        assert_eq!(c.rtp.realtime_priority, DEFAULT_REALTIME_PRIORITY);
        assert_eq!(c.rtp.media_nap, Duration::from_micros(250));
        let c =
            load("[rtp]\nmedia_threads = 0\nrealtime_priority = 0\nmedia_nap_us = 0\n").unwrap();
        assert_eq!(
            (
                c.rtp.media_threads,
                c.rtp.realtime_priority,
                c.rtp.media_nap
            ),
            (0, 0, Duration::ZERO)
        );
        let err =
            load("[rtp]\nmedia_threads = 1000\nrealtime_priority = 100\nmedia_nap_us = 20000\n")
                .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rtp.media_threads",
                "rtp.media_nap_us",
                "rtp.realtime_priority"
            ]
        );
        assert!(err.to_string().contains("1 to 99"), "{err}");
    }

    const QUEUE: &str = "[[acd.queues]]\nname = \"12345\"\n";

    #[test]
    fn without_a_trunk_the_default_callback_key_is_disabled_with_a_warning() {
        let cfg = load(QUEUE).unwrap();
        assert!(cfg.sip.outbound.is_none());
        assert_eq!(cfg.acd.queues[0].callback_key, "");
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("12345"), "{:?}", cfg.warnings);
        assert_eq!(cfg.acd.settings.callback_retry_minutes, [5, 15, 60]);
    }

    #[test]
    fn a_callback_key_set_without_a_trunk_is_an_error() {
        let err = load(&format!("{QUEUE}callback_key = \"2\"\n")).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["acd.queues[0].callback_key"]);
        assert!(err.to_string().contains("[sip.outbound]"), "{err}");
    }

    #[test]
    fn the_outbound_trunk_is_checked() {
        let cfg = load(&format!(
            "[sip.outbound]\naddress = \"198.51.100.20:5060\"\ntransport = \"tcp\"\nfrom_number = \"12345\"\nprefix = \"0\"\n{QUEUE}"
        ))
        .unwrap();
        let t = cfg.sip.outbound.expect("a trunk");
        assert_eq!(t.address, "198.51.100.20:5060".parse().unwrap());
        assert_eq!(t.transport, crate::sip::transport::TransportKind::Tcp);
        assert_eq!((t.from_number.as_str(), t.prefix.as_str()), ("12345", "0"));
        assert_eq!(cfg.acd.queues[0].callback_key, "2");
        assert!(cfg.warnings.is_empty());
        let err = load(
            "[sip.outbound]\naddress = \"gw\"\ntransport = \"sctp\"\nfrom_number = \"hotline\"\nprefix = \"9x\"\n[acd.settings]\ncallback_retry_minutes = [5, 0]\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sip.outbound.address",
                "sip.outbound.transport",
                "sip.outbound.from_number",
                "sip.outbound.prefix",
                "acd.settings.callback_retry_minutes[1]",
            ]
        );
    }

    #[test]
    fn qc_sampling_errors_carry_their_key_and_queues_must_exist() {
        let err = load(&format!(
            "{QUEUE}[qc.sampling]\nenabled = true\nschedule = \"25:00\"\n[[qc.sampling.rules]]\nname = \"complaints\"\nkind = \"queues\"\nqueues = [\"12345\", \"12345-complaints\"]\n"
        ))
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["qc.sampling.schedule", "qc.sampling.rules[0].queues[1]"]
        );
        assert!(
            err.to_string()
                .contains("hotline.toml: qc.sampling.rules[0].queues[1]: \"12345-complaints\""),
            "{err}"
        );
    }

    #[test]
    fn report_defaults_and_errors_name_their_key() {
        let c = load("").unwrap();
        assert_eq!(c.report, crate::kpi::ReportConfig::default());
        assert_eq!(
            (c.report.service_level_secs, c.report.short_abandon_secs),
            (15, 5)
        );
        assert_eq!(c.report.repeat_days, 3);
        let err = load(
            "[report]\ntimezone = \"Mars/Olympus\"\nservice_level_secs = 0\nrepeat_days = 400\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "report.timezone",
                "report.service_level_secs",
                "report.repeat_days"
            ]
        );
        assert!(
            err.to_string()
                .contains("hotline.toml: report.timezone: \"Mars/Olympus\" is not a time zone"),
            "{err}"
        );
        let err = load("[report]\nservice_level = 20\n").unwrap_err();
        assert_eq!(err.0[0].key, "report.service_level");
    }

    #[test]
    fn api_tokens_default_empty_and_short_ones_are_refused() {
        assert!(load("").unwrap().api_tokens.is_empty());
        let c = load("[http]\napi_tokens = [\"0123456789abcdef0123\"]\n").unwrap();
        assert_eq!(c.api_tokens, ["0123456789abcdef0123"]);
        let err = load("[http]\napi_tokens = [\"0123456789abcdef\", \"short\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.api_tokens[1]"), "{err}");
        assert!(!err.contains("http.api_tokens[0]"), "{err}");
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let err = load(
            r#"
[sip]
listen = "nonsense"
transports = ["udp", "sctp"]
[[sip.trunks]]
name = "gw"
addresses = ["10.0.0.0/33", "192.0.2.7"]
[rtp]
ports = "30000-20000"
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "sip.listen",
                "sip.transports[1]",
                "sip.trunks[0].addresses[0]",
                "rtp.ports"
            ]
        );
        assert!(
            err.to_string().contains("hotline.toml: sip.listen:"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_name_line_and_key() {
        let err = load("[sip]\nlisten = \"127.0.0.1:5060\"\nlisen = 3\n").unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].key, "sip.lisen");
        assert!(err.0[0].message.contains("line 3"), "{}", err.0[0].message);
    }

    #[test]
    fn overrides_replace_file_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
        std::fs::create_dir_all(dir.path().join("conf/flows")).unwrap();
        let path = dir.path().join("conf/hotline.toml");
        let o = Overrides {
            sip_listen: Some("127.0.0.1:15060".into()),
            rtp_ports: Some("40000-40100".into()),
            database: Some("postgres://postgres@127.0.0.1:5432/test".into()),
            ..Default::default()
        };
        let c = Config::from_toml(&path, "", &o).unwrap();
        assert_eq!(c.sip.listen, "127.0.0.1:15060".parse().unwrap());
        assert_eq!(c.sip.advertised, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((c.rtp.port_low, c.rtp.port_high), (40000, 40100));
        assert!(c.database_url.starts_with("postgres://"));
        let bad = Overrides {
            rtp_ports: Some("5".into()),
            ..Default::default()
        };
        let err = Config::from_toml(&path, "", &bad).unwrap_err();
        assert_eq!(err.0[0].key, "--rtp-ports");
    }

    /// Fuzz crasher (`config` target, out of memory): a `log.filter` field
    /// value that, compiled as a regular expression, grew past 7 GB in
    /// 12 minutes. Field values now match literally, so the file is
    /// checked at once (and still refused for its other errors).
    #[test]
    fn a_log_filter_field_value_is_not_compiled_as_a_regex() {
        let text = include_str!("../fuzz/regressions/config/log-filter-regex-dfa-oom.toml");
        let started = std::time::Instant::now();
        let err = load(text).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"log.format"), "{keys:?}");
        assert!(!keys.contains(&"log.filter"), "{keys:?}");
        let ok = load("[log]\nfilter = \"hotline=debug,[call{id=.*}]=trace\"\n").unwrap();
        assert_eq!(ok.log_filter, "hotline=debug,[call{id=.*}]=trace");
    }

    #[test]
    fn networks_match() {
        let n = IpNet::parse("192.0.2.0/24").unwrap();
        assert!(n.contains("192.0.2.99".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        let one = IpNet::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
