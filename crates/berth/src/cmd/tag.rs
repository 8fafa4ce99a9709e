//! `berth tag SRC DST`.

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image (name, ID or digest).
    source: String,
    /// The new name (`NAME[:TAG]`).
    target: String,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    g.store()?.tag(&a.source, &a.target)?;
    Ok(())
}
