//! Call recording end to end: a scripted caller and a scripted agent
//! softphone talk through the daemon's bridge (paused tokio time); the
//! recording is read back — the file's channels, its length against the
//! bridged time, holds and masks on its timeline, its row and checksum.

mod support;

use std::time::Duration;

use hotline::store::{RecordingFilter, RecordingKind, RecordingStatus};
use sha2::Digest;
use support::agent::AgentPhone;
use support::http::HttpClient;
use support::{ServerOptions, TestServer, Transport};
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn options(queue_keys: &str) -> ServerOptions {
    ServerOptions {
        extra_toml: format!(
            r#"
[clock]
start = "2026-11-23T10:00:00+08:00"
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
login_on_register = true
"#
        ),
        ..Default::default()
    }
}

/// The decoded value of a μ-law byte.
fn ulaw(byte: u8) -> i16 {
    hotline::media::g711::decode_sample(hotline::media::Codec::Pcmu, byte)
}

/// Samples equal to `v` in `s[from_ms..to_ms]`.
fn count(s: &[i16], from_ms: usize, to_ms: usize, v: i16) -> usize {
    s[from_ms * 8..(to_ms * 8).min(s.len())]
        .iter()
        .filter(|&&x| x == v)
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_bridged_call_is_recorded_caller_left_agent_right_with_holds_and_masks() {
    let ts = TestServer::start_with(options("")).await;
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    let bridged = Instant::now();
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(3)), agent.pump(secs(3)));
    // The agent holds for 2 s, resumes.
    let (hold, _) = tokio::join!(agent.hold(), call.pump(secs(2)));
    assert_eq!(hold, Some(200));
    let (resume, _) = tokio::join!(agent.resume(), call.pump(secs(1)));
    assert_eq!(resume, Some(200));
    // The citizen gives a PIN: the agent masks the recording with *7,
    // ends the mask with *8 after 2 s.
    let mask_from = Instant::now() - bridged;
    agent.press("*7").await;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    agent.press("*8").await;
    let mask_to = Instant::now() - bridged;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    agent.pump(secs(1)).await;

    let rec = ts.record(&call_id).await;
    let talk_ms = rec.acd.talk_ms.expect("talk time");
    let rows = support::finished_recordings(&ts, &rec.call_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.kind, RecordingKind::Call);
    assert_eq!(r.status, RecordingStatus::Complete);
    assert_eq!(r.agent.as_deref(), Some("1001"));
    assert_eq!(r.queue.as_deref(), Some("12345"));
    assert_eq!(r.channels, 2);
    assert!(r.path.starts_with("recordings/2026/11/23/"), "{}", r.path);
    let dur = r.duration_ms.unwrap();
    assert!(
        (dur - talk_ms).abs() <= 60,
        "recorded {dur} ms, bridged {talk_ms} ms"
    );

    let file = ts.dir.path().join(&r.path);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(r.size_bytes, Some(bytes.len() as i64));
    assert_eq!(
        r.sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str())
    );
    let reader = hound::WavReader::open(&file).unwrap();
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 8000);
    assert_eq!(reader.duration() as i64, dur * 8);
    let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
    let (left, right) = (support::channel(&samples, 0), support::channel(&samples, 1));
    let (caller_v, agent_v) = (ulaw(0x42), ulaw(0x24));
    assert_ne!(caller_v, agent_v);
    // Second 1-3: both talk, each in its own channel only.
    assert!(
        count(&left, 1000, 3000, caller_v) > 15_000,
        "caller on the left"
    );
    assert!(
        count(&right, 1000, 3000, agent_v) > 15_000,
        "agent on the right"
    );
    assert_eq!(
        count(&left, 0, dur as usize, agent_v),
        0,
        "no agent on the left"
    );
    assert_eq!(
        count(&right, 0, dur as usize, caller_v),
        0,
        "no caller on the right"
    );
    // The hold is in the recording (the caller goes on talking).
    assert!(
        count(&left, 3500, 4800, caller_v) > 9_000,
        "the hold is recorded"
    );
    // Holds and masks are marked on the timeline.
    let marks = ts.server.store.recording_marks(&r.id).await.unwrap();
    let kinds: Vec<(&str, Option<&str>)> = marks
        .iter()
        .map(|m| (m.kind.as_str(), m.detail.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("hold", Some("agent")),
            ("resume", Some("agent")),
            ("mask", Some("1001")),
            ("unmask", Some("1001")),
        ]
    );
    let hold_at = marks[0].at_ms;
    assert!((2900..=3300).contains(&hold_at), "hold at {hold_at} ms");
    // The mask starts once "*7" is keyed (two 100 ms events and pauses).
    let (m0, m1) = (marks[2].at_ms, marks[3].at_ms);
    let keyed = mask_from.as_millis() as i64;
    assert!(
        (keyed..=keyed + 600).contains(&m0),
        "mask at {m0} ms, keyed at {keyed}"
    );
    assert!((m1 - m0 - (mask_to - mask_from).as_millis() as i64).abs() <= 100);
    // The masked span is silence on both channels.
    let (m0, m1) = (m0 as usize + 20, m1 as usize - 20);
    assert!(
        left[m0 * 8..m1 * 8]
            .iter()
            .chain(&right[m0 * 8..m1 * 8])
            .all(|&s| s == 0),
        "masked {m0}..{m1} ms is silence"
    );
    assert!(
        r.masked_ms >= 1900 && r.masked_ms <= 2100,
        "{}",
        r.masked_ms
    );
    // Before and after the mask, audio.
    assert!(count(&left, m0 - 520, m0 - 20, caller_v) > 3_500);
    assert!(count(&left, m1 + 400, m1 + 1400, caller_v) > 7_000);
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_queue_may_choose_not_to_record() {
    let ts = TestServer::start_with(options("record = false")).await;
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rec = ts.record(&call_id).await;
    assert!(rec.acd.talk_ms.is_some());
    ts.server.flush_records().await;
    let rows = ts
        .server
        .store
        .recordings(RecordingFilter {
            call_id: Some(call_id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    ts.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_agent_desktop_masks_the_recording_through_the_api() {
    let ts = TestServer::start_with(options("")).await;
    let http = HttpClient::new(ts.server.http);
    // No call yet: nothing to mask.
    let r = http
        .post("/api/agents/1001/recording", r#"{"masked": true}"#)
        .await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    let bridged = Instant::now();
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)));
    let bad = http
        .post("/api/agents/1001/recording", r#"{"mask": 1}"#)
        .await;
    assert_eq!(bad.status, 400, "{}", String::from_utf8_lossy(&bad.body));
    let (r, _, _) = tokio::join!(
        http.post("/api/agents/1001/recording", r#"{"masked": true}"#),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["masked"], true);
    let masked_at = (Instant::now() - bridged).as_millis() as usize;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    let (r, _, _) = tokio::join!(
        http.post("/api/agents/1001/recording", r#"{"masked": false}"#),
        call.pump(secs(1)),
        agent.pump(secs(1))
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let call_id = call.call_id.clone();
    assert_eq!(call.bye().await, 200);
    let rows = support::finished_recordings(&ts, &call_id).await;
    let row = &rows[0];
    assert!(
        (1900..=3200).contains(&row.masked_ms),
        "masked {} ms",
        row.masked_ms
    );
    let samples: Vec<i16> = hound::WavReader::open(ts.dir.path().join(&row.path))
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect();
    let left = support::channel(&samples, 0);
    assert!(left[(masked_at + 50) * 8..(masked_at + 1900) * 8]
        .iter()
        .all(|&s| s == 0));
    assert!(count(&left, 200, 900, ulaw(0x42)) > 5000);
    let marks = ts.server.store.recording_marks(&row.id).await.unwrap();
    let kinds: Vec<&str> = marks.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["mask", "unmask"]);
    ts.shutdown().await;
}

/// A child daemon, killed if the test fails before it does.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hotline serve` as a child process on the test config; its SIP UDP
/// address from its log.
fn spawn_daemon(config: &std::path::Path) -> (Daemon, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hotline"))
        .env("HOTLINE_LOG", "info")
        .env("NO_COLOR", "1")
        .args(["--config", config.to_str().unwrap(), "serve"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("SIP listening") {
                let udp = line
                    .split("udp=")
                    .nth(1)
                    .and_then(|r| r.trim_start_matches("Some(").split([' ', ')']).next())
                    .unwrap()
                    .to_string();
                let _ = tx.send(udp);
            }
        }
    });
    let udp = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the daemon starts");
    (Daemon(child), udp.parse().unwrap())
}

/// kill -9 while a recorded call is up: the file on disk plays (its header
/// kept valid as it grew); the next start repairs it to every frame written
/// and marks the recording interrupted.
#[tokio::test]
async fn a_recording_survives_kill_9_and_is_repaired_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::isolated_config(dir.path(), options("")).await;
    let (mut child, udp) = spawn_daemon(&cfg.file);
    let mut agent = AgentPhone::new(udp, Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut call = support::PhoneBuilder::new(udp, support::prompts())
        .build()
        .await
        .call("12345")
        .await;
    tokio::select! {
        inv = agent.wait_invite(secs(30)) => { inv.expect("the agent is rung"); }
        _ = call.pump(secs(30)) => panic!("no INVITE to the agent"),
    }
    agent.answer().await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(3)), agent.pump(secs(3)));
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    let store = hotline::store::Store::open(&cfg.database_url)
        .await
        .unwrap();
    let rows = store.recordings(RecordingFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, RecordingStatus::Recording);
    let file = dir.path().join(&rows[0].path);
    let reader = hound::WavReader::open(&file).expect("plays after kill -9");
    assert_eq!(reader.spec().channels, 2);
    let playable = reader.duration();
    assert!(playable >= 8000 * 2, "{playable} frames playable");
    let on_disk = std::fs::metadata(&file).unwrap().len();
    store.close().await;

    // The next start repairs it.
    let server = hotline::server::Server::start(cfg.clone()).await.unwrap();
    let row = server.store.recording(&rows[0].id).await.unwrap().unwrap();
    assert_eq!(row.status, RecordingStatus::Interrupted);
    let frames = (on_disk - 44) / 4;
    assert_eq!(row.duration_ms, Some((frames * 1000 / 8000) as i64));
    let reader = hound::WavReader::open(&file).unwrap();
    assert_eq!(u64::from(reader.duration()), frames);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        row.sha256.as_deref(),
        Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str())
    );
    let left: Vec<i16> = reader
        .into_samples()
        .map(Result::unwrap)
        .step_by(2)
        .collect();
    assert!(
        left.iter().filter(|&&s| s == ulaw(0x42)).count() > 8000,
        "the caller is in it"
    );
    server.shutdown(Duration::from_secs(1)).await;
}
