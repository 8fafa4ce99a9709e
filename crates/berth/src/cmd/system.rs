//! `berth system df`: what the store holds; `berth system prune`: every ended container,
//! then the blobs and snapshots nothing uses; `berth system reset`: everything (reset.rs).

use super::util::{disk_usage, human_size};
use crate::Globals;
use anyhow::Result;
use clap::Subcommand;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: SystemCmd,
}

#[derive(Subcommand, Debug)]
enum SystemCmd {
    /// Disk usage of images, layer snapshots and containers.
    Df {
        /// `json` for scripts; default a table.
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove ended containers, then unreferenced blobs and snapshots.
    Prune,
    /// Show or set the node's capacity for admission (`--memory 4g --cpus 2`).
    Capacity(super::admission::CapacityArgs),
    /// The node's capacity, what running containers reserve and what is free.
    Info(super::admission::InfoArgs),
    /// Remove every container (running ones too), image, layer and the engine database:
    /// back to a fresh install. Asks first unless -f.
    Reset {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let format = match a.cmd {
        SystemCmd::Df { format } => format,
        SystemCmd::Prune => {
            super::container::prune(g)?;
            let r = g.store()?.gc()?;
            println!(
                "Deleted {} blobs and {} snapshots; reclaimed {}",
                r.blobs.len(),
                r.snapshots.len(),
                human_size(r.bytes)
            );
            return Ok(());
        }
        SystemCmd::Capacity(a) => return super::admission::capacity(g, a),
        SystemCmd::Info(a) => return super::admission::info(g, a),
        SystemCmd::Reset { force } => return super::reset::run(g, force),
    };
    let store = g.store()?;
    let images = store.names()?.len();
    let blobs = store.content().list()?;
    let blob_bytes: u64 = blobs
        .iter()
        .map(|d| store.content().size(d).unwrap_or(0))
        .sum();
    let snaps = store.snapshots().list()?.len();
    let snap_bytes = disk_usage(store.snapshots().dir());
    let cdir = store.root().join("containers");
    let containers = std::fs::read_dir(&cdir).map(|d| d.count()).unwrap_or(0);
    let c_bytes = disk_usage(&cdir);
    if format.as_deref() == Some("json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!([
                {"Type": "Images", "Total": images, "Blobs": blobs.len(), "Size": blob_bytes},
                {"Type": "Snapshots", "Total": snaps, "Size": snap_bytes},
                {"Type": "Containers", "Total": containers, "Size": c_bytes},
            ]))?
        );
        return Ok(());
    }
    println!("{:<12} {:<8} SIZE", "TYPE", "TOTAL");
    println!(
        "{:<12} {:<8} {} ({} blobs)",
        "Images",
        images,
        human_size(blob_bytes),
        blobs.len()
    );
    println!(
        "{:<12} {:<8} {}",
        "Snapshots",
        snaps,
        human_size(snap_bytes)
    );
    println!(
        "{:<12} {:<8} {}",
        "Containers",
        containers,
        human_size(c_bytes)
    );
    Ok(())
}
