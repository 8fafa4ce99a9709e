//! `berth inspect [--format json] IMAGE…`: manifest, config and names as JSON.

use crate::Globals;
use anyhow::Result;
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format (only `json`, the default).
    #[arg(long, default_value = "json", value_parser = ["json"])]
    format: String,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let names = store.names()?;
    let mut out = Vec::new();
    for r in &a.images {
        let img = store.resolve(r)?;
        let config: Value = serde_json::from_slice(&img.config_bytes)?;
        let tags: Vec<&String> = names
            .iter()
            .filter(|(_, rec)| rec.manifest == img.manifest_digest)
            .map(|(n, _)| n)
            .collect();
        out.push(json!({
            "Id": img.id(),
            "Digest": img.manifest_digest.to_string(),
            "RepoTags": tags,
            "Created": config["created"],
            "Architecture": config["architecture"],
            "Os": config["os"],
            "Config": config["config"],
            "RootFS": config["rootfs"],
            "History": config["history"],
            "Size": img.size(),
            "Layers": img.layers()?.iter().map(|l| json!({
                "Digest": l.digest.to_string(), "DiffID": l.diff_id.to_string(),
                "MediaType": l.media_type, "Size": l.size,
            })).collect::<Vec<_>>(),
            "Manifest": serde_json::to_value(&img.manifest)?,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
