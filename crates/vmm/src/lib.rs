//! `berth-vmm`: berth's KVM microVM monitor, in the mould of Firecracker, on the rust-vmm
//! crates. It lays out guest memory, boots a kernel (PVH ELF, 64-bit Linux ELF or bzImage),
//! runs one thread per vCPU, emulates a small device model (8250 serial, i8042 reset, a
//! debug-exit port, virtio-mmio block) and serves one command enum ([`api::VmmAction`]) on a
//! unix socket per VM. Snapshots save the vCPU, interrupt-controller and device state with
//! the guest memory in one file.
//!
//! Invariants: guest memory is fresh anonymous memory (or a private mapping of a snapshot);
//! kernel, initrd, disk and snapshot files are hostile input, every header field is
//! bounds-checked; an unhandled guest exit or emulation failure stops the VM with a
//! [`vm::ExitReason`] that says what happened, never the host process silently. This crate
//! and `berth-sys` are the only ones with `unsafe`, each block with a `// SAFETY:` comment.

pub mod api;

/// The line a detached monitor (`berth-vmm --console-file …`) prints on stderr once its VM
/// runs; the `berth` that launched it waits for it.
pub const READY_LINE: &str = "berth-vm-ready";

pub mod boot;
pub mod config;
pub mod devices;
pub mod jail;
pub mod memory;
pub mod seccomp;
pub mod snapshot;
pub mod state;
pub mod vcpu;
pub mod vm;
pub mod vmm;

pub use config::{DiskConfig, NetConfig, VmConfig, VsockConfig};
pub use vmm::{Console, Vmm, VmmError};
