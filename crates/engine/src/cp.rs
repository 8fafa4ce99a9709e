//! `berth cp`: files and directories between a container and the host, always resolved
//! inside the container's root.
//!
//! The container's root is, while it runs, `/proc/<pid>/root` of its init (its own mount
//! namespace: its volumes and tmpfs are seen as the container sees them); otherwise its
//! overlay (upper dir over the image's layers) mounted in a private mount namespace of the
//! copying process, which goes with it. Every path in the container is resolved with
//! `openat2(RESOLVE_IN_ROOT)` from that root (sys::resolve): `..` and absolute symlinks
//! stay inside it. The last component is never followed (a symlink is copied as a
//! symlink, as `docker cp` without `-L`), nor is anything inside a copied tree
//! (confined.rs): a hostile container can make the copy read or write only inside itself
//! and inside the host destination.

use crate::confined::{self, Owners};
use crate::container::{alive, Engine};
use crate::error::{Error, Result};
use crate::invalid;
use crate::types::State;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

fn cp_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

impl Engine {
    /// An open descriptor of the container's root directory (see the module doc).
    fn container_root(&self, reference: &str) -> Result<(crate::Container, OwnedFd)> {
        let c = self.inspect(reference)?;
        if c.state == State::Removing {
            return Err(Error::Conflict(format!(
                "container {} is being removed",
                c.name
            )));
        }
        if c.state.is_active() && alive(c.pid, c.pid_start) {
            let p = PathBuf::from(format!("/proc/{}/root", c.pid));
            let fd = confined::open_root(&p).map_err(cp_err(format!(
                "open the root of container {} ({})",
                c.name,
                p.display()
            )))?;
            // The pid could have been reused between the check and the open.
            if !alive(c.pid, c.pid_start) {
                return Err(Error::Conflict(format!(
                    "container {} stopped during the copy: try again",
                    c.name
                )));
            }
            return Ok((c, fd));
        }
        // Stopped: its overlay, mounted in a mount namespace of our own.
        crate::container::private_mount_namespace()?;
        let store = image::ImageStore::open(&self.root)?;
        let digest: content::Digest = c
            .image_id
            .parse()
            .map_err(|_| invalid!("container {}: bad image id {:?}", c.name, c.image_id))?;
        let img = store.image(&digest)?;
        let dir = self.dir(&c.id);
        let rootfs = store.prepare_rootfs_at(&img.layers()?, &dir, &dir.join("rootfs"))?;
        let fd = confined::open_root(&rootfs.path)
            .map_err(cp_err(format!("open {}", rootfs.path.display())))?;
        Ok((c, fd))
    }

    /// `berth cp CONTAINER:SRC DEST`.
    pub fn copy_from(&self, reference: &str, src: &Path, dest: &Path) -> Result<()> {
        let (c, root) = self.container_root(reference)?;
        let in_ctr = |e: std::io::Error| Error::Io {
            what: format!("{}:{}", c.name, src.display()),
            source: e,
        };
        let (parent, name) = confined::parent_in_root(root.as_fd(), src).map_err(in_ctr)?;
        if confined::lstat_at(parent.as_fd(), &name)
            .map_err(in_ctr)?
            .is_none()
        {
            return Err(invalid!(
                "no such file or directory in container {}: {}",
                c.name,
                src.display()
            ));
        }
        let (into, to) = host_target(dest, &name)?;
        if to == "." {
            confined::copy_contents(parent.as_fd(), into.as_fd(), Owners::Mine)
        } else {
            confined::copy_entry(parent.as_fd(), &name, into.as_fd(), &to, Owners::Mine)
        }
        .map_err(cp_err(format!(
            "copy {}:{} to {}",
            c.name,
            src.display(),
            dest.display()
        )))?;
        tracing::debug!(container = %c.id, src = %src.display(), dest = %dest.display(), "copied out");
        Ok(())
    }

    /// `berth cp SRC CONTAINER:DEST`.
    pub fn copy_to(&self, src: &Path, reference: &str, dest: &Path) -> Result<()> {
        let src_name = src
            .file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| invalid!("cp: source {} names no file", src.display()))?;
        let src_parent = match src.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let from = confined::open_root(src_parent)
            .map_err(cp_err(format!("open {}", src_parent.display())))?;
        if confined::lstat_at(from.as_fd(), &src_name)
            .map_err(cp_err(format!("stat {}", src.display())))?
            .is_none()
        {
            return Err(invalid!("no such file or directory: {}", src.display()));
        }
        let (c, root) = self.container_root(reference)?;
        let in_ctr = |e: std::io::Error| Error::Io {
            what: format!("{}:{}", c.name, dest.display()),
            source: e,
        };
        // An existing directory (symlinks followed, inside the root) takes the source by
        // its name; anything else is the new name.
        let dir = sys::resolve::open_in_root(
            root.as_fd(),
            dest,
            (nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY).bits(),
            0,
        );
        let (into, to): (OwnedFd, OsString) = match dir {
            Ok(d) => (d, src_name.clone()),
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {
                let (p, n) = confined::parent_in_root(root.as_fd(), dest).map_err(in_ctr)?;
                if n == "." {
                    return Err(invalid!("cp: bad destination {}", dest.display()));
                }
                (p, n)
            }
            Err(e) => return Err(in_ctr(std::io::Error::from_raw_os_error(e as i32))),
        };
        confined::copy_entry(from.as_fd(), &src_name, into.as_fd(), &to, Owners::Mine).map_err(
            cp_err(format!(
                "copy {} to {}:{}",
                src.display(),
                c.name,
                dest.display()
            )),
        )?;
        tracing::debug!(container = %c.id, src = %src.display(), dest = %dest.display(), "copied in");
        Ok(())
    }
}

impl Engine {
    /// What `path` in the container is (its last component not followed): None when it
    /// does not exist; with a symlink's target. For the Docker API's archive stat.
    pub fn stat_in(
        &self,
        reference: &str,
        path: &Path,
    ) -> Result<Option<(nix::sys::stat::FileStat, Option<PathBuf>)>> {
        let (c, root) = self.container_root(reference)?;
        let in_ctr = |e: std::io::Error| Error::Io {
            what: format!("{}:{}", c.name, path.display()),
            source: e,
        };
        let (parent, name) = match confined::parent_in_root(root.as_fd(), path) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOENT | nix::libc::ENOTDIR)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(in_ctr(e)),
        };
        let Some(st) = confined::lstat_at(parent.as_fd(), &name).map_err(in_ctr)? else {
            return Ok(None);
        };
        let link = if st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK {
            nix::fcntl::readlinkat(
                Some(std::os::fd::AsRawFd::as_raw_fd(&parent)),
                name.as_os_str(),
            )
            .ok()
            .map(PathBuf::from)
        } else {
            None
        };
        Ok(Some((st, link)))
    }

    /// Whether `path` in the container is a directory (symlinks followed, inside its root).
    pub fn is_dir_in(&self, reference: &str, path: &Path) -> Result<bool> {
        let (_, root) = self.container_root(reference)?;
        Ok(sys::resolve::open_in_root(
            root.as_fd(),
            path,
            (nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY).bits(),
            0,
        )
        .is_ok())
    }
}

/// Where a copy out lands on the host: into `dest` by the source's `name` if `dest` is a
/// directory; else `dest` itself (its parent must exist).
fn host_target(dest: &Path, name: &OsString) -> Result<(OwnedFd, OsString)> {
    if dest.is_dir() {
        let fd = confined::open_root(dest).map_err(cp_err(format!("open {}", dest.display())))?;
        return Ok((fd, name.clone()));
    }
    let file = dest
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| invalid!("cp: bad destination {}", dest.display()))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = confined::open_root(parent).map_err(cp_err(format!(
        "destination directory {}",
        parent.display()
    )))?;
    Ok((fd, file))
}
