//! End-to-end test support for berth (see `tests/*.rs`).
//!
//! Every test builds a [`Bundle`]: a fresh temporary directory with a busybox root
//! filesystem and a `config.json` modelled on `runc spec`, its own `--root` state
//! directory and a unique container id. The runtime under test is [`runtime_bin`]:
//! `$BERTH_RUNTIME` if set (e.g. `/usr/sbin/runc`), else `target/debug/berth-runtime`.
//! Dropping a bundle force-deletes its containers and removes its directories, so a
//! failing test leaks nothing.
#![forbid(unsafe_code)]

pub mod api;
pub mod containerd;
pub mod docker;
pub mod engine;
pub mod functions;
pub mod images;
pub mod net;
pub mod oci;
pub mod vm;

mod bundle;
mod command;
mod leftovers;
mod misc;
mod paths;
mod rootfs;
mod tempdir;

pub use bundle::*;
pub use command::*;
pub use leftovers::*;
pub use misc::*;
pub use paths::*;
pub use rootfs::*;
pub use tempdir::*;

use serde_json::{json, Value};
use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one runtime invocation may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// The default capability set of a bundle (the one docker and podman use).
pub const DEFAULT_CAPS: &[&str] = &[
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

/// The default hostname of a bundle's container.
pub const HOSTNAME: &str = "berth-test";

/// `maskedPaths` of the default config (as `runc spec` has them).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// `readonlyPaths` of the default config (as `runc spec` has them).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
