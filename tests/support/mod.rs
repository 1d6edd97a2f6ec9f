//! Test support: a daemon started in-process on 127.0.0.1 with ports chosen
//! by the OS, and a scripted SIP phone that calls it over real sockets.
//!
//! The phone speaks plain RFC 3261 over UDP or TCP, keeps RTP flowing (a
//! silence frame every 20 ms, like a real phone), sends digits as RFC 4733
//! events or SIP INFO, and works out which prompts it heard: every frame the
//! daemon sends is compared with the prompt store's own encoded frames, so
//! a test can assert the exact prompt sequence a caller heard.
//!
//! Everything runs on tokio time, so `#[tokio::test(start_paused = true)]`
//! walks a minute-long call in milliseconds.

#![allow(dead_code)]

pub mod agent;
pub mod daemon;
pub mod http;

use bytes::Bytes;
use hotline::config::{Config, Overrides};
use hotline::media::prompts::PromptStore;
use hotline::server::Server;
use hotline::sip::message::{Request, Response, SipMessage};
use hotline::sip::parse::{frame_stream, parse_message, Frame};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Options for a test daemon.
#[derive(Clone)]
pub struct ServerOptions {
    pub answer_delay_ms: u64,
    pub rtp_timeout_secs: u64,
    pub max_calls: usize,
    pub database: Option<String>,
    pub trunks: Vec<String>,
    /// Flows folder; the shipped `config/flows` by default.
    pub flows_dir: Option<PathBuf>,
    pub extra_toml: String,
    /// More keys of `[sip]` and of `[registrar]`.
    pub sip_toml: String,
    pub registrar_toml: String,
    /// `[http] api_tokens`.
    pub api_tokens: Vec<String>,
    /// `[rtp] media_threads`: 0 (the default here) runs RTP on the test's
    /// own runtime, so that paused time drives it too.
    pub media_threads: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            answer_delay_ms: 0,
            rtp_timeout_secs: 30,
            max_calls: 100,
            database: None,
            trunks: vec!["127.0.0.1/32".into(), "::1/128".into()],
            flows_dir: None,
            extra_toml: String::new(),
            sip_toml: String::new(),
            registrar_toml: String::new(),
            api_tokens: Vec::new(),
            media_threads: 0,
        }
    }
}

/// How many of `frames` are all `byte` (a `fill`ed stream heard).
pub fn has_frame(frames: &[[u8; 160]], byte: u8) -> usize {
    frames
        .iter()
        .filter(|f| f.iter().all(|b| *b == byte))
        .count()
}

/// A daemon running in this test's runtime.
pub struct TestServer {
    pub server: Server,
    /// The database the daemon writes to.
    pub database_url: String,
    pub dir: tempfile::TempDir,
    pub prompts: Arc<PromptStore>,
}

static PROMPTS: std::sync::OnceLock<Arc<PromptStore>> = std::sync::OnceLock::new();

/// The shipped prompts, loaded once per test binary.
pub fn prompts() -> Arc<PromptStore> {
    PROMPTS
        .get_or_init(|| {
            Arc::new(PromptStore::load(&repo().join("prompts")).expect("shipped prompts load"))
        })
        .clone()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(opts: ServerOptions) -> TestServer {
        if let Ok(filter) = std::env::var("HOTLINE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = isolated_config(dir.path(), opts).await;
        let database_url = cfg.database_url.clone();
        let server = Server::start(cfg).await.expect("test server starts");
        TestServer {
            server,
            database_url,
            dir,
            prompts: prompts(),
        }
    }

    pub fn sip_udp(&self) -> SocketAddr {
        self.server.sip_udp.expect("udp")
    }

    pub fn sip_tcp(&self) -> SocketAddr {
        self.server.sip_tcp.expect("tcp")
    }

    pub fn phone(&self) -> PhoneBuilder {
        PhoneBuilder::new(self.sip_udp(), self.prompts.clone())
    }

    /// The call's record, once the call task has written it (waits up to 10 s).
    pub async fn record(&self, call_id: &str) -> hotline::store::CallRecord {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            self.server.flush_records().await;
            if let Some(r) = self
                .server
                .store
                .call_record(call_id)
                .await
                .expect("store read")
            {
                return r;
            }
            if Instant::now() >= until {
                panic!("no call record for {call_id}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(self) {
        self.server.shutdown(Duration::from_secs(1)).await;
    }

    /// Shuts down with a drain time, keeping the folder (to read the
    /// database afterwards). Returns the folder.
    pub async fn shutdown_with_drain(self, drain: Duration) -> tempfile::TempDir {
        self.server.shutdown(drain).await;
        self.dir
    }
}

/// Samples of one channel of a stereo file.
pub fn channel(samples: &[i16], ch: usize) -> Vec<i16> {
    samples.iter().skip(ch).step_by(2).copied().collect()
}

/// The recordings of `call_id` once every one is finished (waits up to 10 s).
pub async fn finished_recordings(
    ts: &TestServer,
    call_id: &str,
) -> Vec<hotline::store::RecordingRow> {
    use hotline::store::{RecordingFilter, RecordingStatus};
    use tokio::time::Instant;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        ts.server.flush_records().await;
        let rows = ts
            .server
            .store
            .recordings(RecordingFilter {
                call_id: Some(call_id.to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        if !rows.is_empty() && rows.iter().all(|r| r.status != RecordingStatus::Recording) {
            return rows;
        }
        assert!(Instant::now() < until, "recording not finished: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A softphone (`phone`) rung by the daemon while `call`'s media goes on
/// (caller and `agent`): it answers and gets its ACK.
pub async fn answer_rung(
    phone: &mut agent::AgentPhone,
    call: &mut Call,
    agent: &mut agent::AgentPhone,
) {
    let secs = Duration::from_secs;
    tokio::select! {
        inv = phone.wait_invite(secs(10)) => { inv.expect("the softphone is rung"); }
        _ = async { tokio::join!(call.pump(secs(10)), agent.pump(secs(10))) } => panic!("no INVITE to the softphone"),
    }
    phone.answer().await;
    let (acked, _, _) = tokio::join!(
        phone.wait_ack(secs(5)),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert!(acked, "the answered leg is ACKed");
}

/// The live monitors started, from the audit log: (actor, object, detail).
pub async fn monitor_audit(ts: &TestServer) -> Vec<(String, String, String)> {
    ts.server.flush_records().await;
    ts.server
        .store
        .audit_log(hotline::store::AuditFilter {
            action: Some("monitor".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.actor,
                a.object.unwrap_or_default(),
                a.detail.unwrap_or_default(),
            )
        })
        .collect()
}

/// [`test_config`], on a database of the test's own: under
/// `HOTLINE_TEST_DATABASE=postgres://…` a fresh schema, so the agents, queue
/// events and recordings of parallel tests never meet.
pub async fn isolated_config(dir: &Path, mut opts: ServerOptions) -> Config {
    if opts.database.is_none() {
        if let Ok(admin) = std::env::var("HOTLINE_TEST_DATABASE") {
            if admin.starts_with("postgres") {
                opts.database = Some(fresh_pg_schema(&admin).await);
            }
        }
    }
    test_config(dir, &opts)
}

/// Agent `id`'s softphone (UDP), registered, once the ACD has the agent
/// `ready` (within 5 s; the agent needs `login_on_register = true`).
pub async fn ready_agent(ts: &TestServer, id: &str) -> agent::AgentPhone {
    let mut a = agent::AgentPhone::new(ts.sip_udp(), Transport::Udp, id).await;
    assert_eq!(a.register().await, 200, "{id} registers");
    let until = Instant::now() + Duration::from_secs(5);
    while !ts
        .server
        .acd()
        .snapshot()
        .await
        .expect("ACD snapshot")
        .agents
        .iter()
        .any(|x| x.id == id && x.state == "ready")
    {
        assert!(Instant::now() < until, "agent {id} not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a
}

/// A caller to 12345 that `agent` was rung for (within 30 s), answered
/// and had its 200 ACKed.
pub async fn answered_call(ts: &TestServer, agent: &mut agent::AgentPhone) -> Call {
    let mut call = ts.phone().build().await.call("12345").await;
    tokio::select! {
        inv = agent.wait_invite(Duration::from_secs(30)) => { inv.expect("the agent is rung"); }
        _ = call.pump(Duration::from_secs(30)) => panic!("no INVITE to the agent"),
    }
    agent.answer().await;
    assert!(
        agent.wait_ack(Duration::from_secs(5)).await,
        "the agent's 200 is ACKed"
    );
    call
}

/// A new empty schema in the PostgreSQL database at `admin`; the URL that
/// uses it (`search_path`).
async fn fresh_pg_schema(admin: &str) -> String {
    use sqlx::Connection;
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let schema = format!(
        "hotline_t_{}_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to HOTLINE_TEST_DATABASE");
    // The schema name is made here, not taken from input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let _ = conn.close().await;
    let sep = if admin.contains('?') { '&' } else { '?' };
    format!("{admin}{sep}options[search_path]={schema}")
}

/// A config for a test daemon: everything on 127.0.0.1, ports from the OS,
/// the shipped prompts and flows, a fresh SQLite file.
/// The queues 12345 (ring timeout 5 s) and 12333 (refuses without agents)
/// and agent 1001 in 12345 (wrap-up 5 s, logged in when it registers).
pub const AGENT_1001: &str = r#"
[[acd.queues]]
name = "12345"
ring_timeout_secs = 5
[[acd.queues]]
name = "12333"
when_no_agents = "refuse"
[[acd.agents]]
id = "1001"
name = "Agent One"
extension = "1001"
queues = ["12345"]
wrap_up_secs = 5
login_on_register = true
"#;

/// A weekday morning in the shipped lines' time zone (the 12345 line is
/// open), the clock a test runs on unless it sets its own `[clock]`: what
/// a call does must not depend on the time of day the tests run.
pub const TEST_CLOCK: &str = "2026-11-24T10:00:00+08:00";

fn with_test_clock(extra: String) -> String {
    if extra.contains("[clock]") {
        extra
    } else {
        format!("{extra}\n[clock]\nstart = \"{TEST_CLOCK}\"\n")
    }
}

pub fn test_config(dir: &Path, opts: &ServerOptions) -> Config {
    let db = opts
        .database
        .clone()
        .or_else(|| std::env::var("HOTLINE_TEST_DATABASE").ok())
        .unwrap_or_else(|| format!("sqlite:{}", dir.join("hotline.db").display()));
    let trunks = opts
        .trunks
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    // RTP ports: a window per test process so parallel test binaries rarely
    // meet; the pool skips ports already taken.
    let base = 30000 + (std::process::id() % 300) as u16 * 100;
    let text = format!(
        r#"
[sip]
listen = "127.0.0.1:0"
answer_delay_ms = {answer}
max_calls = {max_calls}
{sip_toml}
[[sip.trunks]]
name = "test"
addresses = [{trunks}]
[rtp]
address = "127.0.0.1"
ports = "{lo}-{hi}"
timeout_secs = {rtp_timeout}
media_threads = {media_threads}
[http]
listen = "127.0.0.1:0"
api_tokens = [{tokens}]
[database]
url = "{db}"
seed_demo = true
[paths]
data_dir = "{data}"
prompts = "{prompts}"
flows = "{flows}"
[log]
filter = "warn"
[registrar]
algorithms = ["SHA-256", "MD5"]
{registrar_toml}
[[registrar.users]]
user = "1001"
ha1_md5 = "fe91a8312069f3ec33658a70e139d0d1"
ha1_sha256 = "ce777f18d0030e57d31a42f8ec9f0ef8c446871038cfcb8985a3edd064d85b03"
[[registrar.users]]
user = "1002"
ha1_md5 = "951f93efda0bef97f8f47dae45158c6e"
{extra}
"#,
        tokens = opts
            .api_tokens
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        answer = opts.answer_delay_ms,
        max_calls = opts.max_calls,
        sip_toml = opts.sip_toml,
        registrar_toml = opts.registrar_toml,
        rtp_timeout = opts.rtp_timeout_secs,
        media_threads = opts.media_threads,
        lo = base,
        hi = base + 4999,
        db = db,
        data = dir.display(),
        prompts = repo().join("prompts").display(),
        flows = opts
            .flows_dir
            .clone()
            .unwrap_or_else(|| repo().join("config/flows"))
            .display(),
        extra = with_test_clock(if opts.extra_toml.contains("[acd") {
            opts.extra_toml.clone()
        } else {
            // The shipped flows' queue, with no agents: callers are refused
            // and the flow's overflow (a voice message) runs.
            format!(
                "{}\n[[acd.queues]]\nname = \"12345\"\nwhen_no_agents = \"refuse\"\n\
                 [[acd.queues]]\nname = \"12333\"\nwhen_no_agents = \"refuse\"\n",
                opts.extra_toml
            )
        }),
    );
    let path = dir.join("hotline.toml");
    std::fs::write(&path, &text).expect("write config");
    Config::from_toml(&path, &text, &Overrides::default())
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}"))
}

// ---------------------------------------------------------------------------
// Prompt recognition.
// ---------------------------------------------------------------------------

/// Maps every 160-byte frame of every prompt (PCMU and PCMA) to where it
/// occurs, so received audio can be named.
/// (payload type, frame) → where it occurs: (`lang/name`, frame index).
type FrameIndex = HashMap<(u8, [u8; 160]), Vec<(Arc<str>, usize)>>;

pub struct PromptIndex {
    frames: FrameIndex,
    lengths: HashMap<Arc<str>, usize>,
}

impl PromptIndex {
    pub fn new(store: &PromptStore) -> PromptIndex {
        let mut frames: FrameIndex = HashMap::new();
        let mut lengths = HashMap::new();
        for lang in hotline::lang::Lang::ALL {
            // Prompts with identical audio (en "one" is both num_1 and
            // digit_1_yao; zh 零 is num_0 and oh) are one prompt to a
            // listener: name it by its num_ name, else the shortest.
            let mut names = store.names(lang);
            names.sort_by_key(|n| (!n.starts_with("num_"), n.len(), n.to_string()));
            let mut seen: HashMap<Arc<[u8]>, ()> = HashMap::new();
            for name in names {
                let p = store.get(lang, name).expect("listed prompt");
                if seen.insert(p.pcmu.clone(), ()).is_some() {
                    continue;
                }
                let label: Arc<str> = Arc::from(format!("{}/{}", lang.code(), name));
                for (pt, enc) in [(0u8, &p.pcmu), (8u8, &p.pcma)] {
                    let n = enc.len() / 160;
                    lengths.insert(label.clone(), n);
                    for (i, chunk) in enc.chunks_exact(160).enumerate() {
                        let mut f = [0u8; 160];
                        f.copy_from_slice(chunk);
                        frames.entry((pt, f)).or_default().push((label.clone(), i));
                    }
                }
            }
        }
        PromptIndex { frames, lengths }
    }

    /// Names the prompts in a received frame sequence, in order. Several
    /// prompts may begin alike (人工服务…), so every prompt a run of frames
    /// fits is followed until only one fits; a prompt counts when at least
    /// half of its first ten frames (or of all, if shorter) were heard.
    pub fn recognise(&self, pt: u8, received: &[[u8; 160]]) -> Vec<String> {
        // Hypotheses: (label, last frame index, frames matched).
        let mut hyps: Vec<(Arc<str>, usize, usize)> = Vec::new();
        let mut out: Vec<String> = Vec::new();
        let finish = |hyps: &mut Vec<(Arc<str>, usize, usize)>, out: &mut Vec<String>| {
            let best = hyps.iter().max_by_key(|(l, _, hits)| {
                (
                    *hits,
                    std::cmp::Reverse(self.lengths.get(l).copied().unwrap_or(0)),
                )
            });
            if let Some((label, _, hits)) = best {
                let len = self.lengths.get(label).copied().unwrap_or(1);
                if hits * 2 >= len.clamp(1, 10) {
                    out.push(label.to_string());
                }
            }
            hyps.clear();
        };
        for frame in received {
            let Some(cands) = self.frames.get(&(pt, *frame)) else {
                continue;
            };
            // Follow the hypotheses this frame continues.
            let mut advanced = Vec::new();
            for (label, idx, hits) in &hyps {
                if let Some((_, i)) = cands
                    .iter()
                    .find(|(l, i)| l == label && *i > *idx && *i <= *idx + 3)
                {
                    advanced.push((label.clone(), *i, hits + 1));
                }
            }
            if !advanced.is_empty() {
                hyps = advanced;
                continue;
            }
            // A frame near the start of some prompts: a new prompt begins.
            let starts: Vec<(Arc<str>, usize, usize)> = cands
                .iter()
                .filter(|(_, i)| *i <= 12)
                .map(|(l, i)| (l.clone(), *i, 1))
                .collect();
            let distinct: std::collections::HashSet<&str> =
                starts.iter().map(|(l, _, _)| &l[3..]).collect();
            // Silence frames start everything: they name nothing.
            if starts.is_empty() || distinct.len() > 8 {
                continue;
            }
            finish(&mut hyps, &mut out);
            hyps = starts;
        }
        finish(&mut hyps, &mut out);
        out
    }
}

// ---------------------------------------------------------------------------
// The phone.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

pub struct PhoneBuilder {
    server: SocketAddr,
    prompts: Arc<PromptStore>,
    transport: Transport,
    sdp_codecs: Vec<u8>,
    send_sdp: bool,
    caller: String,
    nat: bool,
}

impl PhoneBuilder {
    pub fn new(server: SocketAddr, prompts: Arc<PromptStore>) -> Self {
        PhoneBuilder {
            server,
            prompts,
            transport: Transport::Udp,
            sdp_codecs: vec![0, 8, 101],
            send_sdp: true,
            caller: "13800138000".into(),
            nat: false,
        }
    }

    /// Behind NAT: the SDP names a port nobody reads; RTP really comes from
    /// (and must be sent back to) another one.
    pub fn behind_nat(mut self) -> Self {
        self.nat = true;
        self
    }

    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.transport = Transport::Tcp;
        self.server = addr;
        self
    }

    /// Payload types to offer (0 PCMU, 8 PCMA, 18 G.729, 101 telephone-event).
    pub fn codecs(mut self, pts: &[u8]) -> Self {
        self.sdp_codecs = pts.to_vec();
        self
    }

    /// Send the INVITE without SDP (the daemon offers in its 200).
    pub fn no_sdp(mut self) -> Self {
        self.send_sdp = false;
        self
    }

    pub fn caller(mut self, number: &str) -> Self {
        self.caller = number.into();
        self
    }

    pub async fn build(self) -> Phone {
        let sip = SipSocket::open(self.transport, self.server).await;
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp bind");
        let sdp_rtp_port = if self.nat {
            let decoy = UdpSocket::bind("127.0.0.1:0").await.expect("decoy bind");
            let port = decoy.local_addr().expect("addr").port();
            // Kept open (never read) so nothing else takes the port.
            std::mem::forget(decoy);
            port
        } else {
            rtp.local_addr().expect("addr").port()
        };
        Phone {
            sdp_rtp_port,
            local: sip.local,
            sip,
            server: self.server,
            rtp: Arc::new(rtp),
            index: Arc::new(PromptIndex::new(&self.prompts)),
            sdp_codecs: self.sdp_codecs,
            send_sdp: self.send_sdp,
            caller: self.caller,
            transport: self.transport,
        }
    }
}

/// The SIP side of the phone: UDP or one TCP connection.
struct SipSocket {
    local: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<SipMessage>,
    /// The reader and writer: aborted by `close` (which closes a TCP
    /// connection).
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Answers some messages at once, in the socket's reader (what a phone does
/// in the background, e.g. OPTIONS): `Some(bytes)` is sent back (nothing if
/// empty) and the message is not passed on.
type Responder = Arc<dyn Fn(&SipMessage) -> Option<Bytes> + Send + Sync>;

/// Passes a message read from the socket on, unless `responder` answers it.
async fn pass_on(
    m: SipMessage,
    responder: &Option<Responder>,
    out: &mpsc::Sender<Bytes>,
    inbox: &mpsc::Sender<SipMessage>,
) -> bool {
    if let Some(answer) = responder.as_ref().and_then(|r| r(&m)) {
        // Empty: swallowed without an answer.
        return answer.is_empty() || out.send(answer).await.is_ok();
    }
    inbox.send(m).await.is_ok()
}

impl SipSocket {
    /// Stops reading and writing; over TCP the connection closes.
    fn close(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// UDP on a socket already bound (e.g. one whose address the daemon's
    /// config names before the daemon starts).
    fn open_udp(sock: UdpSocket, server: SocketAddr, responder: Option<Responder>) -> SipSocket {
        let (in_tx, in_rx) = mpsc::channel::<SipMessage>(256);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
        let sock = Arc::new(sock);
        let local = sock.local_addr().expect("addr");
        let s2 = sock.clone();
        let w = tokio::spawn(async move {
            while let Some(b) = out_rx.recv().await {
                let _ = s2.send_to(&b, server).await;
            }
        });
        let answers = out_tx.clone();
        let r = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                if let Ok(m) = parse_message(&buf[..n]) {
                    if !pass_on(m, &responder, &answers, &in_tx).await {
                        break;
                    }
                }
            }
        });
        SipSocket {
            local,
            tx: out_tx,
            rx: in_rx,
            tasks: vec![w, r],
        }
    }

    async fn open(transport: Transport, server: SocketAddr) -> SipSocket {
        Self::open_with(transport, server, None).await
    }

    async fn open_with(
        transport: Transport,
        server: SocketAddr,
        responder: Option<Responder>,
    ) -> SipSocket {
        let (in_tx, in_rx) = mpsc::channel::<SipMessage>(256);
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
        match transport {
            Transport::Udp => {
                let sock = UdpSocket::bind("127.0.0.1:0").await.expect("sip bind");
                Self::open_udp(sock, server, responder)
            }
            Transport::Tcp => {
                let stream = TcpStream::connect(server).await.expect("tcp connect");
                let local = stream.local_addr().expect("addr");
                let (mut r, mut w) = stream.into_split();
                let w = tokio::spawn(async move {
                    while let Some(b) = out_rx.recv().await {
                        if w.write_all(&b).await.is_err() {
                            break;
                        }
                    }
                });
                let answers = out_tx.clone();
                let r = tokio::spawn(async move {
                    let mut buf = bytes::BytesMut::new();
                    loop {
                        match r.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        loop {
                            match frame_stream(&buf) {
                                Ok(Frame::Message(n)) => {
                                    let b = buf.split_to(n);
                                    if let Ok(m) = parse_message(&b) {
                                        let _ = pass_on(m, &responder, &answers, &in_tx).await;
                                    }
                                }
                                Ok(Frame::KeepAlive(n)) => {
                                    let _ = buf.split_to(n);
                                }
                                _ => break,
                            }
                        }
                    }
                });
                SipSocket {
                    local,
                    tx: out_tx,
                    rx: in_rx,
                    tasks: vec![w, r],
                }
            }
        }
    }
}

pub struct Phone {
    sdp_rtp_port: u16,
    sip: SipSocket,
    local: SocketAddr,
    server: SocketAddr,
    rtp: Arc<UdpSocket>,
    index: Arc<PromptIndex>,
    sdp_codecs: Vec<u8>,
    send_sdp: bool,
    caller: String,
    transport: Transport,
}

fn rand_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Phone {
    fn via_token(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn offer_sdp(&self) -> String {
        self.offer_sdp_for(&self.sdp_codecs)
    }

    pub fn offer_sdp_for(&self, codecs: &[u8]) -> String {
        let mut s = format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
            self.sdp_rtp_port,
            codecs.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
        );
        for pt in codecs {
            match pt {
                0 => s.push_str("a=rtpmap:0 PCMU/8000\r\n"),
                8 => s.push_str("a=rtpmap:8 PCMA/8000\r\n"),
                18 => s.push_str("a=rtpmap:18 G729/8000\r\n"),
                101 => s.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"),
                _ => {}
            }
        }
        s.push_str("a=sendrecv\r\n");
        s
    }

    /// Sends raw bytes to the daemon's SIP port.
    pub async fn send_raw(&self, bytes: impl Into<Bytes>) {
        self.sip.tx.send(bytes.into()).await.expect("sip send");
    }

    /// Waits for the next SIP message.
    pub async fn recv(&mut self, within: Duration) -> Option<SipMessage> {
        timeout(within, self.sip.rx.recv()).await.ok().flatten()
    }

    /// Waits for a response with one of `statuses` (others are skipped).
    pub async fn expect_response(&mut self, statuses: &[u16], within: Duration) -> Response {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Some(SipMessage::Response(r)) if statuses.contains(&r.status) => return r,
                Some(_) => continue,
                None => panic!("no response in {statuses:?} within {within:?}"),
            }
        }
    }

    pub fn invite_text(
        &self,
        dialed: &str,
        call_id: &str,
        branch: &str,
        from_tag: &str,
        cseq: u32,
        body: &str,
    ) -> String {
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "INVITE sip:{dialed}@{srv} SIP/2.0\r\n\
Via: SIP/2.0/{t} {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{caller}@{lip}>;tag={from_tag}\r\n\
To: <sip:{dialed}@{srv}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} INVITE\r\n\
Contact: <sip:{caller}@{local}{tp}>\r\n\
{ctype}Content-Length: {len}\r\n\r\n{body}",
            srv = self.server,
            t = self.via_token(),
            local = self.local,
            lip = self.local.ip(),
            caller = self.caller,
            tp = if self.transport == Transport::Tcp {
                ";transport=tcp"
            } else {
                ""
            },
            len = body.len(),
        )
    }

    /// Places a call and waits for the 200; ACKs it (with `ack_body` if the
    /// INVITE had no SDP). Panics on any other final response.
    pub async fn call(self, dialed: &str) -> Call {
        let (status, call) = self.try_call(dialed).await;
        assert_eq!(status, 200, "call to {dialed} was not answered");
        call.expect("answered call")
    }

    /// Places a call; returns the final status and, when answered, the call.
    pub async fn try_call(mut self, dialed: &str) -> (u16, Option<Call>) {
        let call_id = format!("{}@test", rand_hex());
        let from_tag = rand_hex();
        let branch = format!("z9hG4bK{}", rand_hex());
        let body = if self.send_sdp {
            self.offer_sdp()
        } else {
            String::new()
        };
        let invite = self.invite_text(dialed, &call_id, &branch, &from_tag, 1, &body);
        self.send_raw(invite.clone()).await;
        let final_resp = loop {
            match self.recv(Duration::from_secs(10)).await {
                Some(SipMessage::Response(r)) if r.status >= 200 => break r,
                Some(_) => continue,
                None => panic!("no final response to INVITE"),
            }
        };
        let status = final_resp.status;
        if status >= 300 {
            // ACK for a non-2xx: same branch, hop by hop (RFC 3261 §17.1.1.3).
            let ack = format!(
                "ACK sip:{dialed}@{srv} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{lip}>;tag={from_tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                srv = self.server,
                t = self.via_token(),
                local = self.local,
                lip = self.local.ip(),
                caller = self.caller,
                to = final_resp.headers.get("To").unwrap_or(""),
            );
            self.send_raw(ack).await;
            return (status, None);
        }
        let offerless = !self.send_sdp;
        let mut call = Call::new(self, final_resp, call_id, from_tag, dialed);
        if offerless {
            // Our answer to the daemon's offer goes in the ACK (RFC 3261 §13.2.1).
            let pt = first_audio_pt(&String::from_utf8_lossy(&call.answer.body)).unwrap_or(0);
            let answer = call.phone.offer_sdp_for(&[pt, 101]);
            call.ack_with_body(1, &answer).await;
        } else {
            call.ack(1).await;
        }
        (status, Some(call))
    }
}

/// Where the audio from the daemon went.
#[derive(Default)]
struct Heard {
    pt: Option<u8>,
    frames: Vec<[u8; 160]>,
    packets: Vec<(u16, u32, u32, bool)>, // seq, ts, ssrc, marker
    arrivals: Vec<Instant>,
}

pub struct Call {
    phone: Phone,
    pub call_id: String,
    from_tag: String,
    to: String,
    remote_target: String,
    pub dialed: String,
    cseq: u32,
    pub answer: Response,
    pub remote_rtp: SocketAddr,
    heard: Arc<Mutex<Heard>>,
    dtmf: mpsc::Sender<DtmfCmd>,
    pub byes_received: Vec<Request>,
    pub ended_by_daemon: bool,
    sdp_version: u32,
}

enum DtmfCmd {
    Digit(char),
    /// A digit as tones in the audio (what some gateways send).
    Inband(char),
    Pause(bool),
    /// From now on audio frames are this byte repeated (a recognisable
    /// stream for relay tests) instead of silence.
    Fill(u8),
}

/// 100 ms of the DTMF tone pair for `d` then 100 ms of silence, as 8 kHz
/// samples at about -10 dBm0 per tone.
fn dtmf_tone(d: char) -> Vec<i16> {
    const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    let (r, c) = keys
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.find(d).map(|c| (r, c)))
        .expect("a DTMF key");
    let mut out = Vec::with_capacity(1600);
    for n in 0..800 {
        let t = n as f32 / 8000.0;
        let v = (2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
            + (2.0 * std::f32::consts::PI * COLS[c] * t).sin();
        out.push((v * 7000.0) as i16);
    }
    out.extend(std::iter::repeat_n(0i16, 800));
    out
}

fn sdp_audio_addr(sdp: &str) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for line in sdp.lines() {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = c.trim().parse::<std::net::IpAddr>().ok();
        }
        if let Some(m) = line.strip_prefix("m=audio ") {
            port = m
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// The URI of the first Contact (a dialog's remote target), without `<>`.
fn contact_target(headers: &hotline::sip::Headers) -> Option<String> {
    headers.get("Contact").map(|c| {
        c.trim()
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or("")
            .to_string()
    })
}

fn first_audio_pt(sdp: &str) -> Option<u8> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().nth(2))
        .and_then(|p| p.parse().ok())
}

impl Call {
    fn new(
        phone: Phone,
        answer: Response,
        call_id: String,
        from_tag: String,
        dialed: &str,
    ) -> Call {
        let sdp = String::from_utf8_lossy(&answer.body).to_string();
        let remote_rtp = sdp_audio_addr(&sdp).expect("SDP with an audio address in the 200");
        let pt = first_audio_pt(&sdp).unwrap_or(0);
        let to = answer.headers.get("To").expect("To").to_string();
        let remote_target = contact_target(&answer.headers)
            .unwrap_or_else(|| format!("sip:{dialed}@{}", phone.server));
        let heard = Arc::new(Mutex::new(Heard {
            pt: Some(pt),
            ..Default::default()
        }));
        let (dtmf_tx, dtmf_rx) = mpsc::channel(64);
        tokio::spawn(rtp_pump(
            phone.rtp.clone(),
            remote_rtp,
            pt,
            heard.clone(),
            dtmf_rx,
        ));
        Call {
            phone,
            call_id,
            from_tag,
            to,
            remote_target,
            dialed: dialed.into(),
            cseq: 1,
            answer,
            remote_rtp,
            heard,
            dtmf: dtmf_tx,
            byes_received: Vec::new(),
            ended_by_daemon: false,
            sdp_version: 1,
        }
    }

    fn headers(&self, method: &str, cseq: u32, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/{t} {local};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{caller}@{lip}>;tag={ft}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n",
            t = self.phone.via_token(),
            local = self.phone.local,
            lip = self.phone.local.ip(),
            caller = self.phone.caller,
            ft = self.from_tag,
            to = self.to,
            cid = self.call_id,
        )
    }

    async fn ack(&mut self, cseq: u32) {
        self.ack_with_body(cseq, "").await
    }

    async fn ack_with_body(&mut self, cseq: u32, body: &str) {
        let branch = format!("z9hG4bK{}", rand_hex());
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let msg = format!(
            "ACK {} SIP/2.0\r\n{}{ctype}Content-Length: {}\r\n\r\n{body}",
            self.remote_target,
            self.headers("ACK", cseq, &branch),
            body.len()
        );
        self.phone.send_raw(msg).await;
    }

    /// Our SDP again with another direction attribute and a new version.
    pub fn answer_offer_with(&mut self, direction: &str) -> String {
        self.sdp_version += 1;
        self.phone
            .offer_sdp()
            .replace("a=sendrecv", direction)
            .replace("o=test 1 1 ", &format!("o=test 1 {} ", self.sdp_version))
    }

    /// Sends an in-dialog request and waits for its final response.
    pub async fn request(&mut self, method: &str, extra_headers: &str, body: &str) -> Response {
        self.cseq += 1;
        let cseq = self.cseq;
        let branch = format!("z9hG4bK{}", rand_hex());
        let msg = format!(
            "{method} {} SIP/2.0\r\n{}{extra_headers}Content-Length: {}\r\n\r\n{body}",
            self.remote_target,
            self.headers(method, cseq, &branch),
            body.len()
        );
        self.phone.send_raw(msg).await;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.phone.recv(left).await {
                Some(SipMessage::Response(r))
                    if r.status >= 200
                        && r.headers.get("CSeq").is_some_and(|c| c.contains(method)) =>
                {
                    if method == "INVITE" {
                        self.ack(cseq).await;
                    }
                    return r;
                }
                Some(SipMessage::Request(req)) => self.answer_request(req).await,
                Some(_) => continue,
                None => panic!("no final response to {method}"),
            }
        }
    }

    async fn answer_request(&mut self, req: Request) {
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in req.headers.get_all(name) {
                resp.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        self.phone.send_raw(resp).await;
        if req.method == hotline::sip::Method::Bye {
            self.ended_by_daemon = true;
            self.byes_received.push(req);
        }
    }

    /// Presses keys as RFC 4733 events (a 100 ms event then 100 ms pause each).
    pub async fn press(&self, digits: &str) {
        for d in digits.chars() {
            self.dtmf.send(DtmfCmd::Digit(d)).await.expect("rtp pump");
        }
    }

    /// Presses keys as in-band tones in the audio (no RFC 4733).
    /// Sends audio frames of `byte` repeated from now on (see `DtmfCmd::Fill`).
    pub async fn fill(&self, byte: u8) {
        self.dtmf.send(DtmfCmd::Fill(byte)).await.expect("rtp pump");
    }

    pub async fn press_inband(&self, digits: &str) {
        for d in digits.chars() {
            self.dtmf.send(DtmfCmd::Inband(d)).await.expect("rtp pump");
        }
    }

    /// Sends a digit by SIP INFO (application/dtmf-relay).
    pub async fn info_digit(&mut self, d: char) -> u16 {
        let body = format!("Signal={d}\r\nDuration=160\r\n");
        self.request("INFO", "Content-Type: application/dtmf-relay\r\n", &body)
            .await
            .status
    }

    /// Stops (or resumes) sending RTP, to trigger the daemon's RTP timeout.
    pub async fn mute_rtp(&self, muted: bool) {
        let _ = self.dtmf.send(DtmfCmd::Pause(muted)).await;
    }

    /// The prompts heard so far, as `lang/name`.
    pub fn heard(&self) -> Vec<String> {
        let h = self.heard.lock().expect("lock");
        self.phone.index.recognise(h.pt.unwrap_or(0), &h.frames)
    }

    /// Every audio frame received so far (payloads of the call's codec).
    pub fn frames(&self) -> Vec<[u8; 160]> {
        self.heard.lock().expect("lock").frames.clone()
    }

    /// Heard prompt names without the language.
    pub fn heard_names(&self) -> Vec<String> {
        self.heard()
            .into_iter()
            .map(|s| s[3..].to_string())
            .collect()
    }

    /// RTP packet headers received: (seq, ts, ssrc, marker).
    pub fn packets(&self) -> Vec<(u16, u32, u32, bool)> {
        self.heard.lock().expect("lock").packets.clone()
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.heard.lock().expect("lock").arrivals.clone()
    }

    /// Pumps SIP until `name` has been heard completely (followed by another
    /// prompt or ~0.5 s of anything) or `within` passes.
    pub async fn wait_heard(&mut self, name: &str, within: Duration) -> Vec<String> {
        self.wait_heard_times(name, 1, within).await
    }

    /// Like `wait_heard`, until `name` has been heard `times` times.
    pub async fn wait_heard_times(
        &mut self,
        name: &str,
        times: usize,
        within: Duration,
    ) -> Vec<String> {
        let until = Instant::now() + within;
        loop {
            let names = self.heard_names();
            if names.iter().filter(|n| *n == name).count() >= times {
                return names;
            }
            if Instant::now() >= until || self.ended_by_daemon {
                panic!("did not hear {name:?} within {within:?}; heard {names:?}");
            }
            self.pump(Duration::from_millis(100)).await;
        }
    }

    /// Handles SIP for `d` (answers BYE and anything else with 200).
    pub async fn pump(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.phone.recv(left).await {
                Some(SipMessage::Request(req)) => self.answer_request(req).await,
                Some(_) => {}
                None => return,
            }
        }
    }

    /// Waits for the daemon to hang up (BYE), answering it.
    pub async fn wait_bye(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while !self.ended_by_daemon && Instant::now() < until {
            self.pump(Duration::from_millis(200)).await;
        }
        self.ended_by_daemon
    }

    /// Hangs up with BYE; returns its final status.
    pub async fn bye(mut self) -> u16 {
        let status = self.request("BYE", "", "").await.status;
        let _ = self.dtmf.send(DtmfCmd::Pause(true)).await;
        status
    }
}

/// Sends RTP like a phone (silence every 20 ms, digits as RFC 4733 events)
/// and keeps what arrives.
async fn rtp_pump(
    sock: Arc<UdpSocket>,
    remote: SocketAddr,
    pt: u8,
    heard: Arc<Mutex<Heard>>,
    mut cmds: mpsc::Receiver<DtmfCmd>,
) {
    let ssrc: u32 = rand::random();
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let mut silence = if pt == 8 { 0xD5u8 } else { 0xFFu8 };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queue: std::collections::VecDeque<char> = Default::default();
    let mut tones: std::collections::VecDeque<i16> = Default::default();
    let mut event: Option<(char, u32, u16)> = None; // digit, event ts, packets sent
    let mut gap = 0u32;
    let mut muted = false;
    let mut buf = [0u8; 1500];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                ts = ts.wrapping_add(160);
                if muted { continue; }
                let mut pkt = Vec::with_capacity(172);
                if let Some((d, ets, n)) = event.as_mut() {
                    // RFC 4733: event packets every 20 ms, duration growing;
                    // the end packet sent three times.
                    let code = match *d { '0'..='9' => *d as u8 - b'0', '*' => 10, '#' => 11, 'A'..='D' => *d as u8 - b'A' + 12, _ => 0 };
                    *n += 1;
                    let end = *n >= 5;
                    let dur = (*n as u32 * 160) as u16;
                    let times = if end { 3 } else { 1 };
                    for _ in 0..times {
                        pkt.clear();
                        push_rtp_header(&mut pkt, 101, *n == 1, seq, *ets, ssrc);
                        pkt.extend_from_slice(&[code, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, dur as u8]);
                        seq = seq.wrapping_add(1);
                        let _ = sock.send_to(&pkt, remote).await;
                    }
                    if end { event = None; gap = 5; }
                    continue;
                }
                if gap > 0 { gap -= 1; } else if let Some(d) = queue.pop_front() {
                    event = Some((d, ts, 0));
                    continue;
                }
                push_rtp_header(&mut pkt, pt, false, seq, ts, ssrc);
                if tones.is_empty() {
                    pkt.extend(std::iter::repeat_n(silence, 160));
                } else {
                    let frame: Vec<i16> = (0..160).map(|_| tones.pop_front().unwrap_or(0)).collect();
                    let codec = if pt == 8 { hotline::media::Codec::Pcma } else { hotline::media::Codec::Pcmu };
                    hotline::media::g711::encode(codec, &frame, &mut pkt);
                }
                seq = seq.wrapping_add(1);
                let _ = sock.send_to(&pkt, remote).await;
            }
            cmd = cmds.recv() => match cmd {
                Some(DtmfCmd::Digit(d)) => queue.push_back(d),
                Some(DtmfCmd::Inband(d)) => tones.extend(dtmf_tone(d)),
                Some(DtmfCmd::Pause(m)) => muted = m,
                Some(DtmfCmd::Fill(b)) => silence = b,
                None => return,
            },
            r = sock.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { return };
                if n < 12 { continue; }
                let b = &buf[..n];
                let cc = (b[0] & 0x0f) as usize;
                let rpt = b[1] & 0x7f;
                let marker = b[1] & 0x80 != 0;
                let rseq = u16::from_be_bytes([b[2], b[3]]);
                let rts = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let rssrc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                let start = 12 + cc * 4;
                let mut h = heard.lock().expect("lock");
                h.packets.push((rseq, rts, rssrc, marker));
                h.arrivals.push(Instant::now());
                if rpt == h.pt.unwrap_or(0) && n >= start + 160 {
                    let mut f = [0u8; 160];
                    f.copy_from_slice(&b[start..start + 160]);
                    h.frames.push(f);
                }
            }
        }
    }
}

fn push_rtp_header(pkt: &mut Vec<u8>, pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    pkt.push(0x80);
    pkt.push(if marker { 0x80 | pt } else { pt });
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&ts.to_be_bytes());
    pkt.extend_from_slice(&ssrc.to_be_bytes());
}
