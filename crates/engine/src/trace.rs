//! `BERTH_TRACE_STAGES=1`: the engine's side of the runtime's stage lines (runtime
//! trace.rs): one stderr line per stage of a container's start, with the CLOCK_MONOTONIC
//! time in microseconds and the pid — `berth-engine: stage <µs> <pid> <name>` — so the
//! time of `berth run -d` can be split between the CLI, the database, the network, the
//! monitor and the runtime (whose own lines follow the same clock). The monitor's lines go
//! to its monitor.log (its stderr). Off (one cached environment lookup) unless set.

/// Records that `name` begins now (when stage tracing is on).
pub fn stage(name: &str) {
    if !runtime::trace::enabled() {
        return;
    }
    let us = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000)
        .unwrap_or(0);
    let line = format!("berth-engine: stage {us} {} {name}\n", std::process::id());
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}
