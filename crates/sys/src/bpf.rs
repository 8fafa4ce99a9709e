//! Loading and attaching a `BPF_PROG_TYPE_CGROUP_DEVICE` program: cgroup v2's device
//! controller (it has no devices.allow file; a program decides every open and mknod).

use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// Why a filter could not be installed: the step, its errno, and the verifier's log.
#[derive(Debug)]
pub struct BpfError {
    pub step: &'static str,
    pub errno: Errno,
    pub log: String,
}

impl std::fmt::Display for BpfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.errno)?;
        if !self.log.trim().is_empty() {
            write!(f, " (verifier: {})", self.log.trim())?;
        }
        Ok(())
    }
}

fn prog_load(insns: &[Insn], log: &mut [u8]) -> Result<i32, Errno> {
    let license = c"Apache";
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        ..Default::default()
    };
    // SAFETY: `load` is a valid bpf_attr prefix whose pointers (instructions, license, log
    // buffer of `log_size` bytes) stay alive for the call; the size passed is exactly its
    // size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &load as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    Errno::result(fd).map(|fd| fd as i32)
}

/// Loads a device program and attaches it to the cgroup directory `cgroup` (multi-attach,
/// so it adds to the programs of ancestors rather than replacing them).
pub fn attach_device_filter(cgroup: BorrowedFd<'_>, insns: &[Insn]) -> Result<(), BpfError> {
    // Without a verifier log first: a log buffer that is too small fails a valid program
    // with ENOSPC. Only a refused program is loaded again, with a log, to say why.
    let fd = match prog_load(insns, &mut []) {
        Ok(fd) => fd,
        Err(errno) => {
            let mut log = vec![0u8; 256 * 1024];
            let _ = prog_load(insns, &mut log);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            // The verifier's last lines say what it refused.
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            let log = tail.into_iter().rev().collect::<Vec<_>>().join("; ");
            return Err(BpfError {
                step: "load device program",
                errno,
                log,
            });
        }
    };
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(fd) };
    let attach = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attach` is a valid bpf_attr prefix of the size passed; both descriptors are
    // live for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    Errno::result(r).map(drop).map_err(|errno| BpfError {
        step: "attach device program",
        errno,
        log: String::new(),
    })
}
