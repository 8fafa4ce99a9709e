//! berth's microVM guest agent.
//!
//! A disk made by `berth vm image` boots with `init=/.berth/agent`: the agent is the guest's
//! PID 1. It mounts the pseudo filesystems, sets the hostname, brings up `lo`, and serves the
//! host on AF_VSOCK port [`PORT`]: the host sends a configuration script, the agent runs it
//! with `/bin/sh` and returns its exit status and output, then starts the image's
//! entrypoint and command ([`config::GuestConfig`], from `/.berth/config.json`). It reaps
//! every orphan, and on `shutdown` it syncs and powers the VM off.
//!
//! The protocol ([`proto`]) and its handling ([`server`]) know nothing of vsock: the same
//! code serves a unix socket in the host-side tests.
//!
//! With `--fn SOCKET` it is instead the init of a stdio-mode function instance ([`fnmode`]).
#![forbid(unsafe_code)]

pub mod config;
pub mod exec;
pub mod fnmode;
pub mod proto;
pub mod server;

/// The vsock port the agent listens on.
pub const PORT: u32 = 1024;
/// Where a disk carries the agent.
pub const AGENT_PATH: &str = "/.berth/agent";
/// Where a disk carries the image configuration.
pub const CONFIG_PATH: &str = "/.berth/config.json";
