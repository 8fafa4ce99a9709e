//! `berth-monitor --root R --runroot RR --runtime RT ID`: the parent of one container
//! after the command that started it has exited (see the engine's lib.rs for the
//! invariants).
//!
//! It forks once (unless `--foreground`) and the child starts a new session, so the caller
//! waits only for the first, short-lived process; the second reports on its stdout (`ok` once the
//! container runs, `error: …` if it could not start it) and then lets go of it. Then it:
//! becomes a child subreaper; mounts the container's overlay rootfs in a private mount
//! namespace of its own (so it never appears in the host's mount table and goes with the
//! monitor); writes config.json; runs `berth-runtime run --detach` (create + start) with the
//! container's stdout and stderr on pipes it reads (the container's init is reparented to
//! it: no runtime process stays); writes every line of output to the json-file log;
//! on exit records the exit code, time and OOM kill in the database and the exit file,
//! deletes the runtime's state and applies the restart policy (Docker's back-off: 100 ms,
//! doubling, at most 1 min, reset after 10 s of running). One thread, no async runtime; the
//! database is opened only when there is something to record.
#![forbid(unsafe_code)]

use engine::attach::{Hub, Input};
use engine::container::{alive, EXIT_FILE, LOG};
use engine::db::Db;
use engine::probe::Verdict;
use engine::{Error, Result, State};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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
    /// `start -a`: wait for a client on the attach socket before starting the container.
    attach: bool,
    id: String,
    /// Back from `berth-pump`: the container's exit code, how long it ran, and the
    /// restart back-off then in force.
    resume: Option<Resume>,
}

#[derive(Debug, Clone, Copy)]
struct Resume {
    code: i32,
    ran: Duration,
    delay: Duration,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut it = std::env::args_os().skip(1);
    let (mut root, mut runroot, mut runtime, mut foreground, mut attach, mut id) =
        (None, None, None, false, false, None);
    let (mut code, mut ran, mut delay) = (None, None, None);
    let num = |what: &str, v: Option<std::ffi::OsString>| -> std::result::Result<i64, String> {
        v.as_ref()
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{what} needs a number"))
    };
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--root") => root = it.next().map(PathBuf::from),
            Some("--runroot") => runroot = it.next().map(PathBuf::from),
            Some("--runtime") => runtime = it.next().map(PathBuf::from),
            Some("--foreground") => foreground = true,
            Some("--attach") => attach = true,
            Some("--exit-code") => code = Some(num("--exit-code", it.next())? as i32),
            Some("--ran-ms") => ran = Some(num("--ran-ms", it.next())?.max(0) as u64),
            Some("--delay-ms") => delay = Some(num("--delay-ms", it.next())?.max(0) as u64),
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
        attach,
        id: id.ok_or("the container id is required")?,
        resume: code.map(|code| Resume {
            code,
            ran: Duration::from_millis(ran.unwrap_or(0)),
            delay: Duration::from_millis(delay.unwrap_or(100)),
        }),
    })
}

/// The caller's end of the report: our stdout until we let go of it.
struct Reporter {
    out: Option<File>,
}

impl Reporter {
    /// A line that is not the final report (`attach`).
    fn say(&mut self, msg: &str) {
        if let Some(f) = self.out.as_mut() {
            let _ = writeln!(f, "{msg}");
        }
    }

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
        // reparented to init (or a subreaper) when we exit now. A fork, not an exec of
        // ourselves again: nothing has run yet that the child should not inherit.
        match sys::process::clone_process(0, None) {
            Ok(sys::process::CloneResult::Child) => {}
            Ok(sys::process::CloneResult::Parent(_)) => std::process::exit(0),
            Err(e) => {
                println!("error: start the monitor: {e}");
                std::process::exit(1);
            }
        }
    }
    engine::trace::stage("monitor");
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

/// Writes `body` to `path` through a temp file and rename: a reader sees the old or the new
/// file whole. No fsync: both files written this way (config.json, the exit file) are
/// made again by the monitor or stand for a process that a power loss ends anyway, so
/// durability would only cost milliseconds on every start and exit.
fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let w = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        drop(f);
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
        let resume = self.args.resume;
        let c = match resume {
            // Back from berth-pump: the mount namespace, the rootfs and the claim are ours.
            Some(_) => Db::open(&self.args.root)?.find(&id)?,
            None => {
                engine::container::private_mount_namespace()?;
                self.claim_and_prepare(me, my_start)?
            }
        };
        // Checked when the container was created; a bad value here means no rotation.
        let log_opts = engine::logfiles::LogOpts::from_map(&c.spec.log_opts).unwrap_or_default();
        // The attach socket lives as long as the monitor (attach.rs) — not the pump, which
        // removes it; without it the container still runs, its output read from the log.
        let mut hub = match Hub::bind(&self.dir) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "no attach socket");
                None
            }
        };
        if self.args.attach && resume.is_none() {
            if let Some(h) = hub.as_mut() {
                rep.say("attach");
                if !h.wait_for_client(Duration::from_secs(10)) {
                    tracing::warn!(container = %id, "no client attached within 10 s");
                }
                if let Some((rows, cols)) = h.early_size().filter(|_| c.spec.opts.tty) {
                    if let Err(e) = self.set_console_size(rows, cols) {
                        tracing::warn!(container = %id, error = %e, "terminal size");
                    }
                }
            }
        }
        let hc = engine::health::effective(&c.spec);
        let mut delay = resume.map_or(Duration::from_millis(100), |r| r.delay);
        let mut first = resume.is_none();
        let mut pending = resume.map(|r| (r.code, r.ran));
        loop {
            let mut verdict = None;
            let (code, ran) = match pending.take() {
                Some(ended) => ended,
                None => {
                    let started = Instant::now();
                    match self.run_once(&c.spec, hub.as_mut()) {
                        Ok((pid, pid_start, cio)) => {
                            engine::trace::stage("monitor:record");
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
                            if c.spec.probes.readiness.is_some() || c.spec.probes.startup.is_some()
                            {
                                engine::probe::reset(&mut db, &id)?;
                            }
                            drop(db);
                            if first {
                                engine::trace::stage("monitor:ok");
                                rep.send("ok");
                                first = false;
                            }
                            tracing::info!(container = %id, pid, "running");
                            self.endpoints_changed(&c);
                            // The lean pump when nothing but the log needs us: no health
                            // check, no terminal or stdin to serve, no attached client.
                            let attached = hub.as_ref().is_some_and(|h| h.fds().len() > 1);
                            if hc.is_none()
                                && c.spec.probes.is_empty()
                                && cio.input.is_none()
                                && !cio.terminal
                                && !attached
                            {
                                if let Some(h) = hub.take() {
                                    h.remove(&self.dir);
                                }
                                // Returns only if berth-pump could not be executed.
                                if let Err(e) = self.exec_pump(pid, &cio, log_opts, delay) {
                                    tracing::warn!(container = %id, error = %e,
                                        "berth-pump: copying the output in the monitor");
                                }
                            }
                            // From here on only the pump loop runs: the start-up code's pages
                            // (SQLite, JSON, the image store, mounts) need not stay resident.
                            let _ = sys::mem::shed_startup_pages();
                            let (code, v) = self.pump(
                                &sfd,
                                pid,
                                &c.spec,
                                cio,
                                hub.as_mut(),
                                hc.as_ref(),
                                log_opts,
                            );
                            verdict = v;
                            (code, started.elapsed())
                        }
                        Err(e) => {
                            let mut db = Db::open(&self.args.root)?;
                            self.record_failure(&mut db, &e);
                            return Err(e);
                        }
                    }
                }
            };
            let oom = oom_killed(&self.cgroup());
            let _ = write_atomic(&self.dir.join(EXIT_FILE), code.to_string().as_bytes());
            let _ = self.runtime_quiet(&["delete", "--force", &id]);
            if ran >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            let mut db = Db::open(&self.args.root)?;
            let again = db
                .update(&id, |row| {
                    // A probe's or `--health-on-failure`'s kill (probe.rs `Verdict`).
                    let again = row.state != State::Removing
                        && match verdict {
                            Some(Verdict::Restart) => {
                                !row.stopped_by_user && !row.spec.probes.never_restart
                            }
                            Some(Verdict::Stop) => {
                                row.stopped_by_user = true;
                                false
                            }
                            None => row.spec.restart.should_restart(
                                code,
                                row.restart_count,
                                row.stopped_by_user,
                            ),
                        };
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
            self.endpoints_changed(&c);
            // `--rm`: removed before the clients hear of the exit (a `run --rm` returns
            // with its container gone, as Docker's).
            if !again && c.spec.auto_remove {
                self.auto_remove();
            }
            // Attached clients learn the code once the database has it: `start -a`
            // returns with the container exited, never still `running`.
            if let Some(h) = hub.as_mut() {
                h.exited(code);
            }
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

    /// Records us as the container's monitor (refused if another one lives or the
    /// container is being removed), then prepares its rootfs and config.json; its row.
    fn claim_and_prepare(&self, me: i32, my_start: u64) -> Result<engine::Container> {
        let id = &self.args.id;
        engine::trace::stage("monitor:claim");
        let mut db = Db::open(&self.args.root)?;
        let c = db
            .update(id, |row| {
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
        if let Err(e) = self.prepare(&c) {
            self.record_failure(&mut db, &e);
            return Err(e);
        }
        Ok(c)
    }

    /// Becomes `berth-pump` (beside our executable; same pid, so still the container's
    /// parent and subreaper, in our mount namespace) with the container's output pipes
    /// passed by number; it executes us again with `--exit-code` when the init has ended.
    /// Returns only on failure (the pipes are then as they were).
    fn exec_pump(
        &self,
        init: i32,
        cio: &engine::pump::ContainerIo,
        log_opts: engine::logfiles::LogOpts,
        delay: Duration,
    ) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let [(out, _), (err, _)] = cio.outputs.as_slice() else {
            return Err(Error::Runtime("berth-pump takes stdout and stderr".into()));
        };
        let pipes = [out, err];
        let me = std::env::current_exe().map_err(engine::error::io("find our executable"))?;
        let pump = me.with_file_name("berth-pump");
        let c = |s: &std::ffi::OsStr| {
            std::ffi::CString::new(s.as_bytes())
                .map_err(|_| Error::Invalid(format!("{s:?} contains a NUL byte")))
        };
        let log = self.dir.join(LOG);
        let mut argv = vec![c(pump.as_os_str())?];
        for a in [
            init.to_string(),
            pipes[0].as_raw_fd().to_string(),
            pipes[1].as_raw_fd().to_string(),
        ] {
            argv.push(c(a.as_ref())?);
        }
        argv.push(c(log.as_os_str())?);
        for a in [
            log_opts.max_size.unwrap_or(0).to_string(),
            log_opts.max_file.to_string(),
            "--".to_string(),
        ] {
            argv.push(c(a.as_ref())?);
        }
        argv.push(c(me.as_os_str())?);
        for a in [
            "--root".as_ref(),
            self.args.root.as_os_str(),
            "--runroot".as_ref(),
            self.args.runroot.as_os_str(),
            "--runtime".as_ref(),
            self.args.runtime.as_os_str(),
            self.args.id.as_ref(),
            "--foreground".as_ref(),
            "--delay-ms".as_ref(),
            delay.as_millis().to_string().as_ref(),
        ] {
            argv.push(c(a)?);
        }
        let cloexec = |on: bool| {
            for p in pipes {
                let flags = if on {
                    nix::fcntl::FdFlag::FD_CLOEXEC
                } else {
                    nix::fcntl::FdFlag::empty()
                };
                nix::fcntl::fcntl(p.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(flags))
                    .map_err(|e| Error::Runtime(format!("fcntl: {e}")))?;
            }
            Ok::<(), Error>(())
        };
        cloexec(false)?;
        let err = nix::unistd::execv(&argv[0], &argv).err();
        let _ = cloexec(true);
        Err(Error::Runtime(format!(
            "execute {}: {}",
            pump.display(),
            err.map_or_else(|| "failed".to_string(), |e| e.to_string())
        )))
    }

    /// The container ran or exited: the services it backs follow (engine::endpoints).
    fn endpoints_changed(&self, c: &engine::Container) {
        if let Err(e) = self
            .engine()
            .endpoints_changed(&c.id, c.spec.pod.as_deref())
        {
            tracing::warn!(container = %c.id, error = %e, "services' backends");
        }
    }

    fn engine(&self) -> engine::Engine {
        engine::Engine {
            root: self.args.root.clone(),
            runroot: self.args.runroot.clone(),
            runtime: self.args.runtime.clone(),
            monitor: PathBuf::new(),
        }
    }

    /// `--rm` (Docker's AutoRemove): the exited container goes, with its anonymous
    /// volumes; our overlay first, or removing the directory would reach into it.
    fn auto_remove(&self) {
        let _ = nix::mount::umount2(&self.dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        let engine = self.engine();
        match engine.remove(&self.args.id, false) {
            Ok(c) => {
                if let Err(e) = engine.remove_anonymous_volumes(&c.spec) {
                    tracing::warn!(container = %self.args.id, error = %e, "--rm: volumes");
                }
            }
            Err(e) => tracing::warn!(container = %self.args.id, error = %e, "--rm"),
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
        engine::trace::stage("monitor:rootfs");
        let mut opts = c.spec.opts.clone();
        if opts.hostname.is_empty() {
            opts.hostname = c.id.chars().take(12).collect();
        }
        let (mut spec, rootfs_path) = if c.spec.infra && c.image_id.is_empty() {
            // A pod's infra without an image: an empty, read-only root (engine::pod).
            let root = self.dir.join("rootfs");
            std::fs::create_dir_all(&root)
                .map_err(engine::error::io(format!("create {}", root.display())))?;
            opts.entrypoint = Some(engine::pod::INFRA_PATH.into());
            opts.cmd = vec!["--pause".into()];
            opts.read_only = true;
            let config = oci_spec::image::ImageConfiguration::default();
            (engine::spec::build(&config, &opts, &root)?, root)
        } else {
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
            (
                engine::spec::build(&img.config, &opts, &rootfs.path)?,
                rootfs.path,
            )
        };
        engine::trace::stage("monitor:config");
        let engine = self.engine();
        engine::volumes::apply(&engine, &c.spec.mounts, &rootfs_path, &mut spec)?;
        engine::network::apply_spec(&engine, c, &mut spec)?;
        engine::pod::apply_spec(&engine, c, &mut spec)?;
        if opts.init {
            engine::spec::add_init(&mut spec, &engine::spec::init_bin()?)?;
        }
        spec["root"]["path"] = serde_json::json!(rootfs_path);
        spec["linux"]["cgroupsPath"] = serde_json::json!(self.cgroup());
        let body = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join("config.json"), &body)
    }

    /// The attached client's terminal size into config.json (runtime-spec `config.md`
    /// "Process": `consoleSize`), so the runtime sizes the pty before the process runs.
    fn set_console_size(&self, rows: u16, cols: u16) -> Result<()> {
        let path = self.dir.join("config.json");
        let body =
            std::fs::read(&path).map_err(engine::error::io(format!("read {}", path.display())))?;
        let mut spec: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| Error::Invalid(e.to_string()))?;
        spec["process"]["consoleSize"] = serde_json::json!({"height": rows, "width": cols});
        let body = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&path, &body)
    }

    /// `berth-runtime run --detach` (create + start); the init's pid, its start time and its
    /// stdio (the terminal's master with `-t`; stdout and stderr pipes, and stdin's with `-i`).
    fn run_once(
        &self,
        spec: &engine::ContainerSpec,
        hub: Option<&mut Hub>,
    ) -> Result<(i32, u64, engine::pump::ContainerIo)> {
        let id = &self.args.id;
        engine::trace::stage("monitor:runtime");
        let tty = spec.opts.tty;
        let _ = std::fs::remove_file(self.dir.join(EXIT_FILE));
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::Runtime(format!("pipe: {e}")))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin, stdin_w) = if spec.interactive && !tty {
            let (r, w) = pipe()?;
            (Stdio::from(r), Some(w))
        } else {
            (Stdio::null(), None)
        };
        // runtime-spec `process.terminal`: the runtime sends the pty's master over the
        // console socket (runc's protocol). Named relative to the runtime's working
        // directory: the absolute path may exceed sun_path.
        let console = if tty {
            let fd = engine::attach::dir_fd(&self.dir)?;
            let path = engine::attach::short_path(&fd, "console.sock");
            let _ = std::fs::remove_file(&path);
            Some(
                std::os::unix::net::UnixListener::bind(&path)
                    .map_err(engine::error::io("bind the console socket"))?,
            )
        } else {
            None
        };
        let pid_file = self.dir.join("pid");
        let _ = std::fs::remove_file(&pid_file);
        // `run --detach` is create + start in one execution of the runtime (one exec and
        // one start-up fewer than two commands); the init is reparented to us, the
        // subreaper, when the runtime exits.
        // berth-runtime executed from a read-only bind of itself is already protected
        // (CVE-2019-5736, runtime exe_guard.rs) and does not execute itself a second time.
        let guard = (self.args.runtime.file_name() == Some("berth-runtime".as_ref()))
            .then(|| sys::mount::readonly_clone(&self.args.runtime).ok())
            .flatten();
        let mut cmd = match &guard {
            Some(fd) => {
                use std::os::unix::process::CommandExt;
                let mut c = Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                c.arg0(&self.args.runtime)
                    .arg("--root")
                    .arg(self.args.runroot.join("runtime"));
                c
            }
            None => self.runtime(),
        };
        cmd.arg("run").arg("--detach");
        if console.is_some() {
            cmd.current_dir(&self.dir)
                .arg("--console-socket")
                .arg("console.sock");
        }
        let status = cmd
            .arg("--bundle")
            .arg(&self.dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(stdin)
            .stdout(if tty {
                Stdio::null()
            } else {
                Stdio::from(out_w)
            })
            .stderr(Stdio::from(err_w))
            .status()
            .map_err(engine::error::io(format!(
                "run {}",
                self.args.runtime.display()
            )))?;
        if !status.success() {
            // The init never ran: what is in the pipe is the runtime's message.
            nix::fcntl::fcntl(
                err_r.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .ok();
            let mut msg = Vec::new();
            let _ = File::from(err_r).read_to_end(&mut msg);
            let _ = self.runtime_quiet(&["delete", "--force", id]);
            return Err(rt_err("run", &msg));
        }
        let master = match console {
            Some(l) => {
                let _ = std::fs::remove_file(self.dir.join("console.sock"));
                let got = l
                    .set_nonblocking(true)
                    .and_then(|()| l.accept())
                    .map_err(|e| Error::Runtime(format!("the runtime sent no terminal: {e}")))
                    .and_then(|(s, _)| {
                        sys::fd::recv_fd(s.as_fd()).map_err(|e| {
                            Error::Runtime(format!("receive the terminal from the runtime: {e}"))
                        })
                    });
                match got {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let _ = self.runtime_quiet(&["delete", "--force", id]);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let nonblock = |fd: &OwnedFd| {
            let _ = nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        };
        // Non-blocking both ways (one open file description): output is read when poll says
        // so, input the container does not take is dropped — from the first byte on.
        if let Some(m) = &master {
            nonblock(m);
        }
        // What an attached client sent before the start (its terminal's size, and what was
        // typed since) applies now.
        if let (Some(m), Some(h)) = (&master, hub) {
            h.serve_pending(|req| match req {
                Input::Resize(rows, cols) => {
                    let _ = sys::process::set_window_size(m.as_fd(), rows, cols);
                }
                Input::Data(d) => engine::attach::write_input(m.as_fd(), d),
                Input::CloseStdin => {}
            });
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
        let cio = match master {
            Some(m) => {
                let input = m
                    .try_clone()
                    .map_err(engine::error::io("dup the terminal"))?;
                engine::pump::ContainerIo {
                    outputs: vec![(m, "stdout"), (err_r, "stderr")],
                    input: Some(input),
                    terminal: true,
                }
            }
            None => {
                if let Some(w) = &stdin_w {
                    nonblock(w);
                }
                engine::pump::ContainerIo {
                    outputs: vec![(out_r, "stdout"), (err_r, "stderr")],
                    input: stdin_w,
                    terminal: false,
                }
            }
        };
        Ok((pid, pid_start, cio))
    }

    /// Copies the container's output into the log until it has exited and its pipes are
    /// closed (engine::pump); its exit code (128 + signal when killed) and what a probe or
    /// the health check decided. Runs the health check `hc` on its schedule meanwhile
    /// (engine::health::Checker), and the Kubernetes probes on a thread (engine::probe).
    #[allow(clippy::too_many_arguments)]
    fn pump(
        &self,
        sfd: &SignalFd,
        init: i32,
        spec: &engine::ContainerSpec,
        cio: engine::pump::ContainerIo,
        hub: Option<&mut Hub>,
        hc: Option<&engine::health::Effective>,
        log_opts: engine::logfiles::LogOpts,
    ) -> (i32, Option<Verdict>) {
        let verdict = engine::probe::SharedVerdict::default();
        let stop_signal = spec
            .stop_signal
            .as_deref()
            .and_then(|s| engine::types::parse_signal(s).ok())
            .unwrap_or(nix::sys::signal::Signal::SIGTERM);
        let grace = Duration::from_secs(spec.stop_timeout.unwrap_or(10));
        let mut checks = Checks {
            health: hc.map(|h| {
                let mut ch = engine::health::Checker::new(
                    h.clone(),
                    &self.args.id,
                    self.args.root.clone(),
                    self.args.runtime.clone(),
                    self.args.runroot.join("runtime"),
                    self.dir.clone(),
                );
                ch.on_failure(
                    spec.health_on_failure,
                    verdict.clone(),
                    init,
                    stop_signal,
                    grace,
                );
                ch
            }),
            reaped: engine::probe::Reaped::default(),
            prober: None,
        };
        if !spec.probes.is_empty() {
            checks.prober = Some(engine::probe::Prober::start(
                spec.probes.clone(),
                engine::probe::ProberCtx {
                    id: self.args.id.clone(),
                    root: self.args.root.clone(),
                    runtime: self.args.runtime.clone(),
                    runtime_root: self.args.runroot.join("runtime"),
                    dir: self.dir.clone(),
                    init,
                    stop_signal,
                    grace,
                    verdict: verdict.clone(),
                    reaped: checks.reaped.clone(),
                    addr: self
                        .engine()
                        .attachments(&self.args.id)
                        .ok()
                        .and_then(|a| a.iter().find(|a| a.ifname == "eth0").map(|a| a.ip)),
                    engine: self.engine(),
                    pod: spec.pod.clone(),
                },
            ));
        }
        let path = self.dir.join(LOG);
        let code = engine::pump::run(sfd, init, cio, hub, &path, log_opts, &mut checks);
        let v = verdict.lock().ok().and_then(|g| *g);
        (code, v)
    }
}

/// The monitor's periodic work: the health check in its loop, the exit codes of the probe
/// thread's commands handed over.
struct Checks {
    health: Option<engine::health::Checker>,
    reaped: engine::probe::Reaped,
    prober: Option<engine::probe::Prober>,
}

impl engine::pump::Checks for Checks {
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.health.as_ref().and_then(|h| h.fd())
    }
    fn timeout(&self) -> Duration {
        self.health.as_ref().map_or(Duration::MAX, |h| h.timeout())
    }
    fn read(&mut self) {
        if let Some(h) = self.health.as_mut() {
            h.read();
        }
    }
    fn tick(&mut self) {
        if let Some(h) = self.health.as_mut() {
            h.tick();
        }
    }
    fn exited(&mut self, pid: i32, code: i32) {
        let health = self.health.as_mut().is_some_and(|h| h.exited(pid, code));
        if !health && self.prober.is_some() {
            self.reaped.push(pid, code);
        }
    }
    fn abort(&mut self) {
        if let Some(h) = self.health.as_mut() {
            h.abort();
        }
        if let Some(p) = self.prober.take() {
            p.stop();
        }
    }
}
