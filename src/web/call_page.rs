//! The call page of one recording: the player (seekable through `Range`),
//! the waveform with holds and masks shaded, the call's timeline and
//! figures, the scores given so far with their comments and disputes, and
//! the scorecard form. Also the posts it makes: a score, a dispute, a
//! settlement.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use tracing::info;

use super::html::{esc, page, url, with_page_headers};
use super::session::{form_field as field, Authed, Posted};
use super::{Permission, Role, WebError, WebState};
use crate::qc::scorecard::Answer;
use crate::qc::waveform::clock;
use crate::store::{
    DisputeRow, EventFilter, RecordingRow, RecordingStatus, ScoreCommentRow, ScoreFilter,
    ScoreItemRow, ScoreRow, ScoreStatus,
};

/// The recording `id`, if it exists, is not deleted and `authed` may hear
/// its agent; else 404 (a team lead cannot tell another team's recording
/// from a missing one).
async fn visible_recording(
    state: &WebState,
    authed: &Authed,
    id: &str,
) -> Result<RecordingRow, WebError> {
    authed.require(Permission::Listen)?;
    match state.store.recording(id).await? {
        Some(r) if r.deleted_at.is_none() && authed.sees_agent(&state.web, r.agent.as_deref()) => {
            Ok(r)
        }
        _ => Err(WebError::NotFound(format!("no recording {id:?}"))),
    }
}

/// Writes the audit entry before the action's answer goes out.
async fn audited(state: &WebState, row: crate::store::AuditRow) -> Result<(), WebError> {
    state
        .store
        .insert_audit(&[row])
        .await
        .map_err(WebError::from)
}

pub async fn audio(
    State(state): State<WebState>,
    authed: Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let rec = visible_recording(&state, &authed, &id).await?;
    // The player asks for the file from byte 0 once, then for parts as it
    // seeks: one audit entry per listen, not per seek.
    let range = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if range.is_empty() || range.trim() == "bytes=0-" {
        audited(
            &state,
            authed.audit(
                "listen",
                format!("recording:{id}"),
                Some(rec.call_id.clone()),
            ),
        )
        .await?;
        info!(user = %authed.user.name, recording = %id, "QC listen");
    }
    match crate::http::audio_file::serve_wav(&state.data_dir, &rec.path, &headers).await {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Ok(e.into_response()),
        None => Err(WebError::NotFound("the recording's file is missing".into())),
    }
}

pub async fn waveform(
    State(state): State<WebState>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let rec = visible_recording(&state, &authed, &id).await?;
    let file = crate::http::audio_file::resolve(&state.data_dir, &rec.path)
        .await
        .ok_or_else(|| WebError::NotFound("the recording's file is missing".into()))?;
    let marks = state.store.recording_marks(&id).await?;
    // A finished recording does not change: its peaks are read once (the
    // key holds its checksum). One still being written is read each time.
    let key = match (&rec.status, &rec.sha256) {
        (RecordingStatus::Complete, Some(sum)) => Some(format!("{id}:{sum}")),
        _ => None,
    };
    let cached = key.as_deref().and_then(|k| state.web.peaks.get(k));
    let peaks = match cached {
        Some(p) => p,
        None => {
            let p = tokio::task::spawn_blocking(move || {
                crate::qc::waveform::peaks(&file, crate::qc::waveform::COLUMNS)
            })
            .await
            .map_err(|_| WebError::Unavailable("drawing the waveform failed".into()))?
            .map_err(|e| WebError::Unavailable(format!("the recording cannot be read: {e}")))?;
            let p = std::sync::Arc::new(p);
            if let Some(k) = key {
                state.web.peaks.put(k, p.clone());
            }
            p
        }
    };
    let svg = crate::qc::waveform::svg(&peaks, &marks, &["caller 市民", "agent 坐席"]);
    Ok(with_page_headers(svg.into_response(), "image/svg+xml"))
}

/// `mm:ss` or `h:mm:ss` at the start of a comment line, as ms.
fn parse_moment(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    let nums: Option<Vec<i64>> = parts.iter().map(|p| p.parse().ok()).collect();
    let nums = nums?;
    if nums[1..].iter().any(|n| *n >= 60) {
        return None;
    }
    Some(nums.iter().fold(0, |acc, n| acc * 60 + n) * 1000)
}

/// The comment lines of the form: `01:23 no greeting` pins to 1 min 23 s.
fn parse_comments(text: &str) -> Result<Vec<ScoreCommentRow>, WebError> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.chars().count() > 500 {
            return Err(WebError::BadRequest(
                "a comment line may be at most 500 characters".into(),
            ));
        }
        let (first, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        out.push(match parse_moment(first) {
            Some(ms) => ScoreCommentRow {
                at_ms: Some(ms),
                text: rest.trim().to_string(),
            },
            None => ScoreCommentRow {
                at_ms: None,
                text: line.to_string(),
            },
        });
    }
    if out.len() > 50 {
        return Err(WebError::BadRequest("at most 50 comment lines".into()));
    }
    Ok(out)
}

pub async fn score(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Posted { authed, form }: Posted,
) -> Result<Response, WebError> {
    authed.require(Permission::Score)?;
    let rec = visible_recording(&state, &authed, &id).await?;
    let qc = &state.web.qc;
    let card = qc.current_scorecard().ok_or_else(|| {
        WebError::Conflict("no scorecard is configured ([[qc.scorecards]])".into())
    })?;
    let mut answers = BTreeMap::new();
    for (k, v) in &form {
        if let Some(item) = k.strip_prefix("item.") {
            let a = Answer::parse(v)
                .ok_or_else(|| WebError::BadRequest(format!("item {item:?}: answer {v:?}")))?;
            answers.insert(item.to_string(), a);
        }
    }
    let scored = card
        .score(&answers)
        .map_err(|e| WebError::BadRequest(format!("the score was not saved: {e}")))?;
    let comments = parse_comments(field(&form, "comments"))?;
    let now = Utc::now();
    let row = ScoreRow {
        id: crate::store::new_uid(),
        recording_id: rec.id.clone(),
        scorecard: card.name.clone(),
        scorecard_version: i64::from(card.version),
        scorer: authed.user.name.clone(),
        agent: rec.agent.clone(),
        queue: rec.queue.clone(),
        team: rec.agent.as_deref().and_then(|a| state.web.team_of(a)),
        total: scored.total,
        auto_failed: scored.auto_failed,
        status: ScoreStatus::Open,
        final_total: None,
        dispute_until: Some(state.web.working_days.deadline(
            now,
            qc.dispute_working_days,
            state.web.tz,
        )),
        created_at: now,
        items: scored
            .items
            .iter()
            .map(|i| ScoreItemRow {
                section: i.section.clone(),
                item: i.item.clone(),
                answer: i.answer.as_str().to_string(),
                weight: i.weight,
                points: i.points,
                auto_fail: i.auto_fail,
            })
            .collect(),
        comments,
        dispute: None,
    };
    state.store.save_score(&row).await?;
    audited(
        &state,
        authed.audit(
            "score",
            format!("score:{}", row.id),
            Some(format!(
                "recording {} total {:.1}{}",
                rec.id,
                row.total,
                if row.auto_failed { " auto-failed" } else { "" }
            )),
        ),
    )
    .await?;
    info!(user = %authed.user.name, recording = %rec.id, total = row.total, "QC score");
    Ok(to_score(&rec.id, &row.id))
}

/// The score `id` and its recording, if `authed` may see them.
async fn visible_score(
    state: &WebState,
    authed: &Authed,
    id: &str,
) -> Result<(ScoreRow, RecordingRow), WebError> {
    let score = state
        .store
        .scores(ScoreFilter {
            id: Some(id.to_string()),
            ..ScoreFilter::default()
        })
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| WebError::NotFound(format!("no score {id:?}")))?;
    let rec = visible_recording(state, authed, &score.recording_id).await?;
    Ok((score, rec))
}

/// A form posted about score `id`: `perm` required, the score and its
/// recording visible to the user.
async fn score_form(
    state: &WebState,
    authed: &Authed,
    id: &str,
    perm: Permission,
) -> Result<(ScoreRow, RecordingRow), WebError> {
    authed.require(perm)?;
    visible_score(state, authed, id).await
}

/// Back to the call page, at the score.
fn to_score(recording_id: &str, score_id: &str) -> Response {
    Redirect::to(&format!(
        "/qc/recordings/{}#score-{}",
        url(recording_id),
        url(score_id)
    ))
    .into_response()
}

pub async fn dispute(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Posted { authed, form }: Posted,
) -> Result<Response, WebError> {
    let (score, rec) = score_form(&state, &authed, &id, Permission::Dispute).await?;
    let reason = field(&form, "reason").trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(WebError::BadRequest(
            "give the dispute's reason (at most 1000 characters)".into(),
        ));
    }
    let now = Utc::now();
    let tz = state.web.tz;
    if score.status != ScoreStatus::Open {
        return Err(WebError::Conflict(format!(
            "this score is {} and cannot be disputed",
            score.status.as_str()
        )));
    }
    if let Some(until) = score.dispute_until.filter(|u| *u <= now) {
        return Err(WebError::Conflict(format!(
            "the dispute window closed at {}",
            until.with_timezone(&tz).format("%Y-%m-%d %H:%M")
        )));
    }
    let d = DisputeRow {
        id: crate::store::new_uid(),
        score_id: score.id.clone(),
        raised_by: authed.user.name.clone(),
        reason: reason.clone(),
        raised_at: now,
        settled_by: None,
        settled_at: None,
        outcome: None,
        revised_total: None,
        note: None,
    };
    if !state.store.raise_dispute(&d).await? {
        return Err(WebError::Conflict(
            "this score can no longer be disputed".into(),
        ));
    }
    audited(
        &state,
        authed.audit("dispute", format!("score:{}", score.id), Some(reason)),
    )
    .await?;
    info!(user = %authed.user.name, score = %score.id, "QC score disputed");
    Ok(to_score(&rec.id, &score.id))
}

pub async fn settle(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Posted { authed, form }: Posted,
) -> Result<Response, WebError> {
    let (score, rec) = score_form(&state, &authed, &id, Permission::Settle).await?;
    if score.scorer == authed.user.name {
        return Err(WebError::Forbidden(
            "a dispute is settled by a reviewer other than the scorer".into(),
        ));
    }
    let revised = match field(&form, "outcome") {
        "upheld" => None,
        "revised" => {
            let v: f64 = field(&form, "revised_total").trim().parse().map_err(|_| {
                WebError::BadRequest("a revised score needs the new total (0-100)".into())
            })?;
            if !(0.0..=100.0).contains(&v) {
                return Err(WebError::BadRequest(
                    "the new total must be 0 to 100".into(),
                ));
            }
            Some((v * 10.0).round() / 10.0)
        }
        other => {
            return Err(WebError::BadRequest(format!(
                "outcome {other:?}: choose upheld or revised"
            )))
        }
    };
    let note = field(&form, "note").trim().to_string();
    if note.chars().count() > 1000 {
        return Err(WebError::BadRequest(
            "the note may be at most 1000 characters".into(),
        ));
    }
    if !state
        .store
        .settle_dispute(&score.id, &authed.user.name, Utc::now(), revised, &note)
        .await?
    {
        return Err(WebError::Conflict("this score is not under dispute".into()));
    }
    let detail = match revised {
        Some(v) => format!("revised {:.1} → {v:.1}", score.total),
        None => format!("upheld {:.1}", score.total),
    };
    audited(
        &state,
        authed.audit("settle", format!("score:{}", score.id), Some(detail)),
    )
    .await?;
    Ok(to_score(&rec.id, &score.id))
}

fn score_html(
    s: &mut String,
    score: &ScoreRow,
    authed: &Authed,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<Utc>,
) {
    let total = match score.final_total {
        Some(f) if (f - score.total).abs() > f64::EPSILON => {
            format!("{:.1} (revised from {:.1})", f, score.total)
        }
        _ => format!("{:.1}", score.total),
    };
    let until = score
        .dispute_until
        .map(|u| u.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    let _ = write!(
        s,
        r#"<div class="score" id="score-{id}" data-status="{status}"><p><b>Score <span class="total">{total}</span></b>{af} · {status} · by {scorer} · {at} · scorecard {card} v{ver}{window}</p><ul>"#,
        id = esc(&score.id),
        af = if score.auto_failed {
            r#" <span class="autofail">auto-fail 一票否决</span>"#
        } else {
            ""
        },
        status = score.status.as_str(),
        scorer = esc(&score.scorer),
        at = score.created_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        card = esc(&score.scorecard),
        ver = score.scorecard_version,
        window = if score.status == ScoreStatus::Open {
            format!(" · may be disputed until {until}")
        } else {
            String::new()
        },
    );
    for i in score.items.iter().filter(|i| i.answer != "yes") {
        let _ = write!(
            s,
            "<li>{} / {}: {} ({:.0} of {:.0})</li>",
            esc(&i.section),
            esc(&i.item),
            esc(&i.answer),
            i.points,
            i.weight
        );
    }
    s.push_str("</ul>");
    if !score.comments.is_empty() {
        s.push_str(r#"<ul class="comments">"#);
        for c in &score.comments {
            match c.at_ms {
                Some(ms) => {
                    let _ = write!(
                        s,
                        r#"<li><span class="at" data-at-ms="{ms}">{}</span> {}</li>"#,
                        clock(ms.max(0) as u64),
                        esc(&c.text)
                    );
                }
                None => {
                    let _ = write!(s, "<li>{}</li>", esc(&c.text));
                }
            }
        }
        s.push_str("</ul>");
    }
    if let Some(d) = &score.dispute {
        let _ = write!(
            s,
            r#"<p class="dispute">Disputed by {} at {}: {}</p>"#,
            esc(&d.raised_by),
            d.raised_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            esc(&d.reason)
        );
        if let (Some(by), Some(outcome)) = (&d.settled_by, &d.outcome) {
            let _ = write!(
                s,
                r#"<p class="settled">Settled by {}: {}{}</p>"#,
                esc(by),
                esc(outcome),
                d.note
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| format!(" — {}", esc(n)))
                    .unwrap_or_default()
            );
        }
    }
    let csrf = esc(&authed.session.csrf);
    let open = score.status == ScoreStatus::Open && score.dispute_until.is_none_or(|u| u > now);
    if authed.role.allows(Permission::Dispute) && open {
        let _ = write!(
            s,
            r#"<form method="post" action="/qc/scores/{id}/dispute" class="dispute-form"><input type="hidden" name="csrf" value="{csrf}"><label>Dispute 申诉 <input name="reason" id="dispute-reason" size="50" required></label> <button type="submit" id="dispute">Dispute</button></form>"#,
            id = url(&score.id)
        );
    }
    if authed.role.allows(Permission::Settle)
        && score.status == ScoreStatus::Disputed
        && score.scorer != authed.user.name
    {
        let _ = write!(
            s,
            r#"<form method="post" action="/qc/scores/{id}/settle" class="settle-form"><input type="hidden" name="csrf" value="{csrf}"><label><input type="radio" name="outcome" value="upheld" checked> uphold 维持</label> <label><input type="radio" name="outcome" value="revised"> revise to 改为 <input name="revised_total" size="5"></label> <label>Note <input name="note" size="30"></label> <button type="submit" id="settle">Settle</button></form>"#,
            id = url(&score.id)
        );
    }
    s.push_str("</div>");
}

fn scorecard_form(s: &mut String, card: &crate::qc::Scorecard, rec_id: &str, csrf: &str) {
    let _ = write!(
        s,
        r#"<form method="post" action="/qc/recordings/{id}/scores" id="scorecard"><input type="hidden" name="csrf" value="{csrf}"><p>Scorecard {name} v{ver} {title}</p>"#,
        id = url(rec_id),
        csrf = esc(csrf),
        name = esc(&card.name),
        ver = card.version,
        title = esc(&card.title)
    );
    for section in &card.sections {
        let _ = write!(s, "<fieldset><legend>{}</legend>", esc(&section.name));
        for item in &section.items {
            let key = esc(&item.key);
            let _ = write!(
                s,
                r#"<div class="item"><span class="text">{text}{af} <small>({w})</small></span> <label><input type="radio" name="item.{key}" value="yes" checked> yes</label> <label><input type="radio" name="item.{key}" value="no"> no</label>"#,
                text = esc(&item.text),
                af = if item.auto_fail {
                    r#" <span class="autofail">auto-fail</span>"#
                } else {
                    ""
                },
                w = item.weight,
            );
            if item.allow_na {
                let _ = write!(
                    s,
                    r#" <label><input type="radio" name="item.{key}" value="na"> N/A</label>"#
                );
            }
            s.push_str("</div>");
        }
        s.push_str("</fieldset>");
    }
    s.push_str(
        r#"<label>Comments 评语 (one per line; "01:23 text" pins it to that moment)<br><textarea name="comments" id="comments" rows="4" cols="60"></textarea></label> <button id="pin" hidden>Pin the current time</button><br><button type="submit" id="submit-score">Submit score 提交评分</button></form>"#,
    );
}

pub async fn call_page(
    State(state): State<WebState>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let rec = visible_recording(&state, &authed, &id).await?;
    let store = &state.store;
    let web = &state.web;
    let tz = web.tz;
    let now = Utc::now();
    store.finalize_scores(now).await?;
    let marks = store.recording_marks(&id).await?;
    let record = store.call_record(&rec.call_id).await?;
    let events = store
        .queue_events(EventFilter {
            call_id: Some(rec.call_id.clone()),
            ..EventFilter::default()
        })
        .await?;
    let scores = store
        .scores(ScoreFilter {
            recording_id: Some(id.clone()),
            ..ScoreFilter::default()
        })
        .await?;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<p id="meta">Agent 坐席 <b>{agent}</b> · queue {queue} · caller {caller} · {at} · {len}{masked}</p>
<audio id="player" controls preload="metadata" src="/qc/recordings/{uid}/audio"></audio>
<p class="wave"><img id="waveform" src="/qc/recordings/{uid}/waveform.svg" alt="waveform of the recording" width="800"></p>
<div class="cols"><section><h2>Timeline 通话过程</h2>"#,
        agent = esc(&web.agent_label(rec.agent.as_deref())),
        queue = esc(rec.queue.as_deref().unwrap_or("—")),
        caller = esc(rec.caller.as_deref().unwrap_or("—")),
        at = rec
            .started_at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S"),
        len = rec
            .duration_ms
            .map(|ms| clock(ms.max(0) as u64))
            .unwrap_or_else(|| "recording…".into()),
        masked = if rec.masked_ms > 0 {
            format!(" · {} masked", clock(rec.masked_ms.max(0) as u64))
        } else {
            String::new()
        },
        uid = url(&id),
    );
    match &record {
        Some(record) => {
            let offset = (rec.started_at - record.arrived_at).num_milliseconds();
            s.push_str(r#"<table class="timeline" id="timeline"><tbody>"#);
            for item in
                crate::qc::call_timeline::build(record, &events, &[(rec.clone(), marks.clone())])
            {
                let into_rec = item.at_ms - offset;
                let seek = if into_rec >= 0 {
                    format!(r#" data-at-ms="{into_rec}""#)
                } else {
                    String::new()
                };
                let _ = write!(
                    s,
                    r#"<tr class="{kind}"><td class="at"{seek}>{at}</td><td>{text}</td></tr>"#,
                    kind = esc(&item.kind),
                    at = clock(item.at_ms.max(0) as u64),
                    text = esc(&item.text)
                );
            }
            s.push_str("</tbody></table><table class=\"figures\"><tbody>");
            for (label, value) in crate::qc::call_timeline::figures(record) {
                let _ = write!(s, "<tr><th>{label}</th><td>{}</td></tr>", esc(&value));
            }
            s.push_str("</tbody></table>");
        }
        None => {
            s.push_str("<p>The call's record is not written yet (the call may still be up).</p>")
        }
    }
    s.push_str("</section><section><h2>Scores 评分</h2>");
    if scores.is_empty() {
        s.push_str(r#"<p id="no-scores">Not scored yet.</p>"#);
    }
    for score in &scores {
        score_html(&mut s, score, &authed, tz, now);
    }
    if authed.role.allows(Permission::Score) {
        match web.qc.current_scorecard() {
            Some(card) => scorecard_form(&mut s, card, &id, &authed.session.csrf),
            None => s.push_str("<p>No scorecard is configured ([[qc.scorecards]]).</p>"),
        }
    } else if authed.role == Role::TeamLead {
        s.push_str("<p>Team leads may dispute a score of their team within the window.</p>");
    }
    s.push_str("</section></div>");
    Ok(page(
        &format!("Recording 录音 {}", rec.call_id),
        Some(&authed.viewer()),
        &s,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_lines_pin_to_moments() {
        let c =
            parse_comments("01:23 no greeting\n\n  general remark \n1:02:03 late close").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].at_ms, Some(83_000));
        assert_eq!(c[0].text, "no greeting");
        assert_eq!(c[1].at_ms, None);
        assert_eq!(c[1].text, "general remark");
        assert_eq!(c[2].at_ms, Some(3_723_000));
        assert_eq!(parse_moment("1:75"), None);
        assert_eq!(parse_moment("12"), None);
        assert_eq!(parse_moment("a:10"), None);
        assert!(parse_comments(&"x".repeat(501)).is_err());
    }
}
