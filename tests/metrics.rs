//! `GET /metrics` (Prometheus text) while calls run: a caller bridged to
//! agent 1001 and a second caller waiting in the queue (paused tokio
//! time), then after both hang up; behind the API token.

mod support;

use std::time::Duration;

use support::http::HttpClient;
use support::{ServerOptions, TestServer};

const TOKEN: &str = "metrics-token-0123456789";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The value of the series `series` (name with its labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

async fn scrape(http: &HttpClient) -> String {
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain; version=0.0.4"));
    String::from_utf8(r.body.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn metrics_count_calls_queues_agents_rtp_and_the_store() {
    let ts = TestServer::start_with(ServerOptions {
        api_tokens: vec![TOKEN.into()],
        extra_toml: support::AGENT_1001.to_string(),
        ..Default::default()
    })
    .await;
    let anonymous = HttpClient::new(ts.server.http);
    assert_eq!(
        anonymous.get("/metrics").await.status,
        401,
        "needs the token"
    );
    let http = HttpClient::new(ts.server.http).with_token(TOKEN);
    let idle = scrape(&http).await;
    assert_eq!(value(&idle, "hotline_calls_active"), Some(0.0));
    assert_eq!(
        value(&idle, r#"hotline_agents{state="logged_out"}"#),
        Some(1.0)
    );

    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    // A second caller hears the greeting, then waits: 1001 is busy.
    let mut waiting = ts.phone().build().await.call("12345").await;
    tokio::join!(
        call.pump(secs(12)),
        agent.pump(secs(12)),
        waiting.pump(secs(12))
    );
    let (up, _, _, _) = tokio::join!(
        scrape(&http),
        call.pump(secs(1)),
        agent.pump(secs(1)),
        waiting.pump(secs(1))
    );
    assert_eq!(value(&up, "hotline_calls_active"), Some(2.0), "{up}");
    assert_eq!(value(&up, "hotline_calls_total"), Some(2.0));
    assert_eq!(value(&up, r#"hotline_agents{state="talking"}"#), Some(1.0));
    assert_eq!(
        value(&up, r#"hotline_queue_waiting{queue="12345"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&up, r#"hotline_queue_staffed{queue="12345"}"#),
        Some(1.0)
    );
    let longest = value(&up, r#"hotline_queue_longest_wait_seconds{queue="12345"}"#).unwrap();
    assert!((1.0..12.0).contains(&longest), "longest wait {longest} s");
    assert_eq!(value(&up, "hotline_recordings_active"), Some(1.0));
    assert_eq!(value(&up, "hotline_bridges_total"), Some(0.0));

    // Both hang up; the bridge's figures are counted.
    assert_eq!(waiting.bye().await, 200);
    assert_eq!(call.bye().await, 200);
    agent.pump(secs(2)).await;
    ts.server.flush_records().await;
    let after = scrape(&http).await;
    assert_eq!(value(&after, "hotline_calls_active"), Some(0.0), "{after}");
    assert_eq!(value(&after, "hotline_bridges_total"), Some(1.0));
    let received = value(
        &after,
        r#"hotline_rtp_packets_received_total{side="caller"}"#,
    )
    .unwrap();
    assert!(received >= 150.0, "caller packets {received}");
    assert!(
        value(
            &after,
            r#"hotline_rtp_packets_received_total{side="agent"}"#
        )
        .unwrap()
            >= 150.0
    );
    assert_eq!(
        value(&after, r#"hotline_rtp_packets_lost_total{side="caller"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&after, r#"hotline_rtp_jitter_seconds_count{side="agent"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&after, r#"hotline_queue_waiting{queue="12345"}"#),
        Some(0.0)
    );
    assert!(value(&after, "hotline_store_written_total").unwrap() >= 2.0);
    assert!(value(&after, "hotline_store_passes_total").unwrap() >= 1.0);
    assert_eq!(value(&after, "hotline_store_backlog"), Some(0.0));
    ts.shutdown().await;
}
