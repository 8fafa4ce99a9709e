//! Writing `linux.resources` to cgroupfs: the v1 file names, and the v2 names with the
//! conversions runc and crun use (cpu shares → cpu.weight, blkio weight → io.weight).

use crate::fs::{read, write, FsManager};
use crate::CgroupError;
use oci_spec::runtime::{LinuxBlockIo, LinuxResources};
use std::path::Path;

/// cgroup v1 cpu.shares (2..262144) → v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

fn need<'a>(m: &'a FsManager, ctrl: &str) -> Result<&'a Path, CgroupError> {
    m.dir(ctrl).map(|p| p.as_path()).ok_or_else(|| {
        CgroupError::Unsupported(format!("the {ctrl} controller is not mounted on this host"))
    })
}

fn limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// Writes `a` then `b`; if the first write is refused (a v1 memory limit above the current
/// memsw limit, or the reverse), writes them in the other order.
fn ordered(dir: &Path, a: (&str, String), b: (&str, String)) -> Result<(), CgroupError> {
    if write(dir, a.0, &a.1).is_ok() {
        return write(dir, b.0, &b.1);
    }
    write(dir, b.0, &b.1)?;
    write(dir, a.0, &a.1)
}

fn device_lines(io: &LinuxBlockIo) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for d in io.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            v.push((
                "blkio.weight_device",
                format!("{}:{} {w}", d.major(), d.minor()),
            ));
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            io.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            io.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            io.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            io.throttle_write_iops_device(),
        ),
    ] {
        for d in list.iter().flatten() {
            v.push((file, format!("{}:{} {}", d.major(), d.minor(), d.rate())));
        }
    }
    v
}

pub fn apply_v1(m: &FsManager, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(mem) = r.memory() {
        let d = need(m, "memory")?;
        let memsw = d.join("memory.memsw.limit_in_bytes").exists();
        match (mem.limit(), mem.swap()) {
            (Some(l), Some(s)) if memsw => ordered(
                d,
                ("memory.limit_in_bytes", limit(l)),
                ("memory.memsw.limit_in_bytes", limit(s)),
            )?,
            (Some(l), Some(s)) if s == l || s < 0 => write(d, "memory.limit_in_bytes", &limit(l))?,
            (_, Some(s)) if !memsw => {
                return Err(CgroupError::Unsupported(format!(
                "memory.swap {s}: {} has no memory.memsw.limit_in_bytes (swap accounting is off)",
                d.display()
            )))
            }
            (Some(l), None) => write(d, "memory.limit_in_bytes", &limit(l))?,
            (None, Some(s)) => write(d, "memory.memsw.limit_in_bytes", &limit(s))?,
            _ => {}
        }
        if let Some(v) = mem.reservation() {
            write(d, "memory.soft_limit_in_bytes", &limit(v))?;
        }
        if let Some(v) = mem.swappiness() {
            write(d, "memory.swappiness", &v.to_string())?;
        }
        if let Some(true) = mem.disable_oom_killer() {
            write(d, "memory.oom_control", "1")?;
        }
    }
    if let Some(cpu) = r.cpu() {
        if cpu.shares().is_some()
            || cpu.quota().is_some()
            || cpu.period().is_some()
            || cpu.realtime_runtime().is_some()
            || cpu.realtime_period().is_some()
        {
            let d = need(m, "cpu")?;
            if let Some(v) = cpu.shares() {
                write(d, "cpu.shares", &v.to_string())?;
            }
            if let Some(v) = cpu.period() {
                write(d, "cpu.cfs_period_us", &v.to_string())?;
            }
            if let Some(v) = cpu.quota() {
                write(d, "cpu.cfs_quota_us", &limit(v))?;
            }
            if let Some(v) = cpu.realtime_period() {
                write(d, "cpu.rt_period_us", &v.to_string())?;
            }
            if let Some(v) = cpu.realtime_runtime() {
                write(d, "cpu.rt_runtime_us", &v.to_string())?;
            }
        }
        if let Some(v) = cpu.cpus().as_deref().filter(|v| !v.is_empty()) {
            write(need(m, "cpuset")?, "cpuset.cpus", v)?;
        }
        if let Some(v) = cpu.mems().as_deref().filter(|v| !v.is_empty()) {
            write(need(m, "cpuset")?, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        write(need(m, "pids")?, "pids.max", &v)?;
    }
    if let Some(io) = r.block_io() {
        let lines = device_lines(io);
        if io.weight().is_some() || io.leaf_weight().is_some() || !lines.is_empty() {
            let d = need(m, "blkio")?;
            if let Some(w) = io.weight() {
                let file = if d.join("blkio.weight").exists() {
                    "blkio.weight"
                } else {
                    "blkio.bfq.weight"
                };
                write(d, file, &w.to_string())?;
            }
            if let Some(w) = io.leaf_weight() {
                write(d, "blkio.leaf_weight", &w.to_string())?;
            }
            for (file, line) in lines {
                write(d, file, &line)?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        write(
            need(m, "hugetlb")?,
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            &h.limit().to_string(),
        )?;
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write(need(m, "net_cls")?, "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            write(
                need(m, "net_prio")?,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(devs) = r.devices() {
        let d = need(m, "devices")?;
        for rule in devs {
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(d, file, &rule.to_string())?;
        }
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Unsupported(
            "linux.resources.unified needs a cgroup v2 host".into(),
        ));
    }
    Ok(())
}

/// Writes a v2 interface file; when that fails because the file's controller is not enabled
/// in this hierarchy (on a hybrid host it may be bound to a v1 hierarchy instead), the error
/// names the controller and the ones that are available.
fn write_v2(d: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    write(d, file, value).map_err(|e| {
        let ctrl = file.split('.').next().unwrap_or(file);
        let avail = read(d, "cgroup.controllers").unwrap_or_default();
        if ctrl.starts_with("cgroup") || avail.split_whitespace().any(|c| c == ctrl) {
            return e;
        }
        CgroupError::Unsupported(format!(
            "linux.resources: the {ctrl} controller is not available in the cgroup v2 \
             hierarchy at {} (available: {}), so {file} cannot be set",
            d.display(),
            if avail.trim().is_empty() {
                "none"
            } else {
                avail.trim()
            }
        ))
    })
}

pub fn apply_v2(d: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(mem) = r.memory() {
        if let Some(l) = mem.limit() {
            write_v2(d, "memory.max", &max(l))?;
        }
        if let Some(v) = mem.reservation() {
            write_v2(d, "memory.low", &max(v))?;
        }
        if let Some(s) = mem.swap() {
            // OCI swap is memory+swap; v2 limits swap alone.
            let v = match mem.limit() {
                _ if s < 0 => "max".to_string(),
                Some(l) if l >= 0 => (s - l).max(0).to_string(),
                _ => s.to_string(),
            };
            write_v2(d, "memory.swap.max", &v)?;
        }
        if let Some(true) = mem.disable_oom_killer() {
            return Err(CgroupError::Unsupported(
                "memory.disableOOMKiller has no cgroup v2 equivalent".into(),
            ));
        }
    }
    if let Some(cpu) = r.cpu() {
        if let Some(s) = cpu.shares().filter(|s| *s > 0) {
            write_v2(d, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            let period = cpu.period().unwrap_or(100_000);
            let quota = match cpu.quota() {
                Some(q) if q > 0 => q.to_string(),
                Some(_) => "max".into(),
                None => read(d, "cpu.max")?
                    .split_whitespace()
                    .next()
                    .unwrap_or("max")
                    .to_string(),
            };
            write_v2(d, "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(i) = cpu.idle() {
            write_v2(d, "cpu.idle", &i.to_string())?;
        }
        if let Some(v) = cpu.cpus().as_deref().filter(|v| !v.is_empty()) {
            write_v2(d, "cpuset.cpus", v)?;
        }
        if let Some(v) = cpu.mems().as_deref().filter(|v| !v.is_empty()) {
            write_v2(d, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        write_v2(
            d,
            "pids.max",
            &if p.limit() <= 0 {
                "max".into()
            } else {
                p.limit().to_string()
            },
        )?;
    }
    if let Some(io) = r.block_io() {
        if let Some(w) = io.weight() {
            if d.join("io.weight").exists() {
                write(
                    d,
                    "io.weight",
                    &format!("default {}", blkio_to_io_weight(w)),
                )?;
            } else {
                write_v2(d, "io.bfq.weight", &w.to_string())?;
            }
        }
        for (file, line) in device_lines(io) {
            let (dev, val) = line.split_once(' ').unwrap_or((&line, ""));
            let key = match file {
                "blkio.throttle.read_bps_device" => "rbps",
                "blkio.throttle.write_bps_device" => "wbps",
                "blkio.throttle.read_iops_device" => "riops",
                "blkio.throttle.write_iops_device" => "wiops",
                _ => {
                    write_v2(
                        d,
                        "io.weight",
                        &format!("{dev} {}", blkio_to_io_weight(val.parse().unwrap_or(0))),
                    )?;
                    continue;
                }
            };
            write_v2(d, "io.max", &format!("{dev} {key}={val}"))?;
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        write_v2(
            d,
            &format!("hugetlb.{}.max", h.page_size()),
            &h.limit().to_string(),
        )?;
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(CgroupError::Unsupported(format!(
                "linux.resources.unified: invalid key {k:?}"
            )));
        }
        write_v2(d, k, v)?;
    }
    if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
        let prog = crate::devices_v2::compile(rules);
        let dir = std::fs::File::open(d).map_err(|source| CgroupError::Io {
            op: "open",
            path: d.to_path_buf(),
            source,
        })?;
        sys::bpf::attach_device_filter(std::os::fd::AsFd::as_fd(&dir), &prog).map_err(|e| {
            CgroupError::Unsupported(format!("linux.resources.devices on {}: {e}", d.display()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }
}
