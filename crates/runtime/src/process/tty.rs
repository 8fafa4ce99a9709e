//! The container's terminal: a pty opened inside the container's devpts whose master is
//! sent to the caller over `--console-socket` (SCM_RIGHTS), as runc does; the slave
//! becomes stdin/stdout/stderr and the controlling terminal.

use crate::error::{Context, Result};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Opens a pty, sends its master over `socket`, and makes the slave our stdio and
/// controlling terminal. Returns the slave's path (for the /dev/console bind).
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>) -> Result<String> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx".into())?;
    grantpt(&master).ctx(|| "grantpt".into())?;
    unlockpt(&master).ctx(|| "unlockpt".into())?;
    let name = ptsname_r(&master).ctx(|| "ptsname".into())?;
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .ctx(|| format!("open {name}"))?
        .into();
    if let Some((rows, cols)) = size {
        let _ = sys::process::set_window_size(slave.as_fd(), rows, cols);
    }
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send pty master to console socket".into())?;
    drop(master);
    let _ = nix::unistd::setsid();
    sys::process::set_controlling_terminal(slave.as_fd())
        .ctx(|| "set controlling terminal".into())?;
    for n in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), n).ctx(|| "dup2 pty slave".into())?;
    }
    Ok(name)
}
