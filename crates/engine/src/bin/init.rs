//! `berth-init [--] CMD [ARG…]`: the container's PID 1 with `--init` (Docker's tini), bound
//! read-only at `/dev/init` (engine::spec::add_init). It runs CMD as its child, forwards
//! the signals it receives to it, reaps every process orphaned to it (zombies do not pile
//! up under a PID 1 that is not written to wait for them), and exits with CMD's status
//! (128 + signal when CMD was killed) once CMD has exited.
//!
//! Signals a terminal generates (`SIGINT` from ctrl-c, `SIGTSTP`, `SIGWINCH`, …) reach CMD
//! directly: it is in our process group, the terminal's foreground group. They arrive
//! here too, with `si_code == SI_KERNEL`, and are not forwarded a second time.
//!
//! `berth-init --pause`: a pod's infra process (engine::pod): holds the pod's namespaces,
//! sleeping until SIGTERM or SIGINT (exit 0) and reaping whatever is orphaned to it (with
//! `--share pid` it is the pod's PID 1).
//!
//! Static (scripts/rustc-wrapper): it runs in any image. No unsafe: the child is this
//! binary again (`--exec CMD…`, spawned by `std::process::Command`), which unblocks the
//! signals we block (a mask survives fork and exec) and execs CMD; an exec failure is its
//! exit status, 127 (not found) or 126, as a shell's.
#![forbid(unsafe_code)]

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::ErrorKind;
use std::process::Command;

/// `si_code` of a signal the kernel sent (a terminal's, among others).
const SI_KERNEL: i32 = 0x80;

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--exec") && args.len() > 1 {
        std::process::exit(exec(&args[1..]));
    }
    if args.first().is_some_and(|a| a == "--pause") {
        std::process::exit(pause());
    }
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("berth-init: usage: berth-init [--] CMD [ARG…]");
        std::process::exit(2);
    }
    std::process::exit(run(&args));
}

fn run(args: &[std::ffi::OsString]) -> i32 {
    // Every signal waits in the signalfd; SIGCHLD tells of exits.
    let Some(sfd) = all_signals() else {
        return 125;
    };
    // Orphans of a nested pid namespace's init, or when we are not PID 1, come to us too.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let me = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let child = match Command::new(me).arg("--exec").args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-init: start {}: {e}", args[0].to_string_lossy());
            return 126;
        }
    };
    let main = Pid::from_raw(child.id() as i32);
    // The Child handle is never waited for: every exit is reaped below.
    drop(child);
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("berth-init: read signals: {e}");
                return 125;
            }
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig != Signal::SIGCHLD {
            if info.ssi_code != SI_KERNEL {
                let _ = nix::sys::signal::kill(main, sig);
            }
            continue;
        }
        // Reap everything that has exited: CMD, and orphans reparented to us.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == main => return code,
                Ok(WaitStatus::Signaled(p, s, _)) if p == main => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// Every signal blocked and read from one signalfd (a failure is said on stderr).
fn all_signals() -> Option<SignalFd> {
    let all = SigSet::all();
    if let Err(e) = all.thread_block() {
        eprintln!("berth-init: block signals: {e}");
        return None;
    }
    SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| eprintln!("berth-init: signalfd: {e}"))
        .ok()
}

/// `--pause`: every signal waits in a signalfd; SIGTERM, SIGINT (and SIGQUIT, SIGHUP) end
/// it, SIGCHLD reaps, the rest are ignored.
fn pause() -> i32 {
    let Some(sfd) = all_signals() else {
        return 125;
    };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("berth-init: read signals: {e}");
                return 125;
            }
        };
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT | Signal::SIGHUP) => return 0,
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            _ => {}
        }
    }
}

/// The child's side: our blocked signals unblocked, then CMD in our place.
fn exec(args: &[std::ffi::OsString]) -> i32 {
    use std::os::unix::process::CommandExt;
    let _ = SigSet::all().thread_unblock();
    let e = Command::new(&args[0]).args(&args[1..]).exec();
    let (code, why) = match e.kind() {
        ErrorKind::NotFound => (127, "not found".to_string()),
        ErrorKind::PermissionDenied => (126, "permission denied".to_string()),
        _ => (126, e.to_string()),
    };
    eprintln!("berth-init: exec {}: {why}", args[0].to_string_lossy());
    code
}
