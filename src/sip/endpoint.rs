//! The SIP endpoint: the async shell around the sans-IO protocol code.
//!
//! One task owns the UDP socket, the TCP connections' writers, the
//! transaction layer and the table of dialogs (Call-ID → the call task's
//! channel). For every message it: parses (a broken start line is dropped),
//! stamps `received`/`rport` on the top Via (RFC 3261 §18.2.1, RFC 3581 §4),
//! validates (`validate::check_request`: 400/416/420/… where a response can
//! be addressed), matches transactions (retransmissions are answered here and
//! never reach a call), then routes:
//!
//! - a new INVITE (no To tag) from a trusted trunk → `IncomingCall` to the
//!   call manager, with a fresh event channel already registered for its
//!   Call-ID (so an ACK or CANCEL racing the call task is never lost); from
//!   anyone else → 403;
//! - requests within a known dialog, CANCEL, and responses to our requests →
//!   the dialog's channel; unknown dialog → 481;
//! - OPTIONS outside a dialog → 200 with Allow/Accept; REGISTER → 501 until
//!   the registrar exists; other methods → 405 (known) or 501 (unknown).
//!
//! Calls send through `SipHandle`: responses to their server transactions,
//! new in-dialog requests (the endpoint adds the Via with a fresh branch and
//! runs the client transaction), and ACKs for 2xx.

use super::acl::Acl;
use super::digest::{Algorithm, AuthError, DigestRealm};
use super::headers::Via;
use super::message::{response_to, Method, Request, Response, SipMessage};
use super::parse::parse_message;
use super::registrar::{aor_of, Binding, BindingChange, Registrar};
use super::transaction::{
    ClientDisposition, IncomingRequest, LayerConfig, Output, OutputKind, ServerDisposition,
    TimerConfig, TransactionKey, TransactionLayer,
};
use super::transport::{serve_tcp, Peer, TcpEvent, TransportKind};
use super::validate::{check_request, error_response};
use bytes::Bytes;
use chrono::Utc;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

/// Methods we answer (for Allow headers).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REGISTER";
/// Bodies we accept.
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";

/// Settings of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub listen: SocketAddr,
    pub advertised: IpAddr,
    pub udp: bool,
    pub tcp: bool,
    pub user_agent: String,
    pub max_message_bytes: usize,
    pub max_transactions: usize,
    pub timers: TimerConfig,
    pub registrar: crate::config::RegistrarSettings,
}

/// What the registrar starts from, and where its changes go (in order).
pub struct RegistrarState {
    /// Bindings stored before the restart.
    pub bindings: Vec<Binding>,
    /// Every binding change, for the store; a bounded channel drained by
    /// one task so that changes are written in the order they happened.
    pub changes: mpsc::Sender<Vec<BindingChange>>,
}

/// What a dialog's owner (a call task) is told.
#[derive(Debug)]
pub enum DialogEvent {
    /// A request within the dialog (BYE, INFO, re-INVITE, UPDATE, OPTIONS…):
    /// answer it with `SipHandle::respond(key, …)`.
    Request {
        request: Request,
        key: TransactionKey,
        peer: Peer,
    },
    /// The ACK for our 2xx to the INVITE (it may carry the SDP answer).
    Ack { request: Request },
    /// CANCEL matched the INVITE: the endpoint has answered the CANCEL with
    /// 200; the call must answer the INVITE with 487 unless already final.
    Cancel,
    /// A response to a request the call sent.
    Response {
        response: Response,
        key: TransactionKey,
    },
    /// A request the call sent got no final response in time (408 locally).
    Timeout { key: TransactionKey },
    /// Our 2xx to the INVITE was never acknowledged (RFC 3261 §13.3.1.4):
    /// the call must send BYE.
    AckTimeout,
}

/// A new call offered by a trusted source.
#[derive(Debug)]
pub struct IncomingCall {
    pub request: Request,
    pub key: TransactionKey,
    pub peer: Peer,
    pub trunk: String,
    pub events: mpsc::Receiver<DialogEvent>,
}

/// The addresses the endpoint really listens on.
#[derive(Debug, Clone)]
pub struct LocalAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub advertised: IpAddr,
    pub user_agent: String,
}

impl LocalAddrs {
    /// Our contact URI for a dialog on `kind`.
    pub fn contact(&self, user: &str, kind: TransportKind) -> String {
        let port = match kind {
            TransportKind::Udp => self.udp.or(self.tcp),
            TransportKind::Tcp => self.tcp.or(self.udp),
        }
        .map(|a| a.port())
        .unwrap_or(5060);
        let host = host_literal(self.advertised);
        match kind {
            TransportKind::Udp => format!("<sip:{user}@{host}:{port}>"),
            TransportKind::Tcp => format!("<sip:{user}@{host}:{port};transport=tcp>"),
        }
    }
}

fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

enum Command {
    Respond {
        key: TransactionKey,
        response: Response,
    },
    Request {
        request: Request,
        peer: Peer,
    },
    Ack {
        request: Request,
        peer: Peer,
    },
    EndDialog {
        call_id: String,
    },
    /// Stop offering new calls (503) — the daemon is draining.
    Drain,
}

/// The calls' way to send. Cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    cmd: mpsc::Sender<Command>,
    pub local: Arc<LocalAddrs>,
}

impl SipHandle {
    /// Answers the server transaction `key`.
    pub async fn respond(&self, key: TransactionKey, response: Response) {
        let _ = self.cmd.send(Command::Respond { key, response }).await;
    }

    /// Sends a new request to `peer` in a client transaction; its responses
    /// come back as `DialogEvent::Response` on the Call-ID's channel.
    pub async fn request(&self, request: Request, peer: Peer) {
        let _ = self.cmd.send(Command::Request { request, peer }).await;
    }

    /// Sends the ACK for a 2xx (outside any transaction, RFC 3261 §13.2.2.4).
    pub async fn ack(&self, request: Request, peer: Peer) {
        let _ = self.cmd.send(Command::Ack { request, peer }).await;
    }

    /// Forgets the dialog's route; later requests for it get 481.
    pub async fn end_dialog(&self, call_id: String) {
        let _ = self.cmd.send(Command::EndDialog { call_id }).await;
    }

    /// From now on new INVITEs get 503 Service Unavailable.
    pub async fn drain(&self) {
        let _ = self.cmd.send(Command::Drain).await;
    }
}

/// Binds the configured transports and starts the endpoint task.
pub async fn start(
    cfg: EndpointConfig,
    acl: Acl,
    registrations: RegistrarState,
    incoming: mpsc::Sender<IncomingCall>,
    shutdown: CancellationToken,
) -> std::io::Result<(SipHandle, tokio::task::JoinHandle<()>)> {
    let (udp, tcp_listener) = bind_transports(&cfg).await?;
    let (tcp_tx, tcp_rx) = mpsc::channel(4096);
    let mut tcp_addr = None;
    if let Some(listener) = tcp_listener {
        tcp_addr = Some(listener.local_addr()?);
        tokio::spawn(serve_tcp(
            listener,
            tcp_tx,
            cfg.max_message_bytes,
            shutdown.clone(),
        ));
    }
    let local = Arc::new(LocalAddrs {
        udp: udp.as_ref().map(|u| u.local_addr()).transpose()?,
        tcp: tcp_addr,
        advertised: cfg.advertised,
        user_agent: cfg.user_agent.clone(),
    });
    info!(udp = ?local.udp, tcp = ?local.tcp, "SIP listening");
    let (cmd_tx, cmd_rx) = mpsc::channel(8192);
    let layer = TransactionLayer::new(LayerConfig {
        timers: cfg.timers,
        max_transactions: cfg.max_transactions,
    })
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut registrar = Registrar::new(cfg.registrar.limits.clone());
    let dropped = registrar.load(registrations.bindings);
    let expired = registrar.expire(Utc::now());
    let gone: Vec<BindingChange> = dropped
        .into_iter()
        .chain(expired)
        .map(BindingChange::Removed)
        .collect();
    if !gone.is_empty() {
        let _ = registrations.changes.try_send(gone);
    }
    let users = cfg
        .registrar
        .users
        .iter()
        .map(|u| (u.user.clone(), u.clone()))
        .collect();
    let endpoint = Endpoint {
        digest: DigestRealm::with_random_secret(cfg.registrar.realm.clone()),
        registrar,
        users,
        binding_changes: registrations.changes,
        layer,
        txn_calls: HashMap::new(),
        cfg,
        acl,
        local: local.clone(),
        udp,
        tcp_writers: HashMap::new(),
        dialogs: HashMap::new(),
        incoming,
        draining: false,
    };
    let task = tokio::spawn(endpoint.run(cmd_rx, tcp_rx, shutdown));
    Ok((SipHandle { cmd: cmd_tx, local }, task))
}

/// Binds UDP and TCP on the configured address. With port 0 both must share
/// the port the OS picks for UDP; if that port is taken on TCP, try again.
async fn bind_transports(
    cfg: &EndpointConfig,
) -> std::io::Result<(Option<Arc<UdpSocket>>, Option<TcpListener>)> {
    let attempts = if cfg.listen.port() == 0 { 20 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let udp = if cfg.udp {
            Some(Arc::new(bind_udp(cfg.listen)?))
        } else {
            None
        };
        if !cfg.tcp {
            return Ok((udp, None));
        }
        let addr = match &udp {
            Some(u) if cfg.listen.port() == 0 => u.local_addr()?,
            _ => cfg.listen,
        };
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok((udp, Some(l))),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("cannot bind SIP transports")))
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Bursts of hundreds of calls per second must not overflow the queue.
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Capacity of each dialog's event channel.
const DIALOG_QUEUE: usize = 64;

struct Endpoint {
    cfg: EndpointConfig,
    layer: TransactionLayer,
    /// The Call-ID of each live transaction, to route its timeouts; and the
    /// INVITE request of server INVITE transactions, for a delayed 100.
    txn_calls: HashMap<TransactionKey, String>,
    acl: Acl,
    local: Arc<LocalAddrs>,
    udp: Option<Arc<UdpSocket>>,
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    dialogs: HashMap<String, mpsc::Sender<DialogEvent>>,
    incoming: mpsc::Sender<IncomingCall>,
    draining: bool,
    digest: DigestRealm,
    registrar: Registrar,
    users: HashMap<String, crate::config::SipUser>,
    binding_changes: mpsc::Sender<Vec<BindingChange>>,
}

impl Endpoint {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command>,
        mut tcp: mpsc::Receiver<TcpEvent>,
        shutdown: CancellationToken,
    ) {
        let mut buf = vec![0u8; 65_536];
        let udp = self.udp.clone();
        loop {
            let deadline = self.layer.next_deadline();
            let expiry = self.registrar.next_expiry().map(|at| {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                Instant::now() + wait
            });
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(cmd) = cmds.recv() => self.on_command(cmd),
                r = recv_udp(udp.as_deref(), &mut buf) => match r {
                    Ok((n, from)) => {
                        let peer = Peer { kind: TransportKind::Udp, addr: from };
                        let bytes = Bytes::copy_from_slice(&buf[..n]);
                        self.on_bytes(peer, bytes);
                    }
                    Err(e) => debug!(error = %e, "udp receive error"),
                },
                Some(ev) = tcp.recv() => match ev {
                    TcpEvent::Opened { addr, writer } => { self.tcp_writers.insert(addr, writer); }
                    TcpEvent::Closed { addr } => { self.tcp_writers.remove(&addr); }
                    TcpEvent::Message { addr, bytes } => {
                        self.on_bytes(Peer { kind: TransportKind::Tcp, addr }, bytes);
                    }
                },
                _ = sleep_until_opt(deadline) => {
                    let outputs = self.layer.on_timer(Instant::now());
                    self.apply(outputs);
                }
                _ = sleep_until_opt(expiry) => {
                    let gone = self.registrar.expire(Utc::now());
                    if !gone.is_empty() {
                        info!(count = gone.len(), "registrations expired");
                        self.persist(gone.into_iter().map(BindingChange::Removed).collect());
                    }
                }
            }
        }
        debug!("SIP endpoint stopped");
    }

    fn send(&self, peer: Peer, bytes: Bytes) {
        match peer.kind {
            TransportKind::Udp => {
                if let Some(udp) = &self.udp {
                    if let Err(e) = udp.try_send_to(&bytes, peer.addr) {
                        debug!(to = %peer.addr, error = %e, "udp send failed");
                    }
                }
            }
            TransportKind::Tcp => match self.tcp_writers.get(&peer.addr) {
                Some(w) => {
                    if w.try_send(bytes).is_err() {
                        debug!(to = %peer.addr, "tcp write queue full or closed");
                    }
                }
                None => debug!(to = %peer.addr, "no tcp connection to peer"),
            },
        }
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for out in outputs {
            match out.kind {
                OutputKind::Send { peer, bytes } => self.send(peer, bytes),
                OutputKind::Timeout | OutputKind::TransportError => {
                    if let Some(call_id) = self.txn_calls.get(&out.key).cloned() {
                        self.deliver(&call_id, DialogEvent::Timeout { key: out.key });
                    }
                }
                OutputKind::AckTimeout => {
                    if let Some(call_id) = self.txn_calls.get(&out.key).cloned() {
                        self.deliver(&call_id, DialogEvent::AckTimeout);
                    }
                }
                // The 100 Trying is sent at once for every INVITE (below),
                // so a delayed one is never asked for.
                OutputKind::SendTrying => {}
                OutputKind::Terminated => {
                    self.txn_calls.remove(&out.key);
                }
            }
        }
    }

    fn deliver(&mut self, call_id: &str, ev: DialogEvent) -> bool {
        match self.dialogs.get(call_id) {
            Some(tx) => match tx.try_send(ev) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(
                        call_id,
                        "call event queue full; message dropped (peer will retransmit)"
                    );
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.dialogs.remove(call_id);
                    false
                }
            },
            None => false,
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Respond { key, mut response } => {
                if response.headers.get("Server").is_none() {
                    response
                        .headers
                        .push("Server", self.local.user_agent.clone());
                }
                let status = response.status;
                let bytes = response.to_bytes();
                match self.layer.respond(now, &key, status, bytes) {
                    Ok(outputs) => self.apply(outputs),
                    Err(e) => debug!(error = %e, status, "response not sent"),
                }
            }
            Command::Request { mut request, peer } => {
                let branch = new_branch();
                let via = self.our_via(peer.kind, &branch);
                request.headers.0.insert(
                    0,
                    super::message::Header {
                        name: "Via".into(),
                        value: via,
                    },
                );
                let call_id = request.call_id().map(str::to_string).unwrap_or_default();
                let Ok(key) =
                    TransactionKey::new(&branch, &self.sent_by(peer.kind), &request.method)
                else {
                    return;
                };
                let bytes = request.to_bytes();
                match self
                    .layer
                    .send_request(now, key.clone(), &request.method, bytes, peer)
                {
                    Ok(outputs) => {
                        self.txn_calls.insert(key, call_id);
                        self.apply(outputs);
                    }
                    Err(e) => debug!(error = %e, "request not sent"),
                }
            }
            Command::Ack { mut request, peer } => {
                let via = self.our_via(peer.kind, &new_branch());
                request.headers.0.insert(
                    0,
                    super::message::Header {
                        name: "Via".into(),
                        value: via,
                    },
                );
                self.send(peer, request.to_bytes());
            }
            Command::EndDialog { call_id } => {
                self.dialogs.remove(&call_id);
            }
            Command::Drain => self.draining = true,
        }
    }

    fn sent_by(&self, kind: TransportKind) -> String {
        let port = match kind {
            TransportKind::Udp => self.local.udp,
            TransportKind::Tcp => self.local.tcp,
        }
        .map(|a| a.port())
        .unwrap_or(5060);
        format!("{}:{port}", host_literal(self.local.advertised))
    }

    fn our_via(&self, kind: TransportKind, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            kind.via_token(),
            self.sent_by(kind)
        )
    }

    fn on_bytes(&mut self, peer: Peer, bytes: Bytes) {
        if bytes.len() > self.cfg.max_message_bytes {
            debug!(from = %peer.addr, len = bytes.len(), "message over size limit dropped");
            return;
        }
        // RFC 5626 keep-alive over UDP: a lone CRLF CRLF.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        match parse_message(&bytes) {
            Ok(SipMessage::Request(req)) => self.on_request(peer, req),
            Ok(SipMessage::Response(resp)) => self.on_response(peer, resp),
            Err(e) => {
                // A request whose start line or framing is broken is still
                // answered (400, or 505 for another SIP version) when enough
                // of it can be read to address a response (RFC 4475 §3.1.2).
                match super::validate::response_to_unparsable(&bytes, &e) {
                    Some(resp) => {
                        debug!(from = %peer.addr, error = %e, status = resp.status, "unparseable request answered");
                        self.send(peer, resp.to_bytes());
                    }
                    None => debug!(from = %peer.addr, error = %e, "unparseable message dropped"),
                }
            }
        }
    }

    fn reply(&mut self, peer: Peer, req: &Request, status: u16, extra: &[(&str, &str)]) {
        let mut resp = response_to(req, status, super::message::reason_phrase(status));
        if status >= 200 && status != 100 {
            resp.set_to_tag(&new_tag());
        }
        for (k, v) in extra {
            resp.headers.push(*k, *v);
        }
        resp.headers.push("Server", self.local.user_agent.clone());
        self.send_stateless(peer, req, resp);
    }

    /// Sends a response outside any transaction (errors for requests that
    /// never became one), to where RFC 3261 §18.2.2 / RFC 3581 say.
    fn send_stateless(&mut self, peer: Peer, req: &Request, resp: Response) {
        let dest = response_peer(peer, req);
        self.send(dest, resp.to_bytes());
    }

    fn on_request(&mut self, peer: Peer, mut req: Request) {
        stamp_via(&mut req, peer.addr);
        if let Err(rej) = check_request(&req) {
            debug!(from = %peer.addr, method = %req.method, status = rej.status, reason = %rej.reason, "request rejected");
            if req.method != Method::Ack {
                if let Some(resp) = error_response(&req, &rej) {
                    self.send_stateless(peer, &req, resp);
                }
            }
            return;
        }
        let Some(key) = server_key(&req) else {
            return;
        };
        let call_id = req.call_id().map(str::to_string).unwrap_or_default();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        let now = Instant::now();
        let resp_peer = response_peer(peer, &req);
        let incoming = IncomingRequest {
            key: key.clone(),
            method: req.method.clone(),
            peer: resp_peer,
            call_id: call_id.clone(),
            cseq,
        };
        match self.layer.on_request(now, incoming) {
            ServerDisposition::Retransmission { resend } => {
                trace!(call_id, "retransmission absorbed");
                if let Some(t) = resend {
                    self.send(t.peer, t.bytes);
                }
            }
            ServerDisposition::AckAbsorbed => {}
            ServerDisposition::AckFor2xx { .. } | ServerDisposition::AckUnmatched => {
                // An ACK for a dialog we do not know is dropped (§17.2.3).
                if !self.deliver(&call_id, DialogEvent::Ack { request: req }) {
                    trace!(call_id, "stray ACK dropped");
                }
            }
            ServerDisposition::Overloaded => {
                if req.method != Method::Ack {
                    self.reply(peer, &req, 503, &[("Retry-After", "5")]);
                }
            }
            ServerDisposition::CancelFor { final_sent, .. } => {
                // RFC 3261 §9.2: answer the CANCEL itself with 200; the call
                // then answers the INVITE with 487.
                let resp = response_to(&req, 200, "OK");
                self.respond_in_txn(&key, resp);
                if !final_sent {
                    self.deliver(&call_id, DialogEvent::Cancel);
                }
            }
            ServerDisposition::New { .. } => {
                self.txn_calls.insert(key.clone(), call_id.clone());
                self.on_new_request(peer, resp_peer, key, call_id, req)
            }
        }
    }

    fn respond_in_txn(&mut self, key: &TransactionKey, mut resp: Response) {
        resp.headers.push("Server", self.local.user_agent.clone());
        let status = resp.status;
        match self
            .layer
            .respond(Instant::now(), key, status, resp.to_bytes())
        {
            Ok(outputs) => self.apply(outputs),
            Err(e) => debug!(error = %e, status, "response not sent"),
        }
    }

    fn on_new_request(
        &mut self,
        peer: Peer,
        resp_peer: Peer,
        key: TransactionKey,
        call_id: String,
        req: Request,
    ) {
        let in_dialog = req
            .to()
            .ok()
            .and_then(|to| to.tag().map(str::to_string))
            .is_some();
        if in_dialog {
            if self.dialogs.contains_key(&call_id) {
                let ev = DialogEvent::Request {
                    request: req,
                    key,
                    peer: resp_peer,
                };
                self.deliver(&call_id, ev);
                return;
            }
            let resp = response_to(&req, 481, "Call/Transaction Does Not Exist");
            self.respond_in_txn(&key, resp);
            return;
        }
        match req.method {
            Method::Invite => self.on_new_invite(peer, resp_peer, key, call_id, req),
            Method::Options => {
                let mut resp = response_to(&req, 200, "OK");
                resp.set_to_tag(&new_tag());
                resp.headers.push("Allow", ALLOW);
                resp.headers.push("Accept", ACCEPT);
                resp.headers.push("Accept-Language", "zh, en");
                resp.headers.push("Supported", "");
                self.respond_in_txn(&key, resp);
            }
            Method::Register => {
                let mut resp = self.on_register(peer, &req);
                resp.set_to_tag(&new_tag());
                self.respond_in_txn(&key, resp);
            }
            Method::Bye | Method::Info | Method::Update | Method::Prack | Method::Cancel => {
                // These only make sense inside a dialog.
                let mut resp = response_to(&req, 481, "Call/Transaction Does Not Exist");
                resp.set_to_tag(&new_tag());
                self.respond_in_txn(&key, resp);
            }
            Method::Other(_) => {
                let mut resp = response_to(&req, 501, "Not Implemented");
                resp.set_to_tag(&new_tag());
                resp.headers.push("Allow", ALLOW);
                self.respond_in_txn(&key, resp);
            }
            _ => {
                let mut resp = response_to(&req, 405, "Method Not Allowed");
                resp.set_to_tag(&new_tag());
                resp.headers.push("Allow", ALLOW);
                self.respond_in_txn(&key, resp);
            }
        }
    }

    /// A REGISTER from an agent's softphone (RFC 3261 §10.3): digest
    /// authentication (401 with a challenge per configured algorithm), the
    /// user may only register its own extension, then the registrar.
    fn on_register(&mut self, peer: Peer, req: &Request) -> Response {
        let now = Utc::now();
        let now_secs = now.timestamp().max(0) as u64;
        let algorithms = self.cfg.registrar.algorithms.clone();
        let users = &self.users;
        let lookup = |user: &str, _realm: &str, alg: Algorithm| {
            let u = users.get(user)?;
            match alg {
                Algorithm::Md5 => u.ha1_md5.clone(),
                Algorithm::Sha256 => u.ha1_sha256.clone(),
                _ => None,
            }
        };
        let auth = match self
            .digest
            .verify_request(req, &algorithms, lookup, now_secs)
        {
            Ok(auth) => auth,
            Err(e) => {
                let mut resp =
                    response_to(req, e.status(), super::message::reason_phrase(e.status()));
                if e.status() == 401 {
                    for challenge in self.digest.challenge(now_secs, e.stale(), &algorithms) {
                        resp.headers.push("WWW-Authenticate", challenge);
                    }
                }
                if !matches!(e, AuthError::Missing) {
                    info!(from = %peer.addr, error = %e, "REGISTER refused");
                }
                return resp;
            }
        };
        let aor = match aor_of(req) {
            Ok(aor) => aor,
            Err(e) => return e.response(req),
        };
        if !self.users.contains_key(&aor) {
            return response_to(req, 404, "Not Found");
        }
        if auth.user != aor {
            info!(user = %auth.user, aor, "REGISTER for another user's extension refused");
            return response_to(req, 403, "Forbidden");
        }
        match self.registrar.on_register(now, &aor, req, peer) {
            Ok(outcome) => {
                if !outcome.changes.is_empty() {
                    info!(aor, from = %peer.addr, changes = outcome.changes.len(), "registration");
                    self.persist(outcome.changes.clone());
                }
                outcome.response(req)
            }
            Err(e) => e.response(req),
        }
    }

    /// Hands binding changes to the store writer, in order.
    fn persist(&self, changes: Vec<BindingChange>) {
        if self.binding_changes.try_send(changes).is_err() {
            warn!("registration store queue full; bindings stay in memory until the next REGISTER");
        }
    }

    fn on_new_invite(
        &mut self,
        peer: Peer,
        resp_peer: Peer,
        key: TransactionKey,
        call_id: String,
        req: Request,
    ) {
        // 100 Trying at once: the call task may take a moment (RFC 3261 §17.2.1).
        let trying = response_to(&req, 100, "Trying");
        self.respond_in_txn(&key, trying);
        let reject = |this: &mut Self, status: u16, extra: &[(&str, &str)]| {
            let mut resp = response_to(&req, status, super::message::reason_phrase(status));
            resp.set_to_tag(&new_tag());
            for (k, v) in extra {
                resp.headers.push(*k, *v);
            }
            this.respond_in_txn(&key, resp);
        };
        if self.draining {
            reject(self, 503, &[("Retry-After", "30")]);
            return;
        }
        let Some(trunk) = self.acl.trunk_for(peer.addr.ip()).map(str::to_string) else {
            info!(from = %peer.addr, call_id, "INVITE from an untrusted source refused (403)");
            reject(self, 403, &[]);
            return;
        };
        if self.dialogs.contains_key(&call_id) {
            // A second INVITE with a Call-ID in use and no To tag: a forked or
            // looped request (RFC 3261 §8.2.2.2).
            reject(self, 482, &[]);
            return;
        }
        let (tx, rx) = mpsc::channel(DIALOG_QUEUE);
        let call = IncomingCall {
            request: req,
            key: key.clone(),
            peer: resp_peer,
            trunk,
            events: rx,
        };
        match self.incoming.try_send(call) {
            Ok(()) => {
                self.dialogs.insert(call_id, tx);
            }
            Err(e) => {
                let call = match e {
                    mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
                };
                warn!(call_id, "call manager busy; 503");
                let mut resp = response_to(&call.request, 503, "Service Unavailable");
                resp.set_to_tag(&new_tag());
                resp.headers.push("Retry-After", "5");
                self.respond_in_txn(&key, resp);
            }
        }
    }

    fn on_response(&mut self, _peer: Peer, resp: Response) {
        let Ok(via) = resp.top_via() else {
            return;
        };
        let Some(branch) = via.branch() else {
            return;
        };
        let Ok(cseq) = resp.cseq() else {
            return;
        };
        let Ok(key) = TransactionKey::new(branch, &via.sent_by(), &cseq.method) else {
            return;
        };
        let call_id = resp.call_id().map(str::to_string).unwrap_or_default();
        match self.layer.on_response(Instant::now(), &key, resp.status) {
            ClientDisposition::Deliver => {
                self.deliver(
                    &call_id,
                    DialogEvent::Response {
                        response: resp,
                        key,
                    },
                );
            }
            ClientDisposition::DeliverAndAck { .. } | ClientDisposition::ResendAck { .. } => {
                // Our INVITEs (to agents) come with the ACD; nothing sends one yet.
                self.deliver(
                    &call_id,
                    DialogEvent::Response {
                        response: resp,
                        key,
                    },
                );
            }
            ClientDisposition::Absorb => {}
            ClientDisposition::Unmatched => {
                trace!(
                    call_id,
                    status = resp.status,
                    "response matching no transaction dropped"
                );
            }
        }
    }
}

async fn recv_udp(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: note where the request really came from
/// in the top Via, so that responses go back there.
fn stamp_via(req: &mut Request, source: SocketAddr) {
    let Some(idx) = req
        .headers
        .0
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Via"))
    else {
        return;
    };
    let value = &req.headers.0[idx].value;
    // Only the first Via of a comma-separated list is stamped.
    let Ok(vias) = super::headers::parse_via_list(value) else {
        return;
    };
    let Some(mut top) = vias.first().cloned() else {
        return;
    };
    let src_ip = source.ip().to_string();
    if top.host.trim_matches(|c| c == '[' || c == ']') != src_ip {
        set_param(&mut top, "received", Some(src_ip));
    }
    if top.rport().is_some() {
        set_param(&mut top, "rport", Some(source.port().to_string()));
    }
    let rest: Vec<String> = vias.iter().skip(1).map(|v| v.to_string()).collect();
    let mut new_value = top.to_string();
    for r in rest {
        new_value.push_str(", ");
        new_value.push_str(&r);
    }
    req.headers.0[idx].value = new_value;
}

fn set_param(via: &mut Via, name: &str, value: Option<String>) {
    match via
        .params
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
    {
        Some(p) => p.1 = value,
        None => via.params.push((name.to_string(), value)),
    }
}

/// Where responses to `req` go: over TCP the connection it came on; over
/// UDP the source address when `rport` was asked for (RFC 3581), else the
/// `received` address and the sent-by port (RFC 3261 §18.2.2).
fn response_peer(peer: Peer, req: &Request) -> Peer {
    if peer.kind == TransportKind::Tcp {
        return peer;
    }
    let Ok(via) = req.top_via() else {
        return peer;
    };
    if via.rport().is_some() {
        return peer;
    }
    let port = via.port.unwrap_or(5060);
    Peer {
        kind: peer.kind,
        addr: SocketAddr::new(peer.addr.ip(), port),
    }
}

/// The server transaction key of `req` (RFC 3261 §17.2.3).
fn server_key(req: &Request) -> Option<TransactionKey> {
    let via = req.top_via().ok()?;
    let cseq = req.cseq().ok()?;
    // A branch that is only the magic cookie (RFC 4475 badbranch) is
    // matched the RFC 2543 way, like one without it.
    let rfc3261 = via
        .branch()
        .and_then(|b| TransactionKey::new(b, &via.sent_by(), &req.method).ok());
    match rfc3261 {
        Some(key) => Some(key),
        None => {
            let call_id = req.call_id().ok()?;
            let from_tag = req
                .from()
                .ok()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default();
            Some(TransactionKey::rfc2543(
                &req.uri,
                call_id,
                cseq.seq,
                &from_tag,
                &via.to_string(),
                &req.method,
            ))
        }
    }
}

/// A fresh branch with the RFC 3261 magic cookie.
pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

/// A fresh tag (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn new_tag() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}
