//! Reloading the configuration while calls are up: new flows reach new
//! calls, a call up across the reload goes on untouched, a bad config is
//! refused with its file named and the running one kept, and what a reload
//! cannot apply is reported. In-process through `Server::reload`, then the
//! binary through SIGHUP.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::Daemon;
use support::{ServerOptions, TestServer};

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
    let ended = call.wait_bye(Duration::from_secs(4)).await;
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
    let report = ts.server.reload(&config(&opts)).expect("reload");
    assert_eq!(report.flows, 3, "{report:?}");
    assert!(report.restart_needed.is_empty(), "{report:?}");
    let (heard, ended) = heard_on_55555(ts.phone()).await;
    assert!(ended, "the new line hangs up");
    assert!(heard.iter().any(|n| n == "goodbye"), "{heard:?}");
    assert!(!heard.iter().any(|n| n == "welcome_12345"), "{heard:?}");

    // A broken flow: refused, named, and the running flows kept.
    std::fs::write(flows.path().join("bad.toml"), BAD_FLOW).unwrap();
    let err = ts.server.reload(&config(&opts)).unwrap_err().to_string();
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("nowhere"), "{err}");
    let (heard, ended) = heard_on_55555(ts.phone()).await;
    assert!(ended && heard.iter().any(|n| n == "goodbye"), "{heard:?}");
    std::fs::remove_file(flows.path().join("bad.toml")).unwrap();

    // Agents and queues are read at start only: a change is reported.
    opts.extra_toml = support::AGENT_1001.into();
    let report = ts.server.reload(&config(&opts)).expect("reload");
    assert_eq!(
        report.restart_needed,
        ["acd (agents and queues)"],
        "{report:?}"
    );

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
