//! The timeline of a call for the QC call page (pure): what happened when,
//! from the call record (arrival, answer, IVR path, end), the queue event
//! log (entered the queue, agents rung, connected, transferred, completed)
//! and the marks of its recordings (holds, masks), each as an offset from
//! the call's arrival, in time order, with the figures a listener wants
//! beside the player (wait, talk, hold).

use chrono::{DateTime, Utc};

use crate::store::{CallRecord, QueueEventRow, RecordingMarkRow, RecordingRow};

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineItem {
    /// From the call's arrival.
    pub at_ms: i64,
    /// `arrival`, `ivr`, `answer`, `queue`, `offer`, `connect`, `hold`,
    /// `resume`, `mask`, `unmask`, `transfer`, `end`, …
    pub kind: String,
    pub text: String,
}

fn offset(record: &CallRecord, at: DateTime<Utc>) -> i64 {
    (at - record.arrived_at).num_milliseconds()
}

/// The timeline of `record`.
pub fn build(
    record: &CallRecord,
    events: &[QueueEventRow],
    recordings: &[(RecordingRow, Vec<RecordingMarkRow>)],
) -> Vec<TimelineItem> {
    let mut items = Vec::new();
    let mut push = |at_ms: i64, kind: &str, text: String| {
        items.push(TimelineItem {
            at_ms,
            kind: kind.to_string(),
            text,
        })
    };
    push(
        0,
        "arrival",
        format!("call from {} to {}", record.caller, record.dialed),
    );
    if let Some(a) = record.answered_at {
        push(offset(record, a), "answer", "answered by the IVR".into());
    }
    if !record.ivr_path.is_empty() {
        let at = record.answered_at.map_or(0, |a| offset(record, a));
        push(at, "ivr", format!("IVR: {}", record.ivr_path.join(" → ")));
    }
    for e in events {
        let at = offset(record, e.at);
        let who = e.agent.as_deref().unwrap_or("?");
        let text = match e.kind.as_str() {
            "enter" => format!(
                "entered queue {}{}",
                e.queue.as_deref().unwrap_or("?"),
                e.position
                    .map(|p| format!(" at position {p}"))
                    .unwrap_or_default()
            ),
            "offer" => format!("agent {who} rung"),
            "ring_no_answer" => format!("agent {who} did not answer"),
            "offer_cancelled" => format!("ringing agent {who} stopped"),
            "connect" => format!(
                "connected to agent {who}{}",
                e.wait_ms
                    .map(|w| format!(" after {} s in the queue", w / 1000))
                    .unwrap_or_default()
            ),
            "transfer" => format!(
                "transferred by {who}{}",
                e.reason
                    .as_deref()
                    .map(|r| format!(" to {r}"))
                    .unwrap_or_default()
            ),
            "complete" => format!("completed ({})", e.reason.as_deref().unwrap_or("hang-up")),
            "abandon" => "caller hung up in the queue".to_string(),
            "breakout" => format!(
                "left the queue: {}",
                e.reason.as_deref().unwrap_or("break-out")
            ),
            "timeout" => "left the queue: waited too long".to_string(),
            _ => continue,
        };
        push(at, &e.kind, text);
    }
    for (rec, marks) in recordings {
        let base = offset(record, rec.started_at);
        if rec.kind == crate::store::RecordingKind::Call {
            push(
                base,
                "recording",
                format!(
                    "recording {} starts (agent {})",
                    rec.segment + 1,
                    rec.agent.as_deref().unwrap_or("?")
                ),
            );
        }
        for m in marks {
            let by = m.detail.as_deref().unwrap_or("?");
            let text = match m.kind.as_str() {
                "hold" => format!("{by} put the call on hold"),
                "resume" => format!("{by} resumed the call"),
                "mask" => format!("recording masked by {by}"),
                "unmask" => format!("recording unmasked by {by}"),
                "monitor" => format!("live monitor: {by}"),
                "monitor_end" => format!("live monitor by {by} ended"),
                other => format!("{other} {by}"),
            };
            push(base + m.at_ms, &m.kind, text);
        }
    }
    push(
        offset(record, record.ended_at),
        "end",
        format!(
            "ended: {} hung up ({})",
            record.hangup_by.as_str(),
            record.hangup_reason
        ),
    );
    // Stable: items at the same moment keep the order they were made in.
    items.sort_by_key(|i| i.at_ms);
    items
}

/// The figures shown beside the timeline: (label, value).
pub fn figures(record: &CallRecord) -> Vec<(&'static str, String)> {
    let secs = |ms: Option<i64>| ms.map(|m| format!("{:.0} s", m as f64 / 1000.0));
    let mut out = vec![(
        "duration",
        format!("{:.0} s", record.duration_ms as f64 / 1000.0),
    )];
    let q = &record.acd;
    for (label, v) in [
        ("queue", record.queue.clone()),
        ("agent", q.agent.clone()),
        ("wait", secs(q.wait_ms)),
        ("talk", secs(q.talk_ms)),
        ("hold", secs(q.hold_ms)),
        ("wrap-up", secs(q.wrap_up_ms)),
        ("agents rung", q.offers.map(|o| o.to_string())),
        ("transferred to", q.transfer_target.clone()),
        ("survey score", q.survey_score.map(|s| format!("{s} / 5"))),
    ] {
        if let Some(v) = v {
            out.push((label, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Disposition, HangupBy, QueueOutcome, RecordingKind, RecordingStatus};
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 2, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn event(at: i64, kind: &str, agent: Option<&str>) -> QueueEventRow {
        QueueEventRow {
            uid: format!("{kind}{at}"),
            at: t(at),
            kind: kind.into(),
            queue: Some("12345".into()),
            call_id: Some("c1".into()),
            agent: agent.map(str::to_string),
            position: Some(1),
            wait_ms: Some(12_000),
            talk_ms: None,
            reason: None,
        }
    }

    #[test]
    fn a_queued_call_in_order_with_its_holds() {
        let record = CallRecord {
            call_id: "c1".into(),
            caller: "13800138000".into(),
            dialed: "12345".into(),
            arrived_at: t(0),
            answered_at: Some(t(1)),
            ended_at: t(100),
            duration_ms: 99_000,
            ivr_path: vec!["welcome".into(), "queue".into()],
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
                agent: Some("1001".into()),
                wait_ms: Some(12_000),
                talk_ms: Some(80_000),
                hold_ms: Some(10_000),
                ..Default::default()
            },
        };
        let rec = RecordingRow {
            id: "r".into(),
            call_id: "c1".into(),
            kind: RecordingKind::Call,
            segment: 0,
            agent: Some("1001".into()),
            queue: Some("12345".into()),
            caller: None,
            dialed: None,
            path: "recordings/x.wav".into(),
            channels: 2,
            started_at: t(20),
            ended_at: Some(t(100)),
            duration_ms: Some(80_000),
            size_bytes: None,
            sha256: None,
            masked_ms: 0,
            status: RecordingStatus::Complete,
            deleted_at: None,
        };
        let marks = vec![
            RecordingMarkRow {
                uid: "m1".into(),
                recording_id: "r".into(),
                at_ms: 30_000,
                kind: "hold".into(),
                detail: Some("agent".into()),
            },
            RecordingMarkRow {
                uid: "m2".into(),
                recording_id: "r".into(),
                at_ms: 40_000,
                kind: "resume".into(),
                detail: Some("agent".into()),
            },
        ];
        let events = [
            event(8, "enter", None),
            event(8, "offer", Some("1001")),
            event(20, "connect", Some("1001")),
            event(100, "complete", Some("1001")),
        ];
        let items = build(&record, &events, &[(rec, marks)]);
        let kinds: Vec<(i64, &str)> = items
            .iter()
            .map(|i| (i.at_ms / 1000, i.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, "arrival"),
                (1, "answer"),
                (1, "ivr"),
                (8, "enter"),
                (8, "offer"),
                (20, "connect"),
                (20, "recording"),
                (50, "hold"),
                (60, "resume"),
                (100, "complete"),
                (100, "end"),
            ]
        );
        assert_eq!(items[2].text, "IVR: welcome → queue");
        assert_eq!(
            items[5].text,
            "connected to agent 1001 after 12 s in the queue"
        );
        assert_eq!(items[7].text, "agent put the call on hold");
        let f = figures(&record);
        assert!(f.contains(&("hold", "10 s".to_string())));
        assert!(f.contains(&("agent", "1001".to_string())));
    }
}
