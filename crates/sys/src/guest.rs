//! What a guest's init (`berth-agent`) needs that `nix`, with the features this workspace
//! enables, does not wrap: powering the machine off, bringing an interface up, and owning
//! an accepted socket.

use nix::errno::Errno;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `reboot(LINUX_REBOOT_CMD_POWER_OFF)`: only returns on failure (e.g. not privileged).
/// Call `sync` first: the kernel does not.
pub fn power_off() -> Errno {
    // SAFETY: reboot takes one integer command and touches no memory of ours.
    let r = unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF) };
    Errno::result(r).err().unwrap_or(Errno::EINVAL)
}

/// Sets `IFF_UP` on the interface `name` (`SIOCGIFFLAGS` + `SIOCSIFFLAGS`).
pub fn link_up(name: &str) -> nix::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(Errno::EINVAL);
    }
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data (a name and a union of integers); all zeroes is a
    // valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into `req`, a live
    // ifreq of the size the kernel expects.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: after SIOCGIFFLAGS the union holds the flags (a c_short), which we update.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// `accept4(SOCK_CLOEXEC)` on a listening socket, the new connection as an owned descriptor.
pub fn accept(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let fd = nix::sys::socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 just installed `fd` in our table; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn accept_owns_the_connection() {
        let path = std::env::temp_dir().join(format!("berth-sys-accept-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).expect("bind");
        let mut c = UnixStream::connect(&path).expect("connect");
        let fd = accept(std::os::fd::AsFd::as_fd(&l)).expect("accept");
        let mut s = UnixStream::from(fd);
        c.write_all(b"hi").expect("write");
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"hi");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn bad_interface_names_are_refused() {
        assert_eq!(link_up(""), Err(Errno::EINVAL));
        assert_eq!(link_up(&"x".repeat(16)), Err(Errno::EINVAL));
        assert_eq!(link_up("no-such-if0"), Err(Errno::ENODEV));
    }
}
