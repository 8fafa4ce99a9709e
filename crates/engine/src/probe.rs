//! Kubernetes container probes (liveness, readiness, startup) run by a container's monitor.
//!
//! Semantics (https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/,
//! k8s-openapi `api::core::v1::Probe`): each probe runs every `period` after `initial_delay`,
//! each attempt bounded by `timeout`; `failure_threshold` consecutive failures make a probe
//! fail, `success_threshold` consecutive successes make it succeed. The startup probe runs
//! first and the others wait for its success; its failure, or the liveness probe's, kills
//! the container, which the monitor then restarts.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a probe checks the container (k8s `ExecAction`, `HTTPGetAction`, `TCPSocketAction`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ProbeAction {
    /// A command run in the container; exit 0 is a success.
    Exec(Vec<String>),
    /// An HTTP/1.1 GET; a status 200–399 is a success.
    HttpGet {
        port: u16,
        path: String,
        /// The address to connect to (default: the container's own, or 127.0.0.1 in its
        /// network namespace when it has none).
        host: Option<String>,
        scheme_https: bool,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens is a success.
    TcpSocket { port: u16, host: Option<String> },
}

/// One probe with its timing (k8s defaults: 0 s delay, 10 s period, 1 s timeout, success
/// threshold 1, failure threshold 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub action: ProbeAction,
    /// Durations are milliseconds in JSON (`initialDelay`, `period`, `timeout`).
    #[serde(with = "ms")]
    pub initial_delay: Duration,
    #[serde(with = "ms")]
    pub period: Duration,
    #[serde(with = "ms")]
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Probe {
    /// A probe with Kubernetes' default timing.
    pub fn new(action: ProbeAction) -> Probe {
        Probe {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// A duration as whole milliseconds.
mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A container's probes (`ContainerSpec::probes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Probes {
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
    /// Kubernetes' `restartPolicy: Never`: a container killed by its liveness or startup
    /// probe stays exited. Otherwise it is restarted whatever its restart policy (a
    /// liveness kill is Kubernetes' restart, not an exit the policy judges).
    pub never_restart: bool,
}

impl Probes {
    pub fn is_empty(&self) -> bool {
        self.liveness.is_none() && self.readiness.is_none() && self.startup.is_none()
    }
}

/// Podman's `--health-on-failure`: what happens when the health check turns `unhealthy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    None,
    /// SIGKILL the container (its restart policy then applies).
    Kill,
    /// Restart it (whatever its restart policy).
    Restart,
    /// Stop it (as `berth stop`: no restart).
    Stop,
}

impl std::str::FromStr for OnFailure {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<OnFailure> {
        Ok(match s {
            "none" => OnFailure::None,
            "kill" => OnFailure::Kill,
            "restart" => OnFailure::Restart,
            "stop" => OnFailure::Stop,
            _ => {
                return Err(crate::invalid!(
                    "invalid --health-on-failure {s:?}: expected none, kill, restart or stop"
                ))
            }
        })
    }
}

/// The table of this module (created where the database is opened): a container's
/// readiness as its monitor last recorded it.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS probes (
    id TEXT PRIMARY KEY,
    ready INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 0,
    last TEXT NOT NULL DEFAULT ''
);
";

/// What the monitor's probes last recorded (`inspect`'s `State.Ready`, `State.Probes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeStatus {
    /// The readiness probe succeeded `success_threshold` times in a row since its last
    /// `failure_threshold` failures (true as soon as the container runs and its startup
    /// probe succeeded when it has no readiness probe).
    pub ready: bool,
    /// The startup probe succeeded (true when there is none).
    pub started: bool,
    /// The last failure's message (kept across restarts; empty when none failed yet).
    pub last: String,
}

/// A new run of the container: not ready and not started until this run's probes pass (a
/// restarted container gets no traffic on its last run's readiness, as Kubernetes' rule);
/// the last failure is kept.
pub fn reset(db: &mut crate::db::Db, id: &str) -> crate::Result<()> {
    db.write(|tx| {
        tx.execute(
            "UPDATE probes SET ready = 0, started = 0 WHERE id = ?1",
            [id],
        )
        .map(|_| ())
    })
}

fn store(db: &mut crate::db::Db, id: &str, s: &ProbeStatus) -> crate::Result<()> {
    db.write(|tx| {
        tx.execute(
            "INSERT INTO probes (id, ready, started, last) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(id) DO UPDATE SET ready = ?2, started = ?3, last = ?4",
            rusqlite::params![id, s.ready, s.started, s.last],
        )
        .map(|_| ())
    })
}

impl Probes {
    /// Checks what a front end built: thresholds at least 1 (liveness and startup success
    /// threshold exactly 1, as the API server requires), a period and timeout of at least
    /// 1 ms, an exec command, a port, an HTTP path starting with `/`.
    pub fn validate(&self) -> crate::Result<()> {
        for (kind, p) in [
            ("liveness", &self.liveness),
            ("readiness", &self.readiness),
            ("startup", &self.startup),
        ] {
            let Some(p) = p else { continue };
            let bad = |why: String| crate::invalid!("{kind} probe: {why}");
            if p.failure_threshold == 0 || p.success_threshold == 0 {
                return Err(bad("thresholds must be at least 1".into()));
            }
            if kind != "readiness" && p.success_threshold != 1 {
                return Err(bad("successThreshold must be 1".into()));
            }
            if p.period < Duration::from_millis(1) || p.timeout < Duration::from_millis(1) {
                return Err(bad("period and timeout must be at least 1ms".into()));
            }
            match &p.action {
                ProbeAction::Exec(argv) if argv.is_empty() || argv[0].is_empty() => {
                    return Err(bad("exec command is empty".into()))
                }
                ProbeAction::HttpGet { port: 0, .. } | ProbeAction::TcpSocket { port: 0, .. } => {
                    return Err(bad("port 0".into()))
                }
                ProbeAction::HttpGet {
                    scheme_https: true, ..
                } => return Err(bad("httpGet scheme HTTPS is not supported".into())),
                ProbeAction::HttpGet { path, headers, .. } => {
                    if !path.starts_with('/') || path.contains(['\r', '\n', ' ']) {
                        return Err(bad(format!("invalid httpGet path {path:?}")));
                    }
                    for (k, v) in headers {
                        if k.is_empty()
                            || k.contains([':', '\r', '\n', ' '])
                            || v.contains(['\r', '\n'])
                        {
                            return Err(bad(format!("invalid httpGet header {k:?}")));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl crate::container::Engine {
    /// The probes' status of a container that has probes (None otherwise); not ready
    /// unless it runs.
    pub fn probe_status(&self, c: &crate::Container) -> crate::Result<Option<ProbeStatus>> {
        if c.spec.probes.is_empty() {
            return Ok(None);
        }
        let mut db = self.db()?;
        let s = db.write(|tx| {
            use rusqlite::OptionalExtension;
            tx.query_row(
                "SELECT ready, started, last FROM probes WHERE id = ?1",
                [&c.id],
                |r| {
                    Ok(ProbeStatus {
                        ready: r.get(0)?,
                        started: r.get(1)?,
                        last: r.get(2)?,
                    })
                },
            )
            .optional()
        })?;
        let mut s = s.unwrap_or_default();
        if c.state != crate::State::Running {
            s.ready = false;
        }
        Ok(Some(s))
    }
}

/// What a probe or the health check decided about the container, read by the monitor
/// when the container has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stopped (gracefully) by a failed liveness or startup probe, or `--health-on-failure restart`:
    /// restarted whatever the restart policy (Kubernetes' rule), unless `Probes::never_restart`.
    Restart,
    /// `--health-on-failure stop`: not restarted.
    Stop,
}

/// Shared between the monitor's loop and the threads that kill the container.
pub type SharedVerdict = std::sync::Arc<std::sync::Mutex<Option<Verdict>>>;

/// Records `v` and kills the container's init `init`: SIGKILL at once, or `graceful`ly
/// (its stop signal first and SIGKILL after `grace`, on a thread: the caller goes on).
pub fn kill_container(
    shared: &SharedVerdict,
    v: Option<Verdict>,
    graceful: bool,
    init: i32,
    stop_signal: nix::sys::signal::Signal,
    grace: Duration,
) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(mut g) = shared.lock() {
        if g.is_some() {
            return;
        }
        *g = v;
    }
    let pid = Pid::from_raw(init);
    if graceful {
        let born = runtime::state::process_start_time(init);
        let _ = kill(pid, stop_signal);
        std::thread::spawn(move || {
            std::thread::sleep(grace);
            // Only the same process (its start time), not another one that got its pid.
            if born.is_some() && runtime::state::process_start_time(init) == born {
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
    } else {
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// Exit codes of the monitor's children that are not the init, handed to the probe
/// thread waiting for its `exec` (the monitor's loop reaps every child).
#[derive(Clone, Default)]
pub struct Reaped(std::sync::Arc<(std::sync::Mutex<Vec<PidCode>>, std::sync::Condvar)>);

/// A reaped child: its pid and exit code.
type PidCode = (i32, i32);

impl Reaped {
    pub fn push(&self, pid: i32, code: i32) {
        let (m, cv) = &*self.0;
        if let Ok(mut v) = m.lock() {
            v.push((pid, code));
            // Orphans of the container reparented to us are never asked for.
            let n = v.len();
            if n > 64 {
                v.drain(..n - 64);
            }
        }
        cv.notify_all();
    }

    /// Waits until `pid` was reaped, at most until `deadline`; its code.
    fn wait(&self, pid: i32, deadline: std::time::Instant) -> Option<i32> {
        let (m, cv) = &*self.0;
        let mut v = m.lock().ok()?;
        loop {
            if let Some(i) = v.iter().position(|(p, _)| *p == pid) {
                return Some(v.remove(i).1);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            v = cv.wait_timeout(v, left).ok()?.0;
        }
    }
}

/// Where the probe thread finds what it needs.
pub struct ProberCtx {
    pub id: String,
    pub root: std::path::PathBuf,
    pub runtime: std::path::PathBuf,
    pub runtime_root: std::path::PathBuf,
    pub dir: std::path::PathBuf,
    /// The container's init.
    pub init: i32,
    pub stop_signal: nix::sys::signal::Signal,
    pub grace: Duration,
    pub verdict: SharedVerdict,
    pub reaped: Reaped,
    /// The container's address (Kubernetes probes the pod's IP); 127.0.0.1 in its
    /// namespace when it has none of its own (a pod member, `--network none`).
    pub addr: Option<std::net::Ipv4Addr>,
    /// The engine and the container's pod (its id): a readiness change updates the
    /// services it backs (endpoints.rs).
    pub engine: crate::container::Engine,
    pub pod: Option<String>,
}

/// The probes of one run of a container: a thread of the monitor's that runs them on their
/// schedules (blocking attempts, each bounded by its timeout), in the container's network
/// namespace. Dropping it (or [`Prober::stop`]) ends the thread at its next wake-up.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _tx: std::sync::mpsc::Sender<()>,
}

impl Prober {
    pub fn start(probes: Probes, ctx: ProberCtx) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("probes".into())
            .spawn(move || run(probes, ctx, st, rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "probes: no thread");
        }
        Prober { stop, _tx: tx }
    }

    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

struct Sched {
    kind: Kind,
    probe: Probe,
    next: std::time::Instant,
    successes: u32,
    failures: u32,
}

fn run(
    probes: Probes,
    ctx: ProberCtx,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    rx: std::sync::mpsc::Receiver<()>,
) {
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    // The container's network namespace, for httpGet and tcpSocket on 127.0.0.1 (this
    // thread only; exec probes join the container's namespaces through the runtime).
    // The monitor's own namespace is kept: services' elements are changed there.
    let host_ns = std::fs::File::open("/proc/thread-self/ns/net");
    let ctr_ns = std::fs::File::open(format!("/proc/{}/ns/net", ctx.init));
    match &ctr_ns {
        Ok(ns) => {
            if let Err(e) = nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET) {
                tracing::warn!(container = %ctx.id, error = %e, "probes: join the network namespace");
            }
        }
        Err(e) => tracing::warn!(container = %ctx.id, error = %e, "probes: the network namespace"),
    }
    // A readiness recorded: the services this container (or its pod) backs follow, from
    // the monitor's namespace (this thread goes back into the container's after).
    let endpoints = || {
        let (Ok(host), Ok(ctr)) = (&host_ns, &ctr_ns) else {
            return;
        };
        use nix::sched::{setns, CloneFlags};
        if let Err(e) = setns(host, CloneFlags::CLONE_NEWNET) {
            tracing::warn!(container = %ctx.id, error = %e, "probes: back to the monitor's network namespace");
            return;
        }
        if let Err(e) = ctx.engine.endpoints_changed(&ctx.id, ctx.pod.as_deref()) {
            tracing::warn!(container = %ctx.id, error = %e, "probes: services' backends");
        }
        if let Err(e) = setns(ctr, CloneFlags::CLONE_NEWNET) {
            tracing::warn!(container = %ctx.id, error = %e, "probes: rejoin the network namespace");
        }
    };
    let start = Instant::now();
    let mut all: Vec<Sched> = [
        (Kind::Startup, probes.startup),
        (Kind::Liveness, probes.liveness),
        (Kind::Readiness, probes.readiness),
    ]
    .into_iter()
    .filter_map(|(kind, p)| {
        p.map(|probe| Sched {
            kind,
            next: start + probe.initial_delay,
            probe,
            successes: 0,
            failures: 0,
        })
    })
    .collect();
    let has_startup = all.iter().any(|s| s.kind == Kind::Startup);
    let has_readiness = all.iter().any(|s| s.kind == Kind::Readiness);
    // The last failure is kept across restarts (it says why the container was killed).
    let last = crate::db::Db::open(&ctx.root)
        .and_then(|mut db| {
            db.write(|tx| {
                use rusqlite::OptionalExtension;
                tx.query_row("SELECT last FROM probes WHERE id = ?1", [&ctx.id], |r| {
                    r.get::<_, String>(0)
                })
                .optional()
            })
        })
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut status = ProbeStatus {
        ready: !has_startup && !has_readiness,
        started: !has_startup,
        last,
    };
    let save = |s: &ProbeStatus| {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = crate::db::Db::open(&ctx.root).and_then(|mut db| store(&mut db, &ctx.id, s))
        {
            tracing::warn!(container = %ctx.id, error = %e, "probes: record");
        }
    };
    save(&status);
    endpoints();
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // The probes that run now: the startup probe alone until it succeeded.
        let active = |s: &Sched| (s.kind == Kind::Startup) != status.started;
        let Some(i) = (0..all.len())
            .filter(|&i| active(&all[i]))
            .min_by_key(|&i| all[i].next)
        else {
            return;
        };
        let wait = all[i].next.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            match rx.recv_timeout(wait) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            continue;
        }
        let s = &mut all[i];
        let res = attempt(&s.probe, &ctx);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        s.next = Instant::now() + s.probe.period;
        match &res {
            Ok(()) => {
                s.successes += 1;
                s.failures = 0;
            }
            Err(why) => {
                s.failures += 1;
                s.successes = 0;
                tracing::info!(container = %ctx.id, probe = ?s.kind, failures = s.failures, why = %why, "probe failed");
            }
        }
        let before = status.clone();
        if let Err(why) = &res {
            status.last = format!("{:?} probe: {why}", s.kind).to_lowercase();
        }
        match s.kind {
            Kind::Startup if s.successes >= s.probe.success_threshold => {
                status.started = true;
                status.ready = !has_readiness;
                // The others start now (their initial delay counts from here).
                let now = Instant::now();
                for o in all.iter_mut().filter(|o| o.kind != Kind::Startup) {
                    o.next = now + o.probe.initial_delay;
                }
            }
            Kind::Readiness if s.successes >= s.probe.success_threshold => status.ready = true,
            Kind::Readiness if s.failures >= s.probe.failure_threshold => status.ready = false,
            Kind::Startup | Kind::Liveness if s.failures >= s.probe.failure_threshold => {
                tracing::warn!(container = %ctx.id, probe = ?s.kind, "probe failed {} times: killing the container", s.failures);
                status.ready = false;
                save(&status);
                endpoints();
                // Kubernetes kills with the termination grace period (the stop timeout).
                kill_container(
                    &ctx.verdict,
                    Some(Verdict::Restart),
                    true,
                    ctx.init,
                    ctx.stop_signal,
                    ctx.grace,
                );
                return;
            }
            _ => {}
        }
        if status != before {
            save(&status);
            if status.ready != before.ready {
                endpoints();
            }
        }
    }
}

/// One attempt of `p`: Ok, or why it failed.
fn attempt(p: &Probe, ctx: &ProberCtx) -> std::result::Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    let addr = |host: &Option<String>, port: u16| -> std::result::Result<SocketAddr, String> {
        let own = ctx
            .addr
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST)
            .to_string();
        let h = host.as_deref().unwrap_or(&own);
        (h, port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {h}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolve {h}: no address"))
    };
    match &p.action {
        ProbeAction::TcpSocket { port, host } => {
            let a = addr(host, *port)?;
            TcpStream::connect_timeout(&a, p.timeout)
                .map(drop)
                .map_err(|e| format!("connect {a}: {e}"))
        }
        ProbeAction::HttpGet {
            port,
            path,
            host,
            headers,
            ..
        } => {
            let deadline = std::time::Instant::now() + p.timeout;
            let a = addr(host, *port)?;
            let mut s = TcpStream::connect_timeout(&a, p.timeout)
                .map_err(|e| format!("connect {a}: {e}"))?;
            let left = || {
                deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .max(Duration::from_millis(1))
            };
            let _ = s.set_write_timeout(Some(left()));
            // Kubernetes' prober sends Host, User-Agent and Accept unless the probe's
            // headers set them.
            let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
            let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
            if !has("host") {
                req += &format!("Host: {a}\r\n");
            }
            if !has("user-agent") {
                req += "User-Agent: berth-probe/1.0\r\n";
            }
            if !has("accept") {
                req += "Accept: */*\r\n";
            }
            for (k, v) in headers {
                req += &format!("{k}: {v}\r\n");
            }
            req += "\r\n";
            s.write_all(req.as_bytes())
                .map_err(|e| format!("send to {a}: {e}"))?;
            // The status line is all we need.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            while !buf.contains(&b'\n') && buf.len() < 4096 {
                let _ = s.set_read_timeout(Some(left()));
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read from {a}: {e}")),
                }
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.lines().next().unwrap_or("");
            let code: u16 = line
                .strip_prefix("HTTP/1.")
                .and_then(|r| r.get(2..5))
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("GET {path}: not an HTTP response: {line:?}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("GET {path}: HTTP {code}"))
            }
        }
        ProbeAction::Exec(argv) => exec(argv, p.timeout, ctx),
    }
}

/// `berth-runtime exec` of `argv` in the container; exit 0 is a success. The monitor's
/// loop reaps it and hands its code over through [`Reaped`].
fn exec(argv: &[String], timeout: Duration, ctx: &ProberCtx) -> std::result::Result<(), String> {
    use std::process::{Command, Stdio};
    let pid_file = ctx.dir.join("probe.pid");
    let _ = std::fs::remove_file(&pid_file);
    let deadline = std::time::Instant::now() + timeout;
    let mut child = Command::new(&ctx.runtime)
        .arg("--root")
        .arg(&ctx.runtime_root)
        .arg("exec")
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&ctx.id)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("run {}: {e}", ctx.runtime.display()))?;
    let pid = child.id() as i32;
    match ctx.reaped.wait(pid, deadline) {
        Some(0) => Ok(()),
        Some(code) => Err(format!("{argv:?} exited with {code}")),
        None => {
            if let Some(p) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                crate::health::kill_tree(p);
            }
            let _ = child.kill();
            // Its code arrives through the loop; take it so it is not kept.
            let _ = ctx
                .reaped
                .wait(pid, std::time::Instant::now() + Duration::from_secs(1));
            Err(format!("{argv:?} timed out after {timeout:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(path: &str) -> Probe {
        Probe::new(ProbeAction::HttpGet {
            port: 80,
            path: path.into(),
            host: None,
            scheme_https: false,
            headers: Vec::new(),
        })
    }

    #[test]
    fn validation_names_the_probe_and_field() {
        let ok = Probes {
            liveness: Some(http("/healthz")),
            ..Probes::default()
        };
        ok.validate().expect("valid");
        let mut p = http("/x");
        p.failure_threshold = 0;
        let e = Probes {
            readiness: Some(p),
            ..Probes::default()
        }
        .validate()
        .expect_err("threshold 0");
        assert!(e.to_string().starts_with("readiness probe:"), "{e}");
        let mut p = http("/x");
        p.success_threshold = 2;
        assert!(Probes {
            liveness: Some(p),
            ..Probes::default()
        }
        .validate()
        .is_err());
        for bad in ["x", "/a b", "/a\r\nHost: evil"] {
            assert!(Probes {
                startup: Some(http(bad)),
                ..Probes::default()
            }
            .validate()
            .is_err());
        }
        assert!(Probes {
            liveness: Some(Probe::new(ProbeAction::Exec(Vec::new()))),
            ..Probes::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn json_durations_are_milliseconds() {
        let p = Probes {
            liveness: Some(Probe::new(ProbeAction::TcpSocket {
                port: 9,
                host: None,
            })),
            ..Probes::default()
        };
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["liveness"]["period"], 10_000);
        assert_eq!(v["liveness"]["timeout"], 1_000);
        let back: Probes = serde_json::from_value(v).expect("back");
        assert_eq!(back, p);
        assert_eq!(
            "restart".parse::<OnFailure>().ok(),
            Some(OnFailure::Restart)
        );
        assert!("reboot".parse::<OnFailure>().is_err());
    }

    #[test]
    fn reaped_codes_reach_the_waiter() {
        let r = Reaped::default();
        let r2 = r.clone();
        let t = std::thread::spawn(move || {
            r2.wait(42, std::time::Instant::now() + Duration::from_secs(5))
        });
        std::thread::sleep(Duration::from_millis(20));
        r.push(7, 1);
        r.push(42, 3);
        assert_eq!(t.join().expect("thread"), Some(3));
        assert_eq!(
            r.wait(99, std::time::Instant::now() + Duration::from_millis(10)),
            None
        );
    }
}
