//! `berth run` in the foreground through the engine, as Docker's CLI does it: create the
//! container, start it with this command attached to its monitor (engine::attach; the
//! session: attach_io.rs), exit with its code. With `--rm` the monitor removes it once it
//! has exited, so a killed `berth run --rm` leaves nothing behind either. Signals berth
//! receives go to the container (Docker's `--sig-proxy`); with `-it` the detach keys leave
//! it running.

use super::attach_io::{parse_detach_keys, End, Session, DEFAULT_DETACH_KEYS};
use crate::Globals;
use anyhow::Result;

/// The exit code of a container that could not be started: Docker's 127 for a command
/// that is not found, 126 for one that cannot be executed; `None`: berth's own failure.
fn start_failure_code(msg: &str) -> Option<i32> {
    if msg.contains("process.args[0]") {
        if msg.contains("not found in $PATH") || msg.contains("no such file") {
            return Some(127);
        }
        return Some(126);
    }
    None
}

pub fn run(g: &Globals, a: super::run::Args) -> Result<i32> {
    let (tty, interactive, rm) = (a.tty, a.interactive, a.rm);
    let keys = match (&a.detach_keys, tty && interactive) {
        (Some(k), _) => parse_detach_keys(k)?,
        (None, true) => parse_detach_keys(DEFAULT_DETACH_KEYS)?,
        (None, false) => Vec::new(),
    };
    let e = g.engine()?;
    let c = super::run::create(g, a)?;
    let started = e.start_attached(&c.id, &super::attach_io::hello());
    let (c, sock) = match started {
        Ok(x) => x,
        Err(err) => {
            if rm {
                let _ = e.remove(&c.id, true);
            }
            let msg = err.to_string();
            return match start_failure_code(&msg) {
                Some(code) => {
                    eprintln!("berth: {msg}");
                    Ok(code)
                }
                None => Err(err.into()),
            };
        }
    };
    // Signals to us go to the container (they are blocked already: run.rs).
    super::attach_io::proxy_signals(&e, &c.id);
    let s = Session {
        tty,
        stdin: interactive,
        close_stdin: true,
        detach_keys: keys,
    };
    let end = s.run(sock)?;
    Ok(match end {
        End::Detached => {
            eprintln!("\r\nread escape sequence");
            0
        }
        // With --rm the monitor has removed it before it told us.
        End::Exited(code) => code,
        // The monitor went away: the database's word, and the --rm it could not do.
        End::Lost => {
            let code = e.wait(&c.id)?;
            if rm {
                let _ = e.remove(&c.id, true);
            }
            code
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_have_docker_codes() {
        assert_eq!(
            start_failure_code(
                "start container x: berth-runtime: config.json: process.args[0]: executable \"nosuch\" not found in $PATH (/bin) of the container"
            ),
            Some(127)
        );
        assert_eq!(
            start_failure_code(
                "start container x: berth-runtime: config.json: process.args[0]: executable /etc not found or not executable in the container"
            ),
            Some(126)
        );
        assert_eq!(start_failure_code("database busy"), None);
    }
}
