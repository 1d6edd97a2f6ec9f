//! Opening hours: a named calendar in a flow's `[calendars.NAME]` table,
//! answering "is the line open at this instant?" in the calendar's own time
//! zone, so a call at 23:30 UTC is judged by the Shanghai clock (07:30 the
//! next day), and a DST zone such as Europe/London follows its local clock.
//!
//! ```toml
//! [calendars.agents]
//! timezone = "Asia/Shanghai"
//! daily = ["08:00-20:00"]                    # or weekly = { mon = [...], ... }
//! holidays = ["2026-10-01"]                  # closed all day
//! dates = { "2026-09-27" = ["08:00-17:00"] } # one day's own hours (调休)
//! ```
//!
//! A range is `HH:MM-HH:MM`, end exclusive, `24:00` allowed as an end. A
//! range whose end is before its start runs across midnight (`22:00-06:00`):
//! the part after midnight belongs to the day the range starts on, so a
//! holiday closes its own evening and nothing of the next morning. The
//! calendar is pure: time comes in as an argument.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// A calendar as written in a flow file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDef {
    pub timezone: String,
    #[serde(default)]
    pub weekly: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    pub daily: Option<Vec<String>>,
    #[serde(default)]
    pub holidays: Vec<String>,
    #[serde(default)]
    pub dates: BTreeMap<String, Vec<String>>,
}

/// Why a calendar definition was refused. The `String` in each is the key
/// path inside the calendar (e.g. `weekly.mon[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("unknown time zone {0:?} (use an IANA name such as \"Asia/Shanghai\")")]
    BadTimezone(String),
    #[error("bad hours {0:?} (expected \"HH:MM-HH:MM\", e.g. \"08:00-12:00\")")]
    BadRange(String),
    #[error("unknown day {0:?} (expected mon, tue, wed, thu, fri, sat or sun)")]
    BadDay(String),
    #[error("bad date {0:?} (expected \"YYYY-MM-DD\")")]
    BadDate(String),
    #[error("give either `weekly` or `daily`, not both")]
    WeeklyAndDaily,
    #[error("give `weekly` or `daily` hours")]
    NoHours,
    #[error("date {0} is both a holiday and in `dates`")]
    HolidayAndDate(String),
}

/// One opening range in minutes after local midnight; `end < start` runs
/// across midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u32,
    end: u32,
}

impl Range {
    fn wraps(self) -> bool {
        self.end < self.start
    }
}

/// Opening hours in one time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    tz: Tz,
    /// Monday first.
    week: [Vec<Range>; 7],
    holidays: BTreeSet<NaiveDate>,
    dates: BTreeMap<NaiveDate, Vec<Range>>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Calendar {
    /// Checks and compiles a definition; returns every problem found, each
    /// with its key path inside the calendar.
    pub fn from_def(def: &CalendarDef) -> Result<Calendar, Vec<(String, HoursError)>> {
        let mut errors = Vec::new();
        let tz = match def.timezone.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push((
                    "timezone".to_owned(),
                    HoursError::BadTimezone(def.timezone.clone()),
                ));
                None
            }
        };
        let ranges = |key: &str, list: &[String], errors: &mut Vec<(String, HoursError)>| {
            let mut out = Vec::new();
            for (i, r) in list.iter().enumerate() {
                match parse_range(r) {
                    Some(range) => out.push(range),
                    None => errors.push((format!("{key}[{i}]"), HoursError::BadRange(r.clone()))),
                }
            }
            out
        };
        let mut week: [Vec<Range>; 7] = Default::default();
        match (&def.weekly, &def.daily) {
            (Some(_), Some(_)) => errors.push((String::new(), HoursError::WeeklyAndDaily)),
            (None, None) => errors.push((String::new(), HoursError::NoHours)),
            (None, Some(daily)) => {
                let r = ranges("daily", daily, &mut errors);
                for day in &mut week {
                    day.clone_from(&r);
                }
            }
            (Some(weekly), None) => {
                for (day, list) in weekly {
                    let key = format!("weekly.{day}");
                    let r = ranges(&key, list, &mut errors);
                    match DAYS.iter().position(|d| d == day) {
                        Some(i) => week[i] = r,
                        None => errors.push((key, HoursError::BadDay(day.clone()))),
                    }
                }
            }
        }
        let mut holidays = BTreeSet::new();
        for (i, h) in def.holidays.iter().enumerate() {
            match parse_date(h) {
                Some(d) => {
                    holidays.insert(d);
                }
                None => errors.push((format!("holidays[{i}]"), HoursError::BadDate(h.clone()))),
            }
        }
        let mut dates = BTreeMap::new();
        for (d, list) in &def.dates {
            let key = format!("dates.\"{d}\"");
            let r = ranges(&key, list, &mut errors);
            match parse_date(d) {
                Some(date) if holidays.contains(&date) => {
                    errors.push((key, HoursError::HolidayAndDate(d.clone())));
                }
                Some(date) => {
                    dates.insert(date, r);
                }
                None => errors.push((key, HoursError::BadDate(d.clone()))),
            }
        }
        match tz {
            Some(tz) if errors.is_empty() => Ok(Calendar {
                tz,
                week,
                holidays,
                dates,
            }),
            _ => Err(errors),
        }
    }

    /// The calendar's time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The ranges that start on local date `d`.
    fn ranges_on(&self, d: NaiveDate) -> &[Range] {
        if self.holidays.contains(&d) {
            return &[];
        }
        if let Some(r) = self.dates.get(&d) {
            return r;
        }
        &self.week[d.weekday().num_days_from_monday() as usize]
    }

    /// Whether the calendar is open at `at`, judged by the local clock of
    /// its time zone.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let date = local.date_naive();
        // Seconds are kept so 19:59:59 is still open before a 20:00 close.
        let t = local.num_seconds_from_midnight();
        let today = self.ranges_on(date).iter().any(|r| {
            if r.wraps() {
                t >= r.start * 60
            } else {
                t >= r.start * 60 && t < r.end * 60
            }
        });
        if today {
            return true;
        }
        if self.holidays.contains(&date) {
            return false;
        }
        date.pred_opt().is_some_and(|y| {
            self.ranges_on(y)
                .iter()
                .any(|r| r.wraps() && t < r.end * 60)
        })
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// `HH:MM` → minutes; `24:00` only when `end`.
fn parse_hhmm(s: &str, end: bool) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

fn parse_range(s: &str) -> Option<Range> {
    let (a, b) = s.split_once('-')?;
    let start = parse_hhmm(a, false)?;
    let end = parse_hhmm(b, true)?;
    // An empty range, or 24:00 as the end of a wrapping one, is a mistake.
    if start == end || (end == 24 * 60 && start > end) {
        return None;
    }
    Some(Range { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cal(toml_src: &str) -> Calendar {
        let def: CalendarDef = toml::from_str(toml_src).unwrap();
        Calendar::from_def(&def).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn shanghai_daily_is_judged_by_the_local_clock() {
        let c = cal(r#"timezone = "Asia/Shanghai"
daily = ["08:00-20:00"]"#);
        // 00:00 UTC = 08:00 CST: opens.
        assert!(c.is_open(utc(2026, 11, 23, 0, 0, 0)));
        // 23:59:59 UTC the day before = 07:59:59 CST: still closed.
        assert!(!c.is_open(utc(2026, 11, 22, 23, 59, 59)));
        // 11:59:59 UTC = 19:59:59 CST: open; 12:00 UTC = 20:00 CST: closed.
        assert!(c.is_open(utc(2026, 11, 23, 11, 59, 59)));
        assert!(!c.is_open(utc(2026, 11, 23, 12, 0, 0)));
        // No DST in China: the same in July.
        assert!(c.is_open(utc(2026, 7, 1, 0, 0, 0)));
        assert!(!c.is_open(utc(2026, 6, 30, 23, 59, 0)));
    }

    #[test]
    fn weekly_hours_lunch_break_and_weekend() {
        let c = cal(r#"timezone = "Asia/Shanghai"
weekly = { mon = ["08:00-12:00", "13:00-20:00"], sat = ["09:00-12:00"] }"#);
        // Monday 2026-11-23 local.
        let local = |d, h, m| {
            chrono_tz::Asia::Shanghai
                .with_ymd_and_hms(2026, 11, d, h, m, 0)
                .unwrap()
                .to_utc()
        };
        assert!(c.is_open(local(23, 11, 59)));
        assert!(!c.is_open(local(23, 12, 30)));
        assert!(c.is_open(local(23, 13, 0)));
        assert!(!c.is_open(local(24, 10, 0)), "Tuesday has no hours");
        assert!(c.is_open(local(28, 10, 0)), "Saturday morning");
        assert!(!c.is_open(local(29, 10, 0)), "Sunday");
    }

    #[test]
    fn ranges_across_midnight_and_holidays() {
        let c = cal(r#"timezone = "Asia/Shanghai"
daily = ["22:00-06:00"]
holidays = ["2026-10-01"]
dates = { "2026-10-08" = ["00:00-24:00"] }"#);
        let local = |mo, d, h, m| {
            chrono_tz::Asia::Shanghai
                .with_ymd_and_hms(2026, mo, d, h, m, 0)
                .unwrap()
                .to_utc()
        };
        assert!(c.is_open(local(9, 29, 23, 0)));
        assert!(
            c.is_open(local(9, 30, 5, 59)),
            "after midnight, from the 29th's range"
        );
        assert!(!c.is_open(local(9, 30, 6, 0)));
        // The holiday closes all day, even what spills over from the 30th.
        assert!(!c.is_open(local(10, 1, 5, 0)));
        assert!(!c.is_open(local(10, 1, 23, 0)));
        assert!(
            !c.is_open(local(10, 2, 3, 0)),
            "nothing spills from a holiday"
        );
        assert!(c.is_open(local(10, 2, 23, 0)));
        assert!(c.is_open(local(10, 8, 12, 0)), "special date: open all day");
    }

    #[test]
    fn london_follows_daylight_saving() {
        let c = cal(r#"timezone = "Europe/London"
daily = ["09:00-17:00"]"#);
        // Winter: GMT = UTC. 09:00 UTC opens.
        assert!(c.is_open(utc(2026, 1, 15, 9, 0, 0)));
        assert!(!c.is_open(utc(2026, 1, 15, 8, 59, 0)));
        // Summer: BST = UTC+1. 08:00 UTC is 09:00 local: open; 16:00 UTC is 17:00: closed.
        assert!(c.is_open(utc(2026, 7, 15, 8, 0, 0)));
        assert!(!c.is_open(utc(2026, 7, 15, 16, 0, 0)));
        assert!(c.is_open(utc(2026, 7, 15, 15, 59, 0)));
        // The change day (29 March 2026, clocks go forward at 01:00 UTC).
        assert!(c.is_open(utc(2026, 3, 29, 8, 0, 0)));
        assert!(!c.is_open(utc(2026, 3, 28, 8, 0, 0)));
    }

    #[test]
    fn holiday_closes_all_day() {
        let c = cal(r#"timezone = "Asia/Shanghai"
daily = ["00:00-24:00"]
holidays = ["2026-10-01"]"#);
        // 2026-09-30 16:00 UTC = 2026-10-01 00:00 CST.
        assert!(!c.is_open(utc(2026, 9, 30, 16, 0, 0)));
        assert!(c.is_open(utc(2026, 9, 30, 15, 59, 59)));
        assert!(!c.is_open(utc(2026, 10, 1, 15, 59, 59)));
        assert!(c.is_open(utc(2026, 10, 1, 16, 0, 0)));
    }

    #[test]
    fn bad_definitions_name_their_key() {
        let def: CalendarDef = toml::from_str(
            r#"timezone = "Asia/Shangai"
weekly = { mon = ["8-12", "08:00-12:00"], funday = ["09:00-10:00"] }
holidays = ["2026-13-01"]"#,
        )
        .unwrap();
        let errs = Calendar::from_def(&def).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["timezone", "weekly.funday", "weekly.mon[0]", "holidays[0]"],
            "{errs:?}"
        );
        assert!(matches!(errs[0].1, HoursError::BadTimezone(_)));
        for bad in [
            "08:00-08:00",
            "25:00-26:00",
            "08:60-09:00",
            "24:00-02:00",
            "08:00",
            "22:00-24:00x",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(
            parse_range("20:00-24:00"),
            Some(Range {
                start: 1200,
                end: 1440
            })
        );
        let both: CalendarDef = toml::from_str(
            r#"timezone = "UTC"
daily = []
weekly = {}"#,
        )
        .unwrap();
        assert_eq!(
            Calendar::from_def(&both).unwrap_err()[0].1,
            HoursError::WeeklyAndDaily
        );
    }
}
