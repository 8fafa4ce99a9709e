//! `berth top CONTAINER [ps OPTIONS]`: the container's processes, as the host's `ps`
//! shows them (default `-ef`).

use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// The container (name or ID).
    container: String,
    /// Options for ps (default -ef).
    #[arg(allow_hyphen_values = true)]
    ps_options: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    print!("{}", g.engine()?.top(&a.container, &a.ps_options)?);
    Ok(())
}
