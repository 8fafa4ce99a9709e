//! `berth create [OPTIONS] IMAGE [CMD…]`: a container in the engine (state `created`),
//! started later with `berth start`. Takes `berth run`'s options.

use crate::Globals;
use anyhow::Result;

pub fn run(g: &Globals, a: super::run::Args) -> Result<()> {
    let c = super::run::create(g, a)?;
    println!("{}", c.id);
    Ok(())
}
