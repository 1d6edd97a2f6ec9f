//! Live monitoring (同步监听) end to end: a scripted caller and agent 1001
//! talk through the daemon's bridge (paused tokio time); a supervisor's
//! softphone (extension 2001) is rung through `POST /api/agents/1001/monitor`,
//! answers, and hears caller and agent mixed while neither of them hears
//! it (listen), or the agent does (whisper), or both do (barge); the
//! caller's hang-up ends the monitor leg with a BYE. The same from the
//! softphone: 2001 (allowed to monitor) dials `*311001`.

mod support;

use std::time::Duration;

use support::agent::AgentPhone;
use support::http::{HttpClient, HttpResponse};
use support::{ServerOptions, TestServer, Transport};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn options() -> ServerOptions {
    ServerOptions {
        extra_toml: r#"
[[registrar.users]]
user = "2001"
ha1_md5 = "7fee6d3ffbe2e83983da26d6ac9d9dc0"
monitor = true
"#
        .to_string()
            + support::AGENT_1001,
        ..Default::default()
    }
}

async fn supervisor(ts: &TestServer, user: &str) -> AgentPhone {
    let mut s = AgentPhone::new(ts.sip_udp(), Transport::Udp, user).await;
    assert_eq!(s.register().await, 200, "{user} registers");
    s
}

/// The decoded value of a μ-law byte.
fn ulaw(byte: u8) -> i16 {
    hotline::media::g711::decode_sample(hotline::media::Codec::Pcmu, byte)
}

fn body(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn monitor_body(extension: &str, mode: &str) -> String {
    format!(r#"{{"extension": "{extension}", "mode": "{mode}", "by": "wang"}}"#)
}

const LISTEN_2001: &str = r#"{"extension": "2001", "mode": "listen", "by": "wang"}"#;
const LISTEN_1002: &str = r#"{"extension": "1002", "mode": "listen", "by": "wang"}"#;

#[tokio::test(start_paused = true)]
async fn a_supervisor_listens_to_both_parties_mixed_and_neither_hears_it() {
    let ts = TestServer::start_with(options()).await;
    let http = HttpClient::new(ts.server.http);
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut sup = supervisor(&ts, "2001").await;
    let mut second = supervisor(&ts, "1002").await;

    // Not on a call yet: nothing to listen to.
    let r = http
        .post("/api/agents/1001/monitor", &monitor_body("2001", "listen"))
        .await;
    assert_eq!(r.status, 404, "{}", body(&r));
    assert_eq!(r.json()["error"], "agent 1001 is not on a live call");

    let mut call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));

    // Refusals while the call is up.
    let r = http
        .post("/api/agents/1001/monitor", &monitor_body("2002", "listen"))
        .await;
    assert_eq!(r.status, 409, "{}", body(&r));
    assert_eq!(
        r.json()["error"],
        "extension 2002 has no registered softphone"
    );
    let r = http
        .post("/api/agents/1001/monitor", &monitor_body("2001", "spy"))
        .await;
    assert_eq!(r.status, 400, "{}", body(&r));
    let r = http
        .post("/api/agents/1001/monitor", r#"{"extension": "2001"}"#)
        .await;
    assert_eq!(r.status, 400, "{}", body(&r));

    // The supervisor is rung, answers, and sends its own audio (0x11).
    let (r, _, _) = tokio::join!(
        http.post("/api/agents/1001/monitor", LISTEN_2001),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert_eq!(r.status, 202, "{}", body(&r));
    let leg = r.json()["call_id"].as_str().expect("call_id").to_string();
    let audit = monitor_audit(&ts).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with("wang agent:1001 listen call ") && audit[0].ends_with(" to 2001"),
        "{audit:?}"
    );
    let invite = tokio::select! {
        inv = sup.wait_invite(secs(10)) => inv.expect("the supervisor is rung"),
        _ = async { tokio::join!(call.pump(secs(10)), agent.pump(secs(10))) } => panic!("no INVITE to 2001"),
    };
    assert_eq!(invite.call_id().ok(), Some(leg.as_str()));
    let from = invite.headers.get("From").unwrap_or("").to_string();
    assert!(from.contains("Monitor 1001"), "{from}");
    sup.answer().await;
    let (acked, _, _) = tokio::join!(
        sup.wait_ack(secs(5)),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert!(acked, "the monitor leg is ACKed");
    sup.fill(0x11).await;
    let caller_before = call.frames().len();
    let agent_before = agent.received_frames().len();
    tokio::join!(call.pump(secs(3)), agent.pump(secs(3)), sup.pump(secs(3)));

    // What 2001 hears: the saturating sum of both parties' constant signals.
    let heard = sup.received_frames();
    assert!(heard.len() >= 100, "2001 got {} frames", heard.len());
    let mix = audio_codec_algorithms::encode_ulaw(ulaw(0x42).saturating_add(ulaw(0x24)));
    assert_ne!(mix, 0x42);
    assert_ne!(mix, 0x24);
    let mixed = support::has_frame(&heard, mix);
    assert!(
        mixed * 10 >= heard.len() * 8,
        "{mixed} of {} frames are the mix {mix:#04x}; first {:?}",
        heard.len(),
        &heard.last().map(|f| f[..8].to_vec())
    );
    // Neither party hears the supervisor: the caller hears only the agent,
    // the agent only the caller.
    let caller_heard = &call.frames()[caller_before..];
    let agent_heard = &agent.received_frames()[agent_before..];
    assert!(caller_heard.len() >= 100 && agent_heard.len() >= 100);
    assert!(
        caller_heard.iter().all(|f| f.iter().all(|b| *b == 0x24)),
        "the caller heard something else than the agent"
    );
    assert!(
        agent_heard.iter().all(|f| f.iter().all(|b| *b == 0x42)),
        "the agent heard something else than the caller"
    );

    // A second monitor (1002) rings; a third is refused.
    let (r, _, _) = tokio::join!(
        http.post("/api/agents/1001/monitor", LISTEN_1002),
        call.pump(Duration::from_millis(200)),
        agent.pump(Duration::from_millis(200))
    );
    assert_eq!(r.status, 202, "{}", body(&r));
    assert!(second.wait_invite(secs(5)).await.is_some(), "1002 is rung");
    // (A CANCEL waits for a provisional response, RFC 3261 §9.1.)
    second.ring().await;
    let r = http
        .post("/api/agents/1001/monitor", &monitor_body("2001", "listen"))
        .await;
    assert_eq!(r.status, 409, "{}", body(&r));
    assert_eq!(
        r.json()["error"],
        "agent 1001 already has 2 monitors listening"
    );

    // The caller hangs up: the monitor leg gets a BYE, the ringing one a
    // CANCEL.
    assert_eq!(call.bye().await, 200);
    let (bye, cancel, _) = tokio::join!(
        sup.wait_bye(secs(5)),
        second.wait_cancel(secs(5)),
        agent.pump(secs(1))
    );
    assert!(bye, "2001 gets a BYE when the call ends");
    assert!(cancel, "1002's ringing is cancelled when the call ends");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_supervisor_hanging_up_leaves_the_call_alone() {
    let ts = TestServer::start_with(options()).await;
    let http = HttpClient::new(ts.server.http);
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut sup = supervisor(&ts, "2001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    let leg = monitor_answered(&http, LISTEN_2001, &mut sup, &mut call, &mut agent).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)), sup.pump(secs(1)));

    // The supervisor's phone holds: the re-INVITE is answered (not 488) and
    // it is sent nothing; resumed, it hears the call again.
    let (hold, _, _) = tokio::join!(sup.hold(), call.pump(secs(1)), agent.pump(secs(1)));
    assert_eq!(hold, Some(200), "the supervisor's hold is answered");
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)), sup.pump(secs(1)));
    let before = sup.received_frames().len();
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)), sup.pump(secs(2)));
    assert_eq!(
        sup.received_frames().len(),
        before,
        "nothing is sent to the held phone"
    );
    let (resume, _, _) = tokio::join!(sup.resume(), call.pump(secs(1)), agent.pump(secs(1)));
    assert_eq!(resume, Some(200));
    let before = sup.received_frames().len();
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)), sup.pump(secs(2)));
    let (n, of) = share(&sup.received_frames()[before..], mix(0x42, 0x24));
    assert!(of >= 80 && n * 10 >= of * 8, "after resume: {n}/{of}");

    let (bye, _, _) = tokio::join!(sup.bye(), call.pump(secs(1)), agent.pump(secs(1)));
    assert_eq!(bye, Some(200));
    // The call goes on: both still hear each other.
    let before = call.frames().len();
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    let after = &call.frames()[before..];
    assert!(after.len() >= 80, "{} frames", after.len());
    assert!(after.iter().all(|f| f.iter().all(|b| *b == 0x24)));
    // And a new monitor may start again (the slot was given back).
    let (r, _, _) = tokio::join!(
        http.post("/api/agents/1001/monitor", LISTEN_2001),
        call.pump(Duration::from_millis(200)),
        agent.pump(Duration::from_millis(200))
    );
    assert_eq!(r.status, 202, "{}", body(&r));
    assert_eq!(call.bye().await, 200);

    // The leg that was answered has its record: the supervisor hung up.
    let rec = ts.record(&leg).await;
    assert_eq!(rec.disposition, hotline::store::Disposition::Monitor);
    assert_eq!(
        (rec.caller.as_str(), rec.dialed.as_str()),
        ("2001", "monitor")
    );
    assert_eq!(rec.acd.agent.as_deref(), Some("1001"));
    assert_eq!(rec.queue.as_deref(), Some("12345"));
    assert_eq!(rec.hangup_by, hotline::store::HangupBy::Caller);
    assert_eq!(rec.hangup_reason, "bye");
    assert_eq!(rec.self_service_result.as_deref(), Some("listen by wang"));
    assert_eq!(rec.sip_status, 200);
    assert!(rec.answered_at.is_some());
    assert!(rec.duration_ms >= 8000, "{} ms", rec.duration_ms);
    ts.shutdown().await;
}

/// Starts a monitor of agent 1001 through the API (`req`), keeping the
/// call's media going, and has `sup` answer it and get its ACK; the
/// monitor leg's Call-ID.
async fn monitor_answered(
    http: &HttpClient,
    req: &str,
    sup: &mut AgentPhone,
    call: &mut support::Call,
    agent: &mut AgentPhone,
) -> String {
    let (r, _, _) = tokio::join!(
        http.post("/api/agents/1001/monitor", req),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert_eq!(r.status, 202, "{req}: {}", body(&r));
    let leg = r.json()["call_id"].as_str().expect("call_id").to_string();
    support::answer_rung(sup, call, agent).await;
    leg
}

/// The monitor starts in the audit log: "actor object detail".
async fn monitor_audit(ts: &TestServer) -> Vec<String> {
    support::monitor_audit(ts)
        .await
        .into_iter()
        .map(|(actor, object, detail)| format!("{actor} {object} {detail}"))
        .collect()
}

/// Frames of `frames` that are all `byte`, out of how many.
fn share(frames: &[[u8; 160]], byte: u8) -> (usize, usize) {
    (support::has_frame(frames, byte), frames.len())
}

fn mix(a: u8, b: u8) -> u8 {
    audio_codec_algorithms::encode_ulaw(ulaw(a).saturating_add(ulaw(b)))
}

#[tokio::test(start_paused = true)]
async fn a_whisper_reaches_the_agent_only_and_a_barge_both_parties() {
    let ts = TestServer::start_with(options()).await;
    let http = HttpClient::new(ts.server.http);
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut sup = supervisor(&ts, "2001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;

    let mut legs = Vec::new();
    for mode in ["whisper", "barge"] {
        let req = monitor_body("2001", mode);
        legs.push(monitor_answered(&http, &req, &mut sup, &mut call, &mut agent).await);
        sup.fill(0x11).await;
        tokio::join!(call.pump(secs(1)), agent.pump(secs(1)), sup.pump(secs(1)));
        let (caller_from, agent_from, sup_from) = (
            call.frames().len(),
            agent.received_frames().len(),
            sup.received_frames().len(),
        );
        tokio::join!(call.pump(secs(3)), agent.pump(secs(3)), sup.pump(secs(3)));
        let caller_heard = &call.frames()[caller_from..];
        let agent_heard = &agent.received_frames()[agent_from..];
        let sup_heard = &sup.received_frames()[sup_from..];
        // The supervisor hears both parties in every mode.
        let (n, of) = share(sup_heard, mix(0x42, 0x24));
        assert!(of >= 100 && n * 10 >= of * 8, "{mode}: supervisor {n}/{of}");
        // The agent hears the caller and the supervisor.
        let (n, of) = share(agent_heard, mix(0x42, 0x11));
        assert!(of >= 100 && n * 10 >= of * 8, "{mode}: agent {n}/{of}");
        if mode == "whisper" {
            assert!(
                caller_heard.iter().all(|f| f.iter().all(|b| *b == 0x24)),
                "whisper: the caller hears only the agent"
            );
        } else {
            let (n, of) = share(caller_heard, mix(0x24, 0x11));
            assert!(of >= 100 && n * 10 >= of * 8, "barge: caller {n}/{of}");
        }
        let (bye, _, _) = tokio::join!(sup.bye(), call.pump(secs(1)), agent.pump(secs(1)));
        assert_eq!(bye, Some(200));
        // The supervisor gone, they hear each other alone again.
        tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));
        let (caller_from, agent_from) = (call.frames().len(), agent.received_frames().len());
        tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));
        assert!(call.frames()[caller_from..]
            .iter()
            .all(|f| f.iter().all(|b| *b == 0x24)));
        assert!(agent.received_frames()[agent_from..]
            .iter()
            .all(|f| f.iter().all(|b| *b == 0x42)));
    }
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    agent.pump(secs(1)).await;

    // The recording holds what the supervisor said, in the right channel
    // (the center's side) only, and marks both monitors.
    let rows = support::finished_recordings(&ts, &call_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let reader = hound::WavReader::open(ts.dir.path().join(&rows[0].path)).unwrap();
    let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
    let (left, right) = (support::channel(&samples, 0), support::channel(&samples, 1));
    let agent_and_supervisor = ulaw(0x24).saturating_add(ulaw(0x11));
    let with_voice = right.iter().filter(|&&v| v == agent_and_supervisor).count();
    assert!(
        with_voice > 2 * 3 * 8000 * 8 / 10,
        "{with_voice} samples of agent + supervisor on the right"
    );
    let caller_and_supervisor = ulaw(0x42).saturating_add(ulaw(0x11));
    assert!(
        !left
            .iter()
            .any(|&v| v == caller_and_supervisor || v == ulaw(0x11)),
        "nothing of the supervisor on the caller's channel"
    );
    let marks = ts.server.store.recording_marks(&rows[0].id).await.unwrap();
    let kinds: Vec<(&str, &str)> = marks
        .iter()
        .filter(|m| m.kind.starts_with("monitor"))
        .map(|m| (m.kind.as_str(), m.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [
            ("monitor", "whisper by wang (extension 2001)"),
            ("monitor_end", "wang"),
            ("monitor", "barge by wang (extension 2001)"),
            ("monitor_end", "wang"),
        ]
    );
    for (leg, mode) in legs.iter().zip(["whisper", "barge"]) {
        let rec = ts.record(leg).await;
        assert_eq!(rec.disposition, hotline::store::Disposition::Monitor);
        assert_eq!(
            rec.self_service_result.as_deref(),
            Some(format!("{mode} by wang").as_str())
        );
        assert_eq!(rec.hangup_reason, "bye");
    }
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_allowed_softphone_dials_the_monitor_code_and_listens() {
    let ts = TestServer::start_with(options()).await;
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut sup = supervisor(&ts, "2001").await;
    let mut other = supervisor(&ts, "1002").await;

    // Not on a call: 480; no such agent: 404; not allowed: 403.
    let r = sup.invite("*311001").await.expect("a final response");
    assert_eq!(r.status, 480);
    let r = sup.invite("*319999").await.expect("a final response");
    assert_eq!(r.status, 404);

    let mut call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    let (r, _, _) = tokio::join!(
        other.invite("*311001"),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert_eq!(r.expect("a final response").status, 403);

    let (ok, _, _) = tokio::join!(
        sup.invite("*311001"),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    let ok = ok.expect("a final response");
    assert_eq!(ok.status, 200);
    let audit = monitor_audit(&ts).await;
    assert_eq!(audit.len(), 1, "refused codes are not audited: {audit:?}");
    assert!(
        audit[0].starts_with("2001 agent:1001 listen call "),
        "{audit:?}"
    );
    sup.talk_placed(&ok);
    sup.fill_placed(0x11).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)), sup.pump(secs(1)));
    let (caller_from, agent_from, sup_from) = (
        call.frames().len(),
        agent.received_frames().len(),
        sup.placed_frames().len(),
    );
    tokio::join!(call.pump(secs(3)), agent.pump(secs(3)), sup.pump(secs(3)));
    let (n, of) = share(&sup.placed_frames()[sup_from..], mix(0x42, 0x24));
    assert!(of >= 100 && n * 10 >= of * 8, "supervisor {n}/{of}");
    assert!(call.frames()[caller_from..]
        .iter()
        .all(|f| f.iter().all(|b| *b == 0x24)));
    assert!(agent.received_frames()[agent_from..]
        .iter()
        .all(|f| f.iter().all(|b| *b == 0x42)));

    // The caller hangs up: the daemon hangs up the supervisor's call.
    assert_eq!(call.bye().await, 200);
    let (bye, _) = tokio::join!(sup.wait_placed_bye(secs(5)), agent.pump(secs(1)));
    assert!(bye, "2001 gets a BYE when the call ends");
    let rec = ts.record(ok.call_id().unwrap()).await;
    assert_eq!(rec.disposition, hotline::store::Disposition::Monitor);
    assert_eq!(
        (rec.caller.as_str(), rec.dialed.as_str()),
        ("2001", "*311001")
    );
    assert_eq!(rec.hangup_by, hotline::store::HangupBy::System);
    assert_eq!(rec.hangup_reason, "call_over");
    ts.shutdown().await;
}
