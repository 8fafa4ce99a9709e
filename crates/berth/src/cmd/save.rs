//! `berth save -o FILE [--format oci-archive|docker-archive] IMAGE…`.

use crate::Globals;
use anyhow::{Context, Result};
use image::archive::Format;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// oci-archive (an OCI image layout in a tar) or docker-archive (`docker load` format).
    #[arg(long, default_value = "oci-archive", value_parser = ["oci-archive", "docker-archive"])]
    format: String,
    /// Images to save (names, IDs or digests).
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let format = if a.format == "docker-archive" {
        Format::DockerArchive
    } else {
        Format::OciArchive
    };
    image::archive::save(&store, &a.images, format, &a.output)
        .with_context(|| format!("save {}", a.output.display()))
}
