//! Copying trees between directories given as descriptors, never following a symlink: the
//! helpers behind a volume's copy-up (image → volume) and `berth cp` (container ↔ host).
//!
//! Every step is relative to an open directory: a name is looked up with
//! `openat2(RESOLVE_BENEATH)` plus `O_NOFOLLOW` (sys::resolve), symlinks are read with
//! `readlinkat` and recreated as symlinks, so a hostile symlink in an image or a container
//! is copied as what it is and never leads the copy outside its source or destination.

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Whether a copy keeps the owners of what it copies (a volume's copy-up does, as Docker's;
/// `cp` leaves files to the copying user, as `docker cp` without `-a`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    Keep,
    Mine,
}

fn err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Opens `name` (one component) in `dir` without following a symlink in it.
pub fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    sys::resolve::open_beneath(
        dir,
        Path::new(name),
        (flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits(),
        mode,
    )
    .map_err(err)
}

/// Opens the directory `name` in `dir` (not a symlink to one).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
}

/// The names in directory `dir` (without `.` and `..`).
pub fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let fd = open_at(
        dir,
        OsStr::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        0,
    )?;
    let mut d = nix::dir::Dir::from(fd).map_err(err)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(err)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n).to_os_string());
        }
    }
    out.sort();
    Ok(out)
}

/// `lstat` of `name` in `dir`; None if it does not exist.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<nix::sys::stat::FileStat>> {
    match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(err(e)),
    }
}

fn kind(st: &nix::sys::stat::FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Whether the directory `dir` has no entries.
pub fn is_empty_dir(dir: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(names(dir)?.is_empty())
}

/// Removes `name` from `dir` if it is there and not a directory (so a file can take its
/// place); a directory stays (it is merged into).
fn make_room(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<SFlag>> {
    match lstat_at(dir, name)? {
        Some(st) if kind(&st) == SFlag::S_IFDIR => Ok(Some(SFlag::S_IFDIR)),
        Some(_) => {
            nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(err)?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Copies the entry `name` of directory `src` to `to` in directory `dst`, recursively:
/// directories are merged into, files and symlinks replaced, symlinks copied as symlinks.
/// Devices, FIFOs and sockets are skipped (logged).
pub fn copy_entry(
    src: BorrowedFd<'_>,
    name: &OsStr,
    dst: BorrowedFd<'_>,
    to: &OsStr,
    owners: Owners,
) -> io::Result<()> {
    let st = lstat_at(src, name)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file or directory", name.to_string_lossy()),
        )
    })?;
    let perm = st.st_mode & 0o7777;
    let chown = |fd: Option<BorrowedFd<'_>>, at: &OsStr| -> io::Result<()> {
        if owners == Owners::Mine {
            return Ok(());
        }
        let (u, g) = (
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        );
        match fd {
            Some(fd) => nix::unistd::fchown(fd.as_raw_fd(), u, g),
            None => nix::unistd::fchownat(
                Some(dst.as_raw_fd()),
                at,
                u,
                g,
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
        }
        .map_err(err)
    };
    match kind(&st) {
        SFlag::S_IFDIR => {
            if make_room(dst, to)?.is_none() {
                nix::sys::stat::mkdirat(Some(dst.as_raw_fd()), to, Mode::from_bits_truncate(0o700))
                    .map_err(err)?;
            }
            let from = open_dir_at(src, name)?;
            let into = open_dir_at(dst, to)?;
            for n in names(from.as_fd())? {
                copy_entry(from.as_fd(), &n, into.as_fd(), &n, owners)?;
            }
            chown(Some(into.as_fd()), to)?;
            nix::sys::stat::fchmod(into.as_raw_fd(), Mode::from_bits_truncate(perm)).map_err(err)
        }
        SFlag::S_IFREG => {
            make_room(dst, to)?;
            let mut from = File::from(open_at(src, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0)?);
            let into = open_at(
                dst,
                to,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            )?;
            let mut into = File::from(into);
            io::copy(&mut from, &mut into)?;
            chown(Some(into.as_fd()), to)?;
            nix::sys::stat::fchmod(into.as_raw_fd(), Mode::from_bits_truncate(perm)).map_err(err)
        }
        SFlag::S_IFLNK => {
            make_room(dst, to)?;
            let target = nix::fcntl::readlinkat(Some(src.as_raw_fd()), name).map_err(err)?;
            nix::unistd::symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), to).map_err(err)?;
            chown(None, to)
        }
        other => {
            tracing::warn!(name = %name.to_string_lossy(), kind = ?other, "not copied: a special file");
            Ok(())
        }
    }
}

/// Copies what directory `src` holds into directory `dst`.
pub fn copy_contents(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, owners: Owners) -> io::Result<()> {
    for n in names(src)? {
        copy_entry(src, &n, dst, &n, owners)?;
    }
    Ok(())
}

/// Opens the directory `path` as the root of a confined lookup.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(OwnedFd::from(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_DIRECTORY.bits())
            .open(path)?,
    ))
}

/// Resolves `path` inside the root `root` (as if it were `/`: `..` and absolute symlinks
/// stay inside it, sys::resolve::open_in_root) up to its last component, which is not
/// followed: the parent directory and the last name (`.` for the root itself).
pub fn parent_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<(OwnedFd, OsString)> {
    let name = match path.file_name() {
        Some(n) => n.to_os_string(),
        None => {
            let fd = sys::resolve::open_in_root(
                root,
                Path::new("/"),
                (OFlag::O_RDONLY | OFlag::O_DIRECTORY).bits(),
                0,
            )
            .map_err(err)?;
            return Ok((fd, OsString::from(".")));
        }
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    let parent = if parent.as_os_str().is_empty() {
        Path::new("/")
    } else {
        parent
    };
    let fd = sys::resolve::open_in_root(
        root,
        parent,
        (OFlag::O_RDONLY | OFlag::O_DIRECTORY).bits(),
        0,
    )
    .map_err(|e| io::Error::new(err(e).kind(), format!("{}: {}", parent.display(), err(e))))?;
    Ok((fd, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("berth-confined-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn symlinks_are_copied_never_followed() {
        let d = tmp("links");
        let (src, dst) = (d.join("src"), d.join("dst"));
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub/f"), "data").expect("write");
        symlink("/etc", src.join("etc")).expect("symlink");
        symlink("../../../../../etc/passwd", src.join("sub/up")).expect("symlink");
        std::fs::create_dir_all(&dst).expect("mkdir");
        // A symlink already in the destination is replaced, not written through.
        symlink("/etc/hostname", dst.join("etc")).expect("symlink");
        let (s, t) = (open_root(&src).expect("src"), open_root(&dst).expect("dst"));
        copy_contents(s.as_fd(), t.as_fd(), Owners::Keep).expect("copy");
        assert_eq!(
            std::fs::read_to_string(dst.join("sub/f")).ok().as_deref(),
            Some("data")
        );
        assert_eq!(
            std::fs::read_link(dst.join("etc")).ok(),
            Some("/etc".into())
        );
        assert_eq!(
            std::fs::read_link(dst.join("sub/up")).ok(),
            Some("../../../../../etc/passwd".into())
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn lookups_stay_in_the_root() {
        let d = tmp("root");
        std::fs::create_dir_all(d.join("etc")).expect("mkdir");
        std::fs::write(d.join("etc/passwd"), "inside").expect("write");
        symlink("/etc", d.join("link")).expect("symlink");
        let root = open_root(&d).expect("root");
        let (parent, name) =
            parent_in_root(root.as_fd(), Path::new("/link/../../../link/passwd")).expect("resolve");
        let f = open_at(parent.as_fd(), &name, OFlag::O_RDONLY, 0).expect("open");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut File::from(f), &mut s).expect("read");
        assert_eq!(s, "inside");
        let _ = std::fs::remove_dir_all(&d);
    }
}
