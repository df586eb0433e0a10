//! AWS EventBridge `cron(...)` expressions: the six fields, parsed, and the next
//! minute (UTC) they match.
//!
//! Syntax as AWS documents it: `Minutes Hours Day-of-month Month Day-of-week
//! Year`; `*`, `?`, `,`, `-` (ranges may wrap: `FRI-MON`), `/` (`0/15`,
//! `*/10`, `1-30/5`); month names `JAN`-`DEC`; day-of-week `1`-`7` = `SUN`-`SAT`;
//! `L` (day-of-month: last day, `L-2` two days before it; day-of-week: `L` alone
//! is `SAT`, `6L` the month's last Friday), `W` (`15W` the weekday nearest the
//! 15th, `LW` the last weekday, never leaving the month), `#` (`3#2` the second
//! Tuesday). Exactly one of day-of-month and day-of-week must be `?`. Years run
//! 1970-2199. `L`, `W` and `#` stand alone in their field (no lists with them).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

/// The last year a cron expression can name.
pub const MAX_YEAR: i32 = 2199;
const MIN_YEAR: i32 = 1970;

/// One of the six fields, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        })
    }
}

/// Why a cron expression's fields cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "cron needs 6 fields (minutes hours day-of-month month day-of-week year), found {found}"
    )]
    FieldCount { found: usize },
    #[error("{field} field `{value}`: {reason}")]
    Field {
        field: CronField,
        value: String,
        reason: String,
    },
    #[error("one of day-of-month (`{day_of_month}`) and day-of-week (`{day_of_week}`) must be `?`, not both nor neither")]
    DayFields {
        day_of_month: String,
        day_of_week: String,
    },
}

/// A set of allowed values `0..=63` of a plain field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bits(u64);

impl Bits {
    fn has(self, v: u32) -> bool {
        v < 64 && self.0 & (1u64 << v) != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// `?`
    Any,
    Days(Bits),
    /// `L` (0) or `L-n`: n days before the last day.
    Last(u32),
    /// `LW`
    LastWeekday,
    /// `15W`
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// `?`
    Any,
    /// Days 1 (SUN) to 7 (SAT).
    Days(Bits),
    /// `6L`: the month's last such day.
    Last(u32),
    /// `3#2`: the second such day of the month.
    Nth(u32, u32),
}

/// A parsed `cron(...)` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    minutes: Bits,
    hours: Bits,
    day_of_month: DayOfMonth,
    months: Bits,
    day_of_week: DayOfWeek,
    /// Years as offsets from 1970 (0..=229), two words.
    years: [u128; 2],
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Domain {
    field: CronField,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Domain {
    fn err(&self, value: &str, reason: impl Into<String>) -> CronError {
        CronError::Field {
            field: self.field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    fn value(&self, whole: &str, s: &str) -> Result<u32, CronError> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            return Ok(self.min + i as u32);
        }
        let v: u32 = s.parse().map_err(|_| {
            if self.names.is_empty() {
                self.err(whole, format!("`{s}` is not a number"))
            } else {
                self.err(whole, format!("`{s}` is neither a number nor a name"))
            }
        })?;
        if v < self.min || v > self.max {
            return Err(self.err(
                whole,
                format!("{v} is out of range {}-{}", self.min, self.max),
            ));
        }
        Ok(v)
    }

    /// The values a comma-separated list of `*`, `a`, `a-b`, with optional `/step`, names.
    fn values(&self, whole: &str) -> Result<Vec<u32>, CronError> {
        let mut out = Vec::new();
        for item in whole.split(',') {
            if item.is_empty() {
                return Err(self.err(whole, "empty list item"));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| self.err(whole, format!("step `{s}` is not a number")))?;
                    if step == 0 {
                        return Err(self.err(whole, "step must be at least 1"));
                    }
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (start, end) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(whole, a)?, self.value(whole, b)?)
            } else {
                let a = self.value(whole, range)?;
                // `5/10`: from 5 to the end of the field, every 10.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let span = self.max - self.min + 1;
            // Ranges may wrap (`FRI-MON`, `22-2`).
            let len = if end >= start {
                end - start
            } else {
                end + span - start
            };
            let mut k = 0;
            while k <= len {
                let v = self.min + (start - self.min + k) % span;
                out.push(v);
                k = k.saturating_add(step);
            }
        }
        Ok(out)
    }

    fn bits(&self, whole: &str) -> Result<Bits, CronError> {
        let mut b = 0u64;
        for v in self.values(whole)? {
            b |= 1u64 << v;
        }
        Ok(Bits(b))
    }
}

const MINUTES: Domain = Domain {
    field: CronField::Minutes,
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Domain = Domain {
    field: CronField::Hours,
    min: 0,
    max: 23,
    names: &[],
};
const DAYS: Domain = Domain {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Domain = Domain {
    field: CronField::Month,
    min: 1,
    max: 12,
    names: &MONTHS,
};
const WEEKDAY: Domain = Domain {
    field: CronField::DayOfWeek,
    min: 1,
    max: 7,
    names: &WEEKDAYS,
};
const YEARS: Domain = Domain {
    field: CronField::Year,
    min: MIN_YEAR as u32,
    max: MAX_YEAR as u32,
    names: &[],
};

fn reject_special(d: &Domain, s: &str) -> Result<(), CronError> {
    if s == "?" {
        return Err(d.err(s, "`?` is only allowed in day-of-month or day-of-week"));
    }
    // Month names hold `L` (`JUL`): there a bad token fails as an unknown name.
    let special = |c: &char| matches!(c, 'L' | 'W' | '#' | 'l' | 'w');
    if let Some(c) = s
        .chars()
        .find(|c| d.names.is_empty() && special(c) || *c == '#')
    {
        return Err(d.err(s, format!("`{c}` is not allowed in this field")));
    }
    Ok(())
}

fn parse_day_of_month(s: &str) -> Result<DayOfMonth, CronError> {
    let d = &DAYS;
    let upper = s.to_ascii_uppercase();
    if upper == "?" {
        return Ok(DayOfMonth::Any);
    }
    if upper == "L" {
        return Ok(DayOfMonth::Last(0));
    }
    if upper == "LW" {
        return Ok(DayOfMonth::LastWeekday);
    }
    if let Some(n) = upper.strip_prefix("L-") {
        let n: u32 = n
            .parse()
            .map_err(|_| d.err(s, "`L-n` needs a number of days"))?;
        if n > 30 {
            return Err(d.err(s, "`L-n` offset must be 0-30"));
        }
        return Ok(DayOfMonth::Last(n));
    }
    if let Some(n) = upper.strip_suffix('W') {
        if n.contains([',', '-', '/', '*']) {
            return Err(d.err(s, "`W` takes a single day (`15W`)"));
        }
        return Ok(DayOfMonth::NearestWeekday(d.value(s, n)?));
    }
    if upper.contains(['L', 'W', '#']) {
        return Err(d.err(
            s,
            "`L` and `W` stand alone (`L`, `L-2`, `15W`, `LW`); `#` is for day-of-week",
        ));
    }
    Ok(DayOfMonth::Days(d.bits(s)?))
}

fn parse_day_of_week(s: &str) -> Result<DayOfWeek, CronError> {
    let d = &WEEKDAY;
    let upper = s.to_ascii_uppercase();
    if upper == "?" {
        return Ok(DayOfWeek::Any);
    }
    if upper == "L" {
        return Ok(DayOfWeek::Days(Bits(1 << 7)));
    }
    if let Some((day, n)) = upper.split_once('#') {
        let day = d.value(s, day)?;
        let n: u32 = n
            .parse()
            .map_err(|_| d.err(s, "`#` needs a week number 1-5 (`3#2`)"))?;
        if !(1..=5).contains(&n) {
            return Err(d.err(s, "`#` week number must be 1-5"));
        }
        return Ok(DayOfWeek::Nth(day, n));
    }
    if let Some(day) = upper.strip_suffix('L') {
        if day.contains([',', '-', '/', '*']) {
            return Err(d.err(s, "`L` takes a single day (`6L`)"));
        }
        return Ok(DayOfWeek::Last(d.value(s, day)?));
    }
    if upper.contains(['L', 'W']) {
        return Err(d.err(s, "`L` stands alone (`L`, `6L`); `W` is for day-of-month"));
    }
    Ok(DayOfWeek::Days(d.bits(s)?))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// 1 (SUN) to 7 (SAT).
fn weekday(date: NaiveDate) -> u32 {
    date.weekday().num_days_from_sunday() + 1
}

/// The weekday (MON-FRI) nearest `day` inside its month.
fn nearest_weekday(year: i32, month: u32, day: u32) -> Option<u32> {
    let last = days_in_month(year, month);
    if day > last {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    Some(match weekday(date) {
        7 if day == 1 => 3,          // Saturday the 1st: Monday the 3rd
        7 => day - 1,                // Saturday: the Friday before
        1 if day == last => day - 2, // Sunday the last: the Friday before
        1 => day + 1,                // Sunday: the Monday after
        _ => day,
    })
}

impl CronExpr {
    /// Parse the inside of `cron(...)`: six space-separated fields.
    pub fn parse(body: &str) -> Result<CronExpr, CronError> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields[..] else {
            return Err(CronError::FieldCount {
                found: fields.len(),
            });
        };
        for (d, s) in [
            (&MINUTES, minutes),
            (&HOURS, hours),
            (&MONTH, month),
            (&YEARS, year),
        ] {
            reject_special(d, s)?;
        }
        let day_of_month = parse_day_of_month(dom)?;
        let day_of_week = parse_day_of_week(dow)?;
        if (day_of_month == DayOfMonth::Any) == (day_of_week == DayOfWeek::Any) {
            return Err(CronError::DayFields {
                day_of_month: dom.to_string(),
                day_of_week: dow.to_string(),
            });
        }
        let mut years = [0u128; 2];
        for y in YEARS.values(year)? {
            let off = y - MIN_YEAR as u32;
            years[(off / 128) as usize] |= 1u128 << (off % 128);
        }
        Ok(CronExpr {
            minutes: MINUTES.bits(minutes)?,
            hours: HOURS.bits(hours)?,
            day_of_month,
            months: MONTH.bits(month)?,
            day_of_week,
            years,
        })
    }

    fn year_allowed(&self, year: i32) -> bool {
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return false;
        }
        let off = (year - MIN_YEAR) as u32;
        self.years[(off / 128) as usize] & (1u128 << (off % 128)) != 0
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let (y, m, d) = (date.year(), date.month(), date.day());
        let last = days_in_month(y, m);
        let dom = match &self.day_of_month {
            DayOfMonth::Any => true,
            DayOfMonth::Days(bits) => bits.has(d),
            DayOfMonth::Last(n) => last.checked_sub(*n) == Some(d),
            DayOfMonth::LastWeekday => {
                let last_date = NaiveDate::from_ymd_opt(y, m, last);
                let target = match last_date.map(weekday) {
                    Some(7) => last - 1,
                    Some(1) => last - 2,
                    _ => last,
                };
                d == target
            }
            DayOfMonth::NearestWeekday(n) => nearest_weekday(y, m, *n) == Some(d),
        };
        let wd = weekday(date);
        let dow = match &self.day_of_week {
            DayOfWeek::Any => true,
            DayOfWeek::Days(bits) => bits.has(wd),
            DayOfWeek::Last(day) => wd == *day && d + 7 > last,
            DayOfWeek::Nth(day, n) => wd == *day && (d - 1) / 7 + 1 == *n,
        };
        dom && dow
    }

    /// The first minute of `date` at or after `from` (a time of day) the
    /// expression matches.
    fn first_time(&self, from: NaiveTime) -> Option<NaiveTime> {
        use chrono::Timelike;
        let (h0, m0) = (from.hour(), from.minute());
        for h in h0..24 {
            if !self.hours.has(h) {
                continue;
            }
            let start = if h == h0 { m0 } else { 0 };
            for m in start..60 {
                if self.minutes.has(m) {
                    return NaiveTime::from_hms_opt(h, m, 0);
                }
            }
        }
        None
    }

    /// The first minute strictly after `t` the expression matches (UTC, whole
    /// minutes), `None` when no year up to 2199 has one.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::Timelike;
        let start = t.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut date = start.date_naive();
        let mut from = start.time();
        while date.year() <= MAX_YEAR {
            if !self.year_allowed(date.year()) {
                date = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?;
                from = NaiveTime::MIN;
                continue;
            }
            if !self.months.has(date.month()) {
                date = if date.month() == 12 {
                    NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?
                } else {
                    NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)?
                };
                from = NaiveTime::MIN;
                continue;
            }
            if self.day_matches(date) {
                if let Some(time) = self.first_time(from) {
                    return Some(Utc.from_utc_datetime(&date.and_time(time)));
                }
            }
            date = date.succ_opt()?;
            from = NaiveTime::MIN;
        }
        None
    }
}
