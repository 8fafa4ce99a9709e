//! The only crate in berth that makes raw system calls and contains `unsafe`.
//!
//! Everything here is a small, safe wrapper over one kernel interface that `nix` does not
//! cover (yet): `clone`/`clone3` with namespace flags, `openat2(RESOLVE_IN_ROOT)`, `bpf` for the cgroup v2 device filter,
//! `close_range`, `TIOCSCTTY`, `setdomainname`, `open_tree`/`mount_setattr`; and for the microVM guest agent `reboot`, `SIOCSIFFLAGS` and
//! an owned `accept4`. Every `unsafe` block carries a `// SAFETY:`
//! comment (enforced by the workspace lint `clippy::undocumented_unsafe_blocks`). Callers get
//! `nix::Result` so errors keep their errno.

pub mod bpf;
pub mod fd;
pub mod guest;
pub mod mem;
pub mod mount;
pub mod process;
pub mod resolve;
pub mod seccomp;
pub mod signal;
