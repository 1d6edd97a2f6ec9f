//! One sampling run: gathers a period's recordings (and the history the
//! rules compare with) from the store, picks with [`super::sampling::pick`],
//! and saves the run, its picks and its audit entry together. Used by
//! `hotline qc sample` and by the daemon's daily run.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::sampling::{period_seed, pick, SampleInput};
use super::sampling_rules::{SamplingConfig, MAX_SEED};
use crate::store::{AuditRow, SamplePick, SampleRunRow, SampleSource, Store, StoreError};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("the [qc.sampling] configuration is invalid: {0}")]
    Config(String),
    #[error("{0}")]
    Period(#[from] PeriodError),
    #[error("seed {0} is too large (at most {MAX_SEED})")]
    Seed(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A scheduled run of the period is stored already (another daemon on
    /// the same database made it first): nothing was saved.
    #[error("a scheduled sample of this period is stored already (made by another daemon)")]
    AlreadySampled,
}

/// A period bound or a period that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("{0:?} is not a date or a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time)")]
    BadTime(String),
    #[error("{0} does not exist in time zone {1} (a clock change)")]
    NoSuchLocalTime(String, Tz),
    #[error(
        "the period is empty: --to must be after --from (from ≤ start < to; one day is \
         --from 2026-10-08 --to 2026-10-09)"
    )]
    Empty,
    #[error("the period is longer than 366 days")]
    TooLong,
}

/// `YYYY-MM-DD` (its midnight) or `YYYY-MM-DDTHH:MM` (also with a space),
/// local time in `tz`.
pub fn parse_local_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, PeriodError> {
    let s = s.trim();
    let bad = || PeriodError::BadTime(s.to_string());
    let naive = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).ok_or_else(bad)?
    } else {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
            .map_err(|_| bad())?
    };
    local_to_utc(naive, tz).ok_or_else(|| PeriodError::NoSuchLocalTime(s.to_string(), tz))
}

fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The local day `date` in `tz` (a day in a clock change is 23 or 25 h).
pub fn day_period(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        super::local_midnight(date, tz),
        super::local_midnight(date + Duration::days(1), tz),
    )
}

/// A period a run may cover.
pub fn check_period(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), PeriodError> {
    if to <= from {
        return Err(PeriodError::Empty);
    }
    if to - from > Duration::days(366) {
        return Err(PeriodError::TooLong);
    }
    Ok(())
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SampleRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Overrides the configured seed (and the period's own).
    pub seed: Option<u64>,
    pub source: SampleSource,
    /// Who asked: `cli` or `system` (the audit log's actor).
    pub actor: String,
    /// False: pick and report, but store nothing (a dry run).
    pub save: bool,
    pub now: DateTime<Utc>,
}

/// A pick with what a listener wants to see beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickedRecording {
    pub pick: SamplePick,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct SampleOutcome {
    pub run: SampleRunRow,
    pub picks: Vec<PickedRecording>,
    /// Recordings of the period looked at (any kind and status).
    pub recordings: usize,
    pub saved: bool,
}

/// Runs the rules of `config` over the request's period.
pub async fn run_sample(
    store: &Store,
    config: &SamplingConfig,
    req: &SampleRequest,
) -> Result<SampleOutcome, SampleError> {
    let plan = config.plan().map_err(|errs| {
        SampleError::Config(
            errs.iter()
                .map(|e| format!("qc.{}: {}", e.key, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    check_period(req.from, req.to)?;
    let seed = req
        .seed
        .or(plan.seed)
        .unwrap_or_else(|| period_seed(req.from, req.to));
    if seed > MAX_SEED {
        return Err(SampleError::Seed(seed));
    }
    let since = req.from - Duration::days(i64::from(plan.lookback_days()));
    let recordings = store.sample_candidates(since, req.to).await?;
    let contacts = store.caller_contacts(since, req.to).await?;
    let picks = pick(
        &plan,
        seed,
        &SampleInput {
            from: req.from,
            to: req.to,
            recordings: &recordings,
            contacts: &contacts,
        },
    );
    let rules = serde_json::to_string(config)
        .map_err(|e| SampleError::Config(format!("cannot write the rules as JSON: {e}")))?;
    let run = SampleRunRow {
        id: crate::store::new_uid(),
        period_from: req.from,
        period_to: req.to,
        seed,
        source: req.source,
        rules,
        picked: picks.len() as i64,
        created_at: req.now,
    };
    if req.save {
        let mut audit = AuditRow::now(
            &req.actor,
            "qc.sample",
            Some(format!("sample_run:{}", run.id)),
            Some(format!(
                "period {} to {} ({}), seed {seed}, {} picks by {} rules, source {}",
                run.period_from.with_timezone(&plan.tz).to_rfc3339(),
                run.period_to.with_timezone(&plan.tz).to_rfc3339(),
                plan.tz,
                picks.len(),
                plan.rules.len(),
                req.source.as_str()
            )),
        );
        audit.at = req.now;
        if !store.save_sample_run(&run, &picks, &audit).await? {
            return Err(SampleError::AlreadySampled);
        }
    }
    let in_period = recordings
        .iter()
        .filter(|r| r.started_at >= req.from && r.started_at < req.to)
        .count();
    let by_id: std::collections::HashMap<&str, &crate::store::SampleCandidate> = recordings
        .iter()
        .map(|r| (r.recording_id.as_str(), r))
        .collect();
    let picks = picks
        .into_iter()
        .filter_map(|p| {
            let r = by_id.get(p.recording_id.as_str())?;
            Some(PickedRecording {
                agent: r.agent.clone(),
                queue: r.queue.clone(),
                started_at: r.started_at,
                pick: p,
            })
        })
        .collect();
    Ok(SampleOutcome {
        run,
        picks,
        recordings: in_period,
        saved: req.save,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_and_periods() {
        let tz = chrono_tz::Asia::Shanghai;
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_local_time("2026-10-08", tz).unwrap(),
            t("2026-10-07T16:00:00Z")
        );
        assert_eq!(
            parse_local_time("2026-10-08T11:30", tz).unwrap(),
            t("2026-10-08T03:30:00Z")
        );
        assert_eq!(
            parse_local_time("2026-10-08 11:30", tz).unwrap(),
            t("2026-10-08T03:30:00Z")
        );
        for bad in ["2026-13-01", "2026-10-08T25:00", "yesterday", ""] {
            assert!(
                matches!(parse_local_time(bad, tz), Err(PeriodError::BadTime(_))),
                "{bad}"
            );
        }
        let day = NaiveDate::from_ymd_opt(2026, 10, 8).unwrap();
        let (from, to) = day_period(tz, day);
        assert_eq!(
            (from, to),
            (t("2026-10-07T16:00:00Z"), t("2026-10-08T16:00:00Z"))
        );
        assert_eq!(check_period(from, to), Ok(()));
        assert_eq!(check_period(to, from), Err(PeriodError::Empty));
        assert_eq!(check_period(from, from), Err(PeriodError::Empty));
        // A day with a clock change is 23 hours long.
        let london = chrono_tz::Europe::London;
        let (a, b) = day_period(london, NaiveDate::from_ymd_opt(2026, 3, 29).unwrap());
        assert_eq!(b - a, Duration::hours(23));
    }
}
