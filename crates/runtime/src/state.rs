//! Container state on disk (`<root>/<id>/state.json`) and the status machine that says
//! which verbs are legal (runtime-spec runtime.md "Lifecycle").

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The exec FIFO the init blocks on until `start`; its presence means "created".
pub const EXEC_FIFO: &str = "exec.fifo";
/// Written by an init that failed between `start` and `execve` (a startContainer hook, or
/// the exec itself): what `start` reports.
pub const START_ERROR: &str = "start.err";
const STATE_FILE: &str = "state.json";

/// Container status, as in the OCI state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

impl Status {
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    /// runtime.md "delete": deleting a container that is not stopped must fail and leave
    /// it alone; `--force` (what podman and containerd pass) kills it first.
    pub fn can_delete(self) -> bool {
        self == Status::Stopped
    }
    /// Only running: in "created" the init is still the runtime binary, and a process
    /// exec'd next to it could take hold of /proc/1/exe (CVE-2019-5736).
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
}

/// What we persist about a container. The OCI state is derived from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), to detect pid reuse.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    /// The spec the container was created with (hooks, namespaces, seccomp for exec).
    pub config: Spec,
    /// Without a mount namespace of its own: the mounts its setup made in ours, removed
    /// at delete (see container/host_mounts.rs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_mounts: Vec<crate::container::host_mounts::HostMount>,
}

impl State {
    /// The OCI state document (runtime-spec runtime.md "State") plus runc's extra fields.
    pub fn oci(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": crate::OCI_VERSION,
            "id": self.id,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        });
        if status != Status::Stopped {
            v["pid"] = self.pid.into();
        } else {
            v["pid"] = 0.into();
        }
        let ann: HashMap<String, String> = self.config.annotations().clone().unwrap_or_default();
        if !ann.is_empty() {
            v["annotations"] = serde_json::to_value(ann).unwrap_or_default();
        }
        v
    }
}

/// Checks a container id against runc's grammar; ids become directory names.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        // The runtime's own directory under --root (the compiled seccomp programs).
        && id != crate::process::seccomp::CACHE_DIR
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.into()))
    }
}

/// An exclusive lock on one container, released on drop.
#[derive(Debug)]
pub struct Lock(nix::fcntl::Flock<std::fs::File>);

impl Lock {
    /// In a forked child: close our copy of the descriptor *without* unlocking. flock
    /// belongs to the open file, which the child shares with its parent; an unlock here
    /// would release the parent's lock, and keeping the descriptor open would hold the lock
    /// for as long as the child lives.
    pub fn close_in_child(self) {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&*self.0);
        std::mem::forget(self);
        let _ = nix::unistd::close(fd);
    }
}

/// The state directory tree: `<root>/<id>/`.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates the container's directory; fails if it exists.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root)
                .ctx(|| format!("create {}", self.root.display()))?;
            // State holds every container's config: only root reads it (as runc does).
            let _ = std::fs::set_permissions(
                &self.root,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            );
        }
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.into()))
            }
            Err(e) => Err(Error::Io {
                what: format!("create {}", dir.display()),
                source: e,
            }),
        }
    }

    /// Takes the container's lock (flock on its state directory) for a verb that changes
    /// it, so that concurrent `start`, `kill`, `delete`, … of one container serialize.
    pub fn lock(&self, id: &str) -> Result<Lock> {
        validate_id(id)?;
        let dir = self.dir(id);
        let f = match std::fs::File::open(&dir) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => {
                return Err(Error::Io {
                    what: format!("open {}", dir.display()),
                    source: e,
                })
            }
        };
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| Error::Sys {
                what: format!("lock {}", dir.display()),
                source: e,
            })
    }

    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => {
                return Err(Error::Io {
                    what: format!("read {}", path.display()),
                    source: e,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Init(format!("corrupt state {}: {e}", path.display())))
    }

    /// Writes state.json atomically (temp file + rename).
    pub fn save(&self, st: &State) -> Result<()> {
        let dir = self.dir(&st.id);
        let tmp = dir.join(".state.json.tmp");
        let body = serde_json::to_vec(st).map_err(|e| Error::Init(format!("encode state: {e}")))?;
        let mut f = std::fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(&body)
            .ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).ctx(|| format!("rename {}", tmp.display()))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                what: format!("remove {}", dir.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Ids of every container with a state directory.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }
}

/// Start time of a process (jiffies since boot), or None if it is gone or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // rest starts at field 3 (state); starttime is field 22.
    fields.nth(18)?.parse().ok()
}

/// The live status of a container.
pub fn status(store: &Store, st: &State) -> Status {
    if st.pid <= 0 || process_start_time(st.pid) != Some(st.pid_start) {
        return Status::Stopped;
    }
    if store.dir(&st.id).join(EXEC_FIFO).exists() {
        return Status::Created;
    }
    if crate::container::cgroup_of(st)
        .ok()
        .and_then(|cg| cg.freezer_state().ok())
        .is_some_and(|s| matches!(s, cgroups::FreezerState::Frozen))
    {
        return Status::Paused;
    }
    Status::Running
}

/// RFC 3339 timestamp (UTC, nanoseconds) for now.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// RFC 3339 timestamp (UTC, nanoseconds) of `secs`.`nsec` since the epoch.
pub fn rfc3339(secs: i64, nsec: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nsec:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

/// Paths of a state directory's files.
pub fn fifo_path(dir: &Path) -> PathBuf {
    dir.join(EXEC_FIFO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id(".seccomp-cache").is_err(), "reserved");
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transitions() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(!Status::Running.can_delete());
        assert!(Status::Stopped.can_delete());
        assert!(!Status::Stopped.can_kill());
    }

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
