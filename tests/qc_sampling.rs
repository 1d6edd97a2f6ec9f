//! QC sampling against a real database: the candidates a run reads (the
//! survey score joined from the call record, the callers' calls), a run
//! saved with its picks and audit entry, the worklist filters, the daily
//! run made once per day; and `hotline qc sample` run twice with one seed.
//!
//! Store tests run on SQLite always and on PostgreSQL when
//! `HOTLINE_TEST_POSTGRES` holds a URL (each test in a fresh schema), as in
//! `tests/store.rs`.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use hotline::qc::sample_run::{run_sample, SampleRequest};
use hotline::qc::sampling_rules::SamplingConfig;
use hotline::store::{
    AuditFilter, CallRecord, Disposition, HangupBy, QueueOutcome, RecordingKind, RecordingRow,
    RecordingStatus, SampleFilter, SampleRunFilter, SampleSource, Store,
};

#[macro_use]
#[path = "support/test_db.rs"]
mod test_db;
use test_db::{run, TestDb};

both_backends!(
    candidates_join_the_survey_score_and_runs_round_trip,
    the_daily_run_samples_a_day_once
);

// ------------------------------------------------------------------ data --

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn recording(id: &str, agent: &str, started: DateTime<Utc>, secs: i64) -> RecordingRow {
    RecordingRow {
        id: id.into(),
        call_id: format!("call-{id}"),
        kind: RecordingKind::Call,
        segment: 0,
        agent: Some(agent.into()),
        queue: Some("12345".into()),
        caller: Some("13800138000".into()),
        dialed: Some("12345".into()),
        path: format!("recordings/2026/10/08/{id}.wav"),
        channels: 2,
        started_at: started,
        ended_at: Some(started + Duration::seconds(secs)),
        duration_ms: Some(secs * 1000),
        size_bytes: Some(secs * 32_000 + 44),
        sha256: Some("ab".repeat(32)),
        masked_ms: 0,
        status: RecordingStatus::Complete,
        deleted_at: None,
    }
}

fn call_record(r: &RecordingRow, caller: &str, survey: Option<i64>) -> CallRecord {
    let arrived = r.started_at - Duration::seconds(20);
    CallRecord {
        call_id: r.call_id.clone(),
        caller: caller.into(),
        dialed: "12345".into(),
        arrived_at: arrived,
        answered_at: Some(arrived + Duration::seconds(2)),
        ended_at: r.ended_at.unwrap(),
        duration_ms: r.duration_ms.unwrap() + 18_000,
        ivr_path: vec!["greeting".into()],
        self_service_result: None,
        disposition: Disposition::Answered,
        hangup_by: HangupBy::Caller,
        hangup_reason: "bye".into(),
        sip_status: 200,
        codec: Some("PCMA".into()),
        language: Some("zh".into()),
        queue: Some("12345".into()),
        voice_message: None,
        voice_message_ms: None,
        acd: QueueOutcome {
            agent: r.agent.clone(),
            survey_score: survey,
            ..Default::default()
        },
    }
}

/// 2026-10-08 (Asia/Shanghai): 20 calls of 1001 and 6 of 1002 (one rated
/// 1, whose caller had called two days before), a voice message, and last
/// week's calls of 1001.
async fn seed(store: &Store) {
    let day = t("2026-10-08T09:00:00+08:00");
    let mut recs = Vec::new();
    let mut calls = Vec::new();
    for i in 0..20 {
        let mut r = recording(
            &format!("a{i:02}"),
            "1001",
            day + Duration::minutes(i * 7),
            100,
        );
        r.caller = Some(format!("1390000{i:04}"));
        calls.push(call_record(&r, &format!("1390000{i:04}"), Some(5)));
        recs.push(r);
    }
    for i in 0..6 {
        let mut r = recording(
            &format!("b{i:02}"),
            "1002",
            day + Duration::minutes(i * 11),
            120,
        );
        let unhappy = i == 3;
        let caller = if unhappy { "13800138000" } else { "1370000000" };
        r.caller = Some(format!("{caller}{i}"));
        let caller = r.caller.clone().unwrap();
        calls.push(call_record(&r, &caller, Some(if unhappy { 1 } else { 4 })));
        recs.push(r);
    }
    let mut vm = recording("vm1", "1001", day, 30);
    vm.kind = RecordingKind::VoiceMessage;
    vm.agent = None;
    recs.push(vm);
    for i in 0..5 {
        recs.push(recording(
            &format!("old{i}"),
            "1001",
            day - Duration::days(7) + Duration::minutes(i),
            100,
        ));
    }
    // The unhappy caller's first call, two days before, not recorded.
    let mut first = call_record(&recs[23], "138001380003", None);
    first.call_id = "first-call".into();
    first.arrived_at = day - Duration::days(2);
    first.answered_at = None;
    first.ended_at = first.arrived_at + Duration::seconds(40);
    first.disposition = Disposition::SelfServed;
    calls.push(first);
    store.save_recordings(&recs).await.unwrap();
    store.insert_call_records(&calls).await.unwrap();
}

const RULES: &str = r#"
enabled = true
timezone = "Asia/Shanghai"
[[rules]]
name = "random"
kind = "random_share"
share = 0.1
min_per_agent = 2
[[rules]]
name = "unhappy"
kind = "low_survey"
max_score = 2
[[rules]]
name = "again"
kind = "repeat_caller"
within_days = 3
"#;

fn config() -> SamplingConfig {
    toml::from_str(RULES).unwrap()
}

fn request(seed: Option<u64>, save: bool) -> SampleRequest {
    SampleRequest {
        from: t("2026-10-08T00:00:00+08:00"),
        to: t("2026-10-09T00:00:00+08:00"),
        seed,
        source: SampleSource::Cli,
        actor: "cli".into(),
        save,
        now: t("2026-10-09T10:00:00+08:00"),
    }
}

// ----------------------------------------------------------------- tests --

async fn candidates_join_the_survey_score_and_runs_round_trip(db: TestDb) {
    let store = db.open().await;
    seed(&store).await;
    let (from, to) = (
        t("2026-10-08T00:00:00+08:00"),
        t("2026-10-09T00:00:00+08:00"),
    );
    let c = store.sample_candidates(from, to).await.unwrap();
    assert_eq!(c.len(), 27, "20 + 6 calls and the voice message");
    let b03 = c.iter().find(|c| c.recording_id == "b03").unwrap();
    assert_eq!(b03.survey_score, Some(1));
    assert_eq!(b03.started_at, t("2026-10-08T09:33:00+08:00"));
    let vm = c.iter().find(|c| c.recording_id == "vm1").unwrap();
    assert_eq!(
        (vm.kind, vm.survey_score),
        (RecordingKind::VoiceMessage, None)
    );
    let contacts = store
        .caller_contacts(from - Duration::days(3), to)
        .await
        .unwrap();
    assert!(contacts.iter().any(|k| k.call_id == "first-call"));

    // A dry run stores nothing; the same seed picks the same recordings.
    let dry = run_sample(&store, &config(), &request(Some(7), false))
        .await
        .unwrap();
    assert!(!dry.saved);
    let out = run_sample(&store, &config(), &request(Some(7), true))
        .await
        .unwrap();
    assert_eq!(
        dry.picks.iter().map(|p| &p.pick).collect::<Vec<_>>(),
        out.picks.iter().map(|p| &p.pick).collect::<Vec<_>>()
    );
    assert_eq!(out.recordings, 27);
    let count = |rule: &str| out.picks.iter().filter(|p| p.pick.rule == rule).count();
    assert_eq!(
        count("random"),
        4,
        "2 of 1001's 20, the minimum 2 of 1002's 6"
    );
    assert_eq!(count("unhappy"), 1);
    assert_eq!(count("again"), 1, "b03: its caller called two days before");
    assert!(out.picks.iter().all(|p| p.pick.recording_id != "vm1"));

    let runs = store.sample_runs(SampleRunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0], out.run);
    assert_eq!(runs[0].seed, 7);
    let rules: SamplingConfig = serde_json::from_str(&runs[0].rules).unwrap();
    assert_eq!(rules, config());

    let all = store
        .samples(SampleFilter {
            run_id: Some(out.run.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    let b03_rules: Vec<&str> = all
        .iter()
        .filter(|s| s.recording_id == "b03")
        .map(|s| s.rule.as_str())
        .collect();
    assert!(b03_rules.contains(&"unhappy") && b03_rules.contains(&"again"));
    let of_1002 = store
        .samples(SampleFilter {
            agent: Some("1002".into()),
            rule: Some("random".into()),
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_1002.len(), 2);
    assert!(of_1002.iter().all(|s| s.agent.as_deref() == Some("1002")
        && s.queue.as_deref() == Some("12345")
        && s.created_at == out.run.created_at));
    let none = store
        .samples(SampleFilter {
            from: Some(to),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    let audit = store
        .audit_log(AuditFilter {
            action: Some("qc.sample".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "cli");
    assert_eq!(
        audit[0].object.as_deref(),
        Some(format!("sample_run:{}", out.run.id).as_str())
    );
    assert!(audit[0].detail.as_deref().unwrap().contains("seed 7"));

    // The seed of a period: a re-run without one draws the same way.
    let a = run_sample(&store, &config(), &request(None, false))
        .await
        .unwrap();
    let b = run_sample(&store, &config(), &request(None, false))
        .await
        .unwrap();
    assert_eq!(a.run.seed, b.run.seed);
    assert_eq!(a.picks, b.picks);
    store.close().await;
}

async fn the_daily_run_samples_a_day_once(db: TestDb) {
    use hotline::qc::sample_schedule::run_if_due;
    let store = db.open().await;
    seed(&store).await;
    let cfg = config();
    let plan = cfg.plan().unwrap();
    // 01:30 on the 9th: the 8th is due.
    let now = t("2026-10-09T02:00:00+08:00");
    assert!(run_if_due(&store, &cfg, &plan, now).await.unwrap());
    // A restart an hour later: already made.
    assert!(!run_if_due(&store, &cfg, &plan, now + Duration::hours(1))
        .await
        .unwrap());
    let runs = store
        .sample_runs(SampleRunFilter {
            source: Some(SampleSource::Scheduled),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].period_from, runs[0].period_to),
        (
            t("2026-10-08T00:00:00+08:00"),
            t("2026-10-09T00:00:00+08:00")
        )
    );
    assert_eq!(runs[0].picked, 6);
    let audit = store
        .audit_log(AuditFilter {
            action: Some("qc.sample".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit[0].actor, "system");
    // A CLI run of the same day does not count as the scheduled one, and
    // the next day is due the next night.
    run_sample(&store, &cfg, &request(None, true))
        .await
        .unwrap();
    assert!(run_if_due(&store, &cfg, &plan, now + Duration::days(1))
        .await
        .unwrap());
    let scheduled = |store: &hotline::store::Store| {
        let store = store.clone();
        async move {
            store
                .sample_runs(SampleRunFilter {
                    source: Some(SampleSource::Scheduled),
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(scheduled(&store).await.len(), 2, "the 8th and the 9th");
    // Down for three nights: the 10th to the 13th are sampled when it is
    // back, once each.
    assert!(run_if_due(&store, &cfg, &plan, now + Duration::days(5))
        .await
        .unwrap());
    let runs = scheduled(&store).await;
    assert_eq!(runs.len(), 6);
    let mut days: Vec<_> = runs.iter().map(|r| r.period_from).collect();
    days.sort();
    assert_eq!(days[2], t("2026-10-10T00:00:00+08:00"));
    assert_eq!(days[5], t("2026-10-13T00:00:00+08:00"));
    // Down for a month: only the last 7 days are caught up.
    assert!(run_if_due(&store, &cfg, &plan, now + Duration::days(35))
        .await
        .unwrap());
    let runs = scheduled(&store).await;
    assert_eq!(runs.len(), 6 + 7);
    assert!(!run_if_due(&store, &cfg, &plan, now + Duration::days(35))
        .await
        .unwrap());
    store.close().await;
}

// ------------------------------------------------------------------- CLI --

fn hotline(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotline"));
    c.env_remove("HOTLINE_LOG")
        .env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--data-dir", data.to_str().unwrap()]);
    c
}

/// The picks table of `hotline qc sample` (its output without the line
/// naming the run).
fn sample(data: &Path, args: &[&str]) -> (String, String) {
    let out = hotline(data)
        .args(["qc", "sample"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}{stderr}");
    let table = stdout
        .lines()
        .filter(|l| {
            !l.starts_with("saved as run")
                && !l.starts_with("period ")
                && !l.starts_with("dry run")
                && !l.contains("INFO")
        })
        .collect::<Vec<_>>()
        .join("\n");
    (table, stdout)
}

#[test]
fn the_cli_samples_the_same_with_the_same_seed() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", data.path().join("hotline.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&url).await.unwrap();
        seed(&store).await;
        store.close().await;
    });
    let period = ["--from", "2026-10-08", "--to", "2026-10-09"];
    fn with_seed<'a>(period: &[&'a str], s: &'a str) -> Vec<&'a str> {
        [period, &["--seed", s]].concat()
    }
    let (first, out) = sample(data.path(), &with_seed(&period, "7"));
    assert!(out.contains("saved as run "), "{out}");
    assert!(
        out.contains(
            "period 2026-10-08 00:00 to 2026-10-09 00:00 (Asia/Shanghai), seed 7, 27 recordings"
        ),
        "{out}"
    );
    // The shipped rules: random, low survey, repeat caller at least.
    for rule in ["random", "low_survey", "repeat_caller"] {
        assert!(
            out.lines().any(|l| l.contains(&format!(" {rule} "))),
            "{rule}: {out}"
        );
    }
    assert!(out.contains("recording  started"), "{out}");
    let (again, _) = sample(data.path(), &with_seed(&period, "7"));
    assert_eq!(first, again, "same seed, same records: same picks");
    let (other, _) = sample(data.path(), &with_seed(&period, "8"));
    assert_ne!(first, other, "another seed draws other random picks");
    let (dry, out) = sample(
        data.path(),
        &[&with_seed(&period, "7")[..], &["--dry-run"]].concat(),
    );
    assert!(out.contains("dry run: nothing stored"), "{out}");
    assert_eq!(first, dry, "a dry run picks the same");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&url).await.unwrap();
        let runs = store.sample_runs(SampleRunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 3, "the dry run stored nothing");
        assert!(runs.iter().all(|r| r.source == SampleSource::Cli));
        let audit = store
            .audit_log(AuditFilter {
                action: Some("qc.sample".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 3);
        store.close().await;
    });
}

#[test]
fn the_cli_refuses_bad_periods_clearly() {
    let data = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            ["--from", "2026-10-09", "--to", "2026-10-08"],
            "--to must be after --from",
        ),
        (
            ["--from", "2026-10-08", "--to", "2026-10-08"],
            "--to must be after --from",
        ),
        (
            ["--from", "2026-10-32", "--to", "2026-11-01"],
            "--from: \"2026-10-32\" is not a date or a time",
        ),
        (
            ["--from", "2026-10-08", "--to", "2026-10-09T25:00"],
            "--to: \"2026-10-09T25:00\" is not a date or a time",
        ),
    ] {
        let out = hotline(data.path())
            .args(["qc", "sample"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(
        !data.path().join("hotline.db").exists(),
        "refused before opening the database"
    );
}
