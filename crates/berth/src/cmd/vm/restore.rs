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
    let name = a.name.clone();
    let console_for = |n: &str| {
        if a.detached_child {
            Console::File(root.join(n).join("console.log"))
        } else {
            Console::Stdout
        }
    };
    // The name may come from the snapshot: peek at it for the console path.
    let console = match &name {
        Some(n) => console_for(n),
        None if a.detached_child => {
            let loaded = vmm::snapshot::load(&a.file)?;
            console_for(&loaded.header.config.name)
        }
        None => Console::Stdout,
    };
    let vmm = Vmm::restore(&a.file, name, root, console.clone(), a.paused)?;
    let vm_name = vmm.name().to_string();
    if let Console::File(log) = &console {
        super::signal_ready(log)?;
    }
    let outcome = vmm.run()?;
    super::finish(&vm_name, outcome)
}
