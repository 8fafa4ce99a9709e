//! `events [--stats] [--interval D]`: runc's container events as JSON lines on stdout.
//!
//! Each line is `{"type":"stats","id":ID,"data":STATS}` (runc's `types.Event` with its
//! `types.Stats`: cpu, cpuset, memory, pids, blkio, hugetlb, intel_rdt,
//! network_interfaces), and `{"type":"oom","id":ID}` when the memory controller's OOM kill
//! count grows. `--stats` prints one stats line and exits; otherwise a line every interval
//! (default 5 s) until the container stops.

use crate::error::{Error, Result};
use crate::state::{self, Store};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Parses a Go-style duration as runc's `--interval` takes it: `5s`, `100ms`, `1m30s`,
/// `1.5s`, `250us`, `1h`.
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || {
        Error::Usage(format!(
            "--interval {s:?}: want a duration such as 5s, 500ms or 1m"
        ))
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if !(total > 0.0 && total < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    let s = read(path)?;
    let s = s.trim();
    // v2 limits say "max"; v1's unlimited is a huge number, reported as is (runc's too).
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
fn keyed(path: &Path) -> BTreeMap<String, u64> {
    read(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// runc's `blkio` entries from a v1 `blkio.*` file (`MAJ:MIN Op value` lines).
fn blkio_entries(path: &Path) -> Vec<Value> {
    read(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, v] = f[..] else { return None };
            let (ma, mi) = dev.split_once(':')?;
            Some(json!({
                "major": ma.parse::<u64>().ok()?, "minor": mi.parse::<u64>().ok()?,
                "op": op, "value": v.parse::<u64>().ok()?
            }))
        })
        .collect()
}

/// USER_HZ ticks (cpuacct.stat) to nanoseconds, as runc converts them.
const NS_PER_TICK: u64 = 1_000_000_000 / 100;

fn memory_entry(d: &Path, prefix: &str) -> Value {
    let f = |name: &str| read_u64(&d.join(format!("{prefix}.{name}"))).unwrap_or(0);
    json!({
        "limit": f("limit_in_bytes"),
        "usage": f("usage_in_bytes"),
        "max": f("max_usage_in_bytes"),
        "failcnt": f("failcnt"),
    })
}

fn stats_v1(paths: &BTreeMap<String, PathBuf>) -> Value {
    let dir = |c: &str| paths.get(c).cloned();
    let mut s = Map::new();
    let mut cpu = json!({"usage": {}, "throttling": {}});
    if let Some(d) = dir("cpuacct") {
        let st = keyed(&d.join("cpuacct.stat"));
        let percpu: Vec<u64> = read(&d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        cpu["usage"] = json!({
            "total": read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
            "percpu": percpu,
            "kernel": st.get("system").copied().unwrap_or(0) * NS_PER_TICK,
            "user": st.get("user").copied().unwrap_or(0) * NS_PER_TICK,
        });
    }
    if let Some(d) = dir("cpu") {
        let st = keyed(&d.join("cpu.stat"));
        cpu["throttling"] = json!({
            "periods": st.get("nr_periods").copied().unwrap_or(0),
            "throttledPeriods": st.get("nr_throttled").copied().unwrap_or(0),
            "throttledTime": st.get("throttled_time").copied().unwrap_or(0),
        });
    }
    s.insert("cpu".into(), cpu);
    let mut memory = json!({});
    if let Some(d) = dir("memory") {
        let raw = keyed(&d.join("memory.stat"));
        memory = json!({
            "cache": raw.get("total_cache").or(raw.get("cache")).copied().unwrap_or(0),
            "usage": memory_entry(&d, "memory"),
            "swap": memory_entry(&d, "memory.memsw"),
            "kernel": memory_entry(&d, "memory.kmem"),
            "kernelTCP": memory_entry(&d, "memory.kmem.tcp"),
            "raw": raw,
        });
    }
    s.insert("memory".into(), memory);
    s.insert("pids".into(), pids(dir("pids").as_deref()));
    let mut blkio = json!({});
    if let Some(d) = dir("blkio") {
        blkio = json!({
            "ioServiceBytesRecursive": blkio_entries(&d.join("blkio.throttle.io_service_bytes_recursive")),
            "ioServicedRecursive": blkio_entries(&d.join("blkio.throttle.io_serviced_recursive")),
        });
    }
    s.insert("blkio".into(), blkio);
    Value::Object(s)
}

fn pids(d: Option<&Path>) -> Value {
    let Some(d) = d else { return json!({}) };
    let mut p = json!({ "current": read_u64(&d.join("pids.current")).unwrap_or(0) });
    if let Some(l) = read_u64(&d.join("pids.max")).filter(|l| *l != u64::MAX) {
        p["limit"] = json!(l);
    }
    p
}

fn stats_v2(d: &Path) -> Value {
    let cpu = keyed(&d.join("cpu.stat"));
    let mem = keyed(&d.join("memory.stat"));
    let g = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let entry = |name: &str| {
        json!({
            "limit": read_u64(&d.join(format!("{name}.max"))).unwrap_or(0),
            "usage": read_u64(&d.join(format!("{name}.current"))).unwrap_or(0),
            "max": read_u64(&d.join(format!("{name}.peak"))).unwrap_or(0),
            "failcnt": g(&keyed(&d.join(format!("{name}.events"))), "max"),
        })
    };
    let mut blk = Vec::new();
    for l in read(&d.join("io.stat")).unwrap_or_default().lines() {
        let mut f = l.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let op = match k {
                "rbytes" => "Read",
                "wbytes" => "Write",
                _ => continue,
            };
            if let (Ok(ma), Ok(mi), Ok(v)) =
                (ma.parse::<u64>(), mi.parse::<u64>(), v.parse::<u64>())
            {
                blk.push(json!({"major": ma, "minor": mi, "op": op, "value": v}));
            }
        }
    }
    json!({
        "cpu": {
            "usage": {
                "total": g(&cpu, "usage_usec") * 1000,
                "kernel": g(&cpu, "system_usec") * 1000,
                "user": g(&cpu, "user_usec") * 1000,
            },
            "throttling": {
                "periods": g(&cpu, "nr_periods"),
                "throttledPeriods": g(&cpu, "nr_throttled"),
                "throttledTime": g(&cpu, "throttled_usec") * 1000,
            }
        },
        "memory": {
            "cache": g(&mem, "file"),
            "usage": entry("memory"),
            "swap": entry("memory.swap"),
            "raw": mem,
        },
        "pids": pids(Some(d)),
        "blkio": { "ioServiceBytesRecursive": blk },
    })
}

/// The container's cgroup statistics in runc's `types.Stats` shape.
pub fn stats(st: &state::State) -> Result<Value> {
    let paths = super::cgroup_of(st)?.paths();
    let mut s = if paths.contains_key("memory") || paths.contains_key("cpuacct") {
        stats_v1(&paths)
    } else if let Some(d) = paths.get("") {
        stats_v2(d)
    } else {
        json!({})
    };
    if let Value::Object(m) = &mut s {
        m.insert("cpuset".into(), json!({}));
        m.insert("hugetlb".into(), json!({}));
        m.insert("intel_rdt".into(), json!({}));
        m.insert("network_interfaces".into(), Value::Null);
    }
    Ok(s)
}

fn oom_kills(st: &state::State) -> u64 {
    super::cgroup_of(st)
        .and_then(|m| Ok(m.oom_info()?))
        .map(|o| o.oom_kill_count)
        .unwrap_or(0)
}

fn emit(line: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::Usage(format!("events: write stdout: {e}")))
}

/// Runs `events`.
pub fn events(store: &Store, id: &str, once: bool, interval: Duration) -> Result<()> {
    let st = store.load(id)?;
    let status = state::status(store, &st);
    if status == state::Status::Stopped {
        return Err(Error::BadState {
            verb: "get events of",
            id: id.to_string(),
            status: status.to_string(),
        });
    }
    let event = |st: &state::State| -> Result<Value> {
        Ok(json!({"type": "stats", "id": id, "data": stats(st)?}))
    };
    if once {
        return emit(&event(&st)?);
    }
    let mut ooms = oom_kills(&st);
    loop {
        if state::status(store, &st) == state::Status::Stopped {
            return Ok(());
        }
        let now = oom_kills(&st);
        if now > ooms {
            emit(&json!({"type": "oom", "id": id}))?;
            ooms = now;
        }
        emit(&event(&st)?)?;
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_interval("100ms").ok(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(parse_interval("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_interval("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "5", "s", "5x", "-1s", "0s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
