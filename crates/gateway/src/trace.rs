//! `BERTH_TRACE_STAGES=1` on `berth serve`: one stderr line per stage of a cold start and
//! of a request, in the format of berth-runtime's (`runtime::trace`) so one driver reads
//! both: `berth-gateway: stage <µs CLOCK_MONOTONIC> <pid> <name> <instance or function>`.
//! berth-runtime's own lines (the same variable, inherited) go to the function's log.

use std::sync::OnceLock;

static ON: OnceLock<bool> = OnceLock::new();

/// Whether stage tracing is on.
pub fn enabled() -> bool {
    *ON.get_or_init(|| std::env::var_os("BERTH_TRACE_STAGES").is_some_and(|v| v == "1"))
}

/// Records that stage `name` of `what` begins now.
pub fn stage(name: &str, what: &str) {
    if !enabled() {
        return;
    }
    let us = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000)
        .unwrap_or(0);
    let line = format!(
        "berth-gateway: stage {us} {} {name} {what}\n",
        std::process::id()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}
