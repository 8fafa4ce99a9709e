//! `berth stop [-t SECONDS] CONTAINER…`: the stop signal, then SIGKILL after the timeout.

use crate::Globals;
use anyhow::Result;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait before SIGKILL (default: the container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time")]
    time: Option<u64>,
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        e.stop(c, a.time.map(Duration::from_secs))?;
        println!("{c}");
    }
    Ok(())
}
