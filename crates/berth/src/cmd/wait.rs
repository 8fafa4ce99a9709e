//! `berth wait CONTAINER…`: blocks until each container stops; prints its exit code.

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
        println!("{}", e.wait(c)?);
    }
    Ok(())
}
