//! Process creation with namespace flags (`clone`, `clone3`) and small process-wide knobs.

use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Result of [`clone_process`], like `fork`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneResult {
    /// We are the parent; the child has this pid.
    Parent(Pid),
    /// We are the new child process.
    Child,
}

/// Creates a child process the way `fork` does (it continues on a copy of the caller's
/// stack), but with `flags` (a set of `CLONE_NEW*` flags) so the child starts in new
/// namespaces in one step, as crun does. When `cgroup` is given, `clone3(CLONE_INTO_CGROUP)`
/// places the child into that cgroup v2 directory atomically.
///
/// The caller must be single-threaded: like `fork`, only the calling thread is copied and
/// no `atfork` handlers run. Every berth process that calls this is single-threaded.
pub fn clone_process(flags: i32, cgroup: Option<BorrowedFd<'_>>) -> nix::Result<CloneResult> {
    let ret = match cgroup {
        Some(fd) => clone3(flags as u64 | CLONE_INTO_CGROUP, fd.as_raw_fd() as u64)?,
        None => {
            // SAFETY: a raw clone with a null stack behaves like fork(2): the child gets a
            // private copy of the address space and continues from here. No pointers are
            // passed (parent_tid, child_tid and tls are unused without the matching flags).
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (flags | libc::SIGCHLD) as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            Errno::result(r)?
        }
    };
    Ok(if ret == 0 {
        CloneResult::Child
    } else {
        CloneResult::Parent(Pid::from_raw(ret as i32))
    })
}

/// CLONE_INTO_CGROUP (linux/sched.h); libc's constant has the wrong width.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

fn clone3(flags: u64, cgroup: u64) -> nix::Result<libc::c_long> {
    let args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        cgroup,
        ..Default::default()
    };
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; with a
    // zero stack the child continues on a copy of our stack like fork(2). No pointer fields
    // are set.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    Errno::result(r)
}

/// Sets the NIS domain name of the current UTS namespace.
pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the
    // kernel copies them.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(r).map(drop)
}

/// Makes the terminal on `fd` the controlling terminal of this (session leader) process.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal); fd is a live descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(r).map(drop)
}

/// Sets the terminal window size on `fd`.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    Errno::result(r).map(drop)
}

/// The terminal window size on `fd`: `(rows, cols)`.
pub fn window_size(fd: BorrowedFd<'_>) -> nix::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct that lives for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    Errno::result(r)?;
    Ok((ws.ws_row, ws.ws_col))
}

/// Sets the execution domain (`personality(2)`), e.g. `PER_LINUX32` = 0x0008.
pub fn set_personality(persona: u64) -> nix::Result<()> {
    // SAFETY: personality takes a plain integer and changes only this process.
    let r = unsafe { libc::personality(persona as libc::c_ulong) };
    Errno::result(r).map(drop)
}

/// Sets this process's I/O priority (`ioprio_set(IOPRIO_WHO_PROCESS, 0, class<<13|prio)`).
pub fn set_io_priority(class: u32, prio: u32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let value = ((class & 0x7) << 13) | (prio & 0x1fff);
    // SAFETY: ioprio_set takes three integers and affects only the calling process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            value as libc::c_int,
        )
    };
    Errno::result(r).map(drop)
}

/// The scheduling attributes of `sched_setattr(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

#[repr(C)]
struct RawSchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Sets the scheduling policy and parameters of the calling thread.
pub fn set_scheduler(a: &SchedAttr) -> nix::Result<()> {
    let raw = RawSchedAttr {
        size: std::mem::size_of::<RawSchedAttr>() as u32,
        sched_policy: a.policy,
        sched_flags: a.flags,
        sched_nice: a.nice,
        sched_priority: a.priority,
        sched_runtime: a.runtime,
        sched_deadline: a.deadline,
        sched_period: a.period,
    };
    // SAFETY: `raw` is a valid sched_attr whose `size` field matches its layout; it
    // outlives the call, and pid 0 means the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw as *const RawSchedAttr, 0) };
    Errno::result(r).map(drop)
}

/// Sends signal number `sig` to `pid`. Unlike `nix::sys::signal::kill`, any number the
/// kernel knows is accepted, real-time signals included (podman stops systemd images with
/// SIGRTMIN+3).
pub fn send_signal(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: kill(2) takes two plain integers.
    Errno::result(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// A descriptor of process `pid` (`pidfd_open(2)`, Linux 5.3): it becomes readable when the
/// process has exited (before it is reaped), so its end can be waited for with `poll`
/// without sleeping, whoever its parent is.
pub fn pidfd_open(pid: i32) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and a flags word; it returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(r)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Joins a new session keyring named `name` (`keyctl(KEYCTL_JOIN_SESSION_KEYRING)`), so the
/// container does not share the caller's session keyring and its keys (runc does the same
/// unless `--no-new-keyring`).
pub fn join_new_session_keyring(name: &str) -> nix::Result<()> {
    let c = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: keyctl reads a NUL-terminated name that outlives the call.
    Errno::result(unsafe {
        libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr())
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pidfd_reports_the_exit_of_a_process() {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep");
        let fd = super::pidfd_open(child.id() as i32).expect("pidfd_open");
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        assert_eq!(
            nix::poll::poll(&mut fds, PollTimeout::ZERO).ok(),
            Some(0),
            "still runs"
        );
        child.kill().expect("kill");
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        assert_eq!(
            nix::poll::poll(&mut fds, PollTimeout::from(5000u16)).ok(),
            Some(1),
            "ended"
        );
        let _ = child.wait();
        assert!(super::pidfd_open(-1).is_err());
    }
}
