//! `berth serve [--interval SECS]`: the long-running engine process (optional: berth
//! works without it). For now it only restarts the containers whose restart policy
//! (`always`, `unless-stopped`) wants them running but whose monitor is gone — at its start
//! (Docker's daemon start rules) and then every `--interval` seconds, or at once on
//! SIGHUP (`engine::Engine::revive`). It stops cleanly on SIGTERM or SIGINT. The Docker
//! API and the function gateway will live here.

use crate::Globals;
use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds between two reconcile passes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let engine = g.engine()?;
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().context("block signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    tracing::info!(root = %g.root.display(), interval = a.interval, "berth serve: started");
    let interval = Duration::from_secs(a.interval);
    let mut startup = true;
    loop {
        match engine.revive(startup) {
            Ok(names) if !names.is_empty() => {
                tracing::info!(containers = ?names, startup, "restarted containers")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconcile pass failed"),
        }
        startup = false;
        let next = Instant::now() + interval;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let ms = left.as_millis().clamp(1, 60_000) as u16;
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let mut now = false;
            while let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => now = true,
                    Ok(s) => {
                        tracing::info!(signal = %s, "berth serve: stopping");
                        return Ok(());
                    }
                    Err(_) => {}
                }
            }
            if now {
                break;
            }
        }
    }
}
