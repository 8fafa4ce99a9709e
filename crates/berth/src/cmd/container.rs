//! `berth container prune`, and the record that lets any berth command tell a container
//! whose `berth run` is gone from a live one.
//!
//! `berth run` writes `containers/<id>/owner.json` (its pid, that pid's start time, and
//! whether it was `--rm`) right after claiming the name. A container is live while that
//! process runs or the runtime still has a running container of that id (`--runroot`);
//! otherwise it has ended. An ended `--rm` container whose berth was killed is stale: `run`,
//! `rmi`, `image prune`, `container prune` and `system prune` remove it (what `--rm` would
//! have done), so the snapshots it pinned in chains.json can be collected. An ended
//! container without `--rm` is kept until `container prune` / `system prune`.
//!
//! The engine's containers (`run -d`, `create`) are rows of its database, not owner
//! records: this module leaves their directories alone, and `container prune` removes the
//! engine's stopped containers through the engine.

use crate::Globals;
use anyhow::{Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The owner record in a container's directory.
pub const OWNER: &str = "owner.json";

/// A directory without a record is left alone for this long (its `run` may be writing it).
const UNRECORDED_GRACE: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: ContainerCmd,
}

#[derive(Subcommand, Debug)]
enum ContainerCmd {
    /// Remove every container that is not running (and its writable layer).
    Prune,
    /// List containers (as `berth ps`).
    Ls(super::ps::Args),
    /// Remove containers (as `berth rm`).
    Rm(super::rm::Args),
    /// Show containers (as `berth inspect`).
    Inspect(super::inspect::Args),
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    match a.cmd {
        ContainerCmd::Prune => prune(g),
        ContainerCmd::Ls(a) => super::ps::run(g, a),
        ContainerCmd::Rm(a) => super::rm::run(g, a),
        ContainerCmd::Inspect(a) => super::inspect::run(g, a),
    }
}

/// `container prune`: every ended container goes; prints what was removed.
pub fn prune(g: &Globals) -> Result<()> {
    let mut removed = remove_ended(g, true)?;
    removed.extend(g.engine()?.prune()?);
    for id in &removed {
        println!("Deleted: {id}");
    }
    println!("Deleted {} containers", removed.len());
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    pid: i32,
    start: u64,
    rm: bool,
    /// The `--runroot` of the run: where its runtime state (and so whether its
    /// container still runs) is found. Absent in records of older berths.
    #[serde(default)]
    runroot: Option<std::path::PathBuf>,
    /// What `ps` shows of it (absent in records of older berths).
    #[serde(default)]
    image: String,
    #[serde(default)]
    command: Vec<String>,
    /// RFC 3339 (UTC).
    #[serde(default)]
    created: String,
    /// Its exit code once it has ended, when its berth saw it.
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    finished: String,
}

/// What a foreground run records of its container for `ps`.
pub struct RunInfo<'a> {
    pub image: &'a str,
    pub command: Vec<String>,
}

/// Records this process as the owner of the container in `dir` (temp + fsync + rename).
pub fn record_owner(dir: &Path, rm: bool, runroot: &Path, info: RunInfo<'_>) -> Result<()> {
    let pid = std::process::id() as i32;
    let start = runtime::state::process_start_time(pid).context("read our own start time")?;
    write_owner(
        dir,
        &Owner {
            pid,
            start,
            rm,
            runroot: Some(runroot.to_path_buf()),
            image: info.image.to_string(),
            command: info.command,
            created: super::util::now_rfc3339(),
            exit_code: None,
            finished: String::new(),
        },
    )
}

/// The run of the container in `dir` ended with `code` (kept for `ps -a`).
pub fn record_exit(dir: &Path, code: i32) -> Result<()> {
    let body = std::fs::read(dir.join(OWNER))
        .with_context(|| format!("read {}", dir.join(OWNER).display()))?;
    let mut o: Owner = serde_json::from_slice(&body)
        .with_context(|| format!("parse {}", dir.join(OWNER).display()))?;
    o.exit_code = Some(code);
    o.finished = super::util::now_rfc3339();
    write_owner(dir, &o)
}

fn write_owner(dir: &Path, o: &Owner) -> Result<()> {
    let body = serde_json::to_vec(o)?;
    let tmp = dir.join(".owner.json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(OWNER))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("write {}", dir.join(OWNER).display()))
}

/// Foreground runs' containers as `ps` shows them beside the engine's: the name is also
/// the ID; running while its run is live, else exited.
pub fn foreground(g: &Globals) -> Result<Vec<engine::Container>> {
    let cdir = g.root.join("containers");
    let Ok(entries) = std::fs::read_dir(&cdir) else {
        return Ok(vec![]);
    };
    let engine_ids: std::collections::HashSet<String> = g.engine()?.ids()?.into_iter().collect();
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(id) = e.file_name().into_string() else {
            continue;
        };
        if id.starts_with('.') || engine_ids.contains(&id) {
            continue;
        }
        let dir = e.path();
        let Some(o) = std::fs::read(dir.join(OWNER))
            .ok()
            .and_then(|b| serde_json::from_slice::<Owner>(&b).ok())
        else {
            continue;
        };
        let live = verdict(g, &id, &dir) == Verdict::Live;
        out.push(engine::Container {
            name: id.clone(),
            id,
            image: o.image,
            image_id: String::new(),
            spec: engine::ContainerSpec {
                args: o.command,
                ..Default::default()
            },
            state: if live {
                engine::State::Running
            } else {
                engine::State::Exited
            },
            pid: 0,
            pid_start: 0,
            monitor_pid: 0,
            monitor_start: 0,
            exit_code: if live {
                None
            } else {
                Some(o.exit_code.unwrap_or(-1))
            },
            oom_killed: false,
            started: o.created.clone(),
            created: o.created,
            finished: o.finished,
            restart_count: 0,
            stopped_by_user: false,
            error: String::new(),
        });
    }
    Ok(out)
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Live,
    /// Ended; `--rm` was asked for.
    Stale,
    /// Ended; kept on purpose (no `--rm`), or unrecorded and old.
    Stopped,
}

/// Whether the runtime state under `runroot` shows the container running.
fn running_under(runroot: &Path, id: &str) -> bool {
    let rt = runtime::state::Store::new(runroot.join("runtime"));
    rt.load(id)
        .map(|st| runtime::state::status(&rt, &st) != runtime::state::Status::Stopped)
        .unwrap_or(false)
}

fn verdict(g: &Globals, id: &str, dir: &Path) -> Verdict {
    let owner: Option<Owner> = std::fs::read(dir.join(OWNER))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if running_under(&g.runroot, id) {
        return Verdict::Live;
    }
    // Run with another --runroot: its state is there; if that is gone or unreadable we
    // cannot tell, and a container we cannot tell about is never removed.
    if let Some(rr) = owner.as_ref().and_then(|o| o.runroot.as_deref()) {
        if rr != g.runroot && (!rr.join("runtime").is_dir() || running_under(rr, id)) {
            return Verdict::Live;
        }
    }
    match owner {
        Some(o) if runtime::state::process_start_time(o.pid) == Some(o.start) => Verdict::Live,
        Some(o) if o.rm => Verdict::Stale,
        Some(_) => Verdict::Stopped,
        None => {
            let age = std::fs::metadata(dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|a| a > UNRECORDED_GRACE) {
                Verdict::Stopped
            } else {
                Verdict::Live
            }
        }
    }
}

/// Removes stale containers (ended `--rm` ones whose berth is gone) and, with
/// `stopped_too` (`container prune`, `system prune`), every ended container. Returns the
/// ids removed. Without `stopped_too` it is the late `--rm` that `run`, `rmi` and
/// `image prune` do on the side: best effort, it never fails the user's command (a
/// directory it cannot remove is reported and left).
pub fn remove_ended(g: &Globals, stopped_too: bool) -> Result<Vec<String>> {
    match remove_ended_inner(g, stopped_too) {
        Err(e) if !stopped_too => {
            eprintln!("berth: warning: cleaning up ended containers: {e:#}");
            Ok(vec![])
        }
        r => r,
    }
}

fn remove_ended_inner(g: &Globals, stopped_too: bool) -> Result<Vec<String>> {
    let cdir = g.root.join("containers");
    let entries = match std::fs::read_dir(&cdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("list {}", cdir.display())),
    };
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    // The engine's containers are its database's, not ours: read (once) only when a
    // directory is a candidate, so `run` on a store of engine containers opens no database.
    let mut engine_ids: Option<std::collections::HashSet<String>> = None;
    for e in entries.flatten() {
        let Ok(id) = e.file_name().into_string() else {
            continue;
        };
        let dir = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) || id.starts_with('.') {
            continue;
        }
        // Without an owner file a directory is at most `Stopped` (verdict): only removed
        // by `container prune`, not by the cleanup every `run` does first.
        if !stopped_too && !dir.join(OWNER).exists() {
            continue;
        }
        if engine_ids.is_none() {
            engine_ids = Some(g.engine()?.ids()?.into_iter().collect());
        }
        if engine_ids.as_ref().is_some_and(|ids| ids.contains(&id)) {
            continue;
        }
        match verdict(g, &id, &dir) {
            Verdict::Live => continue,
            Verdict::Stopped if !stopped_too => continue,
            Verdict::Stale | Verdict::Stopped => {}
        }
        tracing::info!(container = %id, "removing an ended container");
        match remove(g, &id, &dir) {
            Ok(()) => removed.push(id),
            Err(e) => failed.push(format!("{id}: {e:#}")),
        }
    }
    if failed.is_empty() {
        return Ok(removed);
    }
    if stopped_too {
        for id in &removed {
            println!("Deleted: {id}");
        }
        anyhow::bail!("could not remove {}", failed.join("; "));
    }
    for f in &failed {
        eprintln!("berth: warning: could not remove ended container {f}");
    }
    Ok(removed)
}

fn remove(g: &Globals, id: &str, dir: &Path) -> Result<()> {
    // What a killed runtime left (its state, cgroup) goes first.
    let rt_state = g.runroot.join("runtime").join(id);
    if rt_state.exists() {
        if let Ok(bin) = super::run::runtime_bin() {
            let _ = std::process::Command::new(bin)
                .arg("--root")
                .arg(g.runroot.join("runtime"))
                .args(["delete", "--force", id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    // A rootfs mounted on the host (no private mount namespace was possible).
    let _ = nix::mount::umount2(&dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        // Another berth removed it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", dir.display())),
    }
}
