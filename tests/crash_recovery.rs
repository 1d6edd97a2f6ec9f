//! kill -9 with calls up: the daemon binary is started, takes a bridged
//! (recorded) call and a self-service call, and is killed with SIGKILL;
//! after a restart on the same data folder and database each call has a
//! record marked `interrupted` (with its agent, queue and length) and the
//! recording plays. Runs on SQLite, and on PostgreSQL under
//! `HOTLINE_TEST_DATABASE=postgres://…`.

mod support;

use std::time::Duration;

use hotline::store::{Disposition, HangupBy, RecordingFilter, RecordingStatus, Store};
use support::agent::AgentPhone;
use support::daemon::Daemon;
use support::http::HttpClient;
use support::{ServerOptions, Transport};
use tokio::time::Instant;

/// Polls `check` every 100 ms until it holds, for at most `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_calls(store: &Store) -> usize {
    store.open_call_ids().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_up_at_a_kill_9_have_interrupted_records_and_playable_recordings_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::isolated_config(
        dir.path(),
        ServerOptions {
            extra_toml: support::AGENT_1001.into(),
            ..Default::default()
        },
    )
    .await;
    let config = dir.path().join("hotline.toml");
    let store = Store::open(&cfg.database_url).await.unwrap();

    let daemon = Daemon::start(&config);
    let http = HttpClient::new(daemon.http);
    let mut agent = AgentPhone::new(daemon.sip, Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    eventually(10, "agent 1001 ready", || async {
        http.get("/api/agents/1001").await.json()["state"] == "ready"
    })
    .await;

    // A caller bridged to the agent, both talking, and a caller in the
    // self-service menu of 12333.
    let prompts = support::prompts();
    let mut bridged = support::PhoneBuilder::new(daemon.sip, prompts.clone())
        .build()
        .await
        .call("12345")
        .await;
    tokio::select! {
        inv = agent.wait_invite(Duration::from_secs(30)) => { inv.expect("the agent is rung"); }
        _ = bridged.pump(Duration::from_secs(30)) => panic!("no INVITE to the agent"),
    }
    agent.answer().await;
    assert!(agent.wait_ack(Duration::from_secs(5)).await);
    bridged.fill(0x42).await;
    agent.fill(0x24).await;
    let mut ivr = support::PhoneBuilder::new(daemon.sip, prompts)
        .build()
        .await
        .call("12333")
        .await;
    // Both journaled as up, the bridged one with its agent.
    eventually(10, "two open calls", || async {
        open_calls(&store).await == 2
    })
    .await;
    // Long enough for the journal to be refreshed (every 5 s) at least once.
    tokio::join!(
        bridged.pump(Duration::from_secs(7)),
        agent.pump(Duration::from_secs(7)),
        ivr.pump(Duration::from_secs(7)),
    );

    daemon.kill9();
    for id in [&bridged.call_id, &ivr.call_id] {
        assert!(store.call_record(id).await.unwrap().is_none());
    }

    let daemon = Daemon::start(&config);
    eventually(20, "interrupted records", || async {
        open_calls(&store).await == 0
    })
    .await;
    let rec = store.call_record(&bridged.call_id).await.unwrap().unwrap();
    assert_eq!(rec.disposition, Disposition::Interrupted);
    assert_eq!(rec.hangup_by, HangupBy::System);
    assert_eq!(rec.hangup_reason, "daemon_killed");
    assert_eq!(rec.acd.agent.as_deref(), Some("1001"));
    assert_eq!(rec.queue.as_deref(), Some("12345"));
    assert_eq!(rec.sip_status, 200);
    // Up about 7 s after the agent answered; known up until the last
    // refresh, at most 5 s before the kill.
    assert!(
        (2_000..=30_000).contains(&rec.duration_ms),
        "duration {} ms",
        rec.duration_ms
    );
    assert_eq!(
        rec.ended_at - rec.answered_at.unwrap(),
        chrono::Duration::milliseconds(rec.duration_ms)
    );
    let rec = store.call_record(&ivr.call_id).await.unwrap().unwrap();
    assert_eq!(rec.disposition, Disposition::Interrupted);
    assert_eq!(rec.dialed, "12333");
    assert!(rec.acd.agent.is_none());
    assert!(daemon.logged("recorded as interrupted"));

    // The recording was repaired at start and plays: stereo, as long as
    // what was bridged before the kill.
    let rows = store.recordings(RecordingFilter::default()).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.call_id == bridged.call_id)
        .expect("the bridged call's recording");
    assert_eq!(row.status, RecordingStatus::Interrupted);
    let wav = hound::WavReader::open(dir.path().join(&row.path)).expect("the file plays");
    assert_eq!(wav.spec().channels, 2);
    let secs = wav.duration() as f64 / 8000.0;
    assert!((5.0..20.0).contains(&secs), "{secs} s recorded");

    // A second restart finds nothing more to recover.
    daemon.stop();
    let daemon = Daemon::start(&config);
    assert_eq!(
        HttpClient::new(daemon.http).get("/readyz").await.status,
        200
    );
    // The whole log of that run, to its stop: no call recovered.
    let log = daemon.stop();
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");
    assert!(
        !log.iter().any(|l| l.contains("recorded as interrupted")),
        "{log:?}"
    );
    assert_eq!(
        store
            .recent_call_records(10)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.disposition == Disposition::Interrupted)
            .count(),
        2
    );
    store.close().await;
}
