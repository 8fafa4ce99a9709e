//! `berth system reset [-f]`: back to a fresh install, as `podman system reset`: every
//! container stopped and removed (the engine's and foreground ones), then everything under
//! `--root` (images, layers, containers, build cache, the engine database) and the runtime
//! state under `--runroot`. Asks first unless `-f`; refuses without an answer on stdin.

use crate::Globals;
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::Path;

/// Mount points under `dir` in our mount table, deepest first.
fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<std::path::PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| std::path::PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// Removes everything inside `dir` (not `dir` itself); a missing one is empty.
fn empty_dir(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
    };
    let mut n = 0;
    for e in entries {
        let e = e.with_context(|| format!("list {}", dir.display()))?;
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => n += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("remove {}", p.display())),
        }
    }
    Ok(n)
}

fn confirm(g: &Globals) -> Result<bool> {
    eprintln!(
        "WARNING! This will remove:\n  - all containers (running ones are killed)\n  - all \
         images, layers and build cache\n  - the engine database\nunder {} and the runtime \
         state under {}.",
        g.root.display(),
        g.runroot.display()
    );
    eprint!("Are you sure you want to continue? [y/N] ");
    let mut answer = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("read the answer from stdin")?;
    if n == 0 {
        bail!("system reset: no answer on stdin: refusing (use -f to reset without asking)");
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub fn run(g: &Globals, force: bool) -> Result<()> {
    if g.root.parent().is_none() || g.root.as_os_str().is_empty() {
        bail!("system reset: refusing to empty {}", g.root.display());
    }
    if !force && !confirm(g)? {
        println!("Not resetting.");
        return Ok(());
    }
    let e = g.engine()?;
    let removed = if g.root.join("engine.db").exists() {
        let removed = e.remove_all()?;
        // Networks after their containers: bridges, berth's nftables table, the rows.
        e.reset_networks()?;
        removed
    } else {
        Vec::new()
    };
    // Foreground containers (and anything else the runtime still has): force-deleted, so
    // their `berth run` ends.
    let rt_root = g.runroot.join("runtime");
    if let Ok(entries) = std::fs::read_dir(&rt_root) {
        for ent in entries.flatten() {
            let Ok(id) = ent.file_name().into_string() else {
                continue;
            };
            if id.starts_with('.') || !ent.path().is_dir() {
                continue;
            }
            tracing::info!(container = %id, "killing a container of the runtime");
            let _ = std::process::Command::new(&e.runtime)
                .arg("--root")
                .arg(&rt_root)
                .args(["delete", "--force", &id])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    for m in mounts_under(&g.root) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    let n = empty_dir(&g.root)?;
    empty_dir(&rt_root)?;
    for name in &removed {
        println!("Deleted container: {name}");
    }
    println!(
        "Reset {}: removed {} containers and {} entries of the store",
        g.root.display(),
        removed.len(),
        n
    );
    Ok(())
}
