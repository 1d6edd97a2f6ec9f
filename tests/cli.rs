//! The `hotline` binary as an operator runs it: `check-config` on good and
//! bad configs, and `serve` started, probed over SIP and HTTP, and stopped
//! with SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "support/daemon.rs"]
mod daemon;

fn hotline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotline"));
    c.env_remove("HOTLINE_LOG");
    c
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_config_checks_clean() {
    let out = hotline()
        .current_dir(repo())
        .args(["check-config"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok (302 prompts, 2 flows)"), "{stdout}");
}

#[test]
fn every_config_error_is_reported_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("hotline.toml"),
        format!(
            "[sip]\nlisten = \"nowhere\"\n[[sip.trunks]]\nname = \"gw\"\naddresses = [\"10.0.0.0/33\"]\n[paths]\nprompts = \"{}\"\n",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let out = hotline()
        .args([
            "--config",
            dir.path().join("hotline.toml").to_str().unwrap(),
            "check-config",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hotline.toml: sip.listen: \"nowhere\" is not an ADDRESS:PORT"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hotline.toml: sip.trunks[0].addresses[0]:"),
        "{stderr}"
    );

    // A valid file with a broken flow: the flow file and node are named.
    std::fs::write(
        dir.path().join("hotline.toml"),
        format!(
            "[paths]\nprompts = \"{}\"\n",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("flows/line.toml"),
        "dialed = [\"96345\"]\nstart = \"hello\"\n[nodes.hello]\nkind = \"play\"\nprompts = [\"no_such_prompt\"]\nnext = \"nowhere\"\n",
    )
    .unwrap();
    let out = hotline()
        .args([
            "--config",
            dir.path().join("hotline.toml").to_str().unwrap(),
            "check-config",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line.toml: nodes.hello.next"), "{stderr}");
    assert!(stderr.contains("no_such_prompt"), "{stderr}");
}

/// Reads the daemon's log until a line containing `what`; returns the line.
fn wait_for_line(lines: &mut impl Iterator<Item = String>, what: &str) -> String {
    for line in lines.by_ref() {
        if line.contains(what) {
            return line;
        }
    }
    panic!("the daemon never logged {what:?}");
}

#[test]
fn serve_runs_on_the_defaults_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut child = hotline()
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .args(["--data-dir", data.path().to_str().unwrap(), "serve"])
        .args([
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--rtp-ports",
            "42000-42999",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let sip_line = wait_for_line(&mut lines, "SIP listening");
    let udp = daemon::field(&sip_line, "udp=");
    let http_line = wait_for_line(&mut lines, "HTTP listening");
    let http = daemon::field(&http_line, "http=");

    // The database was created and migrated at start.
    assert!(data.path().join("hotline.db").exists());

    // SIP answers.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:12345@{udp} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKcli1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=1\r\nTo: <sip:12345@{udp}>\r\nCall-ID: cli-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), udp).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));

    // HTTP answers.
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    stream.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // SIGTERM: a clean exit.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: Vec<String> = lines.collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
}
