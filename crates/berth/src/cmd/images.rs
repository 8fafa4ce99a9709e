//! `berth images [--format json]`: the named images.

use super::util::{ago, human_size};
use crate::Globals;
use anyhow::Result;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `json` for scripts; default a table.
    #[arg(long)]
    format: Option<String>,
    /// Print image IDs only.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let mut rows = Vec::new();
    for (name, rec) in store.names()? {
        let img = store.image(&rec.manifest)?;
        let (repo, tag) = name.rsplit_once(':').unwrap_or((&name, ""));
        rows.push((repo.to_string(), tag.to_string(), img, rec.manifest));
    }
    match a.format.as_deref() {
        Some("json") => {
            let v: Vec<_> = rows
                .iter()
                .map(|(repo, tag, img, digest)| {
                    json!({
                        "Names": [format!("{repo}:{tag}")],
                        "Id": img.id(),
                        "Digest": digest.to_string(),
                        "Created": img.config.created().clone().unwrap_or_default(),
                        "Size": img.size(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Some(other) => anyhow::bail!("unknown format {other:?} (use json)"),
        None if a.quiet => {
            for (_, _, img, _) in &rows {
                println!("{}", &img.id()[..12]);
            }
        }
        None => {
            println!(
                "{:<40} {:<12} {:<14} {:<16} SIZE",
                "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
            );
            for (repo, tag, img, _) in &rows {
                let created = ago(img.config.created().as_deref().unwrap_or(""));
                println!(
                    "{repo:<40} {tag:<12} {:<14} {created:<16} {}",
                    &img.id()[..12],
                    human_size(img.size())
                );
            }
        }
    }
    Ok(())
}
