//! berth's OCI runtime (runtime-spec 1.2) behind the runc command line.
//!
//! `container/` holds one file per verb (create, start, run, exec, kill, delete, pause,
//! update, list); `process/` one file per stage of a container process (init, rootfs,
//! devices, tty, finalize, seccomp); `state` the on-disk state and the status machine;
//! `config` the loading and validation of config.json.
//!
//! Invariants: no `unsafe` here (raw syscalls live in `berth-sys`); no async runtime or
//! HTTP stack is linked, so the binary stays small and quick to exec; every error names the
//! field or path it is about; a failed `create` leaves no state directory, cgroup, mount or
//! process behind.
#![forbid(unsafe_code)]

pub mod config;
pub mod container;
pub mod error;
pub mod exe_guard;
pub mod features;
pub mod hooks;
pub mod log;
pub mod process;
pub mod spec_default;
pub mod state;
pub mod trace;

pub use error::{Error, Result};

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";
