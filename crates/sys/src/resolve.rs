//! Path resolution confined to a root directory (`openat2(RESOLVE_IN_ROOT)`): symlinks and
//! `..` in a hostile image can never lead outside the root.

use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` as if `root` were `/`: absolute symlinks and `..` stay inside `root`.
/// `flags` are `open(2)` flags (O_CLOEXEC is always added), `mode` is used with O_CREAT.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> nix::Result<OwnedFd> {
    openat2(
        root,
        path,
        flags,
        mode,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` inside `root` (as [`open_in_root`]) only if no component of it, the last
/// included, is a symlink (`ELOOP` otherwise): for destinations that must be ordinary
/// directories (procfs, sysfs).
pub fn open_in_root_no_symlinks(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
) -> nix::Result<OwnedFd> {
    openat2(
        root,
        path,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
    )
}

/// Opens `path` relative to `root`, refusing (`EXDEV`) any resolution that would leave
/// `root`: a `..` above it, an absolute path or an absolute or escaping symlink anywhere on
/// the way. Used where an escape attempt must be reported rather than re-rooted (layer
/// unpacking).
pub fn open_beneath(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
) -> nix::Result<OwnedFd> {
    openat2(
        root,
        path,
        flags,
        mode,
        RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    )
}

fn openat2(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & libc::O_CREAT != 0 {
            mode as u64
        } else {
            0
        },
        resolve,
    };
    // SAFETY: `c` is a NUL-terminated string and `how` a valid open_how; both outlive the
    // call and its size is passed exactly.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = Errno::result(r)? as i32;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` inside `root` (as [`open_in_root`]) for reading, only if it is a regular
/// file: an image's `/etc/passwd` that is a FIFO or a device node must neither block the
/// reader nor be read as a file. Other types fail with `EINVAL`.
pub fn open_regular_in_root(root: BorrowedFd<'_>, path: &Path) -> nix::Result<std::fs::File> {
    let fd = open_in_root(
        root,
        path,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Errno::EINVAL);
    }
    Ok(std::fs::File::from(fd))
}
