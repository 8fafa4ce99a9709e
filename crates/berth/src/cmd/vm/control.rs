//! `berth vm stop|kill|rm|pause|resume NAME`: requests to a VM's monitor, or its removal.

use super::API_TIMEOUT;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use vmm::api::{request, VmmAction};
use vmm::state;

#[derive(clap::Args, Debug)]
pub struct Name {
    /// The VM's name.
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct Rm {
    /// Kill the VM first if it is running.
    #[arg(short, long)]
    force: bool,
    /// The VM's name.
    name: String,
}

/// Waits until the monitor's state directory is gone.
fn wait_gone(entry: &state::Entry, timeout: Duration) -> bool {
    let start = Instant::now();
    while entry.dir.exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub fn stop(root: &Path, name: &str) -> Result<()> {
    let entry = state::find(root, name)?;
    if !entry.alive() {
        bail!("vm {name}: its monitor is gone; remove it with `berth vm rm {name}`");
    }
    request(&entry.socket(), &VmmAction::Stop, API_TIMEOUT)?;
    if !wait_gone(&entry, Duration::from_secs(10)) {
        bail!("vm {name}: the monitor did not exit; use `berth vm kill {name}`");
    }
    Ok(())
}

fn kill_entry(entry: &state::Entry) -> Result<()> {
    if let Some(r) = &entry.record {
        if state::alive(r.pid) {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(r.pid).context("pid")?);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let start = Instant::now();
            while state::alive(r.pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    state::remove(entry)?;
    if let Some(r) = &entry.record {
        vmm::jail::remove_stale(&r.config.name, r.pid)?;
    }
    Ok(())
}

pub fn kill(root: &Path, name: &str) -> Result<()> {
    kill_entry(&state::find(root, name)?)
}

pub fn rm(root: &Path, a: Rm) -> Result<()> {
    let entry = state::find(root, &a.name)?;
    if entry.alive() && !a.force {
        bail!(
            "vm {}: running; stop it first or use `berth vm rm -f {}`",
            a.name,
            a.name
        );
    }
    kill_entry(&entry)
}

pub fn pause(root: &Path, name: &str, pause: bool) -> Result<()> {
    let entry = state::find(root, name)?;
    let action = if pause {
        VmmAction::Pause
    } else {
        VmmAction::Resume
    };
    request(&entry.socket(), &action, API_TIMEOUT)?;
    Ok(())
}
