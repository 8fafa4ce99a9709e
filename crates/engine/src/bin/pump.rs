//! `berth-pump INIT OUT_FD ERR_FD LOG MAX_SIZE MAX_FILE -- MONITOR_ARGV…`: what a
//! container's monitor becomes (by `execve`, same pid) once the container runs and has no
//! health check. It only copies the container's output into its log (engine::pump) — a
//! small program whose few code pages are all an idle container costs — and, when the
//! container's init (`INIT`, our child) has ended, executes `MONITOR_ARGV… --exit-code C
//! --ran-ms M`: the monitor again, to record the exit and apply the restart policy.
//!
//! Across both `execve`s the process keeps what makes it the monitor: its pid (the
//! container's parent), the child-subreaper flag, its private mount namespace with the
//! container's rootfs, its blocked SIGCHLD (a pending one stays pending), and the pipe
//! descriptors passed by number. `MAX_SIZE` 0 means no rotation.
#![forbid(unsafe_code)]

use berth_engine::logfiles::LogOpts;
use berth_engine::pump;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::ffi::{CString, OsString};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    init: i32,
    pipes: [RawFd; 2],
    log: PathBuf,
    opts: LogOpts,
    then: Vec<OsString>,
}

fn parse() -> Option<Args> {
    let a: Vec<OsString> = std::env::args_os().skip(1).collect();
    let sep = a.iter().position(|s| s == "--")?;
    let (head, then) = (&a[..sep], &a[sep + 1..]);
    let [init, out, err, log, max_size, max_file] = head else {
        return None;
    };
    let num = |s: &OsString| s.to_str()?.parse::<u64>().ok();
    let fd = |s: &OsString| {
        num(s)
            .and_then(|n| RawFd::try_from(n).ok())
            .filter(|n| *n > 2)
    };
    let max_size = num(max_size)?;
    Some(Args {
        init: i32::try_from(num(init)?).ok().filter(|p| *p > 0)?,
        pipes: [fd(out)?, fd(err)?],
        log: PathBuf::from(log),
        opts: LogOpts {
            max_size: (max_size > 0).then_some(max_size),
            max_file: u32::try_from(num(max_file)?).ok()?.max(1),
        },
        then: then.to_vec(),
    })
    .filter(|a| !a.then.is_empty())
}

fn cstring(s: &OsString) -> Option<CString> {
    CString::new(s.as_bytes()).ok()
}

/// Drops the pages our start-up touched (sys::mem), then sleeps until the container first
/// writes or a child ends: an idle container costs only the few pages this wait touches.
/// What woke us stays pending for the pump loop.
fn idle(sfd: &SignalFd, out: &OwnedFd, err: &OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let _ = sys::mem::shed_startup_pages();
    let mut fds = [
        PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        PollFd::new(out.as_fd(), PollFlags::POLLIN),
        PollFd::new(err.as_fd(), PollFlags::POLLIN),
    ];
    let _ = nix::poll::poll(&mut fds, PollTimeout::NONE);
}

/// Without its output: only waits for the init to end (its exit code, as the pump's).
fn wait_for(init: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(init), None) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return -1,
        }
    }
}

fn main() {
    let Some(a) = parse() else {
        eprintln!(
            "berth-pump: usage: berth-pump INIT OUT_FD ERR_FD LOG MAX_SIZE MAX_FILE -- MONITOR_ARGV…"
        );
        std::process::exit(2);
    };
    let started = Instant::now();
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let code = match mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK))
    {
        Ok(sfd) => match a.pipes.map(sys::fd::inherited) {
            [Ok(o), Ok(e)] => {
                idle(&sfd, &o, &e);
                pump::run(
                    &sfd,
                    a.init,
                    pump::ContainerIo::pipes(o, e),
                    None,
                    &a.log,
                    a.opts,
                    &mut pump::NoChecks,
                )
            }
            _ => {
                eprintln!("berth-pump: the container's output descriptors are not open");
                wait_for(a.init)
            }
        },
        Err(e) => {
            eprintln!("berth-pump: signalfd: {e}");
            wait_for(a.init)
        }
    };
    let mut argv: Vec<CString> = a.then.iter().filter_map(cstring).collect();
    for extra in [
        "--exit-code".to_string(),
        code.to_string(),
        "--ran-ms".to_string(),
        started.elapsed().as_millis().to_string(),
    ] {
        argv.extend(CString::new(extra).ok());
    }
    let err = match argv.first() {
        Some(path) => nix::unistd::execv(path, &argv).err(),
        None => None,
    };
    eprintln!("berth-pump: execute the monitor again: {err:?}");
    std::process::exit(1);
}
