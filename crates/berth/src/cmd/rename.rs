//! `berth rename OLD NEW`: a container's new name (a name in use is refused).

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The container (name or ID).
    container: String,
    /// Its new name.
    new_name: String,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    g.engine()?.rename(&a.container, &a.new_name)?;
    Ok(())
}
