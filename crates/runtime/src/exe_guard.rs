//! CVE-2019-5736: a container must never be able to overwrite the runtime binary through
//! `/proc/PID/exe`. Before any verb that puts a process of ours into a container (`create`,
//! `run`, `exec`), the runtime makes sure it runs from a read-only mount or a sealed memfd
//! copy of itself, and otherwise re-executes from one.
//!
//! This holds for every configuration, a fresh pid namespace included: the container's init
//! is a fork of this process, and its program may be a script whose interpreter is
//! `#!/proc/self/exe` — the kernel resolves that in the init, so the container would then
//! run (dumpable, visible to any process that joins its pid namespace) the runtime binary
//! as it was exec'd. Whatever the init execs that way must be the protected copy.
//!
//! The protected copy is a detached, read-only bind mount of our own binary
//! (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_RDONLY)`, in no mount table):
//! crun's read-only bind without a mount namespace, and no bytes copied — the page cache
//! is shared, so the re-exec costs one `execve` of a static binary. Kernels without the new
//! mount API (before 5.12) or callers that may not use it get runc's sealed memfd copy.

use crate::error::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Whether our own executable cannot be written: it sits on a read-only mount, or it is a
/// memfd sealed against writes.
pub fn protected() -> bool {
    if nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    {
        return true;
    }
    std::fs::File::open("/proc/self/exe")
        .ok()
        .and_then(|f| fcntl(f.as_raw_fd(), FcntlArg::F_GET_SEALS).ok())
        .is_some_and(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE))
}

/// A sealed memfd copy of our executable (the fallback).
fn sealed_copy() -> Result<OwnedFd> {
    let name = CString::new("berth-runtime").unwrap_or_default();
    let fd: OwnedFd = memfd_create(
        &name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .ctx(|| "memfd_create".into())?;
    let mut src = std::fs::File::open("/proc/self/exe").ctx(|| "open /proc/self/exe".into())?;
    let mut dst = std::fs::File::from(fd);
    std::io::copy(&mut src, &mut dst).ctx(|| "copy runtime binary to memfd".into())?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(dst.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals)).ctx(|| "seal memfd".into())?;
    Ok(dst.into())
}

/// Re-executes from a read-only bind or a sealed memfd unless already protected. Returns
/// only if protected.
pub fn ensure() -> Result<()> {
    // Set in the environment of the re-exec: a second failure of the check must be an
    // error, never an exec loop.
    const MARK: &str = "_BERTH_RUNTIME_REEXEC";
    let reexeced = std::env::var_os(MARK).is_some();
    if reexeced {
        std::env::remove_var(MARK);
    }
    if protected() {
        return Ok(());
    }
    if reexeced {
        return Err(crate::error::Error::Init(
            "CVE-2019-5736 guard: the runtime still runs from a writable binary after \
             re-executing from a read-only copy"
                .into(),
        ));
    }
    let fd = match sys::mount::readonly_clone(Path::new("/proc/self/exe")) {
        Ok(fd) => fd,
        Err(_) => sealed_copy()?,
    };
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .chain([(MARK.into(), "1".into())])
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    crate::trace::stage("reexec");
    nix::unistd::fexecve(fd.as_raw_fd(), &args, &env)
        .ctx(|| "re-exec from a read-only copy of the runtime".into())?;
    Ok(())
}
