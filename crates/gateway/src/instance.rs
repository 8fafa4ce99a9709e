//! The container backend: one function instance is one container started directly with
//! berth-runtime (`run --detach`, no monitor) on the function's image snapshots with a
//! fresh overlay upper directory under `<runroot>/functions/<id>/` (tmpfs: discarded with
//! the instance), `/tmp` a tmpfs, and its own namespaces including the network one.
//!
//! - **stdio mode**: the container's init is the static `berth-agent --fn` (bind-mounted
//!   read-only at `/.berth/bin/berth-agent`), listening on `/.berth/run/fn.sock`, a directory
//!   bind-mounted from the instance's host directory: the gateway connects to the socket
//!   from the host side and the agent forks the function's command per request.
//! - **http mode**: the container runs the image's own command; a helper thread of the
//!   gateway joins the instance's network namespace (`setns`, per thread), brings `lo` up
//!   and opens every connection to `127.0.0.1:PORT` there; the sockets are then used from
//!   anywhere. No bridge, no NAT, no port on the host.
//!
//! `berth serve` is a child subreaper, so each instance's init becomes its child once
//! `berth-runtime create` has exited; one thread per instance waits for it.

use crate::def::{Function, Mode};
use crate::{Error, Result};
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the agent and its socket are inside a stdio-mode instance.
const AGENT_DIR: &str = "/.berth/bin";
const AGENT_IN: &str = "/.berth/bin/berth-agent";
const RUN_DIR: &str = "/.berth/run";
const SOCKET_IN: &str = "/.berth/run/fn.sock";

/// What every instance needs from the host.
#[derive(Clone, Debug)]
pub struct Host {
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub runtime: PathBuf,
    /// A directory holding a static `berth-agent` (stdio mode), when one was found.
    pub agent_dir: Option<PathBuf>,
    /// How long a new instance may take to accept connections.
    pub start_timeout: Duration,
    /// Keep one prepared instance per function after its first start ([`Prepared`]).
    pub spares: bool,
}

impl Host {
    /// `<runroot>/functions`: one directory per live instance.
    pub fn instances_dir(&self) -> PathBuf {
        self.runroot.join("functions")
    }

    /// The function's log (instances' output, stdio-mode stderr).
    pub fn log_path(&self, name: &str) -> PathBuf {
        log_path(&self.root, name)
    }

    /// The function's log opened for appending twice: a runtime's stdout and stderr.
    fn log_files(&self, name: &str) -> Result<(File, File)> {
        let log = self.log_path(name);
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err(&log))?;
        let err = out.try_clone().map_err(io_err(&log))?;
        Ok((out, err))
    }

    fn runtime(&self) -> Command {
        let mut c = Command::new(&self.runtime);
        c.arg("--root").arg(self.runroot.join("runtime"));
        c
    }

    /// `berth-runtime ARGS`, its stderr in the error.
    fn runtime_ok(&self, args: &[&str]) -> Result<()> {
        let out = self
            .runtime()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::Runtime(format!("run {}: {e}", self.runtime.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Runtime(format!(
                "berth-runtime {}: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

/// `<root>/functions/<name>.log`.
pub fn log_path(root: &Path, name: &str) -> PathBuf {
    root.join("functions").join(format!("{name}.log"))
}

/// How the gateway reaches an instance.
pub enum Conn {
    /// The agent's socket, seen from the host.
    Stdio { socket: PathBuf, argv: Vec<String> },
    /// Connections opened in the instance's network namespace.
    Http(NetConnector),
}

/// A started instance (its container runs).
pub struct Started {
    pub id: String,
    pub pid: i32,
    pub dir: PathBuf,
    pub conn: Conn,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A new instance id: `fn-<name>-<serve's pid>-<n>` (unique on the host while serve lives;
/// leftovers of a killed serve are removed at the next start).
fn new_id(name: &str) -> String {
    format!(
        "fn-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The command a stdio-mode request runs: `fprocess` from the function's environment (the
/// OpenFaaS variable), else the image's entrypoint and command.
fn stdio_argv(f: &Function, img: &image::Image) -> Result<Vec<String>> {
    let fprocess = f
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("fprocess="))
        .or_else(|| {
            img.config
                .config()
                .as_ref()
                .and_then(|c| c.env().as_ref())
                .and_then(|env| env.iter().rev().find_map(|e| e.strip_prefix("fprocess=")))
        });
    let argv: Vec<String> = match fprocess {
        Some(p) => p.split_whitespace().map(str::to_string).collect(),
        None => engine::spec::process_args(&img.config, &engine::spec::Opts::default()),
    };
    if argv.is_empty() {
        return Err(Error::Invalid(format!(
            "function {}: the image has no entrypoint or cmd and no fprocess is set",
            f.name
        )));
    }
    Ok(argv)
}

/// Checks at deploy that the image gives a command in the function's mode.
pub fn check_command(f: &Function, img: &image::Image) -> Result<()> {
    match f.mode {
        Mode::Stdio => stdio_argv(f, img).map(|_| ()),
        Mode::Http => {
            if engine::spec::process_args(&img.config, &engine::spec::Opts::default()).is_empty() {
                Err(Error::Invalid(format!(
                    "function {}: the image {} has no entrypoint or cmd to start its server",
                    f.name, f.image
                )))
            } else {
                Ok(())
            }
        }
    }
}

/// An instance made ready to start (a "spare", as SOCK's zygotes): its root filesystem
/// mounted with a fresh upper directory and its config.json written, no process yet. A
/// cold start from a spare pays only `berth-runtime create` + `start` and the wait for the
/// instance to accept connections.
pub struct Prepared {
    pub id: String,
    pub dir: PathBuf,
    /// The command a stdio-mode request runs (`None`: http mode).
    stdio_argv: Option<Vec<String>>,
    /// A zygote: `berth-runtime create` ran (namespaces, cgroup, mounts done; the init is
    /// parked on the exec FIFO, a process of ours): the start pays only `start`.
    created: Option<i32>,
}

impl Prepared {
    /// Whether this spare has a process (a created container).
    pub fn is_created(&self) -> bool {
        self.created.is_some()
    }

    /// A zygote whose parked init died (killed from outside) cannot start.
    pub fn is_dead_zygote(&self) -> bool {
        self.created
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid))
    }
}

/// Starts an instance of `f` (blocking: runs berth-runtime and waits until the instance
/// accepts connections). On failure nothing of it is left.
pub fn start(host: &Host, f: &Function, img: &image::Image) -> Result<Started> {
    launch(host, f, prepare(host, f, img)?)
}

/// Prepares an instance of `f` (see [`Prepared`]); on failure nothing of it is left.
pub fn prepare(host: &Host, f: &Function, img: &image::Image) -> Result<Prepared> {
    let id = new_id(&f.name);
    let dir = host.instances_dir().join(&id);
    match prepare_in(host, f, img, &id, &dir) {
        Ok(stdio_argv) => Ok(Prepared {
            id,
            dir,
            stdio_argv,
            created: None,
        }),
        Err(e) => {
            stop(host, &id, &dir);
            Err(e)
        }
    }
}

/// Prepares an instance and creates its container ([`Prepared::created`]: a zygote whose
/// start is one `berth-runtime start`); on failure nothing of it is left.
pub fn prepare_created(host: &Host, f: &Function, img: &image::Image) -> Result<Prepared> {
    let mut p = prepare(host, f, img)?;
    crate::trace::stage("zygote-create", &p.id);
    let mut init = None;
    match create_in(host, f, &p, &mut init) {
        Ok(pid) => {
            p.created = Some(pid);
            crate::trace::stage("zygote-parked", &p.id);
            Ok(p)
        }
        Err(e) => {
            stop(host, &p.id, &p.dir);
            reap(init);
            Err(e)
        }
    }
}

/// `berth-runtime create`: the init's pid.
fn create_in(host: &Host, f: &Function, p: &Prepared, init: &mut Option<i32>) -> Result<i32> {
    let log = host.log_path(&f.name);
    let (out, err) = host.log_files(&f.name)?;
    let pid_file = p.dir.join("pid");
    let status = host
        .runtime()
        .arg("create")
        .arg("--bundle")
        .arg(&p.dir)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&p.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| Error::Runtime(format!("create {}: {e}", host.runtime.display())))?;
    let pid: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    *init = pid;
    if !status.success() {
        return Err(Error::Runtime(format!(
            "function {}: berth-runtime create failed: {}",
            f.name,
            log_tail(&log)
        )));
    }
    pid.ok_or_else(|| Error::Runtime(format!("berth-runtime wrote no pid for {}", p.id)))
}

/// Reaps an init of ours that was killed (we are its subreaper).
fn reap(init: Option<i32>) {
    if let Some(pid) = init {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
}

/// Removes a prepared instance that will not be started (a zygote's parked init is killed
/// and reaped).
pub fn discard(host: &Host, p: Prepared) {
    stop(host, &p.id, &p.dir);
    reap(p.created);
}

/// Starts a prepared instance; on failure nothing of it is left.
pub fn launch(host: &Host, f: &Function, p: Prepared) -> Result<Started> {
    let mut init = None;
    match launch_in(host, f, &p, &mut init) {
        Ok(s) => Ok(s),
        Err(e) => {
            stop(host, &p.id, &p.dir);
            // The init is our child (subreaper): reap it, or it stays a zombie.
            if let Some(pid) = init {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            Err(e)
        }
    }
}

fn prepare_in(
    host: &Host,
    f: &Function,
    img: &image::Image,
    id: &str,
    dir: &Path,
) -> Result<Option<Vec<String>>> {
    let store = image::ImageStore::open(&host.root)?;
    let layers = img.layers()?;
    let rootfs = store.prepare_rootfs_at(&layers, dir, &dir.join("rootfs"))?;
    let mut opts = engine::spec::Opts {
        env: f.env.clone(),
        memory: f.memory.clone(),
        cpus: f.cpus,
        hostname: f.name.clone(),
        ..Default::default()
    };
    let stdio_cmd = if f.mode == Mode::Stdio {
        let agent = host.agent_dir.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "function {}: stdio mode needs a static berth-agent (berth serve --agent PATH or \
                 $BERTH_AGENT; scripts/build-agent.sh builds one)",
                f.name
            ))
        })?;
        opts.entrypoint = Some(AGENT_IN.to_string());
        opts.cmd = vec!["--fn".into(), SOCKET_IN.into()];
        Some((agent, stdio_argv(f, img)?))
    } else {
        None
    };
    let mut spec = engine::spec::build(&img.config, &opts, &rootfs.path)?;
    spec["root"]["path"] = json!(rootfs.path);
    spec["linux"]["cgroupsPath"] = json!(format!("/berth-fn/{id}"));
    let mounts = spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| Error::Invalid("the default spec has no mounts".into()))?;
    mounts.push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}),
    );
    let uid = spec["process"]["user"]["uid"].as_u64().map(|u| u as u32);
    let gid = spec["process"]["user"]["gid"].as_u64().map(|g| g as u32);
    let mounts = spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| Error::Invalid("the default spec has no mounts".into()))?;
    if let Some((agent, _)) = &stdio_cmd {
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
        // The agent runs as the image's user: its socket directory is that user's.
        std::os::unix::fs::chown(&run_dir, uid, gid).map_err(io_err(&run_dir))?;
        mounts.push(
            json!({"destination": AGENT_DIR, "type": "bind", "source": agent,
            "options": ["rbind", "ro", "nosuid", "nodev"]}),
        );
        mounts.push(
            json!({"destination": RUN_DIR, "type": "bind", "source": run_dir,
            "options": ["rbind", "nosuid", "nodev", "noexec"]}),
        );
    }
    let config = dir.join("config.json");
    let body = serde_json::to_vec(&spec).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&config, body).map_err(io_err(&config))?;
    let log = host.log_path(&f.name);
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    Ok(stdio_cmd.map(|(_, argv)| argv))
}

fn launch_in(host: &Host, f: &Function, p: &Prepared, init: &mut Option<i32>) -> Result<Started> {
    let t0 = Instant::now();
    let (id, dir) = (p.id.as_str(), p.dir.as_path());
    let log = host.log_path(&f.name);
    let (out, err) = host.log_files(&f.name)?;
    let pid_file = dir.join("pid");
    crate::trace::stage("runtime", id);
    let (verb, created) = match p.created {
        // A zygote: only the exec of the parked init is left.
        Some(pid) => {
            *init = Some(pid);
            let status = host
                .runtime()
                .arg("start")
                .arg(id)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .status()
                .map_err(|e| Error::Runtime(format!("start {}: {e}", host.runtime.display())))?;
            ("start", status)
        }
        // `run --detach`: create and start in one runtime process (one exec fewer than
        // `create` + `start` on the cold path).
        None => {
            let status = host
                .runtime()
                .arg("run")
                .arg("--detach")
                .arg("--bundle")
                .arg(dir)
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(id)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .status()
                .map_err(|e| Error::Runtime(format!("run {}: {e}", host.runtime.display())))?;
            // The init ran (and is ours to reap) once the pid file names it, even if `run`
            // failed after that.
            *init = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            ("run", status)
        }
    };
    let pid = *init;
    if !created.success() {
        return Err(Error::Runtime(format!(
            "function {}: berth-runtime {verb} failed: {}",
            f.name,
            log_tail(&log)
        )));
    }
    crate::trace::stage("wait-ready", id);
    let pid = pid.ok_or_else(|| Error::Runtime(format!("berth-runtime wrote no pid for {id}")))?;
    let t_create = t0.elapsed();
    let deadline = t0 + host.start_timeout;
    let conn = match &p.stdio_argv {
        Some(argv) => {
            let socket = dir.join("run").join("fn.sock");
            wait_ready(pid, deadline, || {
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            })
            .map_err(|why| {
                Error::Runtime(format!(
                    "function {}: the instance's agent {why}; its output: {}",
                    f.name,
                    log_tail(&log)
                ))
            })?;
            Conn::Stdio {
                socket,
                argv: argv.clone(),
            }
        }
        None => {
            let net = NetConnector::new(pid, f.port)?;
            wait_ready(pid, deadline, || net.connect_blocking().is_ok()).map_err(|why| {
                Error::Runtime(format!(
                    "function {}: nothing listens on port {} in the instance: it {why}; its \
                     output: {}",
                    f.name,
                    f.port,
                    log_tail(&log)
                ))
            })?;
            Conn::Http(net)
        }
    };
    crate::trace::stage("ready", id);
    tracing::debug!(
        function = %f.name,
        instance = id,
        zygote = p.created.is_some(),
        pid,
        run_ms = t_create.as_secs_f64() * 1e3,
        ready_ms = (t0.elapsed() - t_create).as_secs_f64() * 1e3,
        "instance started"
    );
    Ok(Started {
        id: id.to_string(),
        pid,
        dir: dir.to_path_buf(),
        conn,
    })
}

/// Polls `ready` until it holds; the reason when the process died or time ran out.
fn wait_ready(
    pid: i32,
    deadline: Instant,
    mut ready: impl FnMut() -> bool,
) -> std::result::Result<(), String> {
    let mut pause = Duration::from_micros(200);
    loop {
        if ready() {
            return Ok(());
        }
        if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
            return Err("exited before accepting connections".into());
        }
        if Instant::now() >= deadline {
            return Err("accepted no connection within the start timeout".into());
        }
        std::thread::sleep(pause);
        // Finely: the instance is usually ready within a few milliseconds.
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
        .unwrap_or(true)
}

/// The last lines of the function's log (for error messages), on one line.
fn log_tail(log: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(len.saturating_sub(400)));
        let _ = f.read_to_string(&mut s);
    }
    let t = s.trim().replace('\n', " | ");
    if t.is_empty() {
        "(none)".into()
    } else {
        t
    }
}

fn io_err(p: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |e| Error::Io(format!("{}: {e}", p.display()))
}

/// Stops and forgets an instance: kills its container (`delete --force`), unmounts its root
/// and removes its directory. Idempotent.
pub fn stop(host: &Host, id: &str, dir: &Path) {
    if let Err(e) = host.runtime_ok(&["delete", "--force", id]) {
        let text = e.to_string();
        if !text.contains("does not exist")
            && !text.contains("not found")
            && !text.contains("no such")
        {
            tracing::warn!(instance = id, error = %text, "delete the instance's container");
        }
    }
    let rootfs = dir.join("rootfs");
    match nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => tracing::warn!(instance = id, error = %e, "unmount the instance's root"),
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(instance = id, error = %e, "remove the instance's directory");
        }
    }
}

/// Removes what a killed `berth serve` left: every instance directory and its container.
pub fn clean_leftovers(host: &Host) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(host.instances_dir()) else {
        return 0;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("fn-") {
            continue;
        }
        stop(host, &name, &e.path());
        n += 1;
    }
    n
}

type ConnectReply = tokio::sync::oneshot::Sender<io::Result<TcpStream>>;

/// A thread inside an instance's network namespace that opens connections to its port.
pub struct NetConnector {
    tx: mpsc::Sender<ConnectReply>,
}

impl NetConnector {
    /// Joins the network namespace of `pid` on a new thread and brings its `lo` up.
    pub fn new(pid: i32, port: u16) -> Result<NetConnector> {
        let ns_path = format!("/proc/{pid}/ns/net");
        let ns = File::open(&ns_path).map_err(|e| Error::Io(format!("{ns_path}: {e}")))?;
        let (tx, rx) = mpsc::channel::<ConnectReply>();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        std::thread::Builder::new()
            .name(format!("netns-{pid}"))
            .spawn(move || {
                // setns(CLONE_NEWNET) changes only this thread's network namespace.
                let joined = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("join the network namespace of {pid}: {e}"))
                    .and_then(|()| {
                        sys::guest::link_up("lo").map_err(|e| format!("bring lo up: {e}"))
                    });
                let ok = joined.is_ok();
                let _ = ready_tx.send(joined);
                drop(ns);
                if !ok {
                    return;
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                for reply in rx {
                    let _ = reply.send(TcpStream::connect_timeout(&addr, Duration::from_secs(5)));
                }
            })
            .map_err(|e| Error::Io(format!("spawn a thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Io("the network namespace thread ended".into()))?
            .map_err(Error::Runtime)?;
        Ok(NetConnector { tx })
    }

    /// A connection (blocking caller).
    pub fn connect_blocking(&self) -> io::Result<TcpStream> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| io::Error::other("the instance's network thread is gone"))?;
        rx.blocking_recv()
            .map_err(|_| io::Error::other("the instance's network thread is gone"))?
    }

    /// A connection, as a tokio stream.
    pub async fn connect(&self) -> io::Result<tokio::net::TcpStream> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| io::Error::other("the instance's network thread is gone"))?;
        let s = rx
            .await
            .map_err(|_| io::Error::other("the instance's network thread is gone"))??;
        s.set_nonblocking(true)?;
        let _ = s.set_nodelay(true);
        tokio::net::TcpStream::from_std(s)
    }
}

/// Checks that `path` is a static executable (an ELF without a `PT_INTERP` program header):
/// it runs inside images that may have no C library.
pub fn check_static(path: &Path) -> std::result::Result<(), String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
    };
    // ELF64 little-endian only (the platforms berth builds for).
    if b.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(format!(
            "{}: not a 64-bit little-endian ELF executable",
            path.display()
        ));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err(format!("{}: truncated ELF header", path.display()));
    };
    for i in 0..phnum as usize {
        let off = phoff as usize + i * phentsize as usize;
        match u32_at(off) {
            Some(3) => {
                return Err(format!(
                    "{} is dynamically linked: build a static one with scripts/build-agent.sh",
                    path.display()
                ))
            }
            Some(_) => {}
            None => return Err(format!("{}: truncated program headers", path.display())),
        }
    }
    Ok(())
}
