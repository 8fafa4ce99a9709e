//! `berth image prune` and `berth image ls`.

use super::util::human_size;
use crate::Globals;
use anyhow::Result;
use clap::Subcommand;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: ImageCmd,
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    /// Remove blobs and snapshots no image or container uses (and stale temporary files).
    Prune,
    /// List images (as `berth images`).
    Ls(super::images::Args),
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    match a.cmd {
        ImageCmd::Prune => {
            let store = g.store()?;
            super::container::remove_ended(g, false)?;
            let r = store.gc()?;
            for d in &r.blobs {
                println!("Deleted: {d}");
            }
            println!(
                "Deleted {} blobs, {} snapshots and {} partial downloads; reclaimed {}",
                r.blobs.len(),
                r.snapshots.len(),
                r.partials,
                human_size(r.bytes)
            );
            Ok(())
        }
        ImageCmd::Ls(a) => super::images::run(g, a),
    }
}
