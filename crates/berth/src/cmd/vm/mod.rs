//! `berth vm …`: microVMs. Each verb is a file; `run` and `restore` prepare the VM and
//! then replace this process (or, with `-d`, a detached copy of it) with its monitor,
//! `berth-vmm` (crates/vmm/src/main.rs); the others talk to a running monitor over its API
//! socket.

mod console;
mod control;
mod guest;
mod image;
mod ls;
mod restore;
mod run;
mod snapshot;

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// Replaces this process with the VM's monitor: `berth-vmm VERB --root ROOT ARGS…`, beside
/// this binary (`$BERTH_VMM` overrides). A detached child gives its console log, so the
/// monitor tells the waiting `berth` when it runs. The monitor is a binary of its own, as
/// Firecracker's is: it maps only the VMM's code (docs/benchmarks.md, "overhead").
fn exec_monitor(
    root: &Path,
    verb: &str,
    args: &[std::ffi::OsString],
    console_log: Option<PathBuf>,
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::var_os("BERTH_VMM") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => std::env::current_exe()
            .context("find the berth binary")?
            .with_file_name("berth-vmm"),
    };
    let mut cmd = Command::new(&exe);
    // The monitor needs no environment, and gets none (foreground or detached).
    cmd.env_clear().arg(verb).arg("--root").arg(root).args(args);
    if let Some(log) = console_log {
        cmd.arg("--console-file").arg(log);
    }
    let err = cmd.exec();
    bail!(
        "start the monitor {}: {err} (build it with `cargo build --workspace`, or set $BERTH_VMM)",
        exe.display()
    )
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
    if first.trim() == vmm::READY_LINE {
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

/// A default VM name.
fn default_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("vm-{:x}{:04x}", std::process::id(), nanos & 0xffff)
}
