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
//!   Call-ID (so an ACK or CANCEL racing the call task is never lost);
//! - a new INVITE from anyone else is an agent's softphone dialing a feature
//!   code or an extension: digest-challenged like REGISTER (same users,
//!   realm and algorithms), then an `IncomingCall` with `user` set to the
//!   authenticated extension and `trunk` empty; the From user must be that
//!   extension (else 403). With no softphone users configured: 403;
//! - requests within a known dialog, CANCEL, and responses to our requests →
//!   the dialog's channel; unknown dialog → 481;
//! - OPTIONS outside a dialog → 200 with Allow/Accept; REGISTER → the
//!   registrar (digest, `sip::registrar`); other methods → 405 (known) or
//!   501 (unknown).
//!
//! Calls send through `SipHandle`: responses to their server transactions,
//! new requests (the endpoint adds the Via with a fresh branch and runs the
//! client transaction), and ACKs for 2xx.
//!
//! # The daemon as UAC (ringing agents)
//!
//! - `open_dialog(call_id)` routes a Call-ID we originate: responses to our
//!   INVITE and, later, the agent's in-dialog requests (BYE, re-INVITE,
//!   REFER, INFO) arrive on it; `end_dialog` closes it.
//! - `send_request` returns the client transaction key (the branch is chosen
//!   in the handle, so the key is known before the endpoint runs it). If the
//!   endpoint cannot start the transaction (over the transaction cap), a
//!   `DialogEvent::Timeout` for that key follows.
//! - `cancel(&invite_key)`: RFC 3261 §9.1. The CANCEL is built from the
//!   INVITE as sent (Request-URI, Call-ID, From, To, CSeq number, Route, the
//!   one top Via with its branch) and runs in its own non-INVITE client
//!   transaction. It leaves only once a provisional response has arrived
//!   ("If no provisional response has been received, the CANCEL request MUST
//!   NOT be sent; rather, the client MUST wait for the arrival of a
//!   provisional response before sending the request"); a final response or
//!   the INVITE's timeout first means nothing is sent. The INVITE then ends
//!   with 487, delivered like any final response; responses to the CANCEL
//!   itself are absorbed. A 2xx can still cross the CANCEL: the owner ACKs
//!   and BYEs it.
//! - 300-699 to our INVITE are ACKed here (§17.1.1.3, built from the INVITE
//!   as sent, by `outbound::ack_for_non2xx`) and delivered once. Every 2xx
//!   is delivered (`DialogEvent::Response`) each time it arrives —
//!   retransmissions, a second fork's 2xx, and a 2xx after the INVITE
//!   transaction is gone (`ClientDisposition::Unmatched`) while the route is
//!   open — so that the owner ACKs each (§13.2.2.4, RFC 6026 §7.2) with
//!   `Dialog::uac`/`Dialog::ack` and `SipHandle::ack`.
//! - `contacts(aor)`: the agent's live, reachable bindings, best `q` first.
//!   Requests go to a binding's `source` over its transport; over TCP that
//!   is the connection the REGISTER came on. If it is gone, the client
//!   transaction fails at once (a transport error, §17.1.4, delivered as
//!   `DialogEvent::Timeout`) rather than at Timer B; no new connection is
//!   opened towards a softphone (it would not get through its NAT).
//! - The route is per Call-ID: a forked INVITE answered by two UASs gives
//!   two 2xx with different To tags on the same route; the owner keeps one
//!   `Dialog` per tag (and BYEs the one it does not want).
//!
//! # Keep-alive and presence
//!
//! Every live binding gets an OPTIONS each `registrar.keepalive_secs`
//! (schedule in `sip::keepalive`, spread over the interval). No answer
//! (Timer F or a transport error) marks the binding unreachable, so
//! `contacts` skips it; any response marks it reachable again. Whenever an
//! AOR goes from no usable binding to one or back — REGISTER, unregister,
//! expiry, keep-alive — and once per AOR at start for restored bindings, a
//! `Presence` is offered (`try_send`) to `RegistrarState::presence`
//! (`sip::presence`). RFC 5626 CRLF CRLF pings over TCP get a CRLF pong in
//! `transport`; over UDP a lone CRLF CRLF is ignored.

use super::acl::Acl;
use super::digest::{Algorithm, AuthError, AuthOk, DigestRealm};
use super::headers::{CSeq, Via};
use super::keepalive::{BindingId, KeepAlive};
use super::message::{response_to, Method, Request, Response, SipMessage};
use super::outbound;
use super::parse::{parse_message, ParseError};
pub use super::presence::Presence;
use super::presence::PresenceTracker;
use super::registrar::{aor_of, Binding, BindingChange, RegisterError, Registrar};
use super::transaction::{
    ClientDisposition, IncomingRequest, LayerConfig, Output, OutputKind, Role, ServerDisposition,
    TimerConfig, TransactionKey, TransactionLayer,
};
use super::transport::{serve_tcp, Peer, TcpEvent, TransportKind};
use super::validate::{check_request, error_response, Rejection};
use bytes::Bytes;
use chrono::Utc;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

use super::source_guard::{GuardConfig, SourceGuard, Verdict};

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
    /// Rate limits and bans per source ([`super::source_guard`]).
    pub guard: GuardConfig,
}

/// What the registrar starts from, and where its changes go (in order).
pub struct RegistrarState {
    /// Bindings stored before the restart.
    pub bindings: Vec<Binding>,
    /// Every binding change, for the store; a bounded channel drained by
    /// one task so that changes are written in the order they happened.
    pub changes: mpsc::Sender<Vec<BindingChange>>,
    /// Agents becoming reachable or unreachable, for the ACD (bounded;
    /// `try_send`, an event is lost rather than the endpoint blocked).
    pub presence: Option<mpsc::Sender<Presence>>,
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

/// A new call offered by a trusted trunk, or by an authenticated agent's
/// softphone.
#[derive(Debug)]
pub struct IncomingCall {
    pub request: Request,
    pub key: TransactionKey,
    pub peer: Peer,
    /// The trunk it came from; empty for a softphone call.
    pub trunk: String,
    /// The authenticated extension of a softphone call (digest); `None`
    /// for trunk calls.
    pub user: Option<String>,
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

    /// The sent-by of our Via on `kind` (RFC 3261 §18.1.1).
    pub fn sent_by(&self, kind: TransportKind) -> String {
        let port = match kind {
            TransportKind::Udp => self.udp,
            TransportKind::Tcp => self.tcp,
        }
        .map(|a| a.port())
        .unwrap_or(5060);
        format!("{}:{port}", host_literal(self.advertised))
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
        branch: String,
    },
    Cancel {
        invite: TransactionKey,
    },
    OpenDialog {
        call_id: String,
        events: mpsc::Sender<DialogEvent>,
    },
    Contacts {
        aor: String,
        reply: oneshot::Sender<Vec<Binding>>,
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
    /// Registrations read from the store late (the daemon started while
    /// its database did not answer).
    LoadBindings {
        bindings: Vec<Binding>,
    },
    /// A reload's softphone users; the bindings of users taken out go.
    SetUsers {
        users: Vec<crate::config::SipUser>,
        reply: oneshot::Sender<usize>,
    },
}

/// The calls' way to send. Cheap to clone.
#[derive(Clone)]
pub struct SipHandle {
    cmd: mpsc::Sender<Command>,
    pub local: Arc<LocalAddrs>,
    /// The sources' rate limits and bans (shared with the endpoint: read
    /// it for the bans in force).
    pub guard: SharedGuard,
}

/// The endpoint's [`SourceGuard`]: locked by the endpoint for each message
/// (never across an await) and by the HTTP API to list the bans.
pub type SharedGuard = Arc<std::sync::Mutex<SourceGuard>>;

impl SipHandle {
    /// Answers the server transaction `key`.
    pub async fn respond(&self, key: TransactionKey, response: Response) {
        let _ = self.cmd.send(Command::Respond { key, response }).await;
    }

    /// Sends a new request to `peer` in a client transaction; its responses
    /// come back as `DialogEvent::Response` on the Call-ID's channel.
    pub async fn request(&self, request: Request, peer: Peer) {
        let _ = self.send_request(request, peer).await;
    }

    /// Like `request`, returning the key of the client transaction (to
    /// match responses, and to `cancel` an INVITE). `None` if the request
    /// cannot be keyed or the endpoint is gone.
    pub async fn send_request(&self, request: Request, peer: Peer) -> Option<TransactionKey> {
        let branch = new_branch();
        let key =
            TransactionKey::new(&branch, &self.local.sent_by(peer.kind), &request.method).ok()?;
        self.cmd
            .send(Command::Request {
                request,
                peer,
                branch,
            })
            .await
            .ok()?;
        Some(key)
    }

    /// Cancels our INVITE `invite` (RFC 3261 §9.1; see the module header):
    /// sent once a provisional response has arrived, never after a final.
    pub async fn cancel(&self, invite: &TransactionKey) {
        let _ = self
            .cmd
            .send(Command::Cancel {
                invite: invite.clone(),
            })
            .await;
    }

    /// Opens the route for a Call-ID we originate: responses to our
    /// requests and the peer's in-dialog requests come on the returned
    /// channel until `end_dialog`. Open it before sending the INVITE (the
    /// commands are handled in order).
    pub async fn open_dialog(&self, call_id: &str) -> mpsc::Receiver<DialogEvent> {
        let (tx, rx) = mpsc::channel(DIALOG_QUEUE);
        let _ = self
            .cmd
            .send(Command::OpenDialog {
                call_id: call_id.to_string(),
                events: tx,
            })
            .await;
        rx
    }

    /// The live, reachable bindings of `aor`, best `q` first (then the most
    /// recently refreshed): the contacts to ring.
    pub async fn contacts(&self, aor: &str) -> Vec<Binding> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Contacts {
            aor: aor.to_string(),
            reply,
        };
        if self.cmd.send(cmd).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Sends the ACK for a 2xx (outside any transaction, RFC 3261 §13.2.2.4).
    pub async fn ack(&self, request: Request, peer: Peer) {
        let _ = self.cmd.send(Command::Ack { request, peer }).await;
    }

    /// Forgets the dialog's route; later requests for it get 481.
    pub async fn end_dialog(&self, call_id: String) {
        let _ = self.cmd.send(Command::EndDialog { call_id }).await;
    }

    /// Replaces the softphone users (a reload): new ones may register, and
    /// the bindings of those taken out are removed (their credentials get
    /// 401 from then on). Returns how many bindings went.
    pub async fn set_users(&self, users: Vec<crate::config::SipUser>) -> usize {
        let (reply, rx) = oneshot::channel();
        if self
            .cmd
            .send(Command::SetUsers { users, reply })
            .await
            .is_err()
        {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Restores registrations read from the store after the start (the
    /// database did not answer then). An AOR that registered since keeps
    /// what it registered; the stored bindings of the others come back.
    pub async fn load_bindings(&self, bindings: Vec<Binding>) {
        let _ = self.cmd.send(Command::LoadBindings { bindings }).await;
    }

    /// From now on new INVITEs get 503 Service Unavailable.
    pub async fn drain(&self) {
        let _ = self.cmd.send(Command::Drain).await;
    }
}

/// Loads stored bindings into `registrar`; the changes for the store: those
/// dropped by the load and those expired.
fn load_stored(registrar: &mut Registrar, bindings: Vec<Binding>) -> Vec<BindingChange> {
    let dropped = registrar.load(bindings);
    let expired = registrar.expire(Utc::now());
    dropped
        .into_iter()
        .chain(expired)
        .map(BindingChange::Removed)
        .collect()
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
    let gone = load_stored(&mut registrar, registrations.bindings);
    if !gone.is_empty() {
        let _ = registrations.changes.try_send(gone);
    }
    let mut presence = PresenceTracker::new();
    let now_wall = Utc::now();
    let mut restored: Vec<&str> = registrar
        .aors()
        .filter(|aor| !registrar.reachable_contacts(aor, now_wall).is_empty())
        .collect();
    restored.sort_unstable();
    let initial = presence.start(restored);
    if let Some(tx) = &registrations.presence {
        for p in initial {
            let _ = tx.try_send(p);
        }
    }
    let keepalive = KeepAlive::new(Duration::from_secs(cfg.registrar.keepalive_secs));
    let users = cfg
        .registrar
        .users
        .iter()
        .map(|u| (u.user.clone(), u.clone()))
        .collect();
    let guard: SharedGuard = {
        let trunks = acl.clone();
        Arc::new(std::sync::Mutex::new(SourceGuard::new(
            cfg.guard.clone(),
            move |ip| trunks.trunk_for(ip).is_some(),
        )))
    };
    let endpoint = Endpoint {
        guard: guard.clone(),
        digest: DigestRealm::with_random_secret(cfg.registrar.realm.clone()),
        registrar,
        users,
        binding_changes: registrations.changes,
        presence_tx: registrations.presence,
        presence,
        keepalive,
        probes: HashMap::new(),
        client_invites: HashMap::new(),
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
    let mut endpoint = endpoint;
    endpoint.keepalive_sync();
    let task = tokio::spawn(endpoint.run(cmd_rx, tcp_rx, shutdown));
    Ok((
        SipHandle {
            cmd: cmd_tx,
            local,
            guard,
        },
        task,
    ))
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
    presence_tx: Option<mpsc::Sender<Presence>>,
    presence: PresenceTracker,
    keepalive: KeepAlive,
    /// Keep-alive OPTIONS in flight: their transaction → the binding.
    probes: HashMap<TransactionKey, BindingId>,
    /// Our INVITEs still in their client transaction: as sent (to build
    /// the CANCEL and the non-2xx ACK), and the §9.1 CANCEL state.
    client_invites: HashMap<TransactionKey, SentInvite>,
    guard: SharedGuard,
}

/// Who a client transaction's outcome goes to.
enum Owner {
    /// The route of this Call-ID.
    Dialog(String),
    /// The keep-alive of this binding.
    Probe(BindingId),
}

/// An INVITE we sent, while its client transaction lives.
struct SentInvite {
    request: Request,
    peer: Peer,
    provisional: bool,
    final_received: bool,
    cancel: CancelState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    /// Asked for before any provisional response (§9.1: wait for one).
    Pending,
    Sent,
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
            let keepalive = self.keepalive.next_deadline();
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
                        let aors: Vec<String> = gone.iter().map(|g| g.aor.clone()).collect();
                        self.persist(gone.into_iter().map(BindingChange::Removed).collect());
                        self.bindings_changed(aors);
                    }
                }
                _ = sleep_until_opt(keepalive) => self.on_keepalive_timer(),
            }
        }
        debug!("SIP endpoint stopped");
    }

    /// Sends `bytes`; false if there is no way to (no TCP connection to
    /// the peer, its queue closed): a transport error for a client
    /// transaction (§17.1.4). A UDP send error or a full TCP queue is not:
    /// retransmission or the peer's retransmission covers it.
    fn send(&self, peer: Peer, bytes: Bytes) -> bool {
        match peer.kind {
            TransportKind::Udp => {
                if let Some(udp) = &self.udp {
                    if let Err(e) = udp.try_send_to(&bytes, peer.addr) {
                        debug!(to = %peer.addr, error = %e, "udp send failed");
                    }
                }
                true
            }
            TransportKind::Tcp => match self.tcp_writers.get(&peer.addr) {
                Some(w) => match w.try_send(bytes) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        debug!(to = %peer.addr, "tcp write queue full");
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        debug!(to = %peer.addr, "tcp connection closed");
                        false
                    }
                },
                None => {
                    debug!(to = %peer.addr, "no tcp connection to peer");
                    false
                }
            },
        }
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for out in outputs {
            match out.kind {
                OutputKind::Send { peer, bytes } => {
                    if !self.send(peer, bytes) && out.role == Role::Client {
                        // An agent whose TCP connection is gone: fail the
                        // transaction now rather than at Timer B/F.
                        let more =
                            self.layer
                                .on_transport_error(Instant::now(), Role::Client, &out.key);
                        self.apply(more);
                    }
                }
                OutputKind::Timeout | OutputKind::TransportError => {
                    if let Some(id) = self.probes.remove(&out.key) {
                        self.probe_finished(id, false);
                    }
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
                    self.client_invites.remove(&out.key);
                    if let Some(id) = self.probes.remove(&out.key) {
                        self.probe_finished(id, false);
                    }
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
            Command::Request {
                request,
                peer,
                branch,
            } => {
                let call_id = request.call_id().map(str::to_string).unwrap_or_default();
                let method = request.method.clone();
                let owner = Owner::Dialog(call_id.clone());
                match self.start_client(request, peer, &branch, owner) {
                    Some(_) => {}
                    None => {
                        // The handle already returned the key: tell its owner.
                        if let Ok(key) =
                            TransactionKey::new(&branch, &self.local.sent_by(peer.kind), &method)
                        {
                            self.deliver(&call_id, DialogEvent::Timeout { key });
                        }
                    }
                }
            }
            Command::Cancel { invite } => self.cancel_invite(&invite),
            Command::OpenDialog { call_id, events } => {
                self.dialogs.insert(call_id, events);
            }
            Command::Contacts { aor, reply } => {
                let contacts = self
                    .registrar
                    .reachable_contacts(&aor, Utc::now())
                    .into_iter()
                    .cloned()
                    .collect();
                let _ = reply.send(contacts);
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
            Command::LoadBindings { bindings } => self.load_bindings(bindings),
            Command::SetUsers { users, reply } => {
                let _ = reply.send(self.set_users(users));
            }
        }
    }

    fn load_bindings(&mut self, mut bindings: Vec<Binding>) {
        let now = Utc::now();
        bindings.retain(|b| self.registrar.bindings(&b.aor, now).is_empty());
        let mut aors: Vec<String> = bindings.iter().map(|b| b.aor.clone()).collect();
        let gone = load_stored(&mut self.registrar, bindings);
        if !gone.is_empty() {
            self.persist(gone);
        }
        aors.sort_unstable();
        aors.dedup();
        info!(
            aors = aors.len(),
            "registrations restored from the database"
        );
        self.bindings_changed(aors);
    }

    fn set_users(&mut self, users: Vec<crate::config::SipUser>) -> usize {
        self.users = users.into_iter().map(|u| (u.user.clone(), u)).collect();
        let gone: Vec<String> = self
            .registrar
            .aors()
            .filter(|aor| !self.users.contains_key(*aor))
            .map(str::to_string)
            .collect();
        let removed: Vec<BindingChange> = gone
            .iter()
            .flat_map(|aor| self.registrar.remove_aor(aor))
            .map(BindingChange::Removed)
            .collect();
        let n = removed.len();
        if n > 0 {
            info!(users = ?gone, bindings = n, "registrations of users taken out of the configuration removed");
            self.persist(removed);
            self.bindings_changed(gone);
        }
        info!(users = self.users.len(), "softphone users reloaded");
        n
    }

    fn our_via(&self, kind: TransportKind, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            kind.via_token(),
            self.local.sent_by(kind)
        )
    }

    /// Puts our Via (with `branch`) on top of `request` and starts its
    /// client transaction for `owner` (recorded before anything is sent, so
    /// that an immediate transport error reaches it). Returns the key, or
    /// `None` if the layer refused (over the cap, duplicate). An INVITE is
    /// remembered as sent.
    fn start_client(
        &mut self,
        mut request: Request,
        peer: Peer,
        branch: &str,
        owner: Owner,
    ) -> Option<TransactionKey> {
        let via = self.our_via(peer.kind, branch);
        request.headers.0.insert(
            0,
            super::message::Header {
                name: "Via".into(),
                value: via,
            },
        );
        let key =
            TransactionKey::new(branch, &self.local.sent_by(peer.kind), &request.method).ok()?;
        let bytes = request.to_bytes();
        match self
            .layer
            .send_request(Instant::now(), key.clone(), &request.method, bytes, peer)
        {
            Ok(outputs) => {
                match owner {
                    Owner::Dialog(call_id) => {
                        self.txn_calls.insert(key.clone(), call_id);
                    }
                    Owner::Probe(id) => {
                        self.probes.insert(key.clone(), id);
                    }
                }
                if request.method == Method::Invite {
                    self.client_invites.insert(
                        key.clone(),
                        SentInvite {
                            request,
                            peer,
                            provisional: false,
                            final_received: false,
                            cancel: CancelState::None,
                        },
                    );
                }
                self.apply(outputs);
                Some(key)
            }
            Err(e) => {
                debug!(error = %e, "request not sent");
                None
            }
        }
    }

    /// RFC 3261 §9.1 for our INVITE `key`.
    fn cancel_invite(&mut self, key: &TransactionKey) {
        let Some(sent) = self.client_invites.get_mut(key) else {
            // Gone: its final response came and went, or it timed out.
            return;
        };
        if sent.final_received || sent.cancel != CancelState::None {
            // §9.1: "if the original request has generated a final
            // response, the CANCEL SHOULD NOT be sent".
            return;
        }
        if sent.provisional {
            self.send_cancel(key);
        } else {
            sent.cancel = CancelState::Pending;
        }
    }

    fn send_cancel(&mut self, key: &TransactionKey) {
        let Some(sent) = self.client_invites.get_mut(key) else {
            return;
        };
        sent.cancel = CancelState::Sent;
        let cancel = outbound::cancel_for(&sent.request);
        let peer = sent.peer;
        // Same branch as the INVITE (the single Via is copied from it), so
        // the layer keys it as the INVITE's CANCEL and starts the §9.1
        // 64*T1 limit on the INVITE.
        let bytes = cancel.to_bytes();
        match self
            .layer
            .send_request(Instant::now(), key.clone(), &Method::Cancel, bytes, peer)
        {
            Ok(outputs) => self.apply(outputs),
            Err(e) => debug!(error = %e, "CANCEL not sent"),
        }
    }

    /// Keep-alive slots that are due: one OPTIONS per binding.
    fn on_keepalive_timer(&mut self) {
        let due = self.keepalive.due(Instant::now());
        let now = Utc::now();
        for id in due {
            let binding = self
                .registrar
                .bindings(&id.aor, now)
                .into_iter()
                .find(|b| b.contact_uri == id.contact_uri)
                .cloned();
            let Some(binding) = binding else {
                self.keepalive.finished(&id);
                continue;
            };
            let contact = self.local.contact("hotline", binding.source.kind);
            let call_id = format!("{}@hotline", new_tag());
            let (req, peer) =
                outbound::options_to_binding(&binding, &call_id, &new_tag(), &contact);
            trace!(aor = %id.aor, to = %peer.addr, "keep-alive OPTIONS");
            if self
                .start_client(req, peer, &new_branch(), Owner::Probe(id.clone()))
                .is_none()
            {
                self.keepalive.finished(&id);
            }
        }
    }

    /// A keep-alive ended: answered (reachable) or not.
    fn probe_finished(&mut self, id: BindingId, answered: bool) {
        if !self.keepalive.finished(&id) {
            return;
        }
        let before = self
            .registrar
            .bindings(&id.aor, Utc::now())
            .into_iter()
            .find(|b| b.contact_uri == id.contact_uri)
            .map(|b| b.reachable);
        if before == Some(answered) {
            return;
        }
        let changed = if answered {
            self.registrar.mark_reachable(&id.aor, &id.contact_uri)
        } else {
            self.registrar.mark_unreachable(&id.aor, &id.contact_uri)
        };
        if changed {
            if answered {
                info!(aor = %id.aor, contact = %id.contact_uri, "contact reachable again");
            } else {
                info!(aor = %id.aor, contact = %id.contact_uri, "contact unreachable (keep-alive unanswered)");
            }
            self.update_presence(&id.aor);
        }
    }

    /// Offers the ACD a presence change of `aor`, if there is one.
    fn update_presence(&mut self, aor: &str) {
        let usable = !self
            .registrar
            .reachable_contacts(aor, Utc::now())
            .is_empty();
        if let Some(p) = self.presence.update(aor, usable) {
            debug!(aor, reachable = p.reachable, "presence");
            if let Some(tx) = &self.presence_tx {
                if tx.try_send(p).is_err() {
                    warn!(aor, "presence queue full or closed; event dropped");
                }
            }
        }
    }

    /// Bindings of `aors` changed (REGISTER, expiry): presence, keep-alives.
    fn bindings_changed(&mut self, mut aors: Vec<String>) {
        aors.sort_unstable();
        aors.dedup();
        for aor in aors {
            self.update_presence(&aor);
        }
        self.keepalive_sync();
    }

    fn keepalive_sync(&mut self) {
        if !self.keepalive.enabled() {
            return;
        }
        let now = Utc::now();
        let live: Vec<BindingId> = self
            .registrar
            .live_bindings(now)
            .map(|b| BindingId {
                aor: b.aor.clone(),
                contact_uri: b.contact_uri.clone(),
            })
            .collect();
        self.keepalive.sync(Instant::now(), live);
    }

    fn on_bytes(&mut self, peer: Peer, bytes: Bytes) {
        let verdict = match self.guard.lock() {
            Ok(mut g) => {
                let (verdict, ban) = g.check(Instant::now(), peer.addr);
                if let Some(ban) = ban {
                    warn!(ip = %ban.ip, port = ?ban.port, reason = ban.reason.as_str(),
                        secs = self.cfg.guard.ban.as_secs(), "source banned: it flooded us");
                }
                verdict
            }
            Err(_) => Verdict::Allow,
        };
        if verdict != Verdict::Allow {
            trace!(from = %peer.addr, ?verdict, "message dropped by the source guard");
            return;
        }
        if bytes.len() > self.cfg.max_message_bytes {
            debug!(from = %peer.addr, len = bytes.len(), "message over size limit dropped");
            return;
        }
        // RFC 5626 keep-alive over UDP: a lone CRLF CRLF.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        match screen(&bytes, peer.addr) {
            Screened::Unparsable { error, response } => {
                // A request whose start line or framing is broken is still
                // answered (400, or 505 for another SIP version) when enough
                // of it can be read to address a response (RFC 4475 §3.1.2).
                match response {
                    Some(resp) => {
                        debug!(from = %peer.addr, error = %error, status = resp.status, "unparseable request answered");
                        self.send(peer, resp.to_bytes());
                    }
                    None => {
                        debug!(from = %peer.addr, error = %error, "unparseable message dropped")
                    }
                }
            }
            Screened::Rejected {
                request,
                rejection,
                response,
            } => {
                debug!(from = %peer.addr, method = %request.method, status = rejection.status, reason = %rejection.reason, "request rejected");
                if let Some(resp) = response {
                    self.send_stateless(peer, &request, resp);
                }
            }
            Screened::Request {
                request,
                key: Some(key),
            } => self.on_request(peer, request, key),
            Screened::Request { key: None, .. } => {}
            Screened::Response { response, key } => self.on_response(peer, response, key),
        }
    }

    /// A request from `peer` was refused (bad credentials, not a trunk,
    /// unknown user): counted against its address, which is banned after
    /// too many.
    fn refused(&self, peer: Peer) {
        let ban = self
            .guard
            .lock()
            .ok()
            .and_then(|mut g| g.failure(Instant::now(), peer.addr));
        if let Some(ban) = ban {
            warn!(ip = %ban.ip, reason = ban.reason.as_str(), secs = self.cfg.guard.ban.as_secs(),
                "source banned: too many refused requests");
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

    /// A request that passed [`screen`]: stamped, valid, with its server
    /// transaction key.
    fn on_request(&mut self, peer: Peer, req: Request, key: TransactionKey) {
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
        let auth = match self.authenticate(peer, req) {
            Ok(auth) => auth,
            Err(resp) => return resp,
        };
        let aor = match aor_of(req) {
            Ok(aor) => aor,
            Err(e) => return e.response(req),
        };
        if !self.users.contains_key(&aor) {
            self.refused(peer);
            return response_to(req, 404, "Not Found");
        }
        if auth.user != aor {
            info!(user = %auth.user, aor, "REGISTER for another user's extension refused");
            self.refused(peer);
            return response_to(req, 403, "Forbidden");
        }
        match self.registrar.on_register(now, &aor, req, peer) {
            Ok(outcome) => {
                if !outcome.changes.is_empty() {
                    info!(aor, from = %peer.addr, changes = outcome.changes.len(), "registration");
                    self.persist(outcome.changes.clone());
                    self.bindings_changed(vec![aor.clone()]);
                }
                outcome.response(req)
            }
            Err(e) => {
                // Limits are the operator's business; the rest is the phone's.
                match e {
                    RegisterError::TooManyContacts { .. }
                    | RegisterError::TooManyFromSource { .. } => {
                        warn!(aor, from = %peer.addr, error = %e, "registration refused")
                    }
                    _ => debug!(aor, from = %peer.addr, error = %e, "registration refused"),
                }
                e.response(req)
            }
        }
    }

    /// Digest authentication of a softphone's request (REGISTER, INVITE):
    /// the verified credentials, or the response to send — 401 with one
    /// `WWW-Authenticate` challenge per configured algorithm, 400 for
    /// unreadable credentials.
    fn authenticate(&mut self, peer: Peer, req: &Request) -> Result<AuthOk, Response> {
        let now_secs = Utc::now().timestamp().max(0) as u64;
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
        self.digest
            .verify_request(req, &algorithms, lookup, now_secs)
            .map_err(|e| {
                let mut resp =
                    response_to(req, e.status(), super::message::reason_phrase(e.status()));
                if e.status() == 401 {
                    for challenge in self.digest.challenge(now_secs, e.stale(), &algorithms) {
                        resp.headers.push("WWW-Authenticate", challenge);
                    }
                }
                if !matches!(e, AuthError::Missing) {
                    info!(from = %peer.addr, method = %req.method, error = %e, "credentials refused");
                }
                (resp, !matches!(e, AuthError::Missing) && !e.stale())
            })
            .map_err(|(resp, failed)| {
                if failed {
                    self.refused(peer);
                }
                resp
            })
    }

    /// An INVITE from outside every trunk: an agent's softphone (feature
    /// codes, extensions). Digest with 401/WWW-Authenticate, not 407: the
    /// daemon is the UAS the request is for, not a proxy on its way, and
    /// RFC 3261 §22.2 gives UASs 401 (§22.3's 407 is for proxies); the same
    /// challenge as REGISTER, which every softphone already answers. The
    /// From user must be the authenticated extension (an agent cannot
    /// place calls in another's name). `Ok(user)` or the response to send.
    fn authenticate_invite(&mut self, peer: Peer, req: &Request) -> Result<String, Response> {
        if self.users.is_empty() {
            info!(from = %peer.addr, "INVITE from an untrusted source refused (403)");
            self.refused(peer);
            return Err(response_to(req, 403, "Forbidden"));
        }
        let auth = self.authenticate(peer, req)?;
        let from_user = req.from().ok().and_then(|f| f.uri.user.clone());
        if from_user.as_deref() != Some(auth.user.as_str()) {
            info!(user = %auth.user, from = ?from_user, "INVITE in another user's name refused");
            self.refused(peer);
            return Err(response_to(req, 403, "Forbidden"));
        }
        Ok(auth.user)
    }

    /// Hands binding changes to the store writer, in order.
    fn persist(&self, changes: Vec<BindingChange>) {
        if self.binding_changes.try_send(changes).is_err() {
            warn!("registration store queue full; bindings stay in memory until the next REGISTER");
        }
    }

    /// The extension whose live binding's source is `peer` and which the
    /// INVITE's From names, if any.
    fn registered_softphone(&self, peer: Peer, req: &Request) -> Option<String> {
        let user = req.from().ok()?.uri.user_or_number()?.to_string();
        let now = Utc::now();
        self.registrar
            .bindings(&user, now)
            .iter()
            .any(|b| b.source == peer)
            .then_some(user)
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
        let (trunk, user) = match self.acl.trunk_for(peer.addr.ip()) {
            // A trusted address: no challenge. If the INVITE comes from
            // where an agent's softphone registered (same address, port and
            // transport) in that agent's name, it is that softphone (agents
            // on a trusted LAN dial feature codes and colleagues too).
            Some(trunk) => (trunk.to_string(), self.registered_softphone(peer, &req)),
            None => match self.authenticate_invite(peer, &req) {
                Ok(user) => (String::new(), Some(user)),
                Err(mut resp) => {
                    resp.set_to_tag(&new_tag());
                    self.respond_in_txn(&key, resp);
                    return;
                }
            },
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
            user,
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

    /// A response; `key` is its client transaction key and CSeq from
    /// [`screen`] (`None`: it cannot match a transaction and is dropped).
    fn on_response(&mut self, _peer: Peer, resp: Response, key: Option<(TransactionKey, CSeq)>) {
        let Some((key, cseq)) = key else {
            return;
        };
        let call_id = resp.call_id().map(str::to_string).unwrap_or_default();
        let disposition = self.layer.on_response(Instant::now(), &key, resp.status);
        if !matches!(disposition, ClientDisposition::Unmatched) {
            if let Some(id) = self.probes.remove(&key) {
                // Any response, even 4xx/5xx, proves the contact is there.
                self.probe_finished(id, true);
                return;
            }
        }
        if cseq.method == Method::Cancel {
            // The CANCEL's own response: the INVITE's 487 is what counts.
            return;
        }
        if cseq.method == Method::Invite {
            self.track_invite_response(&key, resp.status);
        }
        match disposition {
            ClientDisposition::Deliver => {
                self.deliver(
                    &call_id,
                    DialogEvent::Response {
                        response: resp,
                        key,
                    },
                );
            }
            ClientDisposition::DeliverAndAck { peer } => {
                self.send_non2xx_ack(&key, &resp, peer);
                self.deliver(
                    &call_id,
                    DialogEvent::Response {
                        response: resp,
                        key,
                    },
                );
            }
            ClientDisposition::ResendAck { peer } => self.send_non2xx_ack(&key, &resp, peer),
            ClientDisposition::Absorb => {}
            ClientDisposition::Unmatched
                if cseq.method == Method::Invite && (200..300).contains(&resp.status) =>
            {
                // RFC 6026 §7.2 / §13.2.2.4: a 2xx after the transaction
                // ended (a late fork or retransmission) still needs an ACK
                // from the dialog's owner.
                if !self.deliver(
                    &call_id,
                    DialogEvent::Response {
                        response: resp,
                        key,
                    },
                ) {
                    trace!(call_id, "late 2xx for no open dialog dropped");
                }
            }
            ClientDisposition::Unmatched => {
                trace!(
                    call_id,
                    status = resp.status,
                    "response matching no transaction dropped"
                );
            }
        }
    }

    /// Notes provisional/final responses of our INVITE `key` for §9.1: a
    /// CANCEL waiting for a provisional response leaves now; one waiting
    /// when a final response came is dropped.
    fn track_invite_response(&mut self, key: &TransactionKey, status: u16) {
        let Some(sent) = self.client_invites.get_mut(key) else {
            return;
        };
        if status < 200 {
            sent.provisional = true;
            if sent.cancel == CancelState::Pending {
                self.send_cancel(key);
            }
        } else {
            sent.final_received = true;
        }
    }

    /// §17.1.1.3: the ACK for a 300-699, to the INVITE's peer.
    fn send_non2xx_ack(&mut self, key: &TransactionKey, resp: &Response, peer: Peer) {
        let Some(sent) = self.client_invites.get(key) else {
            return;
        };
        let ack = outbound::ack_for_non2xx(&sent.request, resp);
        self.send(peer, ack.to_bytes());
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

/// What the endpoint makes of one received message (a UDP datagram, or a
/// message framed on a TCP stream) before any transaction, dialog,
/// registrar or source-guard state is involved: the result of [`screen`].
#[derive(Debug)]
pub enum Screened {
    /// `parse_message` refused the bytes; `response` is the 400/505/513 to
    /// send back to the source when they still read as an addressable
    /// request (RFC 4475 §3.1.2), else they are dropped.
    Unparsable {
        error: ParseError,
        response: Option<Response>,
    },
    /// A request (its top Via stamped) that `check_request` refused;
    /// `response` is the error response to send (RFC 3261 §18.2.2), none
    /// for an ACK or a request that cannot be addressed.
    Rejected {
        request: Request,
        rejection: Rejection,
        response: Option<Response>,
    },
    /// A valid request, its top Via stamped with the source (RFC 3261
    /// §18.2.1, RFC 3581 §4), and its server transaction key (§17.2.3);
    /// `None`: no key can be made and it is dropped.
    Request {
        request: Request,
        key: Option<TransactionKey>,
    },
    /// A response, with the client transaction key and CSeq it is matched
    /// by (§17.1.3); `None`: no usable top Via branch or CSeq, dropped.
    Response {
        response: Response,
        key: Option<(TransactionKey, CSeq)>,
    },
}

/// The stateless first steps for bytes received from `source`, exactly as
/// the endpoint runs them on every message that passed the source guard
/// and the size limit: parse, answer what cannot be parsed, stamp the top
/// Via, validate (RFC 3261 §8.2), and find the transaction key. Pure: no
/// I/O, nothing remembered (the `sip_message` fuzz target runs it).
pub fn screen(bytes: &[u8], source: SocketAddr) -> Screened {
    match parse_message(bytes) {
        Err(error) => Screened::Unparsable {
            response: super::validate::response_to_unparsable(bytes, &error),
            error,
        },
        Ok(SipMessage::Request(mut request)) => {
            stamp_via(&mut request, source);
            match check_request(&request) {
                Err(rejection) => Screened::Rejected {
                    response: if request.method == Method::Ack {
                        None
                    } else {
                        error_response(&request, &rejection)
                    },
                    request,
                    rejection,
                },
                Ok(()) => Screened::Request {
                    key: server_key(&request),
                    request,
                },
            }
        }
        Ok(SipMessage::Response(response)) => Screened::Response {
            key: client_key(&response),
            response,
        },
    }
}

/// The client transaction key a response matches on (RFC 3261 §17.1.3):
/// the top Via's branch and sent-by, and the CSeq method.
fn client_key(resp: &Response) -> Option<(TransactionKey, CSeq)> {
    let via = resp.top_via().ok()?;
    let branch = via.branch()?;
    let cseq = resp.cseq().ok()?;
    let key = TransactionKey::new(branch, &via.sent_by(), &cseq.method).ok()?;
    Some((key, cseq))
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
