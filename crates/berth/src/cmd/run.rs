//! `berth run [OPTIONS] IMAGE [CMD…]`: a container from an image.
//!
//! In the foreground (run_fg.rs) and with `-d` (and `berth create`) it goes through the
//! engine: a row in its database, a directory under `containers/<id>/` and a monitor that
//! outlives this command (crates/engine); in the foreground this command is attached to
//! the monitor until the container exits, as Docker's CLI is to dockerd.
//!
//! `BERTH_RUN_DIRECT=1` keeps the direct path (this file): no monitor and no row; the
//! container's directory `<root>/containers/<name>/` is the OCI bundle: `config.json`,
//! `upper/` and `work/` of the overlay of the image's layer snapshots (mounted on
//! `<root>/mnt` inside a private mount namespace of this process; or a merged copy in
//! `rootfs/`), and `chains.json` (the snapshots it uses, kept by gc). `berth-runtime run`
//! runs it; berth forwards signals to it, passes its exit status through and, with `--rm`,
//! removes the directory. `owner.json` says which berth runs it, so a later command can
//! finish the `--rm` of a killed one and `ps` can list it (container.rs); names are shared
//! with the engine's containers. Both paths build config.json with `engine::spec`.

use super::run_tty;
use crate::Globals;
use anyhow::{bail, Context, Result};
use engine::spec::{self as run_spec, Opts};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// Remove the container's directory (its writable layer) when it exits (detached:
    /// its monitor does, with its anonymous volumes).
    #[arg(long)]
    pub rm: bool,
    /// Run in the background under the engine (a monitor process), print its ID.
    #[arg(short, long)]
    pub detach: bool,
    /// Restart policy of a detached container: no, on-failure[:N], always, unless-stopped.
    /// Default no (a pod's member: the pod's restart policy).
    #[arg(long)]
    restart: Option<String>,
    /// Set a label (`K=V`).
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// The signal `stop` sends first (default TERM).
    #[arg(long)]
    stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[arg(long)]
    stop_timeout: Option<u64>,
    /// Container name (default: a random ID).
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (`K=V`, or `K` to copy it from here).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (`K=V` lines).
    #[arg(long)]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// `user[:group]` (names or numbers).
    #[arg(short, long)]
    user: Option<String>,
    /// Override the image's entrypoint (`""` clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount `HOST:CONTAINER[:ro]`.
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Memory limit (`512m`, `1g`).
    #[arg(short, long)]
    memory: Option<String>,
    /// CPU limit in CPUs (`0.5`).
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes.
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Container hostname (default: the ID's first 12 characters).
    #[arg(long)]
    hostname: Option<String>,
    /// Run an init (berth-init, bound at /dev/init) as PID 1: it forwards signals to the
    /// command and reaps zombies (Docker's tini).
    #[arg(long)]
    init: bool,
    /// With -it in the foreground: the keys that detach, leaving the container running
    /// (`ctrl-p,ctrl-q`; a character or `ctrl-X`, comma-separated).
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Give the container a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Add a capability to the default set (`NET_ADMIN`, `CAP_SYS_ADMIN`, `ALL`); the
    /// seccomp profile follows it (e.g. `SYS_ADMIN` allows mount and unshare).
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop a capability from the default set (`ALL` drops them all).
    #[arg(long)]
    cap_drop: Vec<String>,
    /// `seccomp=unconfined`, `seccomp=PROFILE.json` (Docker's profile format),
    /// `no-new-privileges[=true|false]`.
    #[arg(long)]
    security_opt: Vec<String>,
    /// Health check command of a detached container (run by `/bin/sh -c` in it).
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between health checks (`30s`, `500ms`, `1m30s`; default 30s).
    #[arg(long)]
    health_interval: Option<String>,
    /// Longest a health check may run before it is killed and counts as failed (default 30s).
    #[arg(long)]
    health_timeout: Option<String>,
    /// Consecutive failures that make the container unhealthy (default 3).
    #[arg(long, allow_negative_numbers = true)]
    health_retries: Option<i64>,
    /// Time after the start during which failed checks do not count (default 0s).
    #[arg(long)]
    health_start_period: Option<String>,
    /// Disable any health check, the image's too.
    #[arg(long)]
    no_healthcheck: bool,
    #[command(flatten)]
    probe: super::probe_flags::ProbeFlags,
    /// Keep stdin open: attached in the foreground (closed at its end), held by the
    /// monitor of a detached container for `attach`. Without it the container reads
    /// /dev/null, as Docker's.
    #[arg(short, long)]
    pub interactive: bool,
    /// A mount: `type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]`.
    #[arg(long)]
    mount: Vec<String>,
    /// A tmpfs: `/path[:size=…,mode=…]`.
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Queue a detached container until the node has room for its --memory/--cpus.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (default: wait forever).
    #[arg(long, requires = "wait")]
    pub wait_timeout: Option<u64>,
    /// Log options of a detached container: `max-size=10m`, `max-file=3` (the json-file
    /// log is rotated at max-size, keeping max-file files).
    #[arg(long)]
    log_opt: Vec<String>,
    /// The network: bridge (the default network `berth`), a network's name, none, host,
    /// or container:CTR (another container's).
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// Publish a port: `[HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]`, ranges `8000-8001:80-81`.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish every port the image exposes on an ephemeral host port.
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// The container's IPv4 address on its network.
    #[arg(long)]
    ip: Option<String>,
    /// The container's MAC address (`02:42:0a:00:00:09`).
    #[arg(long)]
    mac_address: Option<String>,
    /// Another name of the container on its (user) network.
    #[arg(long = "network-alias")]
    network_alias: Vec<String>,
    /// A name server for the container's resolv.conf.
    #[arg(long)]
    dns: Vec<String>,
    /// An `/etc/hosts` entry `NAME:IP`.
    #[arg(long)]
    add_host: Vec<String>,
    /// Join a pod (name or ID; `berth pod create`): its network, IPC and UTS namespaces
    /// (and PID with its `--share pid`); its ports are the pod's.
    #[arg(long)]
    pod: Option<String>,
    /// The image (name, ID or digest).
    image: String,
    /// The command and its arguments (default: the image's).
    command: Vec<String>,
}

/// The runtime binary: `$BERTH_RUNTIME`, else `berth-runtime` next to this executable.
pub fn runtime_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_RUNTIME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locate the berth executable")?;
    let p = exe.with_file_name("berth-runtime");
    if !p.is_file() {
        bail!(
            "{} not found: build it (cargo build) or set BERTH_RUNTIME",
            p.display()
        );
    }
    Ok(p)
}

/// The monitor binary: `$BERTH_MONITOR`, else `berth-monitor` next to this executable.
pub fn monitor_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_MONITOR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locate the berth executable")?;
    // Checked when a container starts (engine::Engine::start), not by every command.
    Ok(exe.with_file_name("berth-monitor"))
}

fn random_id() -> String {
    let seed = format!(
        "{}-{:?}-{:?}",
        std::process::id(),
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    content::Digest::sha256(seed.as_bytes()).hex()[..12].to_string()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Undoes what a run set up, on every path out.
struct Cleanup {
    dir: PathBuf,
    rootfs: Option<image::Rootfs>,
    remove: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(r) = self.rootfs.take() {
            if let Err(e) = r.unmount() {
                eprintln!("berth: unmount {}: {e}", r.path.display());
            }
        }
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    // From here on SIGINT/SIGTERM wait (and are forwarded to the container once it runs),
    // so an interrupted run still unmounts and cleans up.
    runtime::container::block_signals().map_err(|e| anyhow::anyhow!("{e}"))?;
    engine::trace::stage("run");
    let store = g.store()?;
    // What a killed `berth run --rm` left behind goes now (its --rm, late).
    super::container::remove_ended(g, false)?;
    if a.detach {
        let wait = a
            .wait
            .then(|| a.wait_timeout.map(std::time::Duration::from_secs));
        let c = create(g, a)?;
        match wait {
            Some(t) => g.engine()?.start_waiting(&c.id, t)?,
            None => g.engine()?.start(&c.id)?,
        };
        println!("{}", c.id);
        engine::trace::stage("run:done");
        return Ok(0);
    }
    if std::env::var_os("BERTH_RUN_DIRECT").is_none() {
        return super::run_fg::run(g, a);
    }
    let wants_net = a.network.as_deref().is_some_and(|n| n != "none")
        || !a.publish.is_empty()
        || a.publish_all
        || a.ip.is_some()
        || a.mac_address.is_some()
        || !a.network_alias.is_empty();
    if wants_net {
        bail!("--network, -p, -P, --ip, --mac-address and --network-alias are not supported with BERTH_RUN_DIRECT=1 (the direct path has no network)");
    }
    let img = store.resolve(&a.image)?;
    let id = a.name.clone().unwrap_or_else(random_id);
    if !valid_name(&id) {
        bail!("invalid container name {id:?} ([a-zA-Z0-9][a-zA-Z0-9_.-]*)");
    }
    // Names are shared with the engine's containers (`ps` lists those).
    let eng = g.engine()?;
    if let Some(c) = eng.list(true)?.into_iter().find(|c| c.name == id) {
        bail!(
            "container name {id:?} is already in use by container {} (berth ps -a)",
            c.short_id()
        );
    }
    let dir = g.root.join("containers").join(&id);
    // create_dir (not _all) claims the name atomically.
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "container name {id:?} is already in use ({})",
            dir.display()
        ),
        _ => anyhow::anyhow!("create {}: {e}", dir.display()),
    })?;
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        rootfs: None,
        remove: true,
    };
    // What `ps` shows of it (the image's entrypoint and cmd as the options change them).
    let command = run_spec::process_args(
        &img.config,
        &Opts {
            entrypoint: a.entrypoint.clone(),
            cmd: a.command.clone(),
            ..Default::default()
        },
    );
    let info = super::container::RunInfo {
        image: &a.image,
        command,
    };
    super::container::record_owner(&dir, a.rm, &g.runroot, info)?;
    let layers = img.layers()?;
    // The overlay is mounted in a private mount namespace of this process (the runtime
    // inherits it), on `<root>/mnt`: the mount ends with the last process in the namespace,
    // so there is no unmount on the way out (an RCU grace period) and a killed berth leaks
    // no mount into the host. Where that is impossible: mount on the host, unmount after.
    let private = engine::container::private_mount_namespace().is_ok();
    let rootfs = if private {
        store.prepare_rootfs_at(&layers, &dir, &g.root.join("mnt"))
    } else {
        store.prepare_rootfs(&layers, &dir)
    }
    .with_context(|| format!("prepare the rootfs of {}", a.image))?;
    let rootfs_path = rootfs.path.clone();
    if !private {
        cleanup.rootfs = Some(rootfs);
    }
    // Named and anonymous volumes, --mount and --tmpfs (engine::volumes); `-v /host:/path`
    // binds stay in opts.volumes.
    let mut volumes = a.volume;
    let mut vspec = engine::ContainerSpec {
        mounts: engine::volumes::parse_cli(&mut volumes, &a.mount, &a.tmpfs)?,
        ..Default::default()
    };
    eng.volumes_at_create(&[], &mut vspec)?;
    let opts = Opts {
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        entrypoint: a.entrypoint,
        cmd: a.command,
        volumes,
        read_only: a.read_only,
        memory: a.memory,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        hostname: a.hostname.unwrap_or_else(|| id.chars().take(12).collect()),
        tty: a.tty,
        cap_add: a.cap_add,
        cap_drop: a.cap_drop,
        security_opt: a.security_opt,
        init: a.init,
    };
    let mut spec = run_spec::build(&img.config, &opts, &rootfs_path)?;
    spec["root"]["path"] = serde_json::json!(rootfs_path);
    engine::volumes::apply(&eng, &vspec.mounts, &rootfs_path, &mut spec)?;
    if opts.init {
        run_spec::add_init(&mut spec, &run_spec::init_bin()?)?;
    }
    if let Some((rows, cols)) = opts.tty.then(run_tty::size).flatten() {
        spec["process"]["consoleSize"] = serde_json::json!({"height": rows, "width": cols});
    }
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&spec)?)
        .with_context(|| format!("write {}", cfg.display()))?;
    let code = run_runtime(&g.runroot, &dir, &id, a.tty)?;
    if !a.rm {
        if let Err(e) = super::container::record_exit(&dir, code) {
            eprintln!("berth: warning: {e:#}");
        }
    }
    cleanup.remove = a.rm;
    drop(cleanup);
    if a.rm {
        eng.remove_anonymous_volumes(&vspec)?;
    }
    Ok(code)
}

/// `berth create` / `berth run -d`: the engine's container from the command line.
pub fn create(g: &Globals, a: Args) -> Result<engine::Container> {
    let restart: engine::RestartPolicy = a.restart.as_deref().unwrap_or("no").parse()?;
    if a.rm && restart != engine::RestartPolicy::No {
        bail!("conflicting options: --restart {restart} and --rm (a removed container cannot restart)");
    }
    let mut labels = std::collections::BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid label {l:?} (K=V)");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    if let Some(s) = &a.stop_signal {
        engine::types::parse_signal(s)?;
    }
    if a.init {
        // Found now rather than at each start by the monitor (next to berth).
        run_spec::init_bin()?;
    }
    let mut volumes = a.volume;
    let mounts = engine::volumes::parse_cli(&mut volumes, &a.mount, &a.tmpfs)?;
    let mut opts = Opts {
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        entrypoint: a.entrypoint,
        cmd: a.command,
        volumes,
        read_only: a.read_only,
        memory: a.memory,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        hostname: a.hostname.unwrap_or_default(),
        tty: a.tty,
        cap_add: a.cap_add,
        cap_drop: a.cap_drop,
        security_opt: a.security_opt,
        init: a.init,
    };
    run_spec::freeze_env(&mut opts)?;
    let healthcheck = engine::health::HealthFlags {
        cmd: a.health_cmd,
        interval: a.health_interval,
        timeout: a.health_timeout,
        start_period: a.health_start_period,
        retries: a.health_retries,
        none: a.no_healthcheck,
    }
    .to_config()?;
    let network = net_opts(
        a.network,
        &a.publish,
        a.publish_all,
        a.ip,
        a.mac_address,
        a.network_alias,
        &a.dns,
        &a.add_host,
    )?;
    let spec = engine::ContainerSpec {
        image: a.image,
        opts,
        restart,
        labels,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
        healthcheck,
        mounts,
        log_opts: engine::logfiles::LogOpts::parse_args(&a.log_opt)?,
        // Resolved by the engine from the image at create.
        args: Vec::new(),
        interactive: a.interactive,
        auto_remove: a.rm,
        network,
        pod: a.pod,
        infra: false,
        probes: a.probe.probes()?,
        health_on_failure: a.probe.on_failure()?,
        restart_default: a.restart.is_none(),
    };
    Ok(g.engine()?.create(a.name.as_deref(), spec)?)
}

/// `berth-runtime --root RUNROOT/runtime run --bundle DIR ID`, forwarding signals (which
/// the caller has blocked).
fn run_runtime(runroot: &Path, bundle: &Path, id: &str, tty: bool) -> Result<i32> {
    let rt = runtime_bin()?;
    let console = tty.then(|| run_tty::Console::listen(bundle)).transpose()?;
    let mut cmd = Command::new(&rt);
    cmd.arg("--root").arg(runroot.join("runtime")).arg("run");
    if let Some(c) = &console {
        cmd.arg("--console-socket").arg(&c.path);
    }
    // The runtime inherits our blocked signals; it unblocks them for the container's
    // program (process/finalize.rs).
    let child = cmd
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .spawn()
        .with_context(|| format!("run {}", rt.display()))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    match console {
        Some(c) => c.serve().wait(pid),
        None => runtime::container::wait_forwarding(pid).map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// The network flags of `run`/`create`, checked (one clear line for a bad value).
#[allow(clippy::too_many_arguments)]
pub(crate) fn net_opts(
    mode: Option<String>,
    publish: &[String],
    publish_all: bool,
    ip: Option<String>,
    mac: Option<String>,
    aliases: Vec<String>,
    dns: &[String],
    add_host: &[String],
) -> Result<engine::network::NetOpts> {
    let mut ports = Vec::new();
    for p in publish {
        ports.extend(net::ports::parse(p)?);
    }
    let ip = ip
        .map(|s| {
            s.parse::<std::net::Ipv4Addr>()
                .with_context(|| format!("invalid --ip {s:?}: not an IPv4 address"))
        })
        .transpose()?;
    let dns = dns
        .iter()
        .map(|s| {
            s.parse::<std::net::Ipv4Addr>()
                .with_context(|| format!("invalid --dns {s:?}: not an IPv4 address"))
        })
        .collect::<Result<Vec<_>>>()?;
    let add_hosts = add_host
        .iter()
        .map(|h| net::files::parse_add_host(h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(engine::network::NetOpts {
        mode: mode.unwrap_or_default(),
        ip,
        mac,
        aliases,
        dns,
        add_hosts,
        publish: ports,
        publish_all,
    })
}
