//! `berth start CONTAINER…`: starts created or exited containers under their monitor.

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        e.start(c)?;
        println!("{c}");
    }
    Ok(())
}
