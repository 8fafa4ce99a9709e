//! `kill`: send a signal to the init, or with `--all` to every process of the container.

use crate::error::{Context, Error, Result};
use crate::state::{self, Store};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// Parses `9`, `KILL` or `SIGKILL`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::Usage(format!("unknown signal {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| Error::Usage(format!("unknown signal {s}")))
}

pub fn kill(store: &Store, id: &str, sig: Signal, all: bool) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    let status = state::status(store, &st);
    if !status.can_kill() {
        return Err(Error::BadState {
            verb: "kill",
            id: id.into(),
            status: status.to_string(),
        });
    }
    if all {
        super::cgroup_of(&st)?.kill_all(sig)?;
        return Ok(());
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), sig)
        .ctx(|| format!("kill {} with {sig}", st.pid))
}
