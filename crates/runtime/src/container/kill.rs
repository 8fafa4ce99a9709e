//! `kill`: send a signal to the init, or with `--all` to every process of the container.

use crate::error::{Context, Error, Result};
use crate::state::{self, Store};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// Parses a signal as runc does: a number (`9`, `37`), a name with or without `SIG`
/// (`KILL`, `SIGTERM`), or a real-time signal (`RTMIN+3`, `SIGRTMAX-1`). Returns its number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || Error::Usage(format!("unknown signal {s:?}"));
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Ok(n) = s.parse::<i32>() {
        return (1..=rtmax).contains(&n).then_some(n).ok_or_else(bad);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let n = base + sign * off;
        (rtmin..=rtmax).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rest
            .strip_prefix('+')
            .map_or_else(|| rest.is_empty().then_some(rtmin), |r| rt(rtmin, r, 1))
            .ok_or_else(bad);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rest
            .strip_prefix('-')
            .map_or_else(|| rest.is_empty().then_some(rtmax), |r| rt(rtmax, r, -1))
            .ok_or_else(bad);
    }
    Signal::from_str(&format!("SIG{name}"))
        .map(|s| s as i32)
        .map_err(|_| bad())
}

pub fn kill(store: &Store, id: &str, sig: i32, all: bool) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    let status = state::status(store, &st);
    if status == state::Status::Stopped && all {
        // runc's `kill --all` of a stopped container signals what is left in its cgroup
        // (processes of a container without a pid namespace can outlive the init).
        let _ = super::cgroup_of(&st)?.kill_all(sig);
        return Ok(());
    }
    if !status.can_kill() {
        return Err(Error::BadState {
            verb: "kill",
            id: id.into(),
            // runc's words: containerd's shim reads "container not running" as "already
            // finished", not as a failed kill.
            status: if status == state::Status::Stopped {
                format!("{status} (container not running)")
            } else {
                status.to_string()
            },
        });
    }
    if all {
        super::cgroup_of(&st)?.kill_all(sig)?;
        return Ok(());
    }
    sys::process::send_signal(st.pid, sig).ctx(|| format!("kill {} with signal {sig}", st.pid))
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals_as_runc_takes_them() {
        assert_eq!(parse_signal("9").ok(), Some(9));
        assert_eq!(parse_signal("KILL").ok(), Some(9));
        assert_eq!(parse_signal("sigterm").ok(), Some(15));
        assert_eq!(parse_signal("37").ok(), Some(37));
        assert_eq!(parse_signal("RTMIN+3").ok(), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("SIGRTMAX-1").ok(), Some(libc::SIGRTMAX() - 1));
        assert_eq!(parse_signal("RTMIN").ok(), Some(libc::SIGRTMIN()));
        for bad in ["0", "65", "-1", "NOPE", "RTMIN+99", "RTMAX+1", ""] {
            assert!(parse_signal(bad).is_err(), "{bad:?} accepted");
        }
    }
}
