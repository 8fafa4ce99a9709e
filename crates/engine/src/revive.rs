//! What `berth serve` does every few seconds: brings back the containers whose restart
//! policy wants them running but whose monitor is gone (a reboot, a `kill -9` of the
//! monitor).
//!
//! Docker's rules (moby `restartmanager.ShouldRestart` and the daemon's restore at start):
//! - `always` and `unless-stopped` containers that nobody stopped are restarted;
//! - at the daemon's start (`startup`), an `always` container is restarted even when the
//!   user had stopped it (`HasBeenManuallyStopped`); an `unless-stopped` one is not;
//! - a container that was never started (`created`) is left alone.
//!
//! A container whose monitor died while its process still runs has nobody reading its
//! output or applying its policy: its process is killed and it is started again under a
//! new monitor.

use crate::container::{alive, Engine};
use crate::error::Result;
use crate::types::{RestartPolicy, State};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::time::{Duration, Instant};

impl Engine {
    /// One pass (see the module doc); the names of the containers it started.
    pub fn revive(&self, startup: bool) -> Result<Vec<String>> {
        let mut started = Vec::new();
        for c in self.list(true)? {
            if !matches!(
                c.spec.restart,
                RestartPolicy::Always | RestartPolicy::UnlessStopped
            ) {
                continue;
            }
            let wanted = !c.stopped_by_user || (startup && c.spec.restart == RestartPolicy::Always);
            let c = match c.state {
                State::Created | State::Removing | State::Paused => continue,
                _ if !wanted => continue,
                State::Running | State::Restarting => {
                    if alive(c.monitor_pid, c.monitor_start) {
                        continue;
                    }
                    if alive(c.pid, c.pid_start) {
                        tracing::info!(container = %c.id, name = %c.name, pid = c.pid,
                            "its monitor is gone: killing its process to start it again");
                        let _ = nix::sys::signal::kill(Pid::from_raw(c.pid), Signal::SIGKILL);
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while alive(c.pid, c.pid_start) && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    let c = self.inspect(&c.id)?;
                    if c.state != State::Exited {
                        continue;
                    }
                    c
                }
                State::Exited => c,
            };
            tracing::info!(container = %c.id, name = %c.name, policy = %c.spec.restart,
                startup, "restarting");
            match self.start(&c.id) {
                Ok(_) => started.push(c.name.clone()),
                Err(e) => tracing::warn!(container = %c.id, name = %c.name, error = %e,
                    "restart failed"),
            }
        }
        Ok(started)
    }
}
