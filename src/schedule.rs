//! Cart schedules: `every <N>s|m|h|d` or a 5-field cron expression
//! (minute hour day-of-month month day-of-week), evaluated in the cart's
//! time zone.
//!
//! Cron semantics, matching Vixie cron / cronie:
//! - `*`, lists `1,2`, ranges `1-5`, steps `*/15`, `10-50/10`; `5/15` means
//!   `5-<max>/15`. Month names JAN-DEC and weekday names SUN-SAT,
//!   case-insensitive; weekday 0 and 7 are both Sunday (so `FRI-SUN` works).
//! - When both day-of-month and day-of-week are restricted, a day matches if
//!   either matches. A field that starts with `*` (including `*/2`) counts as
//!   unrestricted for this rule, as in Vixie cron.
//! - Daylight saving: a local time skipped by spring-forward never fires. A
//!   local time repeated by fall-back fires once, at its first occurrence —
//!   except when the hour field starts with `*` (hourly-style schedules such
//!   as `*/15 * * * *`), which keep firing through the repeated hour, as
//!   cronie does for wildcard jobs.

use std::fmt;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, Duration as TimeDelta, FixedOffset, MappedLocalTime, NaiveDate,
    NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// How far ahead `next_after` looks before deciding a cron never fires.
const SEARCH_YEARS: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty schedule")]
    Empty,
    #[error(
        "invalid interval \"{0}\": expected \"every <N>s|m|h|d\" with N a positive whole number"
    )]
    Every(String),
    #[error(
        "cron expression \"{expr}\" has {found} fields, expected 5 (minute hour day-of-month month day-of-week)"
    )]
    FieldCount { expr: String, found: usize },
    #[error("cron {field} field: invalid value \"{value}\": {reason}")]
    Field {
        field: &'static str,
        value: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Every(Duration),
    Cron(CronExpr),
}

/// A parsed 5-field cron expression, as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    minutes: u64, // bits 0-59
    hours: u32,   // bits 0-23
    days: u32,    // bits 1-31
    months: u16,  // bits 1-12
    weekdays: u8, // bits 0-6, 0 = Sunday
    day_star: bool,
    weekday_star: bool,
    hour_star: bool,
    source: String,
}

/// Parses a cart `schedule` value.
pub fn parse(s: &str) -> Result<Schedule, ScheduleError> {
    Schedule::parse(s)
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, ScheduleError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let lower = s.to_ascii_lowercase();
        match lower.strip_prefix("every") {
            Some(rest) => parse_every(rest)
                .map(Schedule::Every)
                .ok_or_else(|| ScheduleError::Every(s.to_owned())),
            None => CronExpr::parse(s).map(Schedule::Cron),
        }
    }

    /// The first time after `after` this schedule fires: `after + interval`
    /// for `Every`; for `Cron` the first matching minute strictly after
    /// `after`, in `tz` local time. `None` when nothing matches within five
    /// years (e.g. February 30) or the time is out of range.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => after.checked_add_signed(TimeDelta::from_std(*d).ok()?),
            Schedule::Cron(c) => c.next_after(after, tz),
        }
    }

    /// When a cart last attempted at `last_attempt` is next due. Never
    /// attempted: due at `now`. The result may be at or before `now`,
    /// meaning due now (a missed slot runs once, not once per missed slot).
    /// A last attempt whose next slot lies beyond the slot after `now` (more
    /// than one period ahead: the clock was ahead then and came back) is
    /// re-based on the current clock: due now, not a day later (once it has
    /// run, its attempt is at the current clock again; see
    /// [`Schedule::clock_went_back`]).
    pub fn next_due(
        &self,
        last_attempt: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        match last_attempt {
            None => Some(now),
            Some(last) => {
                let next = self.next_after(last, tz);
                match self.next_after(now, tz) {
                    Some(rebased) if next.is_none_or(|n| n > rebased) => Some(now),
                    _ => next,
                }
            }
        }
    }

    /// Whether `last_attempt` lies so far ahead of `now` that
    /// [`Schedule::next_due`] re-bases it (callers log a warning).
    pub fn clock_went_back(
        &self,
        last_attempt: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> bool {
        last_attempt.is_some_and(|last| {
            let rebased = self.next_after(now, tz);
            rebased.is_some() && self.next_after(last, tz).is_none_or(|n| Some(n) > rebased)
        })
    }

    /// Whether a sync should run at `now`.
    pub fn due(&self, last_attempt: Option<DateTime<Utc>>, now: DateTime<Utc>, tz: Tz) -> bool {
        self.next_due(last_attempt, now, tz)
            .is_some_and(|t| t <= now)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => {
                let s = d.as_secs();
                match s {
                    _ if s % 86_400 == 0 => write!(f, "every {}d", s / 86_400),
                    _ if s % 3_600 == 0 => write!(f, "every {}h", s / 3_600),
                    _ if s % 60 == 0 => write!(f, "every {}m", s / 60),
                    _ => write!(f, "every {s}s"),
                }
            }
            Schedule::Cron(c) => f.write_str(&c.source),
        }
    }
}

/// `rest` is what follows "every": `" 15m"`, `"15 m"`, ...
fn parse_every(rest: &str) -> Option<Duration> {
    // Require a separator so "everyday" is not read as an interval.
    let rest = rest.strip_prefix(char::is_whitespace)?.trim();
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let n: u64 = rest[..digits].parse().ok().filter(|&n| n > 0)?;
    let unit = match rest[digits..].trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
// 7 is accepted as Sunday and folded onto 0 after parsing.
const WEEKDAY: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl FieldSpec {
    fn err(&self, value: &str, reason: impl Into<String>) -> ScheduleError {
        ScheduleError::Field {
            field: self.name,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn value(&self, token: &str, item: &str) -> Result<u32, ScheduleError> {
        if let Some(i) = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(token))
        {
            return Ok(i as u32 + self.min);
        }
        let n: u32 = token
            .parse()
            .ok()
            .filter(|_| token.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                self.err(
                    item,
                    format!("\"{token}\" is not a number{}", self.name_hint()),
                )
            })?;
        if n < self.min || n > self.max {
            return Err(self.err(
                item,
                format!("{n} is out of range {}-{}", self.min, self.max),
            ));
        }
        Ok(n)
    }

    fn name_hint(&self) -> &'static str {
        match self.names.len() {
            12 => " or month name",
            7 => " or weekday name",
            _ => "",
        }
    }

    /// Parses one field into a bit set (bit n = value n).
    fn parse(&self, field: &str) -> Result<u64, ScheduleError> {
        let mut bits = 0u64;
        for item in field.split(',') {
            if item.is_empty() {
                return Err(self.err(field, "empty list item"));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .ok()
                        .filter(|&n| n > 0 && s.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| {
                            self.err(item, format!("step \"{s}\" is not a positive number"))
                        })?;
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, mut b) = (self.value(a, item)?, self.value(b, item)?);
                if self.max == 7 && b == 0 {
                    b = 7; // "FRI-SUN": Sunday as a range end is day 7
                }
                if a > b {
                    return Err(self.err(item, format!("range start {a} is after its end {b}")));
                }
                (a, b)
            } else {
                let a = self.value(range, item)?;
                // "a/n" means "a-max/n".
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1) as usize;
            for v in (lo..=hi).step_by(step) {
                bits |= 1 << v;
            }
        }
        Ok(bits)
    }
}

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, ScheduleError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::FieldCount {
                expr: expr.trim().to_owned(),
                found: fields.len(),
            });
        }
        let mut weekdays = WEEKDAY.parse(fields[4])?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(CronExpr {
            minutes: MINUTE.parse(fields[0])?,
            hours: HOUR.parse(fields[1])? as u32,
            days: DAY.parse(fields[2])? as u32,
            months: MONTH.parse(fields[3])? as u16,
            weekdays: weekdays as u8,
            hour_star: fields[1].starts_with('*'),
            day_star: fields[2].starts_with('*'),
            weekday_star: fields[4].starts_with('*'),
            source: fields.join(" "),
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.day_star || self.weekday_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// First local wall-clock minute `>= from` (seconds ignored) that
    /// matches, searching days before `until`. Skips whole months, days and
    /// hours that cannot match.
    fn next_local(&self, from: NaiveDateTime, until: NaiveDate) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let (mut hour, mut minute) = (from.hour(), from.minute());
        loop {
            if date >= until {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                // First day of the next month.
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                date = NaiveDate::from_ymd_opt(y, m, 1)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            }
            match next_bit(u64::from(self.hours), hour) {
                None => {
                    date = date.succ_opt()?;
                    (hour, minute) = (0, 0);
                    continue;
                }
                Some(h) if h != hour => (hour, minute) = (h, 0),
                Some(_) => {}
            }
            match next_bit(self.minutes, minute) {
                Some(m) => return date.and_hms_opt(hour, m, 0),
                None => (hour, minute) = (hour + 1, 0), // 24 is caught by next_bit next time
            }
        }
    }

    /// First UTC minute strictly after `after` whose local time in `tz`
    /// matches. Searches in spans of constant UTC offset, where local time is
    /// a plain shift of UTC; on meeting an offset change it moves to the
    /// change and searches again.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let after = after.naive_utc();
        let mut t = after.with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
        let until_utc = t + TimeDelta::days(366 * SEARCH_YEARS);
        while t < until_utc {
            let off = offset_at(tz, t);
            let local = t + off;
            // Search at most a week of local time per step, so two offset
            // changes can never hide between `t` and the candidate.
            let window_end = (local + TimeDelta::days(7)).date();
            let Some(n) = self.next_local(local, window_end) else {
                // Nothing this week. Move to the window's end, or to an offset
                // change before it (a spring-forward there would otherwise
                // skip the first local hour after the window).
                let end = window_end.and_hms_opt(0, 0, 0)? - off;
                t = if offset_at(tz, end) == off {
                    end
                } else {
                    first_change(tz, t, end, off)
                };
                continue;
            };
            let x = n - off;
            if offset_at(tz, x) != off {
                // The offset changes between t and x: restart from the change.
                t = first_change(tz, t, x, off);
                continue;
            }
            if !self.hour_star && is_repeat(tz, n, x) {
                // Second occurrence of a wall time repeated by fall-back.
                t = x + TimeDelta::minutes(1);
                continue;
            }
            return Some(x.and_utc());
        }
        None
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Smallest set bit `>= from` in `bits`, if any.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

fn offset_at(tz: Tz, utc: NaiveDateTime) -> TimeDelta {
    let off: FixedOffset = tz.offset_from_utc_datetime(&utc).fix();
    TimeDelta::seconds(i64::from(off.local_minus_utc()))
}

/// First minute in `(lo, hi]` whose offset differs from `off` (which holds at `lo`).
fn first_change(
    tz: Tz,
    mut lo: NaiveDateTime,
    mut hi: NaiveDateTime,
    off: TimeDelta,
) -> NaiveDateTime {
    while hi - lo > TimeDelta::minutes(1) {
        let mid = lo + (hi - lo) / 2;
        let mid = mid
            .with_second(0)
            .and_then(|m| m.with_nanosecond(0))
            .unwrap_or(mid);
        if mid <= lo {
            break;
        }
        if offset_at(tz, mid) == off {
            lo = mid
        } else {
            hi = mid
        }
    }
    hi
}

/// Whether UTC instant `x` is the later of two instants showing wall time `n`.
fn is_repeat(tz: Tz, n: NaiveDateTime, x: NaiveDateTime) -> bool {
    match tz.from_local_datetime(&n) {
        MappedLocalTime::Ambiguous(first, _) => first.naive_utc() != x,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::UTC;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(s: &str) -> Schedule {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The next `n` firing times after `start`, as RFC 3339 UTC strings.
    fn run(expr: &str, tz: Tz, start: &str, n: usize) -> Vec<String> {
        let s = cron(expr);
        let mut t = utc(start);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t, tz).unwrap();
            out.push(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        out
    }

    #[test]
    fn every_intervals() {
        let s = parse("every 15m").unwrap();
        assert_eq!(s, Schedule::Every(Duration::from_secs(900)));
        assert_eq!(
            s.next_after(utc("2026-01-01T00:07:30Z"), UTC),
            Some(utc("2026-01-01T00:22:30Z"))
        );
        assert_eq!(
            parse("every 30s").unwrap(),
            Schedule::Every(Duration::from_secs(30))
        );
        assert_eq!(
            parse(" Every 2 H ").unwrap(),
            Schedule::Every(Duration::from_secs(7200))
        );
        assert_eq!(
            parse("every 2h").unwrap(),
            Schedule::Every(Duration::from_secs(7200))
        );
        assert_eq!(
            parse("EVERY 1d").unwrap(),
            Schedule::Every(Duration::from_secs(86400))
        );
        assert_eq!(parse("every 1d").unwrap().to_string(), "every 1d");
        assert_eq!(parse("every 90m").unwrap().to_string(), "every 90m");
        for bad in [
            "every",
            "every 0m",
            "every -5m",
            "every 5",
            "every m",
            "every 1.5h",
            "every 5 minutes",
            "everyday",
            "every 99999999999999999999s",
        ] {
            assert_eq!(
                parse(bad),
                Err(ScheduleError::Every(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn due_and_next_due() {
        let s = parse("every 15m").unwrap();
        let now = utc("2026-05-01T12:00:00Z");
        assert!(s.due(None, now, UTC));
        assert_eq!(s.next_due(None, now, UTC), Some(now));
        assert!(!s.due(Some(utc("2026-05-01T11:50:00Z")), now, UTC));
        assert!(s.due(Some(utc("2026-05-01T11:45:00Z")), now, UTC));
        assert_eq!(
            s.next_due(Some(utc("2026-05-01T11:50:00Z")), now, UTC),
            Some(utc("2026-05-01T12:05:00Z"))
        );
        let c = cron("0 6 * * *");
        // Down for days: due once now, next slot is tomorrow's.
        assert!(c.due(Some(utc("2026-04-20T06:00:00Z")), now, UTC));
        assert!(!c.due(Some(now), now, UTC));
        assert_eq!(
            c.next_due(Some(now), now, UTC),
            Some(utc("2026-05-02T06:00:00Z"))
        );
        let never = cron("0 0 31 2 *");
        assert!(!never.due(Some(now), now, UTC));
        assert!(never.due(None, now, UTC));
    }

    #[test]
    fn a_last_attempt_in_the_future_is_rebased_on_the_clock() {
        let now = utc("2026-05-01T12:00:00Z");
        let s = parse("every 1m").unwrap();
        // One pass while the clock was a day ahead, then it came back.
        let ahead = Some(utc("2026-05-02T12:00:00Z"));
        assert!(s.clock_went_back(ahead, now, UTC));
        assert_eq!(s.next_due(ahead, now, UTC), Some(now));
        assert!(s.due(ahead, now, UTC));
        // Within one period: nothing changes.
        let recent = Some(utc("2026-05-01T11:59:30Z"));
        assert!(!s.clock_went_back(recent, now, UTC));
        assert_eq!(
            s.next_due(recent, now, UTC),
            Some(utc("2026-05-01T12:00:30Z"))
        );
        assert!(!s.clock_went_back(Some(now), now, UTC));
        assert_eq!(
            s.next_due(Some(now), now, UTC),
            Some(utc("2026-05-01T12:01:00Z"))
        );
        // Cron: the slot after a future attempt is later than the slot after now.
        let c = cron("0 6 * * *");
        let ahead = Some(utc("2026-05-03T06:00:00Z"));
        assert!(c.clock_went_back(ahead, now, UTC));
        assert_eq!(c.next_due(ahead, now, UTC), Some(now));
        // Today's 06:00 attempt is not in the future.
        let today = Some(utc("2026-05-01T06:00:00Z"));
        assert!(!c.clock_went_back(today, now, UTC));
        assert_eq!(
            c.next_due(today, now, UTC),
            Some(utc("2026-05-02T06:00:00Z"))
        );
        // A weekday schedule on a Friday evening: Monday is one period away, not two.
        let w = cron("0 6 * * MON-FRI");
        let fri = utc("2026-05-01T18:00:00Z");
        let fri_slot = Some(utc("2026-05-01T06:00:00Z"));
        assert!(!w.clock_went_back(fri_slot, fri, UTC));
        assert_eq!(
            w.next_due(fri_slot, fri, UTC),
            Some(utc("2026-05-04T06:00:00Z"))
        );
    }

    #[test]
    fn every_quarter_hour() {
        assert_eq!(
            run("*/15 * * * *", UTC, "2026-01-01T23:31:59Z", 3),
            [
                "2026-01-01T23:45:00Z",
                "2026-01-02T00:00:00Z",
                "2026-01-02T00:15:00Z"
            ]
        );
        // Strictly after: a run exactly on a slot goes to the next one.
        assert_eq!(
            run("*/15 * * * *", UTC, "2026-01-01T10:15:00Z", 1),
            ["2026-01-01T10:30:00Z"]
        );
        assert_eq!(
            run("10-50/20 * * * *", UTC, "2026-01-01T10:15:00Z", 3),
            [
                "2026-01-01T10:30:00Z",
                "2026-01-01T10:50:00Z",
                "2026-01-01T11:10:00Z"
            ]
        );
    }

    #[test]
    fn weekdays_at_six() {
        // 2026-03-06 is a Friday.
        assert_eq!(
            run("0 6 * * 1-5", UTC, "2026-03-06T06:00:00Z", 2),
            ["2026-03-09T06:00:00Z", "2026-03-10T06:00:00Z"]
        );
        // New York: 06:00 EST is 11:00Z; after the March 8 switch 06:00 EDT is 10:00Z.
        assert_eq!(
            run("0 6 * * 1-5", New_York, "2026-03-05T12:00:00Z", 3),
            [
                "2026-03-06T11:00:00Z",
                "2026-03-09T10:00:00Z",
                "2026-03-10T10:00:00Z"
            ]
        );
    }

    #[test]
    fn spring_forward_new_york() {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
        assert_eq!(
            run("30 2 * * *", New_York, "2026-03-06T12:00:00Z", 3),
            [
                "2026-03-07T07:30:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
        // Quarter-hourly: 01:45 EST (06:45Z) is followed by 03:00 EDT (07:00Z).
        assert_eq!(
            run("*/15 * * * *", New_York, "2026-03-08T06:30:00Z", 3),
            [
                "2026-03-08T06:45:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:15:00Z"
            ]
        );
        // Wall-clock 03:00 on the day of the switch is the first instant of EDT.
        assert_eq!(
            run("0 3 * * *", New_York, "2026-03-08T06:00:00Z", 1),
            ["2026-03-08T07:00:00Z"]
        );
    }

    #[test]
    fn fall_back_new_york() {
        // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:00-01:59 happens twice.
        // 02:30 happens once, in EST.
        assert_eq!(
            run("30 2 * * *", New_York, "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"]
        );
        // 01:30 fires once, at its first occurrence (EDT, 05:30Z), not again at 06:30Z.
        assert_eq!(
            run("30 1 * * *", New_York, "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        // Even when asked from inside the repeated hour.
        assert_eq!(
            run("30 1 * * *", New_York, "2026-11-01T06:10:00Z", 1),
            ["2026-11-02T06:30:00Z"]
        );
        assert_eq!(
            run("*/20 1 * * *", New_York, "2026-11-01T05:30:00Z", 3),
            [
                "2026-11-01T05:40:00Z",
                "2026-11-02T06:00:00Z",
                "2026-11-02T06:20:00Z"
            ]
        );
        // Hourly-style schedules keep their rhythm through both hours.
        assert_eq!(
            run("*/15 * * * *", New_York, "2026-11-01T05:30:00Z", 7),
            [
                "2026-11-01T05:45:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:15:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T06:45:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T07:15:00Z"
            ]
        );
        assert_eq!(
            run("0 * * * *", New_York, "2026-11-01T04:30:00Z", 4),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T08:00:00Z"
            ]
        );
    }

    #[test]
    fn quiet_week_before_a_change() {
        // Nothing matches for a week, and the week ends just after spring-forward.
        assert_eq!(
            run("30 0 9 3 *", New_York, "2026-03-02T08:00:00Z", 1),
            ["2026-03-09T04:30:00Z"]
        );
        assert_eq!(
            run("30 0 2 11 *", New_York, "2026-10-26T08:00:00Z", 1),
            ["2026-11-02T05:30:00Z"]
        );
    }

    /// Minute-by-minute reference: instant t fires when its wall time
    /// matches, and it is not the repeat of a fall-back hour (unless the
    /// hour field starts with `*`).
    fn brute_next(
        c: &CronExpr,
        after: DateTime<Utc>,
        tz: Tz,
        limit_minutes: i64,
    ) -> Option<DateTime<Utc>> {
        let mut t = after
            .naive_utc()
            .with_second(0)
            .unwrap()
            .with_nanosecond(0)
            .unwrap();
        for _ in 0..limit_minutes {
            t += TimeDelta::minutes(1);
            let n = (t + offset_at(tz, t)).with_second(0).unwrap();
            let wall_ok = c.months & (1 << n.month()) != 0
                && c.day_matches(n.date())
                && c.hours & (1 << n.hour()) != 0
                && c.minutes & (1 << n.minute()) != 0;
            if wall_ok && (c.hour_star || !is_repeat(tz, n, t)) {
                return Some(t.and_utc());
            }
        }
        None
    }

    #[test]
    fn matches_brute_force_around_transitions() {
        use chrono_tz::{Asia::Kolkata, Australia::Lord_Howe, Europe::London};
        let exprs = [
            "*/15 * * * *",
            "30 2 * * *",
            "30 1 * * *",
            "0 * * * *",
            "*/20 1 * * *",
            "15 1-3 * * *",
            "0 0 * * *",
            "45 23 * * 6",
            "0 0 13 * 5",
            "*/7 2 * * *",
            "59 1 * * 0",
            "0 0 1 * *",
        ];
        // Starts a little before DST changes (and one zone without DST).
        let starts = [
            (New_York, "2026-03-07T00:00:00Z"),
            (New_York, "2026-10-31T00:00:00Z"),
            (London, "2026-03-28T00:00:00Z"),
            (London, "2026-10-24T00:00:00Z"),
            (Lord_Howe, "2026-04-04T00:00:00Z"), // 30-minute shift
            (Lord_Howe, "2026-10-03T00:00:00Z"),
            (Kolkata, "2026-03-07T00:00:00Z"),
        ];
        for expr in exprs {
            let Schedule::Cron(c) = cron(expr) else {
                unreachable!()
            };
            for (tz, start) in starts {
                let mut t = utc(start);
                let stop = t + TimeDelta::days(3);
                while t < stop {
                    let want = brute_next(&c, t, tz, 60 * 24 * 40);
                    let got = c.next_after(t, tz);
                    assert_eq!(got, want, "{expr} in {tz} after {t}");
                    // Step through every firing, and also probe odd offsets.
                    t = match got {
                        Some(g) => {
                            g + TimeDelta::seconds(if g.timestamp() % 2 == 0 { 0 } else { 1234 })
                        }
                        None => break,
                    };
                }
            }
        }
    }

    #[test]
    fn impossible_dates_never_fire() {
        let t = utc("2026-01-01T00:00:00Z");
        assert_eq!(cron("0 0 31 2 *").next_after(t, UTC), None);
        assert_eq!(cron("0 0 30 2 *").next_after(t, New_York), None);
        assert_eq!(cron("0 0 31 4,6,9,11 *").next_after(t, UTC), None);
        // Feb 29 is found in the next leap year.
        assert_eq!(
            run("0 0 29 2 *", UTC, "2026-01-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00Z"]
        );
        // Once a year: the far search still lands exactly, across DST.
        assert_eq!(
            run("0 9 4 7 *", New_York, "2026-07-04T13:00:00Z", 1),
            ["2027-07-04T13:00:00Z"]
        );
        assert_eq!(
            run("0 9 25 12 *", New_York, "2026-07-04T13:00:00Z", 1),
            ["2026-12-25T14:00:00Z"]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // 13th of the month OR Friday. 2026-03-01 is a Sunday.
        assert_eq!(
            run("0 0 13 * 5", UTC, "2026-03-01T00:00:00Z", 4),
            [
                "2026-03-06T00:00:00Z",
                "2026-03-13T00:00:00Z",
                "2026-03-20T00:00:00Z",
                "2026-03-27T00:00:00Z"
            ]
        );
        assert_eq!(
            run("0 0 13 * 5", UTC, "2026-04-10T00:00:00Z", 2),
            ["2026-04-13T00:00:00Z", "2026-04-17T00:00:00Z"]
        );
        // Only one restricted: plain AND.
        assert_eq!(
            run("0 0 * * 5", UTC, "2026-03-01T00:00:00Z", 1),
            ["2026-03-06T00:00:00Z"]
        );
        assert_eq!(
            run("0 0 13 * *", UTC, "2026-03-01T00:00:00Z", 1),
            ["2026-03-13T00:00:00Z"]
        );
        // A field starting with `*` counts as unrestricted (Vixie): odd days that are Mondays.
        assert_eq!(
            run("0 0 */2 * 1", UTC, "2026-03-01T00:00:00Z", 2),
            ["2026-03-09T00:00:00Z", "2026-03-23T00:00:00Z"]
        );
    }

    #[test]
    fn names_and_sunday() {
        let t = utc("2026-03-02T00:00:00Z"); // Monday
        let sun = cron("0 0 * * 0").next_after(t, UTC);
        assert_eq!(sun, Some(utc("2026-03-08T00:00:00Z")));
        assert_eq!(cron("0 0 * * 7").next_after(t, UTC), sun);
        assert_eq!(cron("0 0 * * sun").next_after(t, UTC), sun);
        assert_eq!(
            cron("0 0 * * Fri-SUN").next_after(t, UTC),
            Some(utc("2026-03-06T00:00:00Z"))
        );
        assert_eq!(
            cron("0 0 * * 5-7").next_after(t, UTC),
            Some(utc("2026-03-06T00:00:00Z"))
        );
        assert_eq!(
            run("0 12 1 JAN,jul,Oct *", UTC, "2026-03-02T00:00:00Z", 3),
            [
                "2026-07-01T12:00:00Z",
                "2026-10-01T12:00:00Z",
                "2027-01-01T12:00:00Z"
            ]
        );
        assert_eq!(
            run("0 12 1 feb-apr/2 *", UTC, "2026-03-02T00:00:00Z", 2),
            ["2026-04-01T12:00:00Z", "2027-02-01T12:00:00Z"]
        );
        assert_eq!(cron("  0   6 * * 1-5 ").to_string(), "0 6 * * 1-5");
        let Schedule::Cron(a) = cron("5/15 * * * *") else {
            unreachable!()
        };
        let Schedule::Cron(b) = cron("5,20,35,50 * * * *") else {
            unreachable!()
        };
        assert_eq!(a.minutes, b.minutes);
    }

    #[test]
    fn bad_expressions() {
        let cases = [
            ("", "empty schedule"),
            (
                "* * * *",
                "cron expression \"* * * *\" has 4 fields, expected 5 (minute hour day-of-month month day-of-week)",
            ),
            (
                "0 0 * * * *",
                "cron expression \"0 0 * * * *\" has 6 fields, expected 5 (minute hour day-of-month month day-of-week)",
            ),
            (
                "60 * * * *",
                "cron minute field: invalid value \"60\": 60 is out of range 0-59",
            ),
            (
                "0 24 * * *",
                "cron hour field: invalid value \"24\": 24 is out of range 0-23",
            ),
            (
                "0 0 0 * *",
                "cron day-of-month field: invalid value \"0\": 0 is out of range 1-31",
            ),
            (
                "0 0 * 13 *",
                "cron month field: invalid value \"13\": 13 is out of range 1-12",
            ),
            (
                "0 0 * * 8",
                "cron day-of-week field: invalid value \"8\": 8 is out of range 0-7",
            ),
            (
                "0 0 * JANUARY *",
                "cron month field: invalid value \"JANUARY\": \"JANUARY\" is not a number or month name",
            ),
            (
                "0 0 * * MON-FUN",
                "cron day-of-week field: invalid value \"MON-FUN\": \"FUN\" is not a number or weekday name",
            ),
            (
                "0 0 * * MON-jan",
                "cron day-of-week field: invalid value \"MON-jan\": \"jan\" is not a number or weekday name",
            ),
            (
                "*/0 * * * *",
                "cron minute field: invalid value \"*/0\": step \"0\" is not a positive number",
            ),
            (
                "*/x * * * *",
                "cron minute field: invalid value \"*/x\": step \"x\" is not a positive number",
            ),
            (
                "0 5-1 * * *",
                "cron hour field: invalid value \"5-1\": range start 5 is after its end 1",
            ),
            (
                "1,,2 * * * *",
                "cron minute field: invalid value \"1,,2\": empty list item",
            ),
            (
                "+5 * * * *",
                "cron minute field: invalid value \"+5\": \"+5\" is not a number",
            ),
            (
                "0 jan * * *",
                "cron hour field: invalid value \"jan\": \"jan\" is not a number",
            ),
            (
                "? * * * *",
                "cron minute field: invalid value \"?\": \"?\" is not a number",
            ),
            (
                "every 15x",
                "invalid interval \"every 15x\": expected \"every <N>s|m|h|d\" with N a positive whole number",
            ),
        ];
        let mut wrong = Vec::new();
        for (expr, want) in cases {
            match parse(expr) {
                Ok(s) => wrong.push(format!("{expr:?} parsed as {s:?}")),
                Err(e) if e.to_string() != want => {
                    wrong.push(format!("{expr:?}\n  got  {e}\n  want {want}"))
                }
                Err(_) => {}
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
