//! The daemon binary as a child process: `hotline serve` on ports the OS
//! picks (read from its log), its log kept, stopped with SIGTERM or killed
//! with SIGKILL, and signalled (SIGHUP).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A `hotline serve` process, its addresses and its log.
pub struct Daemon {
    child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// Reads the log until the daemon's standard output closes.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .args([
                "--sip-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .env("HOTLINE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hotline serve");
        // The log is read all along, so the daemon never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let keep = log.clone();
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line.clone());
                keep.lock().unwrap().push(line);
            }
        });
        let (mut sip, mut http) = (None, None);
        while sip.is_none() || http.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the daemon logs where it listens");
            if line.contains("SIP listening") {
                sip = Some(field(&line, "udp="));
            } else if line.contains("HTTP listening") {
                http = Some(field(&line, "http="));
            }
        }
        Daemon {
            child,
            sip: sip.unwrap(),
            http: http.unwrap(),
            log,
            reader: Some(reader),
        }
    }

    pub fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(what))
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hup(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    }

    /// Waits up to `secs` for a log line containing `what`.
    pub fn wait_logged(&self, what: &str, secs: u64) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            if self.logged(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGTERM, and a clean exit; the whole log, to its last line.
    pub fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// A test that fails leaves no daemon behind.
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address logged after `key` (`udp=127.0.0.1:5060`, `Some(…)` too).
pub fn field(line: &str, key: &str) -> SocketAddr {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..]
        .trim_start_matches("Some(")
        .split([')', ' '])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {line}: {e}"))
}
