//! `GET /containers/{id}/changes` (`docker diff`): what the container changed in its root
//! filesystem, as Docker's `[{"Path": "/etc/x", "Kind": K}]` with K 0 modified, 1 added,
//! 2 deleted (Docker API "Get changes on a container's filesystem").
//!
//! It is read from the container's overlay upper dir (`<root>/containers/<id>/upper`,
//! image::snapshot): an entry there that is an overlay whiteout (a 0/0 character device,
//! overlayfs.rst "whiteouts and opaque directories") is a deletion; any other entry is a
//! modification when the image's layers (the lower dirs) have that path, an addition when
//! they do not. Directories above a changed entry appear as modified, as Docker's overlay2
//! driver reports them. The mount points the engine makes in every container (/etc/hosts,
//! /etc/resolv.conf, …) are left out, as Docker's init layer leaves them out.
//!
//! The upper dir is the container's to write while it runs: every directory is opened by
//! its path relative to the upper dir with no symlink followed anywhere on the way
//! (sys::resolve), and entries are looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`, so a
//! container swapping a directory for a symlink makes the walk fail or skip, never leave.

use crate::{ApiError, ApiResult};
use axum::response::IntoResponse;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstatat, FileStat, SFlag};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most entries reported (a container that wrote more gets an error, not a huge body).
const MAX_CHANGES: usize = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

fn open_dir(root: BorrowedFd<'_>, rel: &Path) -> nix::Result<OwnedFd> {
    let p = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    sys::resolve::open_in_root_no_symlinks(root, p, (OFlag::O_RDONLY | OFlag::O_DIRECTORY).bits())
}

fn is_whiteout(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR && st.st_rdev == 0
}

/// Whether `rel` exists in the union of `lowers` (top first): the first lower that has it
/// decides (a whiteout there hides the ones below).
fn in_lowers(lowers: &[OwnedFd], rel: &Path) -> bool {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return true;
    };
    for l in lowers {
        let Ok(dir) = open_dir(l.as_fd(), parent) else {
            continue;
        };
        match fstatat(
            Some(dir.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => return !is_whiteout(&st),
            Err(_) => continue,
        }
    }
    false
}

/// The changes of an upper dir over its lower dirs (top first), sorted by path.
pub(crate) fn diff(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(String, Kind)>, ApiError> {
    let ierr = |what: &Path, e: nix::Error| {
        ApiError::Internal(format!("changes: read {}: {e}", what.display()))
    };
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
            .open(p)
            .map(OwnedFd::from)
    };
    let up = open(upper)
        .map_err(|e| ApiError::Internal(format!("changes: open {}: {e}", upper.display())))?;
    let lower_fds: Vec<OwnedFd> = lowers.iter().filter_map(|l| open(l).ok()).collect();
    let mut out: Vec<(String, Kind, bool)> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dfd = match open_dir(up.as_fd(), &rel) {
            Ok(d) => d,
            // Removed or replaced while we walk: the container is still writing.
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP) => continue,
            Err(e) => return Err(ierr(&upper.join(&rel), e)),
        };
        // Dir owns the descriptor from here (closed with it).
        let mut dir =
            nix::dir::Dir::from_fd(dfd.into_raw_fd()).map_err(|e| ierr(&upper.join(&rel), e))?;
        let mut names = Vec::new();
        for ent in dir.iter() {
            let ent = ent.map_err(|e| ierr(&upper.join(&rel), e))?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(std::ffi::OsStr::from_bytes(name).to_os_string());
        }
        for name in names {
            let st = match fstatat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(_) => continue,
            };
            let child = rel.join(&name);
            let kind = if is_whiteout(&st) {
                Kind::Deleted
            } else if in_lowers(&lower_fds, &child) {
                Kind::Modified
            } else {
                Kind::Added
            };
            let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
            out.push((format!("/{}", child.to_string_lossy()), kind, is_dir));
            if out.len() > MAX_CHANGES {
                return Err(ApiError::Internal(format!(
                    "changes: more than {MAX_CHANGES} changed paths"
                )));
            }
            if is_dir {
                stack.push(child);
            }
        }
    }
    let mut out = without_engine_made(out);
    out.sort();
    Ok(out)
}

/// The mount points the engine and the runtime make in every container (its network
/// files, the kernel filesystems, /dev): not the container's changes. Docker keeps them
/// in an "init" layer under the container's and never lists them either.
const ENGINE_MADE: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/dev",
];

/// `changes` without the engine's mount points, nor the directories modified only to hold
/// them (every changed entry below them is one). Entries are `(path, kind, is_dir)`.
fn without_engine_made(mut all: Vec<(String, Kind, bool)>) -> Vec<(String, Kind)> {
    use std::collections::{HashMap, HashSet};
    let parent = |p: &str| p.rsplit_once('/').map(|(a, _)| a.to_string());
    let mut children: HashMap<String, usize> = HashMap::new();
    for (p, _, _) in &all {
        if let Some(par) = parent(p) {
            *children.entry(par).or_default() += 1;
        }
    }
    // Deepest first: a directory is decided after everything below it.
    all.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.bytes().filter(|&b| b == b'/').count()));
    let mut hidden_children: HashMap<String, usize> = HashMap::new();
    let mut hidden: HashSet<String> = HashSet::new();
    for (p, kind, is_dir) in &all {
        let engine_made = ENGINE_MADE.contains(&p.as_str()) || p.starts_with("/dev/");
        let only_engine_below = *is_dir
            && *kind == Kind::Modified
            && children
                .get(p)
                .is_some_and(|&n| n > 0 && hidden_children.get(p) == Some(&n));
        if engine_made || only_engine_below {
            hidden.insert(p.clone());
            if let Some(par) = parent(p) {
                *hidden_children.entry(par).or_default() += 1;
            }
        }
    }
    all.into_iter()
        .filter(|(p, _, _)| !hidden.contains(p))
        .map(|(p, k, _)| (p, k))
        .collect()
}

/// `GET /containers/{id}/changes`.
pub(crate) fn get(e: &engine::Engine, id: &str) -> ApiResult {
    let c = e.inspect(id)?;
    let dir = e.dir(&c.id);
    let upper = dir.join("upper");
    if !upper.is_dir() && !dir.join("rootfs").is_dir() {
        // Never prepared (created, not started): nothing changed yet.
        return Ok(crate::Json(Vec::<serde_json::Value>::new()).into_response());
    }
    if !upper.is_dir() {
        return Err(ApiError::Conflict(format!(
            "container {}: no overlay upper dir to read changes from (copy snapshotter)",
            c.name
        )));
    }
    let store = image::ImageStore::open(&e.root)?;
    let digest: content::Digest = c.image_id.parse().map_err(|_| {
        ApiError::Internal(format!(
            "container {}: bad image id {:?}",
            c.name, c.image_id
        ))
    })?;
    let img = store.image(&digest)?;
    let mut lowers: Vec<PathBuf> = img
        .chain_ids()?
        .iter()
        .map(|ch| store.snapshots().path(ch))
        .collect();
    lowers.reverse();
    let changes = diff(&upper, &lowers)?;
    let v: Vec<serde_json::Value> = changes
        .into_iter()
        .map(|(p, k)| serde_json::json!({"Path": p, "Kind": k as u8}))
        .collect();
    Ok(crate::Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_mount_points_are_not_changes() {
        let all = vec![
            ("/etc".to_string(), Kind::Modified, true),
            ("/etc/hosts".to_string(), Kind::Added, false),
            ("/etc/resolv.conf".to_string(), Kind::Added, false),
            ("/bin".to_string(), Kind::Modified, true),
            ("/var".to_string(), Kind::Modified, true),
            ("/var/x".to_string(), Kind::Deleted, false),
            ("/var/hosts".to_string(), Kind::Added, false),
        ];
        let mut got = without_engine_made(all);
        got.sort();
        let want = [
            ("/bin", Kind::Modified),
            ("/var", Kind::Modified),
            ("/var/hosts", Kind::Added),
            ("/var/x", Kind::Deleted),
        ];
        let want: Vec<(String, Kind)> = want.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        assert_eq!(got, want);
    }
}
