//! The monitor's idle loop: copies a running container's stdout and stderr into its
//! json-file log until the container's init has exited and its pipes are closed, reaping
//! whatever else ends meanwhile (we are a child subreaper), and runs periodic work (the
//! health checks) on its schedule. Shared by `berth-monitor` (containers with a health
//! check) and `berth-pump` (src/bin/pump.rs: the lean process a monitor re-executes into
//! once its container runs, so an idle container costs only this loop's pages).

use crate::attach::{Hub, Input};
use crate::logfiles::{LogOpts, RotatingLog};
use crate::logs::{self, LineSplitter};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// A running container's stdio as its monitor holds it.
pub struct ContainerIo {
    /// Output descriptors and the log stream each is (a terminal's master is stdout).
    pub outputs: Vec<(OwnedFd, &'static str)>,
    /// Where attached clients' input goes: the terminal's master, or stdin's pipe (`-i`).
    pub input: Option<OwnedFd>,
    pub terminal: bool,
}

impl ContainerIo {
    /// The container's stdout and stderr pipes, nothing to feed.
    pub fn pipes(out: OwnedFd, err: OwnedFd) -> ContainerIo {
        ContainerIo {
            outputs: vec![(out, "stdout"), (err, "stderr")],
            input: None,
            terminal: false,
        }
    }
}

/// Work the loop runs beside the copying (the health checker; [`NoChecks`] for none).
pub trait Checks {
    /// A descriptor to wait on (a running probe's output).
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// How long the loop may sleep before [`Checks::tick`] has something to do.
    fn timeout(&self) -> Duration;
    /// The descriptor of [`Checks::fd`] is readable.
    fn read(&mut self);
    /// Called after every wake-up while the container runs.
    fn tick(&mut self);
    /// A process other than the init ended with `code`.
    fn exited(&mut self, pid: i32, code: i32);
    /// The container ended.
    fn abort(&mut self);
}

/// No periodic work.
pub struct NoChecks;

impl Checks for NoChecks {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn timeout(&self) -> Duration {
        Duration::MAX
    }
    fn read(&mut self) {}
    fn tick(&mut self) {}
    fn exited(&mut self, _: i32, _: i32) {}
    fn abort(&mut self) {}
}

impl Checks for crate::health::Checker {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        crate::health::Checker::fd(self)
    }
    fn timeout(&self) -> Duration {
        crate::health::Checker::timeout(self)
    }
    fn read(&mut self) {
        crate::health::Checker::read(self)
    }
    fn tick(&mut self) {
        crate::health::Checker::tick(self)
    }
    fn exited(&mut self, pid: i32, code: i32) {
        crate::health::Checker::exited(self, pid, code);
    }
    fn abort(&mut self) {
        crate::health::Checker::abort(self)
    }
}

/// Reaps every child that has ended; the init's exit code (128 + signal when killed) if it
/// was among them.
fn reap(init: i32, checks: &mut impl Checks) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => code = Some(128 + s as i32),
            Ok(WaitStatus::Exited(p, c)) => checks.exited(p.as_raw(), c),
            Ok(WaitStatus::Signaled(p, s, _)) => checks.exited(p.as_raw(), 128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

/// Copies the container's output (`cio`) into the log at `log_path` until the init `init`
/// has exited and its outputs are closed; its exit code. `sfd` reports SIGCHLD (blocked by
/// the caller). A child that ended before the call is reaped at once. With a `hub`, output
/// also goes to the attached clients and their input to the container (attach.rs).
pub fn run(
    sfd: &SignalFd,
    init: i32,
    cio: ContainerIo,
    mut hub: Option<&mut Hub>,
    log_path: &Path,
    log_opts: LogOpts,
    checks: &mut impl Checks,
) -> i32 {
    let mut log = RotatingLog::open(log_path, log_opts).ok();
    let streams: Vec<&str> = cio.outputs.iter().map(|(_, s)| *s).collect();
    let mut files: Vec<Option<File>> = cio
        .outputs
        .into_iter()
        .map(|(f, _)| Some(File::from(f)))
        .collect();
    let mut split: Vec<LineSplitter> = streams.iter().map(|_| Default::default()).collect();
    let mut input = cio.input;
    let terminal = cio.terminal;
    let mut code: Option<i32> = reap(init, checks);
    let mut buf = vec![0u8; 16 * 1024];
    let write = |log: &mut Option<RotatingLog>, line: &[u8], stream: &str| {
        if let Some(f) = log.as_mut() {
            let _ = f.write_entry(&logs::encode(line, stream, &runtime::state::now_rfc3339()));
        }
    };
    loop {
        if code.is_some() && files.iter().all(Option::is_none) {
            break;
        }
        let mut idx = Vec::new();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        for (i, f) in files.iter().enumerate() {
            if let Some(f) = f {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                idx.push(i);
            }
        }
        let check_at = fds.len();
        if let Some(fd) = checks.fd() {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        let hub_at = fds.len();
        if let Some(h) = hub.as_deref() {
            fds.extend(
                h.fds()
                    .into_iter()
                    .map(|f| PollFd::new(f, PollFlags::POLLIN)),
            );
        }
        // Once the init is gone its pipes close with its namespace; do not wait forever.
        let timeout = match code {
            Some(_) => PollTimeout::from(2000u16),
            None => match checks.timeout() {
                Duration::MAX => PollTimeout::NONE,
                t => PollTimeout::from(t.as_millis().min(60_000) as u16),
            },
        };
        let n = match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => 0,
        };
        if n == 0 && code.is_some() {
            break;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if let Some(h) = hub.as_deref_mut() {
            if ready.get(hub_at).copied().unwrap_or(false) {
                h.accept();
            }
            let clients = ready.get(hub_at + 1..).unwrap_or(&[]);
            h.serve(clients, |req| match req {
                Input::Data(d) => {
                    if let Some(fd) = &input {
                        crate::attach::write_input(fd.as_fd(), d);
                    }
                }
                Input::Resize(rows, cols) if terminal => {
                    if let Some(fd) = &input {
                        let _ = sys::process::set_window_size(fd.as_fd(), rows, cols);
                    }
                }
                Input::Resize(..) => {}
                // The terminal stays: its master is also the output.
                Input::CloseStdin if !terminal => input = None,
                Input::CloseStdin => {}
            });
        }
        if ready[0] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            if let Some(c) = reap(init, checks) {
                code = Some(c);
            }
        }
        if ready.get(check_at).copied().unwrap_or(false) {
            checks.read();
        }
        if code.is_some() {
            checks.abort();
        } else {
            checks.tick();
        }
        for (k, &i) in idx.iter().enumerate() {
            if !ready[k + 1] {
                continue;
            }
            let Some(f) = files[i].as_mut() else { continue };
            match f.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO from a terminal's master once the container's side is closed.
                Ok(0) | Err(_) => {
                    split[i].flush(|l| write(&mut log, l, streams[i]));
                    files[i] = None;
                }
                Ok(n) => {
                    if let Some(h) = hub.as_deref_mut() {
                        let kind = if streams[i] == "stderr" {
                            crate::attach::OUT_STDERR
                        } else {
                            crate::attach::OUT_STDOUT
                        };
                        h.broadcast(kind, &buf[..n]);
                    }
                    split[i].feed(&buf[..n], |l| write(&mut log, l, streams[i]));
                }
            }
        }
    }
    for (i, s) in split.iter_mut().enumerate() {
        s.flush(|l| write(&mut log, l, streams[i]));
    }
    code.unwrap_or(-1)
}
