//! `berth-agent --fn SOCKET`: the init of a stdio-mode function instance (the OpenFaaS
//! classic watchdog contract). The gateway bind-mounts the agent read-only into the
//! instance's container and a directory for `SOCKET`; each connection carries
//! [`Invoke`] requests, and each one forks the function's command with the request body on
//! its stdin and answers its exit, stdout and stderr ([`proto`](crate::proto)). Connections
//! are served concurrently (one thread each). As PID 1 of the instance's PID namespace the
//! agent reaps every orphan; the exits of its own commands are handed to their waiters
//! through [`Exits`] at once (no polling on the request path).

use crate::proto::{self, Invoke, Invoked, MAX_OUTPUT};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    tracked: HashSet<i32>,
    exited: HashMap<i32, (Option<i32>, Option<i32>)>,
}

/// Every child's exit, collected by one reaping thread; waiters are woken by a condvar.
pub struct Exits {
    state: Mutex<State>,
    cond: Condvar,
}

impl Exits {
    /// Starts the reaping thread.
    pub fn start() -> Arc<Exits> {
        let e = Arc::new(Exits {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let e2 = e.clone();
        std::thread::spawn(move || loop {
            // Look first (WNOWAIT), then reap under the lock `spawn` holds: std waits for a
            // child whose exec failed inside `spawn`, and that one must not be taken from it.
            match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
                Ok(ws) => {
                    if let Some(pid) = ws.pid() {
                        e2.reap(pid);
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        });
        e
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reap(&self, pid: Pid) {
        let mut s = self.lock();
        let exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => (Some(code), None),
            Ok(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
            _ => return,
        };
        if s.tracked.remove(&pid.as_raw()) {
            s.exited.insert(pid.as_raw(), exit);
            self.cond.notify_all();
        }
    }

    fn spawn(&self, cmd: &mut Command) -> io::Result<Child> {
        let mut s = self.lock();
        let child = cmd.spawn()?;
        s.tracked.insert(child.id() as i32);
        Ok(child)
    }

    /// Waits for `pid`'s exit until `deadline`; `None` when it is still running then.
    fn wait(&self, pid: i32, deadline: Instant) -> Option<(Option<i32>, Option<i32>)> {
        let mut s = self.lock();
        loop {
            if let Some(e) = s.exited.remove(&pid) {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self
                .cond
                .wait_timeout(s, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// Serves `socket` until the process is killed.
pub fn serve(socket: &Path) -> io::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", socket.display())))?;
    let exits = Exits::start();
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                let exits = exits.clone();
                std::thread::spawn(move || {
                    if let Err(e) = connection(&exits, conn) {
                        let _ = writeln!(io::stderr(), "berth-agent: connection: {e}");
                    }
                });
            }
            Err(e) => {
                let _ = writeln!(io::stderr(), "berth-agent: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn connection(exits: &Exits, mut conn: UnixStream) -> io::Result<()> {
    loop {
        let Some(req) = proto::recv::<Invoke>(&mut conn)? else {
            return Ok(());
        };
        let stdin = proto::read_frame(&mut conn)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no body frame after the request",
            )
        })?;
        let (res, out, err) = invoke(exits, &req, stdin);
        proto::send(&mut conn, &res)?;
        proto::write_frame(&mut conn, &out)?;
        proto::write_frame(&mut conn, &err)?;
    }
}

/// Reads `r` to its end, keeping at most [`MAX_OUTPUT`] bytes.
fn read_capped(mut r: impl Read) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut truncated = false;
    loop {
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..n.min(room)]);
                truncated |= n > room;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (out, truncated)
}

/// Runs one invocation: the command in its own process group, killed with it after the
/// request's time limit.
pub fn invoke(exits: &Exits, req: &Invoke, stdin: Vec<u8>) -> (Invoked, Vec<u8>, Vec<u8>) {
    let mut res = Invoked {
        exit_code: None,
        signal: None,
        timed_out: false,
        truncated: false,
        error: None,
    };
    let Some((prog, args)) = req.argv.split_first() else {
        res.error = Some("no command to run".into());
        return (res, Vec::new(), Vec::new());
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .envs(req.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match exits.spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            res.error = Some(format!("{prog}: {e}"));
            return (res, Vec::new(), Vec::new());
        }
    };
    let pid = child.id() as i32;
    if let Some(mut w) = child.stdin.take() {
        std::thread::spawn(move || {
            let _ = w.write_all(&stdin);
        });
    }
    let out = child
        .stdout
        .take()
        .map(|r| std::thread::spawn(move || read_capped(r)));
    let err = child
        .stderr
        .take()
        .map(|r| std::thread::spawn(move || read_capped(r)));
    let deadline = Instant::now() + Duration::from_millis(req.timeout_ms.max(1));
    let exit = match exits.wait(pid, deadline) {
        Some(e) => e,
        None => {
            res.timed_out = true;
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            exits
                .wait(pid, Instant::now() + Duration::from_secs(10))
                .unwrap_or((None, Some(Signal::SIGKILL as i32)))
        }
    };
    // Whatever is left of the group (a background process holding the pipes) goes too, so
    // the readers end.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    (res.exit_code, res.signal) = exit;
    let join = |h: Option<std::thread::JoinHandle<(Vec<u8>, bool)>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (out, t1) = join(out);
    let (err, t2) = join(err);
    res.truncated = t1 || t2;
    (res, out, err)
}
