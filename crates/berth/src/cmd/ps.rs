//! `berth ps [-a] [-q] [--format json|table]`: the engine's containers, Docker's columns.

use super::util::parse_rfc3339;
use crate::Globals;
use anyhow::{bail, Result};
use engine::{Container, State};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show every container (default: running ones).
    #[arg(short, long)]
    all: bool,
    /// Only the IDs.
    #[arg(short, long)]
    quiet: bool,
    /// `table` (default) or `json` (an array of objects).
    #[arg(long, default_value = "table")]
    format: String,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's human durations ("3 seconds", "About a minute", "2 hours").
pub fn human_duration(secs: i64) -> String {
    match secs.max(0) {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s @ 2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        s @ 120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        s @ 7200..=172_799 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

fn since(t: &str) -> String {
    parse_rfc3339(t).map_or_else(|| "unknown".into(), |t| human_duration(now() - t))
}

/// `Up 3 seconds`, `Exited (0) 2 seconds ago`, `Created`, …
pub fn status(c: &Container) -> String {
    match c.state {
        State::Running => format!("Up {}", since(&c.started)),
        State::Paused => format!("Up {} (Paused)", since(&c.started)),
        State::Restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(&c.finished)
        ),
        State::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(&c.finished)
        ),
        State::Created => "Created".into(),
        State::Removing => "Removal In Progress".into(),
    }
}

/// The command as the container was created with it.
pub fn command(c: &Container) -> String {
    let o = &c.spec.opts;
    o.entrypoint
        .iter()
        .filter(|e| !e.is_empty())
        .chain(o.cmd.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Docker's STATUS with the health of a running container: `Up 5 seconds (healthy)`,
/// `(unhealthy)`, `(health: starting)`.
fn status_with_health(e: &engine::Engine, c: &Container) -> Result<String> {
    let s = status(c);
    if c.state != State::Running {
        return Ok(s);
    }
    Ok(match e.health(c)? {
        Some(h) if h.status == "starting" => format!("{s} (health: starting)"),
        Some(h) => format!("{s} ({})", h.status),
        None => s,
    })
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let e = g.engine()?;
    let list = e.list(a.all)?;
    if a.quiet {
        for c in &list {
            println!("{}", c.short_id());
        }
        return Ok(());
    }
    match a.format.as_str() {
        "json" => {
            let v = list
                .iter()
                .map(|c| {
                    Ok(json!({
                        "Id": c.id,
                        "Names": [c.name],
                        "Image": c.image,
                        "ImageID": c.image_id,
                        "Command": command(c),
                        "Created": c.created,
                        "State": c.state.as_str(),
                        "Status": status_with_health(&e, c)?,
                        "ExitCode": c.exit_code,
                        "RestartCount": c.restart_count,
                        "Pid": c.pid,
                        "Labels": c.spec.labels,
                    }))
                })
                .collect::<Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            println!(
                "{:<14}{:<20}{:<24}{:<18}{:<28}NAMES",
                "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS"
            );
            for c in &list {
                let mut cmd = format!("\"{}\"", command(c));
                if cmd.chars().count() > 22 {
                    cmd = format!("{}…\"", cmd.chars().take(20).collect::<String>());
                }
                println!(
                    "{:<14}{:<20}{:<24}{:<18}{:<28}{}",
                    c.short_id(),
                    c.image,
                    cmd,
                    format!("{} ago", since(&c.created)),
                    status_with_health(&e, c)?,
                    c.name
                );
            }
        }
        f => bail!("--format {f:?}: expected table or json"),
    }
    Ok(())
}
