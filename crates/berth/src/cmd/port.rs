//! `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports; and the
//! network parts of `ps` (PORTS) and `inspect` (NetworkSettings).

use crate::Globals;
use anyhow::{bail, Result};
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container (name or ID).
    container: String,
    /// Only this port (`80` or `80/tcp`).
    port: Option<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    let c = e.inspect(&a.container)?;
    let want = match &a.port {
        None => None,
        Some(p) => {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let Some(proto) = net::ports::Proto::parse(proto) else {
                bail!("invalid port {p:?}: unknown protocol (tcp or udp)");
            };
            let Ok(num) = num.parse::<u16>() else {
                bail!("invalid port {p:?}: not a port number");
            };
            Some((num, proto))
        }
    };
    let maps = e.published(&c.id)?;
    let mut found = false;
    for m in &maps {
        match want {
            Some((n, pr)) if (m.ctr_port, m.proto) != (n, pr) => {}
            Some(_) => {
                println!(
                    "{}:{}",
                    m.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                    m.host_port
                );
                found = true;
            }
            None => println!("{m}"),
        }
    }
    if let (Some(p), false) = (&a.port, found) {
        bail!("no public port {p} published for container {}", c.name);
    }
    Ok(())
}

/// `0.0.0.0:8080->80/tcp, …` (docker ps's PORTS).
pub fn ports_column(e: &engine::Engine, c: &engine::Container) -> String {
    e.published(&c.id)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            format!(
                "{}:{}->{}/{}",
                m.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                m.host_port,
                m.ctr_port,
                m.proto.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Docker's `NetworkSettings` of a container.
pub fn network_settings(e: &engine::Engine, c: &engine::Container) -> Result<Value> {
    let mut networks = serde_json::Map::new();
    let mut first_ip = String::new();
    for a in e.attachments(&c.id)? {
        let n = e.network(&a.network)?;
        if first_ip.is_empty() {
            first_ip = a.ip.to_string();
        }
        networks.insert(
            a.network.clone(),
            json!({
                "NetworkID": n.id,
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": n.subnet.prefix,
                "Gateway": if n.internal { String::new() } else { n.gateway.to_string() },
                "MacAddress": a.mac,
                "Aliases": a.aliases,
            }),
        );
    }
    let mut ports = serde_json::Map::new();
    for m in e.published(&c.id)? {
        let key = format!("{}/{}", m.ctr_port, m.proto.as_str());
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!({
                "HostIp": m.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).to_string(),
                "HostPort": m.host_port.to_string(),
            }));
        }
    }
    Ok(json!({
        "NetworkMode": if c.spec.network.mode.is_empty() { "bridge" } else { c.spec.network.mode.as_str() },
        "IPAddress": first_ip,
        "Networks": networks,
        "Ports": ports,
    }))
}
