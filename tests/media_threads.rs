//! The daemon with its media threads (crate::media::media_threads), as it
//! runs in production: real time, not paused. A caller walks into the IVR
//! and hears its prompt, is bridged to a registered agent and both hear
//! each other, and every socket is back when the call is over. Real-time
//! priority is asked for; where the machine refuses it the threads run
//! at normal priority and the call must work the same.

mod support;

use std::time::Duration;

use support::agent::AgentPhone;
use support::http::HttpClient;
use support::{has_frame, ServerOptions, TestServer, Transport};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_ivr_and_bridge_runs_on_the_media_threads() {
    let ts = TestServer::start_with(ServerOptions {
        media_threads: 2,
        extra_toml: support::AGENT_1001.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(ts.server.media_thread_sockets(), Some(vec![0, 0]));
    let mut agent = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    // The agent's login is applied by the ACD shortly after the REGISTER.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut call = ts.phone().build().await.call("12345").await;
    let invite = tokio::select! {
        inv = agent.wait_invite(secs(20)) => inv.expect("the agent is rung"),
        _ = call.pump(secs(20)) => panic!("no INVITE to the agent"),
    };
    assert!(!invite.body.is_empty(), "the INVITE offers SDP");
    let during_ivr = ts.server.media_thread_sockets().expect("media threads");
    assert!(
        during_ivr.iter().sum::<usize>() >= 1,
        "the caller's socket is at a media thread: {during_ivr:?}"
    );
    agent.answer().await;
    assert!(agent.wait_ack(secs(5)).await, "the daemon ACKs the 200");
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    let bridged = ts.server.media_thread_sockets().expect("media threads");
    assert_eq!(
        bridged.iter().sum::<usize>(),
        2,
        "both legs' sockets, on one thread: {bridged:?}"
    );
    assert!(
        bridged.contains(&2),
        "one thread owns the bridge: {bridged:?}"
    );
    // And so says /metrics, with whether real-time priority was taken.
    let r = HttpClient::new(ts.server.http).get("/metrics").await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let on_threads: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("hotline_media_thread_sockets{thread="))
        .filter_map(|l| l.split_once(' ')?.1.parse::<usize>().ok())
        .sum();
    assert_eq!(on_threads, 2, "{text}");
    assert!(
        text.lines()
            .any(|l| l == "hotline_media_threads_realtime 1"
                || l == "hotline_media_threads_realtime 0"),
        "{text}"
    );
    let to_agent = has_frame(&agent.received_frames(), 0x42);
    let to_caller = has_frame(&call.frames(), 0x24);
    assert!(to_agent > 60, "agent heard the caller in {to_agent} frames");
    assert!(
        to_caller > 60,
        "caller heard the agent in {to_caller} frames"
    );
    let names = call.heard_names();
    assert_eq!(
        names.first().map(String::as_str),
        Some("welcome_12345"),
        "{names:?}"
    );

    assert_eq!(agent.bye().await, Some(200));
    assert!(call.wait_bye(secs(5)).await, "the caller gets BYE");
    let rec = ts.record(&call.call_id).await;
    assert_eq!(rec.disposition.as_str(), "answered");
    let talk = rec.acd.talk_ms.expect("talk time");
    assert!((1500..6000).contains(&talk), "talk {talk} ms");
    // Every socket closed, its thread's count back to zero.
    let mut left = ts.server.media_thread_sockets();
    for _ in 0..50 {
        if left == Some(vec![0, 0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = ts.server.media_thread_sockets();
    }
    assert_eq!(left, Some(vec![0, 0]));
    ts.shutdown().await;
}
