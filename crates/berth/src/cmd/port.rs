//! `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports.

use crate::Globals;
use anyhow::Result;

/// berth has no container networks yet: a container shares no ports with the host, so this
/// prints nothing (and fails only for an unknown container).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container (name or ID).
    container: String,
    /// Only this port (`80` or `80/tcp`).
    port: Option<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let c = g.engine()?.inspect(&a.container)?;
    tracing::debug!(container = %c.id, port = ?a.port, "no networks: no published ports");
    Ok(())
}
