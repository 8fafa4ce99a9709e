//! `berth rm [-f] CONTAINER…`: removes containers (a running one only with `-f`).

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Remove the container's anonymous volumes too.
    #[arg(short, long)]
    volumes: bool,
    /// Containers (names or IDs).
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    let mut failed = None;
    for c in &a.containers {
        match e.remove(c, a.force) {
            Ok(gone) => {
                if a.volumes {
                    e.remove_anonymous_volumes(&gone.spec)?;
                }
                println!("{c}")
            }
            Err(err) => {
                eprintln!("berth: {err}");
                failed = Some(err);
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
