//! `berth attach CONTAINER`: the running container's output, live (from its log), until it
//! ends; berth exits with the container's exit code. Stdin is not attached: a detached
//! container's stdin is /dev/null (its monitor holds no terminal nor input pipe).

use crate::Globals;
use anyhow::{bail, Result};

/// Follow a running container's output until it ends (stdout and stderr; stdin is not
/// attached: detached containers read /dev/null).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Accepted for Docker compatibility (stdin is never attached).
    #[arg(long)]
    no_stdin: bool,
    /// The container (name or ID).
    container: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let e = g.engine()?;
    let c = e.inspect(&a.container)?;
    if !c.state.is_active() {
        bail!(
            "you cannot attach to a stopped container ({}), start it first",
            c.name
        );
    }
    let o = engine::logfiles::ReadOpts {
        tail: Some(0),
        follow: true,
        ..Default::default()
    };
    e.print_log(
        &c,
        &o,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(e.inspect(&c.id)?.exit_code.unwrap_or(0))
}
