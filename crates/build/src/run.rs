//! RUN: the command runs under `berth-runtime` with the step's overlay mount as its root,
//! the image's environment, working directory and user, and its own network namespace
//! with nothing in it (no network during builds), no_new_privs and the default seccomp
//! profile of `berth run` (Docker's allow-list for the default capability set).

use crate::fsroot::clean;
use serde_json::json;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A RUN error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    User(#[from] image::user::UserError),
    #[error(transparent)]
    Seccomp(#[from] image::seccomp::SeccompError),
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
    pub user: image::user::User,
    /// Capture output (printed only when the command fails) instead of passing it through.
    pub quiet: bool,
}

fn config(s: &RunSpec<'_>) -> Result<serde_json::Value, RunError> {
    // The open-files limit of the build itself (a container cannot raise it anyway).
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    Ok(json!({
        "ociVersion": "1.1.0",
        "process": {
            "terminal": false,
            "user": {"uid": s.user.uid, "gid": s.user.gid, "additionalGids": s.user.additional_gids},
            "args": s.args,
            "env": s.env,
            "cwd": Path::new("/").join(clean(Path::new(s.cwd))),
            "capabilities": {"bounding": image::user::DEFAULT_CAPS, "effective": image::user::DEFAULT_CAPS, "permitted": image::user::DEFAULT_CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}],
            "noNewPrivileges": true
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
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "seccomp": image::seccomp::default_profile().to_linux_seccomp(image::user::DEFAULT_CAPS)?
        }
    }))
}

/// Runs the command; its output goes to our stdout/stderr unless `quiet`.
pub fn run(s: &RunSpec<'_>) -> Result<(), RunError> {
    let cfg = s.bundle.join("config.json");
    let bundle_err = |source| RunError::Bundle {
        path: cfg.clone(),
        source,
    };
    fs::create_dir_all(s.bundle).map_err(bundle_err)?;
    fs::write(&cfg, config(s)?.to_string()).map_err(bundle_err)?;
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
