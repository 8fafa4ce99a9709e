//! The copying snapshotter fallback: merge a snapshot directory (whiteouts in overlayfs
//! form) onto a target, as overlayfs would show it. Never follows a symlink in the target:
//! every level is checked with `symlink_metadata` and replaced when its type differs.

use crate::apply::OVERLAY_OPAQUE_XATTR;
use crate::error::{io_err, Result};
use nix::sys::stat::{self, Mode, SFlag};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{lchown, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Merges `src` (one layer's snapshot) onto `dst`.
pub fn merge_layer(src: &Path, dst: &Path) -> Result<()> {
    let mut links = HashMap::new();
    merge_dir(src, dst, &mut links)
}

fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io_err(p)),
        Ok(_) => fs::remove_file(p).map_err(io_err(p)),
        Err(_) => Ok(()),
    }
}

fn copy_meta(m: &fs::Metadata, s: &Path, d: &Path) -> Result<()> {
    lchown(d, Some(m.uid()), Some(m.gid())).map_err(io_err(d))?;
    if !m.file_type().is_symlink() {
        fs::set_permissions(d, fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(io_err(d))?;
        for name in xattr::list(s).map_err(io_err(s))? {
            if name.to_string_lossy().starts_with("trusted.overlay.") {
                continue;
            }
            if let Some(v) = xattr::get(s, &name).map_err(io_err(s))? {
                xattr::set(d, &name, &v).map_err(io_err(d))?;
            }
        }
    }
    let t = TimeSpec::new(m.mtime(), m.mtime_nsec());
    stat::utimensat(None, d, &t, &t, stat::UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io_err(d)(e.into()))
}

fn merge_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(io_err(src))?
        .collect::<Result<_, _>>()
        .map_err(io_err(src))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let s = e.path();
        let d = dst.join(e.file_name());
        let m = fs::symlink_metadata(&s).map_err(io_err(&s))?;
        let ft = m.file_type();
        let existing = fs::symlink_metadata(&d).ok();
        if ft.is_char_device() && m.rdev() == 0 {
            remove_any(&d)?; // a whiteout
            continue;
        }
        if ft.is_dir() {
            let opaque = xattr::get(&s, OVERLAY_OPAQUE_XATTR)
                .ok()
                .flatten()
                .is_some_and(|v| v == b"y");
            if opaque || existing.as_ref().is_some_and(|x| !x.is_dir()) {
                remove_any(&d)?;
            }
            if fs::symlink_metadata(&d).is_err() {
                fs::create_dir(&d).map_err(io_err(&d))?;
            }
            merge_dir(&s, &d, links)?;
            copy_meta(&m, &s, &d)?;
            continue;
        }
        remove_any(&d)?;
        if m.nlink() > 1 && ft.is_file() {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                fs::hard_link(first, &d).map_err(io_err(&d))?;
                continue;
            }
            links.insert((m.dev(), m.ino()), d.clone());
        }
        if ft.is_file() {
            fs::copy(&s, &d).map_err(io_err(&d))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&s).map_err(io_err(&s))?;
            std::os::unix::fs::symlink(target, &d).map_err(io_err(&d))?;
        } else {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_fifo() {
                SFlag::S_IFIFO
            } else {
                continue; // sockets are not part of a layer
            };
            stat::mknod(&d, kind, Mode::from_bits_truncate(0o600), m.rdev())
                .map_err(|e| io_err(&d)(e.into()))?;
        }
        copy_meta(&m, &s, &d)?;
    }
    Ok(())
}
