//! `berth`: the user-facing binary. One file per subcommand under `cmd/`; the only crate
//! that uses `anyhow`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "berth: run isolated workloads (containers and images today; registry, functions and microVMs as they land)"
)]
struct Cli {
    /// Where images, layers and containers are stored.
    #[arg(long, global = true, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// Where runtime state lives (tmpfs).
    #[arg(long, global = true, default_value = "/run/berth")]
    runroot: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Paths every command gets.
#[derive(Debug, Clone)]
pub struct Globals {
    pub root: PathBuf,
    pub runroot: PathBuf,
}

impl Globals {
    /// Opens the image store at `--root`.
    pub fn store(&self) -> anyhow::Result<image::ImageStore> {
        image::ImageStore::open(&self.root)
            .map_err(|e| anyhow::anyhow!("open the store at {}: {e}", self.root.display()))
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make an OCI bundle from a static busybox, ready for `berth-runtime run`.
    Bundle(cmd::bundle::Args),
    /// Build an image from a Containerfile (or Dockerfile).
    Build(cmd::build::Args),
}

fn main() {
    let cli = Cli::parse();
    let g = Globals {
        root: cli.root,
        runroot: cli.runroot,
    };
    let r = match cli.cmd {
        Cmd::Bundle(a) => cmd::bundle::run(a).map(|()| 0),
        Cmd::Build(a) => cmd::build::run(&g, a).map(|()| 0),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("berth: {e:#}");
            // 125 is what docker and podman return when the engine itself fails.
            std::process::exit(125);
        }
    }
}
