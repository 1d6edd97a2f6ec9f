//! Reloading the configuration while calls are up: new flows reach new
//! calls, a call up across the reload goes on untouched, a bad config is
//! refused with its file named and the running one kept, and what a reload
//! cannot apply is reported; agents, queues and softphone users come and
//! go while agents talk, each call keeping its agent to its end.
//! In-process through `Server::reload`, then the binary through SIGHUP.

mod support;

use std::path::Path;
use std::time::Duration;

use support::agent::AgentPhone;
use support::daemon::Daemon;
use support::{ServerOptions, TestServer, Transport};

/// A line that says goodbye and hangs up.
const LINE_55555: &str = r#"
description = "reload test line"
dialed = ["55555"]
language = "zh"
start = "bye"

[nodes.bye]
kind = "hangup"
prompts = ["goodbye"]
"#;

/// A flow whose node leads nowhere: refused.
const BAD_FLOW: &str = r#"
description = "broken"
dialed = ["66666"]
language = "zh"
start = "a"

[nodes.a]
kind = "play"
prompts = ["goodbye"]
next = "nowhere"
"#;

fn copy_shipped_flows(to: &Path) {
    for f in ["12333.toml", "12345.toml"] {
        std::fs::copy(support::repo().join("config/flows").join(f), to.join(f)).unwrap();
    }
}

/// Calls 55555 and returns what was heard before the call ended (the
/// daemon's BYE) or 4 s passed.
async fn heard_on_55555(ts_phone: support::PhoneBuilder) -> (Vec<String>, bool) {
    let mut call = ts_phone.build().await.call("55555").await;
    let ended = call.wait_bye(Duration::from_secs(10)).await;
    let heard = call.heard_names();
    if !ended {
        call.bye().await;
    }
    (heard, ended)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_gives_new_calls_the_new_flows_keeps_calls_up_and_refuses_a_bad_config() {
    let flows = tempfile::tempdir().unwrap();
    copy_shipped_flows(flows.path());
    let mut opts = ServerOptions {
        flows_dir: Some(flows.path().to_path_buf()),
        ..Default::default()
    };
    let ts = TestServer::start_with(opts.clone()).await;
    opts.database = Some(ts.database_url.clone());
    let config = |opts: &ServerOptions| support::test_config(ts.dir.path(), opts);

    // Before: 55555 is nobody's number, so the default flow (12345) has it.
    let (heard, _) = heard_on_55555(ts.phone()).await;
    assert!(heard.iter().any(|n| n == "welcome_12345"), "{heard:?}");

    // A caller in the 12333 menu across every reload below.
    let mut up = ts.phone().build().await.call("12333").await;
    up.pump(Duration::from_secs(1)).await;

    std::fs::write(flows.path().join("55555.toml"), LINE_55555).unwrap();
    let report = ts.server.reload(&config(&opts)).await.expect("reload");
    assert_eq!(report.flows, 3, "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");
    let (heard, ended) = heard_on_55555(ts.phone()).await;
    assert!(ended, "the new line hangs up");
    assert!(heard.iter().any(|n| n == "goodbye"), "{heard:?}");
    assert!(!heard.iter().any(|n| n == "welcome_12345"), "{heard:?}");

    // A broken flow: refused, named, and the running flows kept.
    std::fs::write(flows.path().join("bad.toml"), BAD_FLOW).unwrap();
    let err = ts
        .server
        .reload(&config(&opts))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("nowhere"), "{err}");
    let (heard, ended) = heard_on_55555(ts.phone()).await;
    assert!(ended && heard.iter().any(|n| n == "goodbye"), "{heard:?}");
    std::fs::remove_file(flows.path().join("bad.toml")).unwrap();

    // Agents and queues are reloaded; a section read at start only is
    // reported.
    opts.extra_toml = support::AGENT_1001.into();
    opts.rtp_timeout_secs += 1;
    let report = ts.server.reload(&config(&opts)).await.expect("reload");
    assert_eq!(report.acd.agents_added, ["1001"], "{report:?}");
    assert_eq!(report.restart_needed, ["rtp"], "{report:?}");

    // The call that was up all along went on in its menu.
    up.pump(Duration::from_secs(1)).await;
    assert!(!up.ended_by_daemon);
    let names = up.heard_names();
    assert!(names.iter().any(|n| n.starts_with("welcome")), "{names:?}");
    assert_eq!(up.bye().await, 200);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_flows_and_a_bad_config_is_refused_with_the_old_kept() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    copy_shipped_flows(&flows);
    let opts = ServerOptions {
        flows_dir: Some(flows.clone()),
        ..Default::default()
    };
    support::isolated_config(dir.path(), opts).await;
    let config = dir.path().join("hotline.toml");
    let daemon = Daemon::start(&config);
    let phone = || support::PhoneBuilder::new(daemon.sip, support::prompts());

    std::fs::write(flows.join("55555.toml"), LINE_55555).unwrap();
    daemon.hup();
    assert!(daemon.wait_logged("configuration reloaded", 10));
    let (heard, ended) = heard_on_55555(phone()).await;
    assert!(ended && heard.iter().any(|n| n == "goodbye"), "{heard:?}");

    // A config file that does not parse: refused, the daemon goes on.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\n[sip\n")).unwrap();
    daemon.hup();
    assert!(daemon.wait_logged("reload refused", 10));
    let (heard, ended) = heard_on_55555(phone()).await;
    assert!(ended && heard.iter().any(|n| n == "goodbye"), "{heard:?}");
    daemon.stop();
}

/// Queue 12345 (ring timeout `ring`), agents `agents` in it (logged in on
/// registration), and softphone user 1003 when `user_1003`.
fn acd_toml(ring: u64, agents: &[&str], user_1003: bool) -> String {
    let mut t = format!(
        "[clock]\nstart = \"{}\"\n[[acd.queues]]\nname = \"12345\"\nring_timeout_secs = {ring}\n\
         [[acd.queues]]\nname = \"12333\"\nwhen_no_agents = \"refuse\"\n",
        support::TEST_CLOCK
    );
    if ring != 5 {
        t.push_str("[[acd.queues]]\nname = \"expert\"\n");
    }
    for id in agents {
        t.push_str(&format!(
            "[[acd.agents]]\nid = \"{id}\"\nname = \"Agent {id}\"\nextension = \"{id}\"\n\
             queues = [\"12345\"]\nwrap_up_secs = 5\nlogin_on_register = true\n"
        ));
    }
    if user_1003 {
        let ha1 = support::agent::md5_hex("1003:hotline:demo1003");
        t.push_str(&format!(
            "[[registrar.users]]\nuser = \"1003\"\nha1_md5 = \"{ha1}\"\n"
        ));
    }
    t
}

/// The ACD's view of agent `id`: its state, or `None` if not listed.
async fn agent_state(ts: &TestServer, id: &str) -> Option<&'static str> {
    let snap = ts.server.acd().snapshot().await.expect("ACD runs");
    snap.agents
        .into_iter()
        .find(|a| a.id == id)
        .map(|a| a.state)
}

async fn wait_state(ts: &TestServer, id: &str, want: Option<&str>) {
    for _ in 0..200 {
        if agent_state(ts, id).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "agent {id} is {:?}, not {want:?}",
        agent_state(ts, id).await
    );
}

/// A caller to 12345 answered by `agent`.
async fn answered_by(ts: &TestServer, agent: &mut AgentPhone) -> support::Call {
    let mut call = ts.phone().build().await.call("12345").await;
    tokio::select! {
        inv = agent.wait_invite(Duration::from_secs(30)) => { inv.expect("the agent is rung"); }
        _ = call.pump(Duration::from_secs(30)) => panic!("no INVITE to {}", agent.user),
    }
    agent.answer().await;
    assert!(agent.wait_ack(Duration::from_secs(5)).await);
    call
}

#[tokio::test(start_paused = true)]
async fn a_reload_adds_and_removes_agents_queues_and_users_while_agents_talk() {
    let mut opts = ServerOptions {
        extra_toml: acd_toml(5, &["1001"], true),
        ..Default::default()
    };
    let ts = TestServer::start_with(opts.clone()).await;
    opts.database = Some(ts.database_url.clone());
    let config = |opts: &ServerOptions| support::test_config(ts.dir.path(), opts);

    // 1001 takes caller A. 1003's softphone registers: a user, no agent yet.
    let mut a1001 = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(a1001.register().await, 200);
    wait_state(&ts, "1001", Some("ready")).await;
    let mut call_a = answered_by(&ts, &mut a1001).await;
    let mut a1003 = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1003").await;
    assert_eq!(a1003.register().await, 200);
    assert_eq!(agent_state(&ts, "1003").await, None);

    // Reload: 1001 out (talking), 1003 in, queue 12345 changed, "expert" new.
    opts.extra_toml = acd_toml(10, &["1003"], true);
    let report = ts.server.reload(&config(&opts)).await.expect("reload");
    assert_eq!(report.acd.agents_added, ["1003"], "{report:?}");
    assert_eq!(report.acd.agents_removed, ["1001"], "{report:?}");
    assert_eq!(report.acd.queues_added, ["expert"], "{report:?}");
    assert_eq!(report.acd.queues_changed, ["12345"], "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");
    // 1003 was registered already: logged in at once. 1001 talks on.
    assert_eq!(agent_state(&ts, "1003").await, Some("ready"));
    assert_eq!(agent_state(&ts, "1001").await, Some("talking"));
    call_a.fill(0x42).await;
    a1001.fill(0x24).await;
    tokio::join!(
        call_a.pump(Duration::from_secs(2)),
        a1001.pump(Duration::from_secs(2))
    );
    assert!(!call_a.ended_by_daemon, "caller A is still with 1001");
    assert!(support::has_frame(&a1001.received_frames(), 0x42) > 50);

    // Caller B goes to 1003, not to the removed 1001.
    let mut call_b = answered_by(&ts, &mut a1003).await;
    let ids = [
        (call_a.call_id.clone(), "1001"),
        (call_b.call_id.clone(), "1003"),
    ];
    // A ends: 1001's wrap-up, then it is logged out and gone.
    assert_eq!(call_a.bye().await, 200);
    assert!(a1001.wait_bye(Duration::from_secs(5)).await);
    wait_state(&ts, "1001", None).await;

    // Reload: user 1003 and agent 1003 out while 1003 talks to B.
    opts.extra_toml = acd_toml(10, &[], false);
    let report = ts.server.reload(&config(&opts)).await.expect("reload");
    assert_eq!(report.acd.agents_removed, ["1003"], "{report:?}");
    assert_eq!(report.bindings_removed, 1, "{report:?}");
    assert_eq!(
        a1003.register().await,
        401,
        "a user taken out cannot register: its credentials are refused"
    );
    call_b.pump(Duration::from_secs(1)).await;
    assert!(!call_b.ended_by_daemon, "caller B is still with 1003");
    assert_eq!(call_b.bye().await, 200);
    assert!(a1003.wait_bye(Duration::from_secs(5)).await);
    wait_state(&ts, "1003", None).await;

    ts.server.flush_records().await;
    for (call_id, agent) in ids {
        let rec = ts.record(&call_id).await;
        assert_eq!(rec.disposition.as_str(), "answered");
        assert_eq!(rec.acd.agent.as_deref(), Some(agent));
        assert!(rec.acd.talk_ms.unwrap_or(0) > 500, "{rec:?}");
    }
    ts.shutdown().await;
}
