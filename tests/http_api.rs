//! The agents' HTTP API end to end: the daemon in-process, real HTTP/1.1
//! over 127.0.0.1 (`support::http`), agents as registered softphones and
//! callers from the scripted phone, on paused tokio time. Asserts what the
//! API answers and that its operations show in the snapshot and in the
//! queue event log; voice messages listed and their audio fetched whole and
//! by range; a tampered stored path refused; bearer tokens enforced.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::agent::AgentPhone;
use support::http::HttpClient;
use support::{ServerOptions, TestServer, Transport};
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A daemon at `time`, queue 12345 with agents 1001 and 1002 (not logged in
/// on registration: the API does it).
fn options(time: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!(
            r#"
[clock]
start = "{time}"
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
skills = {{ pension = 3 }}
wrap_up_secs = 5
[[acd.agents]]
id = "1002"
name = "Agent Two"
extension = "1002"
queues = ["12345"]
wrap_up_secs = 5
"#
        ),
        ..Default::default()
    }
}

const OPEN: &str = "2026-11-23T10:00:00+08:00";

fn api(ts: &TestServer) -> HttpClient {
    HttpClient::new(ts.server.http)
}

/// Polls `GET /api/agents/{id}` until `field` is `want` (tokio time).
async fn wait_agent(c: &HttpClient, id: &str, field: &str, want: Value, within: Duration) -> Value {
    let until = Instant::now() + within;
    loop {
        let r = c.get(&format!("/api/agents/{id}")).await;
        assert_eq!(r.status, 200);
        let a = r.json();
        if a[field] == want {
            return a;
        }
        assert!(
            Instant::now() < until,
            "agent {id}: {a}, not {field} = {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /api/agents/{id}/{action}`: (status, body).
async fn act(c: &HttpClient, id: &str, action: &str, body: &str) -> (u16, Value) {
    let r = c.post(&format!("/api/agents/{id}/{action}"), body).await;
    (r.status, r.json())
}

/// The `kind`s of an `/api/events` answer, in order.
fn kinds(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn agents_log_in_pause_ready_and_log_out_through_the_api() {
    let ts = TestServer::start_with(options(OPEN)).await;
    let c = api(&ts);

    let r = c.get("/api/agents").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let agents = r.json();
    let agents = agents.as_array().expect("an array");
    assert_eq!(agents.len(), 2);
    let one = &agents[0];
    assert_eq!(one["id"], "1001");
    assert_eq!(one["name"], "Agent One");
    assert_eq!(one["extension"], "1001");
    assert_eq!(one["state"], "logged_out");
    assert_eq!(one["reachable"], false);
    assert_eq!(one["queues"], serde_json::json!(["12345"]));
    assert_eq!(one["skills"], serde_json::json!({ "pension": 3 }));
    assert_eq!(one["calls_today"], 0);

    // The softphone registers: reachable, still logged out.
    let mut phone = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(phone.register().await, 200);
    let a = wait_agent(&c, "1001", "reachable", Value::Bool(true), secs(5)).await;
    assert_eq!(a["state"], "logged_out");

    // Not logged in: no pause, no logout.
    let (s, b) = act(&c, "1001", "pause", r#"{"reason":"lunch"}"#).await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("not logged in"),
        "{b}"
    );
    assert_eq!(act(&c, "1001", "logout", "").await.0, 409);

    let (s, b) = act(&c, "1001", "login", "").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["effect"], "now");
    assert_eq!(b["agent"]["state"], "ready");
    let (s, b) = act(&c, "1001", "login", "").await;
    assert_eq!(s, 409, "{b}");
    assert!(b["error"].is_string(), "{b}");
    let q = c.get("/api/queues").await.json();
    let q12345 = q
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "12345")
        .expect("queue 12345")
        .clone();
    assert_eq!(q12345["staffed"], 1, "{q12345}");
    assert_eq!(q12345["waiting"], 0);
    assert_eq!(q12345["callbacks"], 0);
    assert!(q12345["strategy"].is_string());

    // Bad reasons and bodies: 400, state unchanged.
    for body in [
        r#"{"reason":"out to lunch"}"#,
        r#"{"reason":""}"#,
        "{}",
        "lunch",
        "",
    ] {
        let (s, b) = act(&c, "1001", "pause", body).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(b["error"].is_string(), "{b}");
    }
    assert_eq!(c.get("/api/agents/1001").await.json()["state"], "ready");

    let (s, b) = act(&c, "1001", "pause", r#"{"reason":"lunch"}"#).await;
    assert_eq!((s, b["effect"].as_str()), (200, Some("now")), "{b}");
    assert_eq!(b["agent"]["state"], "paused");
    assert_eq!(b["agent"]["reason"], "lunch");
    let (s, b) = act(&c, "1001", "pause", r#"{"reason":"lunch"}"#).await;
    assert_eq!((s, b["effect"].as_str()), (200, Some("unchanged")), "{b}");
    assert_eq!(
        c.get("/api/queues").await.json()[0]["staffed"],
        1,
        "a paused agent is still logged in and reachable"
    );

    let (s, b) = act(&c, "1001", "unpause", "").await;
    assert_eq!((s, b["effect"].as_str()), (200, Some("now")), "{b}");
    assert_eq!(b["agent"]["state"], "ready");
    assert_eq!(b["agent"]["reason"], Value::Null);
    let (s, b) = act(&c, "1001", "ready", "{}").await;
    assert_eq!((s, b["effect"].as_str()), (200, Some("unchanged")), "{b}");
    let (s, b) = act(&c, "1001", "logout", "").await;
    assert_eq!((s, b["effect"].as_str()), (200, Some("now")), "{b}");
    assert_eq!(b["agent"]["state"], "logged_out");
    // `ready` from logged out logs in.
    let (s, b) = act(&c, "1002", "ready", "").await;
    assert_eq!(
        (s, b["agent"]["state"].as_str()),
        (200, Some("ready")),
        "{b}"
    );

    // Unknown agents and actions.
    for (path, body) in [
        ("/api/agents/9999/login", ""),
        ("/api/agents/9999/pause", r#"{"reason":"lunch"}"#),
        ("/api/agents/1001/dance", ""),
    ] {
        let r = c.post(path, body).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"].is_string());
    }
    let r = c.get("/api/agents/9999").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no agent 9999");
    let r = c.get("/api/agents/1001/login").await;
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());

    // The event log says what happened, in order, with RFC 3339 times.
    ts.server.flush_records().await;
    let r = c.get("/api/events?agent=1001").await;
    assert_eq!(r.status, 200);
    let events = r.json();
    assert_eq!(
        kinds(&events),
        ["reachable", "login", "pause", "unpause", "logout"],
        "{events}"
    );
    for e in events.as_array().unwrap() {
        let at = e["at"].as_str().unwrap();
        let t = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
        assert_eq!(t.date_naive().to_string(), "2026-11-23", "{at}");
        assert_eq!(e["agent"], "1001");
    }
    let pauses = c.get("/api/events?agent=1001&kind=pause").await.json();
    assert_eq!(pauses.as_array().unwrap().len(), 1, "{pauses}");
    assert_eq!(pauses[0]["reason"], "lunch");
    let last = c.get("/api/events?agent=1001&limit=1").await.json();
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!(last[0]["kind"], "logout");
    let r = c.get("/api/events?limit=many").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_agent_on_a_call_is_shown_with_it_and_logs_out_after_it() {
    let ts = TestServer::start_with(options(OPEN)).await;
    let c = api(&ts);
    let mut agent = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    wait_agent(&c, "1001", "reachable", Value::Bool(true), secs(5)).await;
    assert_eq!(act(&c, "1001", "login", "").await.0, 200);

    let mut call = ts.phone().build().await.call("12345").await;
    tokio::select! {
        inv = agent.wait_invite(secs(30)) => { inv.expect("the agent is rung"); }
        _ = call.pump(secs(30)) => panic!("no INVITE to the agent"),
    };
    let a = c.get("/api/agents/1001").await.json();
    assert_eq!(a["state"], "ringing", "{a}");
    assert_eq!(a["call_id"], call.call_id.as_str());
    agent.ring().await;
    agent.answer().await;
    assert!(agent.wait_ack(secs(5)).await);
    let a = c.get("/api/agents/1001").await.json();
    assert_eq!(a["state"], "talking", "{a}");

    let (s, b) = act(&c, "1001", "logout", "").await;
    assert_eq!((s, b["effect"].as_str()), (200, Some("after_call")), "{b}");
    assert_eq!(b["agent"]["state"], "talking");
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));
    assert_eq!(agent.bye().await, Some(200));
    assert!(call.wait_bye(secs(5)).await);
    // After the wrap-up (5 s) the pending logout happens.
    wait_agent(&c, "1001", "state", "logged_out".into(), secs(15)).await;
    ts.server.flush_records().await;
    let ev = c
        .get(&format!(
            "/api/events?call_id={}",
            call.call_id.replace('@', "%40")
        ))
        .await
        .json();
    assert_eq!(
        kinds(&ev),
        ["enter", "offer", "connect", "complete"],
        "{ev}"
    );
    ts.shutdown().await;
}

/// Runs one statement on the test daemon's database.
async fn exec_sql(ts: &TestServer, sql: &str, value: &str, call_id: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&ts.database_url)
        .await
        .expect("connect to the test database");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(value.to_string())
        .bind(call_id.to_string())
        .execute(&mut c)
        .await
        .expect("update");
}

#[tokio::test(start_paused = true)]
async fn a_voice_message_is_listed_and_served_whole_and_by_range_and_only_from_the_recordings_folder(
) {
    // 22:30 in Beijing: the 12345 line is closed, callers leave a message.
    let ts = TestServer::start_with(options("2026-11-23T22:30:00+08:00")).await;
    let c = api(&ts);
    let mut call = ts
        .phone()
        .caller("13800138000")
        .build()
        .await
        .call("12345")
        .await;
    call.wait_heard("beep", secs(60)).await;
    call.pump(secs(3)).await;
    call.press("#").await;
    assert!(call.wait_bye(secs(30)).await);
    let rec = ts.record(&call.call_id).await;
    let rel = rec.voice_message.clone().expect("a voice message");
    let file = std::fs::read(ts.dir.path().join(&rel)).expect("the WAV");

    let r = c.get("/api/voice-messages").await;
    assert_eq!(r.status, 200);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let m = &list[0];
    assert_eq!(m["call_id"], call.call_id.as_str());
    assert_eq!(m["caller"], "13800138000");
    assert_eq!(m["dialed"], "12345");
    assert_eq!(m["length_ms"], rec.voice_message_ms.unwrap());
    let arrived =
        chrono::DateTime::parse_from_rfc3339(m["arrived_at"].as_str().unwrap()).expect("RFC 3339");
    assert_eq!(arrived, rec.arrived_at);
    let url = m["audio_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("/api/voice-messages/") && url.ends_with("/audio"),
        "{url}"
    );

    // Time bounds: from ≤ arrival < to.
    let count = |q: String| {
        let c = c.clone();
        async move {
            let r = c.get(&format!("/api/voice-messages?{q}")).await;
            assert_eq!(r.status, 200, "{q}");
            r.json().as_array().unwrap().len()
        }
    };
    assert_eq!(
        count("from=2026-11-23T14:00:00Z&to=2026-11-23T15:00:00Z".into()).await,
        1
    );
    assert_eq!(count("from=2026-11-23T22:00:00%2B08:00".into()).await, 1);
    assert_eq!(count("from=2026-11-23T14:31:00Z".into()).await, 0);
    assert_eq!(count("to=2026-11-23T14:29:00Z".into()).await, 0);
    let r = c.get("/api/voice-messages?from=yesterday").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("RFC 3339"));

    // Whole: a WAV hound reads, the stored bytes exactly.
    let r = c.get(&url).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.body, file);
    let wav = hound::WavReader::new(std::io::Cursor::new(r.body.clone())).expect("a WAV");
    assert_eq!(wav.spec().sample_rate, 8000);
    assert_eq!(wav.len() as i64, rec.voice_message_ms.unwrap() * 8);

    // Ranges: the header, the middle, the tail; beyond the end is 416.
    let len = file.len();
    let range = |v: String| {
        let c = c.clone();
        let url = url.clone();
        async move { c.request("GET", &url, &[("Range", &v)], b"").await }
    };
    let r = range("bytes=0-43".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-43/{len}").as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.body, file[..44]);
    let r = range("bytes=1000-1999".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, file[1000..2000]);
    let r = range("bytes=-100".into()).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{len}", len - 100, len - 1).as_str())
    );
    assert_eq!(r.body, file[len - 100..]);
    let r = range(format!("bytes={}-", len - 10)).await;
    assert_eq!((r.status, r.body.len()), (206, 10));
    let r = range(format!("bytes={len}-")).await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );

    // Unknown calls, calls without a message: 404.
    assert_eq!(c.get("/api/voice-messages/nope/audio").await.status, 404);

    // A tampered row must not read other files.
    let sql = "UPDATE call_records SET voice_message = $1 WHERE call_id = $2";
    let config = ts.dir.path().join("hotline.toml");
    for bad in [
        "../hotline.toml".to_string(),
        "recordings/../hotline.toml".to_string(),
        config.display().to_string(),
        "recordings".to_string(),
        "/etc/passwd".to_string(),
    ] {
        exec_sql(&ts, sql, &bad, &call.call_id).await;
        let r = c.get(&url).await;
        assert_eq!(r.status, 404, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    // A link inside recordings/ pointing out is refused too.
    #[cfg(unix)]
    {
        let link = ts.dir.path().join("recordings/link.wav");
        std::os::unix::fs::symlink(&config, &link).unwrap();
        exec_sql(&ts, sql, "recordings/link.wav", &call.call_id).await;
        assert_eq!(c.get(&url).await.status, 404);
    }
    // Put back, it is served again.
    exec_sql(&ts, sql, &rel, &call.call_id).await;
    assert_eq!(c.get(&url).await.status, 200);
    ts.shutdown().await;
}

const TOKEN: &str = "s3cret-token-for-tests-0001";

#[tokio::test(start_paused = true)]
async fn tokens_guard_the_api_but_not_the_probes() {
    let ts = TestServer::start_with(ServerOptions {
        api_tokens: vec!["another-token-0000000".into(), TOKEN.into()],
        ..options(OPEN)
    })
    .await;
    let anon = api(&ts);
    for path in [
        "/api/agents",
        "/api/queues",
        "/api/events",
        "/api/calls",
        "/api/nope",
    ] {
        let r = anon.get(path).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="hotline""#)
        );
        assert!(r.json()["error"].is_string());
    }
    let r = anon.post("/api/agents/1001/login", "").await;
    assert_eq!(r.status, 401);
    let wrong = api(&ts).with_token("s3cret-token-for-tests-0002");
    let r = wrong.get("/api/agents").await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = wrong.get("/api/voice-messages/x/audio").await;
    assert_eq!(r.status, 401);
    // Nothing changed for the refused login.
    let good = api(&ts).with_token(TOKEN);
    let r = good.get("/api/agents/1001").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "logged_out");
    assert_eq!(good.post("/api/agents/1001/login", "").await.status, 200);
    assert_eq!(good.get("/api/nope").await.status, 404);
    let r = anon
        .request(
            "GET",
            "/api/queues",
            &[("Authorization", &format!("bearer {TOKEN}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "the scheme is case-insensitive");
    assert_eq!(anon.get("/healthz").await.status, 200);
    assert_eq!(anon.get("/readyz").await.status, 200);
    ts.shutdown().await;
}

/// A record for the search test: arrived `mins` after 09:00 UTC.
fn search_record(
    id: &str,
    caller: &str,
    agent: Option<&str>,
    disposition: hotline::store::Disposition,
    mins: i64,
) -> hotline::store::CallRecord {
    use hotline::store::{CallRecord, HangupBy};
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
        + chrono::Duration::minutes(mins);
    CallRecord {
        call_id: id.into(),
        caller: caller.into(),
        dialed: "12345".into(),
        arrived_at: at,
        answered_at: Some(at),
        ended_at: at + chrono::Duration::seconds(60),
        duration_ms: 60_000,
        ivr_path: vec!["welcome".into()],
        self_service_result: None,
        disposition,
        hangup_by: HangupBy::Caller,
        hangup_reason: "bye".into(),
        sip_status: 200,
        codec: Some("PCMA".into()),
        language: Some("zh".into()),
        queue: agent.map(|_| "12345".into()),
        voice_message: None,
        voice_message_ms: None,
        acd: hotline::store::QueueOutcome {
            agent: agent.map(str::to_string),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn call_records_are_searched_by_time_caller_agent_queue_and_disposition() {
    use hotline::store::Disposition::{AbandonedInQueue, Answered, SelfServed};
    let ts = TestServer::start_with(options(OPEN)).await;
    let recs = [
        search_record("s-1", "13800000001", Some("1001"), Answered, 0),
        search_record("s-2", "13800000002", Some("1002"), Answered, 10),
        search_record("s-3", "13800000001", None, AbandonedInQueue, 20),
        search_record("s-4", "13800000003", None, SelfServed, 30),
    ];
    ts.server.store.insert_call_records(&recs).await.unwrap();
    let c = api(&ts);
    let ids = |q: &'static str| {
        let c = c.clone();
        async move {
            let r = c.get(&format!("/api/calls?{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["call_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("").await, ["s-4", "s-3", "s-2", "s-1"], "newest first");
    assert_eq!(ids("limit=2").await, ["s-4", "s-3"]);
    assert_eq!(ids("caller=13800000001").await, ["s-3", "s-1"]);
    assert_eq!(ids("agent=1002").await, ["s-2"]);
    assert_eq!(ids("queue=12345").await, ["s-2", "s-1"]);
    assert_eq!(ids("disposition=answered").await, ["s-2", "s-1"]);
    assert_eq!(
        ids("from=2026-11-23T09:10:00Z&to=2026-11-23T09:30:00Z").await,
        ["s-3", "s-2"]
    );
    assert_eq!(
        ids("from=2026-11-23T17:05:00%2B08:00&caller=13800000001&disposition=abandoned_in_queue")
            .await,
        ["s-3"]
    );
    assert!(ids("caller=nobody").await.is_empty());
    let r = c.get("/api/calls?disposition=lost").await;
    assert_eq!(r.status, 400);
    let err = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("disposition") && err.contains("answered"),
        "{err}"
    );
    let r = c.get("/api/calls?to=soon").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("RFC 3339"));
    ts.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_its_plain_get_paths_answer() {
    let ts = TestServer::start_with(options(OPEN)).await;
    let c = api(&ts);
    let r = c.get("/api/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    let mut tried = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let streams = ops["get"]["responses"]["200"]["content"]
            .get("text/event-stream")
            .is_some();
        if path.contains('{') || ops.get("get").is_none() || streams {
            continue;
        }
        let r = c.get(path).await;
        assert!(
            r.status == 200 || (path == "/readyz" && r.status == 503),
            "{path}: {}",
            r.status
        );
        tried += 1;
    }
    assert!(tried >= 10, "{tried} paths tried");
    ts.shutdown().await;
}

#[tokio::test]
async fn queue_events_stream_as_they_happen_filtered_and_end_at_shutdown() {
    let ts = TestServer::start_with(options(OPEN)).await;
    let c = api(&ts);
    let mut all = c.sse("/api/events/stream", &[]).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-type"), Some("text/event-stream"));
    let mut logouts = c
        .sse("/api/events/stream?kind=logout&agent=1001", &[])
        .await;
    assert_eq!(logouts.status, 200);

    assert_eq!(act(&c, "1002", "login", "").await.0, 200);
    assert_eq!(act(&c, "1001", "login", "").await.0, 200);
    assert_eq!(act(&c, "1001", "logout", "").await.0, 200);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = all
            .next_event(Duration::from_secs(10))
            .await
            .expect("an event within 10 s");
        if ev.event == "queue_event" {
            let e = ev.json();
            seen.push(format!(
                "{} {}",
                e["kind"].as_str().unwrap(),
                e["agent"].as_str().unwrap()
            ));
            assert!(e["uid"].is_string() && e["at"].is_string(), "{e}");
        }
    }
    assert_eq!(seen, ["login 1002", "login 1001", "logout 1001"]);
    // The filtered stream got the logout only.
    let ev = logouts
        .next_event(Duration::from_secs(10))
        .await
        .expect("the logout");
    assert_eq!(ev.event, "queue_event");
    assert_eq!(ev.json()["kind"], "logout");
    assert_eq!(ev.json()["agent"], "1001");
    // What was streamed is in the log too (once written: the stream is
    // told before the database).
    ts.server.flush_records().await;
    let r = c.get("/api/events?agent=1001").await;
    let kinds: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["login", "logout"]);
    ts.shutdown().await;
    assert!(
        all.next_event(Duration::from_secs(10)).await.is_none(),
        "the stream ends when the daemon stops"
    );
}
