//! The center's working days, for the dispute window ("a team lead may
//! dispute a score within two working days").
//!
//! Monday to Friday are working days, except the `holidays`; the
//! `working_weekends` are Saturdays or Sundays worked instead (调休: China's
//! public holidays move working days onto weekends). Pure: time comes in as
//! an argument.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;

use super::QcConfigError;

/// `[qc.calendar]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// Days off that would be working days (`"2026-10-01"`).
    pub holidays: Vec<String>,
    /// Weekend days that are worked.
    pub working_weekends: Vec<String>,
}

/// The parsed calendar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkingDays {
    holidays: BTreeSet<NaiveDate>,
    working_weekends: BTreeSet<NaiveDate>,
}

fn parse_dates(key: &str, list: &[String], errors: &mut Vec<QcConfigError>) -> BTreeSet<NaiveDate> {
    let mut out = BTreeSet::new();
    for (i, d) in list.iter().enumerate() {
        match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(date) => {
                out.insert(date);
            }
            Err(_) => errors.push(QcConfigError {
                key: format!("{key}[{i}]"),
                message: format!("bad date {d:?} (expected \"YYYY-MM-DD\")"),
            }),
        }
    }
    out
}

impl WorkingDays {
    /// The calendar of `[qc.calendar]`; problems go to `errors` keyed
    /// below `qc.`.
    pub fn from_config(c: &CalendarConfig, errors: &mut Vec<QcConfigError>) -> WorkingDays {
        let holidays = parse_dates("calendar.holidays", &c.holidays, errors);
        let working_weekends =
            parse_dates("calendar.working_weekends", &c.working_weekends, errors);
        for (i, d) in c.working_weekends.iter().enumerate() {
            if let Ok(date) = NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                    errors.push(QcConfigError {
                        key: format!("calendar.working_weekends[{i}]"),
                        message: format!("{d} is a {}, not a weekend day", date.weekday()),
                    });
                }
                if holidays.contains(&date) {
                    errors.push(QcConfigError {
                        key: format!("calendar.working_weekends[{i}]"),
                        message: format!("{d} is also listed as a holiday"),
                    });
                }
            }
        }
        WorkingDays {
            holidays,
            working_weekends,
        }
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.working_weekends.contains(&d) {
            return true;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// The end (local midnight) of the `n`th working day after the local
    /// day of `from`: a score given on Friday with n = 2 may be disputed
    /// until Tuesday 24:00 (Wednesday if Monday is a holiday).
    pub fn deadline(&self, from: DateTime<Utc>, n: u32, tz: Tz) -> DateTime<Utc> {
        let mut day = from.with_timezone(&tz).date_naive();
        let mut left = n;
        // A year of holidays in a row is a misconfiguration: stop there.
        for _ in 0..366 {
            if left == 0 {
                break;
            }
            day = day + Days::new(1);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        super::local_midnight(day + Days::new(1), tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(holidays: &[&str], weekends: &[&str]) -> WorkingDays {
        let mut errors = Vec::new();
        let c = WorkingDays::from_config(
            &CalendarConfig {
                holidays: holidays.iter().map(|s| s.to_string()).collect(),
                working_weekends: weekends.iter().map(|s| s.to_string()).collect(),
            },
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        c
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const SH: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn two_working_days_skip_the_weekend() {
        // Friday 2026-12-04 15:00 Beijing → until Tuesday 2026-12-08 24:00.
        let d = cal(&[], &[]).deadline(at("2026-12-04T07:00:00Z"), 2, SH);
        assert_eq!(d, at("2026-12-08T16:00:00Z"));
        // Wednesday → Friday 24:00.
        let d = cal(&[], &[]).deadline(at("2026-12-02T01:00:00Z"), 2, SH);
        assert_eq!(d, at("2026-12-04T16:00:00Z"));
    }

    #[test]
    fn the_local_day_counts_not_the_utc_day() {
        // Thursday 2026-12-03 23:30 UTC is Friday 07:30 in Beijing.
        let d = cal(&[], &[]).deadline(at("2026-12-03T23:30:00Z"), 2, SH);
        assert_eq!(d, at("2026-12-08T16:00:00Z"));
    }

    #[test]
    fn holidays_are_skipped_and_working_weekends_count() {
        // National Day 2026: Oct 1-7 off; Sunday Sep 27 and Saturday Oct 10 worked.
        let c = cal(
            &[
                "2026-10-01",
                "2026-10-02",
                "2026-10-05",
                "2026-10-06",
                "2026-10-07",
            ],
            &["2026-09-27", "2026-10-10"],
        );
        // Scored Wednesday Sep 30 → Thursday Oct 8 and Friday Oct 9: until Oct 9 24:00.
        let d = c.deadline(at("2026-09-30T02:00:00Z"), 2, SH);
        assert_eq!(d, at("2026-10-09T16:00:00Z"));
        // Scored Saturday Sep 26 → Sunday Sep 27 (worked) and Monday Sep 28.
        let d = c.deadline(at("2026-09-26T02:00:00Z"), 2, SH);
        assert_eq!(d, at("2026-09-28T16:00:00Z"));
        assert!(c.is_working_day(NaiveDate::from_ymd_opt(2026, 10, 10).unwrap()));
        assert!(!c.is_working_day(NaiveDate::from_ymd_opt(2026, 10, 5).unwrap()));
    }

    #[test]
    fn bad_dates_are_reported_with_their_key() {
        let mut errors = Vec::new();
        WorkingDays::from_config(
            &CalendarConfig {
                holidays: vec!["2026-13-01".into(), "2026-10-10".into()],
                working_weekends: vec!["2026-10-09".into(), "2026-10-10".into()],
            },
            &mut errors,
        );
        let keys: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.key.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (
                    "calendar.holidays[0]",
                    "bad date \"2026-13-01\" (expected \"YYYY-MM-DD\")"
                ),
                (
                    "calendar.working_weekends[0]",
                    "2026-10-09 is a Fri, not a weekend day"
                ),
                (
                    "calendar.working_weekends[1]",
                    "2026-10-10 is also listed as a holiday"
                ),
            ]
        );
    }
}
