//! `berth rmi IMAGE…`: remove names (an ID or digest removes all names of the image), then
//! collect the blobs and snapshots nothing references any more.

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Images (names, IDs or digests).
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let mut failed = None;
    for r in &a.images {
        match store.untag(r) {
            Ok(names) => names.iter().for_each(|n| println!("Untagged: {n}")),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = Some(e);
            }
        }
    }
    super::container::remove_ended(g, false)?;
    let report = store.gc()?;
    for s in &report.blobs {
        println!("Deleted: {s}");
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
