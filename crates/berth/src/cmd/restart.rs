//! `berth restart [-t SECONDS] CONTAINER…`: stop, then start.

use crate::Globals;
use anyhow::Result;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait before SIGKILL.
    #[arg(short = 't', long = "time")]
    time: Option<u64>,
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        e.restart(c, a.time.map(Duration::from_secs))?;
        println!("{c}");
    }
    Ok(())
}
