//! `berth ps [-a] [-q] [--filter K=V]… [--format json|table|TEMPLATE]`: the engine's
//! containers, Docker's columns (filters and templates: ps_format.rs).

use super::ps_format::{Row, Template};
use super::util::parse_rfc3339;
use crate::Globals;
use anyhow::{bail, Result};
use engine::{Container, State};
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show every container (default: running ones).
    #[arg(short, long)]
    all: bool,
    /// Only the IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Full IDs and commands.
    #[arg(long)]
    no_trunc: bool,
    /// `table` (default), `json` (one object per line, Docker's `{{json .}}`), or a
    /// Go-template-style format:
    /// `{{.ID}}\t{{.Names}}\t{{.Status}}`, prefixed with `table ` for a header and columns.
    /// Fields: .ID .Names .Image .Command .CreatedAt .RunningFor .Status .State .Ports
    /// .Labels .LocalVolumes .Mounts .Networks .Size, `.Label "key"`, `json .`.
    #[arg(long, default_value = "table")]
    format: String,
    /// Filter: id=, name=, status=, label=KEY[=VALUE], ancestor=IMAGE (repeat a key for
    /// OR; different keys AND). A status filter lists stopped containers too.
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Show the pod of each container (POD ID and PODNAME columns; `Pod`, `PodName` in
    /// json) and the pods' infra containers (Podman's `ps --pod`).
    #[arg(long)]
    pod: bool,
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
    if !c.spec.args.is_empty() {
        return c.spec.args.join(" ");
    }
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
    let filters = super::ps_format::Filters::parse(&a.filter)?;
    let template = match a.format.as_str() {
        "table" | "json" => None,
        f => Some(Template::parse(f)?),
    };
    let e = g.engine()?;
    let all = a.all || filters.implies_all();
    let mut list = e.list(all)?;
    // A pod's infra container is shown with -a or --pod only.
    if !(a.all || a.pod) {
        list.retain(|c| !c.spec.infra);
    }
    let pods: std::collections::BTreeMap<String, String> = if a.pod {
        e.pods()?.into_iter().map(|p| (p.id, p.name)).collect()
    } else {
        Default::default()
    };
    let pod_of = |c: &Container| -> (String, String) {
        match c.spec.pod.as_deref() {
            Some(id) => (
                if a.no_trunc {
                    id.to_string()
                } else {
                    id.chars().take(12).collect()
                },
                pods.get(id).cloned().unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        }
    };
    // Foreground runs' containers too (names are shared with the engine's).
    list.extend(
        super::container::foreground(g)?
            .into_iter()
            .filter(|c| all || c.state == State::Running),
    );
    // The engine lists oldest first; keep one order for both kinds (RFC 3339 UTC sorts).
    list.sort_by(|x, y| x.created.cmp(&y.created));
    if !a.filter.is_empty() {
        let store = g.store().ok();
        let image_id = |r: &str| -> Option<String> {
            let img = store.as_ref()?.resolve(r).ok()?;
            Some(img.manifest_digest.to_string())
        };
        list.retain(|c| filters.matches(c, &image_id));
    }
    if a.quiet {
        for c in &list {
            println!("{}", if a.no_trunc { &c.id } else { c.short_id() });
        }
        return Ok(());
    }
    let rows = |list: Vec<Container>| -> Result<Vec<(Container, Row)>> {
        list.into_iter()
            .map(|c| {
                let status = status_with_health(&e, &c)?;
                let ports = super::port::ports_column(&e, &c);
                let ready = e
                    .probe_status(&c)?
                    .map_or(String::new(), |p| p.ready.to_string());
                Ok((
                    c,
                    Row {
                        status,
                        trunc: !a.no_trunc,
                        ports,
                        ready,
                    },
                ))
            })
            .collect()
    };
    if let Some(t) = template {
        print!("{}", t.output(&rows(list)?));
        return Ok(());
    }
    match a.format.as_str() {
        // Docker's: `{{json .}}` per container, one line each.
        "json" => {
            let mut out = std::io::stdout().lock();
            for (c, r) in rows(list)? {
                let mut v = Template::json_of(&c, &r);
                if a.pod {
                    let (id, name) = pod_of(&c);
                    v["Pod"] = serde_json::json!(id);
                    v["PodName"] = serde_json::json!(name);
                }
                writeln!(out, "{v}")?;
            }
        }
        "table" => {
            let mut rows = vec![vec![
                "CONTAINER ID".to_string(),
                "IMAGE".into(),
                "COMMAND".into(),
                "CREATED".into(),
                "STATUS".into(),
                "PORTS".into(),
                "NAMES".into(),
            ]];
            if a.pod {
                rows[0].extend(["POD ID".to_string(), "PODNAME".into()]);
            }
            for c in &list {
                let mut cmd = format!("\"{}\"", command(c));
                if !a.no_trunc && cmd.chars().count() > 22 {
                    cmd = format!("{}…\"", cmd.chars().take(20).collect::<String>());
                }
                let mut row = vec![
                    if a.no_trunc {
                        c.id.clone()
                    } else {
                        c.short_id().to_string()
                    },
                    c.image.clone(),
                    cmd,
                    format!("{} ago", since(&c.created)),
                    status_with_health(&e, c)?,
                    super::port::ports_column(&e, c),
                    c.name.clone(),
                ];
                if a.pod {
                    let (id, name) = pod_of(c);
                    row.extend([id, name]);
                }
                rows.push(row);
            }
            // Columns as wide as their widest cell, three spaces apart (docker's tabwriter).
            for line in super::table::columns(&rows, 3) {
                println!("{line}");
            }
        }
        f => bail!("--format {f:?}: expected table or json"),
    }
    Ok(())
}
