//! A host tap device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`): whole Ethernet frames, no
//! packet-information prefix, non-blocking.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// Opening a tap failed.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// tap name {0:?}: 1-15 bytes without '/' or NUL
    #[error("tap name {0:?}: 1-15 bytes without '/' or NUL")]
    Name(String),
    /// /dev/net/tun: {0}
    #[error("/dev/net/tun: {0}")]
    Open(std::io::Error),
    /// tap {name}: {source}
    #[error("tap {name}: {source}")]
    Attach {
        name: String,
        source: std::io::Error,
    },
}

/// An attached tap device.
pub struct Tap {
    file: File,
    pub name: String,
}

impl Tap {
    /// Attaches to (or creates) the tap `name` in this process's network namespace.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0']) {
            return Err(TapError::Name(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `ifr` is, on a tun descriptor.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            return Err(TapError::Attach {
                name: name.to_string(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// Reads one frame (`WouldBlock` when there is none).
    pub fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }

    /// Writes one frame.
    pub fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<usize> {
        self.file.write(frame)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
