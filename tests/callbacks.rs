//! Callbacks (留置答) end to end on paused tokio time: a caller waiting in
//! queue 12345 presses 2 and is hung up after `callback_confirmed`; the
//! request is listed over HTTP; when an agent logs in its phone rings, it
//! answers, and the daemon calls the citizen through the outbound trunk
//! (a scripted gateway, `AgentPhone::gateway`, listening where
//! `[sip.outbound]` points), bridges them, and records the attempt. The
//! citizen being busy fails the attempt, which is retried on the schedule
//! and then given up; a pending request survives a restart at its place.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::agent::AgentPhone;
use support::{has_frame, ServerOptions, TestServer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const CITIZEN: &str = "13800138000";

/// Queue 12345 (callback key 2) with agent 1001 in it; callbacks go out
/// through the gateway at `gateway`, retried after 5 and 15 minutes.
fn options(gateway: SocketAddr, database: Option<String>) -> ServerOptions {
    ServerOptions {
        database,
        extra_toml: format!(
            r#"
[sip.outbound]
address = "{gateway}"
transport = "udp"
from_number = "12345"
prefix = "0"
[clock]
start = "2026-11-23T10:00:00+08:00"
[acd.settings]
callback_retry_minutes = [5, 15]
[[acd.queues]]
name = "12345"
ring_timeout_secs = 5
callback_key = "2"
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
"#
        ),
        ..Default::default()
    }
}

/// A daemon and the gateway standing in for its outbound trunk.
async fn start(database: Option<String>) -> (TestServer, AgentPhone) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("gateway bind");
    let addr = sock.local_addr().expect("addr");
    let ts = TestServer::start_with(options(addr, database)).await;
    let gw = AgentPhone::gateway(sock, ts.sip_udp()).await;
    (ts, gw)
}

/// `GET path` on the daemon's HTTP port; the JSON body.
async fn http_get(ts: &TestServer, path: &str) -> serde_json::Value {
    let mut s = tokio::net::TcpStream::connect(ts.server.http)
        .await
        .expect("http connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: hotline\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("http write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("http read");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The stored requests in `state`, as the API lists them.
async fn listed(ts: &TestServer, state: &str) -> Vec<serde_json::Value> {
    ts.server.flush_records().await;
    let v = http_get(ts, &format!("/api/callbacks?state={state}&limit=10")).await;
    v.as_array().expect("a list").clone()
}

/// A caller who waits in 12345, presses 2, hears the confirmation and is
/// hung up; its Call-ID.
async fn request_callback(ts: &TestServer, number: &str) -> String {
    let mut call = ts.phone().caller(number).build().await.call("12345").await;
    call.wait_heard("hold_music", secs(30)).await;
    call.press("2").await;
    call.wait_heard("callback_confirmed", secs(10)).await;
    assert!(
        call.wait_bye(secs(30)).await,
        "hung up after the confirmation"
    );
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.hangup_reason, "callback_requested");
    call.call_id.clone()
}

async fn ready_agent(ts: &TestServer) -> AgentPhone {
    let mut a = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(a.register().await, 200);
    a
}

/// Waits for an INVITE to `phone`, re-registering it every 4 minutes so
/// its registration (10 min) stays alive over long waits.
async fn wait_invite_long(phone: &mut AgentPhone, within: Duration) -> Option<String> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let step = secs(240).min(until - Instant::now());
        if let Some(inv) = phone.wait_invite(step).await {
            return Some(inv.headers.get("From").unwrap_or("").to_string());
        }
        if phone.user != "gateway" {
            assert_eq!(phone.register().await, 200);
        }
    }
    None
}

#[tokio::test(start_paused = true)]
async fn a_callback_rings_the_agent_then_calls_the_citizen_through_the_trunk() {
    let (ts, mut gw) = start(None).await;
    let call_id = request_callback(&ts, CITIZEN).await;
    let pending = listed(&ts, "pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["call_id"], call_id.as_str());
    assert_eq!(pending[0]["number"], CITIZEN);
    assert_eq!(pending[0]["queue"], "12345");
    assert_eq!(pending[0]["attempts"], 0);

    // An agent logs in: its phone rings for the callback.
    let mut agent = ready_agent(&ts).await;
    let invite = agent
        .wait_invite(secs(30))
        .await
        .expect("the agent is rung");
    let from = invite.headers.get("From").unwrap_or("");
    assert!(
        from.contains(CITIZEN),
        "the agent sees whom it calls: {from}"
    );
    agent.answer().await;
    assert!(
        agent.wait_ack(secs(5)).await,
        "the daemon ACKs the agent's 200"
    );

    // Then the citizen is called through the trunk, with the prefix.
    let invite = tokio::select! {
        inv = gw.wait_invite(secs(10)) => inv.expect("the trunk gets an INVITE"),
        _ = agent.pump(secs(10)) => panic!("no INVITE to the trunk"),
    };
    assert!(
        invite.uri.starts_with(&format!("sip:0{CITIZEN}@127.0.0.1")),
        "{}",
        invite.uri
    );
    let from = invite.headers.get("From").unwrap_or("");
    assert!(from.contains("<sip:12345@"), "the hotline's number: {from}");
    gw.answer().await;
    gw.fill(0x24).await;
    agent.fill(0x42).await;
    tokio::join!(gw.pump(secs(15)), agent.pump(secs(15)));
    let to_citizen = has_frame(&gw.received_frames(), 0x42);
    let to_agent = has_frame(&agent.received_frames(), 0x24);
    assert!(
        to_citizen > 100,
        "the citizen heard the agent in {to_citizen} frames"
    );
    assert!(
        to_agent > 100,
        "the agent heard the citizen in {to_agent} frames"
    );
    let snap = ts.server.acd().snapshot().await.unwrap();
    assert_eq!(snap.agents[0].state, "talking");

    // The citizen hangs up: the agent's leg ends too.
    assert_eq!(gw.bye().await, Some(200));
    assert!(agent.wait_bye(secs(5)).await, "the agent gets BYE");
    ts.server.flush_records().await;
    let done = listed(&ts, "done").await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["attempts"], 1);
    assert_eq!(done[0]["last_agent"], "1001");
    assert!(listed(&ts, "pending").await.is_empty());
    let attempts = http_get(&ts, &format!("/api/callbacks/{call_id}/attempts")).await;
    let attempts = attempts.as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["result"], "answered");
    let talk = attempts[0]["talk_ms"].as_i64().expect("talk time");
    assert!((14_000..17_000).contains(&talk), "talk {talk} ms");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_citizen_is_retried_on_the_schedule_then_given_up() {
    let (ts, mut gw) = start(None).await;
    let call_id = request_callback(&ts, CITIZEN).await;
    let mut agent = ready_agent(&ts).await;
    let mut rung_at = Vec::new();
    for attempt in 1..=3 {
        let from = wait_invite_long(&mut agent, secs(30 * 60)).await;
        assert!(from.is_some(), "attempt {attempt}: the agent is rung");
        rung_at.push(Instant::now());
        agent.answer().await;
        let invite = tokio::select! {
            inv = gw.wait_invite(secs(10)) => inv,
            _ = agent.pump(secs(10)) => None,
        };
        assert!(invite.is_some(), "attempt {attempt}: the trunk is called");
        gw.reject(486).await;
        // The agent hears why, and its leg ends.
        let (bye, _) = tokio::join!(agent.wait_bye(secs(30)), gw.pump(secs(1)));
        assert!(bye, "attempt {attempt}: the agent's leg ends");
        let heard = agent.received_frames().len();
        assert!(
            heard > 50,
            "attempt {attempt}: the agent heard a prompt ({heard} frames)"
        );
        ts.server.flush_records().await;
        let state = if attempt < 3 { "failed" } else { "given_up" };
        let rows = listed(&ts, state).await;
        assert_eq!(rows.len(), 1, "attempt {attempt}: {rows:?}");
        assert_eq!(rows[0]["attempts"], attempt);
        assert_eq!(rows[0]["last_result"], "busy");
    }
    // 5 then 15 minutes between attempts (plus the agent's 5 s wrap-up
    // and the few seconds of the attempt itself).
    let gap1 = rung_at[1] - rung_at[0];
    let gap2 = rung_at[2] - rung_at[1];
    assert!(
        gap1 >= secs(300) && gap1 < secs(330),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= secs(900) && gap2 < secs(930),
        "second retry after {gap2:?}"
    );
    // Given up: no more ringing.
    assert!(wait_invite_long(&mut agent, secs(3600)).await.is_none());
    let attempts = ts.server.store.callback_attempts(&call_id).await.unwrap();
    let results: Vec<&str> = attempts.iter().map(|a| a.result.as_str()).collect();
    assert_eq!(results, ["busy", "busy", "busy"]);
    assert!(attempts
        .iter()
        .all(|a| a.agent == "1001" && a.talk_ms.is_none()));
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pending_callback_survives_a_restart_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("cb.db").display());
    let (ts, gw) = start(Some(db.clone())).await;
    let first = request_callback(&ts, CITIZEN).await;
    drop(gw);
    ts.shutdown().await;

    let (ts, _gw) = start(Some(db)).await;
    let pending = listed(&ts, "pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["call_id"], first.as_str());
    let snap = ts.server.acd().snapshot().await.unwrap();
    let q = snap.queues.iter().find(|q| q.name == "12345").unwrap();
    assert_eq!(q.callbacks, 1, "the request is back in its queue");
    // A newer caller waits; the agent logs in and gets the older request.
    let mut newer = ts
        .phone()
        .caller("13900139000")
        .build()
        .await
        .call("12345")
        .await;
    newer.wait_heard("hold_music", secs(30)).await;
    let mut agent = ready_agent(&ts).await;
    let from = tokio::select! {
        inv = agent.wait_invite(secs(30)) => inv.expect("rung").headers.get("From").unwrap_or("").to_string(),
        _ = newer.pump(secs(30)) => panic!("the agent is not rung"),
    };
    assert!(from.contains(CITIZEN), "the older callback first: {from}");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_who_does_not_answer_is_cancelled_and_the_request_waits_on() {
    let (ts, mut gw) = start(None).await;
    request_callback(&ts, CITIZEN).await;
    let mut agent = ready_agent(&ts).await;
    assert!(agent.wait_invite(secs(30)).await.is_some(), "rung");
    agent.ring().await;
    // The queue's 5 s ring timeout: the ACD withdraws the offer, the
    // dialer CANCELs; the citizen is not called.
    let t0 = Instant::now();
    assert!(agent.wait_cancel(secs(10)).await, "the agent gets CANCEL");
    let rang = t0.elapsed();
    assert!(rang >= secs(4) && rang < secs(6), "rang {rang:?}");
    assert!(
        gw.wait_invite(secs(1)).await.is_none(),
        "no call to the trunk"
    );
    let pending = listed(&ts, "pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        pending[0]["attempts"], 0,
        "an unanswered agent is no attempt"
    );
    let snap = ts.server.acd().snapshot().await.unwrap();
    let q = snap.queues.iter().find(|q| q.name == "12345").unwrap();
    assert_eq!(q.callbacks, 1, "the request keeps its place in the queue");
    ts.shutdown().await;
}

/// A blind transfer to an external number goes out through the same trunk:
/// the caller stays with the agent until the number answers, then talks to
/// it; a busy number is reported in the NOTIFY and the call stays.
#[tokio::test(start_paused = true)]
async fn a_transfer_to_an_external_number_goes_through_the_trunk() {
    let (ts, mut gw) = start(None).await;
    let mut agent = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    let mut call = ts.phone().build().await.call("12345").await;
    let inv = tokio::select! {
        inv = agent.wait_invite(secs(30)) => inv,
        _ = call.pump(secs(30)) => None,
    };
    assert!(inv.is_some(), "the agent is rung");
    agent.answer().await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));

    // The expert's number is busy first: 486 in the NOTIFY, the call stays.
    let target = format!("sip:88001234@{}", ts.sip_udp());
    let (status, _) = tokio::join!(agent.refer(&target), call.pump(secs(1)));
    assert_eq!(status, Some(202));
    let inv = tokio::select! {
        inv = gw.wait_invite(secs(10)) => inv,
        _ = call.pump(secs(10)) => None,
    };
    let inv = inv.expect("the trunk is called");
    assert!(
        inv.uri.contains("088001234@"),
        "prefix and number: {}",
        inv.uri
    );
    gw.reject(486).await;
    let (notified, _) = tokio::join!(agent.wait_notifies(1, secs(5)), call.pump(secs(1)));
    assert!(notified);
    let frag = String::from_utf8_lossy(&agent.notifies[0].body).to_string();
    assert!(frag.starts_with("SIP/2.0 486"), "{frag}");
    let before = has_frame(&call.frames(), 0x24);
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));
    assert!(
        has_frame(&call.frames(), 0x24) > before + 20,
        "still with the agent"
    );

    // Again; this time the expert answers.
    let (status, _) = tokio::join!(agent.refer(&target), call.pump(secs(1)));
    assert_eq!(status, Some(202));
    let inv = tokio::select! {
        inv = gw.wait_invite(secs(10)) => inv,
        _ = call.pump(secs(10)) => None,
    };
    assert!(inv.is_some(), "the trunk is called again");
    gw.answer().await;
    gw.fill(0x55).await;
    let (bye, _, _) = tokio::join!(
        agent.wait_bye(secs(5)),
        call.pump(secs(2)),
        gw.pump(secs(2))
    );
    assert!(bye, "the agent's leg ends once the number answers");
    let frag = String::from_utf8_lossy(&agent.notifies[1].body).to_string();
    assert!(frag.starts_with("SIP/2.0 200"), "{frag}");
    tokio::join!(call.pump(secs(2)), gw.pump(secs(2)));
    assert!(
        has_frame(&call.frames(), 0x55) > 50,
        "the caller hears the expert"
    );
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    assert!(gw.wait_bye(secs(5)).await, "the external leg ends too");
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.acd.transfer_target.as_deref(), Some("88001234"));
    assert_eq!(rec.acd.agent.as_deref(), Some("1001"));
    ts.shutdown().await;
}
