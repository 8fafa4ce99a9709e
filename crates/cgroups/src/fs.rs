//! The cgroupfs manager: one directory per hierarchy, written with plain file I/O.

use crate::{poll, CgroupError, CgroupManager, CgroupMode, FreezerState, OomInfo};
use std::collections::BTreeMap;

const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A container's cgroup: its directory in every hierarchy.
#[derive(Debug)]
pub struct FsManager {
    pub mode: CgroupMode,
    /// v1 controller name → dir; "" → the v2 dir (unified or hybrid tracking).
    pub dirs: BTreeMap<String, PathBuf>,
    /// The same keys → the creating process's own cgroup there (where `leave_thread` goes).
    pub origin: BTreeMap<String, PathBuf>,
}

pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|source| CgroupError::Io {
        op: "write",
        path,
        source,
    })
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
        op: "read",
        path,
        source,
    })
}

/// The value of `key` in a flat-keyed file such as memory.events.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

impl FsManager {
    fn unique_dirs(&self) -> Vec<&PathBuf> {
        let mut v: Vec<&PathBuf> = self.dirs.values().collect();
        v.sort();
        v.dedup();
        v
    }

    pub(crate) fn dir(&self, ctrl: &str) -> Option<&PathBuf> {
        self.dirs.get(ctrl)
    }

    fn v2(&self) -> Option<&PathBuf> {
        (self.mode == CgroupMode::Unified)
            .then(|| self.dirs.get(""))
            .flatten()
    }

    /// v1 cpuset dirs start empty and refuse tasks until cpus and mems are set: copy them
    /// down from the nearest ancestor that has them.
    fn init_cpuset(&self, dir: &Path) -> Result<(), CgroupError> {
        let mut chain: Vec<&Path> = dir
            .ancestors()
            .take_while(|p| p.join("cpuset.cpus").exists())
            .collect();
        chain.reverse();
        for w in chain.windows(2) {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if read(w[1], f)?.trim().is_empty() {
                    let v = read(w[0], f)?;
                    write(w[1], f, v.trim())?;
                }
            }
        }
        Ok(())
    }

    /// v2: enable every available controller down the path, so the container's dir has them.
    fn enable_controllers(&self, dir: &Path) {
        let mut chain: Vec<&Path> = dir
            .ancestors()
            .skip(1)
            .take_while(|p| p.join("cgroup.controllers").exists())
            .collect();
        chain.reverse();
        for p in chain {
            if let Ok(c) = read(p, "cgroup.controllers") {
                for ctrl in c.split_whitespace() {
                    let _ = write(p, "cgroup.subtree_control", &format!("+{ctrl}"));
                }
            }
        }
    }

    fn pids_dir(&self) -> Option<&PathBuf> {
        ["pids", "memory", "freezer", ""]
            .iter()
            .find_map(|k| self.dirs.get(*k))
            .or_else(|| self.dirs.values().next())
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    match read(dir, "cgroup.procs") {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(CgroupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

/// Writes "0" (the caller) into `tasks` of every v1 directory of `dirs`, or into the v2
/// directory's cgroup.procs (v2 has no per-thread move between domains).
fn move_thread(mode: CgroupMode, dirs: &BTreeMap<String, PathBuf>) -> Result<(), CgroupError> {
    let mut seen: Vec<&PathBuf> = Vec::new();
    for (key, d) in dirs {
        if seen.contains(&d) {
            continue;
        }
        seen.push(d);
        let file = if key.is_empty() {
            "cgroup.procs"
        } else {
            "tasks"
        };
        if key.is_empty() && mode != CgroupMode::Unified {
            // The hybrid tracking hierarchy: joined by the whole process or not at all.
            continue;
        }
        write(d, file, "0")?;
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    // Most cgroups have no children: try the directory itself first.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    let mut last = None;
    let gone = poll(Duration::from_secs(2), || match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            last = Some(e);
            false
        }
    });
    match (gone, last) {
        (false, Some(source)) => Err(CgroupError::Io {
            op: "remove",
            path: dir.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

impl CgroupManager for FsManager {
    fn create(&self) -> Result<(), CgroupError> {
        for d in self.unique_dirs() {
            std::fs::create_dir_all(d).map_err(|source| CgroupError::Io {
                op: "create",
                path: d.clone(),
                source,
            })?;
        }
        if let Some(d) = self.dir("cpuset") {
            self.init_cpuset(d)?;
        }
        if let Some(d) = self.v2() {
            self.enable_controllers(d);
        }
        Ok(())
    }

    fn add_task(&self, pid: i32, in_v1: bool, in_unified: bool) -> Result<(), CgroupError> {
        let unified = self.dirs.get("");
        for d in self.unique_dirs() {
            let skip = if Some(d) == unified {
                in_unified
            } else {
                in_v1
            };
            if !skip {
                write(d, "cgroup.procs", &pid.to_string())?;
            }
        }
        Ok(())
    }

    fn procs_files(&self) -> Vec<PathBuf> {
        self.unique_dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    fn apply_resources(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        if let Some(d) = self.v2() {
            crate::resources::apply_v2(d, r)
        } else {
            crate::resources::apply_v1(self, r)
        }
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        if let Some(d) = self.pids_dir() {
            collect_pids(d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn freeze(&self, state: FreezerState) -> Result<(), CgroupError> {
        if let Some(d) = self.v2() {
            write(
                d,
                "cgroup.freeze",
                if state == FreezerState::Frozen {
                    "1"
                } else {
                    "0"
                },
            )?;
            let want = if state == FreezerState::Frozen { 1 } else { 0 };
            poll(Duration::from_secs(2), || {
                read(d, "cgroup.events")
                    .ok()
                    .and_then(|t| keyed(&t, "frozen"))
                    == Some(want)
            });
            return Ok(());
        }
        let d = self.dir("freezer").ok_or_else(|| {
            CgroupError::Unsupported("no freezer cgroup hierarchy on this host".into())
        })?;
        let want = if state == FreezerState::Frozen {
            "FROZEN"
        } else {
            "THAWED"
        };
        // A freeze can stay in FREEZING while tasks are busy: write again until it settles.
        let ok = poll(Duration::from_secs(5), || {
            let _ = write(d, "freezer.state", want);
            read(d, "freezer.state").is_ok_and(|s| s.trim() == want)
        });
        if !ok {
            let _ = write(d, "freezer.state", "THAWED");
            return Err(CgroupError::Unsupported(format!(
                "{}: freezer did not reach {want}",
                d.display()
            )));
        }
        Ok(())
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        let frozen = if let Some(d) = self.v2() {
            read(d, "cgroup.events")
                .ok()
                .and_then(|t| keyed(&t, "frozen"))
                == Some(1)
        } else if let Some(d) = self.dir("freezer") {
            read(d, "freezer.state")?.trim() != "THAWED"
        } else {
            false
        };
        Ok(if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        })
    }

    fn oom_info(&self) -> Result<OomInfo, CgroupError> {
        let n = if let Some(d) = self.v2() {
            keyed(&read(d, "memory.events")?, "oom_kill")
        } else {
            let d = self
                .dir("memory")
                .ok_or_else(|| CgroupError::Unsupported("no memory cgroup hierarchy".into()))?;
            keyed(&read(d, "memory.oom_control")?, "oom_kill")
        };
        Ok(OomInfo {
            oom_kill_count: n.unwrap_or(0),
        })
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        for d in self.unique_dirs() {
            if d.exists() {
                remove_tree(d)?;
            }
        }
        Ok(())
    }

    fn kill_all(&self, sig: i32) -> Result<(), CgroupError> {
        if let Some(d) = self.v2() {
            if sig == SIGKILL && d.join("cgroup.kill").exists() {
                return write(d, "cgroup.kill", "1");
            }
        }
        let can_freeze = self.v2().is_some() || self.dir("freezer").is_some();
        let was_frozen = self
            .freezer_state()
            .is_ok_and(|s| s == FreezerState::Frozen);
        if can_freeze && !was_frozen {
            let _ = self.freeze(FreezerState::Frozen);
        }
        for pid in self.pids()? {
            let _ = sys::process::send_signal(pid, sig);
        }
        if can_freeze && (!was_frozen || sig == SIGKILL) {
            let _ = self.freeze(FreezerState::Thawed);
        }
        Ok(())
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        self.dirs.clone()
    }

    fn join_thread(&self) -> Result<(), CgroupError> {
        move_thread(self.mode, &self.dirs)
    }

    fn leave_thread(&self) -> Result<(), CgroupError> {
        move_thread(self.mode, &self.origin)
    }

    fn mode(&self) -> CgroupMode {
        self.mode
    }
}
