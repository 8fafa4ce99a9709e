//! Running processes: configuration scripts (output collected, time-limited) and the
//! workload, and waiting for them either directly or, as PID 1, through the [`Reaper`] that
//! collects every child and orphan.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most script output returned; the rest is read and dropped.
pub const MAX_OUTPUT: usize = 1 << 20;
/// A script's time limit when the request gives none.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Default)]
struct Reaped {
    tracked: HashSet<i32>,
    exited: HashMap<i32, Exit>,
}

/// PID 1's reaper: one thread waits for every child (ours and orphans re-parented to us)
/// and keeps the exit of those we track.
///
/// It first only looks (`waitid(WNOWAIT)`), then reaps that one process under the lock
/// that [`Waiter::spawn`] holds while spawning: `std` waits for a child whose `exec`
/// failed inside `spawn`, and that child must not be reaped under its feet.
pub struct Reaper {
    state: Mutex<Reaped>,
}

impl Reaper {
    /// Starts the reaping thread.
    pub fn start() -> Arc<Reaper> {
        let r = Arc::new(Reaper {
            state: Mutex::new(Reaped::default()),
        });
        let r2 = r.clone();
        std::thread::spawn(move || loop {
            match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
                Ok(ws) => {
                    if let Some(pid) = ws.pid() {
                        r2.reap(pid);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                // No children now: look again soon.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        });
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reaped> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reaps `pid` (if nobody did meanwhile) and keeps its exit if it is tracked.
    fn reap(&self, pid: Pid) {
        let mut s = self.lock();
        let exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Exit {
                code: Some(code),
                signal: None,
            },
            Ok(WaitStatus::Signaled(_, sig, _)) => Exit {
                code: None,
                signal: Some(sig as i32),
            },
            _ => return,
        };
        if s.tracked.remove(&pid.as_raw()) {
            s.exited.insert(pid.as_raw(), exit);
        }
    }
}

/// How the agent learns that its children ended.
#[derive(Clone)]
pub enum Waiter {
    /// `waitpid` on each child (not PID 1: tests, `--unix` mode).
    Direct,
    /// Through PID 1's reaper.
    Reaper(Arc<Reaper>),
}

/// A started process.
pub struct Proc {
    pub child: Child,
    exit: Option<Exit>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Waiter {
    /// Spawns `cmd` (tracked by the reaper before it can be reaped).
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<Proc> {
        let child = match self {
            Waiter::Direct => cmd.spawn()?,
            Waiter::Reaper(r) => {
                let mut s = r.lock();
                let child = cmd.spawn()?;
                s.tracked.insert(child.id() as i32);
                child
            }
        };
        Ok(Proc { child, exit: None })
    }

    /// The process's exit, if it ended.
    pub fn try_wait(&self, p: &mut Proc) -> io::Result<Option<Exit>> {
        if p.exit.is_none() {
            p.exit = match self {
                Waiter::Direct => p.child.try_wait()?.map(|st| Exit {
                    code: st.code(),
                    signal: st.signal(),
                }),
                Waiter::Reaper(r) => r.lock().exited.remove(&(p.pid() as i32)),
            };
        }
        Ok(p.exit)
    }
}

/// What a script did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptResult {
    pub exit: Exit,
    pub output: Vec<u8>,
    pub truncated: bool,
    pub timed_out: bool,
}

/// Runs `script` with `shell -s` (the script on stdin) in its own process group, with
/// `env` and `/` as its directory; collects stdout and stderr together. After `timeout`
/// the group is killed. Output is read until the shell has exited and the pipe is drained
/// (a background process holding the pipe does not keep the request waiting).
pub fn run_script(
    waiter: &Waiter,
    shell: &Path,
    script: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> io::Result<ScriptResult> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let mut cmd = Command::new(shell);
    cmd.arg("-s")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(w.try_clone()?))
        .stderr(Stdio::from(w))
        .process_group(0);
    let mut proc = waiter
        .spawn(&mut cmd)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", shell.display())))?;
    // The parent's copies of the pipe's write end go with the command.
    drop(cmd);
    let pgid = Pid::from_raw(proc.pid() as i32);
    let writer = proc.child.stdin.take().map(|mut stdin| {
        let script = script.as_bytes().to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&script);
        })
    });
    fcntl(r.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    let mut pipe = File::from(r);
    let deadline = Instant::now() + timeout;
    let mut output = Vec::new();
    let mut truncated = false;
    let mut timed_out = false;
    let mut eof = false;
    let mut chunk = vec![0u8; 64 << 10];
    let exit = loop {
        if !eof {
            let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(100u16));
        }
        let exit = waiter.try_wait(&mut proc)?;
        // Drain what is there (after the shell ended too: its last words).
        while !eof {
            match pipe.read(&mut chunk) {
                Ok(0) => eof = true,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(output.len());
                    output.extend_from_slice(&chunk[..n.min(room)]);
                    truncated |= n > room;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if let Some(exit) = exit {
            break exit;
        }
        if eof {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !timed_out && Instant::now() >= deadline {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    };
    // The writer ends when the script is written or its reader is gone; a background
    // process still holding the shell's stdin must not hold this request: it is not joined.
    drop(writer);
    Ok(ScriptResult {
        exit,
        output,
        truncated,
        timed_out,
    })
}
