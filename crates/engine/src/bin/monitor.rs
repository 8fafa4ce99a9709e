//! `berth-monitor --root R --runroot RR --runtime RT ID`: the parent of one container
//! after the command that started it has exited (see the engine's lib.rs for the
//! invariants).
//!
//! It re-executes itself once (`--foreground`) in a new session, so the caller waits only
//! for the first, short-lived process; the second reports on its stdout (`ok` once the
//! container runs, `error: …` if it could not start it) and then lets go of it. Then it:
//! becomes a child subreaper; mounts the container's overlay rootfs in a private mount
//! namespace of its own (so it never appears in the host's mount table and goes with the
//! monitor); writes config.json; runs `berth-runtime create` with the container's stdout and
//! stderr on pipes it reads, then `berth-runtime start` (the container's init is reparented
//! to it: no runtime process stays); writes every line of output to the json-file log;
//! on exit records the exit code, time and OOM kill in the database and the exit file,
//! deletes the runtime's state and applies the restart policy (Docker's back-off: 100 ms,
//! doubling, at most 1 min, reset after 10 s of running). One thread, no async runtime; the
//! database is opened only when there is something to record.
#![forbid(unsafe_code)]

use engine::container::{alive, EXIT_FILE, LOG};
use engine::db::Db;
use engine::{logs, Error, Result, State};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_engine as engine;

#[derive(Debug)]
struct Args {
    root: PathBuf,
    runroot: PathBuf,
    runtime: PathBuf,
    foreground: bool,
    id: String,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut it = std::env::args_os().skip(1);
    let (mut root, mut runroot, mut runtime, mut foreground, mut id) =
        (None, None, None, false, None);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--root") => root = it.next().map(PathBuf::from),
            Some("--runroot") => runroot = it.next().map(PathBuf::from),
            Some("--runtime") => runtime = it.next().map(PathBuf::from),
            Some("--foreground") => foreground = true,
            Some(s) if !s.starts_with('-') && id.is_none() => id = Some(s.to_string()),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let need = |v: Option<PathBuf>, n: &str| v.ok_or(format!("{n} is required"));
    Ok(Args {
        root: need(root, "--root")?,
        runroot: need(runroot, "--runroot")?,
        runtime: need(runtime, "--runtime")?,
        foreground,
        id: id.ok_or("the container id is required")?,
    })
}

/// The caller's end of the report: our stdout until we let go of it.
struct Reporter {
    out: Option<File>,
}

impl Reporter {
    fn send(&mut self, msg: &str) {
        if let Some(mut f) = self.out.take() {
            let _ = writeln!(f, "{msg}");
            drop(f);
            // Our fd 1 is the same pipe: point it at /dev/null so the caller sees EOF.
            if let Ok(null) = File::options().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1);
            }
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            std::process::exit(2);
        }
    };
    if !args.foreground {
        // The double fork: our caller waits for us only; the monitor proper is our child,
        // reparented to init (or a subreaper) when we exit now.
        let r = std::env::current_exe().and_then(|exe| {
            Command::new(exe)
                .args(std::env::args_os().skip(1))
                .arg("--foreground")
                .spawn()
        });
        if let Err(e) = r {
            println!("error: start the monitor: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    let _ = nix::unistd::setsid();
    let mut rep = Reporter {
        out: std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from),
    };
    let m = Monitor {
        dir: args.root.join("containers").join(&args.id),
        args,
    };
    let code = match m.run(&mut rep) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-monitor {}: {e}", m.args.id);
            rep.send(&format!("error: {e}"));
            1
        }
    };
    rep.send("error: the monitor ended");
    std::process::exit(code);
}

struct Monitor {
    args: Args,
    dir: PathBuf,
}

fn rt_err(what: &str, out: &[u8]) -> Error {
    let msg = String::from_utf8_lossy(out);
    let msg = msg.trim();
    Error::Runtime(if msg.is_empty() {
        format!("berth-runtime {what} failed")
    } else {
        msg.lines().last().unwrap_or(msg).to_string()
    })
}

/// Writes `body` to `path` through a temp file, fsync and rename.
fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let w = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    w().map_err(engine::error::io(format!("write {}", path.display())))
}

/// Whether the container's memory cgroup saw an OOM kill (v1 `memory.oom_control`, v2
/// `memory.events`: `oom_kill N`).
fn oom_killed(cgroup: &str) -> bool {
    let rel = cgroup.trim_start_matches('/');
    [
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        format!("/sys/fs/cgroup/unified/{rel}/memory.events"),
        format!("/sys/fs/cgroup/{rel}/memory.events"),
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .any(|t| {
        t.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    })
}

impl Monitor {
    fn runtime(&self) -> Command {
        let mut c = Command::new(&self.args.runtime);
        c.arg("--root").arg(self.args.runroot.join("runtime"));
        c
    }

    fn runtime_quiet(&self, args: &[&str]) -> Result<()> {
        let out = self
            .runtime()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(engine::error::io(format!(
                "run {}",
                self.args.runtime.display()
            )))?;
        if !out.status.success() {
            return Err(rt_err(args[0], &out.stderr));
        }
        Ok(())
    }

    fn cgroup(&self) -> String {
        format!("/berth/{}", self.args.id)
    }

    /// Claims the container, prepares its bundle, then runs it (and its restarts).
    fn run(&self, rep: &mut Reporter) -> Result<()> {
        let id = self.args.id.clone();
        let me = std::process::id() as i32;
        let my_start = runtime::state::process_start_time(me).unwrap_or(0);
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::Runtime(format!("become a child subreaper: {e}")))?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| Error::Runtime(format!("block SIGCHLD: {e}")))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| Error::Runtime(format!("signalfd: {e}")))?;
        engine::container::private_mount_namespace()?;

        let mut db = Db::open(&self.args.root)?;
        let c = db
            .update(&id, |row| {
                if row.monitor_pid != me && alive(row.monitor_pid, row.monitor_start) {
                    return Err(Error::Conflict(format!(
                        "container {} already has a monitor (pid {})",
                        row.name, row.monitor_pid
                    )));
                }
                if row.state == State::Removing {
                    return Err(Error::Conflict(format!(
                        "container {} is being removed",
                        row.name
                    )));
                }
                row.monitor_pid = me;
                row.monitor_start = my_start;
                row.stopped_by_user = false;
                row.error.clear();
                Ok(row.clone())
            })?
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        // Checked when the container was created; a bad value here means no rotation.
        let log_opts = engine::logfiles::LogOpts::from_map(&c.spec.log_opts).unwrap_or_default();
        let prepared = self.prepare(&c);
        if let Err(e) = prepared {
            self.record_failure(&mut db, &e);
            return Err(e);
        }
        drop(db);

        let hc = engine::health::effective(&c.spec);
        let mut delay = Duration::from_millis(100);
        let mut first = true;
        loop {
            let started = Instant::now();
            let code = match self.run_once(&sfd) {
                Ok((pid, pid_start, pipes)) => {
                    let mut db = Db::open(&self.args.root)?;
                    db.update(&id, |row| {
                        row.state = State::Running;
                        row.pid = pid;
                        row.pid_start = pid_start;
                        row.started = runtime::state::now_rfc3339();
                        row.oom_killed = false;
                        Ok(())
                    })?;
                    if hc.is_some() {
                        engine::health::reset(&mut db, &id)?;
                    }
                    drop(db);
                    if first {
                        rep.send("ok");
                        first = false;
                    }
                    tracing::info!(container = %id, pid, "running");
                    // From here on only the pump loop runs: the start-up code's pages
                    // (SQLite, JSON, the image store, mounts) need not stay resident.
                    let _ = sys::mem::shed_startup_pages();
                    self.pump(&sfd, pid, pipes, hc.as_ref(), log_opts)
                }
                Err(e) => {
                    let mut db = Db::open(&self.args.root)?;
                    self.record_failure(&mut db, &e);
                    return Err(e);
                }
            };
            let oom = oom_killed(&self.cgroup());
            let _ = write_atomic(&self.dir.join(EXIT_FILE), code.to_string().as_bytes());
            let _ = self.runtime_quiet(&["delete", "--force", &id]);
            if started.elapsed() >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            let mut db = Db::open(&self.args.root)?;
            let again = db
                .update(&id, |row| {
                    let again = row.state != State::Removing
                        && row.spec.restart.should_restart(
                            code,
                            row.restart_count,
                            row.stopped_by_user,
                        );
                    row.exit_code = Some(code);
                    row.oom_killed = oom;
                    row.finished = runtime::state::now_rfc3339();
                    row.pid = 0;
                    row.pid_start = 0;
                    if row.state != State::Removing {
                        row.state = if again {
                            State::Restarting
                        } else {
                            State::Exited
                        };
                    }
                    if again {
                        row.restart_count += 1;
                    } else {
                        row.monitor_pid = 0;
                        row.monitor_start = 0;
                    }
                    Ok(again)
                })?
                .unwrap_or(false);
            drop(db);
            tracing::info!(container = %id, code, oom, restart = again, "exited");
            if !again {
                return Ok(());
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(60));
            // A stop or rm during the back-off is final.
            let mut db = Db::open(&self.args.root)?;
            let go = db
                .update(&id, |row| {
                    let go = row.state == State::Restarting && !row.stopped_by_user;
                    if !go && row.state != State::Removing {
                        row.state = State::Exited;
                        row.monitor_pid = 0;
                        row.monitor_start = 0;
                    }
                    Ok(go)
                })?
                .unwrap_or(false);
            if !go {
                return Ok(());
            }
        }
    }

    fn record_failure(&self, db: &mut Db, e: &Error) {
        let msg = e.to_string();
        let _ = db.update(&self.args.id, |row| {
            row.error = msg.clone();
            row.monitor_pid = 0;
            row.monitor_start = 0;
            row.pid = 0;
            row.pid_start = 0;
            if row.state != State::Created && row.state != State::Removing {
                row.state = State::Exited;
            }
            Ok(())
        });
    }

    /// The rootfs (in our mount namespace) and config.json.
    fn prepare(&self, c: &engine::Container) -> Result<()> {
        let store = image::ImageStore::open(&self.args.root)?;
        let digest: content::Digest = c.image_id.parse().map_err(|_| {
            Error::Invalid(format!(
                "container {}: bad image id {:?}",
                c.name, c.image_id
            ))
        })?;
        let img = store.image(&digest)?;
        let layers = img.layers()?;
        let rootfs = store.prepare_rootfs_at(&layers, &self.dir, &self.dir.join("rootfs"))?;
        let mut opts = c.spec.opts.clone();
        if opts.hostname.is_empty() {
            opts.hostname = c.id.chars().take(12).collect();
        }
        let mut spec = engine::spec::build(&img.config, &opts, &rootfs.path)?;
        let engine = engine::Engine {
            root: self.args.root.clone(),
            runroot: self.args.runroot.clone(),
            runtime: self.args.runtime.clone(),
            monitor: PathBuf::new(),
        };
        engine::volumes::apply(&engine, &c.spec.mounts, &rootfs.path, &mut spec)?;
        engine::network::apply_spec(&engine, c, &mut spec)?;
        spec["root"]["path"] = serde_json::json!(rootfs.path);
        spec["linux"]["cgroupsPath"] = serde_json::json!(self.cgroup());
        let body = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join("config.json"), &body)
    }

    /// `berth-runtime create` + `start`; the init's pid, its start time and the read ends
    /// of its stdout and stderr.
    fn run_once(&self, _sfd: &SignalFd) -> Result<(i32, u64, [OwnedFd; 2])> {
        let id = &self.args.id;
        let _ = std::fs::remove_file(self.dir.join(EXIT_FILE));
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::Runtime(format!("pipe: {e}")))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let pid_file = self.dir.join("pid");
        let _ = std::fs::remove_file(&pid_file);
        let status = self
            .runtime()
            .arg("create")
            .arg("--bundle")
            .arg(&self.dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .status()
            .map_err(engine::error::io(format!(
                "run {}",
                self.args.runtime.display()
            )))?;
        if !status.success() {
            // The init never ran: what is in the pipe is the runtime's message.
            nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&err_r),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .ok();
            let mut msg = Vec::new();
            let _ = File::from(err_r).read_to_end(&mut msg);
            let _ = self.runtime_quiet(&["delete", "--force", id]);
            return Err(rt_err("create", &msg));
        }
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                Error::Runtime(format!(
                    "berth-runtime wrote no pid to {}",
                    pid_file.display()
                ))
            })?;
        let pid_start = runtime::state::process_start_time(pid).unwrap_or(0);
        if let Err(e) = self.runtime_quiet(&["start", id]) {
            let _ = self.runtime_quiet(&["delete", "--force", id]);
            return Err(e);
        }
        Ok((pid, pid_start, [out_r, err_r]))
    }

    /// Copies the container's output into the log until it has exited and its pipes are
    /// closed; its exit code (128 + signal when killed). Runs the health check `hc` on its
    /// schedule meanwhile (engine::health::Checker).
    fn pump(
        &self,
        sfd: &SignalFd,
        init: i32,
        pipes: [OwnedFd; 2],
        hc: Option<&engine::health::Effective>,
        log_opts: engine::logfiles::LogOpts,
    ) -> i32 {
        let mut checker = hc.map(|h| {
            engine::health::Checker::new(
                h.clone(),
                &self.args.id,
                self.args.root.clone(),
                self.args.runtime.clone(),
                self.args.runroot.join("runtime"),
                self.dir.clone(),
            )
        });
        let path = self.dir.join(LOG);
        let mut log = engine::logfiles::RotatingLog::open(&path, log_opts).ok();
        let mut files: Vec<Option<File>> = pipes.into_iter().map(|f| Some(File::from(f))).collect();
        let mut split = [logs::LineSplitter::default(), logs::LineSplitter::default()];
        let streams = ["stdout", "stderr"];
        let mut code: Option<i32> = None;
        let mut buf = vec![0u8; 16 * 1024];
        let write = |log: &mut Option<engine::logfiles::RotatingLog>, line: &[u8], stream: &str| {
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
            if let Some(fd) = checker.as_ref().and_then(|c| c.fd()) {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            // Once the init is gone its pipes close with its namespace; do not wait forever.
            let timeout = match (&code, &checker) {
                (Some(_), _) => PollTimeout::from(2000u16),
                (None, Some(c)) => PollTimeout::from(c.timeout().as_millis().min(60_000) as u16),
                (None, None) => PollTimeout::NONE,
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
            if ready[0] {
                while let Ok(Some(_)) = sfd.read_signal() {}
                loop {
                    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => code = Some(c),
                        Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => {
                            code = Some(128 + s as i32)
                        }
                        Ok(WaitStatus::Exited(p, c)) => {
                            if let Some(ch) = checker.as_mut() {
                                ch.exited(p.as_raw(), c);
                            }
                        }
                        Ok(WaitStatus::Signaled(p, s, _)) => {
                            if let Some(ch) = checker.as_mut() {
                                ch.exited(p.as_raw(), 128 + s as i32);
                            }
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            if ready.get(check_at).copied().unwrap_or(false) {
                if let Some(ch) = checker.as_mut() {
                    ch.read();
                }
            }
            if let Some(ch) = checker.as_mut() {
                if code.is_some() {
                    ch.abort();
                } else {
                    ch.tick();
                }
            }
            for (k, &i) in idx.iter().enumerate() {
                if !ready[k + 1] {
                    continue;
                }
                let Some(f) = files[i].as_mut() else { continue };
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        split[i].flush(|l| write(&mut log, l, streams[i]));
                        files[i] = None;
                    }
                    Ok(n) => split[i].feed(&buf[..n], |l| write(&mut log, l, streams[i])),
                }
            }
        }
        for (i, s) in split.iter_mut().enumerate() {
            s.flush(|l| write(&mut log, l, streams[i]));
        }
        code.unwrap_or(-1)
    }
}
