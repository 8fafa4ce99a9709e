//! A host tap device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), non-blocking:
//! every frame read or written is preceded by a `virtio_net_hdr_v1` (TUNSETVNETHDRSZ 12), so
//! the guest's header goes straight to and from the tap, as in Firecracker. No offloads are
//! enabled (TUNSETOFFLOAD 0): frames arrive whole and checksummed, without GSO.

use std::fs::{File, OpenOptions};
use std::io::Read;
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
    /// tap {name}: {what}: {source}
    #[error("tap {name}: {what}: {source}")]
    Setup {
        name: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// The size of the header before every frame: `virtio_net_hdr_v1`.
pub const VNET_HDR_LEN: usize = 12;

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
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `ifr` is, on a tun descriptor.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            return Err(TapError::Attach {
                name: name.to_string(),
                source: std::io::Error::last_os_error(),
            });
        }
        let setup = |what: &'static str| {
            let source = std::io::Error::last_os_error();
            TapError::Setup {
                name: name.to_string(),
                what,
                source,
            }
        };
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which `hdr_len` is.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(setup("TUNSETVNETHDRSZ"));
        }
        // SAFETY: TUNSETOFFLOAD takes its flags by value; 0 turns every offload off.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETOFFLOAD, 0 as libc::c_ulong) } < 0 {
            return Err(setup("TUNSETOFFLOAD"));
        }
        Ok(Tap {
            file,
            name: name.to_string(),
        })
    }

    /// Reads one header and frame (`WouldBlock` when there is none).
    pub fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }

    /// Reads one header and frame into `iovs` (`WouldBlock` when there is none). A frame
    /// larger than `iovs` is dropped by the kernel (EFAULT).
    ///
    /// # Safety
    ///
    /// Every iovec must describe memory that is mapped and writable for the whole call.
    pub unsafe fn readv(&self, iovs: &[libc::iovec]) -> std::io::Result<usize> {
        let n = libc::c_int::try_from(iovs.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the caller vouches for the iovecs; readv writes at most their lengths.
        let r = unsafe { libc::readv(self.file.as_raw_fd(), iovs.as_ptr(), n) };
        usize::try_from(r).map_err(|_| std::io::Error::last_os_error())
    }

    /// Writes one header and frame gathered from `iovs`.
    ///
    /// # Safety
    ///
    /// Every iovec must describe memory that is mapped and readable for the whole call.
    pub unsafe fn writev(&self, iovs: &[libc::iovec]) -> std::io::Result<usize> {
        let n = libc::c_int::try_from(iovs.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the caller vouches for the iovecs; writev only reads them.
        let r = unsafe { libc::writev(self.file.as_raw_fd(), iovs.as_ptr(), n) };
        usize::try_from(r).map_err(|_| std::io::Error::last_os_error())
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
