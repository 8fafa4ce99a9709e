//! RUN: the command runs under `berth-runtime` with the step's overlay mount as its root,
//! the image's environment, working directory and user, and its own network namespace
//! with nothing in it (no network during builds).

use crate::fsroot::clean;
use serde_json::json;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A RUN error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("user {0:?} not found in the image's /etc/passwd")]
    NoUser(String),
    #[error("group {0:?} not found in the image's /etc/group")]
    NoGroup(String),
    #[error("start {runtime}")]
    Spawn {
        runtime: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("command {args:?} exited with status {code}{output}")]
    Failed {
        args: Vec<String>,
        code: i32,
        output: String,
    },
    #[error("bundle {path}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Reads `/etc/<file>` of the image root, confined to it (absent: empty).
fn read_etc(root: &Path, file: &str) -> String {
    let Ok(dir) = fs::File::open(root) else {
        return String::new();
    };
    // Only a regular file: a FIFO or device node there must not hang or feed the build.
    let Ok(f) = sys::resolve::open_regular_in_root(dir.as_fd(), &Path::new("etc").join(file))
    else {
        return String::new();
    };
    let mut s = String::new();
    // A file that is not text has no users for us.
    let _ = f.take(1 << 20).read_to_string(&mut s);
    s
}

fn lookup(db: &str, name: &str, field: usize) -> Option<u32> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(field)?.parse().ok())?
    })
}

/// `USER` (`name`, `uid`, `name:group`, `uid:gid`) resolved against the image's
/// `/etc/passwd` and `/etc/group`: (uid, gid).
pub fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32), RunError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_etc(root, "passwd");
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2) == Some(&u)).then(|| f.get(3)?.parse().ok())?
            });
            (uid, gid.unwrap_or(0))
        }
        Err(_) => (
            lookup(&passwd, u, 2).ok_or_else(|| RunError::NoUser(u.to_string()))?,
            lookup(&passwd, u, 3).unwrap_or(0),
        ),
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup(&read_etc(root, "group"), g, 2)
                .ok_or_else(|| RunError::NoGroup(g.to_string()))?,
        },
    };
    Ok((uid, gid))
}

/// What to run.
#[derive(Debug)]
pub struct RunSpec<'a> {
    /// The runtime binary (`berth-runtime`).
    pub runtime: &'a Path,
    /// Its state directory (`--root`).
    pub state: &'a Path,
    /// A fresh directory for the bundle's config.json.
    pub bundle: &'a Path,
    /// The step's root filesystem (the overlay mount).
    pub rootfs: &'a Path,
    pub id: &'a str,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: &'a str,
    pub uid: u32,
    pub gid: u32,
    /// Capture output (printed only when the command fails) instead of passing it through.
    pub quiet: bool,
}

/// The capabilities a RUN gets (Docker's default set).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn config(s: &RunSpec<'_>) -> serde_json::Value {
    // The open-files limit of the build itself (a container cannot raise it anyway).
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    json!({
        "ociVersion": "1.1.0",
        "process": {
            "terminal": false,
            "user": {"uid": s.uid, "gid": s.gid},
            "args": s.args,
            "env": s.env,
            "cwd": Path::new("/").join(clean(Path::new(s.cwd))),
            "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}],
            "noNewPrivileges": false
        },
        "root": {"path": s.rootfs, "readonly": false},
        "hostname": "berth-build",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Runs the command; its output goes to our stdout/stderr unless `quiet`.
pub fn run(s: &RunSpec<'_>) -> Result<(), RunError> {
    let cfg = s.bundle.join("config.json");
    let bundle_err = |source| RunError::Bundle {
        path: cfg.clone(),
        source,
    };
    fs::create_dir_all(s.bundle).map_err(bundle_err)?;
    fs::write(&cfg, config(s).to_string()).map_err(bundle_err)?;
    let mut cmd = Command::new(s.runtime);
    cmd.arg("--root")
        .arg(s.state)
        .args(["run", "--bundle"])
        .arg(s.bundle)
        .arg(s.id)
        .stdin(Stdio::null());
    let spawn = |source| RunError::Spawn {
        runtime: s.runtime.to_path_buf(),
        source,
    };
    let (status, output) = if s.quiet {
        let o = cmd.output().map_err(spawn)?;
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stderr));
        (o.status, text)
    } else {
        (cmd.status().map_err(spawn)?, String::new())
    };
    if status.success() {
        return Ok(());
    }
    Err(RunError::Failed {
        args: s.args.clone(),
        code: status.code().unwrap_or(-1),
        output: if output.trim().is_empty() {
            String::new()
        } else {
            format!(":\n{}", output.trim_end())
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_in_the_image() {
        let d = std::env::temp_dir().join(format!("berth-run-{}", std::process::id()));
        fs::create_dir_all(d.join("etc")).expect("mkdir");
        fs::write(
            d.join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .expect("write");
        fs::write(d.join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("write");
        assert_eq!(resolve_user(&d, "app").expect("app"), (1000, 1001));
        assert_eq!(
            resolve_user(&d, "app:staff").expect("app:staff"),
            (1000, 50)
        );
        assert_eq!(resolve_user(&d, "1000").expect("uid"), (1000, 1001));
        assert_eq!(resolve_user(&d, "7:8").expect("ids"), (7, 8));
        assert!(matches!(
            resolve_user(&d, "nobody"),
            Err(RunError::NoUser(_))
        ));
        let _ = fs::remove_dir_all(&d);
    }
}
