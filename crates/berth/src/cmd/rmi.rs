//! `berth rmi IMAGE…`: remove names (an ID or digest removes all names of the image), then
//! collect the blobs and snapshots nothing references any more. An image a container of
//! the engine uses (in any state) or a deployed function uses is refused, naming it.

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
    let engine = g.engine()?;
    for r in &a.images {
        let users = match store.lookup(r) {
            Ok(d) => engine.users_of_image(&d.to_string())?,
            Err(_) => vec![],
        };
        if !users.is_empty() {
            let e = anyhow::anyhow!(
                "image {r} is in use by container {}: remove the container first (berth rm)",
                users.join(", ")
            );
            eprintln!("berth: {e}");
            failed = Some(e);
            continue;
        }
        let functions = match store.lookup(r) {
            Ok(d) => gateway::users_of_image(&g.root, &d.to_string())?,
            Err(_) => vec![],
        };
        if !functions.is_empty() {
            let e = anyhow::anyhow!(
                "image {r} is in use by function {}: remove the function first (berth fn rm)",
                functions.join(", ")
            );
            eprintln!("berth: {e}");
            failed = Some(e);
            continue;
        }
        match store.untag(r) {
            Ok(names) => names.iter().for_each(|n| println!("Untagged: {n}")),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = Some(e.into());
            }
        }
    }
    super::container::remove_ended(g, false)?;
    let report = store.gc()?;
    for s in &report.blobs {
        println!("Deleted: {s}");
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
