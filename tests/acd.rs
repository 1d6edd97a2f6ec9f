//! The agent queue end to end: callers from the scripted phone, agents as
//! scripted softphones that register with digest and take calls, the
//! daemon in between on paused tokio time. Asserts what each side hears,
//! what the agents' phones see (INVITE, CANCEL, BYE), the call records and
//! the queue event log read back from the database.

mod support;

use std::time::Duration;

use hotline::store::EventFilter;
use support::agent::AgentPhone;
use support::{has_frame, ServerOptions, TestServer, Transport};
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A daemon at 10:00 on a weekday (the 12345 line is open), queue 12345
/// with the given extra queue keys, agents 1001 and 1002 in it.
fn options(queue_keys: &str, agent_keys: &str, settings: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!(
            r#"
[clock]
start = "2026-11-23T10:00:00+08:00"
[acd.settings]
{settings}
[[acd.queues]]
name = "12345"
ring_timeout_secs = 5
{queue_keys}
[[acd.queues]]
name = "12333"
when_no_agents = "refuse"
[[acd.agents]]
id = "1001"
name = "Agent One"
extension = "1001"
queues = ["12345"]
wrap_up_secs = 5
{agent_keys}
[[acd.agents]]
id = "1002"
name = "Agent Two"
extension = "1002"
queues = ["12345"]
wrap_up_secs = 5
{agent_keys}
"#
        ),
        ..Default::default()
    }
}

/// The ACD's view of one agent: (state, reachable, reason).
async fn agent_state(ts: &TestServer, id: &str) -> (&'static str, bool, Option<String>) {
    let snap = ts.server.acd().snapshot().await.expect("ACD runs");
    let a = snap.agents.into_iter().find(|a| a.id == id).expect("agent");
    (a.state, a.reachable, a.reason)
}

/// Polls until agent `id` is in `state` (tokio time).
async fn wait_state(ts: &TestServer, id: &str, state: &str, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let now = agent_state(ts, id).await;
        if now.0 == state {
            return;
        }
        assert!(Instant::now() < until, "agent {id} is {now:?}, not {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A registered softphone of an agent logged in on registration.
async fn ready_agent(ts: &TestServer, user: &str) -> AgentPhone {
    let mut a = AgentPhone::new(ts.sip_udp(), Transport::Udp, user).await;
    assert_eq!(a.register().await, 200);
    wait_state(ts, user, "ready", secs(5)).await;
    a
}

/// The kinds of the call's queue events, in order.
async fn event_kinds(ts: &TestServer, call_id: &str) -> Vec<String> {
    ts.server.flush_records().await;
    ts.server
        .store
        .queue_events(EventFilter {
            call_id: Some(call_id.to_string()),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// How many received frames are frames of the hold music (not silence).
fn music_frames(ts: &TestServer, frames: &[[u8; 160]]) -> usize {
    let music = ts
        .prompts
        .get(hotline::lang::Lang::Zh, "hold_music")
        .expect("hold music");
    let known: std::collections::HashSet<&[u8]> = music
        .encoded(hotline::media::Codec::Pcmu)
        .chunks(160)
        .filter(|f| f.iter().any(|b| *b != 0xFF && *b != 0x7F))
        .collect();
    frames.iter().filter(|f| known.contains(&f[..])).count()
}

const LOGIN: &str = "login_on_register = true";

/// A caller to 12345 whom `agent` has been rung for and has answered.
async fn answered_by(ts: &TestServer, agent: &mut AgentPhone) -> support::Call {
    let mut call = ts.phone().build().await.call("12345").await;
    rung(agent, &mut call).await;
    agent.answer().await;
    call
}

/// Waits (pumping the caller's SIP meanwhile) until `agent`'s phone rings;
/// returns the daemon's INVITE.
async fn rung(agent: &mut AgentPhone, call: &mut support::Call) -> hotline::sip::message::Request {
    tokio::select! {
        inv = agent.wait_invite(secs(30)) => inv.expect("the agent is rung"),
        _ = call.pump(secs(30)) => panic!("no INVITE to {}", agent.user),
    }
}

#[tokio::test(start_paused = true)]
async fn caller_and_agent_hear_each_other_through_the_bridge() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut agent = ready_agent(&ts, "1001").await;
    let mut call = ts
        .phone()
        .caller("13800138000")
        .build()
        .await
        .call("12345")
        .await;
    let invite = rung(&mut agent, &mut call).await;
    let from = invite.headers.get("From").unwrap_or("").to_string();
    assert!(
        from.contains("13800138000"),
        "the agent sees the caller: {from}"
    );
    agent.ring().await;
    agent.answer().await;
    assert!(agent.wait_ack(secs(5)).await, "the daemon ACKs the 200");
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(3)), agent.pump(secs(3)));
    let to_agent = has_frame(&agent.received_frames(), 0x42);
    let to_caller = has_frame(&call.frames(), 0x24);
    assert!(
        to_agent > 100,
        "agent heard the caller in {to_agent} frames"
    );
    assert!(
        to_caller > 100,
        "caller heard the agent in {to_caller} frames"
    );
    let names = call.heard_names();
    assert_eq!(
        names[..2],
        ["welcome_12345", "transfer_to_agent"],
        "{names:?}"
    );
    assert_eq!(agent_state(&ts, "1001").await.0, "talking");

    // The agent hangs up: the caller's leg ends too (no survey here).
    assert_eq!(agent.bye().await, Some(200));
    assert!(call.wait_bye(secs(5)).await, "the caller gets BYE");
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.disposition.as_str(), "answered");
    assert_eq!(rec.hangup_by.as_str(), "agent");
    assert_eq!(rec.queue.as_deref(), Some("12345"));
    assert_eq!(rec.acd.agent.as_deref(), Some("1001"));
    assert_eq!(rec.acd.offers, Some(1));
    let talk = rec.acd.talk_ms.expect("talk time");
    assert!((3000..4000).contains(&talk), "talk {talk} ms");
    assert!(rec.acd.wait_ms.expect("wait") < 10_000);
    assert_eq!(rec.acd.hold_ms, Some(0));
    assert_eq!(
        event_kinds(&ts, &call.call_id).await,
        ["enter", "offer", "connect", "complete"]
    );
    // Wrap-up: 5 s, then ready again, and the record gets the figure.
    assert_eq!(agent_state(&ts, "1001").await.0, "wrap_up");
    wait_state(&ts, "1001", "ready", secs(10)).await;
    ts.server.flush_records().await;
    let rec = ts.record(&call.call_id).await;
    let wrap = rec.acd.wrap_up_ms.expect("wrap-up time");
    assert!((4900..5300).contains(&wrap), "wrap-up {wrap} ms");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_agent_is_cancelled_and_the_next_one_rung_then_paused() {
    let ts = TestServer::start_with(options("", LOGIN, "max_missed_offers = 1")).await;
    let mut first = ready_agent(&ts, "1001").await;
    let mut second = ready_agent(&ts, "1002").await;
    let mut call = ts.phone().build().await.call("12345").await;
    // Longest idle first: 1001 logged in first.
    rung(&mut first, &mut call).await;
    first.ring().await;
    // It never answers: after the 5 s ring timeout the daemon CANCELs.
    let t0 = Instant::now();
    let (cancelled, _) = tokio::join!(first.wait_cancel(secs(10)), call.pump(secs(6)));
    assert!(cancelled, "1001 gets CANCEL");
    let rang = t0.elapsed();
    assert!(rang >= secs(4) && rang <= secs(7), "rang {rang:?}");
    rung(&mut second, &mut call).await; // then 1002 is rung
    second.answer().await;
    tokio::join!(call.pump(secs(2)), second.pump(secs(2)));
    assert_eq!(agent_state(&ts, "1002").await.0, "talking");
    // One miss was enough here: 1001 is paused, reason no_answer.
    let (state, _, reason) = agent_state(&ts, "1001").await;
    assert_eq!((state, reason.as_deref()), ("paused", Some("no_answer")));
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    assert!(second.wait_bye(secs(5)).await, "the agent's leg ends too");
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.acd.agent.as_deref(), Some("1002"));
    assert_eq!(rec.acd.offers, Some(2));
    assert_eq!(rec.hangup_by.as_str(), "caller");
    let kinds = event_kinds(&ts, &call_id).await;
    assert_eq!(
        kinds,
        [
            "enter",
            "offer",
            "ring_no_answer",
            "offer",
            "connect",
            "complete"
        ],
        "{kinds:?}"
    );
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_agent_is_skipped() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut first = ready_agent(&ts, "1001").await;
    let mut second = ready_agent(&ts, "1002").await;
    let mut call = ts.phone().build().await.call("12345").await;
    rung(&mut first, &mut call).await;
    first.reject(486).await;
    rung(&mut second, &mut call).await; // 1002 is rung after 1001 was busy
    second.answer().await;
    tokio::join!(call.pump(secs(1)), second.pump(secs(1)));
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.acd.agent.as_deref(), Some("1002"));
    ts.server.flush_records().await;
    let events = ts
        .server
        .store
        .queue_events(EventFilter {
            call_id: Some(call_id.clone()),
            kind: Some("ring_no_answer".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason.as_deref(), Some("busy"));
    assert_eq!(events[0].agent.as_deref(), Some("1001"));
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_caller_hanging_up_while_the_agent_rings_cancels_the_agent() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut agent = ready_agent(&ts, "1001").await;
    let mut call = ts.phone().build().await.call("12345").await;
    rung(&mut agent, &mut call).await;
    agent.ring().await;
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    assert!(agent.wait_cancel(secs(5)).await, "the agent gets CANCEL");
    wait_state(&ts, "1001", "ready", secs(5)).await;
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.disposition.as_str(), "abandoned_in_queue");
    assert_eq!(rec.hangup_by.as_str(), "caller");
    assert_eq!(rec.acd.agent, None);
    let kinds = event_kinds(&ts, &call_id).await;
    assert_eq!(
        kinds,
        ["enter", "offer", "offer_cancelled", "abandon"],
        "{kinds:?}"
    );
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_the_agent_hangs_up_the_caller_rates_the_call() {
    let ts = TestServer::start_with(options("survey = true", LOGIN, "")).await;
    let mut agent = ready_agent(&ts, "1001").await;
    let mut call = answered_by(&ts, &mut agent).await;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    assert_eq!(agent.bye().await, Some(200));
    call.wait_heard("satisfaction_survey", secs(30)).await;
    call.press("4").await;
    call.wait_heard("survey_thanks", secs(10)).await;
    assert!(call.wait_bye(secs(10)).await, "then the daemon hangs up");
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.acd.survey_score, Some(4));
    assert_eq!(rec.hangup_by.as_str(), "agent");
    assert_eq!(rec.disposition.as_str(), "answered");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_agent_holds_and_the_caller_hears_music() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut agent = ready_agent(&ts, "1001").await;
    let mut call = answered_by(&ts, &mut agent).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));
    let (hold, _) = tokio::join!(agent.hold(), call.pump(secs(1)));
    assert_eq!(hold, Some(200));
    let before = music_frames(&ts, &call.frames());
    tokio::join!(call.pump(secs(4)), agent.pump(secs(4)));
    let during = music_frames(&ts, &call.frames()) - before;
    assert!(
        during > 150,
        "hold music while held: {during} frames in 4 s"
    );
    let relayed_before = has_frame(&call.frames(), 0x24);
    let (resume, _) = tokio::join!(agent.resume(), call.pump(secs(1)));
    assert_eq!(resume, Some(200));
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    assert!(
        has_frame(&call.frames(), 0x24) > relayed_before + 50,
        "the agent is heard again after resume"
    );
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    let hold = rec.acd.hold_ms.expect("hold time");
    assert!((4000..6500).contains(&hold), "held {hold} ms");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn nobody_answers_so_the_caller_waits_hears_announcements_then_leaves_a_message() {
    // Agents exist but none is logged in; callers join and wait.
    let ts = TestServer::start_with(options(
        "max_wait_secs = 45\nannounce_every_secs = 20",
        "",
        "",
    ))
    .await;
    let mut call = ts.phone().build().await.call("12345").await;
    call.wait_heard("beep", secs(90)).await;
    let names = call.heard_names();
    let music = names.iter().filter(|n| *n == "hold_music").count();
    assert!(music >= 1, "{names:?}");
    assert!(
        names.contains(&"queue_thanks_waiting".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"queue_breakout_options".to_string()),
        "{names:?}"
    );
    assert_eq!(
        names[names.len() - 2..],
        ["voicemail_prompt", "beep"],
        "{names:?}"
    );
    assert!(
        names.contains(&"queue_unavailable".to_string()),
        "overflow: {names:?}"
    );
    call.pump(secs(3)).await;
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.disposition.as_str(), "voice_message");
    let wait = rec.acd.wait_ms.expect("wait");
    assert!((44_000..47_000).contains(&wait), "waited {wait} ms");
    let kinds = event_kinds(&ts, &call_id).await;
    assert_eq!(kinds, ["enter", "timeout"], "{kinds:?}");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_voicemail_key_leaves_the_queue_for_a_message() {
    let ts = TestServer::start_with(options("", "", "")).await;
    let mut call = ts.phone().build().await.call("12345").await;
    call.wait_heard("hold_music", secs(30)).await;
    call.press("1").await;
    call.wait_heard("voicemail_prompt", secs(10)).await;
    let names = call.heard_names();
    assert!(
        !names.contains(&"queue_unavailable".to_string()),
        "{names:?}"
    );
    call.pump(secs(2)).await;
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let kinds = event_kinds(&ts, &call_id).await;
    assert_eq!(kinds, ["enter", "breakout"], "{kinds:?}");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn feature_codes_change_the_agents_state() {
    // 127.0.0.1 is no trunk: the softphone's INVITEs are authenticated.
    let mut opts = options("", "", "");
    opts.trunks = vec!["192.0.2.1/32".into()];
    let ts = TestServer::start_with(opts).await;
    let mut phone = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(phone.register().await, 200);
    assert_eq!(agent_state(&ts, "1001").await.0, "logged_out");
    for (code, state, result) in [
        ("*11", "ready", "agent_login"),
        ("*13", "paused", "agent_pause"),
        ("*14", "ready", "agent_ready"),
        ("*12", "logged_out", "agent_logout"),
        ("*12", "logged_out", "agent_logout_refused"),
    ] {
        let r = phone.invite(code).await.expect("answered");
        assert_eq!(r.status, 200);
        let call_id = r.call_id().unwrap().to_string();
        phone.pump(secs(5)).await; // the confirmation plays, then BYE
        assert_eq!(agent_state(&ts, "1001").await.0, state, "after {code}");
        let rec = ts.record(&call_id).await;
        assert_eq!(rec.self_service_result.as_deref(), Some(result), "{code}");
    }
    assert_eq!(
        agent_state(&ts, "1001").await.2,
        None,
        "no reason once logged out"
    );
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn agent_states_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("acd.db").display());
    let mut opts = options("", "", "");
    opts.database = Some(db);
    let ts = TestServer::start_with(opts.clone()).await;
    let acd = ts.server.acd();
    use hotline::acd::AgentId;
    use hotline::call::acd_service::AgentOp;
    acd.agent(AgentId("1001".into()), AgentOp::Login)
        .await
        .unwrap();
    acd.agent(AgentId("1001".into()), AgentOp::Pause("lunch".into()))
        .await
        .unwrap();
    acd.agent(AgentId("1002".into()), AgentOp::Login)
        .await
        .unwrap();
    ts.shutdown().await;
    let ts = TestServer::start_with(opts).await;
    let (state, reachable, reason) = agent_state(&ts, "1001").await;
    assert_eq!((state, reason.as_deref()), ("paused", Some("lunch")));
    assert!(!reachable, "no registration yet");
    assert_eq!(agent_state(&ts, "1002").await.0, "ready");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_transfers_the_caller_to_another_agent_by_refer() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut first = ready_agent(&ts, "1001").await;
    let mut second = ready_agent(&ts, "1002").await;
    let mut call = answered_by(&ts, &mut first).await;
    tokio::join!(call.pump(secs(2)), first.pump(secs(2)));
    // Blind transfer to extension 1002 (RFC 3515).
    let target = format!("sip:1002@{}", ts.sip_udp());
    let (status, _) = tokio::join!(first.refer(&target), call.pump(secs(1)));
    assert_eq!(status, Some(202));
    let (notified, _) = tokio::join!(first.wait_notifies(1, secs(5)), call.pump(secs(1)));
    assert!(notified, "a NOTIFY with the outcome");
    let frag = String::from_utf8_lossy(&first.notifies[0].body).to_string();
    assert!(frag.starts_with("SIP/2.0 200"), "{frag}");
    let (bye, _) = tokio::join!(first.wait_bye(secs(5)), call.pump(secs(1)));
    assert!(bye, "the transferring agent's leg ends");
    rung(&mut second, &mut call).await; // 1002 is rung
    second.answer().await;
    second.fill(0x24).await;
    tokio::join!(call.pump(secs(2)), second.pump(secs(2)));
    assert!(
        has_frame(&call.frames(), 0x24) > 50,
        "the caller hears 1002"
    );
    assert!(call.heard_names().contains(&"transferring".to_string()));
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    assert!(second.wait_bye(secs(5)).await);
    let rec = ts.record(&call_id).await;
    assert_eq!(rec.acd.agent.as_deref(), Some("1002"), "the last agent");
    assert_eq!(rec.acd.transfer_target.as_deref(), Some("1002"));
    assert_eq!(
        rec.queue.as_deref(),
        Some("12345"),
        "the queue it came in by"
    );
    let kinds = event_kinds(&ts, &call_id).await;
    assert_eq!(
        kinds,
        ["enter", "offer", "connect", "transfer", "enter", "offer", "connect", "complete"],
        "{kinds:?}"
    );
    // Transferring to an agent not logged in is refused; the call stays.
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_transfer_to_a_target_that_cannot_take_it_is_refused_and_the_call_stays() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut first = ready_agent(&ts, "1001").await;
    let mut call = answered_by(&ts, &mut first).await;
    first.fill(0x24).await;
    tokio::join!(call.pump(secs(1)), first.pump(secs(1)));
    for target in ["1002", "nosuchqueue"] {
        let uri = format!("sip:{target}@{}", ts.sip_udp());
        let (status, _) = tokio::join!(first.refer(&uri), call.pump(secs(1)));
        assert_eq!(status, Some(480), "{target}");
    }
    let before = has_frame(&call.frames(), 0x24);
    tokio::join!(call.pump(secs(2)), first.pump(secs(2)));
    assert!(
        has_frame(&call.frames(), 0x24) > before + 50,
        "still bridged"
    );
    assert_eq!(agent_state(&ts, "1001").await.0, "talking");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_attended_transfer_hands_the_caller_to_the_consulted_agent() {
    let ts = TestServer::start_with(options("", LOGIN, "")).await;
    let mut first = ready_agent(&ts, "1001").await;
    let mut second = ready_agent(&ts, "1002").await;
    let mut call = answered_by(&ts, &mut first).await;
    tokio::join!(call.pump(secs(1)), first.pump(secs(1)));
    // 1001 holds the caller and calls 1002 from its softphone.
    let (hold, _) = tokio::join!(first.hold(), call.pump(secs(1)));
    assert_eq!(hold, Some(200));
    let (consult, _) = tokio::join!(first.invite("1002"), call.pump(secs(1)));
    let consult = consult.expect("the consultation call is answered");
    assert_eq!(consult.status, 200);
    rung(&mut second, &mut call).await;
    second.answer().await;
    second.fill(0x33).await;
    call.fill(0x42).await;
    tokio::join!(
        call.pump(secs(1)),
        second.pump(secs(1)),
        first.pump(secs(1))
    );
    assert_eq!(agent_state(&ts, "1002").await.0, "talking");
    // REFER the caller to 1002, replacing the consultation (RFC 3891).
    let tag = |h: &str| {
        let v = consult.headers.get(h).unwrap_or("");
        v.split(";tag=").nth(1).unwrap_or("").to_string()
    };
    let enc = |s: &str| s.replace('@', "%40");
    let target = format!(
        "sip:1002@{}?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
        ts.sip_udp(),
        enc(consult.call_id().unwrap()),
        tag("To"),
        tag("From")
    );
    let (status, _) = tokio::join!(first.refer(&target), call.pump(secs(1)));
    assert_eq!(status, Some(202));
    let (bye, _, _) = tokio::join!(
        first.wait_bye(secs(5)),
        call.pump(secs(2)),
        second.pump(secs(2))
    );
    assert!(bye, "the transferring agent's legs end");
    let before = (
        has_frame(&call.frames(), 0x33),
        has_frame(&second.received_frames(), 0x42),
    );
    tokio::join!(call.pump(secs(2)), second.pump(secs(2)));
    let after = (
        has_frame(&call.frames(), 0x33),
        has_frame(&second.received_frames(), 0x42),
    );
    assert!(
        after.0 > before.0 + 50,
        "the caller hears 1002: {before:?} {after:?}"
    );
    assert!(
        after.1 > before.1 + 50,
        "1002 hears the caller: {before:?} {after:?}"
    );
    assert_eq!(agent_state(&ts, "1002").await.0, "talking");
    // 1002 hangs up: the caller's call ends, 1002 goes to wrap-up.
    assert_eq!(second.bye().await, Some(200));
    assert!(call.wait_bye(secs(5)).await);
    wait_state(&ts, "1002", "wrap_up", secs(2)).await;
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.acd.agent.as_deref(), Some("1002"));
    assert_eq!(rec.acd.transfer_target.as_deref(), Some("1002"));
    assert_eq!(rec.disposition.as_str(), "answered");
    let consult_rec = ts.record(consult.call_id().unwrap()).await;
    assert_eq!(consult_rec.hangup_reason, "replaced");
    ts.shutdown().await;
}
