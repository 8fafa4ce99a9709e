//! `berth history IMAGE`: the config's history, newest first, with layer sizes.

use super::util::{ago, human_size};
use crate::Globals;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `json` for scripts; default a table.
    #[arg(long)]
    format: Option<String>,
    image: String,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let img = store.resolve(&a.image)?;
    let layers = img.layers()?;
    let mut sizes = layers.iter().map(|l| l.size);
    let mut rows = Vec::new();
    for h in img.config.history().iter().flatten() {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            sizes.next().unwrap_or(0)
        };
        rows.push((
            h.created().clone().unwrap_or_default(),
            h.created_by().clone().unwrap_or_default(),
            size,
            h.comment().clone().unwrap_or_default(),
        ));
    }
    rows.reverse();
    if a.format.as_deref() == Some("json") {
        let v: Vec<_> = rows
            .iter()
            .map(|(c, by, s, com)| serde_json::json!({"Created": c, "CreatedBy": by, "Size": s, "Comment": com}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<16} {:<45} {:<10} COMMENT",
        "ID", "CREATED", "CREATED BY", "SIZE"
    );
    for (i, (c, by, s, com)) in rows.iter().enumerate() {
        let id = if i == 0 {
            img.id()[..12].to_string()
        } else {
            "<missing>".into()
        };
        let by: String = by.chars().take(45).collect();
        println!(
            "{id:<14} {:<16} {by:<45} {:<10} {com}",
            ago(c),
            human_size(*s)
        );
    }
    Ok(())
}
