//! The QC pages end to end: a real recorded call (scripted caller and
//! agent), sampled by `hotline qc sample`, users made by `hotline user add`,
//! then the pages over HTTP — log-in with CSRF and lock-out, the worklist,
//! the audio with Range (206) and its audit entry, a score, a dispute and
//! its settlement, the report — and the refusals: wrong role, no CSRF
//! token, another site's form, another team's recording, path traversal.
//! The same flow in headless Chromium is `browser_*` (tests/browser/).
//! The wallboard (`/qc/wallboard` and its event stream) is tested over
//! HTTP and in Chromium at the end.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hotline::store::{RecordingFilter, RecordingStatus, ScoreFilter, ScoreStatus};
use support::agent::AgentPhone;
use support::http::{body, form, set_cookie, HttpClient, HttpResponse};
use support::{ServerOptions, TestServer, Transport};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const PASSWORD: &str = "correct-horse-42";

fn options() -> ServerOptions {
    ServerOptions {
        extra_toml: r#"
[clock]
start = "2026-11-23T10:00:00+08:00"
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
wrap_up_secs = 5
login_on_register = true
team = "A"

[qc]
dispute_working_days = 2
[qc.sampling]
enabled = false
timezone = "Asia/Shanghai"
[[qc.sampling.rules]]
name = "random"
kind = "random_share"
share = 1.0
min_per_agent = 1
[[qc.scorecards]]
name = "test"
version = 2
[[qc.scorecards.sections]]
name = "Opening"
items = [
  { key = "greeting", text = "Standard greeting", weight = 40 },
  { key = "verify", text = "Verifies identity", weight = 20, allow_na = true },
]
[[qc.scorecards.sections]]
name = "Conduct"
items = [
  { key = "courtesy", text = "Courteous", weight = 40 },
  { key = "no_leak", text = "No personal data disclosed", auto_fail = true },
]
"#
        .into(),
        ..Default::default()
    }
}

/// A daemon with one finished, sampled recording of agent 1001 (team A),
/// and users qc1, lead_a, lead_b, sup, admin1.
pub struct Setup {
    pub ts: TestServer,
    pub recording_id: String,
    pub http: HttpClient,
}

fn hotline(ts: &TestServer, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let cfg = ts.dir.path().join("hotline.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--config")
        .arg(&cfg)
        .arg("--database")
        .arg(&ts.database_url)
        .arg("--data-dir")
        .arg(ts.dir.path())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hotline");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub async fn setup() -> Setup {
    let ts = TestServer::start_with(options()).await;
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)));
    assert_eq!(call.bye().await, 200);
    let until = Instant::now() + secs(10);
    let rec = loop {
        ts.server.flush_records().await;
        let rows = ts
            .server
            .store
            .recordings(RecordingFilter::default())
            .await
            .unwrap();
        if let Some(r) = rows
            .into_iter()
            .find(|r| r.status == RecordingStatus::Complete)
        {
            break r;
        }
        assert!(Instant::now() < until, "no finished recording");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Sampled by the command an operator runs.
    let out = hotline(
        &ts,
        &[
            "qc",
            "sample",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-24",
            "--seed",
            "7",
        ],
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&rec.id),
        "qc sample: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    add_users(
        &ts,
        &[
            ("qc1", "qc", &[]),
            ("qc2", "qc", &[]),
            ("lead_a", "team_lead", &["--team", "A"]),
            ("lead_b", "team_lead", &["--team", "B"]),
            ("sup", "supervisor", &[]),
            ("admin1", "admin", &[]),
        ],
    );
    let http = HttpClient::new(ts.server.http);
    Setup {
        recording_id: rec.id,
        http,
        ts,
    }
}

/// `Set-Cookie` value of `name`.
/// The first `name="csrf" value="…"` of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a csrf field");
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A logged-in browser: its session cookie and CSRF token.
pub struct Session {
    http: HttpClient,
    cookie: String,
    csrf: String,
}

async fn post_login(http: &HttpClient, name: &str, password: &str) -> HttpResponse {
    let page = http.get("/qc/login").await;
    assert_eq!(page.status, 200);
    let token = set_cookie(&page, "hotline_login").expect("login cookie");
    assert_eq!(csrf_of(&body(&page)), token);
    http.request(
        "POST",
        "/qc/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("hotline_login={token}")),
        ],
        form(&[("name", name), ("password", password), ("csrf", &token)]).as_bytes(),
    )
    .await
}

async fn login(http: &HttpClient, name: &str) -> Session {
    let r = post_login(http, name, PASSWORD).await;
    assert_eq!(r.status, 303, "{name}: {}", body(&r));
    let cookie = format!("hotline_qc={}", set_cookie(&r, "hotline_qc").unwrap());
    let page = http
        .request("GET", "/qc/report", &[("Cookie", &cookie)], b"")
        .await;
    assert_eq!(page.status, 200);
    Session {
        http: http.clone(),
        csrf: csrf_of(&body(&page)),
        cookie,
    }
}

impl Session {
    async fn get(&self, path: &str, extra: &[(&str, &str)]) -> HttpResponse {
        let mut h = vec![("Cookie", self.cookie.as_str())];
        h.extend_from_slice(extra);
        self.http.request("GET", path, &h, b"").await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        self.http
            .request(
                "POST",
                path,
                &[
                    ("Cookie", &self.cookie),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                form(fields).as_bytes(),
            )
            .await
    }
}

const ANSWERS: &[(&str, &str)] = &[
    ("item.greeting", "no"),
    ("item.verify", "na"),
    ("item.courtesy", "yes"),
    ("item.no_leak", "yes"),
    ("comments", "00:01 no greeting\nfriendly otherwise"),
];

#[tokio::test]
async fn qc_pages_log_in_listen_score_dispute_settle_and_refuse_what_they_must() {
    let s = setup().await;
    let store = &s.ts.server.store;
    let rec = s.recording_id.clone();

    // Not logged in: to the log-in page, and back afterwards.
    let r = s.http.get("/qc/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/qc/login?next=%2Fqc%2F"));
    let r = s.http.get(&format!("/qc/recordings/{rec}/audio")).await;
    assert_eq!(r.status, 303, "no audio without a session");

    // Log-in form without its CSRF cookie: refused.
    let r = s
        .http
        .request(
            "POST",
            "/qc/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form(&[("name", "qc1"), ("password", PASSWORD), ("csrf", "x")]).as_bytes(),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(set_cookie(&r, "hotline_qc").is_none());

    // Five wrong passwords lock the user; then even the right one fails.
    for _ in 0..4 {
        assert_eq!(
            post_login(&s.http, "qc2", "wrong-password-1").await.status,
            401
        );
    }
    assert_eq!(
        post_login(&s.http, "qc2", "wrong-password-1").await.status,
        401
    );
    let r = post_login(&s.http, "qc2", PASSWORD).await;
    assert_eq!(r.status, 429, "{}", body(&r));
    assert!(body(&r).contains("locked until"));
    // An unknown name gets the same answer as a wrong password.
    let r = post_login(&s.http, "nobody", PASSWORD).await;
    assert_eq!(r.status, 401);
    assert!(body(&r).contains("Wrong user name or password"));

    // The administrator's commands: a new password lifts the lock; a
    // disabled user cannot log in, and its session ends; enabled again, it can.
    let out = hotline(&s.ts, &["user", "passwd", "qc2"], "another-password-9\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = post_login(&s.http, "qc2", "another-password-9").await;
    assert_eq!(r.status, 303, "{}", body(&r));
    let qc2 = format!("hotline_qc={}", set_cookie(&r, "hotline_qc").unwrap());
    let out = hotline(&s.ts, &["user", "disable", "qc2"], "");
    assert!(out.status.success());
    let r = s
        .http
        .request("GET", "/qc/", &[("Cookie", &qc2)], b"")
        .await;
    assert_eq!(r.status, 303, "the disabled user's session ended");
    assert_eq!(
        post_login(&s.http, "qc2", "another-password-9")
            .await
            .status,
        401
    );
    let list = hotline(&s.ts, &["user", "list"], "");
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.lines()
            .any(|l| l.starts_with("qc2 ") && l.ends_with("disabled")),
        "{list}"
    );
    let out = hotline(&s.ts, &["user", "enable", "qc2"], "");
    assert!(out.status.success());
    assert_eq!(
        post_login(&s.http, "qc2", "another-password-9")
            .await
            .status,
        303
    );
    let out = hotline(
        &s.ts,
        &["user", "add", "qc2", "--role", "qc"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!out.status.success(), "a taken name");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = hotline(
        &s.ts,
        &["user", "add", "x1", "--role", "root"],
        &format!("{PASSWORD}\n"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    let out = hotline(&s.ts, &["user", "add", "x2", "--role", "qc"], "short\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));

    // The worklist shows the sampled recording and the rule.
    let qc = login(&s.http, "qc1").await;
    let r = qc.get("/qc/", &[]).await;
    assert_eq!(r.status, 200);
    let page = body(&r);
    assert!(page.contains(&rec), "{page}");
    assert!(page.contains("<b>random</b>"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let r = qc.get("/qc/?scored=yes", &[]).await;
    assert!(!body(&r).contains(&rec), "not scored yet");
    let r = qc.get("/qc/?from=2026-13-01", &[]).await;
    assert_eq!(r.status, 400, "a bad date is a clear error");

    // The call page, the waveform and the audio (206 for a Range).
    let r = qc.get(&format!("/qc/recordings/{rec}"), &[]).await;
    assert_eq!(r.status, 200);
    let page = body(&r);
    assert!(page.contains(r#"id="player""#) && page.contains("id=\"scorecard\""));
    assert!(
        page.contains("connected to agent 1001"),
        "the timeline: {page}"
    );
    let r = qc
        .get(&format!("/qc/recordings/{rec}/waveform.svg"), &[])
        .await;
    assert_eq!(r.status, 200);
    assert!(body(&r).starts_with("<svg"));
    let r = qc
        .get(
            &format!("/qc/recordings/{rec}/audio"),
            &[("Range", "bytes=0-99")],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 100);
    assert_eq!(&r.body[..4], b"RIFF");
    let r = qc
        .get(
            &format!("/qc/recordings/{rec}/audio"),
            &[("Range", "bytes=0-")],
        )
        .await;
    assert_eq!(r.status, 206);
    let audit = store
        .audit_log(hotline::store::AuditFilter {
            action: Some("listen".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audit.len(),
        1,
        "one listen audited (bytes=0-), not the part request"
    );
    assert_eq!(audit[0].actor, "qc1");
    assert_eq!(
        audit[0].object.as_deref(),
        Some(format!("recording:{rec}").as_str())
    );

    // Wrong role: the administrator hears no citizen; a team lead cannot score.
    let admin = login(&s.http, "admin1").await;
    assert_eq!(
        admin
            .get(&format!("/qc/recordings/{rec}/audio"), &[])
            .await
            .status,
        403
    );
    assert_eq!(admin.get("/qc/", &[]).await.status, 403);
    assert_eq!(admin.get("/qc/report", &[]).await.status, 200);
    let lead_a = login(&s.http, "lead_a").await;
    let mut fields = ANSWERS.to_vec();
    fields.push(("csrf", &lead_a.csrf));
    assert_eq!(
        lead_a
            .post(&format!("/qc/recordings/{rec}/scores"), &fields)
            .await
            .status,
        403
    );
    // Another team's lead does not see the recording at all.
    let lead_b = login(&s.http, "lead_b").await;
    assert_eq!(
        lead_b
            .get(&format!("/qc/recordings/{rec}"), &[])
            .await
            .status,
        404
    );
    assert!(!body(&lead_b.get("/qc/", &[]).await).contains(&rec));

    // Path traversal: no request reaches a file outside recordings/.
    for path in [
        "/qc/recordings/..%2F..%2Fhotline.db/audio",
        "/qc/recordings/../../etc/passwd",
        "/qc/static/..%2F..%2FCargo.toml",
    ] {
        let r = qc.get(path, &[]).await;
        assert!(matches!(r.status, 404 | 400), "{path}: {}", r.status);
    }
    let set_path = |path: String| {
        let url = s.ts.database_url.clone();
        let rec = rec.clone();
        async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await.unwrap();
            sqlx::query("UPDATE recordings SET path = $1 WHERE id = $2")
                .bind(path)
                .bind(rec)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    };
    let original = store.recording(&rec).await.unwrap().unwrap().path;
    set_path("recordings/../hotline.db".into()).await;
    let r = qc.get(&format!("/qc/recordings/{rec}/audio"), &[]).await;
    assert_eq!(
        r.status, 404,
        "a tampered row cannot read the database file"
    );
    set_path(original).await;

    // No CSRF token, or a form from another site: refused, nothing stored.
    let r = qc
        .post(&format!("/qc/recordings/{rec}/scores"), ANSWERS)
        .await;
    assert_eq!(r.status, 403);
    let mut fields = ANSWERS.to_vec();
    fields.push(("csrf", &qc.csrf));
    let r = qc
        .http
        .request(
            "POST",
            &format!("/qc/recordings/{rec}/scores"),
            &[
                ("Cookie", &qc.cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", "http://evil.example"),
            ],
            form(&fields).as_bytes(),
        )
        .await;
    assert_eq!(r.status, 403);
    let none = store
        .scores(ScoreFilter {
            recording_id: Some(rec.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty(), "refused forms store nothing");
    // An incomplete card is a clear error.
    let r = qc
        .post(
            &format!("/qc/recordings/{rec}/scores"),
            &[("csrf", &qc.csrf), ("item.greeting", "yes")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("is not answered"));

    // A score: greeting lost (40 of 80 that apply), a pinned comment.
    let r = qc
        .post(&format!("/qc/recordings/{rec}/scores"), &fields)
        .await;
    assert_eq!(r.status, 303, "{}", body(&r));
    let scores = store
        .scores(ScoreFilter {
            recording_id: Some(rec.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(scores.len(), 1);
    let score = &scores[0];
    assert_eq!(score.total, 50.0);
    assert_eq!(
        (score.scorecard.as_str(), score.scorecard_version),
        ("test", 2)
    );
    assert_eq!(score.team.as_deref(), Some("A"));
    assert_eq!(score.status, ScoreStatus::Open);
    assert_eq!(score.comments[0].at_ms, Some(1000));
    assert_eq!(score.comments[1].at_ms, None);
    assert!(score.dispute_until.unwrap() > chrono::Utc::now() + chrono::Duration::days(1));
    let page = body(&qc.get(&format!("/qc/recordings/{rec}"), &[]).await);
    assert!(page.contains(r#"data-at-ms="1000""#) && page.contains("no greeting"));

    // A dispute: by the agent's own team lead only, with a reason.
    let sid = score.id.clone();
    let r = lead_b
        .post(
            &format!("/qc/scores/{sid}/dispute"),
            &[("csrf", &lead_b.csrf), ("reason", "x")],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = lead_a
        .post(
            &format!("/qc/scores/{sid}/dispute"),
            &[("csrf", &lead_a.csrf), ("reason", "")],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = lead_a
        .post(
            &format!("/qc/scores/{sid}/dispute"),
            &[
                ("csrf", &lead_a.csrf),
                ("reason", "the greeting was given at 00:00"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", body(&r));
    let r = lead_a
        .post(
            &format!("/qc/scores/{sid}/dispute"),
            &[("csrf", &lead_a.csrf), ("reason", "again")],
        )
        .await;
    assert_eq!(r.status, 409, "one dispute per score");

    // Settled by a reviewer: not the QC role, not the scorer.
    let r = qc
        .post(
            &format!("/qc/scores/{sid}/settle"),
            &[("csrf", &qc.csrf), ("outcome", "upheld")],
        )
        .await;
    assert_eq!(r.status, 403);
    let sup = login(&s.http, "sup").await;
    let r = sup
        .post(
            &format!("/qc/scores/{sid}/settle"),
            &[
                ("csrf", &sup.csrf),
                ("outcome", "revised"),
                ("revised_total", "90"),
                ("note", "greeting heard at 00:00"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", body(&r));
    let score = store
        .scores(ScoreFilter {
            id: Some(sid.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(score.status, ScoreStatus::Final);
    assert_eq!(score.final_total, Some(90.0));
    assert_eq!(score.dispute.unwrap().outcome.as_deref(), Some("revised"));

    // The report counts the revised total; its CSV and the CLI agree.
    let page = body(&sup.get("/qc/report", &[]).await);
    assert!(page.contains(r#"<b id="monitored">1</b>"#), "{page}");
    assert!(page.contains(r#"<b id="average">90.0</b>"#));
    assert!(page.contains("<svg"));
    let csv = body(&sup.get("/qc/report.csv", &[]).await);
    assert!(csv.contains("\nsummary,average,1,90.0,\n"), "{csv}");
    assert!(csv.contains("\nteam,A,1,90.0,\n"));
    assert!(csv.contains("\nitem,greeting,1,40.0,Opening\n"));
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
        .to_string();
    let out = hotline(
        &s.ts,
        &["qc", "report", "--from", &today, "--to", &today, "--csv"],
        "",
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\nsummary,average,1,90.0,\n"));

    // Every listen, score, dispute and settlement is in the audit log.
    let actions: Vec<String> = store
        .audit_log(Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{} {}", a.actor, a.action))
        .collect();
    for want in [
        "qc1 listen",
        "qc1 score",
        "lead_a dispute",
        "sup settle",
        "qc1 login",
        "anonymous login_failed",
        "qc2 user_locked",
        "qc2 login_failed",
        "cli user_password",
        "cli user_disable",
        "cli user_enable",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want}: {actions:?}");
    }
    assert!(actions.iter().any(|a| a == "qc2 login_locked"));

    // Log-out ends the session.
    let r = qc.post("/qc/logout", &[("csrf", &qc.csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(qc.get("/qc/", &[]).await.status, 303);
    s.ts.shutdown().await;
}

/// The same flow in headless Chromium (tests/browser/qc_pages.py). Needs
/// Debian's `chromium` and `chromium-driver`; without them the test says so
/// and passes, unless `HOTLINE_TEST_BROWSER=1` (CI's browser stage), where
/// their absence fails it.
/// Whether chromium and chromedriver are there to run the browser tests;
/// their absence fails the test under `HOTLINE_TEST_BROWSER=1`.
fn browser_available() -> bool {
    let required = std::env::var("HOTLINE_TEST_BROWSER").is_ok_and(|v| v == "1");
    let have = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if !have {
        assert!(
            !required,
            "HOTLINE_TEST_BROWSER=1 but chromium/chromedriver are missing"
        );
        eprintln!("skipped: install chromium and chromium-driver to run the browser test");
    }
    have
}

/// Runs `tests/browser/<script>` against the server with `args`, and
/// checks that it passed every step (within 3 minutes).
/// `python3 tests/browser/SCRIPT --base http://BASE ARGS…`, killed if dropped.
fn browser_command(
    script: &str,
    base: std::net::SocketAddr,
    args: &[&str],
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("python3");
    c.arg(format!(
        "{}/tests/browser/{script}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .arg("--base")
    .arg(format!("http://{base}"))
    .args(args)
    .kill_on_drop(true);
    c
}

async fn run_browser(script: &str, base: std::net::SocketAddr, args: &[&str]) {
    let out = browser_command(script, base, args).output();
    let out = tokio::time::timeout(secs(180), out)
        .await
        .expect("the browser run ends within 3 minutes")
        .expect("python3 runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("all steps passed"), "{log}");
}

#[tokio::test]
async fn browser_logs_in_listens_scores_disputes_settles_and_reads_the_report() {
    if !browser_available() {
        return;
    }
    let s = setup().await;
    // The day's KPI figures, from the database, for the KPI page to show.
    let day = "2026-11-23";
    let settings = hotline::kpi::KpiSettings::default();
    let (from, to) = hotline::kpi::day_period(day, day, settings.tz, "").unwrap();
    let kpis = hotline::kpi::load(
        &s.ts.server.store,
        &settings,
        from,
        to,
        chrono::Utc::now(),
        None,
    )
    .await
    .unwrap();
    assert!(kpis.total.answered >= 1, "{:?}", kpis.total);
    let (offered, answered) = (
        kpis.total.offered.to_string(),
        kpis.total.answered.to_string(),
    );
    run_browser(
        "qc_pages.py",
        s.ts.server.http,
        &[
            "--recording",
            &s.recording_id,
            "--password",
            PASSWORD,
            "--kpi-day",
            day,
            "--kpi-offered",
            &offered,
            "--kpi-answered",
            &answered,
        ],
    )
    .await;
    // What the browser did is in the database.
    let store = &s.ts.server.store;
    let score = store
        .scores(ScoreFilter {
            recording_id: Some(s.recording_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!((score.total, score.final_total), (50.0, Some(90.0)));
    assert_eq!(score.status, ScoreStatus::Final);
    assert_eq!(score.scorer, "qc1");
    let listens = store
        .audit_log(hotline::store::AuditFilter {
            action: Some("listen".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listens.iter().any(|a| a.actor == "qc1"), "{listens:?}");
    s.ts.shutdown().await;
}

/// Agent 1001 on a call (the caller sends 0x42, the agent 0x24), the
/// softphone 2001 registered, and `users` (name, role, the extra arguments
/// of `hotline user add`) made.
struct LiveCall {
    ts: TestServer,
    agent: AgentPhone,
    sup: AgentPhone,
    call: support::Call,
}

async fn live_call(users: &[(&str, &str, &[&str])]) -> LiveCall {
    let mut opts = options();
    opts.extra_toml = format!(
        "{}\n[[registrar.users]]\nuser = \"2001\"\nha1_md5 = \"7fee6d3ffbe2e83983da26d6ac9d9dc0\"\n",
        opts.extra_toml
    );
    let ts = TestServer::start_with(opts).await;
    let mut agent = support::ready_agent(&ts, "1001").await;
    let mut sup = AgentPhone::new(ts.sip_udp(), Transport::Udp, "2001").await;
    assert_eq!(sup.register().await, 200);
    add_users(&ts, users);
    let call = support::answered_call(&ts, &mut agent).await;
    call.fill(0x42).await;
    agent.fill(0x24).await;
    LiveCall {
        ts,
        agent,
        sup,
        call,
    }
}

/// Live monitoring from the QC page: a QC user's button rings the user's
/// softphone (2001) into agent 1001's call, silently; wrong role, another
/// team, no softphone and no CSRF token are refused; the start is audited.
#[tokio::test]
async fn the_live_page_rings_the_qc_users_softphone_into_the_call() {
    let LiveCall {
        ts,
        mut agent,
        mut sup,
        mut call,
    } = live_call(&[
        ("qc1", "qc", &["--extension", "2001"]),
        ("qc3", "qc", &[]),
        (
            "lead_b",
            "team_lead",
            &["--team", "B", "--extension", "2001"],
        ),
        ("admin1", "admin", &[]),
    ])
    .await;
    let http = HttpClient::new(ts.server.http);

    let qc = login(&http, "qc1").await;
    let page = body(&qc.get("/qc/live", &[]).await);
    assert!(page.contains(r#"data-agent="1001""#), "{page}");
    let admin = login(&http, "admin1").await;
    assert_eq!(admin.get("/qc/live", &[]).await.status, 403);
    assert_eq!(
        qc.post("/qc/live/1001/listen", &[]).await.status,
        403,
        "no CSRF token"
    );
    let lead_b = login(&http, "lead_b").await;
    let r = lead_b
        .post("/qc/live/1001/listen", &[("csrf", &lead_b.csrf)])
        .await;
    assert_eq!(r.status, 404, "another team's agent");
    let noext = login(&http, "qc3").await;
    let r = noext
        .post("/qc/live/1001/listen", &[("csrf", &noext.csrf)])
        .await;
    assert_eq!(r.status, 409);
    assert!(body(&r).contains("no softphone extension"));

    let fields = [("csrf", qc.csrf.as_str())];
    let (r, _, _) = tokio::join!(
        qc.post("/qc/live/1001/listen", &fields),
        call.pump(Duration::from_millis(300)),
        agent.pump(Duration::from_millis(300))
    );
    assert_eq!(r.status, 303, "{}", body(&r));
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/qc/live?started="));
    support::answer_rung(&mut sup, &mut call, &mut agent).await;
    tokio::join!(call.pump(secs(2)), agent.pump(secs(2)), sup.pump(secs(2)));
    let heard = sup.received_frames();
    let ulaw = |b: u8| hotline::media::g711::decode_sample(hotline::media::Codec::Pcmu, b);
    let mix = audio_codec_algorithms::encode_ulaw(ulaw(0x42).saturating_add(ulaw(0x24)));
    let mixed = support::has_frame(&heard, mix);
    assert!(
        heard.len() >= 50 && mixed * 10 >= heard.len() * 7,
        "{mixed} of {} frames are the mix",
        heard.len()
    );
    let audit = support::monitor_audit(&ts).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0].0.as_str(), audit[0].1.as_str()),
        ("qc1", "agent:1001")
    );
    assert!(audit[0].2.starts_with("listen call "), "{audit:?}");
    assert_eq!(call.bye().await, 200);
    ts.shutdown().await;
}

/// The live page in headless Chromium (tests/browser/qc_live.py): qc1
/// presses "Whisper" on agent 1001's call; the daemon rings qc1's
/// softphone, which answers and talks (0x11): the agent hears caller and
/// qc1, the caller only the agent.
#[tokio::test]
async fn browser_whispers_to_an_agent_from_the_live_page() {
    if !browser_available() {
        return;
    }
    let LiveCall {
        ts,
        mut agent,
        mut sup,
        mut call,
    } = live_call(&[("qc1", "qc", &["--extension", "2001"])]).await;
    // The call's media goes on while the browser works.
    let browser = run_browser(
        "qc_live.py",
        ts.server.http,
        &["--agent", "1001", "--password", PASSWORD],
    );
    tokio::pin!(browser);
    loop {
        tokio::select! {
            _ = &mut browser => break,
            _ = async { tokio::join!(call.pump(secs(1)), agent.pump(secs(1))) } => {}
        }
    }
    support::answer_rung(&mut sup, &mut call, &mut agent).await;
    sup.fill(0x11).await;
    tokio::join!(call.pump(secs(1)), agent.pump(secs(1)), sup.pump(secs(1)));
    let (caller_from, agent_from) = (call.frames().len(), agent.received_frames().len());
    tokio::join!(call.pump(secs(3)), agent.pump(secs(3)), sup.pump(secs(3)));
    let ulaw = |b: u8| hotline::media::g711::decode_sample(hotline::media::Codec::Pcmu, b);
    let whisper = audio_codec_algorithms::encode_ulaw(ulaw(0x42).saturating_add(ulaw(0x11)));
    let agent_heard = &agent.received_frames()[agent_from..];
    let n = support::has_frame(agent_heard, whisper);
    assert!(
        agent_heard.len() >= 100 && n * 10 >= agent_heard.len() * 7,
        "the agent hears caller + qc1 in {n} of {} frames",
        agent_heard.len()
    );
    assert!(
        call.frames()[caller_from..]
            .iter()
            .all(|f| f.iter().all(|b| *b == 0x24)),
        "the caller hears only the agent"
    );
    let audit = support::monitor_audit(&ts).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "qc1");
    assert!(audit[0].2.starts_with("whisper call "), "{audit:?}");
    assert_eq!(call.bye().await, 200);
    ts.shutdown().await;
}

/// `hotline user add` for each (name, role, extra arguments), password
/// [`PASSWORD`].
fn add_users(ts: &TestServer, users: &[(&str, &str, &[&str])]) {
    for (name, role, extra) in users {
        let mut args = vec!["user", "add", name, "--role", role];
        args.extend(extra.iter());
        let out = hotline(ts, &args, &format!("{PASSWORD}\n"));
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A daemon for the wallboard: today's figures refreshed every second, at
/// most two streams, and `users` (name, role, extra `user add` arguments).
/// Agent 1001 (queue 12345) is not registered: logged out.
async fn wallboard_server(users: &[(&str, &str, &[&str])]) -> TestServer {
    let mut opts = options();
    opts.extra_toml
        .push_str("\n[qc.web]\nwallboard_refresh_secs = 1\nwallboard_max_streams = 2\n");
    let ts = TestServer::start_with(opts).await;
    add_users(&ts, users);
    ts
}

/// Queue `name`'s row of a pushed board.
fn board_queue(board: &serde_json::Value, name: &str) -> serde_json::Value {
    board["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["queue"] == name))
        .unwrap_or_else(|| panic!("no queue {name} in {board:#}"))
        .clone()
}

/// `f` while `call`'s media and signalling go on.
async fn pumping<T>(call: &mut support::Call, f: impl std::future::Future<Output = T>) -> T {
    tokio::select! {
        v = f => v,
        _ = call.pump(secs(120)) => panic!("still waiting after 120 s"),
    }
}

/// The wallboard over HTTP: who may see it, the page without JavaScript,
/// the stream's first board at once, a caller waiting (its wait growing
/// from event to event), the agent answering (talking 1, waiting 0), the
/// ended call in today's figures, the limit on streams (503), and the
/// stream's end at shutdown.
#[tokio::test]
async fn the_wallboard_pushes_waiting_callers_agents_and_todays_figures() {
    let ts = wallboard_server(&[
        ("qc1", "qc", &[]),
        ("lead_a", "team_lead", &["--team", "A"]),
        ("sup", "supervisor", &[]),
        ("admin1", "admin", &[]),
    ])
    .await;
    let http = HttpClient::new(ts.server.http);

    // Logged out: to the log-in page; a QC user: refused.
    for path in ["/qc/wallboard", "/qc/wallboard/events"] {
        let r = http.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert!(
            r.header("location")
                .is_some_and(|l| l.starts_with("/qc/login?next=")),
            "{path}: {:?}",
            r.header("location")
        );
    }
    let qc = login(&http, "qc1").await;
    assert_eq!(qc.get("/qc/wallboard", &[]).await.status, 403);
    assert_eq!(qc.get("/qc/wallboard/events", &[]).await.status, 403);

    // The page is whole without JavaScript.
    for name in ["lead_a", "admin1"] {
        let s = login(&http, name).await;
        let r = s.get("/qc/wallboard", &[]).await;
        assert_eq!(r.status, 200, "{name}");
        let page = body(&r);
        assert!(page.contains(r#"<tr data-queue="12345"><th>12345</th><td data-f="waiting">0</td><td data-f="longest_wait">00:00</td><td data-f="staffed">0</td>"#), "{page}");
        assert!(page.contains(r#"<td data-f="logged_out">1</td>"#), "{page}");
        assert!(page.contains(r#"id="wb-day">2026-11-23<"#), "{page}");
        assert!(
            page.contains(r#"<td data-f="service_level">-</td>"#),
            "{page}"
        );
        assert!(page.contains("/qc/static/wallboard.js"), "{page}");
    }
    let js = http.get("/qc/static/wallboard.js").await;
    assert_eq!(js.status, 200);
    assert!(body(&js).contains("EventSource"));

    // The stream: a board at once.
    let sup = login(&http, "sup").await;
    let cookie = [("Cookie", sup.cookie.as_str())];
    let mut sse = http.sse("/qc/wallboard/events", &cookie).await;
    assert_eq!(sse.status, 200);
    assert!(sse
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/event-stream")));
    let first = sse
        .next_event(secs(3))
        .await
        .expect("a board as soon as the stream opens");
    assert_eq!(first.event, "board");
    let j = first.json();
    let q = board_queue(&j, "12345");
    assert_eq!(
        (q["waiting"].as_u64(), q["staffed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(q["agents"]["logged_out"], 1);
    assert_eq!(
        (q["offered"].as_u64(), j["day"].as_str()),
        (Some(0), Some("2026-11-23"))
    );
    assert!(
        j["queues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| !q["queue"].as_str().unwrap().contains(':')),
        "no personal queues: {j:#}"
    );

    // Two streams at most: the third is refused, clearly.
    let lead = login(&http, "lead_a").await;
    let second = http
        .sse("/qc/wallboard/events", &[("Cookie", lead.cookie.as_str())])
        .await;
    assert_eq!(second.status, 200);
    let third = http
        .sse("/qc/wallboard/events", &[("Cookie", lead.cookie.as_str())])
        .await;
    assert_eq!(third.status, 503);
    assert!(
        String::from_utf8_lossy(&third.body).contains("too many wallboard streams"),
        "{:?}",
        String::from_utf8_lossy(&third.body)
    );
    drop((second, third));

    // A caller into 12345, no agent logged in: waiting, and the wait grows.
    let mut call = ts.phone().build().await.call("12345").await;
    let waiting = pumping(
        &mut call,
        sse.wait_for(secs(20), "a caller waiting", |j| {
            board_queue(j, "12345")["waiting"] == 1
        }),
    )
    .await;
    assert_eq!(waiting["total"]["waiting"], 1);
    let w1 = board_queue(&waiting, "12345")["longest_wait_ms"]
        .as_u64()
        .unwrap();
    let later = pumping(
        &mut call,
        sse.wait_for(secs(5), "a longer wait", |j| {
            board_queue(j, "12345")["longest_wait_ms"].as_u64().unwrap() >= w1 + 900
        }),
    )
    .await;
    let q = board_queue(&later, "12345");
    assert_eq!(q["waiting"], 1);
    assert_eq!(
        q["cells"]["longest_wait"],
        format!("00:{:02}", q["longest_wait_ms"].as_u64().unwrap() / 1000)
    );

    // Agent 1001 registers (logged in), is offered the caller, answers.
    let mut agent = AgentPhone::new(ts.sip_udp(), Transport::Udp, "1001").await;
    assert_eq!(agent.register().await, 200);
    pumping(&mut call, agent.wait_invite(secs(30)))
        .await
        .expect("the agent is rung");
    agent.answer().await;
    assert!(pumping(&mut call, agent.wait_ack(secs(5))).await);
    let talking = tokio::select! {
        j = sse.wait_for(secs(10), "the agent talking", |j| {
            let q = board_queue(j, "12345");
            q["agents"]["talking"] == 1 && q["waiting"] == 0
        }) => j,
        _ = async { tokio::join!(call.pump(secs(30)), agent.pump(secs(30))) } => panic!("no board"),
    };
    assert_eq!(talking["total"]["agents"]["talking"], 1);
    assert_eq!(board_queue(&talking, "12345")["staffed"], 1);
    assert_eq!(
        board_queue(&talking, "12345")["cells"]["longest_wait"],
        "00:00"
    );

    // The call ends: today's figures, read again within a second here, count it.
    assert_eq!(call.bye().await, 200);
    let today = sse
        .wait_for(secs(15), "the call in today's figures", |j| {
            board_queue(j, "12345")["answered"] == 1
        })
        .await;
    let q = board_queue(&today, "12345");
    assert_eq!(
        (q["offered"].as_u64(), q["abandoned"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        q["service_level"].as_f64(),
        Some(1.0),
        "answered within 15 s"
    );
    assert_eq!(q["cells"]["service_level"], "100.0%");
    assert_eq!(today["total"]["offered"], 1);

    // Shutdown ends the stream (it does not hold the daemon up).
    let (_, ended) = tokio::join!(
        async {
            tokio::time::timeout(secs(30), ts.shutdown())
                .await
                .expect("the daemon stops with a wallboard stream open")
        },
        sse.ends_within(secs(30))
    );
    assert!(ended, "the stream ends at shutdown");
}

/// The wallboard in headless Chromium (tests/browser/qc_wallboard.py): a
/// supervisor opens it; when the script says so, a caller waits in 12345
/// (nobody logged in) and the page must show 1 waiting without a reload
/// (pushed), then the caller hangs up and it shows 0; then the daemon
/// stops and the page says the connection is lost.
#[tokio::test]
async fn browser_wallboard_shows_a_waiting_caller_without_reloading() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    if !browser_available() {
        return;
    }
    let ts = wallboard_server(&[("sup", "supervisor", &[])]).await;
    let mut child = browser_command(
        "qc_wallboard.py",
        ts.server.http,
        &["--queue", "12345", "--password", PASSWORD],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    let mut ts = Some(ts);
    let mut call: Option<support::Call> = None;
    let run = async {
        loop {
            let line = match call.as_mut() {
                Some(c) => tokio::select! {
                    l = lines.next_line() => l,
                    _ = c.pump(secs(60)) => continue,
                },
                None => lines.next_line().await,
            };
            let Some(line) = line.expect("read the script's output") else {
                break;
            };
            log.push_str(&line);
            log.push('\n');
            if line.contains("waiting for a caller") {
                let t = ts.as_ref().expect("the daemon runs");
                call = Some(t.phone().build().await.call("12345").await);
            } else if line.contains("hang up now") {
                let c = call.take().expect("a caller");
                assert_eq!(c.bye().await, 200);
            } else if line.contains("stop the daemon now") {
                ts.take().expect("the daemon runs").shutdown().await;
            }
        }
    };
    tokio::time::timeout(secs(180), run)
        .await
        .expect("the browser run ends within 3 minutes");
    let status = child.wait().await.expect("the script ends");
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err).await;
    assert!(status.success(), "{log}{err}");
    assert!(log.contains("all steps passed"), "{log}{err}");
    if let Some(ts) = ts {
        ts.shutdown().await;
    }
}
