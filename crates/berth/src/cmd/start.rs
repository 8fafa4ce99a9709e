//! `berth start CONTAINER…`: starts created or exited containers under their monitor.

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
    /// Queue a container until the node has room for its --memory/--cpus.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many seconds (default: wait forever).
    #[arg(long, requires = "wait")]
    wait_timeout: Option<u64>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        if a.wait {
            e.start_waiting(c, a.wait_timeout.map(std::time::Duration::from_secs))?;
        } else {
            e.start(c)?;
        }
        println!("{c}");
    }
    Ok(())
}
