//! File-descriptor hygiene: nothing of the runtime may leak into a container.

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `close_range(first, ~0, flags)`; on kernels without it, `fallback` for each descriptor
/// `>= first` listed in `/proc/self/fd`.
fn close_range_from(first: i32, flags: u32, fallback: impl Fn(RawFd)) -> nix::Result<()> {
    // SAFETY: close_range takes plain integers; what it does to the range is the caller's
    // contract (see the two callers).
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            flags,
        )
    };
    if Errno::result(r).is_ok() {
        return Ok(());
    }
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|_| Errno::EBADF)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    fds.into_iter().filter(|fd| *fd >= first).for_each(fallback);
    Ok(())
}

/// Marks every descriptor `>= first` close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`), so
/// the next `execve` cannot leak runtime descriptors (CVE-2024-21626). Falls back to walking
/// `/proc/self/fd` on kernels older than 5.11.
pub fn cloexec_from(first: i32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 4;
    close_range_from(first, CLOSE_RANGE_CLOEXEC, |fd| {
        // SAFETY: F_SETFD on a descriptor number only changes its flags; a descriptor that
        // was closed meanwhile (the read_dir one) just yields EBADF, which we ignore.
        let _ = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    })
}

/// Closes every descriptor `>= first` (`close_range`): a process that never executes
/// another program (a microVM's monitor) drops whatever it inherited. Falls back to walking
/// `/proc/self/fd` on kernels older than 5.9. Call it before anything in the process owns a
/// descriptor `>= first`.
pub fn close_from(first: i32) -> nix::Result<()> {
    close_range_from(first, 0, |fd| {
        // SAFETY: closing a descriptor number nothing in this process owns (the caller's
        // contract); the read_dir descriptor, already closed, just yields EBADF.
        let _ = unsafe { libc::close(fd) };
    })
}

/// Receives one descriptor sent with `SCM_RIGHTS` on `sock` (e.g. a pty master over a
/// `--console-socket`); the message's bytes are ignored, extra descriptors are closed.
pub fn recv_fd(sock: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for this message;
                // nothing else owns it.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    received.into_iter().next().ok_or(Errno::EBADMSG)
}

/// Waits until every writer of the pipe or FIFO whose read end is `reader` has closed it
/// (`EPOLLHUP`), at most `timeout_ms` milliseconds; Ok(true) on the hangup, Ok(false) on
/// timeout. Edge-triggered (`EPOLLET`): unread data in the pipe (level-triggered `POLLIN`,
/// which plain `poll` reports at once, again and again) does not wake the caller; only a
/// change does — the last writer leaving wakes the readers (fs/pipe.c `pipe_release`).
pub fn wait_writers_gone(reader: BorrowedFd<'_>, timeout_ms: u64) -> nix::Result<bool> {
    // SAFETY: epoll_create1 takes a flag and returns a new descriptor (or -1), which we own.
    let ep = Errno::result(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `ep` was just created by us and nothing else holds it.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLET) as u32,
        u64: 0,
    };
    // SAFETY: both descriptors are open for the duration of the call; `ev` is a valid
    // epoll_event the kernel only reads.
    Errno::result(unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            reader.as_raw_fd(),
            &mut ev,
        )
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut out = [libc::epoll_event { events: 0, u64: 0 }];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `out` is a writable array of one epoll_event, its length passed as 1.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), out.as_mut_ptr(), 1, ms) };
        match Errno::result(n) {
            Ok(0) => return Ok(false),
            Ok(_) if out[0].events & libc::EPOLLHUP as u32 != 0 => return Ok(true),
            // Data arrived (the start byte): not what we wait for; the next change is.
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Takes ownership of descriptor `fd` that this process inherited by number across
/// `execve` (a monitor's pipes passed to `berth-pump`), checking it is open and marking it
/// close-on-exec. Call it once per number, at start-up, before anything else could own it.
pub fn inherited(fd: std::os::fd::RawFd) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(nix::errno::Errno::EBADF);
    }
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    // SAFETY: fcntl just showed `fd` is open; it came from our parent image by number and,
    // per this function's contract, nothing in this process owns it yet.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn inherited_adopts_an_open_descriptor_and_refuses_stdio() {
        assert!(super::inherited(1).is_err());
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let raw = r.into_raw_fd();
        let owned = super::inherited(raw).expect("adopt the read end");
        assert_eq!(owned.as_raw_fd(), raw);
        let flags = nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "marked close-on-exec");
        drop((owned, w));
    }
}
