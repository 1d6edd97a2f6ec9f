//! The daemon starts while its PostgreSQL database does not answer: it
//! takes an agent call at once, and when the database comes back the
//! call's record is written from the spool and what a start reads (agent
//! 1002's paused state, its softphone's registration) comes back without
//! the phone registering again. PostgreSQL only (`HOTLINE_TEST_POSTGRES`,
//! as in `.ci/run`; skipped otherwise), through a TCP proxy that is cut.

mod support;

use std::time::Duration;

use hotline::acd::AgentId;
use hotline::call::acd_service::AgentOp;
use support::agent::AgentPhone;
use support::{ServerOptions, TestServer, Transport};

#[path = "support/tcp_proxy.rs"]
mod tcp_proxy;
#[macro_use]
#[path = "support/test_db.rs"]
mod test_db;

/// Agent 1001 of `support::AGENT_1001`, and 1002 who logs in by hand.
fn agents() -> String {
    format!(
        "{}[[acd.agents]]\nid = \"1002\"\nname = \"Agent Two\"\nextension = \"1002\"\nqueues = [\"12345\"]\n",
        support::AGENT_1001
    )
}

async fn agent_view(ts: &TestServer, id: &str) -> hotline::call::acd_service::AgentView {
    let snap = ts.server.acd().snapshot().await.expect("ACD runs");
    snap.agents.into_iter().find(|a| a.id == id).expect("agent")
}

/// Polls `f` every 100 ms for up to `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {secs} s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_without_its_database_takes_calls_and_catches_up() {
    let Some(db) = test_db::TestDb::postgres().await else {
        eprintln!("skipped: set HOTLINE_TEST_POSTGRES=postgres://… to run it");
        return;
    };
    test_db::run(db, |db| async move {
        let proxy = tcp_proxy::CutProxy::start(tcp_proxy::upstream_of(&db.url)).await;
        let opts = ServerOptions {
            database: Some(tcp_proxy::through(&db.url, proxy.addr)),
            extra_toml: agents(),
            ..Default::default()
        };

        // A first run with the database: 1002 registers, logs in, pauses.
        let ts = TestServer::start_with(opts.clone()).await;
        let mut a1002 = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1002").await;
        assert_eq!(a1002.register().await, 200);
        let acd = ts.server.acd();
        acd.agent(AgentId("1002".into()), AgentOp::Login)
            .await
            .unwrap();
        acd.agent(AgentId("1002".into()), AgentOp::Pause("lunch".into()))
            .await
            .unwrap();
        ts.server.flush_records().await;
        ts.shutdown().await;

        // The database goes away; the daemon starts all the same.
        proxy.cut();
        let ts = TestServer::start_with(opts.clone()).await;
        assert_eq!(agent_view(&ts, "1002").await.state, "logged_out");
        let mut a1001 = support::ready_agent(&ts, "1001").await;
        let mut call = support::answered_call(&ts, &mut a1001).await;
        call.pump(Duration::from_secs(1)).await;
        let id = call.call_id.clone();
        assert_eq!(call.bye().await, 200);
        assert!(a1001.wait_bye(Duration::from_secs(5)).await);
        assert!(
            ts.server.store.call_record(&id).await.is_err(),
            "the database is still away"
        );

        // It comes back: the spool is written, the start-up reads are done.
        proxy.restore();
        let store = ts.server.store.clone();
        eventually(30, "the call's record is written from the spool", || {
            let (store, id) = (store.clone(), id.clone());
            async move { matches!(store.call_record(&id).await, Ok(Some(_))) }
        })
        .await;
        let rec = ts.record(&id).await;
        assert_eq!(rec.disposition.as_str(), "answered");
        assert_eq!(rec.acd.agent.as_deref(), Some("1001"));
        eventually(15, "1002's paused state comes back", || async {
            let a = agent_view(&ts, "1002").await;
            a.state == "paused" && a.reason.as_deref() == Some("lunch") && a.reachable
        })
        .await;
        let contacts = ts.server.sip().contacts("1002").await;
        assert_eq!(
            contacts.len(),
            1,
            "1002's registration is back without a new REGISTER"
        );
        drop(a1002);
        ts.shutdown().await;
    })
    .await;
}
