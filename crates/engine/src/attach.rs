//! The monitor's attach socket (`<root>/containers/<id>/attach.sock`, as conmon's
//! `attach`): `berth attach`, `start -a` and `run -a` talk to a running container's
//! terminal or stdin/stdout/stderr through the monitor that holds them.
//!
//! The socket carries frames both ways: one kind byte, a 4-byte big-endian length, then
//! the payload. From the client: [`IN_DATA`] (bytes for the container's stdin or
//! terminal), [`IN_RESIZE`] (rows, cols: two big-endian u16), [`IN_CLOSE`] (close the
//! container's stdin), and [`IN_READY`] (the end of what a `start -a` client says before
//! the container starts: the monitor reads up to it, so a terminal's size is set before
//! the container's first `stty size`). From the monitor: [`OUT_STDOUT`], [`OUT_STDERR`] (the container's
//! output as it comes, the terminal's as stdout) and [`OUT_EXIT`] (the exit code, a
//! big-endian i32) once the container has exited; then the monitor closes the connection.
//!
//! The socket path may be longer than `sun_path` (108 bytes) under a deep `--root`: both
//! ends reach it through `/proc/self/fd/N/attach.sock`, N an `O_PATH` descriptor of the
//! container's directory.

use crate::error::io;
use crate::{Error, Result};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// The socket's name in the container's directory.
pub const ATTACH_SOCK: &str = "attach.sock";

pub const IN_DATA: u8 = b'i';
pub const IN_RESIZE: u8 = b'w';
pub const IN_CLOSE: u8 = b'c';
pub const IN_READY: u8 = b'r';
pub const OUT_STDOUT: u8 = b'o';
pub const OUT_STDERR: u8 = b'e';
pub const OUT_EXIT: u8 = b'x';

/// The largest payload a frame may carry (a client sending more is dropped).
pub const MAX_FRAME: usize = 1 << 20;

/// One frame: kind, length, payload.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("attach frame of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some((head[0], body)))
}

/// Frames parsed out of a byte stream that arrives in pieces (the monitor's side, which
/// never blocks on a client).
#[derive(Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Adds bytes; every complete frame goes to `f`. An oversized frame is an error.
    pub fn feed(&mut self, data: &[u8], mut f: impl FnMut(u8, &[u8])) -> std::io::Result<()> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while self.buf.len() - at >= 5 {
            let h = &self.buf[at..at + 5];
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
            if len > MAX_FRAME {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("attach frame of {len} bytes"),
                ));
            }
            if self.buf.len() - at - 5 < len {
                break;
            }
            f(h[0], &self.buf[at + 5..at + 5 + len]);
            at += 5 + len;
        }
        self.buf.drain(..at);
        Ok(())
    }
}

/// An `O_PATH` descriptor of a directory, to name a socket in it by a short path
/// (`/proc/self/fd/N/NAME`: sun_path holds 108 bytes, a deep `--root` does not fit).
pub fn dir_fd(dir: &Path) -> Result<OwnedFd> {
    let f = File::options()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
        .open(dir)
        .map_err(io(format!("open {}", dir.display())))?;
    Ok(f.into())
}

pub fn short_path(fd: &OwnedFd, name: &str) -> String {
    format!("/proc/self/fd/{}/{name}", fd.as_raw_fd())
}

/// Connects to the attach socket of the container whose directory is `dir`.
pub fn connect(dir: &Path) -> Result<UnixStream> {
    let fd = dir_fd(dir)?;
    UnixStream::connect(short_path(&fd, ATTACH_SOCK)).map_err(|e| {
        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) {
            Error::Conflict(format!(
                "no attach socket in {} (the container's monitor is not running)",
                dir.display()
            ))
        } else {
            io(format!("connect to {}/{ATTACH_SOCK}", dir.display()))(e)
        }
    })
}

/// What a client asked the monitor to do.
#[derive(Debug, PartialEq)]
pub enum Input<'a> {
    Data(&'a [u8]),
    Resize(u16, u16),
    CloseStdin,
}

/// One frame from a client, as the request it is (unknown kinds are ignored).
fn dispatch(kind: u8, body: &[u8], f: &mut impl FnMut(Input<'_>)) {
    match kind {
        IN_DATA => f(Input::Data(body)),
        IN_RESIZE if body.len() == 4 => f(Input::Resize(
            u16::from_be_bytes([body[0], body[1]]),
            u16::from_be_bytes([body[2], body[3]]),
        )),
        IN_CLOSE => f(Input::CloseStdin),
        _ => {}
    }
}

struct Client {
    stream: UnixStream,
    frames: Deframer,
}

/// The monitor's side: the listening socket and its connected clients. Output goes to
/// every client; a client that cannot take it within a second is dropped (a stuck client
/// never stalls the container's output or its log).
pub struct Hub {
    listener: UnixListener,
    clients: Vec<Client>,
    /// Frames the first client sent before [`IN_READY`], kept until [`Hub::serve_pending`].
    early: Vec<(u8, Vec<u8>)>,
}

impl Hub {
    /// Binds `<dir>/attach.sock` (replacing a stale one of an earlier monitor).
    pub fn bind(dir: &Path) -> Result<Hub> {
        let fd = dir_fd(dir)?;
        let path = short_path(&fd, ATTACH_SOCK);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(io(format!("bind {}/{ATTACH_SOCK}", dir.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(io("attach socket: O_NONBLOCK".to_string()))?;
        Ok(Hub {
            listener,
            clients: Vec::new(),
            early: Vec::new(),
        })
    }

    /// Closes the socket and removes its file: `berth attach` then reads the log instead
    /// (the monitor is about to become berth-pump, which serves no clients).
    pub fn remove(self, dir: &Path) {
        if let Ok(fd) = dir_fd(dir) {
            let _ = std::fs::remove_file(short_path(&fd, ATTACH_SOCK));
        }
    }

    /// Waits up to `limit` for a first client (`start -a`: nothing of the container's
    /// output is missed) and reads what it says before the container starts, up to its
    /// [`IN_READY`] (within `limit` too). Whether one came.
    pub fn wait_for_client(&mut self, limit: Duration) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            self.listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = limit.as_millis().min(u16::MAX as u128) as u16;
        if matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0) {
            self.accept();
        }
        let Some(first) = self.clients.first() else {
            return false;
        };
        // Frame by frame (no read past IN_READY: what follows is the pump's to serve).
        let mut s = &first.stream;
        if s.set_read_timeout(Some(limit)).is_ok() {
            while let Ok(Some((kind, body))) = read_frame(&mut s) {
                if kind == IN_READY {
                    break;
                }
                self.early.push((kind, body));
            }
            let _ = s.set_read_timeout(None);
        }
        true
    }

    /// The terminal size the first client gave before [`IN_READY`] (the last one), for
    /// config.json's `process.consoleSize`: the runtime sizes the pty before the container's
    /// process runs (`run --detach` starts it before the monitor holds the master).
    pub fn early_size(&self) -> Option<(u16, u16)> {
        self.early
            .iter()
            .rev()
            .find_map(|(kind, body)| match (kind, &body[..]) {
                (&IN_RESIZE, [r0, r1, c0, c1]) => Some((
                    u16::from_be_bytes([*r0, *r1]),
                    u16::from_be_bytes([*c0, *c1]),
                )),
                _ => None,
            })
    }

    /// The descriptors to poll: the listener first, then each client.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.clients.iter().map(|c| c.stream.as_fd()))
            .collect()
    }

    /// Accepts every pending connection.
    pub fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(false).is_err()
                || stream
                    .set_write_timeout(Some(Duration::from_secs(1)))
                    .is_err()
            {
                continue;
            }
            tracing::debug!("attach client connected");
            self.clients.push(Client {
                stream,
                frames: Deframer::default(),
            });
        }
    }

    /// Reads from the clients whose descriptors polled ready (`ready[k]` for the k-th
    /// client of [`Hub::fds`] minus the listener); their requests go to `f`. A client that
    /// closed or sent garbage is dropped.
    pub fn serve(&mut self, ready: &[bool], mut f: impl FnMut(Input<'_>)) {
        let mut buf = [0u8; 8192];
        let mut keep = Vec::with_capacity(self.clients.len());
        for (i, mut c) in std::mem::take(&mut self.clients).into_iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                keep.push(c);
                continue;
            }
            let n = match (&c.stream).read(&mut buf) {
                Ok(0) | Err(_) => continue,
                Ok(n) => n,
            };
            let ok = c
                .frames
                .feed(&buf[..n], |kind, body| dispatch(kind, body, &mut f));
            if ok.is_ok() {
                keep.push(c);
            }
        }
        self.clients = keep;
    }

    /// Serves what the clients have already sent: first what the first one said before
    /// [`IN_READY`], then a non-blocking look at every client.
    pub fn serve_pending(&mut self, mut f: impl FnMut(Input<'_>)) {
        for (kind, body) in std::mem::take(&mut self.early) {
            dispatch(kind, &body, &mut f);
        }
        let mut fds: Vec<nix::poll::PollFd<'_>> = self
            .clients
            .iter()
            .map(|c| nix::poll::PollFd::new(c.stream.as_fd(), nix::poll::PollFlags::POLLIN))
            .collect();
        if fds.is_empty() || nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_err() {
            return;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        self.serve(&ready, f);
    }

    /// Sends the container's output to every client.
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let frame = encode(kind, data);
        self.clients
            .retain(|c| (&c.stream).write_all(&frame).is_ok());
    }

    /// The container exited with `code`: told to every client, whose connections end.
    pub fn exited(&mut self, code: i32) {
        self.broadcast(OUT_EXIT, &code.to_be_bytes());
        for c in self.clients.drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Writes what a client sent for the container's stdin or terminal to `fd` (non-blocking:
/// what the container does not read is dropped rather than stall the monitor).
pub fn write_input(fd: BorrowedFd<'_>, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        match nix::unistd::write(fd, rest) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, dropped = rest.len(), "container input");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut wire = encode(IN_DATA, b"hello");
        wire.extend(encode(IN_RESIZE, &[0, 24, 0, 80]));
        wire.extend(encode(IN_CLOSE, b""));
        let mut d = Deframer::default();
        let mut got = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b), |k, body| {
                got.push((k, body.to_vec()))
            })
            .expect("feed");
        }
        assert_eq!(
            got,
            vec![
                (IN_DATA, b"hello".to_vec()),
                (IN_RESIZE, vec![0, 24, 0, 80]),
                (IN_CLOSE, vec![])
            ]
        );
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).expect("read"),
            Some((IN_DATA, b"hello".to_vec()))
        );
        let big = [b'i', 0xff, 0xff, 0xff, 0xff];
        assert!(Deframer::default().feed(&big, |_, _| {}).is_err());
    }

    /// A `start -a` client's terminal size arrives before the container starts even when
    /// the client writes it after connecting (the monitor reads up to IN_READY); what it
    /// sends after IN_READY comes next.
    #[test]
    fn what_a_client_says_before_ready_is_served_before_the_start() {
        let dir = std::env::temp_dir().join(format!("berth-attach-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut hub = Hub::bind(&dir).expect("bind");
        let d2 = dir.clone();
        let client = std::thread::spawn(move || {
            let mut s = connect(&d2).expect("connect");
            std::thread::sleep(Duration::from_millis(100));
            let mut wire = encode(IN_RESIZE, &[0, 33, 0, 91]);
            wire.extend(encode(IN_READY, b""));
            wire.extend(encode(IN_DATA, b"later"));
            s.write_all(&wire).expect("write");
            s
        });
        assert!(hub.wait_for_client(Duration::from_secs(5)));
        assert_eq!(hub.early_size(), Some((33, 91)));
        let _s = client.join().expect("client");
        let mut got = Vec::new();
        hub.serve_pending(|i| got.push(format!("{i:?}")));
        assert_eq!(got, ["Resize(33, 91)", "Data([108, 97, 116, 101, 114])"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
