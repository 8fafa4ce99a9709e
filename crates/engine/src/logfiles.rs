//! The json-file log across rotation, and `logs --since/--until`.
//!
//! Rotation (Docker's json-file `--log-opt max-size=10m,max-file=3`): the monitor writes
//! `ctr.log` through [`RotatingLog`]; before an entry would take the file past `max-size`,
//! `ctr.log.{N-1}` is dropped, every `ctr.log.i` becomes `ctr.log.{i+1}` and `ctr.log`
//! becomes `ctr.log.1` (with `max-file=1` the file is truncated instead). So there are at
//! most `max-file` files, none larger than `max-size` (unless one line is), and the oldest
//! output is in the highest number. [`read`] prints them oldest first, then follows
//! `ctr.log`, reopening it when the monitor rotates it.

use crate::error::{io, Error, Result};
use crate::logs::Entry;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The json-file driver's options (`--log-opt K=V`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogOpts {
    /// Rotate before the file would grow past this many bytes (None: never).
    pub max_size: Option<u64>,
    /// How many files to keep, `ctr.log` included (at least 1).
    pub max_file: u32,
}

/// `512`, `1k`, `10m`, `1g` (binary multiples, as Docker's `max-size`).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let t = lower.trim_end_matches('b');
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    let v = n * mult as f64;
    (v >= 1.0 && v < u64::MAX as f64).then_some(v as u64)
}

impl LogOpts {
    /// From the `K=V` pairs a container was created with; an unknown key or a bad value is
    /// an error naming it.
    pub fn from_map(m: &BTreeMap<String, String>) -> Result<LogOpts> {
        let mut o = LogOpts {
            max_size: None,
            max_file: 1,
        };
        for (k, v) in m {
            match k.as_str() {
                "max-size" => {
                    o.max_size = Some(parse_size(v).ok_or_else(|| {
                        Error::Invalid(format!(
                            "--log-opt max-size={v:?}: expected a positive size like 10m or 512k"
                        ))
                    })?)
                }
                "max-file" => {
                    o.max_file = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        Error::Invalid(format!(
                            "--log-opt max-file={v:?}: expected a number of files, at least 1"
                        ))
                    })?
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "--log-opt {k}: unknown option for the json-file log (max-size, max-file)"
                    )))
                }
            }
        }
        if o.max_file > 1 && o.max_size.is_none() {
            return Err(Error::Invalid(
                "--log-opt max-file needs max-size (a file is rotated when it reaches it)".into(),
            ));
        }
        Ok(o)
    }

    /// Parses `--log-opt` arguments (`K=V`, each possibly `K=V,K=V`) into the map stored in
    /// the container's spec, checking them.
    pub fn parse_args(args: &[String]) -> Result<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for a in args.iter().flat_map(|a| a.split(',')) {
            let Some((k, v)) = a.split_once('=') else {
                return Err(Error::Invalid(format!("--log-opt {a:?}: expected K=V")));
            };
            m.insert(k.trim().to_string(), v.trim().to_string());
        }
        LogOpts::from_map(&m)?;
        Ok(m)
    }
}

/// `ctr.log.N`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log's files, oldest first (`ctr.log.N` … `ctr.log.1`, `ctr.log`), those that exist.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut n = 1;
    while numbered(path, n).exists() {
        n += 1;
    }
    let mut v: Vec<PathBuf> = (1..n).rev().map(|i| numbered(path, i)).collect();
    v.push(path.to_path_buf());
    v
}

/// The monitor's log writer.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    opts: LogOpts,
}

impl RotatingLog {
    pub fn open(path: &Path, opts: LogOpts) -> Result<RotatingLog> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(format!("open {}", path.display())))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            size,
            opts,
        })
    }

    /// Appends one encoded entry, rotating first if it would not fit.
    pub fn write_entry(&mut self, entry: &[u8]) -> Result<()> {
        if let Some(max) = self.opts.max_size {
            if self.size > 0 && self.size + entry.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file
            .write_all(entry)
            .map_err(io(format!("write {}", self.path.display())))?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let p = &self.path;
        if self.opts.max_file <= 1 {
            self.file
                .set_len(0)
                .map_err(io(format!("truncate {}", p.display())))?;
            self.size = 0;
            return Ok(());
        }
        let keep = self.opts.max_file - 1;
        let _ = std::fs::remove_file(numbered(p, keep));
        for i in (1..keep).rev() {
            let from = numbered(p, i);
            if from.exists() {
                std::fs::rename(&from, numbered(p, i + 1))
                    .map_err(io(format!("rotate {}", from.display())))?;
            }
        }
        std::fs::rename(p, numbered(p, 1)).map_err(io(format!("rotate {}", p.display())))?;
        *self = RotatingLog::open(p, self.opts)?;
        Ok(())
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.123456789Z`,
/// `…+02:00`); None if it is not one.
pub fn parse_time(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: i128 = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let frac: i128 = r[..digits].parse().ok()?;
        nanos = frac * 10i128.pow(9 - digits as u32);
        rest = &r[digits..];
    }
    let offset: i64 = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh: i64 = o[1..3].parse().ok()?;
            let om: i64 = o[4..6].parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se - offset;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// Nanoseconds since the epoch of now.
pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// `--since`/`--until` as Docker takes them: an RFC 3339 time, a Unix time (`1700000000`,
/// `1700000000.5`) or a duration before now (`10m`, `1h30m`, `45s`, `500ms`). Nanoseconds
/// since the epoch.
pub fn parse_since(s: &str, now: i128) -> Result<i128> {
    let bad = || {
        Error::Invalid(format!(
            "invalid time {s:?}: expected an RFC 3339 time (2024-01-02T15:04:05Z), a Unix \
             time or a duration like 10m or 1h30m"
        ))
    };
    if let Some(t) = parse_time(s) {
        return Ok(t);
    }
    if let Some(d) = parse_duration(s) {
        return Ok(now - d.as_nanos() as i128);
    }
    // A Unix time, with an optional fraction.
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if !secs.is_empty()
        && secs.bytes().all(|c| c.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|c| c.is_ascii_digit())
    {
        let sec: i128 = secs.parse().map_err(|_| bad())?;
        let f: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i128>().map_err(|_| bad())? * 10i128.pow(9 - frac.len() as u32)
        };
        return Ok(sec * 1_000_000_000 + f);
    }
    Err(bad())
}

/// Go's `time.ParseDuration` for what people type: `10m`, `1h30m`, `1.5h`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

/// What `logs` prints.
#[derive(Clone, Debug, Default)]
pub struct ReadOpts {
    /// Only the last N lines of what is there now.
    pub tail: Option<usize>,
    /// Each line prefixed with its time.
    pub timestamps: bool,
    /// Keep printing what is appended, until `running()` says the container ended.
    pub follow: bool,
    /// Only entries at or after this time (ns since the epoch).
    pub since: Option<i128>,
    /// Only entries before this time (ns since the epoch); following stops there.
    pub until: Option<i128>,
}

impl ReadOpts {
    fn wants(&self, e: &Entry) -> bool {
        let Some(t) = parse_time(&e.time) else {
            return self.since.is_none() && self.until.is_none();
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

fn print(e: &Entry, o: &ReadOpts, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
    let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
    if o.timestamps {
        write!(w, "{} ", e.time)?;
    }
    w.write_all(e.log.as_bytes())?;
    w.flush()
}

/// Complete lines of `pending` as entries (malformed ones, a torn write, are skipped);
/// the incomplete rest stays in `pending`.
fn take_entries(pending: &mut Vec<u8>) -> Vec<Entry> {
    let cut = pending
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let complete: Vec<u8> = pending.drain(..cut).collect();
    complete
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Prints the log at `path` and its rotated files, oldest first (a missing log is an
/// empty one); with `follow`, keeps printing what the monitor appends (across rotations)
/// while `running()` is true and `until` has not passed.
pub fn read(
    path: &Path,
    o: &ReadOpts,
    mut running: impl FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    // What is there now: the rotated files whole, then ctr.log from an open descriptor
    // (so a rotation meanwhile loses nothing: we keep reading the file we opened).
    let mut entries = Vec::new();
    let mut current: Option<File> = None;
    let mut pending = Vec::new();
    for p in files(path) {
        let mut f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(format!("open {}", p.display()))(e)),
        };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(io(format!("read {}", p.display())))?;
        let mut b = buf;
        if p == path {
            entries.extend(take_entries(&mut b));
            pending = b;
            current = Some(f);
        } else {
            if b.last().is_some_and(|c| *c != b'\n') {
                b.push(b'\n');
            }
            entries.extend(take_entries(&mut b));
        }
    }
    entries.retain(|e| o.wants(e));
    if let Some(n) = o.tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    for e in &entries {
        if print(e, o, out, err).is_err() {
            return Ok(()); // the reader went away
        }
    }
    if !o.follow {
        return Ok(());
    }
    let past_until = |o: &ReadOpts| o.until.is_some_and(|u| now_nanos() >= u);
    let mut ended = false;
    loop {
        if past_until(o) {
            return Ok(());
        }
        let f = match current.as_mut() {
            Some(f) => f,
            None => match File::open(path) {
                Ok(f) => current.insert(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if ended || !running() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => return Err(io(format!("open {}", path.display()))(e)),
            },
        };
        let mut chunk = Vec::new();
        f.read_to_end(&mut chunk)
            .map_err(io(format!("read {}", path.display())))?;
        pending.extend_from_slice(&chunk);
        for e in take_entries(&mut pending) {
            if o.wants(&e) && print(&e, o, out, err).is_err() {
                return Ok(());
            }
        }
        if !chunk.is_empty() {
            continue;
        }
        // Nothing new in the file we hold: was it rotated away (another file at the path
        // now) or truncated (max-file=1)?
        let ours = f.metadata().ok();
        let now = std::fs::metadata(path).ok();
        let rotated = match (&ours, &now) {
            (Some(a), Some(b)) => a.ino() != b.ino() || a.dev() != b.dev(),
            _ => false,
        };
        if rotated {
            pending.clear();
            current = None;
            continue;
        }
        let pos = f.stream_position().unwrap_or(0);
        if ours.is_some_and(|m| m.len() < pos) {
            let _ = f.seek(SeekFrom::Start(0));
            pending.clear();
            continue;
        }
        if ended {
            return Ok(());
        }
        // One more read after the container ended: what its monitor wrote last.
        ended = !running();
        if !ended {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00"), Some(1_000_000_000));
        assert_eq!(
            parse_time("2024-03-01T00:00:00.000000001Z"),
            Some(1_709_251_200_000_000_001)
        );
        for bad in [
            "",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "x".repeat(30).as_str(),
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        let now = 10_000_000_000_000;
        assert_eq!(parse_since("10m", now).ok(), Some(now - 600_000_000_000));
        assert_eq!(
            parse_since("1h30m", now).ok(),
            Some(now - 5_400_000_000_000)
        );
        assert_eq!(
            parse_since("1700000000", now).ok(),
            Some(1_700_000_000_000_000_000)
        );
        let e = parse_since("yesterday", now).expect_err("bad").to_string();
        assert!(e.contains("yesterday"), "{e}");
    }

    #[test]
    fn log_opts() {
        let m = LogOpts::parse_args(&["max-size=1k,max-file=2".into()]).expect("ok");
        let o = LogOpts::from_map(&m).expect("ok");
        assert_eq!(o.max_size, Some(1024));
        assert_eq!(o.max_file, 2);
        for bad in [
            "max-size=x",
            "max-file=0",
            "colour=red",
            "max-file=3",
            "nokv",
        ] {
            let e = LogOpts::parse_args(&[bad.into()])
                .expect_err(bad)
                .to_string();
            assert!(e.contains(bad.split('=').next().unwrap_or(bad)), "{e}");
        }
    }

    #[test]
    fn rotates_and_reads_in_order() {
        let dir = std::env::temp_dir().join(format!("berth-logfiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("ctr.log");
        let opts = LogOpts {
            max_size: Some(300),
            max_file: 3,
        };
        let mut w = RotatingLog::open(&path, opts).expect("open");
        for i in 0..100 {
            let line = format!("line{i}\n");
            w.write_entry(&crate::logs::encode(
                line.as_bytes(),
                "stdout",
                "2024-01-01T00:00:00Z",
            ))
            .expect("write");
        }
        let fs = files(&path);
        assert_eq!(fs.len(), 3, "{fs:?}");
        for f in &fs {
            assert!(std::fs::metadata(f).expect("stat").len() <= 300);
        }
        let mut out = Vec::new();
        read(
            &path,
            &ReadOpts::default(),
            || false,
            &mut out,
            &mut Vec::new(),
        )
        .expect("read");
        let text = String::from_utf8(out).expect("utf8");
        let nums: Vec<u32> = text
            .lines()
            .map(|l| l.trim_start_matches("line").parse().expect("n"))
            .collect();
        assert_eq!(nums.last(), Some(&99));
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
