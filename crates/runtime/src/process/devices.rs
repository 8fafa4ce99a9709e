//! Device nodes in the container's /dev: the default set every OCI container gets
//! (runtime-spec config-linux.md "Default Devices"), `linux.devices`, /dev/ptmx and the
//! standard symlinks. Inside a user namespace mknod is not allowed, so nodes are bind
//! mounts of the host's.

use super::rootfs::{fd_path, mkdir_all_in, mkfile_in};
use crate::error::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// One device node to create.
#[derive(Debug, Clone)]
pub struct Node {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The default devices of runtime-spec, as (path, major, minor).
pub const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

pub fn default_nodes() -> Vec<Node> {
    DEFAULT_DEVICES
        .iter()
        .map(|(p, ma, mi)| Node {
            path: (*p).into(),
            kind: SFlag::S_IFCHR,
            major: *ma,
            minor: *mi,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

/// Converts a `linux.devices` entry.
pub fn node_of(d: &LinuxDevice) -> Node {
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    Node {
        path: d.path().to_string_lossy().into_owned(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// Creates one node inside `root` (mknod, or a bind of the host node when `bind`).
pub fn create(root: BorrowedFd<'_>, n: &Node, bind: bool) -> Result<()> {
    let path = Path::new(&n.path);
    let what = || format!("device {}", n.path);
    let parent = mkdir_all_in(root, path.parent().unwrap_or(Path::new("/")))?;
    let name = path
        .file_name()
        .ok_or_else(|| crate::error::config_err("linux.devices", format!("bad path {}", n.path)))?;
    if bind {
        let fd = mkfile_in(root, path)?;
        return mount(
            Some(path),
            &fd_path(fd.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(what);
    }
    let _ = nix::unistd::unlinkat(
        Some(parent.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let dev = if n.kind == SFlag::S_IFIFO {
        0
    } else {
        makedev(n.major, n.minor)
    };
    nix::sys::stat::mknodat(
        Some(parent.as_raw_fd()),
        name,
        n.kind,
        Mode::from_bits_truncate(n.mode),
        dev,
    )
    .ctx(what)?;
    // mknod honours the umask: set the exact mode, then the owner.
    nix::sys::stat::fchmodat(
        Some(parent.as_raw_fd()),
        name,
        Mode::from_bits_truncate(n.mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|_| {
        nix::sys::stat::fchmodat(
            Some(parent.as_raw_fd()),
            name,
            Mode::from_bits_truncate(n.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    })
    .ctx(what)?;
    fchownat(
        Some(parent.as_raw_fd()),
        name,
        Some(Uid::from_raw(n.uid)),
        Some(Gid::from_raw(n.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(what)
}

/// /dev/ptmx → pts/ptmx and the /dev/fd, stdin, stdout, stderr links.
pub fn links(root: BorrowedFd<'_>) -> Result<()> {
    let dev = mkdir_all_in(root, Path::new("/dev"))?;
    for (target, name) in [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        if name == "ptmx" {
            let _ = nix::unistd::unlinkat(
                Some(dev.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => {
                return Err(crate::error::Error::Sys {
                    what: format!("symlink /dev/{name}"),
                    source: e,
                })
            }
        }
    }
    Ok(())
}
