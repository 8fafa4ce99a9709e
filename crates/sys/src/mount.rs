//! The new mount API where `nix` has no wrapper: a detached, read-only bind of one file.

use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const OPEN_TREE_CLONE: u32 = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// A detached bind mount of the file (or directory) at `path` (symlinks, magic links such
/// as `/proc/self/exe` included, are followed), made read-only: `open_tree(OPEN_TREE_CLONE)`
/// then `mount_setattr(MOUNT_ATTR_RDONLY)`. The mount is in no namespace's mount table; it
/// lives as long as something refers to it (this descriptor, a process executing from it)
/// and writes through it fail with `EROFS`. Linux 5.12 or later.
pub fn readonly_clone(path: &Path) -> nix::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; the flags are plain
    // integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32,
        )
    };
    let fd = Errno::result(r)? as i32;
    // SAFETY: open_tree returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH names `fd` itself; `attr` is a
    // valid mount_attr whose exact size is passed; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r)?;
    Ok(fd)
}
