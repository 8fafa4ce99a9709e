//! `berth network create|ls|inspect|rm|prune|connect|disconnect`: the engine's networks (engine::network).

use crate::Globals;
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: NetworkCmd,
}

#[derive(Subcommand, Debug)]
enum NetworkCmd {
    /// Create a bridge network.
    Create {
        /// The subnet (IPv4 CIDR; default: a free private /16).
        #[arg(long)]
        subnet: Option<String>,
        /// The gateway, the bridge's address (default: the subnet's first).
        #[arg(long)]
        gateway: Option<String>,
        /// Allocate container addresses from this part of the subnet only.
        #[arg(long)]
        ip_range: Option<String>,
        /// No route out: containers reach only each other.
        #[arg(long)]
        internal: bool,
        /// Set a label (`K=V`).
        #[arg(long = "label")]
        label: Vec<String>,
        /// `bridge` (the only driver).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks as JSON (Docker's fields).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while a container is attached).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network (made at once if it runs, else at its next start).
    Connect {
        /// Another name the container answers to on this network.
        #[arg(long = "alias")]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network it was connected to.
    Disconnect {
        /// Accepted for docker compatibility.
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove the user networks no container is attached to.
    Prune {
        /// Accepted for docker compatibility (prune never asks).
        #[arg(short, long)]
        force: bool,
    },
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    match a.cmd {
        NetworkCmd::Create {
            subnet,
            gateway,
            ip_range,
            internal,
            label,
            driver,
            name,
        } => {
            if driver != "bridge" {
                bail!("unknown network driver {driver:?} (bridge)");
            }
            let mut labels = BTreeMap::new();
            for l in &label {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    bail!("invalid label {l:?} (K=V)");
                }
                labels.insert(k.to_string(), v.to_string());
            }
            let n = e.create_network(
                &name,
                &engine::network::CreateOpts {
                    subnet,
                    gateway,
                    ip_range,
                    internal,
                    labels,
                },
            )?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls { quiet } => {
            // The default network is listed from its first use on.
            let nets = e.networks()?;
            if quiet {
                for n in &nets {
                    println!("{}", n.name);
                }
                return Ok(());
            }
            let w = nets.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
            println!(
                "{:<12}   {:<w$}   {:<18}   INTERNAL",
                "NETWORK ID", "NAME", "SUBNET"
            );
            for n in &nets {
                println!(
                    "{:<12}   {:<w$}   {:<18}   {}",
                    &n.id[..12.min(n.id.len())],
                    n.name,
                    n.subnet.to_string(),
                    n.internal
                );
            }
        }
        NetworkCmd::Inspect { names } => {
            let mut out = Vec::new();
            for name in &names {
                let n = e.network(name)?;
                let mut containers = serde_json::Map::new();
                for cname in e.network_users(&n.name)? {
                    let c = e.inspect(&cname)?;
                    if let Some(a) = e
                        .attachments(&c.id)?
                        .into_iter()
                        .find(|a| a.network == n.name)
                    {
                        containers.insert(
                            c.id.clone(),
                            json!({
                                "Name": c.name,
                                "IPv4Address": format!("{}/{}", a.ip, n.subnet.prefix),
                                "MacAddress": a.mac,
                            }),
                        );
                    }
                }
                out.push(json!({
                    "Name": n.name,
                    "Id": n.id,
                    "Created": n.created,
                    "Driver": "bridge",
                    "Internal": n.internal,
                    "IPAM": {"Config": [{
                        "Subnet": n.subnet.to_string(),
                        "Gateway": n.gateway.to_string(),
                        "IPRange": n.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    }]},
                    "Options": {"com.docker.network.bridge.name": n.bridge},
                    "Labels": n.labels,
                    "Containers": containers,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCmd::Rm { names } => {
            for name in &names {
                let n = e.remove_network(name)?;
                println!("{}", n.name);
            }
        }
        NetworkCmd::Connect {
            alias,
            network,
            container,
        } => {
            e.connect(&network, &container, &alias)?;
        }
        NetworkCmd::Disconnect {
            force: _,
            network,
            container,
        } => e.disconnect(&network, &container)?,
        NetworkCmd::Prune { force: _ } => {
            for n in e.networks()? {
                if n.name != engine::network::DEFAULT_NETWORK
                    && e.network_users(&n.name)?.is_empty()
                {
                    e.remove_network(&n.name)?;
                    println!("{}", n.name);
                }
            }
        }
    }
    Ok(())
}
