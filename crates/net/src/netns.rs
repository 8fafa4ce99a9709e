//! Persistent network namespaces: a namespace made by a short-lived thread (`unshare`) and
//! kept by a bind mount of its nsfs file on a path under the run root (as `ip netns` and
//! netavark do), so it exists before the container starts and the runtime joins it by path;
//! work inside one runs on a thread that has joined it (`setns` is per thread), never
//! moving the caller.

use crate::{io, kernel, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::path::Path;

/// nsfs's magic (`linux/magic.h` NSFS_MAGIC).
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Whether `path` is a mounted namespace file.
pub fn is_mounted(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| u64::try_from(s.filesystem_type().0).ok() == Some(NSFS_MAGIC))
}

/// Makes a new network namespace kept at `path` (its `lo` still down: `link::configure_inner`
/// sets it up); one already there is kept. Whether it was made now.
pub fn create(path: &Path) -> Result<bool> {
    if is_mounted(path) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(format!("create {}", path.display())))?;
    let target = path.to_path_buf();
    let r = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(kernel("unshare the network namespace"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(kernel(format!(
            "bind the namespace on {}",
            target.display()
        )))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(crate::Error::Invalid(
            "the namespace thread panicked".into(),
        ))
    });
    if r.is_err() {
        remove(path);
    }
    r.map(|()| true)
}

/// Unmounts and removes a namespace file (quietly: what is not there is fine). The
/// namespace itself goes with its last process, and its links with it.
pub fn remove(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// Runs `f` on a thread that has joined the network namespace at `path`.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = std::fs::File::open(path).map_err(io(format!("open {}", path.display())))?;
    std::thread::spawn(move || -> Result<T> {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(kernel("join the network namespace"))?;
        f()
    })
    .join()
    .unwrap_or_else(|_| {
        Err(crate::Error::Invalid(
            "the namespace thread panicked".into(),
        ))
    })
}
