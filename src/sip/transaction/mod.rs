//! The SIP transaction layer (RFC 3261 §17, RFC 6026), without I/O.
//!
//! [`TransactionLayer`] owns every client and server transaction, one state
//! machine per file (`server_invite`, `server_non_invite`, `client_invite`,
//! `client_non_invite`), plus one timer queue for all of them. It never reads
//! a clock, parses a message or touches a socket: the endpoint shell feeds it
//! [`TransactionKey`]s built from the parsed top Via and CSeq, status codes,
//! already-serialized `Bytes` and the `now` of `tokio::time::Instant`, and
//! carries out the [`Output`]s it returns.
//!
//! # Driving it from the endpoint shell
//!
//! - **Incoming request**: build the key ([`TransactionKey::new`] from the
//!   top Via's branch and sent-by and the method; [`TransactionKey::rfc2543`]
//!   when the branch lacks `z9hG4bK`) and call [`TransactionLayer::on_request`]
//!   with the peer responses go to (§18.2.2), the Call-ID and the CSeq
//!   number. Act on the [`ServerDisposition`].
//! - **The TU answers**: serialize the response and pass it to
//!   [`TransactionLayer::respond`]; send every [`OutputKind::Send`].
//! - **Outgoing request**: pick a branch ([`TransactionKey::new_branch`]),
//!   serialize, call [`TransactionLayer::send_request`]. A CANCEL sent with the
//!   INVITE's branch also starts the §9.1 64*T1 limit on that INVITE.
//! - **Incoming response**: key from the top Via and the CSeq method, then
//!   [`TransactionLayer::on_response`]; act on the [`ClientDisposition`].
//! - **Time**: sleep until [`TransactionLayer::next_deadline`] (re-read after
//!   every call, it only moves when the layer is called) and then call
//!   [`TransactionLayer::on_timer`] with the current time.
//! - **A send fails** (TCP connection refused or reset):
//!   [`TransactionLayer::on_transport_error`].
//!
//! Time values are deadlines, never sleeps; tests build them by adding
//! `Duration`s to one `Instant::now()`.

pub mod client_invite;
pub mod client_non_invite;
pub mod key;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::{KeyError, TransactionKey, MAGIC_COOKIE};
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use timers::{ConfigError, TimerConfig};

use crate::sip::message::Method;
use crate::sip::transport::Peer;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use thiserror::Error;
use tokio::time::Instant;

/// An input to one transaction state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The machine's deadline has passed.
    Timer,
    /// Server: the request that created the transaction arrived again.
    Request,
    /// Server INVITE: an ACK matched the transaction.
    Ack,
    /// Server: the TU passes a response down.
    Respond { status: u16, bytes: Bytes },
    /// Client: a response matched the transaction.
    Response { status: u16 },
    /// Client INVITE: the TU sent a CANCEL for this INVITE (§9.1).
    CancelSent,
    /// The transport could not deliver (§17.1.4, §17.2.4).
    TransportError,
}

/// What a state machine asks its owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass these bytes to the transport, towards the transaction's peer.
    Send(Bytes),
    /// Pass the message that caused the event up to the TU.
    PassToTu,
    /// Client INVITE: build and send the ACK for the non-2xx final
    /// (§17.1.1.3; see `client_invite`).
    SendAck,
    /// Server INVITE: a 100 Trying is due (§17.2.1).
    SendTrying,
    /// Timer B, F or H fired, a CANCELled INVITE got no final in 64*T1
    /// (§9.1), or a Timer C guard fired: tell the TU (as a 408).
    Timeout,
    /// A 2xx was retransmitted for 64*T1 without an ACK (§13.3.1.4): the TU
    /// should end the session with BYE.
    AckTimeout,
    /// The transport failed (§17.1.4, §17.2.4).
    TransportError,
    /// The machine reached Terminated; its owner destroys it.
    Terminated,
}

/// Errors reported to the TU or the shell. Network input never errs; it is
/// absorbed or reported through a disposition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransactionError {
    #[error("no such transaction: {0}")]
    NoSuchTransaction(Box<TransactionKey>),
    #[error("status {0} is outside 100-699")]
    InvalidStatus(u16),
    #[error("cannot pass a {status} response in state {state}")]
    WrongState { state: &'static str, status: u16 },
    #[error("event does not apply to this transaction (state {state})")]
    NotApplicable { state: &'static str },
    #[error("transaction {0} already exists")]
    Duplicate(Box<TransactionKey>),
    #[error("transaction limit of {0} reached")]
    Overloaded(usize),
    #[error("an ACK is not a transaction: send the 2xx ACK directly (§17.1.1.3)")]
    AckIsNotATransaction,
}

/// Which side of the exchange a transaction is: keys of server and client
/// transactions live in separate tables, so a peer cannot hit one of ours by
/// copying our branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Server,
    Client,
}

/// Layer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    pub timers: TimerConfig,
    /// Cap on live transactions (client and server together). A new request
    /// over the cap gets [`ServerDisposition::Overloaded`] (answer 503
    /// statelessly); a new outgoing request gets
    /// [`TransactionError::Overloaded`].
    pub max_transactions: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            timers: TimerConfig::default(),
            max_transactions: 32_768,
        }
    }
}

/// Bytes to send and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

/// Something for the shell to do, on behalf of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub role: Role,
    pub key: TransactionKey,
    pub kind: OutputKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// Pass to the transport.
    Send { peer: Peer, bytes: Bytes },
    /// Server INVITE: build a 100 Trying from the request (§8.2.6.1: copy
    /// Via, From, To, Call-ID, CSeq and Timestamp) and pass it to
    /// [`TransactionLayer::respond`].
    SendTrying,
    /// Tell the TU the transaction timed out (client: treat as 408; server
    /// INVITE: the ACK never came, Timer H; server waiting on a silent TU).
    Timeout,
    /// Server INVITE: the 2xx was never ACKed; the TU should send BYE.
    AckTimeout,
    /// Tell the TU the transport failed.
    TransportError,
    /// The transaction is gone; its key may be forgotten.
    Terminated,
}

/// A request as the transaction layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// From the top Via and the method (an ACK's key equals its INVITE's).
    pub key: TransactionKey,
    pub method: Method,
    /// Where responses go (§18.2.2: the source address for reliable
    /// transports, Via `received`/`rport`/sent-by for UDP).
    pub peer: Peer,
    /// Call-ID and CSeq number: match an ACK for a 2xx, which has a new
    /// branch, to its INVITE.
    pub call_id: String,
    pub cseq: u32,
}

/// What the shell does with an incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerDisposition {
    /// A new server transaction: pass the request to the TU. For an INVITE,
    /// `send_trying` asks for a 100 Trying now (§17.2.1); otherwise a later
    /// [`OutputKind::SendTrying`] may ask for it.
    New { send_trying: bool },
    /// A retransmission: send `resend` (the last response) if any; do not
    /// bother the TU.
    Retransmission { resend: Option<Transmit> },
    /// An ACK for a non-2xx final, or a retransmitted ACK: the transaction
    /// absorbed it (§17.2.1); nothing to do.
    AckAbsorbed,
    /// The ACK for the 2xx of `invite_key`: pass it to the TU (dialog), which
    /// may find an SDP answer in it. The 2xx retransmission stopped.
    AckFor2xx { invite_key: TransactionKey },
    /// An ACK matching no transaction: pass it to the TU/dialog core, which
    /// drops it unless it knows the dialog (RFC 6026 §8.9).
    AckUnmatched,
    /// A new CANCEL whose INVITE server transaction exists (§9.2). The TU
    /// answers the CANCEL with 200 through `respond` on the CANCEL's key
    /// and, unless `final_sent`, the INVITE with 487 on `invite_key`.
    CancelFor {
        invite_key: TransactionKey,
        final_sent: bool,
    },
    /// Over the transaction cap: answer 503 statelessly (not for ACK).
    Overloaded,
}

/// What the shell does with an incoming response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientDisposition {
    /// Pass the response to the TU.
    Deliver,
    /// A first 300-699 to an INVITE: pass it to the TU, and build the ACK as
    /// described in `client_invite` (§17.1.1.3) and send it to `peer`.
    DeliverAndAck { peer: Peer },
    /// A retransmitted 300-699 to an INVITE: send the same ACK again, do not
    /// bother the TU.
    ResendAck { peer: Peer },
    /// Absorbed by the transaction.
    Absorb,
    /// No client transaction matches (§17.1.3). A 2xx to an INVITE may still
    /// interest the TU (a late fork); anything else is dropped (§18.1.2).
    Unmatched,
}

// Named after the four machines of §17.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone)]
enum Transaction {
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
}

impl Transaction {
    fn handle(&mut self, now: Instant, event: Event) -> Result<Vec<Action>, TransactionError> {
        match self {
            Transaction::ServerInvite(t) => t.handle(now, event),
            Transaction::ServerNonInvite(t) => t.handle(now, event),
            Transaction::ClientInvite(t) => t.handle(now, event),
            Transaction::ClientNonInvite(t) => t.handle(now, event),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            Transaction::ServerInvite(t) => t.deadline(),
            Transaction::ServerNonInvite(t) => t.deadline(),
            Transaction::ClientInvite(t) => t.deadline(),
            Transaction::ClientNonInvite(t) => t.deadline(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Transaction::ServerInvite(t) => t.is_terminated(),
            Transaction::ServerNonInvite(t) => t.is_terminated(),
            Transaction::ClientInvite(t) => t.is_terminated(),
            Transaction::ClientNonInvite(t) => t.is_terminated(),
        }
    }

    fn state_name(&self) -> &'static str {
        match self {
            Transaction::ServerInvite(t) => t.state_name(),
            Transaction::ServerNonInvite(t) => t.state_name(),
            Transaction::ClientInvite(t) => t.state_name(),
            Transaction::ClientNonInvite(t) => t.state_name(),
        }
    }

    fn role(&self) -> Role {
        match self {
            Transaction::ServerInvite(_) | Transaction::ServerNonInvite(_) => Role::Server,
            Transaction::ClientInvite(_) | Transaction::ClientNonInvite(_) => Role::Client,
        }
    }
}

type Id = u64;

#[derive(Debug)]
struct Entry {
    key: TransactionKey,
    peer: Peer,
    txn: Transaction,
    /// The deadline currently in the timer queue for this entry; a queue
    /// item that disagrees is stale (lazy deletion).
    queued: Option<Instant>,
    /// Server INVITE: Call-ID and CSeq number, for the 2xx-ACK index.
    dialog_ref: Option<(String, u32)>,
    /// Whether `dialog_ref` is in the 2xx-ACK index.
    indexed: bool,
}

/// All transactions of one endpoint and their timers.
#[derive(Debug)]
pub struct TransactionLayer {
    config: LayerConfig,
    servers: HashMap<TransactionKey, Id>,
    clients: HashMap<TransactionKey, Id>,
    entries: HashMap<Id, Entry>,
    /// Server INVITEs in Accepted by (Call-ID, CSeq number): the ACK for a
    /// 2xx carries a new branch (§17.1.1.3 vs §13.2.2.4), so it is matched
    /// here instead.
    acks_2xx: HashMap<(String, u32), Id>,
    /// Min-heap of (deadline, id); items whose deadline is no longer the
    /// entry's `queued` are skipped when they surface.
    queue: BinaryHeap<Reverse<(Instant, Id)>>,
    /// Outputs produced outside `on_timer` that have no other way out; they
    /// are returned by the next `on_timer`, due at `deferred_at`.
    deferred: Vec<Output>,
    deferred_at: Option<Instant>,
    next_id: Id,
}

impl TransactionLayer {
    pub fn new(config: LayerConfig) -> Result<Self, ConfigError> {
        config.timers.validate()?;
        if config.max_transactions == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(TransactionLayer {
            config,
            servers: HashMap::new(),
            clients: HashMap::new(),
            entries: HashMap::new(),
            acks_2xx: HashMap::new(),
            queue: BinaryHeap::new(),
            deferred: Vec::new(),
            deferred_at: None,
            next_id: 0,
        })
    }

    pub fn config(&self) -> &LayerConfig {
        &self.config
    }

    /// Live transactions, client and server.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The RFC state name of a transaction, for logs and tests.
    pub fn state(&self, role: Role, key: &TransactionKey) -> Option<&'static str> {
        let id = self.table(role).get(key)?;
        self.entries.get(id).map(|e| e.txn.state_name())
    }

    /// When `on_timer` must next be called; `None` when nothing is pending.
    /// O(1): the queue top is kept live.
    pub fn next_deadline(&self) -> Option<Instant> {
        let top = self.queue.peek().map(|Reverse((t, _))| *t);
        timers::earliest([top, self.deferred_at])
    }

    /// Fires every timer due at `now`, in deadline order.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Output> {
        let mut out = std::mem::take(&mut self.deferred);
        self.deferred_at = None;
        // Collect first, then handle: a handler never re-queues at or before
        // `now` (retransmit timers advance by at least T1 > 0), but
        // collecting keeps this loop finite whatever the machines do.
        let mut due = Vec::new();
        while let Some(&Reverse((t, id))) = self.queue.peek() {
            if t > now {
                break;
            }
            self.queue.pop();
            if let Some(e) = self.entries.get_mut(&id) {
                if e.queued == Some(t) {
                    e.queued = None;
                    due.push(id);
                }
            }
        }
        for id in due {
            let actions = match self.entries.get_mut(&id) {
                Some(e) => e.txn.handle(now, Event::Timer).unwrap_or_default(),
                None => continue,
            };
            out.extend(self.finish(id, actions));
        }
        self.tidy_queue();
        out
    }

    /// An incoming request (§17.2.3 matching, §9.2 CANCEL matching, §17.2.1
    /// and RFC 6026 for ACK).
    pub fn on_request(&mut self, now: Instant, req: IncomingRequest) -> ServerDisposition {
        let IncomingRequest {
            key,
            method,
            peer,
            call_id,
            cseq,
        } = req;
        let key = key.into_method(&method);

        if method == Method::Ack {
            return self.on_ack(now, &key, call_id, cseq);
        }

        if let Some(&id) = self.servers.get(&key) {
            let actions = self.handle_event(id, now, Event::Request);
            let peer = self.entries.get(&id).map(|e| e.peer).unwrap_or(peer);
            let resend = actions.into_iter().find_map(|a| match a {
                Action::Send(bytes) => Some(Transmit { peer, bytes }),
                _ => None,
            });
            return ServerDisposition::Retransmission { resend };
        }

        if self.entries.len() >= self.config.max_transactions {
            return ServerDisposition::Overloaded;
        }

        let reliable = peer.kind.is_reliable();
        let timers = self.config.timers;
        let (txn, actions, dialog_ref) = if method == Method::Invite {
            let (t, a) = ServerInvite::new(now, reliable, timers);
            (Transaction::ServerInvite(t), a, Some((call_id, cseq)))
        } else {
            let (t, a) = ServerNonInvite::new(now, reliable, timers);
            (Transaction::ServerNonInvite(t), a, None)
        };
        let send_trying = actions.contains(&Action::SendTrying);
        let id = self.insert(Role::Server, key.clone(), peer, txn, dialog_ref);
        self.reschedule(id);

        // §9.2: "the UAS MUST match the CANCEL to a transaction ... using the
        // same rules as in Section 17.2.3 [with the method INVITE]". The
        // CANCEL keeps its own server transaction either way.
        if let Some(target) = key.cancel_target() {
            if let Some(e) = self
                .servers
                .get(&target)
                .and_then(|id| self.entries.get(id))
            {
                let final_sent = match &e.txn {
                    Transaction::ServerInvite(t) => t.final_sent(),
                    _ => true,
                };
                return ServerDisposition::CancelFor {
                    invite_key: target,
                    final_sent,
                };
            }
        }
        ServerDisposition::New { send_trying }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        call_id: String,
        cseq: u32,
    ) -> ServerDisposition {
        // §17.2.3: an ACK for a non-2xx has the INVITE's branch, so its key
        // equals the INVITE's. An ACK for a 2xx has a new branch and is
        // matched by Call-ID and CSeq number to an Accepted transaction.
        let id = match self.servers.get(key) {
            Some(&id) => Some(id),
            None => self.acks_2xx.get(&(call_id, cseq)).copied(),
        };
        let Some(id) = id else {
            return ServerDisposition::AckUnmatched;
        };
        let actions = self.handle_event(id, now, Event::Ack);
        match self.entries.get(&id) {
            Some(e) if actions.contains(&Action::PassToTu) => ServerDisposition::AckFor2xx {
                invite_key: e.key.clone(),
            },
            _ => ServerDisposition::AckAbsorbed,
        }
    }

    /// The TU passes a response for server transaction `key` (§17.2.1,
    /// §17.2.2). The returned outputs hold the Send.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        bytes: Bytes,
    ) -> Result<Vec<Output>, TransactionError> {
        let id = *self
            .servers
            .get(key)
            .ok_or_else(|| TransactionError::NoSuchTransaction(Box::new(key.clone())))?;
        let Some(entry) = self.entries.get_mut(&id) else {
            return Err(TransactionError::NoSuchTransaction(Box::new(key.clone())));
        };
        let actions = entry.txn.handle(now, Event::Respond { status, bytes })?;
        // RFC 6026: in Accepted the ACK for the 2xx is expected with a new
        // branch; index the transaction by Call-ID and CSeq to find it.
        if let Transaction::ServerInvite(t) = &entry.txn {
            if t.is_accepted() && !entry.indexed {
                if let Some(dref) = entry.dialog_ref.clone() {
                    if let std::collections::hash_map::Entry::Vacant(v) = self.acks_2xx.entry(dref)
                    {
                        v.insert(id);
                        entry.indexed = true;
                    }
                }
            }
        }
        let out = self.finish(id, actions);
        self.tidy_queue();
        Ok(out)
    }

    /// Starts a client transaction for a request the TU sends (§17.1.1,
    /// §17.1.2). `key` uses our own branch and sent-by. A CANCEL also marks
    /// the INVITE with the same branch (§9.1: same top Via) as cancelled.
    pub fn send_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        method: &Method,
        bytes: Bytes,
        peer: Peer,
    ) -> Result<Vec<Output>, TransactionError> {
        if *method == Method::Ack {
            return Err(TransactionError::AckIsNotATransaction);
        }
        let key = key.into_method(method);
        if self.clients.contains_key(&key) {
            return Err(TransactionError::Duplicate(Box::new(key)));
        }
        if self.entries.len() >= self.config.max_transactions {
            return Err(TransactionError::Overloaded(self.config.max_transactions));
        }
        let reliable = peer.kind.is_reliable();
        let timers = self.config.timers;
        let (txn, actions) = if *method == Method::Invite {
            let (t, a) = ClientInvite::new(now, reliable, timers, bytes);
            (Transaction::ClientInvite(t), a)
        } else {
            let (t, a) = ClientNonInvite::new(now, reliable, timers, bytes);
            (Transaction::ClientNonInvite(t), a)
        };
        if let Some(target) = key.cancel_target() {
            if let Some(&invite) = self.clients.get(&target) {
                let _ = self.handle_event(invite, now, Event::CancelSent);
            }
        }
        let id = self.insert(Role::Client, key, peer, txn, None);
        let out = self.finish(id, actions);
        self.tidy_queue();
        Ok(out)
    }

    /// An incoming response, keyed by its top Via branch and sent-by and its
    /// CSeq method (§17.1.3).
    pub fn on_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
    ) -> ClientDisposition {
        let Some((id, peer)) = self
            .clients
            .get(key)
            .and_then(|id| self.entries.get(id).map(|e| (*id, e.peer)))
        else {
            return ClientDisposition::Unmatched;
        };
        let actions = self.handle_event(id, now, Event::Response { status });
        let deliver = actions.contains(&Action::PassToTu);
        let ack = actions.contains(&Action::SendAck);
        match (deliver, ack) {
            (true, true) => ClientDisposition::DeliverAndAck { peer },
            (false, true) => ClientDisposition::ResendAck { peer },
            (true, false) => ClientDisposition::Deliver,
            (false, false) => ClientDisposition::Absorb,
        }
    }

    /// The transport could not send for this transaction (§17.1.4, §17.2.4):
    /// the TU is told and the transaction ends.
    pub fn on_transport_error(
        &mut self,
        now: Instant,
        role: Role,
        key: &TransactionKey,
    ) -> Vec<Output> {
        let Some(&id) = self.table(role).get(key) else {
            return vec![];
        };
        let actions = match self.entries.get_mut(&id) {
            Some(e) => e.txn.handle(now, Event::TransportError).unwrap_or_default(),
            None => return vec![],
        };
        let out = self.finish(id, actions);
        self.tidy_queue();
        out
    }

    fn table(&self, role: Role) -> &HashMap<TransactionKey, Id> {
        match role {
            Role::Server => &self.servers,
            Role::Client => &self.clients,
        }
    }

    fn insert(
        &mut self,
        role: Role,
        key: TransactionKey,
        peer: Peer,
        txn: Transaction,
        dialog_ref: Option<(String, u32)>,
    ) -> Id {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        match role {
            Role::Server => self.servers.insert(key.clone(), id),
            Role::Client => self.clients.insert(key.clone(), id),
        };
        self.entries.insert(
            id,
            Entry {
                key,
                peer,
                txn,
                queued: None,
                dialog_ref,
                indexed: false,
            },
        );
        id
    }

    /// Feeds a network event whose result becomes a disposition. Anything a
    /// disposition cannot carry (a Terminated, which the machines only
    /// produce from timers today) is deferred to the next `on_timer`.
    fn handle_event(&mut self, id: Id, now: Instant, event: Event) -> Vec<Action> {
        let actions = match self.entries.get_mut(&id) {
            Some(e) => e.txn.handle(now, event).unwrap_or_default(),
            None => return vec![],
        };
        let (direct, rest): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::Send(_) | Action::PassToTu | Action::SendAck));
        let deferred = self.finish(id, rest);
        if !deferred.is_empty() {
            self.deferred.extend(deferred);
            self.deferred_at = timers::earliest([self.deferred_at, Some(now)]);
        }
        self.tidy_queue();
        direct
    }

    /// Turns timer-side actions into outputs, then destroys the transaction
    /// if it terminated (§17.1.1.2: "MUST be destroyed the instant it enters
    /// the 'Terminated' state") or re-queues its deadline.
    fn finish(&mut self, id: Id, actions: Vec<Action>) -> Vec<Output> {
        let Some(e) = self.entries.get(&id) else {
            return vec![];
        };
        let role = e.txn.role();
        let mut out = Vec::with_capacity(actions.len());
        for a in actions {
            let kind = match a {
                Action::Send(bytes) => OutputKind::Send {
                    peer: e.peer,
                    bytes,
                },
                Action::SendTrying => OutputKind::SendTrying,
                Action::Timeout => OutputKind::Timeout,
                Action::AckTimeout => OutputKind::AckTimeout,
                Action::TransportError => OutputKind::TransportError,
                Action::Terminated => OutputKind::Terminated,
                // Only meaningful in a disposition.
                Action::PassToTu | Action::SendAck => continue,
            };
            out.push(Output {
                role,
                key: e.key.clone(),
                kind,
            });
        }
        if e.txn.is_terminated() {
            self.remove(id);
        } else {
            self.reschedule(id);
        }
        out
    }

    fn remove(&mut self, id: Id) {
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        let table = match e.txn.role() {
            Role::Server => &mut self.servers,
            Role::Client => &mut self.clients,
        };
        if table.get(&e.key) == Some(&id) {
            table.remove(&e.key);
        }
        if e.indexed {
            if let Some(dref) = e.dialog_ref {
                if self.acks_2xx.get(&dref) == Some(&id) {
                    self.acks_2xx.remove(&dref);
                }
            }
        }
    }

    fn reschedule(&mut self, id: Id) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let d = e.txn.deadline();
        if d != e.queued {
            if let Some(t) = d {
                self.queue.push(Reverse((t, id)));
            }
            e.queued = d;
        }
    }

    fn is_live(&self, t: Instant, id: Id) -> bool {
        self.entries.get(&id).is_some_and(|e| e.queued == Some(t))
    }

    /// Drops stale items from the top of the queue so `next_deadline` is
    /// exact, and rebuilds the heap when stale items pile up (deadlines that
    /// moved later, e.g. Timer C guards reset by provisionals).
    fn tidy_queue(&mut self) {
        while let Some(&Reverse((t, id))) = self.queue.peek() {
            if self.is_live(t, id) {
                break;
            }
            self.queue.pop();
        }
        if self.queue.len() > 2 * self.entries.len() + 1024 {
            self.queue = self
                .entries
                .iter()
                .filter_map(|(&id, e)| e.queued.map(|t| Reverse((t, id))))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::TransportKind;
    use proptest::prelude::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn udp() -> Peer {
        Peer {
            kind: TransportKind::Udp,
            addr: "192.0.2.1:5060".parse().unwrap(),
        }
    }

    fn tcp() -> Peer {
        Peer {
            kind: TransportKind::Tcp,
            addr: "192.0.2.2:5060".parse().unwrap(),
        }
    }

    fn key(branch: &str, method: &Method) -> TransactionKey {
        TransactionKey::new(&format!("z9hG4bK{branch}"), "192.0.2.1:5060", method).unwrap()
    }

    fn incoming(branch: &str, method: Method, peer: Peer, call_id: &str) -> IncomingRequest {
        IncomingRequest {
            key: key(branch, &method),
            method,
            peer,
            call_id: call_id.to_string(),
            cseq: 1,
        }
    }

    fn layer() -> TransactionLayer {
        TransactionLayer::new(LayerConfig::default()).unwrap()
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    /// Runs every timer up to `until`, returning (time since t0, output).
    fn run(l: &mut TransactionLayer, t0: Instant, until: Duration) -> Vec<(Duration, Output)> {
        let mut out = vec![];
        while let Some(d) = l.next_deadline() {
            if d > t0 + until {
                break;
            }
            for o in l.on_timer(d) {
                out.push((d - t0, o));
            }
        }
        out
    }

    fn send_times(out: &[(Duration, Output)]) -> Vec<u64> {
        out.iter()
            .filter(|(_, o)| matches!(o.kind, OutputKind::Send { .. }))
            .map(|(t, _)| t.as_millis() as u64)
            .collect()
    }

    fn kinds(out: &[(Duration, Output)]) -> Vec<(u64, OutputKind)> {
        out.iter()
            .filter(|(_, o)| !matches!(o.kind, OutputKind::Send { .. }))
            .map(|(t, o)| (t.as_millis() as u64, o.kind.clone()))
            .collect()
    }

    #[test]
    fn invite_rejected_over_udp_full_cycle() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("1", &Method::Invite);
        assert_eq!(
            l.on_request(t0, incoming("1", Method::Invite, udp(), "c1")),
            ServerDisposition::New { send_trying: true }
        );
        let out = l.respond(t0, &inv, 100, b("100")).unwrap();
        assert_eq!(
            out,
            vec![Output {
                role: Role::Server,
                key: inv.clone(),
                kind: OutputKind::Send {
                    peer: udp(),
                    bytes: b("100")
                }
            }]
        );
        // A retransmitted INVITE gets the 100 again.
        assert_eq!(
            l.on_request(t0 + ms(500), incoming("1", Method::Invite, udp(), "c1")),
            ServerDisposition::Retransmission {
                resend: Some(Transmit {
                    peer: udp(),
                    bytes: b("100")
                })
            }
        );
        l.respond(t0 + ms(1000), &inv, 486, b("486")).unwrap();
        assert_eq!(l.state(Role::Server, &inv), Some("Completed"));
        let out = run(&mut l, t0, ms(5000));
        assert_eq!(send_times(&out), vec![1500, 2500, 4500]);
        assert_eq!(
            l.on_request(t0 + ms(5000), incoming("1", Method::Ack, udp(), "c1")),
            ServerDisposition::AckAbsorbed
        );
        assert_eq!(l.state(Role::Server, &inv), Some("Confirmed"));
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(kinds(&out), vec![(10_000, OutputKind::Terminated)]);
        assert!(l.is_empty());
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn timer_h_reports_timeout() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("h", &Method::Invite);
        l.on_request(t0, incoming("h", Method::Invite, udp(), "ch"));
        l.respond(t0, &inv, 480, b("480")).unwrap();
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(
            send_times(&out),
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(
            kinds(&out),
            vec![
                (32_000, OutputKind::Timeout),
                (32_000, OutputKind::Terminated)
            ]
        );
    }

    #[test]
    fn tcp_has_no_retransmissions_and_zero_timers() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("t", &Method::Invite);
        l.on_request(t0, incoming("t", Method::Invite, tcp(), "ct"));
        l.respond(t0, &inv, 486, b("486")).unwrap();
        assert_eq!(l.next_deadline(), Some(t0 + ms(32_000)));
        l.on_request(t0 + ms(20), incoming("t", Method::Ack, tcp(), "ct"));
        assert_eq!(l.next_deadline(), Some(t0 + ms(20)));
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(kinds(&out), vec![(20, OutputKind::Terminated)]);

        let bye = key("tb", &Method::Bye);
        l.on_request(t0, incoming("tb", Method::Bye, tcp(), "ct"));
        l.respond(t0 + ms(30), &bye, 200, b("200")).unwrap();
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(send_times(&out), Vec::<u64>::new());
        assert_eq!(kinds(&out), vec![(30, OutputKind::Terminated)]);
    }

    #[test]
    fn two_xx_retransmitted_until_ack_with_new_branch() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("a", &Method::Invite);
        l.on_request(t0, incoming("a", Method::Invite, udp(), "call-a"));
        l.respond(t0, &inv, 200, b("200")).unwrap();
        assert_eq!(l.state(Role::Server, &inv), Some("Accepted"));
        // A retransmitted INVITE gets the 2xx.
        assert_eq!(
            l.on_request(t0 + ms(100), incoming("a", Method::Invite, udp(), "call-a")),
            ServerDisposition::Retransmission {
                resend: Some(Transmit {
                    peer: udp(),
                    bytes: b("200")
                })
            }
        );
        let out = run(&mut l, t0, ms(8000));
        assert_eq!(send_times(&out), vec![500, 1500, 3500, 7500]);
        // The ACK for a 2xx has a new branch; Call-ID and CSeq find it.
        assert_eq!(
            l.on_request(
                t0 + ms(8000),
                incoming("ack-a", Method::Ack, udp(), "call-a")
            ),
            ServerDisposition::AckFor2xx {
                invite_key: inv.clone()
            }
        );
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(send_times(&out), Vec::<u64>::new());
        assert_eq!(kinds(&out), vec![(32_000, OutputKind::Terminated)]);
        // Timer L is over: a late ACK matches nothing.
        assert_eq!(
            l.on_request(
                t0 + ms(33_000),
                incoming("ack-a", Method::Ack, udp(), "call-a")
            ),
            ServerDisposition::AckUnmatched
        );
        assert!(l.acks_2xx.is_empty());
    }

    #[test]
    fn two_xx_without_ack_reports_ack_timeout_after_32_s() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("n", &Method::Invite);
        l.on_request(t0, incoming("n", Method::Invite, udp(), "call-n"));
        l.respond(t0, &inv, 200, b("200")).unwrap();
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(
            send_times(&out),
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(
            kinds(&out),
            vec![
                (32_000, OutputKind::AckTimeout),
                (32_000, OutputKind::Terminated)
            ]
        );
    }

    #[test]
    fn cancel_matches_the_invite_server_transaction() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("c", &Method::Invite);
        let cancel = key("c", &Method::Cancel);
        l.on_request(t0, incoming("c", Method::Invite, udp(), "call-c"));
        l.respond(t0, &inv, 180, b("180")).unwrap();
        assert_eq!(
            l.on_request(t0 + ms(10), incoming("c", Method::Cancel, udp(), "call-c")),
            ServerDisposition::CancelFor {
                invite_key: inv.clone(),
                final_sent: false
            }
        );
        l.respond(t0 + ms(10), &cancel, 200, b("200 CANCEL"))
            .unwrap();
        l.respond(t0 + ms(10), &inv, 487, b("487")).unwrap();
        // A retransmitted CANCEL gets its 200 again.
        assert_eq!(
            l.on_request(t0 + ms(510), incoming("c", Method::Cancel, udp(), "call-c")),
            ServerDisposition::Retransmission {
                resend: Some(Transmit {
                    peer: udp(),
                    bytes: b("200 CANCEL")
                })
            }
        );
        // A CANCEL for an unknown INVITE is a plain new transaction (481).
        assert_eq!(
            l.on_request(t0, incoming("zz", Method::Cancel, udp(), "call-z")),
            ServerDisposition::New { send_trying: false }
        );
    }

    #[test]
    fn cancel_after_the_final_says_so() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("f", &Method::Invite);
        l.on_request(t0, incoming("f", Method::Invite, udp(), "call-f"));
        l.respond(t0, &inv, 200, b("200")).unwrap();
        assert_eq!(
            l.on_request(t0, incoming("f", Method::Cancel, udp(), "call-f")),
            ServerDisposition::CancelFor {
                invite_key: inv,
                final_sent: true
            }
        );
    }

    #[test]
    fn delayed_trying_is_asked_for_by_timer() {
        let t0 = Instant::now();
        let cfg = LayerConfig {
            timers: TimerConfig {
                trying_delay: ms(200),
                ..TimerConfig::default()
            },
            ..LayerConfig::default()
        };
        let mut l = TransactionLayer::new(cfg).unwrap();
        let inv = key("d", &Method::Invite);
        assert_eq!(
            l.on_request(t0, incoming("d", Method::Invite, udp(), "cd")),
            ServerDisposition::New { send_trying: false }
        );
        assert_eq!(l.next_deadline(), Some(t0 + ms(200)));
        assert_eq!(
            l.on_timer(t0 + ms(200)),
            vec![Output {
                role: Role::Server,
                key: inv,
                kind: OutputKind::SendTrying
            }]
        );
    }

    #[test]
    fn rfc2543_requests_are_matched() {
        let t0 = Instant::now();
        let mut l = layer();
        let via = "SIP/2.0/UDP old.example.com:5060";
        let k = |m: &Method| {
            TransactionKey::rfc2543("sip:hotline@example.com", "old-1", 3, "ft", via, m)
        };
        let req = |m: Method| IncomingRequest {
            key: k(&m),
            method: m,
            peer: udp(),
            call_id: "old-1".into(),
            cseq: 3,
        };
        assert!(matches!(
            l.on_request(t0, req(Method::Invite)),
            ServerDisposition::New { .. }
        ));
        l.respond(t0, &k(&Method::Invite), 486, b("486")).unwrap();
        assert_eq!(
            l.on_request(t0 + ms(100), req(Method::Invite)),
            ServerDisposition::Retransmission {
                resend: Some(Transmit {
                    peer: udp(),
                    bytes: b("486")
                })
            }
        );
        assert_eq!(
            l.on_request(t0 + ms(200), req(Method::Ack)),
            ServerDisposition::AckAbsorbed
        );
        assert_eq!(
            l.state(Role::Server, &k(&Method::Invite)),
            Some("Confirmed")
        );
    }

    #[test]
    fn client_invite_through_the_layer() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("ci", &Method::Invite);
        let out = l
            .send_request(t0, inv.clone(), &Method::Invite, b("INVITE"), udp())
            .unwrap();
        assert_eq!(out.len(), 1);
        let out = run(&mut l, t0, ms(2000));
        assert_eq!(send_times(&out), vec![500, 1500]);
        assert_eq!(
            l.on_response(t0 + ms(2000), &inv, 180),
            ClientDisposition::Deliver
        );
        assert_eq!(
            l.on_response(t0 + ms(3000), &inv, 486),
            ClientDisposition::DeliverAndAck { peer: udp() }
        );
        assert_eq!(
            l.on_response(t0 + ms(3500), &inv, 486),
            ClientDisposition::ResendAck { peer: udp() }
        );
        let out = run(&mut l, t0, ms(60_000));
        assert_eq!(kinds(&out), vec![(35_000, OutputKind::Terminated)]);
        assert_eq!(
            l.on_response(t0 + ms(36_000), &inv, 486),
            ClientDisposition::Unmatched
        );
    }

    #[test]
    fn client_invite_timer_b_and_2xx_accepted() {
        let t0 = Instant::now();
        let mut l = layer();
        let lost = key("lost", &Method::Invite);
        let ok = key("ok", &Method::Invite);
        l.send_request(t0, lost.clone(), &Method::Invite, b("I1"), udp())
            .unwrap();
        l.send_request(t0, ok.clone(), &Method::Invite, b("I2"), tcp())
            .unwrap();
        assert_eq!(
            l.on_response(t0 + ms(10), &ok, 200),
            ClientDisposition::Deliver
        );
        assert_eq!(
            l.on_response(t0 + ms(20), &ok, 200),
            ClientDisposition::Deliver
        );
        let out = run(&mut l, t0, ms(60_000));
        let ends: Vec<(u64, &TransactionKey, OutputKind)> = out
            .iter()
            .filter(|(_, o)| !matches!(o.kind, OutputKind::Send { .. }))
            .map(|(t, o)| (t.as_millis() as u64, &o.key, o.kind.clone()))
            .collect();
        assert_eq!(
            ends,
            vec![
                (32_000, &lost, OutputKind::Timeout),
                (32_000, &lost, OutputKind::Terminated),
                (32_010, &ok, OutputKind::Terminated),
            ]
        );
    }

    #[test]
    fn client_non_invite_schedule_and_cancel_limit() {
        let t0 = Instant::now();
        let mut l = layer();
        let inv = key("x", &Method::Invite);
        let cancel = key("x", &Method::Cancel);
        l.send_request(t0, inv.clone(), &Method::Invite, b("INVITE"), tcp())
            .unwrap();
        assert_eq!(l.on_response(t0, &inv, 180), ClientDisposition::Deliver);
        l.send_request(
            t0 + ms(5000),
            cancel.clone(),
            &Method::Cancel,
            b("CANCEL"),
            udp(),
        )
        .unwrap();
        assert_eq!(
            l.on_response(t0 + ms(5100), &cancel, 200),
            ClientDisposition::Deliver
        );
        // The far end never sends 487: the INVITE is given up 64*T1 after
        // the CANCEL (§9.1).
        let out = run(&mut l, t0, ms(60_000));
        let ends: Vec<(u64, Role, &TransactionKey, OutputKind)> = out
            .iter()
            .map(|(t, o)| (t.as_millis() as u64, o.role, &o.key, o.kind.clone()))
            .collect();
        assert_eq!(
            ends,
            vec![
                (10_100, Role::Client, &cancel, OutputKind::Terminated),
                (37_000, Role::Client, &inv, OutputKind::Timeout),
                (37_000, Role::Client, &inv, OutputKind::Terminated),
            ]
        );
    }

    #[test]
    fn limits_and_misuse() {
        let t0 = Instant::now();
        let cfg = LayerConfig {
            max_transactions: 2,
            ..LayerConfig::default()
        };
        let mut l = TransactionLayer::new(cfg).unwrap();
        l.on_request(t0, incoming("1", Method::Invite, udp(), "c1"));
        l.on_request(t0, incoming("2", Method::Options, udp(), "c2"));
        assert_eq!(
            l.on_request(t0, incoming("3", Method::Invite, udp(), "c3")),
            ServerDisposition::Overloaded
        );
        // Retransmissions and ACKs still match over the cap.
        assert!(matches!(
            l.on_request(t0, incoming("1", Method::Invite, udp(), "c1")),
            ServerDisposition::Retransmission { .. }
        ));
        assert_eq!(
            l.on_request(t0, incoming("9", Method::Ack, udp(), "c9")),
            ServerDisposition::AckUnmatched
        );
        assert_eq!(
            l.send_request(t0, key("4", &Method::Bye), &Method::Bye, b("BYE"), udp()),
            Err(TransactionError::Overloaded(2))
        );
        assert_eq!(
            l.respond(t0, &key("nope", &Method::Bye), 200, b("200")),
            Err(TransactionError::NoSuchTransaction(Box::new(key(
                "nope",
                &Method::Bye
            ))))
        );
        assert!(matches!(
            l.respond(t0, &key("1", &Method::Invite), 42, b("?")),
            Err(TransactionError::InvalidStatus(42))
        ));

        let mut l = layer();
        let k = key("dup", &Method::Options);
        l.send_request(t0, k.clone(), &Method::Options, b("OPTIONS"), udp())
            .unwrap();
        assert_eq!(
            l.send_request(t0, k.clone(), &Method::Options, b("OPTIONS"), udp()),
            Err(TransactionError::Duplicate(Box::new(k.clone())))
        );
        assert_eq!(
            l.send_request(t0, key("ack", &Method::Ack), &Method::Ack, b("ACK"), udp()),
            Err(TransactionError::AckIsNotATransaction)
        );
        // Server and client keys live apart: a request copying our branch
        // and sent-by makes a server transaction, it does not hit ours.
        assert_eq!(
            l.on_request(t0, incoming("dup", Method::Options, udp(), "c")),
            ServerDisposition::New { send_trying: false }
        );
        assert_eq!(l.len(), 2);
        assert!(TransactionLayer::new(LayerConfig {
            max_transactions: 0,
            ..LayerConfig::default()
        })
        .is_err());
    }

    #[test]
    fn transport_error_ends_the_transaction() {
        let t0 = Instant::now();
        let mut l = layer();
        let k = key("te", &Method::Bye);
        l.send_request(t0, k.clone(), &Method::Bye, b("BYE"), tcp())
            .unwrap();
        assert_eq!(l.on_transport_error(t0, Role::Server, &k), vec![]);
        let out = l.on_transport_error(t0, Role::Client, &k);
        let kinds: Vec<OutputKind> = out.into_iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            vec![OutputKind::TransportError, OutputKind::Terminated]
        );
        assert!(l.is_empty());
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn ten_thousand_transactions() {
        let t0 = Instant::now();
        let mut l = layer();
        let n = 10_000u32;
        for i in 0..n {
            let branch = i.to_string();
            let call_id = format!("call-{i}");
            let d = l.on_request(t0, incoming(&branch, Method::Invite, udp(), &call_id));
            assert_eq!(d, ServerDisposition::New { send_trying: true });
            let (status, bytes) = if i % 2 == 0 {
                (486, b("486"))
            } else {
                (200, b("200"))
            };
            l.respond(t0, &key(&branch, &Method::Invite), status, bytes)
                .unwrap();
        }
        assert_eq!(l.len(), n as usize);
        assert_eq!(l.next_deadline(), Some(t0 + ms(500)));
        // ACK the first half: the 486s by key, the 200s by Call-ID/CSeq.
        for i in 0..n / 2 {
            let branch = i.to_string();
            let call_id = format!("call-{i}");
            let d = if i % 2 == 0 {
                l.on_request(
                    t0 + ms(100),
                    incoming(&branch, Method::Ack, udp(), &call_id),
                )
            } else {
                l.on_request(
                    t0 + ms(100),
                    incoming(&format!("ack{i}"), Method::Ack, udp(), &call_id),
                )
            };
            let want = if i % 2 == 0 {
                ServerDisposition::AckAbsorbed
            } else {
                ServerDisposition::AckFor2xx {
                    invite_key: key(&branch, &Method::Invite),
                }
            };
            assert_eq!(d, want);
        }
        let mut sends = 0;
        let mut timeouts = 0;
        let mut ack_timeouts = 0;
        let mut terminated = std::collections::HashSet::new();
        let mut wakeups = 0;
        while let Some(d) = l.next_deadline() {
            wakeups += 1;
            for o in l.on_timer(d) {
                match o.kind {
                    OutputKind::Send { .. } => sends += 1,
                    OutputKind::Timeout => timeouts += 1,
                    OutputKind::AckTimeout => ack_timeouts += 1,
                    OutputKind::Terminated => {
                        assert!(terminated.insert(o.key));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // 2,500 unACKed 486s and 2,500 unACKed 200s, 10 retransmissions each
        // over 32 s; everything shares the same deadlines, so the shell
        // wakes once per distinct instant.
        assert_eq!(sends, 50_000);
        assert_eq!(timeouts, 2_500);
        assert_eq!(ack_timeouts, 2_500);
        assert_eq!(terminated.len(), n as usize);
        assert!(wakeups <= 16, "{wakeups} wake-ups");
        assert!(l.is_empty());
        assert!(l.acks_2xx.is_empty());
        assert!(l.queue.is_empty());
    }

    // ---- property test: random event sequences ----

    #[derive(Debug, Clone)]
    enum Op {
        Request { k: u8, m: u8, tcp: bool },
        Ack2xx { k: u8 },
        Respond { k: u8, m: u8, status: u16 },
        Send { k: u8, m: u8, tcp: bool },
        Response { k: u8, m: u8, status: u16 },
        TransportError { k: u8, m: u8, client: bool },
        Advance { ms: u32 },
    }

    const METHODS: [Method; 4] = [Method::Invite, Method::Ack, Method::Cancel, Method::Bye];

    fn status() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(100u16),
            Just(180),
            Just(200),
            Just(486),
            Just(603),
            0u16..1000
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0u8..4, any::<bool>()).prop_map(|(k, m, tcp)| Op::Request { k, m, tcp }),
            (0u8..4).prop_map(|k| Op::Ack2xx { k }),
            (0u8..4, 0u8..4, status()).prop_map(|(k, m, status)| Op::Respond { k, m, status }),
            (0u8..4, 0u8..4, any::<bool>()).prop_map(|(k, m, tcp)| Op::Send { k, m, tcp }),
            (0u8..4, 0u8..4, status()).prop_map(|(k, m, status)| Op::Response { k, m, status }),
            (0u8..4, 0u8..4, any::<bool>()).prop_map(|(k, m, client)| Op::TransportError {
                k,
                m,
                client
            }),
            (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
        ]
    }

    struct Harness {
        l: TransactionLayer,
        now: Instant,
        last: HashMap<(Role, TransactionKey), Instant>,
        bound: Duration,
    }

    impl Harness {
        fn touch(&mut self, role: Role, key: &TransactionKey) {
            if self.l.state(role, key).is_some() {
                self.last.insert((role, key.clone()), self.now);
            }
        }

        fn check(&mut self, at: Instant, outs: Vec<Output>) {
            for o in outs {
                if o.kind == OutputKind::Terminated {
                    let last = self
                        .last
                        .remove(&(o.role, o.key.clone()))
                        .expect("terminated a transaction never seen");
                    assert!(
                        at <= last + self.bound,
                        "{} terminated {:?} after its last event",
                        o.key,
                        at - last
                    );
                }
            }
        }

        fn advance_to(&mut self, target: Instant) {
            while let Some(d) = self.l.next_deadline() {
                if d > target {
                    break;
                }
                let at = d.max(self.now);
                self.now = at;
                let outs = self.l.on_timer(at);
                self.check(at, outs);
            }
            self.now = self.now.max(target);
        }

        fn apply(&mut self, op: Op) {
            let now = self.now;
            match op {
                Op::Request { k, m, tcp: t } => {
                    let method = METHODS[m as usize].clone();
                    let req = incoming(
                        &k.to_string(),
                        method,
                        if t { tcp() } else { udp() },
                        &format!("c{k}"),
                    );
                    let tk = req.key.clone().into_method(&req.method);
                    self.l.on_request(now, req);
                    self.touch(Role::Server, &tk);
                }
                Op::Ack2xx { k } => {
                    let req = incoming(&format!("ack{k}"), Method::Ack, udp(), &format!("c{k}"));
                    self.l.on_request(now, req);
                    self.touch(Role::Server, &key(&k.to_string(), &Method::Invite));
                }
                Op::Respond { k, m, status } => {
                    let tk = key(&k.to_string(), &METHODS[m as usize]);
                    let outs = self
                        .l
                        .respond(now, &tk, status, b("resp"))
                        .unwrap_or_default();
                    self.touch(Role::Server, &tk);
                    self.check(now, outs);
                }
                Op::Send { k, m, tcp: t } => {
                    let method = METHODS[m as usize].clone();
                    let tk = key(&format!("out{k}"), &method);
                    let outs = self
                        .l
                        .send_request(
                            now,
                            tk.clone(),
                            &method,
                            b("req"),
                            if t { tcp() } else { udp() },
                        )
                        .unwrap_or_default();
                    self.touch(Role::Client, &tk);
                    if let Some(inv) = tk.cancel_target() {
                        self.touch(Role::Client, &inv);
                    }
                    self.check(now, outs);
                }
                Op::Response { k, m, status } => {
                    let tk = key(&format!("out{k}"), &METHODS[m as usize]);
                    self.l.on_response(now, &tk, status);
                    self.touch(Role::Client, &tk);
                }
                Op::TransportError { k, m, client } => {
                    let (role, tk) = if client {
                        (Role::Client, key(&format!("out{k}"), &METHODS[m as usize]))
                    } else {
                        (Role::Server, key(&k.to_string(), &METHODS[m as usize]))
                    };
                    let outs = self.l.on_transport_error(now, role, &tk);
                    self.check(now, outs);
                }
                Op::Advance { ms: d } => {
                    let target = self.now + Duration::from_millis(u64::from(d));
                    self.advance_to(target);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_events_never_panic_and_always_terminate(ops in prop::collection::vec(op(), 1..80)) {
            let timers = TimerConfig {
                // Keep the Timer C guard under the bound being checked.
                c: Duration::from_secs(30),
                ..TimerConfig::default()
            };
            let bound = timers.t1 * 64 + timers.t4;
            let mut h = Harness {
                l: TransactionLayer::new(LayerConfig { timers, max_transactions: 64 }).unwrap(),
                now: Instant::now(),
                last: HashMap::new(),
                bound,
            };
            for op in ops {
                h.apply(op);
                // The queue top is always live, so next_deadline is exact.
                if let Some(&Reverse((t, id))) = h.l.queue.peek() {
                    prop_assert!(h.l.is_live(t, id));
                }
            }
            let mut steps = 0;
            while let Some(d) = h.l.next_deadline() {
                steps += 1;
                prop_assert!(steps < 10_000, "timers never settle");
                h.advance_to(d);
            }
            prop_assert!(h.l.is_empty());
            prop_assert!(h.last.is_empty(), "no Terminated for {:?}", h.last.keys().collect::<Vec<_>>());
            prop_assert!(h.l.acks_2xx.is_empty());
        }
    }
}
