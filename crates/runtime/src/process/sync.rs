//! The channel between the runtime and the process it cloned: a `SOCK_SEQPACKET` pair, one
//! message per packet (a tag byte and an optional text). Close-on-exec, so a successful
//! `execve` in the child shows up as end-of-file on the parent side.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

/// A message between runtime and child.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: ids are mapped; go on.
    Go,
    /// Parent → child: the cgroup is joined. Sent after `Go`, so the child builds its
    /// rootfs while we wait for the (slow, on cgroup v1) cgroup attach.
    Joined,
    /// Child → parent: mounts are ready; run prestart and createRuntime hooks.
    RunHooks,
    /// Parent → child: the runtime-namespace hooks are done.
    HooksDone,
    /// Child → parent: the container is created and waits for `start`.
    Ready,
    /// Child → parent: setting up failed.
    Failed(String),
    /// Child → parent: the container's init is this (host) pid: the child had to fork it
    /// into a pid namespace it made after joining a user namespace.
    Pid(i32),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel(UnixStream);

/// A connected pair `(parent end, child end)`.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair".into())?;
    Ok((Channel(UnixStream::from(a)), Channel(UnixStream::from(b))))
}

impl Channel {
    pub fn send(&mut self, msg: &Msg) -> Result<()> {
        let mut buf = Vec::with_capacity(8);
        match msg {
            Msg::Go => buf.push(b'G'),
            Msg::Joined => buf.push(b'J'),
            Msg::RunHooks => buf.push(b'H'),
            Msg::HooksDone => buf.push(b'h'),
            Msg::Ready => buf.push(b'R'),
            Msg::Pid(p) => {
                buf.push(b'P');
                buf.extend_from_slice(p.to_string().as_bytes());
            }
            Msg::Failed(s) => {
                buf.push(b'E');
                buf.extend_from_slice(&s.as_bytes()[..s.len().min(4000)]);
            }
        }
        match self.0.write_all(&buf) {
            Ok(()) => Ok(()),
            // The peer failed and went away: its report, if it sent one, says why.
            Err(e) => Err(self.pending_failure().unwrap_or(Error::Io {
                what: "send to container process".into(),
                source: e,
            })),
        }
    }

    /// After an error on the channel: the `Failed` report the peer queued before it went
    /// away, if any. A reset connection reports its error once, then the queued packets.
    fn pending_failure(&mut self) -> Option<Error> {
        let mut buf = [0u8; 4096];
        for _ in 0..4 {
            match self.0.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) if buf[0] == b'E' => {
                    return Some(Error::Init(
                        String::from_utf8_lossy(&buf[1..n]).into_owned(),
                    ))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            }
        }
        None
    }

    /// Sends a failure report, then reads until the peer closes its end (at most
    /// `linger`), so that messages the peer already queued for us do not turn our exit
    /// into a connection reset that hides the report.
    pub fn fail(mut self, report: String, linger: std::time::Duration) {
        let _ = self.send(&Msg::Failed(report));
        let _ = self.0.shutdown(std::net::Shutdown::Write);
        let _ = self.0.set_read_timeout(Some(linger));
        let mut buf = [0u8; 4096];
        while matches!(self.0.read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Receives one message; `None` at end-of-file (the peer exited or exec'd).
    pub fn recv(&mut self) -> Result<Option<Msg>> {
        let mut buf = [0u8; 4096];
        let n = loop {
            match self.0.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(self.pending_failure().unwrap_or(Error::Io {
                        what: "receive from container process".into(),
                        source: e,
                    }))
                }
                Ok(n) => break n,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(match buf[0] {
            b'G' => Msg::Go,
            b'J' => Msg::Joined,
            b'H' => Msg::RunHooks,
            b'h' => Msg::HooksDone,
            b'R' => Msg::Ready,
            b'E' => Msg::Failed(String::from_utf8_lossy(&buf[1..n]).into_owned()),
            b'P' => Msg::Pid(
                std::str::from_utf8(&buf[1..n])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::Init("bad pid from container process".into()))?,
            ),
            t => {
                return Err(Error::Init(format!(
                    "unexpected message {t:#x} from container process"
                )))
            }
        }))
    }

    /// Waits for `want`; a failure report or end-of-file becomes an error.
    pub fn expect(&mut self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Failed(s)) => Err(Error::Init(s)),
            Some(m) => Err(Error::Init(format!(
                "expected {want:?} from container process, got {m:?}"
            ))),
            None => Err(Error::Init("container process exited during setup".into())),
        }
    }

    pub fn into_fd(self) -> OwnedFd {
        OwnedFd::from(self.0)
    }
}
