//! `berth vm snapshot NAME FILE`: the monitor writes the VM's state and memory to FILE.

use super::API_TIMEOUT;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use vmm::api::{request, VmmAction};
use vmm::state;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The VM's name.
    name: String,
    /// Where to write the snapshot.
    file: PathBuf,
}

pub fn run(root: &Path, a: Args) -> Result<()> {
    let entry = state::find(root, &a.name)?;
    let path =
        std::path::absolute(&a.file).with_context(|| format!("resolve {}", a.file.display()))?;
    request(
        &entry.socket(),
        &VmmAction::CreateSnapshot { path },
        API_TIMEOUT,
    )?;
    Ok(())
}
