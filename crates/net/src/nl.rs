//! Netlink messages built by hand (netlink(7): `nlmsghdr`, then a family header, then
//! type-length-value attributes padded to 4 bytes) and a blocking socket that sends them and
//! reads the kernel's acknowledgements. Shared by rtnetlink (link.rs) and nf_tables (nft.rs).

use crate::{kernel, Error, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use std::os::fd::{AsFd, OwnedFd};

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// A nested attribute (`NLA_F_NESTED`).
pub const NLA_F_NESTED: u16 = 0x8000;

/// One message under construction.
#[derive(Debug, Clone)]
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    /// A message of `kind` with `flags`; its family header is added with [`Msg::raw`].
    pub fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by the socket
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends bytes as they are (a family header), padded to 4.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// An attribute of `kind` holding `data`.
    pub fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut b = Vec::with_capacity(s.len() + 1);
        b.extend_from_slice(s.as_bytes());
        b.push(0);
        self.attr(kind, &b)
    }

    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A big-endian u32 (nf_tables' attributes are in network order).
    pub fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Opens a nested attribute; closed by [`Msg::end`].
    pub fn nest(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end(&mut self) -> &mut Self {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        while self.nests.pop().is_some() {}
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// A reply message: its type, flags and payload (after the 16-byte header).
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: Vec<u8>,
}

/// The attributes of a payload from `at` on: (kind without flags, data).
pub fn attrs(payload: &[u8], mut at: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            break;
        }
        out.push((kind, &payload[at + 4..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// A netlink socket of one protocol, bound in the network namespace of the thread that
/// made it.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn route() -> Result<Socket> {
        Socket::open(SockProtocol::NetlinkRoute)
    }

    pub fn netfilter() -> Result<Socket> {
        Socket::open(SockProtocol::NetlinkNetFilter)
    }

    fn open(proto: SockProtocol) -> Result<Socket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            proto,
        )
        .map_err(kernel("open a netlink socket"))?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &NetlinkAddr::new(0, 0),
        )
        .map_err(kernel("bind a netlink socket"))?;
        // Never wait forever for an answer the kernel does not send.
        nix::sys::socket::setsockopt(
            &fd,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(10, 0),
        )
        .map_err(kernel("set a netlink socket's timeout"))?;
        Ok(Socket { fd, seq: 1 })
    }

    /// Sends `msgs` in one datagram (an nf_tables batch, or requests in a row) and waits for
    /// the acknowledgement of each; the first error, as `what(index)` names it. Replies
    /// that are not acknowledgements are returned.
    pub fn transact(
        &mut self,
        msgs: &mut [Msg],
        what: &dyn Fn(usize) -> String,
    ) -> Result<Vec<Reply>> {
        let first = self.seq;
        let mut out = Vec::new();
        let mut acked_seqs = Vec::new();
        for m in msgs.iter_mut() {
            let flags = u16::from_ne_bytes([m.buf[6], m.buf[7]]);
            if flags & NLM_F_ACK != 0 || flags & NLM_F_DUMP == NLM_F_DUMP {
                acked_seqs.push(self.seq);
            }
            out.extend_from_slice(m.finish(self.seq));
            self.seq = self.seq.wrapping_add(1);
        }
        send(
            std::os::fd::AsRawFd::as_raw_fd(&self.fd),
            &out,
            MsgFlags::empty(),
        )
        .map_err(kernel("send a netlink message"))?;
        let mut replies = Vec::new();
        let mut first_err: Option<Error> = None;
        let mut buf = vec![0u8; 64 * 1024];
        while !acked_seqs.is_empty() {
            // The kernel answers within send(); after an error, what is queued is all
            // there is (a failed nf_tables batch may leave messages unanswered).
            let flags = if first_err.is_some() {
                MsgFlags::MSG_DONTWAIT
            } else {
                MsgFlags::empty()
            };
            let n = loop {
                match recv(
                    std::os::fd::AsRawFd::as_raw_fd(&self.fd.as_fd()),
                    &mut buf,
                    flags,
                ) {
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) if first_err.is_some() => break 0,
                    r => break r.map_err(kernel("read a netlink reply"))?,
                }
            };
            if n == 0 {
                break;
            }
            let mut at = 0;
            while at + 16 <= n {
                let len =
                    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
                if len < 16 || at + len > n {
                    break;
                }
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]);
                let seq =
                    u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
                let payload = &buf[at + 16..at + len];
                match kind {
                    NLMSG_ERROR if payload.len() >= 4 => {
                        let code =
                            i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        acked_seqs.retain(|s| *s != seq);
                        if code != 0 && first_err.is_none() {
                            let idx = seq.wrapping_sub(first) as usize;
                            first_err = Some(Error::Kernel {
                                what: what(idx),
                                source: Errno::from_raw(-code),
                            });
                        }
                    }
                    NLMSG_DONE => acked_seqs.retain(|s| *s != seq),
                    _ => replies.push(Reply {
                        kind,
                        flags,
                        seq,
                        payload: payload.to_vec(),
                    }),
                }
                at += (len + 3) & !3;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(replies),
        }
    }
}

/// The errno of a kernel error, if it is one.
pub fn errno(e: &Error) -> Option<Errno> {
    match e {
        Error::Kernel { source, .. } => Some(*source),
        _ => None,
    }
}
