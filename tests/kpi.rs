//! The center's KPIs against a hand count: a fixed set of call records
//! and agent events (two queues, two agents, two days, several hours)
//! inserted through the store, on SQLite and, with
//! `HOTLINE_TEST_POSTGRES`, PostgreSQL; every figure checked as the
//! arithmetic of the count, per queue, agent, hour and day. Then
//! `hotline report` in its three formats and its refusals, and `/qc/kpi`
//! over HTTP (figures, charts, a team lead's own team, a qc user refused).
//!
//! The data (Asia/Shanghai; period 2026-11-02 to 2026-11-03, both days):
//!
//! | call | local arrival | queue | outcome | agent | wait s | talk s | wrap s | survey | caller |
//! |---|---|---|---|---|---|---|---|---|---|
//! | c01 | 11-02 09:05 | 12345 | answered | 1001 | 10 | 120 | 30 | 5 | …001 (calls again: c07) |
//! | c02 | 11-02 09:20 | 12345 | answered | 1002 | 40 | 200 | 20 | 4 | …002 |
//! | mon | 11-02 09:25 | 12345 | monitor leg | 1002 | | 60 | | | 2001 |
//! | c03 | 11-02 09:40 | 12345 | abandoned (short) | | 3 | | | | …003 |
//! | c04 | 11-02 10:10 | 12345 | abandoned | | 25 | | | | …004 |
//! | c05 | 11-02 10:30 | 12333 | answered | 1001 | 5 | 60 | 10 | 2 | …005 (again 11-05 11:00: outside 3 days) |
//! | c06 | 11-02 10:45 | 12333 | timeout | | 60 | | | | …006 |
//! | ivr | 11-02 11:00 | — | self-served | | | | | | …020 |
//! | rej | 11-03 09:00 | — | rejected | | | | | | …021 |
//! | c07 | 11-03 10:20 | 12345 | answered | 1002 | 12 | 90 | 30 | | …001 |
//! | c08 | 11-03 14:05 | 12345 | answered | 1001 | 15 | 300 | 45 | | anonymous |
//! | c09 | 11-03 14:30 | 12345 | abandoned (5 s: not short) | | 5 | | | | …010 |
//! | c10 | 11-03 15:10 | 12333 | answered | 1002 | 16 | 100 | (none) | | …011 |
//! | c11 | 11-03 15:40 | 12333 | voice message | | 30 | | | | …012 |
//! | c12 | 11-05 11:00 | — | self-served | | | | | | …005 |
//!
//! Agents: 1001 in 08:30–17:30 on 11-02 with a pause 12:00–13:00, in
//! 13:30–17:30 on 11-03 and from 23:00 on (to the period's end): staffed
//! 3.5 + 4.5 + 4 + 1 = 13 h, paused 1 h. 1002 logged in at 22:00 the day
//! before the period, out at 02:00 (2 h inside), in 09:00–12:00 with a
//! pause 09:30–09:45 (2.75 h), in 10:00–16:00 on 11-03 (6 h): 10.75 h,
//! paused 0.25 h.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Duration, Utc};
use hotline::kpi::{day_period, KpiSettings, Kpis};
use hotline::store::{CallRecord, Disposition, HangupBy, QueueEventRow, QueueOutcome, Store};
use support::http::{body, form, set_cookie, HttpClient, HttpResponse};
use support::{ServerOptions, TestServer};

#[macro_use]
#[path = "support/test_db.rs"]
mod test_db;
use test_db::{run, TestDb};

both_backends!(
    figures_match_the_hand_count,
    hotline_report_prints_table_csv_and_json
);

// ------------------------------------------------------------------ data --

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Call {
    id: &'static str,
    at: &'static str,
    queue: Option<&'static str>,
    disposition: Disposition,
    agent: Option<&'static str>,
    wait: Option<i64>,
    talk: Option<i64>,
    wrap: Option<i64>,
    survey: Option<i64>,
    caller: &'static str,
}

fn record(c: &Call) -> CallRecord {
    let arrived = t(&format!("{}+08:00", c.at));
    let secs = |s: Option<i64>| s.map(|s| s * 1000);
    CallRecord {
        call_id: c.id.into(),
        caller: c.caller.into(),
        dialed: c.queue.unwrap_or("12345").into(),
        arrived_at: arrived,
        answered_at: Some(arrived + Duration::seconds(1)),
        ended_at: arrived + Duration::seconds(600),
        duration_ms: 599_000,
        ivr_path: vec!["greeting".into()],
        self_service_result: None,
        disposition: c.disposition,
        hangup_by: HangupBy::Caller,
        hangup_reason: "bye".into(),
        sip_status: 200,
        codec: Some("PCMA".into()),
        language: Some("zh".into()),
        queue: c.queue.map(str::to_string),
        voice_message: None,
        voice_message_ms: None,
        acd: QueueOutcome {
            agent: c.agent.map(str::to_string),
            wait_ms: secs(c.wait),
            talk_ms: secs(c.talk),
            wrap_up_ms: secs(c.wrap),
            survey_score: c.survey,
            ..Default::default()
        },
    }
}

#[rustfmt::skip]
fn calls() -> Vec<Call> {
    use Disposition::*;
    let c = |id, at, queue, disposition, agent, wait, talk, wrap, survey, caller| Call {
        id,
        at,
        queue,
        disposition,
        agent,
        wait,
        talk,
        wrap,
        survey,
        caller,
    };
    let (q1, q2) = (Some("12345"), Some("12333"));
    let (a1, a2) = (Some("1001"), Some("1002"));
    vec![
        c("c01", "2026-11-02T09:05:00", q1, Answered, a1, Some(10), Some(120), Some(30), Some(5), "13800000001"),
        c("c02", "2026-11-02T09:20:00", q1, Answered, a2, Some(40), Some(200), Some(20), Some(4), "13800000002"),
        c("mon", "2026-11-02T09:25:00", q1, Monitor, a2, Some(0), Some(60), None, None, "2001"),
        c("c03", "2026-11-02T09:40:00", q1, AbandonedInQueue, None, Some(3), None, None, None, "13800000003"),
        c("c04", "2026-11-02T10:10:00", q1, AbandonedInQueue, None, Some(25), None, None, None, "13800000004"),
        c("c05", "2026-11-02T10:30:00", q2, Answered, a1, Some(5), Some(60), Some(10), Some(2), "13800000005"),
        c("c06", "2026-11-02T10:45:00", q2, ToQueue, None, Some(60), None, None, None, "13800000006"),
        c("ivr", "2026-11-02T11:00:00", None, SelfServed, None, None, None, None, None, "13800000020"),
        c("rej", "2026-11-03T09:00:00", None, Rejected, None, None, None, None, None, "13800000021"),
        c("c07", "2026-11-03T10:20:00", q1, Answered, a2, Some(12), Some(90), Some(30), None, "13800000001"),
        c("c08", "2026-11-03T14:05:00", q1, Answered, a1, Some(15), Some(300), Some(45), None, "anonymous"),
        c("c09", "2026-11-03T14:30:00", q1, AbandonedInQueue, None, Some(5), None, None, None, "13800000010"),
        c("c10", "2026-11-03T15:10:00", q2, Answered, a2, Some(16), Some(100), None, None, "13800000011"),
        c("c11", "2026-11-03T15:40:00", q2, VoiceMessage, None, Some(30), None, None, None, "13800000012"),
        c("c12", "2026-11-05T11:00:00", None, SelfServed, None, None, None, None, None, "13800000005"),
    ]
}

fn event(n: usize, agent: &str, kind: &str, at: &str, call: Option<&str>) -> QueueEventRow {
    QueueEventRow {
        uid: format!("ev{n:03}"),
        at: t(&format!("{at}+08:00")),
        kind: kind.into(),
        queue: call.map(|_| "12345".to_string()),
        call_id: call.map(str::to_string),
        agent: Some(agent.into()),
        position: None,
        wait_ms: None,
        talk_ms: None,
        reason: (kind == "pause").then(|| "break".to_string()),
    }
}

fn events() -> Vec<QueueEventRow> {
    [
        ("1001", "login", "2026-11-02T08:30:00", None),
        // Call events and reachability do not change the staffed time.
        ("1001", "offer", "2026-11-02T09:05:05", Some("c01")),
        ("1001", "connect", "2026-11-02T09:05:10", Some("c01")),
        ("1001", "complete", "2026-11-02T09:07:10", Some("c01")),
        ("1001", "pause", "2026-11-02T12:00:00", None),
        ("1001", "unpause", "2026-11-02T13:00:00", None),
        ("1001", "unreachable", "2026-11-02T15:00:00", None),
        ("1001", "reachable", "2026-11-02T15:01:00", None),
        ("1001", "logout", "2026-11-02T17:30:00", None),
        ("1001", "login", "2026-11-03T13:30:00", None),
        ("1001", "logout", "2026-11-03T17:30:00", None),
        ("1001", "login", "2026-11-03T23:00:00", None),
        ("1002", "login", "2026-11-01T08:00:00", None),
        ("1002", "logout", "2026-11-01T18:00:00", None),
        ("1002", "login", "2026-11-01T22:00:00", None),
        ("1002", "logout", "2026-11-02T02:00:00", None),
        ("1002", "login", "2026-11-02T09:00:00", None),
        ("1002", "pause", "2026-11-02T09:30:00", None),
        ("1002", "unpause", "2026-11-02T09:45:00", None),
        ("1002", "logout", "2026-11-02T12:00:00", None),
        ("1002", "login", "2026-11-03T10:00:00", None),
        ("1002", "logout", "2026-11-03T16:00:00", None),
        ("1002", "login", "2026-11-04T08:00:00", None),
    ]
    .iter()
    .enumerate()
    .map(|(i, (a, k, at, c))| event(i, a, k, at, *c))
    .collect()
}

async fn seed(store: &Store) {
    let recs: Vec<CallRecord> = calls().iter().map(record).collect();
    store.insert_call_records(&recs).await.unwrap();
    store.insert_queue_events(&events()).await.unwrap();
}

const H: f64 = 3_600_000.0;

async fn load(store: &Store, queue: Option<&str>) -> Kpis {
    let settings = KpiSettings::default();
    let (from, to) = day_period("2026-11-02", "2026-11-03", settings.tz, "").unwrap();
    hotline::kpi::load(store, &settings, from, to, Utc::now(), queue)
        .await
        .unwrap()
}

// ----------------------------------------------------------- the count --

async fn figures_match_the_hand_count(db: TestDb) {
    let store = db.open().await;
    seed(&store).await;
    let k = load(&store, None).await;

    // Total: offered c01-c11 but the monitor leg (the IVR-only, rejected
    // and later calls never reached a queue in the period).
    let f = &k.total;
    assert_eq!(f.offered, 11);
    assert_eq!(f.answered, 6); // c01 c02 c05 c07 c08 c10
    assert_eq!(f.answer_rate(), Some(6.0 / 11.0));
    assert_eq!(f.answered_in_time, 4); // 10, 5, 12, 15 s (not 40, 16)
    assert_eq!(f.service_level(), Some(4.0 / 11.0));
    assert_eq!(
        f.asa_ms(),
        Some((10.0 + 40.0 + 5.0 + 12.0 + 15.0 + 16.0) * 1000.0 / 6.0)
    );
    assert_eq!(f.short_abandoned, 1); // c03, 3 s
    assert_eq!(f.abandoned, 2); // c04 25 s, c09 5 s
    assert_eq!(f.abandon_rate(), Some(2.0 / 11.0));
    assert_eq!(f.overflowed, 2); // c06 timeout, c11 voice message
    let talk = 120.0 + 200.0 + 60.0 + 90.0 + 300.0 + 100.0;
    let wrap = 30.0 + 20.0 + 10.0 + 30.0 + 45.0 + 0.0;
    assert_eq!(f.aht_ms(), Some((talk + wrap) * 1000.0 / 6.0));
    assert_eq!(f.acw_ms(), Some(wrap * 1000.0 / 6.0));
    assert_eq!(f.surveys, 3);
    assert_eq!(f.satisfaction(), Some(2.0 / 3.0)); // 5 and 4 of 5, 4, 2
    assert_eq!(f.mean_score(), Some((5.0 + 4.0 + 2.0) / 3.0));
    // Answered with a number: c01 c02 c05 c07 c10 (c08 anonymous); c01's
    // caller called again (c07) the next day; c05's only after 3 days.
    assert_eq!((f.fcr_calls, f.fcr_resolved), (5, 4));
    assert_eq!(f.fcr(), Some(4.0 / 5.0));
    let (s1, s2) = ((3.5 + 4.5 + 4.0 + 1.0) * H, (2.0 + 0.5 + 2.25 + 6.0) * H);
    assert_eq!(f.staffed_ms as f64, s1 + s2);
    assert_eq!(f.paused_ms as f64, 1.0 * H + 0.25 * H);
    assert_eq!(f.occupancy(), Some((talk + wrap) * 1000.0 / (s1 + s2)));

    // Per queue.
    assert_eq!(k.all_queues, ["12333", "12345"]);
    let q = k.queue("12345").unwrap();
    assert_eq!((q.offered, q.answered, q.answered_in_time), (7, 4, 3));
    assert_eq!(q.answer_rate(), Some(4.0 / 7.0));
    assert_eq!(q.service_level(), Some(3.0 / 7.0));
    assert_eq!(q.asa_ms(), Some((10.0 + 40.0 + 12.0 + 15.0) * 1000.0 / 4.0));
    assert_eq!((q.abandoned, q.short_abandoned, q.overflowed), (2, 1, 0));
    assert_eq!(q.abandon_rate(), Some(2.0 / 7.0));
    assert_eq!(
        q.aht_ms(),
        Some((120.0 + 200.0 + 90.0 + 300.0 + 30.0 + 20.0 + 30.0 + 45.0) * 1000.0 / 4.0)
    );
    assert_eq!(q.acw_ms(), Some((30.0 + 20.0 + 30.0 + 45.0) * 1000.0 / 4.0));
    assert_eq!(q.satisfaction(), Some(1.0)); // 2 of 2
    assert_eq!(q.fcr(), Some(2.0 / 3.0));
    let q = k.queue("12333").unwrap();
    assert_eq!((q.offered, q.answered, q.answered_in_time), (4, 2, 1));
    assert_eq!(q.answer_rate(), Some(2.0 / 4.0));
    assert_eq!(q.service_level(), Some(1.0 / 4.0));
    assert_eq!(q.asa_ms(), Some((5.0 + 16.0) * 1000.0 / 2.0));
    assert_eq!((q.abandoned, q.short_abandoned, q.overflowed), (0, 0, 2));
    assert_eq!(q.aht_ms(), Some((60.0 + 100.0 + 10.0) * 1000.0 / 2.0));
    assert_eq!(q.acw_ms(), Some(10.0 * 1000.0 / 2.0));
    assert_eq!(q.satisfaction(), Some(0.0 / 1.0));
    assert_eq!(q.mean_score(), Some(2.0));
    assert_eq!(q.fcr(), Some(1.0)); // 2 of 2
    assert_eq!(k.queues.len(), 2);

    // Per agent (the monitor leg on 1002 is not 1002's call).
    let a = k.agent("1001").unwrap();
    assert_eq!(a.answered, 3); // c01 c05 c08
    assert_eq!(
        a.aht_ms(),
        Some((120.0 + 60.0 + 300.0 + 30.0 + 10.0 + 45.0) * 1000.0 / 3.0)
    );
    assert_eq!(a.acw_ms(), Some((30.0 + 10.0 + 45.0) * 1000.0 / 3.0));
    assert_eq!(a.staffed_ms as f64, s1);
    assert_eq!(a.paused_ms as f64, H);
    assert_eq!(
        a.occupancy(),
        Some((120.0 + 60.0 + 300.0 + 30.0 + 10.0 + 45.0) * 1000.0 / (13.0 * H))
    );
    assert_eq!(a.satisfaction(), Some(1.0 / 2.0));
    assert_eq!(a.mean_score(), Some((5.0 + 2.0) / 2.0));
    assert_eq!(a.fcr(), Some(1.0 / 2.0));
    let b = k.agent("1002").unwrap();
    assert_eq!(b.answered, 3); // c02 c07 c10
    assert_eq!(
        b.aht_ms(),
        Some((200.0 + 90.0 + 100.0 + 20.0 + 30.0) * 1000.0 / 3.0)
    );
    assert_eq!(b.acw_ms(), Some((20.0 + 30.0 + 0.0) * 1000.0 / 3.0));
    assert_eq!(b.staffed_ms as f64, 10.75 * H);
    assert_eq!(b.paused_ms as f64, 0.25 * H);
    assert_eq!(
        b.occupancy(),
        Some((200.0 + 90.0 + 100.0 + 20.0 + 30.0) * 1000.0 / (10.75 * H))
    );
    assert_eq!(b.satisfaction(), Some(1.0)); // 1 of 1
    assert_eq!(b.fcr(), Some(1.0)); // 3 of 3
    assert_eq!(k.agents.len(), 2);

    // Per hour of day (both days together).
    let keys: Vec<&str> = k.hours.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["09", "10", "14", "15"]);
    let h = k.hour(9).unwrap(); // c01 c02 c03
    assert_eq!(
        (h.offered, h.answered, h.answered_in_time, h.short_abandoned),
        (3, 2, 1, 1)
    );
    assert_eq!(h.answer_rate(), Some(2.0 / 3.0));
    assert_eq!(h.asa_ms(), Some((10.0 + 40.0) * 1000.0 / 2.0));
    assert_eq!(h.satisfaction(), Some(1.0)); // 2 of 2
    let h = k.hour(10).unwrap(); // c04 c05 c06 c07
    assert_eq!((h.offered, h.answered, h.answered_in_time), (4, 2, 2));
    assert_eq!((h.abandoned, h.overflowed), (1, 1));
    assert_eq!(h.service_level(), Some(2.0 / 4.0));
    assert_eq!(h.abandon_rate(), Some(1.0 / 4.0));
    let h = k.hour(14).unwrap(); // c08 c09
    assert_eq!(
        (h.offered, h.answered, h.answered_in_time, h.abandoned),
        (2, 1, 1, 1)
    );
    assert_eq!(h.fcr(), None); // c08 is anonymous
    let h = k.hour(15).unwrap(); // c10 c11
    assert_eq!(
        (h.offered, h.answered, h.answered_in_time, h.overflowed),
        (2, 1, 0, 1)
    );
    assert_eq!(h.service_level(), Some(0.0 / 2.0));

    // Per day.
    let d = k.day("2026-11-02").unwrap(); // c01-c06
    assert_eq!((d.offered, d.answered, d.answered_in_time), (6, 3, 2));
    assert_eq!(d.service_level(), Some(2.0 / 6.0));
    assert_eq!((d.abandoned, d.short_abandoned, d.overflowed), (1, 1, 1));
    assert_eq!(d.fcr(), Some(2.0 / 3.0));
    let d = k.day("2026-11-03").unwrap(); // c07-c11
    assert_eq!((d.offered, d.answered, d.answered_in_time), (5, 3, 2));
    assert_eq!(d.service_level(), Some(2.0 / 5.0));
    assert_eq!(d.answer_rate(), Some(3.0 / 5.0));
    assert_eq!(d.acw_ms(), Some((30.0 + 45.0 + 0.0) * 1000.0 / 3.0));
    assert_eq!(k.days.len(), 2);

    // One queue: its calls only; the agents' handle time still counts
    // every queue for occupancy.
    let k = load(&store, Some("12333")).await;
    assert_eq!((k.total.offered, k.total.answered), (4, 2));
    assert_eq!(k.queues.len(), 1);
    let a = k.agent("1001").unwrap();
    assert_eq!(a.answered, 1);
    assert_eq!(
        a.occupancy(),
        Some((120.0 + 60.0 + 300.0 + 30.0 + 10.0 + 45.0) * 1000.0 / (13.0 * H))
    );
    store.close().await;
}

// ---------------------------------------------------------------- CLI --

fn hotline(database: &str, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("HOTLINE_LOG")
        .args(["--config", "config/hotline.toml", "--database", database])
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hotline")
}

fn report(db: &TestDb, data: &Path, extra: &[&str]) -> String {
    let mut args = vec!["report", "--from", "2026-11-02", "--to", "2026-11-03"];
    args.extend(extra);
    let out = hotline(&db.url, data, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A JSON number within parsing error (serde_json's default float parser
/// may miss the last bit) of `want`.
fn assert_close(v: &serde_json::Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((got - want).abs() < 1e-12, "{got} ≠ {want}");
}

async fn hotline_report_prints_table_csv_and_json(db: TestDb) {
    let store = db.open().await;
    seed(&store).await;
    store.close().await;
    let data = tempfile::tempdir().unwrap();

    let json = report(&db, data.path(), &["--format", "json"]);
    let j: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    assert_eq!(j["period"]["timezone"], "Asia/Shanghai");
    assert_eq!(j["period"]["from"], "2026-11-02T00:00:00+08:00");
    assert_eq!(j["period"]["to"], "2026-11-04T00:00:00+08:00");
    assert_eq!(j["settings"]["service_level_secs"], 15);
    let total = &j["total"];
    assert_eq!(total["offered"], 11);
    assert_eq!(total["answered"], 6);
    assert_close(&total["answer_rate"], 6.0 / 11.0);
    assert_close(&total["service_level"], 4.0 / 11.0);
    assert_eq!(total["short_abandoned"], 1);
    assert_close(&total["abandon_rate"], 2.0 / 11.0);
    assert_close(&total["fcr"], 4.0 / 5.0);
    assert_close(&total["satisfaction"], 2.0 / 3.0);
    let keys = |k: &str| -> Vec<String> {
        j[k].as_array()
            .unwrap()
            .iter()
            .map(|g| g["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys("queues"), ["12333", "12345"]);
    assert_eq!(keys("agents"), ["1001", "1002"]);
    assert_eq!(keys("hours"), ["09", "10", "14", "15"]);
    assert_eq!(keys("days"), ["2026-11-02", "2026-11-03"]);
    assert_eq!(
        j["agents"][1]["staffed_secs"].as_f64(),
        Some(10.75 * 3600.0)
    );
    assert_close(&j["days"][0]["service_level"], 2.0 / 6.0);

    let csv = report(&db, data.path(), &["--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("group,key,offered,answered,answer_rate,service_level,"));
    // 1 total + 2 queues + 2 agents + 4 hours + 2 days.
    assert_eq!(lines.len(), 1 + 11, "{csv}");
    // ASA 98/6 s, AHT 1005/6 s, ACW 135/6 s, staffed 13 h + 10.75 h, paused
    // 1.25 h, occupancy 1005 s / 85500 s, mean score 11/3.
    assert_eq!(
        lines[1],
        "total,,11,6,0.5455,0.3636,16.3,2,1,0.1818,2,167.5,22.5,85500,4500,0.0118,3,0.6667,3.67,5,4,0.8000"
    );
    assert!(
        lines.contains(
            &"day,2026-11-03,5,3,0.6000,0.4000,14.3,1,0,0.2000,1,188.3,25.0,0,0,,0,,,2,2,1.0000"
        ),
        "{csv}"
    );

    let table = report(&db, data.path(), &[]);
    assert!(
        table.starts_with("KPIs 2026-11-02 00:00 – 2026-11-04 00:00 (Asia/Shanghai)"),
        "{table}"
    );
    let total_line = table.lines().find(|l| l.starts_with("total ")).unwrap();
    let cells: Vec<&str> = total_line.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "total", "11", "6", "54.5%", "36.4%", "16.3", "2", "1", "18.2%", "2", "167.5", "22.5",
            "66.7%", "3.67", "80.0%"
        ],
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("09:00 ")), "{table}");
    let agent = table.lines().find(|l| l.starts_with("1002 ")).unwrap();
    assert!(
        agent.contains("10:45:00") && agent.contains("0:15:00"),
        "{agent}"
    );

    let json = report(&db, data.path(), &["--format", "json", "--queue", "12333"]);
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["queue"], "12333");
    assert_eq!(j["total"]["offered"], 4);

    // Refusals: a day that does not exist, a period backwards, a format.
    for (args, says) in [
        (
            vec!["report", "--from", "2026-11-31", "--to", "2026-12-01"],
            "--from \"2026-11-31\" is not a date (YYYY-MM-DD)",
        ),
        (
            vec!["report", "--from", "2026-11-04", "--to", "2026-11-03"],
            "--from (2026-11-04) must be on or before --to (2026-11-03)",
        ),
        (
            vec![
                "report",
                "--from",
                "2026-11-02",
                "--to",
                "2026-11-03",
                "--format",
                "xml",
            ],
            "invalid value 'xml' for '--format",
        ),
    ] {
        let out = hotline(&db.url, data.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ---------------------------------------------------------------- web --

const PASSWORD: &str = "correct-horse-42";

fn web_options() -> ServerOptions {
    ServerOptions {
        extra_toml: r#"
[[acd.queues]]
name = "12345"
[[acd.queues]]
name = "12333"
[[acd.agents]]
id = "1001"
name = "Agent One"
extension = "1001"
queues = ["12345", "12333"]
team = "A"
[[acd.agents]]
id = "1002"
name = "Agent Two"
extension = "1002"
queues = ["12345", "12333"]
team = "B"
[qc.sampling]
timezone = "Asia/Shanghai"
[report]
service_level_secs = 15
short_abandon_secs = 5
repeat_days = 3
"#
        .into(),
        ..Default::default()
    }
}

fn user_add(ts: &TestServer, name: &str, role: &str, team: Option<&str>) {
    use std::io::Write;
    let mut args = vec!["user", "add", name, "--role", role];
    if let Some(t) = team {
        args.extend(["--team", t]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--config")
        .arg(ts.dir.path().join("hotline.toml"))
        .arg("--database")
        .arg(&ts.database_url)
        .arg("--data-dir")
        .arg(ts.dir.path())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Logs `name` in; its session cookie.
async fn login(http: &HttpClient, name: &str) -> String {
    let page = http.get("/qc/login").await;
    assert_eq!(page.status, 200);
    let token = set_cookie(&page, "hotline_login").expect("login cookie");
    let form = form(&[("name", name), ("password", PASSWORD), ("csrf", &token)]);
    let r = http
        .request(
            "POST",
            "/qc/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &format!("hotline_login={token}")),
            ],
            form.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 303, "{name}: {}", body(&r));
    format!("hotline_qc={}", set_cookie(&r, "hotline_qc").unwrap())
}

async fn get(http: &HttpClient, cookie: &str, path: &str) -> HttpResponse {
    http.request("GET", path, &[("Cookie", cookie)], b"").await
}

/// The text of the element with `id`.
fn by_id(page: &str, id: &str) -> String {
    let at = page
        .find(&format!(r#"id="{id}">"#))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &page[at + id.len() + 6..];
    rest[..rest.find('<').unwrap()].to_string()
}

/// The table `id`'s body.
fn table<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page.find(&format!(r#"<table id="{id}">"#)).unwrap();
    let rest = &page[at..];
    &rest[..rest.find("</table>").unwrap()]
}

#[tokio::test]
async fn the_kpi_page_shows_the_figures_and_charts_to_whom_it_may() {
    let ts = TestServer::start_with(web_options()).await;
    seed(&ts.server.store).await;
    for (name, role, team) in [
        ("sup", "supervisor", None),
        ("lead_a", "team_lead", Some("A")),
        ("qc1", "qc", None),
        ("admin1", "admin", None),
    ] {
        user_add(&ts, name, role, team);
    }
    let http = HttpClient::new(ts.server.http);
    let period = "from=2026-11-02&to=2026-11-03";

    let r = http.get(&format!("/qc/kpi?{period}")).await;
    assert_eq!(r.status, 303, "not logged in: to the log-in page");

    let sup = login(&http, "sup").await;
    let r = get(&http, &sup, &format!("/qc/kpi?{period}")).await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let page = body(&r);
    assert_eq!(by_id(&page, "offered"), "11");
    assert_eq!(by_id(&page, "answered"), "6");
    assert_eq!(by_id(&page, "answer-rate"), "54.5%"); // 6/11
    assert_eq!(by_id(&page, "service-level"), "36.4%"); // 4/11
    assert_eq!(by_id(&page, "asa"), "16.3 s"); // 98/6
    assert_eq!(by_id(&page, "abandon-rate"), "18.2%"); // 2/11
    assert_eq!(by_id(&page, "short-abandoned"), "1");
    assert_eq!(by_id(&page, "aht"), "167.5 s"); // 1005/6
    assert_eq!(by_id(&page, "acw"), "22.5 s"); // 135/6
    assert_eq!(by_id(&page, "occupancy"), "1.2%"); // 1005 s / 23.75 h
    assert_eq!(by_id(&page, "satisfaction"), "66.7%"); // 2/3
    assert_eq!(by_id(&page, "fcr"), "80.0%"); // 4/5
                                              // Charts: per hour offered and answered (4 hours × 2 bars), per day the
                                              // service level (2 bars: 33.3 and 40).
    assert_eq!(page.matches("<svg").count(), 2);
    assert_eq!(page.matches(r#"class="bar""#).count(), 4 * 2 + 2);
    assert!(
        page.contains(">33.3</text>") && page.contains(">40</text>"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script");
    let agents = table(&page, "kpi-agents");
    assert!(agents.contains(r#"data-key="1001""#) && agents.contains(r#"data-key="1002""#));
    assert!(agents.contains("1002 Agent Two"));
    let queues = table(&page, "kpi-queues");
    assert!(
        queues.contains(
            r#"<tr data-key="12345"><td>12345</td><td>7</td><td>4</td><td>57.1%</td><td>42.9%</td>"#
        ),
        "{queues}"
    );
    assert!(table(&page, "kpi-hours").contains("<td>09:00</td><td>3</td>"));
    assert!(table(&page, "kpi-days")
        .contains("<td>2026-11-03</td><td>5</td><td>3</td><td>60.0%</td><td>40.0%</td>"));
    assert!(page.contains(r#"href="/qc/kpi""#), "nav link");

    // One queue.
    let r = get(&http, &sup, &format!("/qc/kpi?{period}&queue=12333")).await;
    let page = body(&r);
    assert_eq!(by_id(&page, "offered"), "4");
    assert!(page.contains(r#"<option value="12333" selected>"#));

    // CSV.
    let r = get(&http, &sup, &format!("/qc/kpi.csv?{period}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let csv = body(&r);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("total,,11,6,0.5455,0.3636,"),
        "{csv}"
    );

    // A bad date.
    let r = get(&http, &sup, "/qc/kpi?from=2026-11-31&to=2026-12-01").await;
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("from &quot;2026-11-31&quot; is not a date"));

    // A team lead: the center's figures, the own team's agents only.
    let lead = login(&http, "lead_a").await;
    let r = get(&http, &lead, &format!("/qc/kpi?{period}")).await;
    assert_eq!(r.status, 200);
    let page = body(&r);
    assert_eq!(by_id(&page, "offered"), "11");
    let agents = table(&page, "kpi-agents");
    assert!(agents.contains(r#"data-key="1001""#), "{agents}");
    assert!(!agents.contains("1002"), "{agents}");
    let csv = body(&get(&http, &lead, &format!("/qc/kpi.csv?{period}")).await);
    assert!(
        csv.contains("\nagent,1001,") && !csv.contains("\nagent,1002,"),
        "{csv}"
    );

    // An administrator may; a QC user may not.
    let admin = login(&http, "admin1").await;
    assert_eq!(
        get(&http, &admin, &format!("/qc/kpi?{period}"))
            .await
            .status,
        200
    );
    let qc = login(&http, "qc1").await;
    assert_eq!(
        get(&http, &qc, &format!("/qc/kpi?{period}")).await.status,
        403
    );
    assert_eq!(
        get(&http, &qc, &format!("/qc/kpi.csv?{period}"))
            .await
            .status,
        403
    );
    ts.shutdown().await;
}
