//! `berth pause CONTAINER…` / `berth unpause CONTAINER…`: freeze and thaw every process of
//! running containers (the cgroup freezer; state `paused` in ps and inspect).

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn pause(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        e.pause(c)?;
        println!("{c}");
    }
    Ok(())
}

pub fn unpause(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    for c in &a.containers {
        e.unpause(c)?;
        println!("{c}");
    }
    Ok(())
}
