//! `berth`: the user-facing binary. One file per subcommand under `cmd/`; the only crate
//! that uses `anyhow`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "berth: run isolated workloads (containers and images today; registry, functions and microVMs as they land)"
)]
struct Cli {
    /// Where images, layers and containers are stored.
    #[arg(long, global = true, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// Where runtime state lives (tmpfs).
    #[arg(long, global = true, default_value = "/run/berth")]
    runroot: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Paths every command gets.
#[derive(Debug, Clone)]
pub struct Globals {
    pub root: PathBuf,
    pub runroot: PathBuf,
}

impl Globals {
    /// Opens the image store at `--root`.
    pub fn store(&self) -> anyhow::Result<image::ImageStore> {
        image::ImageStore::open(&self.root)
            .map_err(|e| anyhow::anyhow!("open the store at {}: {e}", self.root.display()))
    }

    /// The engine over `--root`/`--runroot`, with berth-runtime and berth-monitor found
    /// next to this executable (or `$BERTH_RUNTIME`, `$BERTH_MONITOR`).
    pub fn engine(&self) -> anyhow::Result<engine::Engine> {
        Ok(engine::Engine {
            root: self.root.clone(),
            runroot: self.runroot.clone(),
            runtime: cmd::run::runtime_bin()?,
            monitor: cmd::run::monitor_bin()?,
        })
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make an OCI bundle from a static busybox, ready for `berth-runtime run`.
    Bundle(cmd::bundle::Args),
    /// Run a command in a new container from an image (in the foreground, or `-d`).
    Run(Box<cmd::run::Args>),
    /// Create a container (started later with `berth start`).
    Create(Box<cmd::run::Args>),
    /// Start created or stopped containers.
    Start(cmd::start::Args),
    /// Stop running containers (stop signal, then SIGKILL after the timeout).
    Stop(cmd::stop::Args),
    /// Restart containers.
    Restart(cmd::restart::Args),
    /// Send a signal to containers.
    Kill(cmd::kill::Args),
    /// Remove containers.
    Rm(cmd::rm::Args),
    /// List containers.
    Ps(cmd::ps::Args),
    /// Show a container's output.
    Logs(cmd::logs::Args),
    /// Wait for containers to stop; print their exit codes.
    Wait(cmd::wait::Args),
    /// Run a command in a running container.
    Exec(cmd::exec::Args),
    /// Pause every process of containers (the cgroup freezer).
    Pause(cmd::pause::Args),
    /// Unpause paused containers.
    Unpause(cmd::pause::Args),
    /// Rename a container.
    Rename(cmd::rename::Args),
    /// Show a container's processes (ps options, default -ef).
    Top(cmd::top::Args),
    /// Live resource use of containers (CPU, memory, network and block I/O, PIDs).
    Stats(cmd::stats::Args),
    /// A container's published ports (berth has no networks yet: always none).
    Port(cmd::port::Args),
    /// Follow a running container's output until it ends (stdin is not attached).
    Attach(cmd::attach::Args),
    /// Load images from an oci-archive, an OCI layout directory or a docker-archive.
    Load(cmd::load::Args),
    /// Save images to an oci-archive or a docker-archive.
    Save(cmd::save::Args),
    /// Make an image of one layer from a root filesystem tarball.
    Import(cmd::import::Args),
    /// List images.
    Images(cmd::images::Args),
    /// Give an image another name.
    Tag(cmd::tag::Args),
    /// Remove images (by name, ID or digest).
    Rmi(cmd::rmi::Args),
    /// Show an image's manifest and configuration.
    Inspect(cmd::inspect::Args),
    /// Show an image's history.
    History(cmd::history::Args),
    /// Manage images (`berth image prune`, `berth image ls`).
    Image(cmd::image::Args),
    /// Manage containers (`berth container prune`).
    Container(cmd::container::Args),
    /// System information and cleanup (`berth system df`, `berth system prune`).
    System(cmd::system::Args),
    /// Build an image from a Containerfile (or Dockerfile).
    Build(cmd::build::Args),
    /// Run an OCI Distribution registry (`serve`) or collect its garbage (`gc`).
    Registry(cmd::registry::Args),
    /// Push an image (or an OCI image layout) to a registry.
    Push(cmd::transfer::PushArgs),
    /// Pull an image from a registry (into the image store, or an OCI image layout).
    Pull(cmd::transfer::PullArgs),
    /// Store credentials for a registry in ~/.config/berth/auth.json.
    Login(cmd::transfer::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(cmd::transfer::LogoutArgs),
    /// Run the engine's long-running process (restarts containers whose monitor died).
    Serve(cmd::serve::Args),
    /// MicroVMs: run, list, stop, pause, snapshot and restore KVM virtual machines.
    Vm(cmd::vm::Args),
    /// Manage volumes (create, ls, inspect, rm, prune).
    Volume(cmd::volume::Args),
    /// Manage networks (create, ls, inspect, rm, prune, connect, disconnect).
    Network(cmd::network::Args),
    /// Manage pods: containers sharing network, IPC and UTS namespaces (create, ls, inspect,
    /// start, stop, restart, kill, pause, unpause, rm, logs, top, stats, prune, update).
    Pod(cmd::pod::Args),
    /// Publish host ports over a set of containers, round-robin (publish, rm, ls, inspect).
    Service(cmd::service::Args),
    /// Copy files and directories between a container and the host.
    Cp(cmd::cp::Args),
    /// Functions: deploy, ls, inspect, rm, scale, invoke, logs (served by `serve --listen`).
    #[command(name = "fn")]
    Function(cmd::function::Args),
    /// Kubernetes YAML: play (create pods, containers, volumes, services), down, generate.
    Kube(cmd::kube::Args),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Listing commands end quietly when their reader goes away (`berth images | head`).
    // Everything else keeps SIGPIPE ignored: `run` must always get to clean up, and a
    // registry client or server must see a dropped connection as an error (EPIPE) it can
    // retry, not die of it.
    if matches!(
        cli.cmd,
        Cmd::Images(_)
            | Cmd::Inspect(_)
            | Cmd::History(_)
            | Cmd::Image(_)
            | Cmd::System(_)
            | Cmd::Ps(_)
            | Cmd::Logs(_)
            | Cmd::Top(_)
            | Cmd::Stats(_)
            | Cmd::Attach(_)
    ) {
        let _ = sys::signal::default_sigpipe();
    }
    let g = Globals {
        root: cli.root,
        runroot: cli.runroot,
    };
    let r = match cli.cmd {
        Cmd::Bundle(a) => cmd::bundle::run(a).map(|()| 0),
        Cmd::Run(a) => cmd::run::run(&g, *a),
        Cmd::Create(a) => cmd::create::run(&g, *a).map(|()| 0),
        Cmd::Start(a) => cmd::start::run(&g, a),
        Cmd::Stop(a) => cmd::stop::run(&g, a).map(|()| 0),
        Cmd::Restart(a) => cmd::restart::run(&g, a).map(|()| 0),
        Cmd::Kill(a) => cmd::kill::run(&g, a).map(|()| 0),
        Cmd::Rm(a) => cmd::rm::run(&g, a).map(|()| 0),
        Cmd::Ps(a) => cmd::ps::run(&g, a).map(|()| 0),
        Cmd::Logs(a) => cmd::logs::run(&g, a).map(|()| 0),
        Cmd::Wait(a) => cmd::wait::run(&g, a).map(|()| 0),
        Cmd::Exec(a) => cmd::exec::run(&g, a),
        Cmd::Pause(a) => cmd::pause::pause(&g, a).map(|()| 0),
        Cmd::Unpause(a) => cmd::pause::unpause(&g, a).map(|()| 0),
        Cmd::Rename(a) => cmd::rename::run(&g, a).map(|()| 0),
        Cmd::Top(a) => cmd::top::run(&g, a).map(|()| 0),
        Cmd::Stats(a) => cmd::stats::run(&g, a).map(|()| 0),
        Cmd::Port(a) => cmd::port::run(&g, a).map(|()| 0),
        Cmd::Attach(a) => cmd::attach::run(&g, a),
        Cmd::Load(a) => cmd::load::run(&g, a).map(|()| 0),
        Cmd::Save(a) => cmd::save::run(&g, a).map(|()| 0),
        Cmd::Import(a) => cmd::import::run(&g, a).map(|()| 0),
        Cmd::Images(a) => cmd::images::run(&g, a).map(|()| 0),
        Cmd::Tag(a) => cmd::tag::run(&g, a).map(|()| 0),
        Cmd::Rmi(a) => cmd::rmi::run(&g, a).map(|()| 0),
        Cmd::Inspect(a) => cmd::inspect::run(&g, a).map(|()| 0),
        Cmd::History(a) => cmd::history::run(&g, a).map(|()| 0),
        Cmd::Image(a) => cmd::image::run(&g, a).map(|()| 0),
        Cmd::System(a) => cmd::system::run(&g, a).map(|()| 0),
        Cmd::Container(a) => cmd::container::run(&g, a).map(|()| 0),
        Cmd::Build(a) => cmd::build::run(&g, a).map(|()| 0),
        Cmd::Registry(a) => cmd::registry::run(a).map(|()| 0),
        Cmd::Push(a) => cmd::transfer::push(&g, a).map(|()| 0),
        Cmd::Pull(a) => cmd::transfer::pull(&g, a).map(|()| 0),
        Cmd::Login(a) => cmd::transfer::login(a).map(|()| 0),
        Cmd::Logout(a) => cmd::transfer::logout(a).map(|()| 0),
        Cmd::Vm(a) => cmd::vm::run(a).map(|()| 0),
        Cmd::Serve(a) => cmd::serve::run(&g, a).map(|()| 0),
        Cmd::Volume(a) => cmd::volume::run(&g, a).map(|()| 0),
        Cmd::Network(a) => cmd::network::run(&g, a).map(|()| 0),
        Cmd::Pod(a) => cmd::pod::run(&g, a).map(|()| 0),
        Cmd::Service(a) => cmd::service::run(&g, a).map(|()| 0),
        Cmd::Cp(a) => cmd::cp::run(&g, a).map(|()| 0),
        Cmd::Function(a) => cmd::function::run(&g, a),
        Cmd::Kube(a) => cmd::kube::run(&g, a).map(|()| 0),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the message, then each cause it does not already spell out.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("berth: {msg}");
            // 125 is what docker and podman return when the engine itself fails.
            std::process::exit(125);
        }
    }
}
