//! `BERTH_TRACE_STAGES=1`: one stderr line per stage of a verb, with the CLOCK_MONOTONIC
//! time in microseconds and the pid, so a driver (bench/runtime-stages.sh) can tell where
//! the time of `run` or create/start/delete goes — the re-exec, the config, the cgroup, the
//! clone, the init's mounts and devices, seccomp, the exec. Off (one cached environment
//! lookup per stage) unless the variable is set; the line format is
//! `berth-runtime: stage <µs> <pid> <name>`.

use std::sync::OnceLock;

static ON: OnceLock<bool> = OnceLock::new();

/// Whether stage tracing is on for this process.
pub fn enabled() -> bool {
    *ON.get_or_init(|| std::env::var_os("BERTH_TRACE_STAGES").is_some_and(|v| v == "1"))
}

/// Records that `name` begins now.
pub fn stage(name: &str) {
    if !enabled() {
        return;
    }
    let us = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000)
        .unwrap_or(0);
    // One write(2) per line: the init and the runtime share the descriptor.
    let line = format!("berth-runtime: stage {us} {} {name}\n", std::process::id());
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}
