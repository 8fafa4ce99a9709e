//! `berth load -i FILE`: images from an oci-archive, an OCI layout directory or a
//! docker-archive (`docker save`/`podman save`).

use crate::Globals;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The archive (tar, optionally gzip or zstd compressed) or OCI layout directory.
    #[arg(short, long)]
    input: PathBuf,
    /// Print nothing.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let loaded = image::archive::load(&store, &a.input)
        .with_context(|| format!("load {}", a.input.display()))?;
    if !a.quiet {
        for (name, _) in loaded {
            println!("Loaded image: {name}");
        }
    }
    Ok(())
}
