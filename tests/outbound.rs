//! The daemon as UAC: ringing agents' registered contacts (RFC 3261 §13,
//! §9.1 CANCEL, §17.1.1.3 ACK of non-2xx, §13.2.2.4 ACK of 2xx), OPTIONS
//! keep-alive and presence, and agents' own INVITEs (feature codes) with
//! digest authentication. The test plays the ACD through `SipHandle`; the
//! agents are `support::agent::AgentPhone`s over real UDP/TCP.

mod support;

use hotline::sip::acl::Acl;
use hotline::sip::dialog::Dialog;
use hotline::sip::endpoint::{
    self, new_tag, DialogEvent, EndpointConfig, Presence, RegistrarState, SipHandle,
};
use hotline::sip::message::{response_to, Method, Request, Response};
use hotline::sip::outbound::invite_to_binding;
use hotline::sip::registrar::Binding;
use hotline::sip::transaction::{TimerConfig, TransactionKey};
use hotline::sip::transport::{Peer, TransportKind};
use std::time::Duration;
use support::agent::AgentPhone;
use support::{ServerOptions, TestServer, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const SEC: Duration = Duration::from_secs(1);

/// The next event on a dialog route.
async fn event(rx: &mut mpsc::Receiver<DialogEvent>, within: Duration) -> Option<DialogEvent> {
    timeout(within, rx.recv()).await.ok().flatten()
}

/// The next response on a route (other events are a failure).
async fn response(rx: &mut mpsc::Receiver<DialogEvent>, within: Duration) -> Response {
    match event(rx, within).await {
        Some(DialogEvent::Response { response, .. }) => response,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// An SDP offer whose audio goes to `rtp`.
fn offer(rtp: &UdpSocket) -> String {
    let port = rtp.local_addr().unwrap().port();
    format!(
        "v=0\r\no=hotline 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// One leg of the ACD ringing a binding.
struct Leg {
    invite: Request,
    key: TransactionKey,
    peer: Peer,
    events: mpsc::Receiver<DialogEvent>,
    call_id: String,
}

async fn ring(sip: &SipHandle, binding: &Binding, sdp: &str) -> Leg {
    let call_id = format!("acd-{}@hotline", new_tag());
    let contact = sip.local.contact("acd", binding.source.kind);
    let (invite, peer) = invite_to_binding(
        binding,
        "13800138000",
        Some("Caller"),
        &call_id,
        &new_tag(),
        &contact,
        sdp,
    );
    let events = sip.open_dialog(&call_id).await;
    let key = sip
        .send_request(invite.clone(), peer)
        .await
        .expect("a transaction key");
    Leg {
        invite,
        key,
        peer,
        events,
        call_id,
    }
}

async fn registered(server: &TestServer, transport: Transport, user: &str) -> AgentPhone {
    let addr = match transport {
        Transport::Udp => server.sip_udp(),
        Transport::Tcp => server.sip_tcp(),
    };
    let mut phone = AgentPhone::new(addr, transport, user).await;
    assert_eq!(phone.register().await, 200);
    phone
}

/// A daemon, its handle, agent 1001 registered over UDP, its binding, and
/// a socket for the daemon side's RTP.
async fn one_agent() -> (TestServer, SipHandle, AgentPhone, Binding, UdpSocket) {
    let server = TestServer::start().await;
    let sip = server.server.sip();
    let agent = registered(&server, Transport::Udp, "1001").await;
    let binding = sip.contacts("1001").await.remove(0);
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (server, sip, agent, binding, rtp)
}

#[tokio::test]
async fn a_registered_agent_is_a_contact_with_its_real_source() {
    let server = TestServer::start().await;
    let sip = server.server.sip();
    assert!(sip.contacts("1001").await.is_empty());
    let mut udp = registered(&server, Transport::Udp, "1001").await;
    let tcp = registered(&server, Transport::Tcp, "1002").await;

    let c = sip.contacts("1001").await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].contact_uri, udp.contact_uri());
    assert_eq!(
        c[0].source,
        Peer {
            kind: TransportKind::Udp,
            addr: udp.local_addr()
        }
    );
    let c = sip.contacts("1002").await;
    assert_eq!(c[0].source.kind, TransportKind::Tcp);
    assert_eq!(c[0].source.addr, tcp.local_addr());

    assert_eq!(udp.unregister().await, 200);
    assert!(sip.contacts("1001").await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn ring_answer_ack_and_bye_both_ways_over_udp_and_tcp() {
    let server = TestServer::start().await;
    let sip = server.server.sip();
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut agent = registered(&server, transport, "1001").await;
        let binding = sip.contacts("1001").await.remove(0);
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();

        // Call 1: answered, the agent hangs up.
        let mut leg = ring(&sip, &binding, &offer(&rtp)).await;
        let got = agent
            .wait_invite(5 * SEC)
            .await
            .expect("INVITE at the agent");
        assert_eq!(got.uri, binding.contact_uri);
        assert_eq!(got.call_id().unwrap(), leg.call_id);
        agent.ring().await;
        assert_eq!(response(&mut leg.events, 5 * SEC).await.status, 180);
        let pt = agent.answer().await;
        assert_eq!(pt, 8, "PCMA, the offer's first G.711");
        let ok = response(&mut leg.events, 5 * SEC).await;
        assert_eq!(ok.status, 200);
        let dialog = Dialog::uac(&leg.invite, &ok, leg.peer).unwrap();
        assert_eq!(dialog.remote_target, agent.contact_uri());
        sip.ack(dialog.ack(&leg.invite, "hotline"), leg.peer).await;
        assert!(agent.wait_ack(5 * SEC).await, "the 2xx was ACKed");

        // Media flows both ways.
        let mut buf = [0u8; 1500];
        let (n, from) = timeout(5 * SEC, rtp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n >= 12 + 160);
        assert_eq!(buf[1] & 0x7f, 8, "agent sends PCMA");
        let mut pkt = vec![0x80, 8, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        pkt.extend(std::iter::repeat_n(0x55u8, 160));
        rtp.send_to(&pkt, from).await.unwrap();
        agent.pump(SEC / 5).await;
        assert!(
            agent
                .received_frames()
                .iter()
                .any(|f| f.iter().all(|b| *b == 0x55)),
            "the agent recorded our payload"
        );

        let bye = tokio::spawn(async move {
            let status = agent.bye().await;
            (agent, status)
        });
        match event(&mut leg.events, 5 * SEC).await {
            Some(DialogEvent::Request { request, key, .. }) => {
                assert_eq!(request.method, Method::Bye);
                sip.respond(key, response_to(&request, 200, "OK")).await;
            }
            other => panic!("expected the agent's BYE, got {other:?}"),
        }
        let (mut agent, status) = bye.await.unwrap();
        assert_eq!(status, Some(200));
        sip.end_dialog(leg.call_id.clone()).await;

        // Call 2: answered, the daemon hangs up.
        let mut leg = ring(&sip, &binding, &offer(&rtp)).await;
        agent.wait_invite(5 * SEC).await.expect("second INVITE");
        agent.answer().await;
        let ok = response(&mut leg.events, 5 * SEC).await;
        let mut d2 = Dialog::uac(&leg.invite, &ok, leg.peer).unwrap();
        sip.ack(d2.ack(&leg.invite, "hotline"), leg.peer).await;
        assert!(agent.wait_ack(5 * SEC).await);
        let bye = d2.request(Method::Bye, "hotline");
        sip.request(bye, leg.peer).await;
        assert!(agent.wait_bye(5 * SEC).await, "BYE reached the agent");
        let r = response(&mut leg.events, 5 * SEC).await;
        assert_eq!((r.status, r.cseq().unwrap().method), (200, Method::Bye));
        sip.end_dialog(leg.call_id).await;
        assert_eq!(agent.unregister().await, 200);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_waits_for_a_provisional_and_the_invite_ends_with_487() {
    let (server, sip, mut agent, binding, rtp) = one_agent().await;
    let mut leg = ring(&sip, &binding, &offer(&rtp)).await;
    agent.wait_invite(5 * SEC).await.expect("INVITE");
    // Cancelled before any provisional: §9.1, nothing may leave yet.
    sip.cancel(&leg.key).await;
    assert!(!agent.wait_cancel(SEC).await, "CANCEL sent before a 1xx");
    agent.ring().await;
    assert!(agent.wait_cancel(5 * SEC).await, "CANCEL after the 180");
    assert_eq!(response(&mut leg.events, 5 * SEC).await.status, 180);
    let r = response(&mut leg.events, 5 * SEC).await;
    assert_eq!(r.status, 487);
    assert!(agent.wait_ack(5 * SEC).await, "the 487 was ACKed");
    // Nothing else: no 200, no CANCEL response leaks to the route.
    assert!(event(&mut leg.events, 2 * SEC).await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn two_contacts_ring_in_parallel_one_answers_the_other_is_cancelled() {
    let server = TestServer::start().await;
    let sip = server.server.sip();
    let mut desk = registered(&server, Transport::Udp, "1001").await;
    let mut laptop = registered(&server, Transport::Tcp, "1001").await;
    let contacts = sip.contacts("1001").await;
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let by_addr = |a| {
        contacts
            .iter()
            .find(|b| b.source.addr == a)
            .unwrap()
            .clone()
    };
    let mut leg_desk = ring(&sip, &by_addr(desk.local_addr()), &offer(&rtp)).await;
    let mut leg_laptop = ring(&sip, &by_addr(laptop.local_addr()), &offer(&rtp)).await;
    desk.wait_invite(5 * SEC).await.expect("desk rings");
    laptop.wait_invite(5 * SEC).await.expect("laptop rings");
    desk.ring().await;
    laptop.ring().await;
    assert_eq!(response(&mut leg_desk.events, 5 * SEC).await.status, 180);
    assert_eq!(response(&mut leg_laptop.events, 5 * SEC).await.status, 180);

    laptop.answer().await;
    let ok = response(&mut leg_laptop.events, 5 * SEC).await;
    assert_eq!(ok.status, 200);
    let d = Dialog::uac(&leg_laptop.invite, &ok, leg_laptop.peer).unwrap();
    sip.ack(d.ack(&leg_laptop.invite, "hotline"), leg_laptop.peer)
        .await;
    sip.cancel(&leg_desk.key).await;
    assert!(laptop.wait_ack(5 * SEC).await);
    assert!(desk.wait_cancel(5 * SEC).await, "the desk phone got CANCEL");
    assert_eq!(response(&mut leg_desk.events, 5 * SEC).await.status, 487);
    server.shutdown().await;
}

#[tokio::test]
async fn a_rejection_is_delivered_and_acked() {
    let (server, sip, mut agent, binding, _rtp) = one_agent().await;
    for status in [486, 603] {
        let mut leg = ring(&sip, &binding, "").await;
        agent.wait_invite(5 * SEC).await.expect("INVITE");
        agent.reject(status).await;
        let r = response(&mut leg.events, 5 * SEC).await;
        assert_eq!(r.status, status);
        assert!(agent.wait_ack(5 * SEC).await, "§17.1.1.3 ACK");
        // The CANCEL of a finished INVITE is not sent.
        sip.cancel(&leg.key).await;
        assert!(!agent.wait_cancel(SEC).await);
        sip.end_dialog(leg.call_id).await;
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_invite_times_out() {
    let (server, sip, mut agent, binding, _rtp) = one_agent().await;
    let mut leg = ring(&sip, &binding, "").await;
    agent.wait_invite(5 * SEC).await.expect("INVITE");
    // The agent never answers (its phone absorbs the retransmissions).
    let ev = loop {
        tokio::select! {
            ev = event(&mut leg.events, 40 * SEC) => break ev,
            _ = agent.pump(40 * SEC) => {}
        }
    };
    match ev {
        Some(DialogEvent::Timeout { key }) => assert_eq!(key, leg.key),
        other => panic!("expected Timeout, got {other:?}"),
    }
    server.shutdown().await;
}

/// The SIP endpoint alone (the test config's registrar), with the
/// presence channel in the test's hands rather than the ACD's.
struct BareEndpoint {
    sip: SipHandle,
    presence: mpsc::Receiver<Presence>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _incoming: mpsc::Receiver<hotline::sip::endpoint::IncomingCall>,
    _changes: mpsc::Receiver<Vec<hotline::sip::registrar::BindingChange>>,
    _dir: tempfile::TempDir,
}

impl BareEndpoint {
    async fn start(restored: Vec<Binding>) -> BareEndpoint {
        let dir = tempfile::tempdir().unwrap();
        let cfg = support::test_config(dir.path(), &ServerOptions::default());
        let ep = EndpointConfig {
            listen: cfg.sip.listen,
            advertised: cfg.sip.advertised,
            udp: true,
            tcp: true,
            user_agent: "hotline-test".into(),
            max_message_bytes: cfg.sip.max_message_bytes,
            max_transactions: 1024,
            timers: TimerConfig::default(),
            registrar: cfg.registrar.clone(),
            guard: cfg.sip.guard.clone(),
        };
        let (changes, changes_rx) = mpsc::channel(64);
        let (presence_tx, presence) = mpsc::channel(64);
        let (incoming_tx, incoming) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let (sip, task) = endpoint::start(
            ep,
            Acl::new(cfg.sip.trunks.clone()),
            RegistrarState {
                bindings: restored,
                changes,
                presence: Some(presence_tx),
            },
            incoming_tx,
            shutdown.clone(),
        )
        .await
        .unwrap();
        BareEndpoint {
            sip,
            presence,
            shutdown,
            task,
            _incoming: incoming,
            _changes: changes_rx,
            _dir: dir,
        }
    }

    fn udp(&self) -> std::net::SocketAddr {
        self.sip.local.udp.unwrap()
    }

    async fn next_presence(&mut self, within: Duration) -> Option<(String, bool)> {
        timeout(within, self.presence.recv())
            .await
            .ok()
            .flatten()
            .map(|p| (p.aor, p.reachable))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

fn up(aor: &str, reachable: bool) -> Option<(String, bool)> {
    Some((aor.to_string(), reachable))
}

#[tokio::test(start_paused = true)]
async fn an_agent_whose_tcp_connection_is_gone_fails_at_once() {
    let mut ep = BareEndpoint::start(Vec::new()).await;
    let tcp = ep.sip.local.tcp.unwrap();
    let mut agent = AgentPhone::new(tcp, Transport::Tcp, "1002").await;
    assert_eq!(agent.register().await, 200);
    assert_eq!(ep.next_presence(5 * SEC).await, up("1002", true));
    let binding = ep.sip.contacts("1002").await.remove(0);
    agent.close();
    tokio::time::sleep(SEC / 10).await;
    // No connection to send on: a transport error (§17.1.4) at once, not
    // Timer B 32 s later.
    let started = tokio::time::Instant::now();
    let mut leg = ring(&ep.sip, &binding, "").await;
    match event(&mut leg.events, 40 * SEC).await {
        Some(DialogEvent::Timeout { key }) => assert_eq!(key, leg.key),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < SEC, "{:?}", started.elapsed());
    // And the next keep-alive marks the agent unreachable (no 32 s wait).
    assert_eq!(ep.next_presence(31 * SEC).await, up("1002", false));
    ep.stop().await;
}

#[tokio::test(start_paused = true)]
async fn keepalive_presence_events_from_a_bare_endpoint() {
    let mut ep = BareEndpoint::start(Vec::new()).await;
    let mut agent = AgentPhone::new(ep.udp(), Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    assert_eq!(ep.next_presence(5 * SEC).await, up("1001", true));

    // Keep-alives come, and are answered: nothing changes.
    tokio::time::sleep(65 * SEC).await;
    assert!(agent.options_answered() >= 2, "OPTIONS every 30 s");
    assert_eq!(ep.next_presence(SEC).await, None);

    agent.answer_options(false);
    assert_eq!(ep.next_presence(100 * SEC).await, up("1001", false));
    assert!(ep.sip.contacts("1001").await.is_empty(), "not rung");

    agent.answer_options(true);
    assert_eq!(ep.next_presence(100 * SEC).await, up("1001", true));
    assert_eq!(ep.sip.contacts("1001").await.len(), 1);

    // Unregistering is the other way to go.
    assert_eq!(agent.unregister().await, 200);
    assert_eq!(ep.next_presence(5 * SEC).await, up("1001", false));
    ep.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restored_bindings_are_announced_once_per_aor_at_start() {
    let binding = |aor: &str, port: u16| Binding {
        aor: aor.into(),
        contact_uri: format!("sip:{aor}@127.0.0.1:{port}"),
        raw_contact: format!("<sip:{aor}@127.0.0.1:{port}>"),
        source: Peer {
            kind: TransportKind::Udp,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        },
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(600),
        call_id: format!("reg-{aor}-{port}"),
        cseq: 1,
        q: None,
        instance: None,
        reg_id: None,
        reachable: true,
    };
    let mut ep = BareEndpoint::start(vec![
        binding("1001", 9),
        binding("1001", 11),
        binding("1002", 13),
    ])
    .await;
    let mut got = Vec::new();
    while let Some(p) = ep.next_presence(SEC).await {
        got.push(p);
    }
    got.sort();
    assert_eq!(
        got,
        vec![("1001".to_string(), true), ("1002".to_string(), true)],
        "one event per AOR, not per binding"
    );
    assert_eq!(ep.sip.contacts("1001").await.len(), 2);
    ep.stop().await;
}

/// The ACD's view of one agent: (state, reachable).
async fn acd_agent(server: &TestServer, id: &str) -> (&'static str, bool) {
    let snap = server.server.acd().snapshot().await.expect("ACD runs");
    let a = snap.agents.iter().find(|a| a.id == id).expect("agent");
    (a.state, a.reachable)
}

/// Polls the ACD until agent `id` is as `want` (tokio time).
async fn wait_acd_agent(server: &TestServer, id: &str, want: (&str, bool), within: Duration) {
    let until = tokio::time::Instant::now() + within;
    loop {
        let now = acd_agent(server, id).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "agent {id} is {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn keepalive_marks_a_silent_agent_unreachable_and_back() {
    // Agent 1001 logs in when its softphone registers, and out when the
    // registrar loses it: presence reaches the ACD.
    let server = TestServer::start_with(ServerOptions {
        extra_toml: "[[acd.queues]]\nname = \"12345\"\n[[acd.queues]]\nname = \"12333\"\n[[acd.agents]]\nid = \"1001\"\nname = \"A\"\n\
                     extension = \"1001\"\nqueues = [\"12345\"]\nlogin_on_register = true\n"
            .into(),
        ..Default::default()
    })
    .await;
    assert_eq!(acd_agent(&server, "1001").await, ("logged_out", false));
    let sip = server.server.sip();
    let agent = registered(&server, Transport::Udp, "1001").await;
    wait_acd_agent(&server, "1001", ("ready", true), 5 * SEC).await;

    // Keep-alives come, and are answered: nothing changes.
    tokio::time::sleep(65 * SEC).await;
    assert!(agent.options_answered() >= 2, "OPTIONS every 30 s");
    assert_eq!(acd_agent(&server, "1001").await, ("ready", true));

    agent.answer_options(false);
    wait_acd_agent(&server, "1001", ("logged_out", false), 100 * SEC).await;
    assert!(sip.contacts("1001").await.is_empty(), "not rung");

    agent.answer_options(true);
    wait_acd_agent(&server, "1001", ("ready", true), 100 * SEC).await;
    assert_eq!(sip.contacts("1001").await.len(), 1);
    server.shutdown().await;
}

fn softphone_options() -> ServerOptions {
    // 127.0.0.1 is no trunk here: INVITEs from it are softphones'.
    ServerOptions {
        trunks: vec!["192.0.2.1/32".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_softphone_feature_code_is_authenticated_and_reaches_the_call_manager() {
    let server = TestServer::start_with(softphone_options()).await;
    let mut agent = AgentPhone::new(server.sip_udp(), Transport::Udp, "1001").await;
    let r = agent.invite("*11").await.expect("a final response");
    // Challenged (401) then authenticated: the call manager has it. Today
    // no flow handles *11, so the shipped default flow answers it (the
    // ACD will take feature codes); its record names the agent.
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.cseq().unwrap().seq, 2, "re-sent with a new CSeq");
    assert_eq!(agent.bye_placed(&r).await, Some(200));
    let call_id = r.call_id().unwrap().to_string();
    let record = server.record(&call_id).await;
    assert_eq!(record.caller, "1001");
    assert_eq!(record.dialed, "*11");
    assert_eq!(record.sip_status, 200);

    // Someone else's number in From: 403, no call.
    let mut spoofer = AgentPhone::new(server.sip_udp(), Transport::Udp, "1001").await;
    spoofer.from_user = Some("1002".into());
    let r = spoofer.invite("*11").await.expect("a final response");
    assert_eq!(r.status, 403);

    // A wrong password: challenged again, no call.
    let mut intruder = AgentPhone::new(server.sip_udp(), Transport::Udp, "1001")
        .await
        .with_password("wrong");
    let r = intruder.invite("*11").await.expect("a final response");
    assert_eq!(r.status, 401);
    let call_id = r.call_id().unwrap().to_string();
    server.server.flush_records().await;
    assert!(server
        .server
        .store
        .call_record(&call_id)
        .await
        .unwrap()
        .is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn every_2xx_is_delivered_and_the_agents_in_dialog_requests_reach_the_route() {
    let (server, sip, mut agent, binding, rtp) = one_agent().await;
    let mut leg = ring(&sip, &binding, &offer(&rtp)).await;
    agent.wait_invite(5 * SEC).await.expect("INVITE");
    agent.answer().await;
    let ok = response(&mut leg.events, 5 * SEC).await;
    assert_eq!(ok.status, 200);
    // RFC 6026 §7.2: a retransmitted 2xx reaches the owner again (to ACK).
    agent.retransmit().await;
    let again = response(&mut leg.events, 5 * SEC).await;
    assert_eq!(again.status, 200);
    let mut dialog = Dialog::uac(&leg.invite, &ok, leg.peer).unwrap();
    for _ in 0..2 {
        sip.ack(dialog.ack(&leg.invite, "hotline"), leg.peer).await;
    }
    assert!(agent.wait_ack(5 * SEC).await);

    // The agent's re-INVITE (hold), REFER and digits.
    let answer_next = |method: Method, status: u16| {
        let sip = sip.clone();
        move |ev: Option<DialogEvent>| async move {
            match ev {
                Some(DialogEvent::Request { request, key, .. }) => {
                    assert_eq!(request.method, method);
                    let mut r = response_to(&request, status, "OK");
                    if method == Method::Invite {
                        r.headers.push("Contact", "<sip:acd@127.0.0.1>");
                    }
                    sip.respond(key, r).await;
                    request
                }
                other => panic!("expected {method:?}, got {other:?}"),
            }
        }
    };
    let hold = tokio::spawn(async move {
        let s = agent.hold().await;
        (agent, s)
    });
    let req = answer_next(Method::Invite, 200)(event(&mut leg.events, 5 * SEC).await).await;
    assert!(String::from_utf8_lossy(&req.body).contains("a=sendonly"));
    let (mut agent, status) = hold.await.unwrap();
    assert_eq!(status, Some(200));
    // The ACK of the re-INVITE's 2xx comes on the route too.
    assert!(matches!(
        event(&mut leg.events, 5 * SEC).await,
        Some(DialogEvent::Ack { .. })
    ));

    let refer = tokio::spawn(async move {
        let s = agent.refer("sip:1002@127.0.0.1").await;
        (agent, s)
    });
    let req = answer_next(Method::Refer, 202)(event(&mut leg.events, 5 * SEC).await).await;
    assert_eq!(req.headers.get("Refer-To"), Some("<sip:1002@127.0.0.1>"));
    let (mut agent, status) = refer.await.unwrap();
    assert_eq!(status, Some(202));
    // RFC 3515 §2.4.4: progress as NOTIFY in the dialog.
    let mut notify = dialog.request(Method::Notify, "hotline");
    notify.headers.push("Event", "refer");
    notify
        .headers
        .push("Subscription-State", "terminated;reason=noresource");
    notify.headers.push("Content-Type", "message/sipfrag");
    notify.body = bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\n");
    sip.request(notify, leg.peer).await;
    assert!(agent.wait_notifies(1, 5 * SEC).await);
    assert_eq!(response(&mut leg.events, 5 * SEC).await.status, 200);

    agent.press("5").await;
    let mut buf = [0u8; 1500];
    let got_event = timeout(5 * SEC, async {
        loop {
            let (n, _) = rtp.recv_from(&mut buf).await.unwrap();
            if n >= 16 && buf[1] & 0x7f == 101 {
                return buf[12];
            }
        }
    })
    .await
    .expect("an RFC 4733 event");
    assert_eq!(got_event, 5);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_2xx_after_the_invite_transaction_ended_still_reaches_the_owner() {
    let (server, sip, mut agent, binding, rtp) = one_agent().await;
    let mut leg = ring(&sip, &binding, &offer(&rtp)).await;
    agent.wait_invite(5 * SEC).await.expect("INVITE");
    agent.answer().await;
    let ok = response(&mut leg.events, 5 * SEC).await;
    let d = Dialog::uac(&leg.invite, &ok, leg.peer).unwrap();
    sip.ack(d.ack(&leg.invite, "hotline"), leg.peer).await;
    assert!(agent.wait_ack(5 * SEC).await);
    // Timer M (64*T1 = 32 s) ends the INVITE transaction (RFC 6026 §7.2);
    // a 2xx after that matches nothing, yet the dialog's owner gets it.
    tokio::time::sleep(40 * SEC).await;
    agent.retransmit().await;
    let late = response(&mut leg.events, 5 * SEC).await;
    assert_eq!(late.status, 200);
    assert_eq!(late.headers.get("To"), ok.headers.get("To"));
    server.shutdown().await;
}
