//! A scripted agent softphone for tests of the daemon as UAC (ringing
//! agents) and of agents' own calls (feature codes).
//!
//! `AgentPhone` registers an extension with digest authentication (MD5,
//! computed here independently of the daemon's code), re-registers and
//! unregisters, answers the daemon's OPTIONS keep-alives in the background
//! (switchable, to play an unreachable phone), and on an INVITE from the
//! daemon lets the test ring (180), answer (200 with an SDP answer picking
//! PCMU or PCMA from the offer), reject (486/603…) or ignore it. Once
//! answered it sends RTP (the phone's `rtp_pump`: 20 ms frames, RFC 4733
//! digits) and records what it receives, can hold/resume (re-INVITE
//! sendonly/sendrecv), BYE, REFER (RFC 3515) and collect NOTIFYs, and waits
//! for the daemon's BYE or CANCEL. It can also place an INVITE (feature
//! codes `*11`…) answering a 401/407 challenge.
//!
//! Every message that arrives is handled in one place (`handle`): requests
//! within the call are answered as a phone would, responses are queued for
//! the method waiting on them. Everything runs on tokio time.

use super::{
    contact_target, first_audio_pt, rand_hex, rtp_pump, sdp_audio_addr, DtmfCmd, Heard, Responder,
    SipSocket, Transport,
};
use bytes::Bytes;
use hotline::sip::message::{response_to, Method, Request, Response, SipMessage};
use md5::{Digest as _, Md5};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// MD5 of `s`, in hex.
pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// A parameter of a `Digest …` challenge (quoted or not).
pub fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[start..];
    Some(match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"')?].to_string(),
        None => rest.split([',', ' ']).next()?.to_string(),
    })
}

/// The `Authorization` value answering an MD5 `challenge` (RFC 2617/7616,
/// qop=auth) for `method` on `uri`.
pub fn digest_authorization(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let realm = challenge_param(challenge, "realm").unwrap_or_default();
    let nonce = challenge_param(challenge, "nonce").unwrap_or_default();
    let opaque = challenge_param(challenge, "opaque").unwrap_or_default();
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let cnonce = rand_hex();
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, cnonce=\"{cnonce}\", opaque=\"{opaque}\", qop=auth, nc=00000001"
    )
}

/// The call the daemon offered this phone.
struct AgentCall {
    invite: Request,
    to_tag: String,
    /// The last response to the INVITE (resent on retransmissions).
    last: Option<Bytes>,
    final_sent: bool,
    acked: bool,
    cancelled: bool,
    bye_received: bool,
    /// Our CSeq in the dialog (requests we send).
    cseq: u32,
    heard: Option<Arc<Mutex<Heard>>>,
    dtmf: Option<mpsc::Sender<DtmfCmd>>,
    sdp_version: u32,
}

pub struct AgentPhone {
    pub user: String,
    password: String,
    server: SocketAddr,
    transport: Transport,
    sip: SipSocket,
    local: SocketAddr,
    rtp: Arc<UdpSocket>,
    answer_options: Arc<AtomicBool>,
    options_answered: Arc<AtomicUsize>,
    reg_call_id: String,
    reg_cseq: u32,
    expires: u32,
    /// INVITEs from the daemon not yet taken by `wait_invite`.
    invites: VecDeque<Request>,
    call: Option<AgentCall>,
    responses: VecDeque<Response>,
    /// NOTIFYs received (answered 200).
    pub notifies: Vec<Request>,
    /// Other requests received in the call (INFO, re-INVITE…), answered 200.
    pub requests: Vec<Request>,
    /// The From user of INVITEs this phone places (its own by default).
    pub from_user: Option<String>,
    /// A call this phone placed and took media for (`talk_placed`).
    placed: Option<Placed>,
}

/// A call the phone placed, answered by the daemon, with media running.
struct Placed {
    call_id: String,
    heard: Arc<Mutex<Heard>>,
    dtmf: mpsc::Sender<DtmfCmd>,
    bye_received: bool,
}

impl AgentPhone {
    /// A phone for extension `user` (password `demo<user>`) talking to the
    /// daemon's SIP address `server` over `transport`.
    pub async fn new(server: SocketAddr, transport: Transport, user: &str) -> AgentPhone {
        let answer_options = Arc::new(AtomicBool::new(true));
        let options_answered = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (answer_options.clone(), options_answered.clone());
        // OPTIONS are answered in the background, like a real phone: a test
        // that is busy elsewhere must not make the agent look unreachable.
        let responder: Responder = Arc::new(move |m: &SipMessage| match m {
            SipMessage::Request(r) if r.method == Method::Options => {
                if !flag.load(Ordering::SeqCst) {
                    // Swallowed: the keep-alive goes unanswered.
                    return Some(Bytes::new());
                }
                count.fetch_add(1, Ordering::SeqCst);
                let mut resp = response_to(r, 200, "OK");
                resp.set_to_tag(&rand_hex());
                resp.headers
                    .push("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY");
                Some(resp.to_bytes())
            }
            _ => None,
        });
        let sip = SipSocket::open_with(transport, server, Some(responder)).await;
        Self::on_socket(
            sip,
            server,
            transport,
            user,
            answer_options,
            options_answered,
        )
        .await
    }

    /// A PSTN gateway standing in for the daemon's outbound trunk: it
    /// listens on `sock` (UDP, the address `[sip.outbound]` names), never
    /// registers, and takes INVITEs to any number like a phone
    /// (`wait_invite`, `answer`, `reject`, `bye`…).
    pub async fn gateway(sock: UdpSocket, server: SocketAddr) -> AgentPhone {
        let sip = SipSocket::open_udp(sock, server, None);
        let (flag, count) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicUsize::new(0)),
        );
        Self::on_socket(sip, server, Transport::Udp, "gateway", flag, count).await
    }

    async fn on_socket(
        sip: SipSocket,
        server: SocketAddr,
        transport: Transport,
        user: &str,
        answer_options: Arc<AtomicBool>,
        options_answered: Arc<AtomicUsize>,
    ) -> AgentPhone {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp bind");
        AgentPhone {
            user: user.to_string(),
            password: format!("demo{user}"),
            server,
            transport,
            local: sip.local,
            sip,
            rtp: Arc::new(rtp),
            answer_options,
            options_answered,
            reg_call_id: format!("reg-{}@agent", rand_hex()),
            reg_cseq: 0,
            expires: 600,
            invites: VecDeque::new(),
            call: None,
            responses: VecDeque::new(),
            notifies: Vec::new(),
            requests: Vec::new(),
            from_user: None,
            placed: None,
        }
    }

    pub fn with_password(mut self, password: &str) -> Self {
        self.password = password.to_string();
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn via_token(&self) -> &'static str {
        match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Our contact URI, as registered.
    pub fn contact_uri(&self) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{}@{}", self.user, self.local),
            Transport::Tcp => format!("sip:{}@{};transport=tcp", self.user, self.local),
        }
    }

    /// Closes the SIP socket (over TCP: the connection), as a phone that
    /// crashed or lost its network; nothing more is sent or read.
    pub fn close(&mut self) {
        self.sip.close();
    }

    /// Whether OPTIONS keep-alives are answered (true at first).
    pub fn answer_options(&self, on: bool) {
        self.answer_options.store(on, Ordering::SeqCst);
    }

    /// OPTIONS answered so far.
    pub fn options_answered(&self) -> usize {
        self.options_answered.load(Ordering::SeqCst)
    }

    async fn send(&self, bytes: impl Into<Bytes>) {
        self.sip.tx.send(bytes.into()).await.expect("sip send");
    }

    async fn send_response(&self, resp: &Response) {
        self.send(resp.to_bytes()).await;
    }

    // ------------------------------------------------------------ registration

    /// REGISTERs (answering the digest challenge); the final status.
    pub async fn register(&mut self) -> u16 {
        self.register_for(self.expires).await
    }

    /// REGISTER with `Expires: 0` for our contact.
    pub async fn unregister(&mut self) -> u16 {
        self.register_for(0).await
    }

    async fn register_for(&mut self, expires: u32) -> u16 {
        let uri = format!("sip:{}", self.server);
        let mut auth = None;
        for _ in 0..2 {
            self.reg_cseq += 1;
            let extra = match &auth {
                Some(a) => format!("Authorization: {a}\r\n"),
                None => String::new(),
            };
            let msg = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{srv}>;tag={tag}\r\nTo: <sip:{user}@{srv}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\nExpires: {expires}\r\n{extra}Content-Length: 0\r\n\r\n",
                t = self.via_token(),
                local = self.local,
                b = rand_hex(),
                user = self.user,
                srv = self.server,
                tag = rand_hex(),
                cid = self.reg_call_id,
                cseq = self.reg_cseq,
                contact = self.contact_uri(),
            );
            self.send(msg).await;
            let r = self
                .final_response("REGISTER", Duration::from_secs(10))
                .await
                .expect("a final response to REGISTER");
            if r.status != 401 || auth.is_some() {
                return r.status;
            }
            let challenge = r
                .headers
                .get_all("WWW-Authenticate")
                .find(|c| c.contains("algorithm=MD5"))
                .expect("an MD5 challenge")
                .to_string();
            auth = Some(digest_authorization(
                &challenge,
                &self.user,
                &self.password,
                "REGISTER",
                &uri,
            ));
        }
        401
    }

    // --------------------------------------------------------------- messages

    /// Reads and handles one message; false if none came within `within`.
    async fn step(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.sip.rx.recv()).await {
            Ok(Some(m)) => {
                self.handle(m).await;
                true
            }
            _ => false,
        }
    }

    /// Handles messages until `done` or `within` passes; `done`'s verdict.
    async fn pump_until(&mut self, within: Duration, done: impl Fn(&AgentPhone) -> bool) -> bool {
        let until = Instant::now() + within;
        loop {
            if done(self) {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.step(left).await;
        }
    }

    /// Handles SIP for `d` (answering what comes).
    pub async fn pump(&mut self, d: Duration) {
        self.pump_until(d, |_| false).await;
    }

    fn is_current_call(&self, req: &Request) -> bool {
        let cid = req.call_id().ok();
        self.call
            .as_ref()
            .is_some_and(|c| c.invite.call_id().ok() == cid)
    }

    async fn handle(&mut self, m: SipMessage) {
        let req = match m {
            SipMessage::Response(r) => {
                self.responses.push_back(r);
                return;
            }
            SipMessage::Request(r) => r,
        };
        let in_call = self.is_current_call(&req);
        match req.method {
            Method::Invite
                if in_call
                    && req
                        .to()
                        .ok()
                        .and_then(|t| t.tag().map(str::to_string))
                        .is_none() =>
            {
                // A retransmission of the INVITE: the last response again.
                if let Some(last) = self.call.as_ref().and_then(|c| c.last.clone()) {
                    self.send(last).await;
                }
            }
            Method::Invite if !in_call => {
                if self
                    .invites
                    .iter()
                    .all(|i| i.call_id().ok() != req.call_id().ok())
                {
                    self.invites.push_back(req);
                }
            }
            Method::Ack => {
                if let Some(c) = self.call.as_mut().filter(|_| in_call) {
                    c.acked = true;
                }
            }
            Method::Cancel if in_call => {
                let mut ok = response_to(&req, 200, "OK");
                ok.set_to_tag(
                    &self
                        .call
                        .as_ref()
                        .map(|c| c.to_tag.clone())
                        .unwrap_or_default(),
                );
                self.send_response(&ok).await;
                let call = self.call.as_mut().expect("call");
                call.cancelled = true;
                if !call.final_sent {
                    // RFC 3261 §9.2: the INVITE ends with 487.
                    let mut r = response_to(&call.invite, 487, "Request Terminated");
                    r.set_to_tag(&call.to_tag);
                    call.final_sent = true;
                    call.last = Some(r.to_bytes());
                    let bytes = r.to_bytes();
                    self.send(bytes).await;
                }
            }
            Method::Bye if in_call => {
                self.send_response(&response_to(&req, 200, "OK")).await;
                if let Some(c) = self.call.as_mut() {
                    c.bye_received = true;
                    if let Some(d) = &c.dtmf {
                        let _ = d.send(DtmfCmd::Pause(true)).await;
                    }
                }
            }
            Method::Bye
                if self
                    .placed
                    .as_ref()
                    .is_some_and(|p| req.call_id().ok() == Some(p.call_id.as_str())) =>
            {
                self.send_response(&response_to(&req, 200, "OK")).await;
                if let Some(p) = self.placed.as_mut() {
                    p.bye_received = true;
                    let _ = p.dtmf.send(DtmfCmd::Pause(true)).await;
                }
            }
            Method::Notify => {
                self.send_response(&response_to(&req, 200, "OK")).await;
                self.notifies.push(req);
            }
            _ if in_call => {
                self.send_response(&response_to(&req, 200, "OK")).await;
                self.requests.push(req);
            }
            _ => {
                let mut r = response_to(&req, 481, "Call/Transaction Does Not Exist");
                r.set_to_tag(&rand_hex());
                self.send_response(&r).await;
            }
        }
    }

    /// Waits for a final response whose CSeq names `method`.
    async fn final_response(&mut self, method: &str, within: Duration) -> Option<Response> {
        let until = Instant::now() + within;
        loop {
            if let Some(i) = self.responses.iter().position(|r| {
                r.status >= 200
                    && r.cseq()
                        .map(|c| c.method.as_str() == method)
                        .unwrap_or(false)
            }) {
                return self.responses.remove(i);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.step(left).await {
                return None;
            }
        }
    }

    // ------------------------------------------------- calls from the daemon

    /// Waits for the daemon's INVITE and makes it the current call (nothing
    /// is answered: `ring`, `answer`, `reject`, or leave it).
    pub async fn wait_invite(&mut self, within: Duration) -> Option<Request> {
        if !self.pump_until(within, |p| !p.invites.is_empty()).await {
            return None;
        }
        let invite = self.invites.pop_front()?;
        self.call = Some(AgentCall {
            invite: invite.clone(),
            to_tag: rand_hex(),
            last: None,
            final_sent: false,
            acked: false,
            cancelled: false,
            bye_received: false,
            cseq: 100,
            heard: None,
            dtmf: None,
            sdp_version: 1,
        });
        Some(invite)
    }

    fn call(&self) -> &AgentCall {
        self.call.as_ref().expect("a call (wait_invite first)")
    }

    fn invite_response(&self, status: u16, reason: &str) -> Response {
        let call = self.call();
        let mut r = response_to(&call.invite, status, reason);
        r.set_to_tag(&call.to_tag);
        r.headers
            .push("Contact", format!("<{}>", self.contact_uri()));
        r
    }

    async fn send_invite_response(&mut self, r: Response) {
        let bytes = r.to_bytes();
        if let Some(c) = self.call.as_mut() {
            c.last = Some(bytes.clone());
            c.final_sent |= r.status >= 200;
        }
        self.send(bytes).await;
    }

    /// Sends the last response to the INVITE again (as a UDP phone does
    /// until the ACK comes).
    pub async fn retransmit(&mut self) {
        if let Some(last) = self.call.as_ref().and_then(|c| c.last.clone()) {
            self.send(last).await;
        }
    }

    /// 180 Ringing.
    pub async fn ring(&mut self) {
        let r = self.invite_response(180, "Ringing");
        self.send_invite_response(r).await;
    }

    fn sdp(&self, pt: u8, direction: &str, version: u32) -> String {
        let port = self.rtp.local_addr().expect("addr").port();
        let name = if pt == 8 { "PCMA" } else { "PCMU" };
        format!(
            "v=0\r\no=agent 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na={direction}\r\n"
        )
    }

    /// 200 OK with our SDP answer (PCMU or PCMA, the offer's first of the
    /// two), then RTP to the offer's address. Returns the payload type.
    pub async fn answer(&mut self) -> u8 {
        let offer = String::from_utf8_lossy(&self.call().invite.body).to_string();
        let pt = offer
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|m| {
                m.split_whitespace()
                    .skip(2)
                    .filter_map(|p| p.parse::<u8>().ok())
                    .find(|p| *p == 0 || *p == 8)
            })
            .or_else(|| first_audio_pt(&offer))
            .unwrap_or(0);
        let mut r = self.invite_response(200, "OK");
        r.headers.push("Content-Type", "application/sdp");
        r.body = Bytes::from(self.sdp(pt, "sendrecv", 1));
        self.send_invite_response(r).await;
        if let Some(remote) = sdp_audio_addr(&offer) {
            let heard = Arc::new(Mutex::new(Heard {
                pt: Some(pt),
                ..Default::default()
            }));
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(rtp_pump(self.rtp.clone(), remote, pt, heard.clone(), rx));
            let call = self.call.as_mut().expect("call");
            call.heard = Some(heard);
            call.dtmf = Some(tx);
        }
        pt
    }

    /// A final rejection (486 Busy Here, 603 Decline…).
    pub async fn reject(&mut self, status: u16) {
        let reason = match status {
            486 => "Busy Here",
            603 => "Decline",
            480 => "Temporarily Unavailable",
            _ => "Rejected",
        };
        let r = self.invite_response(status, reason);
        self.send_invite_response(r).await;
    }

    /// Waits for the ACK of our final response.
    pub async fn wait_ack(&mut self, within: Duration) -> bool {
        self.pump_until(within, |p| p.call.as_ref().is_some_and(|c| c.acked))
            .await
    }

    /// Waits for the daemon's CANCEL (answered 200, the INVITE 487).
    pub async fn wait_cancel(&mut self, within: Duration) -> bool {
        self.pump_until(within, |p| p.call.as_ref().is_some_and(|c| c.cancelled))
            .await
    }

    /// Waits for the daemon's BYE (answered 200).
    pub async fn wait_bye(&mut self, within: Duration) -> bool {
        self.pump_until(within, |p| p.call.as_ref().is_some_and(|c| c.bye_received))
            .await
    }

    /// A request of ours in the call's dialog (we are its UAS: From is the
    /// INVITE's To with our tag, To the INVITE's From; the target is the
    /// daemon's Contact). Returns its final response.
    async fn in_dialog(&mut self, method: &str, extra: &str, body: &str) -> Option<Response> {
        let contact = self.contact_uri();
        let via_token = self.via_token();
        let local = self.local;
        let call = self.call.as_mut().expect("call");
        call.cseq += 1;
        let invite = &call.invite;
        let target =
            contact_target(&invite.headers).unwrap_or_else(|| format!("sip:{}", self.server));
        let msg = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <{contact}>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            t = via_token,
            b = rand_hex(),
            to = invite.headers.get("To").unwrap_or(""),
            tag = call.to_tag,
            from = invite.headers.get("From").unwrap_or(""),
            cid = invite.headers.get("Call-ID").unwrap_or(""),
            cseq = call.cseq,
            len = body.len(),
        );
        let cseq = call.cseq;
        let from = invite.headers.get("From").unwrap_or("").to_string();
        let to = format!(
            "{};tag={}",
            invite.headers.get("To").unwrap_or(""),
            call.to_tag
        );
        let cid = invite.headers.get("Call-ID").unwrap_or("").to_string();
        self.send(msg).await;
        let resp = self.final_response(method, Duration::from_secs(10)).await;
        if method == "INVITE" && resp.as_ref().is_some_and(|r| r.status < 300) {
            // §13.2.2.4: ACK the re-INVITE's 2xx.
            let ack = format!(
                "ACK {target} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: {to}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                t = self.via_token(),
                local = self.local,
                b = rand_hex(),
            );
            self.send(ack).await;
        }
        resp
    }

    /// Hangs up; the BYE's final status.
    pub async fn bye(&mut self) -> Option<u16> {
        let r = self.in_dialog("BYE", "", "").await.map(|r| r.status);
        if let Some(d) = self.call.as_ref().and_then(|c| c.dtmf.as_ref()) {
            let _ = d.send(DtmfCmd::Pause(true)).await;
        }
        r
    }

    async fn reinvite(&mut self, direction: &str) -> Option<u16> {
        let pt = self
            .call()
            .heard
            .as_ref()
            .and_then(|h| h.lock().expect("lock").pt)
            .unwrap_or(0);
        let version = {
            let c = self.call.as_mut().expect("call");
            c.sdp_version += 1;
            c.sdp_version
        };
        let body = self.sdp(pt, direction, version);
        self.in_dialog("INVITE", "Content-Type: application/sdp\r\n", &body)
            .await
            .map(|r| r.status)
    }

    /// Puts the caller on hold (re-INVITE with `a=sendonly`).
    pub async fn hold(&mut self) -> Option<u16> {
        self.reinvite("sendonly").await
    }

    /// Takes the caller off hold (`a=sendrecv`).
    pub async fn resume(&mut self) -> Option<u16> {
        self.reinvite("sendrecv").await
    }

    /// Transfers the caller (RFC 3515 REFER with Refer-To); the REFER's
    /// final status. NOTIFYs that follow land in `notifies`.
    pub async fn refer(&mut self, target: &str) -> Option<u16> {
        let extra = format!(
            "Refer-To: <{target}>\r\nReferred-By: <sip:{}@{}>\r\n",
            self.user, self.local
        );
        self.in_dialog("REFER", &extra, "").await.map(|r| r.status)
    }

    /// Waits until `n` NOTIFYs have come.
    pub async fn wait_notifies(&mut self, n: usize, within: Duration) -> bool {
        self.pump_until(within, |p| p.notifies.len() >= n).await
    }

    /// Sends audio frames of `byte` repeated from now on.
    pub async fn fill(&self, byte: u8) {
        if let Some(d) = self.call().dtmf.as_ref() {
            let _ = d.send(DtmfCmd::Fill(byte)).await;
        }
    }

    /// Sends digits as RFC 4733 events on the call's RTP.
    pub async fn press(&self, digits: &str) {
        if let Some(d) = self.call().dtmf.as_ref() {
            for c in digits.chars() {
                let _ = d.send(DtmfCmd::Digit(c)).await;
            }
        }
    }

    /// RTP packet headers received so far: (seq, timestamp, ssrc, marker).
    pub fn received_packets(&self) -> Vec<(u16, u32, u32, bool)> {
        self.call
            .as_ref()
            .and_then(|c| c.heard.as_ref())
            .map(|h| h.lock().expect("lock").packets.clone())
            .unwrap_or_default()
    }

    /// When each RTP packet arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.call
            .as_ref()
            .and_then(|c| c.heard.as_ref())
            .map(|h| h.lock().expect("lock").arrivals.clone())
            .unwrap_or_default()
    }

    /// Audio payloads received (160-byte frames of the negotiated codec).
    pub fn received_frames(&self) -> Vec<[u8; 160]> {
        self.call
            .as_ref()
            .and_then(|c| c.heard.as_ref())
            .map(|h| h.lock().expect("lock").frames.clone())
            .unwrap_or_default()
    }

    // ----------------------------------------------------- calls it places

    /// Places a call to `dialed` at the daemon, answering one digest
    /// challenge (401 or 407) with a new CSeq and branch; ACKs a non-2xx
    /// final and returns it (a 2xx is ACKed and returned too; hang it up
    /// with the returned response's dialog if needed). `None` if no final
    /// response came.
    pub async fn invite(&mut self, dialed: &str) -> Option<Response> {
        let uri = format!("sip:{dialed}@{}", self.server);
        let call_id = format!("{}@agent", rand_hex());
        let from_tag = rand_hex();
        let mut auth: Option<(String, String)> = None;
        let mut cseq = 0;
        loop {
            cseq += 1;
            let branch = format!("z9hG4bK{}", rand_hex());
            let extra = match &auth {
                Some((name, value)) => format!("{name}: {value}\r\n"),
                None => String::new(),
            };
            let body = self.sdp(0, "sendrecv", 1);
            let via = format!(
                "SIP/2.0/{} {};branch={branch};rport",
                self.via_token(),
                self.local
            );
            let from_user = self.from_user.as_deref().unwrap_or(&self.user);
            let from = format!("<sip:{from_user}@{}>;tag={from_tag}", self.server);
            let msg = format!(
                "INVITE {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <{contact}>\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{body}",
                contact = self.contact_uri(),
                len = body.len(),
            );
            self.send(msg).await;
            let r = self
                .final_response("INVITE", Duration::from_secs(40))
                .await?;
            let to = r.headers.get("To").unwrap_or("").to_string();
            let ack_branch = if r.status >= 300 {
                branch.clone()
            } else {
                format!("z9hG4bK{}", rand_hex())
            };
            let ack = format!(
                "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch={ack_branch};rport\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\n{extra}Content-Length: 0\r\n\r\n",
                t = self.via_token(),
                local = self.local,
            );
            self.send(ack).await;
            let header = match r.status {
                401 => "WWW-Authenticate",
                407 => "Proxy-Authenticate",
                _ => return Some(r),
            };
            if auth.is_some() {
                return Some(r);
            }
            let challenge = r
                .headers
                .get_all(header)
                .find(|c| c.contains("algorithm=MD5"))
                .or_else(|| r.headers.get(header))?
                .to_string();
            let name = if r.status == 401 {
                "Authorization"
            } else {
                "Proxy-Authorization"
            };
            auth = Some((
                name.to_string(),
                digest_authorization(&challenge, &self.user, &self.password, "INVITE", &uri),
            ));
        }
    }

    /// Starts media on a call this phone placed (`ok` is its 2xx with the
    /// daemon's SDP): RTP (PCMU) to the answer's address, received audio
    /// kept (`placed_frames`), the daemon's BYE answered (`wait_placed_bye`).
    pub fn talk_placed(&mut self, ok: &Response) {
        let sdp = String::from_utf8_lossy(&ok.body).to_string();
        let Some(remote) = sdp_audio_addr(&sdp) else {
            return;
        };
        let heard = Arc::new(Mutex::new(Heard {
            pt: Some(0),
            ..Default::default()
        }));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(rtp_pump(self.rtp.clone(), remote, 0, heard.clone(), rx));
        self.placed = Some(Placed {
            call_id: ok.headers.get("Call-ID").unwrap_or("").to_string(),
            heard,
            dtmf: tx,
            bye_received: false,
        });
    }

    /// Sends audio frames of `byte` on the placed call from now on.
    pub async fn fill_placed(&self, byte: u8) {
        if let Some(p) = &self.placed {
            let _ = p.dtmf.send(DtmfCmd::Fill(byte)).await;
        }
    }

    /// Audio payloads received on the placed call.
    pub fn placed_frames(&self) -> Vec<[u8; 160]> {
        self.placed
            .as_ref()
            .map(|p| p.heard.lock().expect("lock").frames.clone())
            .unwrap_or_default()
    }

    /// Waits for the daemon's BYE on the placed call (answered 200).
    pub async fn wait_placed_bye(&mut self, within: Duration) -> bool {
        self.pump_until(within, |p| {
            p.placed.as_ref().is_some_and(|c| c.bye_received)
        })
        .await
    }

    /// Hangs up a call this phone placed (`ok` is its 2xx): BYE within the
    /// dialog (From/To of the 2xx, target its Contact); the BYE's status.
    pub async fn bye_placed(&mut self, ok: &Response) -> Option<u16> {
        let target = contact_target(&ok.headers).unwrap_or_else(|| format!("sip:{}", self.server));
        let cseq = ok.cseq().map(|c| c.seq).unwrap_or(1) + 1;
        let msg = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n",
            t = self.via_token(),
            local = self.local,
            b = rand_hex(),
            from = ok.headers.get("From").unwrap_or(""),
            to = ok.headers.get("To").unwrap_or(""),
            cid = ok.headers.get("Call-ID").unwrap_or(""),
        );
        self.send(msg).await;
        self.final_response("BYE", Duration::from_secs(10))
            .await
            .map(|r| r.status)
    }
}
