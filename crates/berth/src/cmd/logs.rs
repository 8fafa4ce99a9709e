//! `berth logs [-f] [--tail N] [-t] CONTAINER`: the container's output from its log
//! (stdout lines to our stdout, stderr lines to our stderr).

use crate::Globals;
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep printing new output until the container ends.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all` for every line).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Prefix each line with its time.
    #[arg(short, long)]
    timestamps: bool,
    /// The container (name or ID).
    container: String,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    let c = e.inspect(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" => None,
        n => match n.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => bail!("--tail {n:?}: expected a number or all"),
        },
    };
    let o = engine::logs::ReadOpts {
        tail,
        timestamps: a.timestamps,
        follow: a.follow,
    };
    let id = c.id.clone();
    let running = || e.inspect(&id).is_ok_and(|c| c.state.is_active());
    engine::logs::read(
        &e.log_path(&c),
        &o,
        running,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(())
}
