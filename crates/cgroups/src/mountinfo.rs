//! Finding the cgroup hierarchies: /proc/self/mountinfo and /proc/self/cgroup.

use crate::CgroupError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupMode {
    /// cgroup v1 only.
    #[default]
    Legacy,
    /// v1 controllers plus a v2 hierarchy (usually /sys/fs/cgroup/unified) for tracking.
    Hybrid,
    /// cgroup v2 only.
    Unified,
}

/// The hierarchies found.
#[derive(Debug, Default)]
pub struct Mounts {
    /// (controllers of one v1 hierarchy, its mount point); `name=systemd` appears as "systemd".
    pub v1: Vec<(Vec<String>, PathBuf)>,
    pub unified: Option<PathBuf>,
    pub mode: CgroupMode,
}

/// Parses mountinfo text.
pub fn parse(text: &str) -> Mounts {
    let mut m = Mounts::default();
    for line in text.lines() {
        // id parent maj:min root mountpoint options [optional...] - fstype source superoptions
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let mountpoint = PathBuf::from(l[4].replace("\\040", " "));
        match r[0] {
            "cgroup2" if m.unified.is_none() || mountpoint.as_os_str() == "/sys/fs/cgroup" => {
                m.unified = Some(mountpoint);
            }
            "cgroup" => {
                let ctrls: Vec<String> = r[2]
                    .split(',')
                    .filter_map(|o| match o {
                        "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                        | "clone_children" | "xattr" => None,
                        o if o.starts_with("release_agent=") => None,
                        o => Some(o.strip_prefix("name=").unwrap_or(o).to_string()),
                    })
                    .collect();
                if !ctrls.is_empty() && !m.v1.iter().any(|(c, _)| *c == ctrls) {
                    m.v1.push((ctrls, mountpoint));
                }
            }
            _ => {}
        }
    }
    m.mode = match (&m.unified, m.v1.is_empty()) {
        (Some(_), true) => CgroupMode::Unified,
        (Some(_), false) => CgroupMode::Hybrid,
        (None, _) => CgroupMode::Legacy,
    };
    m
}

pub fn read() -> Result<Mounts, CgroupError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Mountinfo)?;
    Ok(parse(&text))
}

/// This host's cgroup mode.
pub fn detect_mode() -> Result<CgroupMode, CgroupError> {
    Ok(read()?.mode)
}

/// Our own cgroup per hierarchy, keyed by the comma-joined controller list ("" for v2), from
/// /proc/self/cgroup; relative container paths hang below these.
pub fn own_cgroups() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            Some((ctrls.replace("name=", ""), path.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn hybrid() {
        let m = parse(HYBRID);
        assert_eq!(m.mode, CgroupMode::Hybrid);
        assert_eq!(m.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(m.v1.len(), 3);
        assert_eq!(m.v1[2].0, vec!["systemd".to_string()]);
    }

    #[test]
    fn unified_and_legacy_and_comounted() {
        let m = parse("25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(m.mode, CgroupMode::Unified);
        let m =
            parse("31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n");
        assert_eq!(m.mode, CgroupMode::Legacy);
        assert_eq!(m.v1[0].0, vec!["cpu".to_string(), "cpuacct".to_string()]);
    }
}
