//! `berth load [-i FILE]`: images from an oci-archive, an OCI layout directory or a
//! docker-archive (`docker save`/`podman save`); without `-i` (or with `-i -`), from
//! standard input.

use crate::Globals;
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The archive (tar, optionally gzip or zstd compressed) or OCI layout directory;
    /// standard input when absent or `-`.
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Print nothing.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let loaded = match a.input.filter(|p| p.as_os_str() != "-") {
        Some(p) => {
            image::archive::load(&store, &p).with_context(|| format!("load {}", p.display()))?
        }
        None => image::archive::load_stream(&store, std::io::stdin().lock())
            .context("load from standard input")?,
    };
    if !a.quiet {
        for (name, _) in loaded {
            println!("Loaded image: {name}");
        }
    }
    Ok(())
}
