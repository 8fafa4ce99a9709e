//! `berth serve [--interval SECS]`: the long-running engine process (optional: berth
//! works without it). For now it only restarts the containers whose restart policy
//! (`always`, `unless-stopped`) wants them running but whose monitor is gone — at its start
//! (Docker's daemon start rules) and then every `--interval` seconds, or at once on
//! SIGHUP (`engine::Engine::revive`). It stops cleanly on SIGTERM or SIGINT. The Docker
//! API will live here.
//!
//! With `--listen ADDR` it also runs the function gateway (berth-gateway; `berth fn`):
//! serve then lives in a private mount namespace (instances' root filesystems are never in
//! the host's mount table and vanish with it) and is a child subreaper (instances' inits
//! are its children); on SIGTERM/SIGINT every instance is stopped before it exits.
//!
//! With `--docker-socket PATH` (a unix socket, mode 0660) and/or `--docker-listen ADDR` it
//! serves the Docker Engine API (berth-dockerapi) over the same engine as the CLI; with
//! `--tls-cert/--tls-key [--tls-ca]` the TCP listener speaks TLS (dockerapi::tls).

use crate::Globals;
use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds between two reconcile passes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    /// Run the function gateway on this address (e.g. 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The static berth-agent for stdio-mode functions (default: $BERTH_AGENT, else
    /// berth-agent next to this executable; scripts/build-agent.sh builds one).
    #[arg(long)]
    agent: Option<std::path::PathBuf>,
    /// The largest request body the gateway accepts (bytes, or 512k, 16m).
    #[arg(long, default_value = "16m")]
    body_limit: String,
    /// How long a new function instance may take to accept connections.
    #[arg(long, default_value = "10s")]
    start_timeout: String,
    /// Do not keep a prepared instance (mounted root, config.json; no process) per used
    /// function for the next cold start.
    #[arg(long)]
    no_spare_instances: bool,
    /// Hosts (or host:port) an async call's X-Callback-Url may name besides loopback
    /// addresses (comma-separated; anything else is refused: the gateway would otherwise
    /// send requests anywhere a caller asks).
    #[arg(long, value_delimiter = ',')]
    allow_callback_hosts: Vec<String>,
    /// Attempts of an async call (its run and the callback) before it is dead (kept, shown
    /// by GET /system/async/NAME).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    async_attempts: u32,
    /// Serve the Docker Engine API on this unix socket (mode 0660; a stale socket there is
    /// replaced, any other file is refused). Without a value: /run/berth/docker.sock.
    #[arg(long, num_args = 0..=1, default_missing_value = "/run/berth/docker.sock")]
    docker_socket: Option<std::path::PathBuf>,
    /// Serve the Docker Engine API on this TCP address too. Without --tls-cert/--tls-key:
    /// plain HTTP, no authentication, a loopback address only.
    #[arg(long)]
    docker_listen: Option<std::net::SocketAddr>,
    /// Serve --docker-listen over TLS with this certificate chain (PEM; dockerd's --tlscert).
    /// Any address may then be bound.
    #[arg(long, requires_all = ["docker_listen", "tls_key"])]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM; dockerd's --tlskey).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Clients of --docker-listen must present a certificate signed by this CA (PEM;
    /// dockerd's --tlscacert with --tlsverify).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<std::path::PathBuf>,
}

/// The Docker API's tokio runtime and its serve tasks.
struct DockerRun {
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: Option<std::path::PathBuf>,
}

impl DockerRun {
    /// Stops listening; connections still open (a `wait`, a followed log) get two seconds
    /// to end, then the runtime is dropped under them.
    fn stop(self) {
        let _ = self.stop.send(true);
        let tasks = self.tasks;
        let _ = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), async move {
                for t in tasks {
                    let _ = t.await;
                }
            })
            .await
        });
        self.rt.shutdown_timeout(Duration::from_millis(100));
        if let Some(p) = self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds `path` for the Docker API: a stale socket there is removed first; anything else
/// is refused rather than deleted.
fn bind_docker_socket(path: &std::path::Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).with_context(|| {
            format!(
                "--docker-socket {}: remove the stale socket",
                path.display()
            )
        })?,
        Ok(_) => anyhow::bail!(
            "--docker-socket {}: exists and is not a socket",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("--docker-socket {}", path.display())),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "--docker-socket {}: create {}",
                path.display(),
                dir.display()
            )
        })?;
    }
    // Created with no permission for others at all, then opened to the group: never a
    // moment when anyone else may connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let l = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l.with_context(|| format!("--docker-socket {}: listen", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("--docker-socket {}: chmod 0660", path.display()))?;
    l.set_nonblocking(true)
        .with_context(|| format!("--docker-socket {}", path.display()))?;
    Ok(l)
}

fn start_docker(g: &Globals, a: &Args) -> Result<Option<DockerRun>> {
    if a.docker_socket.is_none() && a.docker_listen.is_none() {
        return Ok(None);
    }
    let api = dockerapi::Api {
        engine: g.engine()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = Vec::new();
    if let Some(path) = &a.docker_socket {
        let std_l = bind_docker_socket(path)?;
        let l = {
            let _g = rt.enter();
            tokio::net::UnixListener::from_std(std_l)
                .with_context(|| format!("--docker-socket {}", path.display()))?
        };
        let api = api.clone();
        let shutdown = stopped();
        tasks.push(rt.spawn(async move {
            if let Err(e) = dockerapi::serve_unix(api, l, shutdown).await {
                tracing::error!(error = %e, "docker api (unix socket) failed");
            }
        }));
        tracing::info!(socket = %path.display(), "docker api: listening");
    }
    if let (Some(addr), Some(cert), Some(key)) = (a.docker_listen, &a.tls_cert, &a.tls_key) {
        let files = dockerapi::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: a.tls_ca.clone(),
        };
        let acceptor = dockerapi::tls::acceptor(&files)?;
        if a.tls_ca.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(listen = %addr, "docker api: TLS without --tls-ca: any client that reaches this address is root");
        }
        let l = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("--docker-listen {addr}"))?;
        let shutdown = stopped();
        tasks.push(rt.spawn(async move {
            if let Err(e) = dockerapi::tls::serve_tls(api, l, acceptor, shutdown).await {
                tracing::error!(error = %e, "docker api (tls) failed");
            }
        }));
        tracing::info!(listen = %addr, client_certs = a.tls_ca.is_some(), "docker api: listening (tls)");
    } else if let Some(addr) = a.docker_listen {
        // Whoever reaches the API is root here: without TLS, only this host may.
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "--docker-listen {addr}: only a loopback address is allowed without TLS (the API gives root; give --tls-cert and --tls-key)"
            );
        }
        let l = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("--docker-listen {addr}"))?;
        let shutdown = stopped();
        tasks.push(rt.spawn(async move {
            if let Err(e) = dockerapi::serve_tcp(api, l, shutdown).await {
                tracing::error!(error = %e, "docker api (tcp) failed");
            }
        }));
        tracing::info!(listen = %addr, "docker api: listening");
    }
    Ok(Some(DockerRun {
        rt,
        stop: tx,
        tasks,
        socket: a.docker_socket.clone(),
    }))
}

/// The gateway's tokio runtime and its serve task.
struct GatewayRun {
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayRun {
    fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.rt.block_on(self.task);
    }
}

/// The static agent for stdio-mode instances, copied into `<runroot>/functions/.agent/`
/// (the directory bind-mounted into instances); `None` (with a warning) when there is none.
fn stage_agent(g: &Globals, a: &Args) -> Option<std::path::PathBuf> {
    let src = a
        .agent
        .clone()
        .or_else(|| {
            std::env::var_os("BERTH_AGENT")
                .filter(|v| !v.is_empty())
                .map(Into::into)
        })
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .map(|e| e.with_file_name("berth-agent"))
        })?;
    if let Err(e) = gateway::instance::check_static(&src) {
        tracing::warn!(agent = %src.display(), error = %e, "stdio-mode functions cannot run");
        return None;
    }
    let dir = g.runroot.join("functions").join(".agent");
    let dst = dir.join("berth-agent");
    let tmp = dir.join(".berth-agent.tmp");
    let staged = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::copy(&src, &tmp))
        .and_then(|_| std::fs::rename(&tmp, &dst));
    match staged {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(agent = %src.display(), error = %e, "stage the agent");
            None
        }
    }
}

fn start_gateway(g: &Globals, a: &Args, listen: std::net::SocketAddr) -> Result<GatewayRun> {
    // Before any thread exists: unshare(CLONE_NEWNS) needs a single-threaded process.
    engine::container::private_mount_namespace()?;
    nix::sys::prctl::set_child_subreaper(true).context("become a child subreaper")?;
    let body_limit = engine::spec::parse_bytes(&a.body_limit)
        .map_err(|e| anyhow::anyhow!("--body-limit {:?}: {e}", a.body_limit))?;
    let host = gateway::instance::Host {
        root: g.root.clone(),
        runroot: g.runroot.clone(),
        runtime: crate::cmd::run::runtime_bin()?,
        agent_dir: stage_agent(g, a),
        start_timeout: gateway::def::parse_duration("--start-timeout", &a.start_timeout)?,
        spares: !a.no_spare_instances,
    };
    let async_cfg = gateway::AsyncConfig {
        allow_callback_hosts: a
            .allow_callback_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        max_attempts: a.async_attempts,
        ..gateway::AsyncConfig::default()
    };
    let gw = gateway::Gateway::with_async(host, body_limit.max(0) as usize, async_cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("listen on {listen}"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(gw.serve(listener, async {
        let _ = rx.await;
    }));
    tracing::info!(listen = %listen, "function gateway: listening");
    Ok(GatewayRun {
        rt,
        stop: Some(tx),
        task,
    })
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let engine = g.engine()?;
    // Blocked before the gateway's threads exist, so they inherit the mask and the signals
    // reach only the signalfd.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().context("block signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let gw = match a.listen {
        Some(addr) => Some(start_gateway(g, &a, addr)?),
        None => None,
    };
    let docker = start_docker(g, &a)?;
    let r = reconcile_loop(g, &a, &engine, &sfd);
    if let Some(d) = docker {
        d.stop();
        tracing::info!("docker api: stopped");
    }
    if let Some(gw) = gw {
        gw.stop();
        tracing::info!("function gateway: stopped");
    }
    r
}

fn reconcile_loop(g: &Globals, a: &Args, engine: &engine::Engine, sfd: &SignalFd) -> Result<()> {
    tracing::info!(root = %g.root.display(), interval = a.interval, "berth serve: started");
    let interval = Duration::from_secs(a.interval);
    let mut startup = true;
    loop {
        match engine.revive(startup) {
            Ok(names) if !names.is_empty() => {
                tracing::info!(containers = ?names, startup, "restarted containers")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconcile pass failed"),
        }
        startup = false;
        let next = Instant::now() + interval;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let ms = left.as_millis().clamp(1, 60_000) as u16;
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e).context("poll"),
            }
            let mut now = false;
            while let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => now = true,
                    Ok(s) => {
                        tracing::info!(signal = %s, "berth serve: stopping");
                        return Ok(());
                    }
                    Err(_) => {}
                }
            }
            if now {
                break;
            }
        }
    }
}
