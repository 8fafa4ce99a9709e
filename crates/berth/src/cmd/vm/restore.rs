//! `berth vm restore FILE`: a new monitor for the VM saved in FILE; it continues where the
//! snapshot was taken.

use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A file written by `berth vm snapshot`.
    file: PathBuf,
    /// Name of the restored VM (default: the snapshot's).
    #[arg(long)]
    name: Option<String>,
    /// Restore paused (`berth vm resume NAME` starts it).
    #[arg(long)]
    paused: bool,
    /// Run in the background.
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    #[arg(long, hide = true)]
    detached_child: bool,
}

pub fn run(root: &Path, a: Args) -> Result<()> {
    if a.detach {
        // Read the header here too: a bad file is reported without a second process.
        let name = match &a.name {
            Some(n) => n.clone(),
            None => vmm::snapshot::load(&a.file)?.header.config.name,
        };
        return super::detach(&name, &[]);
    }
    // The name (unless given) comes from the snapshot: peek at its header for the console
    // path; a bad file is reported here, before the monitor starts.
    let mut saved = vmm::snapshot::load(&a.file)?.header.config;
    if let Some(n) = &a.name {
        saved.name = n.clone();
    }
    saved.validate_shape()?;
    let name = saved.name.clone();
    let mut args: Vec<std::ffi::OsString> = vec![
        "--snapshot".into(),
        a.file.clone().into_os_string(),
        "--name".into(),
        name.clone().into(),
    ];
    if a.paused {
        args.push("--paused".into());
    }
    let log = a
        .detached_child
        .then(|| root.join(&name).join("console.log"));
    super::exec_monitor(root, "restore", &args, log)
}
