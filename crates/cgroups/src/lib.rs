//! Control groups for berth: one [`CgroupManager`] trait with the cgroup v1, v2 and hybrid
//! (v1 controllers plus a v2 tracking hierarchy) implementations behind it.
//!
//! Invariants: only this crate writes cgroupfs; a container's cgroup path never escapes a
//! hierarchy (`..` is refused); every error names the file it was about. Mount points are
//! discovered from /proc/self/mountinfo, never assumed.
#![forbid(unsafe_code)]

mod devices_v2;
mod fs;
mod mountinfo;
mod resources;

pub use mountinfo::{detect_mode, CgroupMode};

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// A cgroup operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid cgroups path {0:?}: must not contain ..")]
    InvalidPath(String),
    #[error("invalid systemd cgroups path {path:?}: {why}")]
    InvalidSystemdPath { path: String, why: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("read /proc/self/mountinfo: {0}")]
    Mountinfo(std::io::Error),
    #[error("no cgroup hierarchy with any of the controllers {0} is mounted here")]
    NotMounted(String),
}

/// Freezer states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Frozen,
    Thawed,
}

/// What the memory controller recorded about OOM kills.
#[derive(Debug, Clone, Copy, Default)]
pub struct OomInfo {
    pub oom_kill_count: u64,
}

/// One container's cgroup, on whatever hierarchy the host has.
pub trait CgroupManager: std::fmt::Debug {
    /// Creates the cgroup directories (idempotent).
    fn create(&self) -> Result<(), CgroupError>;
    /// Moves a process into the cgroup in every hierarchy; with `in_unified` it is already
    /// in the v2 directory (born there by `clone3(CLONE_INTO_CGROUP)`).
    fn add_task(&self, pid: i32, in_unified: bool) -> Result<(), CgroupError>;
    /// cgroup.procs files a process writes "0" into to join itself.
    fn procs_files(&self) -> Vec<PathBuf>;
    /// Applies OCI resources (runtime-spec config-linux.md "Control groups").
    fn apply_resources(&self, r: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError>;
    /// Every pid in the cgroup and its descendants.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    fn freeze(&self, state: FreezerState) -> Result<(), CgroupError>;
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    fn oom_info(&self) -> Result<OomInfo, CgroupError>;
    /// Removes every directory (children first). Does not kill: see `kill_all`.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// Signals every process (frozen first, so nothing forks away meanwhile).
    fn kill_all(&self, sig: i32) -> Result<(), CgroupError>;
    /// The cgroup's directory per v1 controller name, and "" for the v2 directory.
    fn paths(&self) -> BTreeMap<String, PathBuf>;
    /// Moves the calling thread into the cgroup; threads and processes it starts afterwards
    /// are born there (call it while the process has one thread). v1 hierarchies through
    /// `tasks` ("0": one thread moves without the threadgroup lock, so without waiting for an
    /// RCU grace period); a v2-only host through cgroup.procs (the whole process).
    fn join_thread(&self) -> Result<(), CgroupError>;
    /// Moves the calling thread back to the cgroups its process was in when this manager
    /// was made, so the cgroup can be removed while the process still runs.
    fn leave_thread(&self) -> Result<(), CgroupError>;
    fn mode(&self) -> CgroupMode;
}

/// The cgroup manager of a container on this host. `cgroups_path` is `linux.cgroupsPath`
/// (None: `/berth/<id>`); the systemd form `slice:prefix:name` is mapped to a cgroupfs path.
pub fn manager_for(
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let rel = normalize(cgroups_path, id)?;
    build(rel, None)
}

/// The cgroup of a process that is not a container, such as a microVM's monitor: `path`
/// (from each hierarchy's root; `..` is refused) in the v1 hierarchies that have one of
/// `controllers`, or in the unified hierarchy of a v2-only host. On a hybrid host the v2
/// tracking hierarchy is left out: a process joins it only through cgroup.procs, which waits
/// for an RCU grace period (about 15 ms here), and it holds no limits.
pub fn process_manager(
    path: &Path,
    controllers: &[&str],
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let s = path.to_string_lossy().to_string();
    if !path.is_absolute() {
        return Err(CgroupError::InvalidPath(s));
    }
    let rel = normalize(Some(path), "")?;
    build(rel, Some(controllers))
}

fn build(rel: Rel, only: Option<&[&str]>) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let mounts = mountinfo::read()?;
    let own = mountinfo::own_cgroups();
    let mode = mounts.mode;
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut origin: BTreeMap<String, PathBuf> = BTreeMap::new();
    let here = |mount: &Path, key: &str| -> PathBuf {
        mount.join(
            own.get(key)
                .map(|p| p.trim_start_matches('/'))
                .unwrap_or_default(),
        )
    };
    let place = |mount: &Path, key: &str| -> PathBuf {
        if rel.absolute {
            mount.join(&rel.path)
        } else {
            let base = own
                .get(key)
                .map(|p| p.trim_start_matches('/').to_string())
                .unwrap_or_default();
            mount.join(base).join(&rel.path)
        }
    };
    if mode != CgroupMode::Unified {
        for (ctrls, mount) in &mounts.v1 {
            if only.is_some_and(|o| !ctrls.iter().any(|c| o.contains(&c.as_str()))) {
                continue;
            }
            for c in ctrls {
                dirs.insert(c.clone(), place(mount, &ctrls.join(",")));
                origin.insert(c.clone(), here(mount, &ctrls.join(",")));
            }
        }
    }
    if let Some(u) = &mounts.unified {
        if only.is_none() || mode == CgroupMode::Unified {
            dirs.insert(String::new(), place(u, ""));
            origin.insert(String::new(), here(u, ""));
        }
    }
    if only.is_some() && dirs.is_empty() {
        return Err(CgroupError::NotMounted(only.unwrap_or_default().join(", ")));
    }
    Ok(Box::new(fs::FsManager { mode, dirs, origin }))
}

struct Rel {
    path: PathBuf,
    absolute: bool,
}

/// Whether a `linux.cgroupsPath` has systemd's form `slice:prefix:name`.
pub fn is_systemd_path(s: &str) -> bool {
    !s.starts_with('/') && s.matches(':').count() == 2
}

/// The cgroupfs path systemd gives `slice:prefix:name` (runc's `--systemd-cgroup` form),
/// for a host without systemd: the slice expanded into its parents (`a-b.slice` is
/// `/a.slice/a-b.slice`, `-.slice` the root; empty means `system.slice`), and below it
/// the unit `prefix-name.scope` (`name.scope` without a prefix, `name` itself when it is a
/// `.slice`). Names are single path components: no `/`, and no `..`.
pub fn systemd_path(s: &str) -> Result<PathBuf, CgroupError> {
    let bad = |why: &str| CgroupError::InvalidSystemdPath {
        path: s.to_string(),
        why: why.to_string(),
    };
    let parts: Vec<&str> = s.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(bad("want slice:prefix:name"));
    };
    let plain = |v: &str| !v.contains('/') && v != "." && v != "..";
    if ![slice, prefix, name].iter().all(|v| plain(v)) {
        return Err(bad("a part contains / or is . or .."));
    }
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = PathBuf::from("/");
    if slice != "-.slice" {
        let Some(stem) = slice.strip_suffix(".slice") else {
            return Err(bad("the slice must end in .slice"));
        };
        let words: Vec<&str> = stem.split('-').collect();
        if words.iter().any(|w| w.is_empty()) {
            return Err(bad("the slice has an empty dash-separated part"));
        }
        for i in 1..=words.len() {
            path.push(format!("{}.slice", words[..i].join("-")));
        }
    }
    if name.ends_with(".slice") {
        path.push(name);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

fn normalize(p: Option<&Path>, id: &str) -> Result<Rel, CgroupError> {
    let default = PathBuf::from(format!("/berth/{id}"));
    let p = p.map(Path::to_path_buf).unwrap_or(default);
    let s = p.to_string_lossy().to_string();
    // systemd's "slice:prefix:name"
    let p = if is_systemd_path(&s) {
        systemd_path(&s)?
    } else {
        p
    };
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(CgroupError::InvalidPath(s));
    }
    let absolute = p.is_absolute();
    let path: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if path.as_os_str().is_empty() {
        return Err(CgroupError::InvalidPath(s));
    }
    Ok(Rel { path, absolute })
}

/// Polls `f` until it returns true or `timeout` passes.
pub(crate) fn poll(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            normalize(None, "x").map(|r| r.path).ok(),
            Some(PathBuf::from("berth/x"))
        );
        assert!(normalize(Some(Path::new("/a/../b")), "x").is_err());
        let r = normalize(Some(Path::new("machine.slice:libpod:abc")), "x").ok();
        assert_eq!(
            r.map(|r| r.path),
            Some(PathBuf::from("machine.slice/libpod-abc.scope"))
        );
        assert!(normalize(Some(Path::new("rel/x")), "x").is_ok_and(|r| !r.absolute));
    }

    #[test]
    fn systemd_paths_expand_their_slice() {
        let p = |s: &str| systemd_path(s).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(
            p("a-b-c.slice:pre:id").ok().as_deref(),
            Some("/a.slice/a-b.slice/a-b-c.slice/pre-id.scope")
        );
        assert_eq!(
            p(":runc:x").ok().as_deref(),
            Some("/system.slice/runc-x.scope")
        );
        assert_eq!(p("-.slice::x").ok().as_deref(), Some("/x.scope"));
        assert_eq!(
            p("user.slice:p:sub.slice").ok().as_deref(),
            Some("/user.slice/sub.slice")
        );
        for bad in [
            "a:b:",
            "nosuffix:p:x",
            "a--b.slice:p:x",
            "x.slice:p:..",
            "x.slice:a/b:c",
            "../x.slice:p:n",
        ] {
            assert!(
                matches!(
                    systemd_path(bad),
                    Err(CgroupError::InvalidSystemdPath { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn process_paths_are_absolute_and_stay_inside() {
        for bad in ["berth-vm/x", "/berth-vm/../x", "/"] {
            assert!(
                matches!(
                    process_manager(Path::new(bad), &["memory"]),
                    Err(CgroupError::InvalidPath(_))
                ),
                "{bad}"
            );
        }
    }
}
