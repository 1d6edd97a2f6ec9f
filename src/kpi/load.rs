//! Reading what [`super::compute`] needs from the store.

use chrono::{DateTime, Duration, Utc};

use super::{compute, KpiInput, KpiSettings, Kpis};
use crate::store::{Store, StoreError};

/// The KPIs of `from` .. `to` (optionally of one queue): the call records
/// of the period and of `repeat_days` after it (repeat calls), and the
/// agents' state events.
pub async fn load(
    store: &Store,
    settings: &KpiSettings,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    queue: Option<&str>,
) -> Result<Kpis, StoreError> {
    let until = to + Duration::days(i64::from(settings.repeat_days));
    let records = store.call_records_between(from, until).await?;
    let agent_events = store.agent_state_events(from, to).await?;
    Ok(compute(
        &KpiInput {
            from,
            to,
            now,
            records: &records,
            agent_events: &agent_events,
            queue,
        },
        settings,
    ))
}
