//! `berth import ROOTFS.tar NAME`: an image of one layer from a root filesystem tarball
//! (plain, gzip or zstd), as `podman import` makes.

use super::util::now_rfc3339;
use crate::Globals;
use anyhow::{Context, Result};
use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, Os, RootFsBuilder,
};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root filesystem tarball.
    tarball: PathBuf,
    /// The image name (`NAME[:TAG]`).
    name: String,
    /// Set the command (`--cmd sh`); repeat for more words.
    #[arg(long)]
    cmd: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let name = image::normalize_name(&a.name)?;
    let _lease = store.lease()?;
    let f =
        std::fs::File::open(&a.tarball).with_context(|| format!("open {}", a.tarball.display()))?;
    // The layer is stored uncompressed (its digest is its diffID) and unpacked with the
    // checks of `berth run` before the image is named.
    let layer = store
        .import_layer(f, &a.tarball.display().to_string())
        .context("import the layer")?;
    let mut cfg = ConfigBuilder::default().env(vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    ]);
    if !a.cmd.is_empty() {
        cfg = cfg.cmd(a.cmd.clone());
    }
    let now = now_rfc3339();
    let config = ImageConfigurationBuilder::default()
        .created(now.clone())
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(cfg.build()?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(Vec::<String>::new())
                .build()?,
        )
        .history(vec![HistoryBuilder::default()
            .created(now)
            .created_by(format!("berth import {}", a.tarball.display()))
            .build()?])
        .build()?;
    let digest = store.commit_image(&[layer], config, std::slice::from_ref(&name))?;
    let img = store.image(&digest)?;
    println!("{}", img.id());
    Ok(())
}
