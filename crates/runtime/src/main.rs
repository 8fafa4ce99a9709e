//! `berth-runtime`: the runc command line over berth's runtime library.
#![forbid(unsafe_code)]

mod cli;

use berth_runtime::container;
use berth_runtime::error::{Error, Result};
use berth_runtime::state::Store;
use berth_runtime::{config, exe_guard, features, log, spec_default};
use cli::{Cmd, Global, Parsed};
use oci_spec::runtime::LinuxResources;

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn run(g: Global, cmd: Cmd) -> Result<i32> {
    let store = Store::new(&g.root);
    log::debug(&format!("root {}: {:?}", g.root.display(), cmd));
    match cmd {
        Cmd::Create(mut c) => {
            c.systemd_cgroup = g.systemd_cgroup;
            container::create::create(&store, &c)?;
        }
        Cmd::Run {
            mut c,
            detach,
            keep,
        } => {
            c.systemd_cgroup = g.systemd_cgroup;
            return container::run::run(&store, &c, detach, keep);
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
        Cmd::Exec(e) => {
            exe_guard::ensure()?;
            return container::exec::exec(&store, &e);
        }
        Cmd::List { json, quiet } => {
            let states = container::list::list(&store);
            if quiet {
                states
                    .iter()
                    .for_each(|s| println!("{}", s["id"].as_str().unwrap_or_default()));
            } else if json {
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
        Cmd::Ps { json, id, ps_args } => {
            let pids = container::list::pids(&store, &id)?;
            if json {
                println!("{}", serde_json::json!(pids));
            } else {
                print!("{}", container::list::ps_table(&pids, &ps_args)?);
            }
        }
        Cmd::Pause { id } => container::pause::pause(&store, &id)?,
        Cmd::Resume { id } => container::pause::resume(&store, &id)?,
        Cmd::Update(u) => {
            let mut r: serde_json::Value = match &u.resources {
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
            for (section, key, v) in u.values {
                if !r[section].is_object() {
                    r[section] = serde_json::json!({});
                }
                r[section][key] = v;
            }
            let bytes = serde_json::to_vec(&r).unwrap_or_default();
            let res: LinuxResources = config::parse_json("resources", &bytes)?;
            container::update::update(&store, &u.id, &res)?;
        }
        Cmd::Events {
            id,
            stats,
            interval,
        } => container::events::events(&store, &id, stats, interval)?,
        Cmd::Features => print_json(&features::features()),
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::Usage(format!("{} already exists", path.display())));
            }
            let rootless = g.rootless.as_deref().is_some_and(|r| r == "true")
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
    let (g, cmd) = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(g, cmd)) => (g, cmd),
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("berth-runtime: error: {e}");
            std::process::exit(2);
        }
    };
    log::init(g.log.clone(), g.json_log, g.debug);
    match run(g, cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            log::error(&e.to_string());
            std::process::exit(1);
        }
    }
}
