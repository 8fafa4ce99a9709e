//! The container API every front end calls: create, start, stop, kill, restart, remove,
//! wait, list, inspect, exec. Each step is a transaction on the database; what outlives a
//! command belongs to the container's monitor (`berth-monitor`, src/bin/monitor.rs).
//!
//! Reconcile: before a row is shown or acted on, a row that says running (or restarting)
//! whose monitor and container process are both gone (pid + start time) becomes exited,
//! with the exit code of the monitor's exit file when it wrote one, else -1 (podman's
//! "unknown"). A container whose monitor died but whose process still runs stays running.

use crate::db::{Container, Db};
use crate::error::{io, Error, Result};
use crate::types::{parse_signal, ContainerSpec, State};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The container's log (Docker's json-file lines), in its directory.
pub const LOG: &str = "ctr.log";
/// The monitor's record of the last exit code, beside the log.
pub const EXIT_FILE: &str = "exit";
/// The monitor's own diagnostics.
pub const MONITOR_LOG: &str = "monitor.log";

/// Where things are.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The image store's root (`--root`); the database and containers/ live here.
    pub root: PathBuf,
    /// Runtime state (`--runroot`); berth-runtime's is `<runroot>/runtime`.
    pub runroot: PathBuf,
    /// The berth-runtime binary.
    pub runtime: PathBuf,
    /// The berth-monitor binary.
    pub monitor: PathBuf,
}

/// Whether `pid` is the process that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && runtime::state::process_start_time(pid) == Some(start)
}

fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io("read /dev/urandom"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The exit code in a monitor's exit file.
fn read_exit_file(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(EXIT_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Engine {
    pub fn db(&self) -> Result<Db> {
        Db::open(&self.root)
    }

    /// `<root>/containers/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }

    /// Creates a container (state `created`): the row first, then its directory.
    pub fn create(&self, name: Option<&str>, mut spec: ContainerSpec) -> Result<Container> {
        if let Some(n) = name {
            if !valid_name(n) {
                return Err(Error::Invalid(format!(
                    "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed"
                )));
            }
        }
        if let Some(n) = name {
            self.refuse_foreground_name(n)?;
        }
        crate::trace::stage("create");
        crate::spec::validate(&spec.opts)?;
        spec.probes.validate()?;
        self.pod_member_at_create(&mut spec)?;
        // A pod's infra without an image: berth-init's pause mode in an empty root (pod.rs).
        let (image_id, config) = if spec.infra && spec.image.is_empty() {
            spec.args = vec![crate::pod::INFRA_PATH.into(), "--pause".into()];
            (
                String::new(),
                oci_spec::image::ImageConfiguration::default(),
            )
        } else {
            let store = image::ImageStore::open(&self.root)?;
            let img = store.resolve(&spec.image)?;
            spec.healthcheck = crate::health::merge(
                spec.healthcheck.take(),
                crate::health::image_healthcheck(&img.config_bytes)?,
            )?;
            let image_volumes = img
                .config
                .config()
                .as_ref()
                .and_then(|c| c.volumes().clone());
            self.volumes_at_create(&image_volumes.unwrap_or_default(), &mut spec)?;
            spec.args = crate::spec::process_args(&img.config, &spec.opts);
            (img.manifest_digest.to_string(), img.config)
        };
        self.network_at_create(&config, &mut spec.network, &spec.opts.hostname)?;
        let id = random_id()?;
        let c = Container {
            name: name.map_or_else(|| format!("berth-{}", &id[..12]), str::to_string),
            id,
            image: spec.image.clone(),
            image_id,
            spec,
            state: State::Created,
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            exit_code: None,
            oom_killed: false,
            created: runtime::state::now_rfc3339(),
            started: String::new(),
            finished: String::new(),
            restart_count: 0,
            stopped_by_user: false,
            error: String::new(),
        };
        crate::trace::stage("create:insert");
        let mut db = self.db()?;
        db.insert(&c)?;
        crate::fault::point("create:inserted");
        let dir = self.dir(&c.id);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            let _ = db.delete(&c.id);
            return Err(io(format!("create {}", dir.display()))(e));
        }
        tracing::debug!(container = %c.id, name = %c.name, image = %c.image, "created");
        Ok(c)
    }

    /// Names are shared with foreground `berth run`, whose container directory is
    /// `<root>/containers/<name>` (not a row): a name it holds is refused.
    pub fn refuse_foreground_name(&self, name: &str) -> Result<()> {
        let dir = self.root.join("containers").join(name);
        if dir.join("owner.json").exists() {
            return Err(Error::Conflict(format!(
                "the container name {name:?} is already in use by a foreground run ({}): \
                 `berth container prune` removes it once it has ended",
                dir.display()
            )));
        }
        Ok(())
    }

    /// A container's row, reconciled with what runs.
    pub fn inspect(&self, reference: &str) -> Result<Container> {
        let mut db = self.db()?;
        let c = db.find(reference)?;
        self.reconcile(&mut db, c)
    }

    /// Every container (reconciled); only the running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<Container>> {
        let mut db = self.db()?;
        let mut out = Vec::new();
        for c in db.list()? {
            let c = self.reconcile(&mut db, c)?;
            if all || c.state.is_active() {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// See the module doc.
    fn reconcile(&self, db: &mut Db, c: Container) -> Result<Container> {
        if !c.state.is_active() || alive(c.monitor_pid, c.monitor_start) {
            return Ok(c);
        }
        if alive(c.pid, c.pid_start) {
            // The monitor died; the container itself still runs.
            return Ok(c);
        }
        let dir = self.dir(&c.id);
        let code = read_exit_file(&dir).unwrap_or(-1);
        tracing::info!(container = %c.id, code, "its monitor is gone: marking it exited");
        self.runtime_delete(&c.id);
        let updated = db.update(&c.id, |row| {
            if row.state.is_active() && !alive(row.monitor_pid, row.monitor_start) {
                row.state = State::Exited;
                row.exit_code = Some(code);
                row.finished = runtime::state::now_rfc3339();
                row.pid = 0;
                row.pid_start = 0;
                row.monitor_pid = 0;
                row.monitor_start = 0;
            }
            Ok(row.clone())
        })?;
        updated.ok_or_else(|| Error::NotFound(c.id.clone()))
    }

    /// `berth-runtime delete --force ID` (its state, cgroup), quietly. berth's own runtime
    /// is a library too: its delete runs in this process (no exec); another OCI runtime
    /// (`$BERTH_RUNTIME`) is executed.
    fn runtime_delete(&self, id: &str) {
        if !self.runtime_root().join(id).exists() {
            return;
        }
        if self
            .runtime
            .file_name()
            .is_some_and(|n| n == "berth-runtime")
        {
            let store = runtime::state::Store::new(self.runtime_root());
            if let Err(e) = runtime::container::delete::delete(&store, id, true) {
                tracing::warn!(container = %id, error = %e, "delete the runtime's state");
            }
            return;
        }
        let _ = Command::new(&self.runtime)
            .arg("--root")
            .arg(self.runtime_root())
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts a created or exited container: spawns its monitor (detached) and returns once
    /// the container runs, or with the monitor's error. Starting a running one is a no-op.
    pub fn start(&self, reference: &str) -> Result<Container> {
        Ok(self.start_inner(reference, None)?.0)
    }

    /// `start -a`: starts the container with a client already on its monitor's attach
    /// socket (crate::attach), so none of its output is missed; the connection is returned
    /// with it. A running container is attached to as it is.
    /// `hello` is written to the monitor as soon as it is connected, before the container
    /// starts (a terminal's size: attach::IN_RESIZE frames; the monitor applies them first).
    pub fn start_attached(
        &self,
        reference: &str,
        hello: &[u8],
    ) -> Result<(Container, std::os::unix::net::UnixStream)> {
        match self.start_inner(reference, Some(hello))? {
            (c, Some(s)) => Ok((c, s)),
            (c, None) => {
                let s = crate::attach::connect(&self.dir(&c.id))?;
                Ok((c, s))
            }
        }
    }

    /// Connects to a running container's attach socket (crate::attach).
    pub fn attach(&self, c: &Container) -> Result<std::os::unix::net::UnixStream> {
        crate::attach::connect(&self.dir(&c.id))
    }

    fn start_inner(
        &self,
        reference: &str,
        attach: Option<&[u8]>,
    ) -> Result<(Container, Option<std::os::unix::net::UnixStream>)> {
        crate::trace::stage("start");
        let c = self.inspect(reference)?;
        match c.state {
            State::Running | State::Restarting | State::Paused => return Ok((c, None)),
            State::Removing => {
                return Err(Error::Conflict(format!(
                    "container {} is being removed",
                    c.name
                )))
            }
            State::Created | State::Exited => {}
        }
        if alive(c.monitor_pid, c.monitor_start) {
            return Err(Error::Conflict(format!(
                "container {} is being started by another command",
                c.name
            )));
        }
        if !self.monitor.is_file() {
            return Err(Error::Runtime(format!(
                "{} not found: build it (cargo build) or set BERTH_MONITOR",
                self.monitor.display()
            )));
        }
        self.pod_before_start(&c)?;
        crate::trace::stage("start:admit");
        self.admit(&c)?;
        let dir = self.dir(&c.id);
        // A create killed between its row and its directory left the row alone: the
        // directory is made here, before the network writes its files (hosts, resolv.conf)
        // into it and the monitor its log.
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        crate::trace::stage("start:network");
        self.network_up(&c)?;
        crate::trace::stage("start:monitor");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(MONITOR_LOG))
            .map_err(io(format!("open {}", dir.join(MONITOR_LOG).display())))?;
        // The monitor re-executes itself detached (setsid, a second process) and reports on
        // its stdout: `ok` once the container runs, `error: …` otherwise; then EOF. With
        // `--attach` it first says `attach` once its attach socket listens, and waits for
        // our connection before it starts the container.
        let mut cmd = Command::new(&self.monitor);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--runtime")
            .arg(&self.runtime);
        if attach.is_some() {
            cmd.arg("--attach");
        }
        let mut child = cmd
            .arg(&c.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io(format!("run {}", self.monitor.display())))?;
        crate::fault::point("start:spawned");
        let mut report = String::new();
        let mut stream = None;
        if let Some(out) = child.stdout.take() {
            let mut out = std::io::BufReader::new(out);
            let mut line = String::new();
            while matches!(std::io::BufRead::read_line(&mut out, &mut line), Ok(n) if n > 0) {
                if line.trim() == "attach" && stream.is_none() {
                    stream = Some(crate::attach::connect(&dir).and_then(|mut s| {
                        let mut hello = attach.unwrap_or_default().to_vec();
                        hello.extend(crate::attach::encode(crate::attach::IN_READY, &[]));
                        std::io::Write::write_all(&mut s, &hello)
                            .map_err(io("write to the attach socket"))?;
                        Ok(s)
                    }));
                } else {
                    report.push_str(&line);
                }
                line.clear();
            }
        }
        crate::trace::stage("start:reported");
        let _ = child.wait();
        let report = report.trim();
        if let Some(msg) = report.strip_prefix("error: ") {
            return Err(Error::Runtime(format!("start container {}: {msg}", c.name)));
        }
        if report != "ok" {
            let tail = std::fs::read_to_string(dir.join(MONITOR_LOG)).unwrap_or_default();
            let last = tail.lines().last().unwrap_or("no message");
            return Err(Error::Runtime(format!(
                "start container {}: the monitor ended without a report ({last})",
                c.name
            )));
        }
        let c = self.inspect(&c.id)?;
        crate::trace::stage("start:done");
        Ok((c, stream.transpose()?))
    }

    /// Sends `signal` to the container's process. As Docker (moby `daemon/kill.go`
    /// `killWithSignal`: `ExitOnNext` and `HasBeenManuallyStopped`), a kill with SIGKILL or
    /// the container's stop signal (any signal when it has none) is a manual stop: its
    /// restart policy does not bring it back until it is started again.
    pub fn kill(&self, reference: &str, signal: &str) -> Result<Container> {
        let sig = parse_signal(signal)?;
        let c = self.inspect(reference)?;
        if !matches!(c.state, State::Running | State::Paused) || !alive(c.pid, c.pid_start) {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        let manual = match &c.spec.stop_signal {
            None => true,
            Some(s) => sig == Signal::SIGKILL || parse_signal(s).ok() == Some(sig),
        };
        if manual {
            self.db()?.update(&c.id, |row| {
                row.stopped_by_user = true;
                Ok(())
            })?;
        }
        signal_pid(c.pid, sig)?;
        Ok(c)
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` (default: its
    /// `stop_timeout`, else 10 s). Final for its restart policy. Returns once its monitor
    /// has recorded the exit.
    pub fn stop(&self, reference: &str, timeout: Option<Duration>) -> Result<Container> {
        let c = self.inspect(reference)?;
        let mut db = self.db()?;
        db.update(&c.id, |row| {
            row.stopped_by_user = true;
            Ok(())
        })?;
        if !c.state.is_active() {
            return Ok(c);
        }
        let timeout = timeout
            .or(c.spec.stop_timeout.map(Duration::from_secs))
            .unwrap_or(Duration::from_secs(10));
        let sig = parse_signal(c.spec.stop_signal.as_deref().unwrap_or("TERM"))?;
        self.thaw_if_paused(&c);
        if alive(c.pid, c.pid_start) {
            tracing::debug!(container = %c.id, signal = %sig, "stopping");
            let _ = signal_pid(c.pid, sig);
            if !wait_gone(c.pid, c.pid_start, timeout) {
                tracing::info!(container = %c.id, "stop timeout: SIGKILL");
                let _ = signal_pid(c.pid, Signal::SIGKILL);
                wait_gone(c.pid, c.pid_start, Duration::from_secs(10));
            }
        }
        // The monitor records the exit (and does not restart: stopped_by_user).
        self.wait_inactive(&c.id, Duration::from_secs(15))
    }

    /// Stop (if running), then start.
    pub fn restart(&self, reference: &str, timeout: Option<Duration>) -> Result<Container> {
        let c = self.stop(reference, timeout)?;
        self.start(&c.id)
    }

    fn wait_inactive(&self, id: &str, limit: Duration) -> Result<Container> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.inspect(id)?;
            if !c.state.is_active() || Instant::now() >= deadline {
                return Ok(c);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the container is not running (nor restarting); its exit code. A
    /// container removed meanwhile (`--rm`) answers the code it was removed with.
    pub fn wait(&self, reference: &str) -> Result<i32> {
        self.wait_until(reference, |c| !c.state.is_active())
    }

    /// Waits until the container is removed (Docker's `wait` with `condition=removed`);
    /// the code it exited with (0 if it never ran).
    pub fn wait_removed(&self, reference: &str) -> Result<i32> {
        self.wait_until(reference, |_| false)
    }

    fn wait_until(&self, reference: &str, done: impl Fn(&Container) -> bool) -> Result<i32> {
        let c = self.inspect(reference)?;
        let mut last = c.exit_code;
        // The monitor writes `exit` and the removal deletes the directory: both wake us at
        // once; the database is read again then (and at a growing interval without events:
        // a monitor that died is reconciled by inspect).
        let events = DirEvents::watch(&self.dir(&c.id));
        let mut delay = Duration::from_millis(5);
        loop {
            match self.inspect(&c.id) {
                Ok(now) if done(&now) => return Ok(now.exit_code.unwrap_or(0)),
                Ok(now) => last = now.exit_code.or(last),
                Err(Error::NotFound(_)) => {
                    // The removal recorded the final code in the same transaction.
                    let kept = self.db()?.removed_exit(&c.id)?.map(|(code, _)| code);
                    return Ok(kept.or(last).unwrap_or(0));
                }
                Err(e) => return Err(e),
            }
            delay = match &events {
                Some(ev) if ev.wait(delay) => Duration::from_millis(5),
                Some(_) => (delay * 2).min(Duration::from_millis(250)),
                None => {
                    std::thread::sleep(delay);
                    (delay * 2).min(Duration::from_millis(50))
                }
            };
        }
    }

    /// Removes a container: its process (with `force`; a running container is refused
    /// otherwise), its monitor, runtime state, cgroup, directory and row. The row says
    /// `removing` first, so a killed `rm` is finished by the next one.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Container> {
        let c = self.inspect(reference)?;
        self.refuse_infra_removal(&c)?;
        self.remove_inner(c, force)
    }

    /// `pod rm`: the pod's infra container, as `rm -f`.
    pub(crate) fn remove_infra(&self, reference: &str) -> Result<Container> {
        let c = self.inspect(reference)?;
        self.remove_inner(c, true)
    }

    fn remove_inner(&self, c: Container, force: bool) -> Result<Container> {
        let running = c.state.is_active() || alive(c.pid, c.pid_start);
        if running && !force {
            return Err(Error::Conflict(format!(
                "container {} is {}: stop it first, or remove it with rm -f",
                c.name,
                c.state.as_str()
            )));
        }
        self.thaw_if_paused(&c);
        let mut db = self.db()?;
        db.update(&c.id, |row| {
            row.state = State::Removing;
            row.stopped_by_user = true;
            Ok(())
        })?;
        crate::fault::point("rm:removing");
        // The monitor (the row says removing: it would restart nothing anyway) and the
        // container's process together, then one wait for both (pidfds, no sleep steps).
        let mut procs = Vec::new();
        for (pid, start) in [(c.monitor_pid, c.monitor_start), (c.pid, c.pid_start)] {
            if alive(pid, start) {
                let _ = signal_pid(pid, Signal::SIGKILL);
                procs.push((pid, start));
            }
        }
        crate::fault::point("rm:killed");
        crate::procwait::wait_gone(&procs, Duration::from_secs(10));
        self.runtime_delete(&c.id);
        self.network_down(&c)?;
        // A member leaving can make its pod ready (or not) behind a service.
        if c.spec.pod.is_some() && !c.spec.infra {
            self.endpoints_follow(&c);
        }
        let dir = self.dir(&c.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("remove {}", dir.display()))(e)),
        }
        crate::fault::point("rm:deleted");
        db.delete(&c.id)?;
        tracing::debug!(container = %c.id, "removed");
        Ok(c)
    }

    /// Removes every container that is not running; their names.
    pub fn prune(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for c in self.list(true)? {
            // A pod's infra goes with its pod (`pod rm`, `pod prune`).
            if !c.state.is_active() && !alive(c.pid, c.pid_start) && !c.spec.infra {
                self.remove(&c.id, false)?;
                out.push(c.id);
            }
        }
        Ok(out)
    }

    /// The ids of every container the engine knows (whatever its state).
    pub fn ids(&self) -> Result<Vec<String>> {
        Ok(self.db()?.list()?.into_iter().map(|c| c.id).collect())
    }

    /// The names of the containers that use the image `manifest` (a digest).
    pub fn users_of_image(&self, manifest: &str) -> Result<Vec<String>> {
        self.db()?.users_of_image(manifest)
    }

    /// A `berth-runtime exec` command for a process in the running container (the caller
    /// chooses its stdio and runs it).
    pub fn exec(&self, reference: &str, e: &ExecOpts) -> Result<Command> {
        let c = self.inspect(reference)?;
        if c.state != State::Running || !alive(c.pid, c.pid_start) {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        if e.args.is_empty() {
            return Err(Error::Invalid("exec: no command given".into()));
        }
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(self.runtime_root()).arg("exec");
        if e.detach {
            cmd.arg("--detach");
        }
        if let Some(sock) = &e.console_socket {
            cmd.arg("--tty").arg("--console-socket").arg(sock);
        }
        for kv in &e.env {
            if !kv.contains('=') || kv.starts_with('=') {
                return Err(Error::Invalid(format!(
                    "exec: invalid environment variable {kv:?} (K=V)"
                )));
            }
            cmd.arg("--env").arg(kv);
        }
        if let Some(u) = &e.user {
            cmd.arg("--user").arg(u);
        }
        if let Some(w) = &e.workdir {
            if !w.starts_with('/') {
                return Err(Error::Invalid(format!(
                    "exec: working directory {w:?} is not absolute"
                )));
            }
            cmd.arg("--cwd").arg(w);
        }
        cmd.arg(&c.id).args(&e.args);
        Ok(cmd)
    }

    /// The container's log file.
    pub fn log_path(&self, c: &Container) -> PathBuf {
        self.dir(&c.id).join(LOG)
    }

    /// Prints `c`'s log (`logs`, `attach`): stdout lines to `out`, stderr lines to `err`;
    /// with `o.follow`, until the container is no longer active.
    pub fn print_log(
        &self,
        c: &Container,
        o: &crate::logfiles::ReadOpts,
        out: &mut dyn std::io::Write,
        err: &mut dyn std::io::Write,
    ) -> Result<()> {
        let running = || self.inspect(&c.id).is_ok_and(|c| c.state.is_active());
        crate::logfiles::read(&self.log_path(c), o, running, out, err)
    }
}

/// What `exec` runs.
#[derive(Clone, Debug, Default)]
pub struct ExecOpts {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub detach: bool,
    /// Run it on a terminal whose master the runtime sends to this socket (SCM_RIGHTS).
    pub console_socket: Option<std::path::PathBuf>,
}

fn signal_pid(pid: i32, sig: Signal) -> Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid), sig)
        .map_err(|e| Error::Runtime(format!("signal {sig} to pid {pid}: {e}")))
}

/// Waits up to `limit` for the process to end; whether it did.
fn wait_gone(pid: i32, start: u64, limit: Duration) -> bool {
    crate::procwait::wait_gone(&[(pid, start)], limit)
}

/// Moves this process into a mount namespace of its own whose mounts do not propagate to
/// the host's (the monitor's overlay, `cp` of a stopped container, a foreground run).
pub fn private_mount_namespace() -> Result<()> {
    use nix::mount::MsFlags;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| Error::Runtime(format!("unshare the mount namespace: {e}")))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Error::Runtime(format!("make / private: {e}")))
}

/// Changes to a container's directory (inotify): its `exit` file written, its files or
/// itself removed.
struct DirEvents(nix::sys::inotify::Inotify);

/// inotify instances are a per-user resource (`fs.inotify.max_user_instances`, 128 by
/// default) that berth, as root, shares with the rest of the system: at most this many
/// waits of one process watch; the others poll.
const MAX_DIR_EVENTS: usize = 16;
static DIR_EVENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for DirEvents {
    fn drop(&mut self) {
        DIR_EVENTS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl DirEvents {
    fn watch(dir: &Path) -> Option<DirEvents> {
        use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
        use std::sync::atomic::Ordering;
        if DIR_EVENTS.fetch_add(1, Ordering::SeqCst) >= MAX_DIR_EVENTS {
            DIR_EVENTS.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let Ok(ino) = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) else {
            DIR_EVENTS.fetch_sub(1, Ordering::SeqCst);
            return None;
        };
        // From here the count is the DirEvents' (its drop gives it back).
        let ino = DirEvents(ino);
        ino.0
            .add_watch(
                dir,
                W::IN_CREATE
                    | W::IN_MOVED_TO
                    | W::IN_DELETE
                    | W::IN_DELETE_SELF
                    | W::IN_CLOSE_WRITE,
            )
            .ok()?;
        Some(ino)
    }

    /// Waits up to `limit` for an event; whether one came (all pending ones are read).
    fn wait(&self, limit: Duration) -> bool {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.0.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = limit.as_millis().min(u16::MAX as u128) as u16;
        let ready =
            matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0);
        if ready {
            while matches!(self.0.read_events(), Ok(ev) if !ev.is_empty()) {}
        }
        ready
    }
}
