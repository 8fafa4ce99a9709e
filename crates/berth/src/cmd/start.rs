//! `berth start [-a [-i]] CONTAINER…`: starts created or exited containers under their
//! monitor; with `-a`, attached to the one container from before it starts (its output,
//! its terminal or, with `-i`, its stdin) and exiting with its exit code.

use super::attach_io::{parse_detach_keys, Session, DEFAULT_DETACH_KEYS};
use crate::Globals;
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
    /// Attach to the container's output (and terminal) and exit with its code.
    #[arg(short, long)]
    attach: bool,
    /// With -a: attach stdin too.
    #[arg(short, long)]
    interactive: bool,
    /// With -a: the keys that detach (`ctrl-p,ctrl-q`).
    #[arg(long, default_value = DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// With -a: send the signals berth receives to the container (not with a terminal).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Queue a container until the node has room for its --memory/--cpus.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds (default: wait forever).
    #[arg(long, requires = "wait")]
    wait_timeout: Option<u64>,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let e = g.engine()?;
    if a.attach || a.interactive {
        if a.containers.len() != 1 {
            bail!("start -a/-i: attach to one container at a time");
        }
        if a.wait {
            bail!("start -a/-i: --wait is not supported with attach");
        }
        let keys = parse_detach_keys(&a.detach_keys)?;
        let c = e.inspect(&a.containers[0])?;
        if a.sig_proxy && !c.spec.opts.tty {
            super::attach_io::proxy_signals(&e, &c.id);
        }
        let (c, sock) = e.start_attached(&a.containers[0], &super::attach_io::hello())?;
        let tty = c.spec.opts.tty;
        let s = Session {
            tty,
            stdin: a.interactive && (c.spec.interactive || tty),
            close_stdin: false,
            detach_keys: keys,
        };
        return super::attach::finish(&e, &c, s.run(sock)?);
    }
    for c in &a.containers {
        if a.wait {
            e.start_waiting(c, a.wait_timeout.map(std::time::Duration::from_secs))?;
        } else {
            e.start(c)?;
        }
        println!("{c}");
    }
    Ok(0)
}
