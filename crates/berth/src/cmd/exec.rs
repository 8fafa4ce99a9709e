//! `berth exec [-d] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD…`: a process in a running
//! container (`berth-runtime exec`), its output to ours, its exit status ours.

use crate::Globals;
use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// Run it in the background.
    #[arg(short, long)]
    detach: bool,
    /// Set an environment variable (`K=V`).
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// `user[:group]` (numbers).
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Keep stdin open (accepted for docker compatibility).
    #[arg(short, long)]
    interactive: bool,
    /// The container (name or ID).
    container: String,
    /// The command and its arguments.
    #[arg(required = true)]
    command: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let opts = engine::ExecOpts {
        args: a.command,
        env: a.env,
        user: a.user,
        workdir: a.workdir,
        detach: a.detach,
        ..Default::default()
    };
    let mut cmd = g.engine()?.exec(&a.container, &opts)?;
    let st = cmd.status().context("run berth-runtime exec")?;
    use std::os::unix::process::ExitStatusExt;
    Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
}
