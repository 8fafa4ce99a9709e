//! CVE-2019-5736: a container must never be able to overwrite the runtime binary through
//! `/proc/PID/exe`. Before any verb that enters a container, the runtime makes sure it runs
//! from a read-only mount or a sealed memfd copy of itself; otherwise it copies itself into
//! a sealed memfd and re-executes from there (runc's and crun's approach).
//!
//! `exec` always needs this: its process sits in the container's pid namespace before it
//! execs. `create` and `run` need it only when the container does not get a pid namespace
//! of its own. In a fresh pid namespace the init is alone until it has exec'd the
//! container's program: `exec` is refused before `start`, and the init is non-dumpable from
//! its first instruction, so even a process that joins its pid namespace (a pod member)
//! cannot open /proc/<init>/exe without CAP_SYS_PTRACE in the host user namespace. That
//! saves a copy and a re-exec on the hot path of every container start; crun pays an extra
//! exec there.

use crate::error::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

fn protected() -> bool {
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

/// Re-executes from a sealed memfd unless already protected. Returns only if protected.
pub fn ensure() -> Result<()> {
    if protected() {
        return Ok(());
    }
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
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    nix::unistd::fexecve(dst.as_raw_fd(), &args, &env)
        .ctx(|| "re-exec from sealed memfd".into())?;
    Ok(())
}
