//! Fault injection for the end-to-end tests (tests/engine_faults.rs): with
//! `BERTH_TEST_ABORT_AT=<stage>` in its environment, a command kills itself with SIGKILL
//! when it reaches that stage — exactly what `kill -9` at that point would do — so the
//! tests can show that every point of create/start/rm leaves a database the next command
//! squares with what runs. Without the variable this is one environment lookup.
//!
//! Stages: `create:inserted` (the row is in, its directory not yet), `start:spawned` (the
//! monitor runs, its report not read), `rm:removing` (the row says removing, nothing
//! killed), `rm:killed` (the monitor and the container were sent SIGKILL), `rm:deleted`
//! (the directory is gone, the row not yet); `pod-create:inserted` (a pod's row is in, its
//! infra container not yet), `pod-create:infra` (the infra exists, the pod's row does not
//! name it yet).

/// The environment variable naming the stage to die at.
pub const ABORT_AT: &str = "BERTH_TEST_ABORT_AT";

/// Dies here by SIGKILL when `$BERTH_TEST_ABORT_AT` is `stage`.
pub fn point(stage: &str) {
    if std::env::var_os(ABORT_AT).is_some_and(|v| v == stage) {
        tracing::warn!(stage, "{ABORT_AT}: killing this process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
