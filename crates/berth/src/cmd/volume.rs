//! `berth volume create|ls|inspect|rm|prune`: the engine's volumes (Docker's `local`
//! driver; engine::volumes).

use crate::Globals;
use anyhow::{bail, Result};
use clap::Subcommand;
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: VolumeCmd,
}

#[derive(Subcommand, Debug)]
enum VolumeCmd {
    /// Create a volume (a random name if none is given).
    Create {
        /// Set a label (`K=V`).
        #[arg(short, long = "label")]
        label: Vec<String>,
        /// A driver option (`type=tmpfs`, `device=tmpfs`, `o=size=64m`).
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// `local` (the only driver).
        #[arg(short, long, default_value = "local")]
        driver: String,
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
        /// `table` (default) or `json` (an array of objects).
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show volumes as JSON (Docker's fields).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (refused while a container uses one).
    #[command(alias = "remove")]
    Rm {
        /// No error for a volume that does not exist.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (every unused one with `-a`).
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Accepted for docker compatibility (prune never asks).
        #[arg(short, long)]
        force: bool,
    },
}

fn key_values(what: &str, list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid {what} {l:?} (K=V)");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    match a.cmd {
        VolumeCmd::Create {
            label,
            opt,
            driver,
            name,
        } => {
            if driver != "local" {
                bail!("volume driver {driver:?} is not supported (local)");
            }
            let v = e.volume_create(
                name.as_deref(),
                key_values("label", &label)?,
                key_values("option", &opt)?,
            )?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls { quiet, format } => {
            let list = e.volume_list()?;
            if quiet {
                for v in &list {
                    println!("{}", v.name);
                }
            } else if format == "json" {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if format == "table" {
                println!("{:<10} VOLUME NAME", "DRIVER");
                for v in &list {
                    println!("{:<10} {}", v.driver, v.name);
                }
            } else {
                bail!("unknown --format {format:?} (table or json)");
            }
        }
        VolumeCmd::Inspect { names } => {
            let list = names
                .iter()
                .map(|n| e.volume_inspect(n))
                .collect::<engine::Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        VolumeCmd::Rm { force, names } => {
            let mut failed = None;
            for n in &names {
                match e.volume_remove(n, force) {
                    Ok(_) => println!("{n}"),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = Some(err);
                    }
                }
            }
            if let Some(err) = failed {
                return Err(err.into());
            }
        }
        VolumeCmd::Prune { all, force: _ } => {
            let gone = e.volume_prune(all)?;
            if !gone.is_empty() {
                println!("Deleted Volumes:");
                for n in &gone {
                    println!("{n}");
                }
            }
            println!("Total: {} volumes removed", gone.len());
        }
    }
    Ok(())
}
