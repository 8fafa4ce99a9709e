//! `stats`: a container's resource use from its cgroup (v1 controllers or the v2 unified
//! hierarchy, whichever the host has) and its network namespace.
//!
//! - CPU: v1 `cpuacct.usage` (ns), v2 `cpu.stat` `usage_usec`; the percentage is the
//!   usage between two samples over the wall time between them (100 % = one CPU, as
//!   Docker's).
//! - Memory: usage minus the inactive page cache (Docker's figure: v1 `memory.usage_in_bytes`
//!   − `total_inactive_file`, v2 `memory.current` − `inactive_file`); the limit is the
//!   cgroup's, or the host's memory when it has none.
//! - Block I/O: v1 `blkio.throttle.io_service_bytes(_recursive)` Read/Write, v2 `io.stat`
//!   `rbytes`/`wbytes`.
//! - Network: `/proc/<init>/net/dev` without `lo`; nothing when the container shares the
//!   host's network namespace.
//! - PIDs: `pids.current`, else the cgroup's process count.

use crate::container::{alive, Engine};
use crate::db::Container;
use crate::error::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One sample of one container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_ns: u64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn read_u64(p: &Path) -> Option<u64> {
    read(p)?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The host's memory (`MemTotal` of /proc/meminfo), in bytes.
fn host_memory() -> u64 {
    read(Path::new("/proc/meminfo"))
        .and_then(|t| {
            t.lines().find_map(|l| {
                let kb = l.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB");
                kb.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// The container's cgroup directories: v1 controller name → dir, "" → the v2 dir.
fn cgroup_dirs(id: &str) -> BTreeMap<String, PathBuf> {
    let rel = format!("/berth/{id}");
    cgroups::manager_for(Some(Path::new(&rel)), id)
        .map(|m| m.paths())
        .unwrap_or_default()
}

/// Received and sent bytes of every interface but `lo` in `/proc/<pid>/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0u64, 0u64);
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() >= 9 {
            rx = rx.saturating_add(f[0]);
            tx = tx.saturating_add(f[8]);
        }
    }
    (rx, tx)
}

/// Read and written bytes of v1 `blkio.*io_service_bytes*` (`MAJ:MIN Read N` lines).
pub fn parse_blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [_, op, n] = f.as_slice() {
            let n: u64 = n.parse().unwrap_or(0);
            match *op {
                "Read" => r = r.saturating_add(n),
                "Write" => w = w.saturating_add(n),
                _ => {}
            }
        }
    }
    (r, w)
}

/// Read and written bytes of v2 `io.stat` (`MAJ:MIN rbytes=N wbytes=N …` lines).
pub fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for kv in text.split_whitespace() {
        if let Some(n) = kv.strip_prefix("rbytes=") {
            r = r.saturating_add(n.parse().unwrap_or(0));
        } else if let Some(n) = kv.strip_prefix("wbytes=") {
            w = w.saturating_add(n.parse().unwrap_or(0));
        }
    }
    (r, w)
}

/// A sample of a running container (zeros for one that is not).
pub fn sample(c: &Container) -> Sample {
    let mut s = Sample::default();
    if !alive(c.pid, c.pid_start) {
        return s;
    }
    let dirs = cgroup_dirs(&c.id);
    let v1 = |ctrl: &str| dirs.get(ctrl).filter(|d| d.is_dir());
    let v2 = dirs.get("").filter(|d| d.is_dir());
    // CPU.
    if let Some(n) = v1("cpuacct").and_then(|d| read_u64(&d.join("cpuacct.usage"))) {
        s.cpu_ns = n;
    } else if let Some(us) = v2.and_then(|d| keyed(&read(&d.join("cpu.stat"))?, "usage_usec")) {
        s.cpu_ns = us.saturating_mul(1000);
    }
    // Memory.
    let host = host_memory();
    if let Some(d) = v1("memory") {
        let usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
        let inactive = read(&d.join("memory.stat"))
            .and_then(|t| keyed(&t, "total_inactive_file"))
            .unwrap_or(0);
        s.mem_usage = usage.saturating_sub(inactive);
        s.mem_limit = read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(u64::MAX);
    } else if let Some(d) = v2 {
        let usage = read_u64(&d.join("memory.current")).unwrap_or(0);
        let inactive = read(&d.join("memory.stat"))
            .and_then(|t| keyed(&t, "inactive_file"))
            .unwrap_or(0);
        s.mem_usage = usage.saturating_sub(inactive);
        s.mem_limit = read_u64(&d.join("memory.max")).unwrap_or(u64::MAX);
    }
    if s.mem_limit == 0 || (host > 0 && s.mem_limit > host) {
        s.mem_limit = host;
    }
    // Block I/O.
    if let Some(d) = v1("blkio") {
        let t = [
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
            "blkio.io_service_bytes_recursive",
        ]
        .iter()
        .find_map(|f| read(&d.join(f)));
        (s.blk_read, s.blk_write) = t.as_deref().map_or((0, 0), parse_blkio_v1);
    } else if let Some(t) = v2.and_then(|d| read(&d.join("io.stat"))) {
        (s.blk_read, s.blk_write) = parse_io_stat(&t);
    }
    // PIDs.
    s.pids = v1("pids")
        .or(v2)
        .and_then(|d| read_u64(&d.join("pids.current")))
        .or_else(|| {
            let m = cgroups::manager_for(Some(Path::new(&format!("/berth/{}", c.id))), &c.id);
            m.ok()?.pids().ok().map(|p| p.len() as u64)
        })
        .unwrap_or(0);
    // Network, when the container has a namespace of its own.
    let ns = |p: &str| std::fs::read_link(p).ok();
    let own_netns = ns(&format!("/proc/{}/ns/net", c.pid)) != ns("/proc/self/ns/net");
    if own_netns {
        if let Some(t) = read(Path::new(&format!("/proc/{}/net/dev", c.pid))) {
            (s.net_rx, s.net_tx) = parse_net_dev(&t);
        }
    }
    s
}

/// One row of `stats`: two samples' worth.
#[derive(Clone, Debug)]
pub struct Row {
    pub container: Container,
    pub now: Sample,
    /// CPU use between the samples, in percent of one CPU.
    pub cpu_percent: f64,
    pub mem_percent: f64,
}

impl Engine {
    /// Samples `containers` twice, `interval` apart (or once against `previous`).
    pub fn stats(
        &self,
        containers: &[Container],
        previous: Option<(&[Sample], Instant)>,
        interval: std::time::Duration,
    ) -> Result<(Vec<Row>, Vec<Sample>, Instant)> {
        let (before, t0) = match previous {
            Some((p, t)) if p.len() == containers.len() => (p.to_vec(), t),
            _ => {
                let t = Instant::now();
                let s: Vec<Sample> = containers.iter().map(sample).collect();
                std::thread::sleep(interval);
                (s, t)
            }
        };
        let t1 = Instant::now();
        let after: Vec<Sample> = containers.iter().map(sample).collect();
        let wall = t1.duration_since(t0).as_nanos().max(1) as f64;
        let rows = containers
            .iter()
            .zip(before.iter().zip(after.iter()))
            .map(|(c, (b, a))| Row {
                container: c.clone(),
                now: a.clone(),
                cpu_percent: a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / wall * 100.0,
                mem_percent: if a.mem_limit > 0 {
                    a.mem_usage as f64 / a.mem_limit as f64 * 100.0
                } else {
                    0.0
                },
            })
            .collect();
        Ok((rows, after, t1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroup_and_proc_files() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 1500 3 0 0 0 0 0 0 700 2 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev), (1500, 700));
        let v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12288\nTotal 12288\n";
        assert_eq!(parse_blkio_v1(v1), (4096, 8192));
        let v2 = "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n";
        assert_eq!(parse_io_stat(v2), (11, 22));
        assert_eq!(
            keyed("usage_usec 42\nuser_usec 1\n", "usage_usec"),
            Some(42)
        );
        assert_eq!(parse_net_dev("garbage"), (0, 0));
    }
}
