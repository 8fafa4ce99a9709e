//! `berth attach CONTAINER`: the user's terminal to a running container through its
//! monitor's attach socket (engine::attach; the session: attach_io.rs). Its terminal with
//! `-t`, its stdin with `-i`; the detach keys (`ctrl-p,ctrl-q`) leave it running; berth
//! exits with the container's exit code once it ends.

use super::attach_io::{parse_detach_keys, End, Session, DEFAULT_DETACH_KEYS};
use crate::Globals;
use anyhow::{bail, Result};

/// Attach to a running container: its output, and its stdin or terminal when it was
/// created with -i or -t.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Do not attach stdin.
    #[arg(long)]
    no_stdin: bool,
    /// The keys that detach and leave the container running (`ctrl-p,ctrl-q`; a
    /// character or `ctrl-X`, comma-separated; empty: none).
    #[arg(long, default_value = DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// Send the signals berth receives (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2) to
    /// the container, as Docker's; a container with a terminal gets its keys instead.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// The container (name or ID).
    container: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let keys = parse_detach_keys(&a.detach_keys)?;
    let e = g.engine()?;
    let c = e.inspect(&a.container)?;
    if !c.state.is_active() {
        bail!(
            "you cannot attach to a stopped container ({}), start it first",
            c.name
        );
    }
    let tty = c.spec.opts.tty;
    if a.sig_proxy && !tty {
        super::attach_io::proxy_signals(&e, &c.id);
    }
    let sock = match e.attach(&c) {
        Ok(s) => s,
        // The monitor of a container with no terminal, stdin or health check runs as
        // berth-pump, which serves no attach socket: its output is followed in the log
        // from now on and berth exits with its code, as Docker's attach without stdin.
        Err(engine::Error::Conflict(_)) if !tty && !c.spec.interactive => {
            let o = engine::logfiles::ReadOpts {
                follow: true,
                since: Some(engine::logfiles::now_nanos()),
                ..Default::default()
            };
            e.print_log(
                &c,
                &o,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )?;
            return Ok(e.wait(&c.id)?);
        }
        Err(err) => return Err(err.into()),
    };
    let s = Session {
        tty,
        stdin: !a.no_stdin && (c.spec.interactive || tty),
        close_stdin: false,
        detach_keys: keys,
    };
    finish(&e, &c, s.run(sock)?)
}

/// berth's exit code for an ended session: the container's, 0 after a detach.
pub fn finish(e: &engine::Engine, c: &engine::Container, end: End) -> Result<i32> {
    Ok(match end {
        End::Exited(code) => code,
        End::Detached => {
            eprintln!("\r\nread escape sequence");
            0
        }
        // The monitor went away: what the database says once it has reconciled.
        End::Lost => e.wait(&c.id)?,
    })
}
