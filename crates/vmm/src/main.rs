//! `berth-vmm`: the process that is one VM's monitor, and nothing else (Firecracker's
//! model: a small binary of its own, not the CLI that prepared the VM). `berth vm run` and
//! `berth vm restore` resolve images, names and detaching, then exec this binary, so the
//! monitor maps only the VMM's code: its resident overhead and the code a guest-facing
//! process holds stay small.
//!
//! ```text
//! berth-vmm run     --root DIR --config JSON [--console-file LOG] [--stats]
//! berth-vmm restore --root DIR --snapshot FILE [--name N] [--paused] [--console-file LOG]
//! ```
//! With `--console-file` the monitor is a detached one: it prints `berth-vm-ready` on
//! stderr once the VM runs (the launching `berth` waits for that line), then sends stderr
//! to the console log. Exit status: the guest's debug-exit code, 0 for a reset, halt or
//! stop, 125 with a one-line report for an error.
#![forbid(unsafe_code)]

use berth_vmm::vm::ExitReason;
use berth_vmm::vmm::Outcome;
use berth_vmm::{jail, Console, VmConfig, Vmm};
use lexopt::prelude::*;
use std::path::{Path, PathBuf};

#[derive(Default)]
struct Opts {
    verb: String,
    root: Option<PathBuf>,
    config: Option<String>,
    snapshot: Option<PathBuf>,
    name: Option<String>,
    paused: bool,
    console_file: Option<PathBuf>,
    stats: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut p = lexopt::Parser::from_env();
    let err = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(err)? {
        match arg {
            Long("root") => o.root = Some(p.value().map_err(err)?.into()),
            Long("config") => o.config = Some(p.value().map_err(err)?.string().map_err(err)?),
            Long("snapshot") => o.snapshot = Some(p.value().map_err(err)?.into()),
            Long("name") => o.name = Some(p.value().map_err(err)?.string().map_err(err)?),
            Long("paused") => o.paused = true,
            Long("console-file") => o.console_file = Some(p.value().map_err(err)?.into()),
            Long("stats") => o.stats = true,
            Value(v) if o.verb.is_empty() => o.verb = v.string().map_err(err)?,
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(o)
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.ends_with(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}

/// Tells the launching `berth` that the VM runs, then points stderr at the console log.
fn signal_ready(console: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    eprintln!("{}", berth_vmm::READY_LINE);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(console)
        .map_err(|e| format!("open {}: {e}", console.display()))?;
    nix::unistd::dup2(log.as_raw_fd(), 2).map_err(|e| format!("redirect stderr: {e}"))?;
    Ok(())
}

/// Moves this process (one thread so far) into a cgroup of its own with the VM's limits.
fn confine(config: &VmConfig) -> Result<Option<jail::VmCgroup>, String> {
    jail::VmCgroup::enter(&config.name, config.cpus, config.memory_mib).map_err(|e| e.to_string())
}

/// The exit status for how the VM ended.
fn finish(name: &str, outcome: Outcome) -> Result<i32, String> {
    match outcome {
        Outcome::Stopped
        | Outcome::Guest(ExitReason::Reset)
        | Outcome::Guest(ExitReason::Halted) => Ok(0),
        Outcome::Guest(ExitReason::DebugExit(code)) => Ok(i32::from(code)),
        Outcome::Guest(ExitReason::Error(report)) => Err(format!("vm {name}: {report}")),
    }
}

fn run(o: Opts) -> Result<i32, String> {
    // Nothing the launcher had open reaches the monitor (jail.rs).
    jail::close_inherited_fds().map_err(|e| e.to_string())?;
    let root = o.root.ok_or("--root is required")?;
    let console = match &o.console_file {
        Some(f) => Console::File(f.clone()),
        None => Console::Stdout,
    };
    let (vmm, name) = match o.verb.as_str() {
        "run" => {
            let json = o.config.ok_or("run: --config is required")?;
            let config: VmConfig =
                serde_json::from_str(&json).map_err(|e| format!("--config: {e}"))?;
            config.validate().map_err(|e| chain(&e))?;
            let name = config.name.clone();
            let cgroup = confine(&config)?;
            let mut vmm = Vmm::boot(config, &root, console.clone()).map_err(|e| chain(&e))?;
            if let Some(c) = cgroup {
                vmm.remove_cgroup_at_exit(c.at_exit());
            }
            (vmm, name)
        }
        "restore" => {
            let file = o.snapshot.ok_or("restore: --snapshot is required")?;
            // The name (unless given), vCPUs and memory come from the snapshot: its header
            // sizes the cgroup.
            let mut saved = berth_vmm::snapshot::load(&file)
                .map_err(|e| chain(&e))?
                .header
                .config;
            if let Some(n) = &o.name {
                saved.name = n.clone();
            }
            saved.validate_shape().map_err(|e| chain(&e))?;
            let cgroup = confine(&saved)?;
            let mut vmm = Vmm::restore(&file, Some(saved.name), &root, console.clone(), o.paused)
                .map_err(|e| chain(&e))?;
            if let Some(c) = cgroup {
                vmm.remove_cgroup_at_exit(c.at_exit());
            }
            let name = vmm.name().to_string();
            (vmm, name)
        }
        "" => return Err("no command (run or restore)".into()),
        other => return Err(format!("unknown command {other:?} (run or restore)")),
    };
    if let Console::File(log) = &console {
        signal_ready(log)?;
    }
    let outcome = if o.stats {
        let (outcome, s) = vmm.run_with_stats().map_err(|e| chain(&e))?;
        eprintln!(
            "berth-vm-stats: peak_rss_kib={} guest_rss_kib={} overhead_kib={}",
            s.peak_rss_kib,
            s.guest_rss_kib,
            s.peak_rss_kib.saturating_sub(s.guest_rss_kib)
        );
        outcome
    } else {
        vmm.run().map_err(|e| chain(&e))?
    };
    finish(&name, outcome)
}

fn main() {
    let code = match parse().and_then(run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e}");
            125
        }
    };
    std::process::exit(code);
}
