//! Health checks with Docker's semantics: the configuration (`--health-*` flags merged with
//! the image's `Healthcheck`, durations in nanoseconds as Docker stores them), the state
//! (table `health`: status, failing streak, the last 5 results) and the [`Checker`] the
//! monitor drives from its poll loop (a probe is `berth-runtime exec` in the container,
//! killed when it outlives its timeout).
//!
//! Rules (moby `daemon/health.go`): the first probe runs one interval after the start, the
//! next one interval after the previous ended; exit 0 is a success (streak 0, `healthy`),
//! anything else (a timeout too) a failure; failures while the status is still `starting`
//! and the start period has not passed do not count; `retries` consecutive counted
//! failures make it `unhealthy`. A (re)start resets the status to `starting`.

use crate::container::Engine;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::types::ContainerSpec;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The table of this module, created where the database is opened.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS health (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    failing_streak INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '[]'
);
";

/// Docker's defaults (`docker run --health-*`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u64 = 3;
/// Docker keeps the last 5 results and 4 KiB of each one's output.
pub const MAX_LOG: usize = 5;
pub const MAX_OUTPUT: usize = 4096;

/// A health check as Docker's `Config.Healthcheck` (durations in nanoseconds; 0 = default,
/// or the image's value when merged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD", arg…]`, `["CMD-SHELL", "cmd"]`, `["NONE"]`; empty: the image's.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u64,
}

/// Parses a duration as Go's `time.ParseDuration` (what Docker's flags take): `1s`,
/// `500ms`, `1m30s`, `1.5h`, `0`. Units: ns, us, µs, ms, s, m, h. No sign.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "invalid duration {s:?}: {why} (e.g. 30s, 500ms, 1m30s)"
        ))
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(n);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad("expected a number"));
        }
        let v: f64 = num.parse().map_err(|_| bad("expected a number"))?;
        let u = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(u);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        total += v * scale;
        if total > u64::MAX as f64 / 2.0 {
            return Err(bad("too large"));
        }
        rest = next;
    }
    Ok(Duration::from_nanos(total as u64))
}

/// The health options of `run`/`create`; None when none was given (the image's is used).
#[derive(Clone, Debug, Default)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<i64>,
    pub none: bool,
}

impl HealthFlags {
    /// The container's own health check from its flags (Docker's rules: `--no-healthcheck`
    /// alone; durations of 0 or at least 1 ms; retries not negative).
    pub fn to_config(&self) -> Result<Option<HealthConfig>> {
        let any = self.cmd.is_some()
            || self.interval.is_some()
            || self.timeout.is_some()
            || self.start_period.is_some()
            || self.retries.is_some();
        if self.none {
            if any {
                return Err(Error::Invalid(
                    "--no-healthcheck conflicts with --health-* options".into(),
                ));
            }
            return Ok(Some(HealthConfig {
                test: vec!["NONE".into()],
                ..HealthConfig::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let dur = |flag: &str, v: &Option<String>| -> Result<u64> {
            let Some(v) = v else { return Ok(0) };
            let d = parse_duration(v).map_err(|e| Error::Invalid(format!("--{flag}: {e}")))?;
            if !d.is_zero() && d < Duration::from_millis(1) {
                return Err(Error::Invalid(format!(
                    "--{flag} {v:?}: must be 0 or at least 1ms"
                )));
            }
            Ok(d.as_nanos() as u64)
        };
        let retries = match self.retries {
            Some(r) if r < 0 => {
                return Err(Error::Invalid(format!(
                    "--health-retries {r}: cannot be negative"
                )))
            }
            Some(r) => r as u64,
            None => 0,
        };
        let test = match &self.cmd {
            Some(c) if c.trim().is_empty() => {
                return Err(Error::Invalid("--health-cmd is empty".into()))
            }
            Some(c) => vec!["CMD-SHELL".into(), c.clone()],
            None => Vec::new(),
        };
        Ok(Some(HealthConfig {
            test,
            interval: dur("health-interval", &self.interval)?,
            timeout: dur("health-timeout", &self.timeout)?,
            start_period: dur("health-start-period", &self.start_period)?,
            retries,
        }))
    }
}

/// The image's `config.Healthcheck` (Docker's extension of the OCI image config, as
/// `berth build` writes it); a malformed one is an error naming it.
pub fn image_healthcheck(config_bytes: &[u8]) -> Result<Option<HealthConfig>> {
    let v: serde_json::Value = serde_json::from_slice(config_bytes)
        .map_err(|e| Error::Invalid(format!("image config: {e}")))?;
    match v.get("config").and_then(|c| c.get("Healthcheck")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(h) => serde_json::from_value(h.clone())
            .map(Some)
            .map_err(|e| Error::Invalid(format!("image config: Healthcheck: {e}"))),
    }
}

/// Docker's merge of a container's health check with its image's (moby
/// `daemon/commit.go` `merge`): fields the container leaves unset come from the image.
/// Checks the result's `Test`.
pub fn merge(
    user: Option<HealthConfig>,
    image: Option<HealthConfig>,
) -> Result<Option<HealthConfig>> {
    let merged = match (user, image) {
        (None, i) => i,
        (Some(u), None) => Some(u),
        (Some(mut u), Some(i)) => {
            if u.test.is_empty() {
                u.test = i.test;
            }
            if u.interval == 0 {
                u.interval = i.interval;
            }
            if u.timeout == 0 {
                u.timeout = i.timeout;
            }
            if u.start_period == 0 {
                u.start_period = i.start_period;
            }
            if u.retries == 0 {
                u.retries = i.retries;
            }
            Some(u)
        }
    };
    if let Some(h) = &merged {
        probe_argv(h)?;
    }
    Ok(merged)
}

/// The command a probe runs in the container; None for no check (`NONE`, or no test).
pub fn probe_argv(h: &HealthConfig) -> Result<Option<Vec<String>>> {
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => Ok(None),
        Some("CMD") if h.test.len() >= 2 && !h.test[1].is_empty() => Ok(Some(h.test[1..].to_vec())),
        Some("CMD-SHELL") if h.test.len() == 2 && !h.test[1].trim().is_empty() => Ok(Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            h.test[1].clone(),
        ])),
        _ => Err(Error::Invalid(format!(
            "invalid health check test {:?}: expected [\"CMD\", arg…], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]",
            h.test
        ))),
    }
}

/// What the monitor runs: the command and the durations with Docker's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u64,
}

/// The container's health check, if it has one.
pub fn effective(spec: &ContainerSpec) -> Option<Effective> {
    let h = spec.healthcheck.as_ref()?;
    let argv = probe_argv(h).ok()??;
    let or = |ns: u64, d: Duration| {
        if ns == 0 {
            d
        } else {
            Duration::from_nanos(ns)
        }
    };
    Some(Effective {
        argv,
        interval: or(h.interval, DEFAULT_INTERVAL),
        timeout: or(h.timeout, DEFAULT_TIMEOUT),
        start_period: Duration::from_nanos(h.start_period),
        retries: if h.retries == 0 {
            DEFAULT_RETRIES
        } else {
            h.retries
        },
    })
}

/// One probe's result (Docker's `HealthcheckResult`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// A container's health (Docker's `State.Health`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: u64,
    pub log: Vec<Probe>,
}

fn load(tx: &rusqlite::Transaction<'_>, id: &str) -> rusqlite::Result<Option<Health>> {
    tx.query_row(
        "SELECT status, failing_streak, log FROM health WHERE id = ?1",
        [id],
        |r| {
            let log: String = r.get(2)?;
            Ok(Health {
                status: r.get(0)?,
                failing_streak: r.get::<_, i64>(1)? as u64,
                // A damaged log is dropped, not fatal.
                log: serde_json::from_str(&log).unwrap_or_default(),
            })
        },
    )
    .optional()
}

fn store(tx: &rusqlite::Transaction<'_>, id: &str, h: &Health) -> rusqlite::Result<()> {
    let log = serde_json::to_string(&h.log).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO health (id, status, failing_streak, log) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(id) DO UPDATE SET status = ?2, failing_streak = ?3, log = ?4",
        params![id, h.status, h.failing_streak as i64, log],
    )?;
    Ok(())
}

/// A (re)started container: `starting`, streak 0 (the log is kept, as Docker does).
pub fn reset(db: &mut Db, id: &str) -> Result<()> {
    db.write(|tx| {
        let mut h = load(tx, id)?.unwrap_or_default();
        h.status = "starting".into();
        h.failing_streak = 0;
        store(tx, id, &h)
    })
}

/// Applies one probe's result (see the module doc); the new health.
pub fn record(
    db: &mut Db,
    id: &str,
    p: Probe,
    in_start_period: bool,
    retries: u64,
) -> Result<Health> {
    db.write(|tx| {
        let mut h = load(tx, id)?.unwrap_or_else(|| Health {
            status: "starting".into(),
            ..Health::default()
        });
        apply(&mut h, p.clone(), in_start_period, retries);
        store(tx, id, &h)?;
        Ok(h)
    })
}

/// The state machine of one result.
pub fn apply(h: &mut Health, mut p: Probe, in_start_period: bool, retries: u64) {
    if p.exit_code == 0 {
        h.failing_streak = 0;
        h.status = "healthy".into();
    } else if !(h.status == "starting" && in_start_period) {
        h.failing_streak += 1;
        if h.failing_streak >= retries.max(1) {
            h.status = "unhealthy".into();
        }
    }
    truncate(&mut p.output);
    h.log.push(p);
    let n = h.log.len();
    if n > MAX_LOG {
        h.log.drain(..n - MAX_LOG);
    }
}

fn truncate(s: &mut String) {
    if s.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

impl Engine {
    /// The container's health, when it has a health check.
    pub fn health(&self, c: &crate::Container) -> Result<Option<Health>> {
        if effective(&c.spec).is_none() {
            return Ok(None);
        }
        let mut db = self.db()?;
        let h = db.write(|tx| load(tx, &c.id))?;
        Ok(Some(h.unwrap_or_else(|| Health {
            status: "starting".into(),
            ..Health::default()
        })))
    }
}

/// Runs a container's health check from the monitor's poll loop: [`Checker::timeout`]
/// bounds the poll, [`Checker::fd`] is polled for the probe's output, [`Checker::tick`]
/// starts and times out probes, [`Checker::exited`] takes the probe's exit status (the
/// monitor reaps every child).
pub struct Checker {
    cfg: Effective,
    id: String,
    root: PathBuf,
    runtime: PathBuf,
    runtime_root: PathBuf,
    pid_file: PathBuf,
    started: Instant,
    next: Instant,
    running: Option<Running>,
    /// `--health-on-failure` and what it needs (set by [`Checker::on_failure`]).
    on_failure: Option<OnUnhealthy>,
}

struct OnUnhealthy {
    action: crate::probe::OnFailure,
    verdict: crate::probe::SharedVerdict,
    init: i32,
    stop_signal: Signal,
    grace: Duration,
}

struct Running {
    child: Child,
    out: File,
    buf: Vec<u8>,
    start: String,
    deadline: Instant,
    timed_out: bool,
    /// The pipe reached end-of-file (no longer polled).
    eof: bool,
}

impl Checker {
    pub fn new(
        cfg: Effective,
        id: &str,
        root: PathBuf,
        runtime: PathBuf,
        runtime_root: PathBuf,
        dir: PathBuf,
    ) -> Checker {
        let now = Instant::now();
        Checker {
            next: now + cfg.interval,
            cfg,
            id: id.to_string(),
            root,
            runtime,
            runtime_root,
            pid_file: dir.join("health.pid"),
            started: now,
            running: None,
            on_failure: None,
        }
    }

    /// Podman's `--health-on-failure`: what to do with the container (init `init`) when
    /// its status turns `unhealthy` — `kill` (SIGKILL; the restart policy applies),
    /// `restart` (stopped: the stop signal, SIGKILL after `grace`; then restarted whatever
    /// the policy), `stop` (stopped the same way; not restarted).
    pub fn on_failure(
        &mut self,
        action: crate::probe::OnFailure,
        verdict: crate::probe::SharedVerdict,
        init: i32,
        stop_signal: Signal,
        grace: Duration,
    ) {
        self.on_failure = Some(OnUnhealthy {
            action,
            verdict,
            init,
            stop_signal,
            grace,
        });
    }

    /// How long the poll may wait before [`Checker::tick`] has something to do.
    pub fn timeout(&self) -> Duration {
        let at = match &self.running {
            Some(r) if !r.timed_out => r.deadline,
            Some(_) => Instant::now() + Duration::from_millis(200),
            None => self.next,
        };
        at.saturating_duration_since(Instant::now())
    }

    /// The running probe's output pipe.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.running
            .as_ref()
            .filter(|r| !r.eof)
            .map(|r| r.out.as_fd())
    }

    /// Reads what the probe wrote (keeping the first [`MAX_OUTPUT`] bytes).
    pub fn read(&mut self) {
        if let Some(r) = self.running.as_mut() {
            drain(r);
        }
    }

    /// Starts a due probe; kills one past its timeout.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if let Some(r) = self.running.as_mut() {
            if !r.timed_out && now >= r.deadline {
                tracing::info!(container = %self.id, "health check timed out: killing it");
                r.timed_out = true;
                if let Some(pid) = std::fs::read_to_string(&self.pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                {
                    kill_tree(pid);
                }
                let _ = r.child.kill();
            }
            return;
        }
        if now < self.next {
            return;
        }
        let _ = std::fs::remove_file(&self.pid_file);
        match self.spawn() {
            Ok(r) => self.running = Some(r),
            Err(e) => {
                let start = runtime::state::now_rfc3339();
                self.finish(Probe {
                    end: start.clone(),
                    start,
                    exit_code: -1,
                    output: e,
                });
            }
        }
    }

    fn spawn(&self) -> std::result::Result<Running, String> {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&r),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| format!("pipe: {e}"))?;
        let w2 = w.try_clone().map_err(|e| format!("pipe: {e}"))?;
        let start = runtime::state::now_rfc3339();
        let child = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.runtime_root)
            .arg("exec")
            .arg("--pid-file")
            .arg(&self.pid_file)
            .arg(&self.id)
            .args(&self.cfg.argv)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2))
            .spawn()
            .map_err(|e| format!("run {}: {e}", self.runtime.display()))?;
        Ok(Running {
            child,
            out: File::from(r),
            buf: Vec::new(),
            start,
            deadline: Instant::now() + self.cfg.timeout,
            timed_out: false,
            eof: false,
        })
    }

    /// The probe's process (pid `pid`) ended with `code`: records the result. False if
    /// `pid` is not the probe.
    pub fn exited(&mut self, pid: i32, code: i32) -> bool {
        let ours = self
            .running
            .as_ref()
            .is_some_and(|r| r.child.id() as i32 == pid);
        if !ours {
            return false;
        }
        let Some(mut r) = self.running.take() else {
            return false;
        };
        drain(&mut r);
        let (exit_code, output) = if r.timed_out {
            (
                -1,
                format!("Health check exceeded timeout ({:?})", self.cfg.timeout),
            )
        } else {
            (code, String::from_utf8_lossy(&r.buf).into_owned())
        };
        self.finish(Probe {
            start: r.start,
            end: runtime::state::now_rfc3339(),
            exit_code,
            output,
        });
        true
    }

    fn finish(&mut self, p: Probe) {
        let in_start = self.started.elapsed() < self.cfg.start_period;
        let code = p.exit_code;
        match Db::open(&self.root)
            .and_then(|mut db| record(&mut db, &self.id, p, in_start, self.cfg.retries))
        {
            Ok(h) => {
                tracing::info!(container = %self.id, code, status = %h.status, streak = h.failing_streak, "health check");
                if h.status == "unhealthy" {
                    self.unhealthy();
                }
            }
            Err(e) => tracing::warn!(container = %self.id, error = %e, "record a health check"),
        }
        self.next = Instant::now() + self.cfg.interval;
    }

    fn unhealthy(&mut self) {
        use crate::probe::{OnFailure, Verdict};
        let Some(o) = &self.on_failure else { return };
        let v = match o.action {
            OnFailure::None => return,
            OnFailure::Kill => None,
            OnFailure::Restart => Some(Verdict::Restart),
            OnFailure::Stop => Some(Verdict::Stop),
        };
        tracing::warn!(container = %self.id, action = ?o.action, "unhealthy: --health-on-failure");
        // Podman: `kill` is SIGKILL, `restart` and `stop` stop with the stop timeout.
        let graceful = o.action != OnFailure::Kill;
        crate::probe::kill_container(&o.verdict, v, graceful, o.init, o.stop_signal, o.grace);
    }

    /// The container ended: a running probe is killed (its result not recorded).
    pub fn abort(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
        }
    }
}

/// SIGKILLs `pid` and every descendant of it (a shell's children too, so a timed-out
/// probe leaves nothing running in the container).
pub fn kill_tree(pid: i32) {
    let ppid = |p: i32| -> Option<i32> {
        let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // After the command's closing parenthesis: state, then ppid.
        s.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| Some((p, ppid(p)?)))
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            all.iter()
                .filter(|(p, pp)| *pp == parent && !tree.contains(p))
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    for p in tree {
        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

fn drain(r: &mut Running) {
    let mut chunk = [0u8; 4096];
    loop {
        match r.out.read(&mut chunk) {
            Ok(0) => {
                r.eof = true;
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    r.eof = true;
                }
                return;
            }
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(r.buf.len());
                r.buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let ok = [
            ("1s", 1_000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("0", 0),
            ("2us", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).expect(s).as_millis() as u64, ms, "{s}");
        }
        for s in ["", "1", "s", "1x", "-1s", "1..5s", "abc", "1s2"] {
            let e = parse_duration(s).expect_err(s).to_string();
            assert!(e.contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn flags_and_merge() {
        let f = HealthFlags {
            interval: Some("soon".into()),
            ..HealthFlags::default()
        };
        assert!(f
            .to_config()
            .expect_err("bad")
            .to_string()
            .contains("--health-interval"));
        let f = HealthFlags {
            none: true,
            cmd: Some("true".into()),
            ..HealthFlags::default()
        };
        assert!(f.to_config().is_err());
        let f = HealthFlags {
            retries: Some(-1),
            ..HealthFlags::default()
        };
        assert!(f.to_config().is_err());
        let f = HealthFlags {
            interval: Some("2s".into()),
            ..HealthFlags::default()
        };
        let img = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 9,
            retries: 7,
            ..HealthConfig::default()
        };
        let m = merge(f.to_config().expect("ok"), Some(img))
            .expect("ok")
            .expect("some");
        assert_eq!(m.test, ["CMD", "true"]);
        assert_eq!(m.interval, 2_000_000_000);
        assert_eq!(m.retries, 7);
        let bad = HealthConfig {
            test: vec!["BOGUS".into()],
            ..HealthConfig::default()
        };
        assert!(merge(None, Some(bad)).is_err());
    }

    #[test]
    fn status_machine() {
        let p = |code| Probe {
            exit_code: code,
            output: "x".repeat(5000),
            ..Probe::default()
        };
        let mut h = Health {
            status: "starting".into(),
            ..Health::default()
        };
        apply(&mut h, p(1), true, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        apply(&mut h, p(1), false, 2);
        apply(&mut h, p(1), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        apply(&mut h, p(0), false, 2);
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        for _ in 0..5 {
            apply(&mut h, p(1), false, 9);
        }
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.log[0].output.len(), MAX_OUTPUT);
    }
}
