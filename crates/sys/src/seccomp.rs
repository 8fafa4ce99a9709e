//! Installing a classic-BPF seccomp program that was compiled earlier (by libseccomp, then
//! cached): `seccomp(SECCOMP_SET_MODE_FILTER, flags, &sock_fprog)`, seccomp(2).

use nix::errno::Errno;
use std::os::fd::{FromRawFd, OwnedFd};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_TSYNC_ESRCH: u32 = 16;
/// `struct sock_filter`: 8 bytes, native endian (linux/filter.h).
pub const INSN_SIZE: usize = 8;
/// BPF_MAXINSNS (linux/bpf_common.h): the kernel refuses longer programs.
pub const MAX_INSNS: usize = 4096;

/// Loads `prog` (an exported libseccomp program: `struct sock_filter`s, native endian) as
/// the calling thread's newest filter. With `FLAG_NEW_LISTENER` the kernel returns the
/// notify descriptor, handed back here. The caller must hold no_new_privs or
/// CAP_SYS_ADMIN, as for any seccomp filter.
pub fn set_filter(flags: u32, prog: &[u8]) -> Result<Option<OwnedFd>, Errno> {
    if prog.is_empty()
        || !prog.len().is_multiple_of(INSN_SIZE)
        || prog.len() / INSN_SIZE > MAX_INSNS
    {
        return Err(Errno::EINVAL);
    }
    let mut insns: Vec<libc::sock_filter> = prog
        .chunks_exact(INSN_SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: insns.len() as libc::c_ushort,
        filter: insns.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `insns`, `len` instructions that live until the call
    // returns; the kernel copies the program and validates every instruction itself
    // (seccomp_check_filter). No memory of ours is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    if flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful call returns a new
        // descriptor that nobody else owns (seccomp(2)).
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
    }
    Ok(None)
}
