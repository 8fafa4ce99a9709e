//! `berth vm restore FILE`: a new monitor for the VM saved in FILE; it continues where the
//! snapshot was taken.

use anyhow::Result;
use std::path::{Path, PathBuf};
use vmm::{Console, Vmm};

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
    // The name (unless given), vCPUs and memory come from the snapshot: peek at its header
    // for the console path and the cgroup's limits.
    let mut saved = vmm::snapshot::load(&a.file)?.header.config;
    if let Some(n) = &a.name {
        saved.name = n.clone();
    }
    saved.validate_shape()?;
    let name = saved.name.clone();
    let console = if a.detached_child {
        Console::File(root.join(&name).join("console.log"))
    } else {
        Console::Stdout
    };
    let cgroup = super::confine(&saved)?;
    let mut vmm = Vmm::restore(&a.file, Some(name), root, console.clone(), a.paused)?;
    if let Some(c) = cgroup {
        vmm.remove_cgroup_at_exit(c.at_exit());
    }
    let vm_name = vmm.name().to_string();
    if let Console::File(log) = &console {
        super::signal_ready(log)?;
    }
    let outcome = vmm.run()?;
    super::finish(&vm_name, outcome)
}
