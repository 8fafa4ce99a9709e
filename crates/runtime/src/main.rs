//! `berth-runtime`: the runc command line over berth's runtime library.
#![forbid(unsafe_code)]

use berth_runtime::container::{self, create::CreateOpts, exec::ExecOpts};
use berth_runtime::error::{Error, Result};
use berth_runtime::state::Store;
use berth_runtime::{config, exe_guard, features, log, spec_default};
use clap::{Parser, Subcommand};
use oci_spec::runtime::LinuxResources;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "berth-runtime", version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.2.0"), about = "berth's OCI runtime (runc command line)")]
struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    root: PathBuf,
    /// Log file (errors and warnings are also printed to stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; cgroupfs is used.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true)]
    criu: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Bundle directory (holds config.json).
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    id: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container (its process waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container; in the foreground, wait and pass its exit status.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        #[arg(long, short = 'd')]
        detach: bool,
        /// Keep the stopped container (do not delete it) after a foreground run.
        #[arg(long = "keep")]
        keep: bool,
    },
    /// Print the OCI state of a container.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container.
    Kill {
        id: String,
        signal: Option<String>,
        #[arg(long, short = 'a')]
        all: bool,
    },
    /// Delete a container.
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Run a new process in a running container.
    Exec {
        #[arg(long, short = 'p')]
        process: Option<PathBuf>,
        #[arg(long, short = 't')]
        tty: bool,
        #[arg(long, short = 'd')]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long, short = 'e')]
        env: Vec<String>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(long, short = 'u')]
        user: Option<String>,
        #[arg(long = "additional-gids", short = 'g')]
        additional_gids: Vec<u32>,
        #[arg(long, short = 'c')]
        cap: Vec<String>,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        #[arg(long = "process-label")]
        process_label: Option<String>,
        #[arg(long)]
        apparmor: Option<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List containers.
    List {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// List the processes of a container.
    Ps {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the resources of a container.
    Update {
        /// JSON LinuxResources file, or - for stdin.
        #[arg(long, short = 'r')]
        resources: Option<PathBuf>,
        #[arg(long)]
        memory: Option<i64>,
        #[arg(long = "memory-reservation")]
        memory_reservation: Option<i64>,
        #[arg(long = "memory-swap")]
        memory_swap: Option<i64>,
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<u64>,
        #[arg(long = "cpu-quota")]
        cpu_quota: Option<i64>,
        #[arg(long = "cpu-period")]
        cpu_period: Option<u64>,
        #[arg(long = "cpuset-cpus")]
        cpuset_cpus: Option<String>,
        #[arg(long = "cpuset-mems")]
        cpuset_mems: Option<String>,
        #[arg(long = "pids-limit")]
        pids_limit: Option<i64>,
        #[arg(long = "blkio-weight")]
        blkio_weight: Option<u16>,
        id: String,
    },
    /// Print the features this runtime implements (JSON).
    Features,
    /// Write a default config.json.
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
    },
}

fn create_opts(c: &CreateArgs) -> CreateOpts {
    CreateOpts {
        no_new_keyring: c.no_new_keyring,
        id: c.id.clone(),
        bundle: c.bundle.clone(),
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        no_pivot: c.no_pivot,
        preserve_fds: c.preserve_fds,
        foreground: false,
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn run(cli: Cli) -> Result<i32> {
    let store = Store::new(&cli.root);
    log::debug(&format!("root {}: {:?}", cli.root.display(), cli.cmd));
    match cli.cmd {
        Cmd::Create(c) => {
            container::create::create(&store, &create_opts(&c))?;
        }
        Cmd::Run { c, detach, keep } => {
            return container::run::run(&store, &create_opts(&c), detach, keep);
        }
        Cmd::Start { id } => container::start::start(&store, &id)?,
        Cmd::State { id } => {
            let st = store.load(&id)?;
            print_json(&st.oci(berth_runtime::state::status(&store, &st)));
        }
        Cmd::Kill { id, signal, all } => {
            let sig = container::kill::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            container::kill::kill(&store, &id, sig, all)?;
        }
        Cmd::Delete { force, id } => container::delete::delete(&store, &id, force)?,
        Cmd::Exec {
            process,
            tty,
            detach,
            pid_file,
            console_socket,
            env,
            cwd,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            process_label,
            apparmor,
            id,
            command,
        } => {
            exe_guard::ensure()?;
            let o = ExecOpts {
                id,
                process_file: process,
                args: command,
                env,
                cwd,
                user,
                additional_gids,
                tty,
                console_socket,
                detach,
                pid_file,
                caps: cap,
                no_new_privs,
                preserve_fds,
                apparmor,
                process_label,
            };
            return container::exec::exec(&store, &o);
        }
        Cmd::List { format, quiet } => {
            let states = container::list::list(&store);
            if quiet {
                states
                    .iter()
                    .for_each(|s| println!("{}", s["id"].as_str().unwrap_or_default()));
            } else if format == "json" {
                println!("{}", serde_json::Value::Array(states));
            } else {
                println!(
                    "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                );
                for s in &states {
                    println!(
                        "{:<24} {:<8} {:<10} {:<40} {:<32} {}",
                        s["id"].as_str().unwrap_or_default(),
                        s["pid"],
                        s["status"].as_str().unwrap_or_default(),
                        s["bundle"].as_str().unwrap_or_default(),
                        s["created"].as_str().unwrap_or_default(),
                        s["owner"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = container::list::pids(&store, &id)?;
            if format == "json" {
                println!("{}", serde_json::json!(pids));
            } else {
                print!("{}", container::list::ps_table(&pids, &ps_args)?);
            }
        }
        Cmd::Pause { id } => container::pause::pause(&store, &id)?,
        Cmd::Resume { id } => container::pause::resume(&store, &id)?,
        Cmd::Update {
            resources,
            memory,
            memory_reservation,
            memory_swap,
            cpu_shares,
            cpu_quota,
            cpu_period,
            cpuset_cpus,
            cpuset_mems,
            pids_limit,
            blkio_weight,
            id,
        } => {
            let mut r: serde_json::Value = match &resources {
                Some(p) => {
                    let bytes = if p.as_os_str() == "-" {
                        let mut b = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                            .map_err(|e| Error::Usage(format!("read stdin: {e}")))?;
                        b
                    } else {
                        std::fs::read(p).map_err(|e| {
                            Error::Usage(format!("--resources {}: {e}", p.display()))
                        })?
                    };
                    config::parse_json::<serde_json::Value>("resources", &bytes)?
                }
                None => serde_json::json!({}),
            };
            if !r.is_object() {
                return Err(Error::Usage(
                    "--resources: the document must be a JSON object (linux.resources)".into(),
                ));
            }
            let mut set = |section: &str, key: &str, v: serde_json::Value| {
                if !r[section].is_object() {
                    r[section] = serde_json::json!({});
                }
                r[section][key] = v;
            };
            if let Some(v) = memory {
                set("memory", "limit", v.into())
            }
            if let Some(v) = memory_reservation {
                set("memory", "reservation", v.into())
            }
            if let Some(v) = memory_swap {
                set("memory", "swap", v.into())
            }
            if let Some(v) = cpu_shares {
                set("cpu", "shares", v.into())
            }
            if let Some(v) = cpu_quota {
                set("cpu", "quota", v.into())
            }
            if let Some(v) = cpu_period {
                set("cpu", "period", v.into())
            }
            if let Some(v) = cpuset_cpus {
                set("cpu", "cpus", v.into())
            }
            if let Some(v) = cpuset_mems {
                set("cpu", "mems", v.into())
            }
            if let Some(v) = pids_limit {
                set("pids", "limit", v.into())
            }
            if let Some(v) = blkio_weight {
                set("blockIO", "weight", v.into())
            }
            let bytes = serde_json::to_vec(&r).unwrap_or_default();
            let res: LinuxResources = config::parse_json("resources", &bytes)?;
            container::update::update(&store, &id, &res)?;
        }
        Cmd::Features => print_json(&features::features()),
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::Usage(format!("{} already exists", path.display())));
            }
            let rootless = cli.rootless.as_deref().is_some_and(|r| r == "true")
                || !nix::unistd::geteuid().is_root();
            let body = serde_json::to_string_pretty(&spec_default::default_spec(rootless))
                .unwrap_or_default();
            std::fs::write(&path, body + "\n")
                .map_err(|e| Error::Usage(format!("write {}: {e}", path.display())))?;
        }
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    log::init(cli.log.clone(), cli.log_format == "json", cli.debug);
    let _ = cli.systemd_cgroup;
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            log::error(&e.to_string());
            std::process::exit(1);
        }
    }
}
