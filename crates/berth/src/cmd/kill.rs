//! `berth kill [-s SIGNAL] CONTAINER…`: a signal (default KILL) to the container's process.

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signal name or number.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        e.kill(c, &a.signal)?;
        println!("{c}");
    }
    Ok(())
}
