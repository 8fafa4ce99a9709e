//! `berth vm …`: microVMs. Each verb is a file; `run` and `restore` make this process the
//! VM's monitor (or, with `-d`, a detached copy of it); the others talk to a running monitor
//! over its API socket.

mod console;
mod control;
mod guest;
mod image;
mod jail;
mod ls;
mod restore;
mod run;
mod snapshot;

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use vmm::vm::ExitReason;
use vmm::vmm::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of the VMs' state (sockets, records, console logs).
    #[arg(long, default_value = vmm::state::DEFAULT_ROOT, global = true)]
    root: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Boot a kernel in a new microVM (in the foreground unless -d).
    Run(run::Args),
    /// List the VMs.
    Ls,
    /// Stop a VM (its monitor exits).
    Stop(control::Name),
    /// Kill a VM's monitor at once and remove its state.
    Kill(control::Name),
    /// Remove a VM whose monitor is gone (with -f, kill it first).
    Rm(control::Rm),
    /// Pause a VM's vCPUs.
    Pause(control::Name),
    /// Resume a paused VM.
    Resume(control::Name),
    /// Write a snapshot of a VM to a file.
    Snapshot(snapshot::Args),
    /// Start a VM from a snapshot.
    Restore(restore::Args),
    /// Follow a detached VM's console.
    Console(control::Name),
    /// Make a bootable ext4 root disk of an image of the store (with the guest agent).
    Image(image::Args),
}

pub fn run(a: Args) -> Result<()> {
    let root = a.root;
    match a.cmd {
        Cmd::Run(r) => run::run(&root, r),
        Cmd::Ls => ls::run(&root),
        Cmd::Stop(n) => control::stop(&root, &n.name),
        Cmd::Kill(n) => control::kill(&root, &n.name),
        Cmd::Rm(r) => control::rm(&root, r),
        Cmd::Pause(n) => control::pause(&root, &n.name, true),
        Cmd::Resume(n) => control::pause(&root, &n.name, false),
        Cmd::Snapshot(s) => snapshot::run(&root, s),
        Cmd::Restore(r) => restore::run(&root, r),
        Cmd::Console(n) => console::run(&root, &n.name),
        Cmd::Image(i) => image::run(i),
    }
}

/// How long a request to a monitor may take.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// The line a detached monitor prints on stderr once it runs.
const READY: &str = "berth-vm-ready";

/// Ends the process the way the VM ended: the guest's debug-exit code, 0 for a reset, halt
/// or stop, 1 with the report for an error.
fn finish(name: &str, outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Stopped
        | Outcome::Guest(ExitReason::Reset)
        | Outcome::Guest(ExitReason::Halted) => Ok(()),
        Outcome::Guest(ExitReason::DebugExit(0)) => Ok(()),
        Outcome::Guest(ExitReason::DebugExit(code)) => std::process::exit(i32::from(code)),
        Outcome::Guest(ExitReason::Error(report)) => bail!("vm {name}: {report}"),
    }
}

/// Tells the parent of a detached monitor that it runs, then points stderr at the console
/// log (the parent stops reading).
fn signal_ready(console: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    eprintln!("{READY}");
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(console)
        .with_context(|| format!("open {}", console.display()))?;
    nix::unistd::dup2(log.as_raw_fd(), 2).context("redirect stderr")?;
    Ok(())
}

/// Re-runs this command detached (`--detached-child`, own process group, no terminal, an
/// empty environment) and waits until the monitor runs or fails; a failure's message
/// becomes this command's error.
fn detach(name: &str, extra: &[String]) -> Result<()> {
    let exe = std::env::current_exe().context("find the berth binary")?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.retain(|a| a != "-d" && a != "--detach");
    args.extend_from_slice(extra);
    args.push("--detached-child".into());
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("start the detached monitor")?
    };
    let stderr = child.stderr.take().context("monitor stderr")?;
    let mut reader = BufReader::new(stderr);
    let mut first = String::new();
    reader.read_line(&mut first).ok();
    if first.trim() == READY {
        println!("{name}");
        return Ok(());
    }
    let mut rest = String::new();
    reader.read_to_string(&mut rest).ok();
    let _ = child.wait();
    let text = format!("{first}{rest}");
    let text = text.trim().trim_start_matches("Error: ");
    bail!(
        "{}",
        if text.is_empty() {
            "the monitor exited"
        } else {
            text
        }
    )
}

/// Confines this process, about to become the monitor of the VM `config` describes
/// (validated): closes what it inherited above stderr and moves it into a cgroup of its
/// own with the VM's limits.
fn confine(config: &vmm::VmConfig) -> Result<Option<jail::VmCgroup>> {
    jail::close_inherited_fds()?;
    jail::VmCgroup::enter(&config.name, config.cpus, config.memory_mib)
}

/// A default VM name.
fn default_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("vm-{:x}{:04x}", std::process::id(), nanos & 0xffff)
}
