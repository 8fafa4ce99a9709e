//! Seccomp filters for the VMM's threads (seccompiler), one per kind of thread, each an
//! allow-list of what that thread was seen to call (`strace -f` of the test guest with every
//! device, snapshots, pause/resume/stop, and of a Linux guest's boot). Anything else kills
//! the monitor (SIGSYS) rather than letting a compromised thread reach the host.
//!
//! - A vCPU thread may only run the guest (`ioctl` on its vCPU), write console output,
//!   signal its eventfds, allocate memory and exit: no `open`, `socket`, `execve`, `fork`.
//! - The main thread, once set up, serves the event loop: epoll, reads and writes of its
//!   descriptors, API and vsock connections (unix sockets only), snapshot files, the few
//!   KVM and socket `ioctl`s it issues, and what it does when the VM ends (kicking and
//!   joining the vCPUs, removing its state directory and cgroup, forking the teardown
//!   child, which inherits the filter). No `execve`, no thread or namespace creation, no
//!   `ptrace`, `mount`, `bpf` or module loading, no network sockets.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Building or installing a filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// building the seccomp filter: {0}
    #[error("building the seccomp filter: {0}")]
    Build(String),
    /// installing the seccomp filter: {0}
    #[error("installing the seccomp filter: {0}")]
    Install(String),
}

/// The system calls a vCPU thread makes once it runs.
const VCPU_SYSCALLS: &[i64] = &[
    libc::SYS_ioctl,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_futex,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_getrandom,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_restart_syscall,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The system calls the main thread makes once the event loop runs, with any argument.
const VMM_SYSCALLS: &[i64] = &[
    // The event loop and its descriptors.
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fcntl,
    // API and vsock connections (socket: AF_UNIX only, below).
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    // Snapshot files, the state directory, the cgroup (removed at the end), --stats.
    libc::SYS_openat,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_getdents64,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
    // Memory, threads' synchronisation, signals, time.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getrandom,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_restart_syscall,
    // The teardown child (Vm::defer_teardown): a pipe, glibc's fork (set_robust_list in
    // the child), then close_range, read, close, rmdir (the cgroup), nanosleep, _exit.
    libc::SYS_pipe2,
    libc::SYS_set_robust_list,
    libc::SYS_close_range,
    libc::SYS_wait4,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// `ioctl` requests the main thread makes: snapshot state of the VM, non-blocking sockets,
/// the terminal check of stdin.
fn vmm_ioctls() -> Vec<u64> {
    use kvm_bindings::{kvm_clock_data, kvm_irqchip, kvm_pit_state2, KVMIO};
    vmm_sys_util::ioctl_iowr_nr!(KVM_GET_IRQCHIP, KVMIO, 0x62, kvm_irqchip);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_PIT2, KVMIO, 0x9f, kvm_pit_state2);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_CLOCK, KVMIO, 0x7c, kvm_clock_data);
    vec![
        KVM_GET_IRQCHIP(),
        KVM_GET_PIT2(),
        KVM_GET_CLOCK(),
        libc::FIONBIO,
        libc::FIOCLEX,
        libc::TCGETS,
        libc::TIOCGWINSZ,
    ]
}

/// A rule that holds when argument `arg` (as a 64-bit value) is `value`.
fn arg_is(arg: u8, value: u64) -> Result<SeccompRule, SeccompError> {
    let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, value)
        .map_err(|e| SeccompError::Build(e.to_string()))?;
    SeccompRule::new(vec![cond]).map_err(|e| SeccompError::Build(e.to_string()))
}

/// The main thread's filter, installed when the event loop starts.
pub fn vmm_filter() -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        VMM_SYSCALLS.iter().map(|n| (*n, Vec::new())).collect();
    rules.insert(
        libc::SYS_ioctl,
        vmm_ioctls()
            .into_iter()
            .map(|r| arg_is(1, r))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(libc::SYS_socket, vec![arg_is(0, libc::AF_UNIX as u64)?]);
    // fork() as glibc makes it: a process, never a thread or a new namespace.
    let fork = libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD;
    rules.insert(libc::SYS_clone, vec![arg_is(0, fork as u64)?]);
    build(rules)
}

/// The vCPU threads' filter.
pub fn vcpu_filter() -> Result<BpfProgram, SeccompError> {
    build(VCPU_SYSCALLS.iter().map(|n| (*n, Vec::new())).collect())
}

fn build(rules: BTreeMap<i64, Vec<SeccompRule>>) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(|e| SeccompError::Build(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Build(e.to_string()))
}

/// Confines the calling thread with `prog`.
pub fn apply(prog: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(prog).map_err(|e| SeccompError::Install(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filters_build() {
        assert!(vcpu_filter().is_ok_and(|p| !p.is_empty()));
        assert!(vmm_filter().is_ok_and(|p| !p.is_empty()));
    }
}
