use chrono::{DateTime, Utc};

use super::*;
use crate::store::{HangupBy, QueueOutcome};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn call(id: &str, at: &str, caller: &str, queue: Option<&str>) -> CallRecord {
    let at = t(at);
    CallRecord {
        call_id: id.into(),
        caller: caller.into(),
        dialed: "12345".into(),
        arrived_at: at,
        answered_at: Some(at),
        ended_at: at + Duration::seconds(60),
        duration_ms: 60_000,
        ivr_path: vec![],
        self_service_result: None,
        disposition: Disposition::ToQueue,
        hangup_by: HangupBy::Caller,
        hangup_reason: "bye".into(),
        sip_status: 200,
        codec: None,
        language: None,
        queue: queue.map(str::to_string),
        voice_message: None,
        voice_message_ms: None,
        acd: QueueOutcome::default(),
    }
}

fn answered(mut r: CallRecord, agent: &str, wait: i64, talk: i64, wrap: i64) -> CallRecord {
    r.disposition = Disposition::Answered;
    r.acd.agent = Some(agent.into());
    r.acd.wait_ms = Some(wait);
    r.acd.talk_ms = Some(talk);
    r.acd.wrap_up_ms = Some(wrap);
    r
}

fn abandoned(mut r: CallRecord, wait: i64) -> CallRecord {
    r.disposition = Disposition::AbandonedInQueue;
    r.acd.wait_ms = Some(wait);
    r
}

fn ev(agent: &str, kind: &str, at: &str) -> QueueEventRow {
    QueueEventRow {
        uid: format!("{agent}-{kind}-{at}"),
        at: t(at),
        kind: kind.into(),
        queue: None,
        call_id: None,
        agent: Some(agent.into()),
        position: None,
        wait_ms: None,
        talk_ms: None,
        reason: None,
    }
}

const FROM: &str = "2026-11-02T00:00:00+08:00";
const TO: &str = "2026-11-03T00:00:00+08:00";

fn run(records: &[CallRecord], events: &[QueueEventRow], queue: Option<&str>) -> Kpis {
    compute(
        &KpiInput {
            from: t(FROM),
            to: t(TO),
            now: t("2026-12-01T00:00:00Z"),
            records,
            agent_events: events,
            queue,
        },
        &KpiSettings::default(),
    )
}

#[test]
fn thresholds_are_inclusive_for_service_level_and_strict_for_short_abandons() {
    let recs = [
        answered(
            call("a", "2026-11-02T09:00:00+08:00", "1", Some("q")),
            "1001",
            15_000,
            1,
            0,
        ),
        answered(
            call("b", "2026-11-02T09:01:00+08:00", "2", Some("q")),
            "1001",
            15_001,
            1,
            0,
        ),
        abandoned(
            call("c", "2026-11-02T09:02:00+08:00", "3", Some("q")),
            4_999,
        ),
        abandoned(
            call("d", "2026-11-02T09:03:00+08:00", "4", Some("q")),
            5_000,
        ),
    ];
    let k = run(&recs, &[], None);
    assert_eq!(k.total.offered, 4);
    assert_eq!(k.total.answered_in_time, 1);
    assert_eq!(k.total.service_level(), Some(1.0 / 4.0));
    assert_eq!(k.total.short_abandoned, 1);
    assert_eq!(k.total.abandoned, 1);
    assert_eq!(k.total.abandon_rate(), Some(1.0 / 4.0));
}

#[test]
fn monitor_legs_rejected_calls_and_calls_outside_the_period_do_not_count() {
    let mut monitor = answered(
        call("m", "2026-11-02T09:00:00+08:00", "2001", Some("q")),
        "1001",
        0,
        50_000,
        0,
    );
    monitor.disposition = Disposition::Monitor;
    let mut rejected = call("r", "2026-11-02T09:00:00+08:00", "5", Some("q"));
    rejected.disposition = Disposition::Rejected;
    let recs = [
        monitor,
        rejected,
        call("ivr", "2026-11-02T09:00:00+08:00", "6", None),
        call("late", "2026-11-03T00:00:00+08:00", "7", Some("q")),
        call("in", "2026-11-02T23:59:59+08:00", "8", Some("q")),
    ];
    let k = run(&recs, &[], None);
    assert_eq!(k.total.offered, 1);
    assert_eq!(k.total.overflowed, 1);
    assert!(k.agents.is_empty(), "{:?}", k.agents);
    assert_eq!(k.hour(23).map(|f| f.offered), Some(1));
    assert_eq!(k.day("2026-11-02").map(|f| f.offered), Some(1));
    assert_eq!(k.total.answer_rate(), Some(0.0));
    assert_eq!(k.total.asa_ms(), None);
}

#[test]
fn a_repeat_call_within_the_window_any_line_makes_a_call_unresolved() {
    let a = |id, at, caller| answered(call(id, at, caller, Some("q")), "1001", 1_000, 1_000, 0);
    let recs = [
        a("x1", "2026-11-02T09:00:00+08:00", "139"),
        // The same number three days later to the minute: still a repeat,
        // through the IVR only.
        call("x2", "2026-11-05T09:00:00+08:00", "139", None),
        a("y1", "2026-11-02T10:00:00+08:00", "137"),
        call("y2", "2026-11-05T10:00:01+08:00", "137", None),
        a("z1", "2026-11-02T11:00:00+08:00", "anonymous"),
        a("z2", "2026-11-02T11:05:00+08:00", ""),
    ];
    let k = run(&recs, &[], None);
    assert_eq!(k.total.fcr_calls, 2);
    assert_eq!(k.total.fcr_resolved, 1);
    assert_eq!(k.total.fcr(), Some(1.0 / 2.0));
    assert!(anonymous_caller(" Unknown ") && anonymous_caller("0000"));
    assert!(!anonymous_caller("13800138000"));
}

#[test]
fn staffed_time_starts_from_the_state_before_and_is_clipped() {
    let events = [
        // 1001: logged in the evening before, out at 02:00, in 09:00,
        // paused 12:00-13:00, still in at the end.
        ev("1001", "login", "2026-11-01T22:00:00+08:00"),
        ev("1001", "logout", "2026-11-02T02:00:00+08:00"),
        ev("1001", "login", "2026-11-02T09:00:00+08:00"),
        ev("1001", "pause", "2026-11-02T12:00:00+08:00"),
        ev("1001", "unpause", "2026-11-02T13:00:00+08:00"),
        ev("1001", "login", "2026-11-02T14:00:00+08:00"),
        // 1002: no event before; the first says it was paused.
        ev("1002", "unpause", "2026-11-02T08:00:00+08:00"),
        ev("1002", "logout", "2026-11-02T10:00:00+08:00"),
        // 1003: logged out before, nothing in the period.
        ev("1003", "logout", "2026-11-01T22:00:00+08:00"),
    ];
    let k = run(&[], &events, None);
    let h = 3_600_000;
    let a = k.agent("1001").unwrap();
    assert_eq!(a.staffed_ms, 2 * h + 3 * h + 11 * h);
    assert_eq!(a.paused_ms, h);
    let b = k.agent("1002").unwrap();
    assert_eq!((b.staffed_ms, b.paused_ms), (2 * h, 8 * h));
    assert!(k.agent("1003").is_none());
    assert_eq!(k.total.staffed_ms, 18 * h);
    // Not past now.
    let k = compute(
        &KpiInput {
            from: t(FROM),
            to: t(TO),
            now: t("2026-11-02T10:00:00+08:00"),
            records: &[],
            agent_events: &events,
            queue: None,
        },
        &KpiSettings::default(),
    );
    assert_eq!(k.agent("1001").unwrap().staffed_ms, 2 * h + h);
}

#[test]
fn a_queue_filter_keeps_its_calls_but_occupancy_counts_every_queue() {
    let recs = [
        answered(
            call("a", "2026-11-02T09:00:00+08:00", "1", Some("q1")),
            "1001",
            1_000,
            60_000,
            30_000,
        ),
        answered(
            call("b", "2026-11-02T09:10:00+08:00", "2", Some("q2")),
            "1001",
            1_000,
            100_000,
            20_000,
        ),
    ];
    let events = [
        ev("1001", "login", "2026-11-02T09:00:00+08:00"),
        ev("1001", "logout", "2026-11-02T10:00:00+08:00"),
    ];
    let k = run(&recs, &events, Some("q1"));
    assert_eq!(k.total.offered, 1);
    assert_eq!(k.queues.len(), 1);
    assert_eq!(k.all_queues, ["q1", "q2"]);
    let a = k.agent("1001").unwrap();
    assert_eq!(a.answered, 1);
    assert_eq!(a.aht_ms(), Some(90_000.0));
    assert_eq!(a.occupancy(), Some(210_000.0 / 3_600_000.0));
    assert_eq!(k.total.occupancy(), Some(210_000.0 / 3_600_000.0));
}

#[test]
fn periods_are_local_days_with_the_last_included() {
    let tz = chrono_tz::Asia::Shanghai;
    let (f, to) = day_period("2026-11-02", "2026-11-03", tz, "--").unwrap();
    assert_eq!(f, t("2026-11-02T00:00:00+08:00"));
    assert_eq!(to, t("2026-11-04T00:00:00+08:00"));
    assert_eq!(
        day_period("2026-11-31", "2026-12-01", tz, "--").unwrap_err(),
        "--from \"2026-11-31\" is not a date (YYYY-MM-DD)"
    );
    assert!(day_period("2026-11-04", "2026-11-03", tz, "")
        .unwrap_err()
        .contains("from (2026-11-04) must be on or before to (2026-11-03)"));
    assert!(day_period("2025-01-01", "2026-11-03", tz, "").is_err());
}

#[test]
fn renders_round_once_and_csv_is_defused() {
    let recs = [
        answered(
            call("a", "2026-11-02T09:00:00+08:00", "1", Some("=q")),
            "1001",
            10_000,
            60_000,
            30_000,
        ),
        abandoned(
            call("b", "2026-11-02T09:10:00+08:00", "2", Some("=q")),
            20_000,
        ),
        abandoned(
            call("c", "2026-11-02T09:20:00+08:00", "3", Some("=q")),
            20_000,
        ),
    ];
    let k = run(&recs, &[], None);
    let csv = k.csv();
    assert!(csv.starts_with("group,key,offered,answered,answer_rate,"));
    assert!(
        csv.contains(
            "\nqueue,'=q,3,1,0.3333,0.3333,10.0,2,0,0.6667,0,90.0,30.0,0,0,,0,,,1,1,1.0000\n"
        ),
        "{csv}"
    );
    let text = k.text();
    assert!(text.contains("33.3%") && text.contains("66.7%"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("09:00 ")), "{text}");
    let j = k.json();
    assert_eq!(j["total"]["answer_rate"], serde_json::json!(1.0 / 3.0));
    assert_eq!(j["queues"][0]["key"], "=q");
    assert_eq!(j["total"]["satisfaction"], serde_json::Value::Null);
}

#[test]
fn report_config_checks_each_key() {
    let c = ReportConfig {
        timezone: Some("Nowhere/City".into()),
        service_level_secs: 0,
        short_abandon_secs: 500,
        repeat_days: 0,
    };
    let keys: Vec<String> = c
        .validate()
        .unwrap_err()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys,
        [
            "timezone",
            "service_level_secs",
            "short_abandon_secs",
            "repeat_days"
        ]
    );
    assert!(ReportConfig::default().validate().is_ok());
    let s = ReportConfig {
        timezone: Some("Asia/Urumqi".into()),
        ..Default::default()
    }
    .settings(chrono_tz::Asia::Shanghai);
    assert_eq!(s.tz, chrono_tz::Asia::Urumqi);
}
