//! `berth pod create|ls|inspect|start|stop|restart|kill|pause|unpause|rm|logs|top|stats|
//! prune|update`: the engine's pods (engine::pod), Podman's commands and columns.

use crate::Globals;
use anyhow::{bail, Result};
use clap::Subcommand;
use engine::{Pod, PodSpec, Share};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: PodCmd,
}

#[derive(Subcommand, Debug)]
enum PodCmd {
    /// Create a pod (its infra container holds the shared namespaces; not started).
    Create(Box<CreateArgs>),
    /// List pods.
    #[command(alias = "ps", alias = "list")]
    Ls {
        /// Only the IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Full IDs.
        #[arg(long)]
        no_trunc: bool,
        /// `table` (default) or `json` (one array, Podman's fields).
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show pods as JSON.
    Inspect {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Start pods: the infra, then every container.
    Start {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop pods: the containers (stop signal, SIGKILL after the timeout), then the infra.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u64>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop and start pods.
    Restart {
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u64>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Send a signal to the running containers of pods.
    Kill {
        /// The signal (name or number; default KILL).
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Freeze the running containers of pods.
    Pause {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Thaw the paused containers of pods.
    Unpause {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods: their containers, infra and network (running containers need -f).
    #[command(alias = "remove")]
    Rm {
        /// Stop and remove running containers too.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Print the logs of a pod's containers (each line prefixed with its container's name).
    Logs {
        /// Only this container's (name or ID).
        #[arg(short, long)]
        container: Option<String>,
        /// Keep printing until the containers end.
        #[arg(short, long)]
        follow: bool,
        pod: String,
    },
    /// The processes of a pod's containers.
    Top {
        pod: String,
        /// Options for ps (default -ef).
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        ps_options: Vec<String>,
    },
    /// CPU, memory, network and block I/O of a pod's containers.
    Stats {
        /// Print one sample and exit (the only mode).
        #[arg(long)]
        no_stream: bool,
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table")]
        format: String,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove every pod with no running container.
    Prune {
        /// Accepted for Podman's compatibility (there is no prompt).
        #[arg(short, long)]
        force: bool,
    },
    /// Change a pod: `-p` replaces its published ports, at once if it runs (its
    /// containers are not touched).
    Update {
        /// The pod's published ports (`[HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]`), replacing
        /// all of them.
        #[arg(short = 'p', long = "publish")]
        publish: Vec<String>,
        /// Remove every published port.
        #[arg(long, conflicts_with = "publish")]
        no_publish: bool,
        pod: String,
    },
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The pod's name (default: pod-<ID>).
    #[arg(short, long)]
    name: Option<String>,
    /// Publish a port of the pod: `[HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]`.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// The pod's network: bridge (default), a network's name, none or host.
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// The pod's IPv4 address on its network.
    #[arg(long)]
    ip: Option<String>,
    /// The pod's MAC address.
    #[arg(long)]
    mac_address: Option<String>,
    /// Another name of the pod on its (user) network.
    #[arg(long = "network-alias")]
    network_alias: Vec<String>,
    /// A name server for the pod's resolv.conf.
    #[arg(long)]
    dns: Vec<String>,
    /// An `/etc/hosts` entry `NAME:IP`.
    #[arg(long)]
    add_host: Vec<String>,
    /// The namespaces the containers share: net, ipc, uts, pid (comma-separated; default
    /// net,ipc,uts).
    #[arg(long, default_value = "net,ipc,uts")]
    share: String,
    /// The pod's hostname (default: its name).
    #[arg(long)]
    hostname: Option<String>,
    /// Set a label (`K=V`).
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// Run this image's entrypoint as the infra process (default: berth's own, no image).
    #[arg(long)]
    infra_image: Option<String>,
    /// The infra image's command (words split on white space) instead of its entrypoint.
    #[arg(long)]
    infra_command: Option<String>,
    /// Restart policy of the pod's containers created without one.
    #[arg(long)]
    restart: Option<String>,
}

fn labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid label {l:?} (K=V)");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn ports(publish: &[String]) -> Result<Vec<net::ports::PortMap>> {
    let mut out = Vec::new();
    for p in publish {
        out.extend(net::ports::parse(p)?);
    }
    Ok(out)
}

fn create(g: &Globals, a: CreateArgs) -> Result<()> {
    let share = Share::parse(&a.share)?;
    let network = super::run::net_opts(
        a.network,
        &a.publish,
        false,
        a.ip,
        a.mac_address,
        a.network_alias,
        &a.dns,
        &a.add_host,
    )?;
    let spec = PodSpec {
        hostname: a.hostname,
        labels: labels(&a.label)?,
        network,
        share,
        infra_image: a.infra_image,
        infra_command: a
            .infra_command
            .as_deref()
            .map(|c| c.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        restart: a.restart.as_deref().map(str::parse).transpose()?,
    };
    let p = g.engine()?.pod_create(a.name.as_deref(), spec)?;
    println!("{}", p.id);
    Ok(())
}

/// Podman's `pod inspect` fields (the ones berth has).
fn inspect_json(e: &engine::Engine, p: &Pod) -> Result<serde_json::Value> {
    let status = e.pod_status(p)?;
    let infra = e.pod_infra(p).ok();
    let members = e.pod_members(&p.id)?;
    let mut containers: Vec<serde_json::Value> = Vec::new();
    for c in infra.iter().chain(members.iter()) {
        containers.push(json!({
            "Id": c.id,
            "Name": c.name,
            "State": c.state.as_str(),
        }));
    }
    let ports: Vec<serde_json::Value> = match &infra {
        Some(i) => e
            .published(&i.id)?
            .iter()
            .map(|m| {
                json!({
                    "HostIp": m.host_ip.map(|a| a.to_string()).unwrap_or_default(),
                    "HostPort": m.host_port.to_string(),
                    "ContainerPort": m.ctr_port,
                    "Protocol": m.proto.as_str(),
                })
            })
            .collect(),
        None => vec![],
    };
    Ok(json!({
        "Id": p.id,
        "Name": p.name,
        "Created": p.created,
        "State": status.as_str(),
        "Hostname": p.spec.hostname.clone().unwrap_or_default(),
        "Labels": p.labels,
        "CreateInfra": true,
        "InfraContainerID": p.infra_id,
        "InfraConfig": {
            "PortBindings": ports,
            "Networks": [p.spec.network.mode.clone()],
            "InfraImage": p.spec.infra_image.clone().unwrap_or_default(),
        },
        "SharedNamespaces": p.spec.share.names(),
        "RestartPolicy": p.spec.restart.map(|r| r.to_string()).unwrap_or_default(),
        "NumContainers": containers.len(),
        "Containers": containers,
    }))
}

fn ls(g: &Globals, quiet: bool, no_trunc: bool, format: &str) -> Result<()> {
    let e = g.engine()?;
    let pods = e.pods()?;
    if quiet {
        for p in &pods {
            println!("{}", if no_trunc { &p.id } else { p.short_id() });
        }
        return Ok(());
    }
    match format {
        "json" => {
            let mut out = Vec::new();
            for p in &pods {
                let n = e.pod_members(&p.id)?.len() + usize::from(!p.infra_id.is_empty());
                out.push(json!({
                    "Id": p.id,
                    "Name": p.name,
                    "Status": e.pod_status(p)?.as_str(),
                    "Created": p.created,
                    "InfraId": p.infra_id,
                    "Labels": p.labels,
                    "NumberOfContainers": n,
                    "Networks": [p.spec.network.mode.clone()],
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        "table" => {
            let mut rows = vec![[
                "POD ID".to_string(),
                "NAME".into(),
                "STATUS".into(),
                "CREATED".into(),
                "INFRA ID".into(),
                "# OF CONTAINERS".into(),
            ]];
            for p in &pods {
                let n = e.pod_members(&p.id)?.len() + usize::from(!p.infra_id.is_empty());
                let trunc = |s: &str| -> String {
                    if no_trunc {
                        s.to_string()
                    } else {
                        s.chars().take(12).collect()
                    }
                };
                let created = super::util::parse_rfc3339(&p.created).map_or_else(
                    || "unknown".to_string(),
                    |t| {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0);
                        format!("{} ago", super::ps::human_duration(now - t))
                    },
                );
                rows.push([
                    trunc(&p.id),
                    p.name.clone(),
                    e.pod_status(p)?.to_string(),
                    created,
                    trunc(&p.infra_id),
                    n.to_string(),
                ]);
            }
            for line in super::table::columns(&rows, 2) {
                println!("{line}");
            }
        }
        f => bail!("--format {f:?}: expected table or json"),
    }
    Ok(())
}

/// Writes each complete line with `prefix` before it.
struct Prefixed<'a> {
    prefix: String,
    out: &'a std::sync::Mutex<Box<dyn Write + Send>>,
    buf: Vec<u8>,
}

impl Write for Prefixed<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        while let Some(i) = self.buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let mut o = self
                .out
                .lock()
                .map_err(|_| std::io::Error::other("output lock poisoned"))?;
            o.write_all(self.prefix.as_bytes())?;
            o.write_all(&line)?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let mut o = self
                .out
                .lock()
                .map_err(|_| std::io::Error::other("output lock poisoned"))?;
            o.write_all(self.prefix.as_bytes())?;
            o.write_all(&self.buf)?;
            o.write_all(b"\n")?;
            self.buf.clear();
        }
        self.out
            .lock()
            .map_err(|_| std::io::Error::other("output lock poisoned"))?
            .flush()
    }
}

fn logs(g: &Globals, pod: &str, container: Option<&str>, follow: bool) -> Result<()> {
    let e = g.engine()?;
    let p = e.pod(pod)?;
    let mut members = e.pod_members(&p.id)?;
    if let Some(c) = container {
        let want = e.inspect(c)?;
        if !members.iter().any(|m| m.id == want.id) {
            bail!("container {} is not in pod {}", want.name, p.name);
        }
        members = vec![want];
        let o = engine::logfiles::ReadOpts {
            follow,
            ..Default::default()
        };
        e.print_log(
            &members[0],
            &o,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )?;
        return Ok(());
    }
    let out: std::sync::Mutex<Box<dyn Write + Send>> =
        std::sync::Mutex::new(Box::new(std::io::stdout()));
    let err: std::sync::Mutex<Box<dyn Write + Send>> =
        std::sync::Mutex::new(Box::new(std::io::stderr()));
    let (out, err) = (&out, &err);
    let e = &e;
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = members
            .iter()
            .map(|c| {
                s.spawn(move || -> Result<()> {
                    let o = engine::logfiles::ReadOpts {
                        follow,
                        ..Default::default()
                    };
                    let prefix = format!("{} ", c.name);
                    let mut so = Prefixed {
                        prefix: prefix.clone(),
                        out,
                        buf: Vec::new(),
                    };
                    let mut se = Prefixed {
                        prefix,
                        out: err,
                        buf: Vec::new(),
                    };
                    e.print_log(c, &o, &mut so, &mut se)?;
                    so.flush()?;
                    se.flush()?;
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a log reader panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}

fn top(g: &Globals, pod: &str, ps_options: &[String]) -> Result<()> {
    let e = g.engine()?;
    let members = e.pod_members(pod)?;
    let running: Vec<_> = members
        .iter()
        .filter(|c| c.state == engine::State::Running)
        .collect();
    if running.is_empty() {
        bail!("pod {pod} has no running container");
    }
    let width = running
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("CONTAINER".len());
    let mut header = false;
    for c in running {
        let text = e.top(&c.id, ps_options)?;
        let mut lines = text.lines();
        if let Some(h) = lines.next() {
            if !header {
                println!("{:<width$}  {h}", "CONTAINER");
                header = true;
            }
        }
        for l in lines {
            println!("{:<width$}  {l}", c.name);
        }
    }
    Ok(())
}

fn stats(g: &Globals, pods: &[String], format: &str) -> Result<()> {
    let render: fn(&[engine::stats::Row]) -> String = match format {
        "table" => super::stats::table,
        "json" => super::stats::json,
        f => bail!("--format {f:?}: expected table or json"),
    };
    let e = g.engine()?;
    let mut list = Vec::new();
    for p in pods {
        list.extend(
            e.pod_members(p)?
                .into_iter()
                .filter(|c| c.state.is_active()),
        );
    }
    let (rows, _, _) = e.stats(&list, None, Duration::from_millis(500))?;
    print!("{}", render(&rows));
    Ok(())
}

/// Runs `f` on each pod, printing its id; the first error after trying them all.
fn each(pods: &[String], mut f: impl FnMut(&str) -> Result<Pod>) -> Result<()> {
    let mut first: Option<anyhow::Error> = None;
    for p in pods {
        match f(p) {
            Ok(p) => println!("{}", p.id),
            Err(e) => {
                if first.is_some() {
                    eprintln!("error: {e:#}");
                } else {
                    first = Some(e);
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    let t = |s: Option<u64>| s.map(Duration::from_secs);
    match a.cmd {
        PodCmd::Create(c) => create(g, *c),
        PodCmd::Ls {
            quiet,
            no_trunc,
            format,
        } => ls(g, quiet, no_trunc, &format),
        PodCmd::Inspect { pods } => {
            let mut out = Vec::new();
            for p in &pods {
                out.push(inspect_json(&e, &e.pod(p)?)?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        PodCmd::Start { pods } => each(&pods, |p| Ok(e.pod_start(p)?)),
        PodCmd::Stop { time, pods } => each(&pods, |p| Ok(e.pod_stop(p, t(time))?)),
        PodCmd::Restart { time, pods } => each(&pods, |p| Ok(e.pod_restart(p, t(time))?)),
        PodCmd::Kill { signal, pods } => each(&pods, |p| Ok(e.pod_kill(p, &signal)?)),
        PodCmd::Pause { pods } => each(&pods, |p| Ok(e.pod_pause(p)?)),
        PodCmd::Unpause { pods } => each(&pods, |p| Ok(e.pod_unpause(p)?)),
        PodCmd::Rm { force, pods } => each(&pods, |p| Ok(e.pod_remove(p, force)?)),
        PodCmd::Logs {
            container,
            follow,
            pod,
        } => logs(g, &pod, container.as_deref(), follow),
        PodCmd::Top { pod, ps_options } => top(g, &pod, &ps_options),
        PodCmd::Stats {
            no_stream: _,
            format,
            pods,
        } => stats(g, &pods, &format),
        PodCmd::Prune { force: _ } => {
            for name in e.pod_prune()? {
                println!("{name}");
            }
            Ok(())
        }
        PodCmd::Update {
            publish,
            no_publish,
            pod,
        } => {
            if publish.is_empty() && !no_publish {
                bail!("pod update: nothing to change (give -p PORT…, or --no-publish)");
            }
            let p = e.pod_update_ports(&pod, ports(&publish)?)?;
            println!("{}", p.id);
            Ok(())
        }
    }
}
