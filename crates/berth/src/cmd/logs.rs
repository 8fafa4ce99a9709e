//! `berth logs [-f] [--tail N] [-t] [--since T] [--until T] CONTAINER`: the container's
//! output from its log and its rotated files, oldest first (stdout lines to our stdout,
//! stderr lines to our stderr).

use crate::Globals;
use anyhow::{bail, Result};
use engine::logfiles;

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
    /// Only output since this time: RFC 3339 (2024-01-02T15:04:05Z), a Unix time, or a
    /// duration before now (10m, 1h30m).
    #[arg(long)]
    since: Option<String>,
    /// Only output before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
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
    let now = logfiles::now_nanos();
    let time = |flag: &str, v: &Option<String>| -> Result<Option<i128>> {
        v.as_deref()
            .map(|s| logfiles::parse_since(s, now))
            .transpose()
            .map_err(|err| anyhow::anyhow!("{flag}: {err}"))
    };
    let o = logfiles::ReadOpts {
        tail,
        timestamps: a.timestamps,
        follow: a.follow,
        since: time("--since", &a.since)?,
        until: time("--until", &a.until)?,
    };
    e.print_log(
        &c,
        &o,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(())
}
