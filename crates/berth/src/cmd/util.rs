//! Small helpers shared by the image subcommands: sizes and times for humans.

use std::path::Path;

/// `12.3MB` in the decimal units docker and podman print.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        let n = format!("{v:.3}");
        let n = n.trim_end_matches('0').trim_end_matches('.');
        format!("{n}{}", units[i])
    }
}

/// `5 minutes ago` from an RFC 3339 timestamp (as in image configs); the input if unparseable.
pub fn ago(rfc3339: &str) -> String {
    match parse_rfc3339(rfc3339) {
        Some(t) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let s = (now - t).max(0);
            match s {
                0..=59 => format!("{s} seconds ago"),
                60..=3599 => format!("{} minutes ago", s / 60),
                3600..=86399 => format!("{} hours ago", s / 3600),
                _ => format!("{} days ago", s / 86400),
            }
        }
        None if rfc3339.is_empty() => "unknown".into(),
        None => rfc3339.to_string(),
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS…Z` (fraction and offset ignored).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se)
}

/// RFC 3339 UTC of now, for image configs (the builder's formatter).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    build::config::rfc3339(secs)
}

/// Bytes used by the files under `p` (not following symlinks; hardlinks counted once).
pub fn disk_usage(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_roundtrip() {
        let now = now_rfc3339();
        let t = parse_rfc3339(&now);
        assert!(t.is_some(), "{now}");
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(86401));
        assert_eq!(parse_rfc3339("2024-03-01T00:00:00Z"), Some(1709251200));
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.5MB");
    }
}
