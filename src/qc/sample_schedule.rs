//! The daemon's daily sampling run: at `[qc.sampling] schedule` (local
//! time) it samples the previous local day, source `scheduled`, actor
//! `system`. A run already stored for that day (source `scheduled`) is not
//! made again, so a restart never samples a day twice, nor do two daemons
//! on one database (the store saves one scheduled run per period); a daemon that was
//! down at the scheduled time samples, when it starts, the days missed
//! since its last scheduled run, up to [`CATCH_UP_DAYS`] (older ones are
//! left to `hotline qc sample`).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::sample_run::{day_period, run_sample, SampleRequest};
use super::sampling_rules::{SamplingConfig, SamplingPlan};
use crate::store::{SampleRunFilter, SampleSource, Store};

/// The wait between two looks at the clock at most (a changed wall clock
/// is noticed within it).
const MAX_SLEEP: StdDuration = StdDuration::from_secs(3600);

/// Today's scheduled time in local time, as UTC.
fn run_time_on(plan: &SamplingPlan, date: chrono::NaiveDate) -> DateTime<Utc> {
    let (midnight, _) = day_period(plan.tz, date);
    let naive = midnight.with_timezone(&plan.tz).naive_local()
        + Duration::minutes(i64::from(plan.schedule));
    plan.tz
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(midnight + Duration::minutes(i64::from(plan.schedule)))
}

/// The period of the most recent run whose time has come at `now`: the
/// day before the last scheduled time at or before `now`.
pub fn due_period(plan: &SamplingPlan, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&plan.tz).date_naive();
    let day = if now >= run_time_on(plan, today) {
        today - Duration::days(1)
    } else {
        today - Duration::days(2)
    };
    day_period(plan.tz, day)
}

/// The next scheduled time after `now`.
pub fn next_run(plan: &SamplingPlan, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&plan.tz).date_naive();
    let t = run_time_on(plan, today);
    if t > now {
        t
    } else {
        run_time_on(plan, today + Duration::days(1))
    }
}

/// At most this many days are sampled when the daemon catches up after
/// being down (the most recent ones).
pub const CATCH_UP_DAYS: i64 = 7;

/// Samples the due day, and the days missed since the last scheduled run
/// (at most [`CATCH_UP_DAYS`], oldest first), each unless a scheduled run
/// has it already; returns whether any ran. With no scheduled run ever,
/// only the due day.
pub async fn run_if_due(
    store: &Store,
    config: &SamplingConfig,
    plan: &SamplingPlan,
    now: DateTime<Utc>,
) -> Result<bool, super::sample_run::SampleError> {
    let (due_from, _) = due_period(plan, now);
    let due_day = due_from.with_timezone(&plan.tz).date_naive();
    let last = store
        .sample_runs(SampleRunFilter {
            source: Some(SampleSource::Scheduled),
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_iter()
        .next();
    let first_day = match &last {
        Some(r) => r
            .period_to
            .with_timezone(&plan.tz)
            .date_naive()
            .max(due_day - Duration::days(CATCH_UP_DAYS - 1)),
        None => due_day,
    };
    let mut ran = false;
    let mut day = first_day;
    while day <= due_day {
        ran |= sample_day(store, config, plan, day, now).await?;
        day += Duration::days(1);
    }
    if !ran {
        debug!(day = %due_day, "QC sample of the day already made");
    }
    Ok(ran)
}

/// Samples local day `day` unless a scheduled run has it.
async fn sample_day(
    store: &Store,
    config: &SamplingConfig,
    plan: &SamplingPlan,
    day: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> Result<bool, super::sample_run::SampleError> {
    let (from, to) = day_period(plan.tz, day);
    let done = store
        .sample_runs(SampleRunFilter {
            period: Some((from, to)),
            source: Some(SampleSource::Scheduled),
            limit: 1,
        })
        .await?;
    if !done.is_empty() {
        return Ok(false);
    }
    let out = match run_sample(
        store,
        config,
        &SampleRequest {
            from,
            to,
            seed: None,
            source: SampleSource::Scheduled,
            actor: "system".into(),
            save: true,
            now,
        },
    )
    .await
    {
        Ok(out) => out,
        Err(super::sample_run::SampleError::AlreadySampled) => {
            info!(from = %from, to = %to,
                "QC sample of the day made by another daemon on this database; not made again");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    info!(run = %out.run.id, from = %from, to = %to, seed = out.run.seed,
        recordings = out.recordings, picked = out.picks.len(), "QC sample made");
    Ok(true)
}

/// Runs the daily sample until `stop` (returns at once when sampling is
/// disabled or the section is invalid).
pub async fn run_scheduled(
    store: Store,
    config: SamplingConfig,
    clock: crate::call::WallClock,
    stop: CancellationToken,
) {
    let plan = match config.plan() {
        Ok(p) if p.enabled => p,
        Ok(_) => return,
        Err(e) => {
            warn!(
                errors = e.len(),
                "[qc.sampling] is invalid; no scheduled sampling"
            );
            return;
        }
    };
    info!(schedule = %config.schedule, timezone = %plan.tz, rules = plan.rules.len(),
        "QC sampling scheduled daily");
    loop {
        let now = clock.now();
        tokio::select! {
            _ = stop.cancelled() => return,
            r = run_if_due(&store, &config, &plan, now) => {
                if let Err(e) = r {
                    warn!(error = %e, "QC sampling run failed; trying again within the hour");
                }
            }
        }
        let now = clock.now();
        let wait = (next_run(&plan, now) - now)
            .to_std()
            .unwrap_or(StdDuration::from_secs(1))
            .clamp(StdDuration::from_secs(1), MAX_SLEEP);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SamplingPlan {
        SamplingConfig::default().plan().unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_due_day_is_yesterday_after_the_run_time() {
        let p = plan(); // 01:30 Asia/Shanghai
        let day = |d: &str| {
            (
                t(&format!("{d}T00:00:00+08:00")),
                t(&format!("{d}T00:00:00+08:00")) + Duration::days(1),
            )
        };
        assert_eq!(
            due_period(&p, t("2026-10-09T01:30:00+08:00")),
            day("2026-10-08")
        );
        assert_eq!(
            due_period(&p, t("2026-10-09T23:00:00+08:00")),
            day("2026-10-08")
        );
        assert_eq!(
            due_period(&p, t("2026-10-09T01:29:00+08:00")),
            day("2026-10-07")
        );
        assert_eq!(
            next_run(&p, t("2026-10-09T01:29:00+08:00")),
            t("2026-10-09T01:30:00+08:00")
        );
        assert_eq!(
            next_run(&p, t("2026-10-09T01:30:00+08:00")),
            t("2026-10-10T01:30:00+08:00")
        );
    }
}
