//! `berth service publish|rm|ls|inspect`: host ports that reach a set of containers
//! round-robin (engine::service; what `kube play` makes of a Kubernetes Service).

use crate::Globals;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use engine::service::ServicePort;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: ServiceCmd,
}

#[derive(Subcommand, Debug)]
enum ServiceCmd {
    /// Publish (or replace) a service: `-p [HOSTIP:]HOSTPORT:TARGETPORT[/tcp|/udp]` over
    /// the given containers.
    Publish {
        /// A port: `[HOSTIP:]HOSTPORT:TARGETPORT[/tcp|/udp]`.
        #[arg(short = 'p', long = "publish", required = true)]
        publish: Vec<String>,
        name: String,
        /// The backend containers.
        #[arg(required = true)]
        backends: Vec<String>,
    },
    /// Remove services.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List services.
    #[command(alias = "list")]
    Ls,
    /// Show services as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `[HOSTIP:]HOSTPORT:TARGETPORT[/proto]` (one port: no ranges, both ports given).
fn parse_port(s: &str) -> Result<ServicePort> {
    let maps = net::ports::parse(s).with_context(|| format!("-p {s}"))?;
    let [m] = maps.as_slice() else {
        bail!("-p {s}: a service port is one port, not a range");
    };
    if m.host_port == 0 {
        bail!("-p {s}: give the host port (HOSTPORT:TARGETPORT)");
    }
    Ok(ServicePort {
        name: None,
        proto: m.proto,
        host_ip: m.host_ip.map(std::net::IpAddr::V4),
        host_port: m.host_port,
        target_port: m.ctr_port,
    })
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    match a.cmd {
        ServiceCmd::Publish {
            publish,
            name,
            backends,
        } => {
            let ports = publish
                .iter()
                .map(|p| parse_port(p))
                .collect::<Result<Vec<_>>>()?;
            e.publish_service(&name, &ports, &backends)?;
            println!("{name}");
        }
        ServiceCmd::Rm { names } => {
            for n in names {
                e.unpublish_service(&n)?;
                println!("{n}");
            }
        }
        ServiceCmd::Ls => {
            println!("{:<24} {:<40} BACKENDS", "NAME", "PORTS");
            for s in e.services()? {
                let ports: Vec<String> = s
                    .ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}->{}/{}",
                            p.host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
                            p.host_port,
                            p.target_port,
                            p.proto.as_str()
                        )
                    })
                    .collect();
                let backends: Vec<&str> =
                    s.backends.iter().map(|b| &b[..b.len().min(12)]).collect();
                println!(
                    "{:<24} {:<40} {}",
                    s.name,
                    ports.join(","),
                    backends.join(",")
                );
            }
        }
        ServiceCmd::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                out.push(e.service(&n)?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}
