//! `--schedule`: when a function is invoked by the clock. Either a five-field cron
//! expression (minute hour day-of-month month day-of-week, UTC; `*`, `N`, `A-B`, `*/S`,
//! `A-B/S` and lists of them; day-of-week 0–7 with 0 and 7 Sunday; as cron(8), when both
//! day fields are restricted either may match) or `@every DURATION` (`@every 30s`).

use crate::def::parse_duration;
use crate::{invalid, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron {
        minute: Vec<bool>,
        hour: Vec<bool>,
        dom: Vec<bool>,
        month: Vec<bool>,
        dow: Vec<bool>,
        dom_any: bool,
        dow_any: bool,
    },
}

/// One field: `*`, `N`, `A-B`, with `/S`, comma-separated; values in `lo..=hi`.
fn field(name: &str, text: &str, lo: u32, hi: u32) -> Result<(Vec<bool>, bool)> {
    let mut set = vec![false; hi as usize + 1];
    let bad = || {
        invalid!("--schedule: {name} field {text:?}: expected *, N, A-B, */S or A-B/S in {lo}-{hi}")
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
        } else {
            let v: u32 = range.parse().map_err(|_| bad())?;
            (v, if step > 1 { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(bad());
        }
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, text == "*"))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule> {
        let t = text.trim();
        if let Some(d) = t.strip_prefix("@every ") {
            let d = parse_duration("--schedule @every", d)?;
            if d < Duration::from_secs(1) {
                return Err(invalid!("--schedule {text:?}: at most once a second"));
            }
            return Ok(Schedule::Every(d));
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() != 5 {
            return Err(invalid!(
                "--schedule {text:?}: expected five cron fields (minute hour day month weekday) or @every DURATION"
            ));
        }
        let (minute, _) = field("minute", f[0], 0, 59)?;
        let (hour, _) = field("hour", f[1], 0, 23)?;
        let (dom, dom_any) = field("day-of-month", f[2], 1, 31)?;
        let (month, _) = field("month", f[3], 1, 12)?;
        let (mut dow, dow_any) = field("day-of-week", f[4], 0, 7)?;
        if dow[7] {
            dow[0] = true;
        }
        Ok(Schedule::Cron {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
        })
    }

    /// Whether a run is due at `now` given the last run (`None`: never ran; the first
    /// `@every` run is one period after `since`, when the schedule was taken up).
    pub fn due(&self, now: SystemTime, last: Option<SystemTime>, since: SystemTime) -> bool {
        match self {
            Schedule::Every(d) => {
                let from = last.unwrap_or(since);
                now.duration_since(from).is_ok_and(|e| e >= *d)
            }
            Schedule::Cron { .. } => {
                let m = minute_of(now);
                if last.is_some_and(|l| minute_of(l) == m) {
                    return false;
                }
                self.matches(now)
            }
        }
    }

    fn matches(&self, t: SystemTime) -> bool {
        let Schedule::Cron {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
        } = self
        else {
            return false;
        };
        let c = civil(t);
        let day = if *dom_any || *dow_any {
            dom[c.day as usize] && dow[c.weekday as usize]
        } else {
            dom[c.day as usize] || dow[c.weekday as usize]
        };
        minute[c.minute as usize] && hour[c.hour as usize] && month[c.month as usize] && day
    }
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

struct Civil {
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
}

/// UTC calendar fields of `t` (the days-to-civil algorithm of H. Hinnant's
/// "chrono-Compatible Low-Level Date Algorithms").
fn civil(t: SystemTime) -> Civil {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Civil {
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: ((rem % 3600) / 60) as u32,
        // 1970-01-01 was a Thursday (4).
        weekday: ((days + 4).rem_euclid(7)) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn cron_fields_match_the_calendar() {
        // 2026-12-07 13:05:00 UTC, a Monday.
        let t = at(1_796_648_700);
        let c = civil(t);
        assert_eq!(
            (c.month, c.day, c.hour, c.minute, c.weekday),
            (12, 7, 13, 5, 1)
        );
        let s = |e: &str| Schedule::parse(e).expect(e);
        assert!(s("* * * * *").matches(t));
        assert!(s("*/5 13 * * 1-5").matches(t));
        assert!(!s("*/10 * * * *").matches(t));
        assert!(s("5 13 7 12 *").matches(t));
        assert!(!s("5 13 * * 0,6").matches(t));
        // Both day fields restricted: either matches (cron(8)).
        assert!(s("5 13 1 * 1").matches(t));
        assert!(s("5 13 * * 7").matches(at(1_796_648_700 - 86400)));
        // Once per minute.
        assert!(s("* * * * *").due(t, None, t));
        assert!(!s("* * * * *").due(at(1_796_648_730), Some(t), t));
        assert!(s("* * * * *").due(at(1_796_648_760), Some(t), t));
        assert!(s("@every 2s").due(at(10), Some(at(8)), at(0)));
        assert!(!s("@every 2s").due(at(10), Some(at(9)), at(0)));
        for bad in [
            "* * * *",
            "60 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
            "@every 10ms",
        ] {
            let e = Schedule::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("--schedule"), "{bad:?} accepted or unclear: {e}");
        }
    }
}
