//! The vsock device: its three queues (receive, transmit, event), the connections between
//! guest ports and host unix sockets, and the packets that carry them.

use super::packet::*;
use crate::devices::virtio::{
    ActivateError, IrqTrigger, VirtioDevice, INT_VRING, TYPE_VSOCK, VIRTIO_F_VERSION_1,
};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const QUEUE_SIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
const EVQ: usize = 2;
/// The receive buffer the host side advertises per connection.
const BUF_ALLOC: u32 = 256 << 10;
/// The largest payload one packet carries.
const MAX_PAYLOAD: usize = 64 << 10;
/// Host-side ports of host-initiated connections start here.
const FIRST_LOCAL_PORT: u32 = 1 << 30;

/// Creating a vsock device failed.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// vsock socket {path}: {source}
    #[error("vsock socket {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    /// cannot create an eventfd: {0}
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
}

/// One stream between a guest port and a host unix socket.
pub(crate) struct Conn {
    pub(crate) stream: UnixStream,
    established: bool,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes sent to the guest.
    tx_cnt: u32,
    /// Bytes received from the guest and written to the stream.
    fwd_cnt: u32,
    /// Whether the event loop should watch the stream (it has credit and is established).
    pub(crate) want_watch: bool,
    pub(crate) watched: bool,
}

impl Conn {
    fn new(stream: UnixStream, established: bool) -> Conn {
        Conn {
            stream,
            established,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            tx_cnt: 0,
            fwd_cnt: 0,
            want_watch: established,
            watched: false,
        }
    }

    fn credit(&self) -> usize {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight) as usize
    }
}

/// (host-side port, guest port).
pub(crate) type Key = (u32, u32);

/// A virtio-vsock device.
pub struct Vsock {
    pub(crate) cid: u64,
    pub(crate) uds: PathBuf,
    pub(crate) listener: UnixListener,
    pub(crate) conns: HashMap<Key, Conn>,
    /// Connections closed since the event loop last looked (their streams still open).
    pub(crate) closed: Vec<Conn>,
    ctl: VecDeque<Header>,
    next_port: u32,
    pub(crate) acked_features: u64,
    pub(crate) queues: Vec<Queue>,
    pub(crate) mem: Option<GuestMemoryMmap>,
    pub(crate) irq: Arc<IrqTrigger>,
    pub rx_evt: EventFd,
    pub tx_evt: EventFd,
    pub ev_evt: EventFd,
}

impl Vsock {
    /// A device with guest CID `cid` whose host side listens on `uds`.
    pub fn new(cid: u64, uds: &Path, irq: Arc<IrqTrigger>) -> Result<Self, VsockError> {
        let listen = |source| VsockError::Listen {
            path: uds.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(uds).map_err(listen)?;
        listener.set_nonblocking(true).map_err(listen)?;
        let evt = || EventFd::new(libc::EFD_NONBLOCK).map_err(VsockError::EventFd);
        Ok(Vsock {
            cid,
            uds: uds.to_path_buf(),
            listener,
            conns: HashMap::new(),
            closed: Vec::new(),
            ctl: VecDeque::new(),
            next_port: FIRST_LOCAL_PORT,
            acked_features: 0,
            queues: Vec::new(),
            mem: None,
            irq,
            rx_evt: evt()?,
            tx_evt: evt()?,
            ev_evt: evt()?,
        })
    }

    fn reply(&self, key: Key, op: u16, conn: Option<&Conn>) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: self.cid,
            src_port: key.0,
            dst_port: key.1,
            type_: TYPE_STREAM,
            op,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: conn.map_or(0, |c| c.fwd_cnt),
            ..Default::default()
        }
    }

    fn close(&mut self, key: Key) {
        if let Some(c) = self.conns.remove(&key) {
            self.closed.push(c);
        }
    }

    /// Writes one packet into the next receive buffer; false if the guest has none.
    fn send_to_guest(&mut self, hdr: &Header, payload: &[u8]) -> bool {
        let Some(mem) = self.mem.clone() else {
            return false;
        };
        let Some(queue) = self.queues.get_mut(RX) else {
            return false;
        };
        let Some(chain) = queue.pop_descriptor_chain(&mem) else {
            return false;
        };
        let head = chain.head_index();
        let mut data = hdr.bytes().to_vec();
        data.extend_from_slice(payload);
        let descs: Vec<_> = chain.filter(|d| d.is_write_only()).collect();
        let written = write_descs(&mem, &descs, &data);
        let _ = queue.add_used(&mem, head, written as u32);
        let _ = self.irq.trigger(INT_VRING);
        true
    }

    /// Sends queued control packets while the guest has buffers.
    fn flush_ctl(&mut self) {
        while let Some(h) = self.ctl.front().copied() {
            if !self.send_to_guest(&h, &[]) {
                return;
            }
            self.ctl.pop_front();
        }
    }

    /// Serves the transmit queue: the guest's requests, data and credit.
    pub fn process_tx(&mut self) {
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let mut packets = Vec::new();
        if let Some(queue) = self.queues.get_mut(TX) {
            let mut used = Vec::new();
            if let Ok(iter) = queue.iter(&mem) {
                for chain in iter {
                    let head = chain.head_index();
                    let mut bytes = Vec::new();
                    for d in chain {
                        if d.is_write_only()
                            || bytes.len() + d.len() as usize > HDR_LEN + MAX_PAYLOAD
                        {
                            break;
                        }
                        let start = bytes.len();
                        bytes.resize(start + d.len() as usize, 0);
                        if mem.read_slice(&mut bytes[start..], d.addr()).is_err() {
                            bytes.truncate(start);
                            break;
                        }
                    }
                    packets.push(bytes);
                    used.push(head);
                }
            }
            for head in &used {
                let _ = queue.add_used(&mem, *head, 0);
            }
            if !used.is_empty() {
                let _ = self.irq.trigger(INT_VRING);
            }
        }
        for bytes in packets {
            if let Some(h) = Header::parse(&bytes) {
                let end = (HDR_LEN + h.len as usize).min(bytes.len());
                self.handle_guest_packet(&h, &bytes[HDR_LEN..end]);
            }
        }
        self.flush_ctl();
    }

    /// One packet from the guest.
    fn handle_guest_packet(&mut self, h: &Header, payload: &[u8]) {
        if h.dst_cid != HOST_CID || h.src_cid != self.cid || h.type_ != TYPE_STREAM {
            return;
        }
        let key = (h.dst_port, h.src_port);
        if let Some(c) = self.conns.get_mut(&key) {
            c.peer_buf_alloc = h.buf_alloc;
            c.peer_fwd_cnt = h.fwd_cnt;
            c.want_watch = c.established && c.credit() > 0;
        }
        match h.op {
            OP_REQUEST => {
                if self.conns.contains_key(&key) {
                    return;
                }
                let path = format!("{}_{}", self.uds.display(), h.dst_port);
                match UnixStream::connect(&path) {
                    Ok(stream) => {
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        let mut c = Conn::new(stream, true);
                        c.peer_buf_alloc = h.buf_alloc;
                        c.peer_fwd_cnt = h.fwd_cnt;
                        let r = self.reply(key, OP_RESPONSE, Some(&c));
                        self.conns.insert(key, c);
                        self.ctl.push_back(r);
                    }
                    Err(_) => {
                        let r = self.reply(key, OP_RST, None);
                        self.ctl.push_back(r);
                    }
                }
            }
            OP_RESPONSE => match self.conns.get_mut(&key) {
                Some(c) if !c.established => {
                    c.established = true;
                    c.want_watch = c.credit() > 0;
                    let _ = c.stream.write_all(format!("OK {}\n", key.0).as_bytes());
                }
                _ => {
                    let r = self.reply(key, OP_RST, None);
                    self.ctl.push_back(r);
                }
            },
            OP_RW => {
                let ok = match self.conns.get_mut(&key) {
                    Some(c) if c.established => {
                        let ok = c.stream.write_all(payload).is_ok();
                        c.fwd_cnt = c.fwd_cnt.wrapping_add(payload.len() as u32);
                        ok
                    }
                    _ => false,
                };
                if ok {
                    let r = self.reply(key, OP_CREDIT_UPDATE, self.conns.get(&key));
                    self.ctl.push_back(r);
                } else {
                    self.close(key);
                    let r = self.reply(key, OP_RST, None);
                    self.ctl.push_back(r);
                }
            }
            OP_CREDIT_REQUEST if self.conns.contains_key(&key) => {
                let r = self.reply(key, OP_CREDIT_UPDATE, self.conns.get(&key));
                self.ctl.push_back(r);
            }
            OP_SHUTDOWN if self.conns.contains_key(&key) => {
                self.close(key);
                let r = self.reply(key, OP_RST, None);
                self.ctl.push_back(r);
            }
            OP_RST => self.close(key),
            _ => {}
        }
    }

    /// Data from the host end of `key` to the guest: one read, as far as the guest's credit
    /// and its next receive buffer allow. Without either, the stream is not watched until
    /// the guest gives more.
    pub(crate) fn stream_readable(&mut self, key: Key) {
        self.flush_ctl();
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let credit = match self.conns.get_mut(&key) {
            Some(c) if self.ctl.is_empty() && c.credit() > 0 => c.credit(),
            Some(c) => {
                c.want_watch = false;
                return;
            }
            None => return,
        };
        let Some(queue) = self.queues.get_mut(RX) else {
            return;
        };
        let Some(chain) = queue.pop_descriptor_chain(&mem) else {
            if let Some(c) = self.conns.get_mut(&key) {
                c.want_watch = false;
            }
            return;
        };
        let head = chain.head_index();
        let descs: Vec<_> = chain.filter(|d| d.is_write_only()).collect();
        let cap: usize = descs.iter().map(|d| d.len() as usize).sum();
        let want = cap.saturating_sub(HDR_LEN).min(credit).min(MAX_PAYLOAD);
        let Some(c) = self.conns.get_mut(&key) else {
            queue.go_to_previous_position();
            return;
        };
        if want == 0 {
            queue.go_to_previous_position();
            c.want_watch = false;
            return;
        }
        let mut buf = vec![0u8; HDR_LEN + want];
        match c.stream.read(&mut buf[HDR_LEN..]) {
            Ok(n) if n > 0 => {
                c.tx_cnt = c.tx_cnt.wrapping_add(n as u32);
                let mut h = Header {
                    src_cid: HOST_CID,
                    dst_cid: self.cid,
                    src_port: key.0,
                    dst_port: key.1,
                    type_: TYPE_STREAM,
                    op: OP_RW,
                    buf_alloc: BUF_ALLOC,
                    fwd_cnt: c.fwd_cnt,
                    ..Default::default()
                };
                h.len = n as u32;
                buf[..HDR_LEN].copy_from_slice(&h.bytes());
                let written = write_descs(&mem, &descs, &buf[..HDR_LEN + n]);
                let _ = queue.add_used(&mem, head, written as u32);
                let _ = self.irq.trigger(INT_VRING);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                queue.go_to_previous_position();
            }
            end => {
                // End of stream (or an error): the host end is done.
                queue.go_to_previous_position();
                let mut h = self.reply(key, OP_SHUTDOWN, self.conns.get(&key));
                if end.is_ok() {
                    h.flags = 3; // no more sends nor receives
                } else {
                    h.op = OP_RST;
                }
                self.ctl.push_back(h);
                self.close(key);
                self.flush_ctl();
            }
        }
    }

    /// New receive buffers: pending control packets, and streams that waited for room.
    pub fn process_rx(&mut self) {
        self.flush_ctl();
        for c in self.conns.values_mut() {
            if c.established && c.credit() > 0 {
                c.want_watch = true;
            }
        }
    }

    /// A host program connected to the device's socket: `CONNECT <port>\n` opens a
    /// connection to that guest port.
    pub fn accept(&mut self) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while line.len() < 32 && stream.read_exact(&mut byte).is_ok() && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            let port = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.strip_prefix("CONNECT "))
                .and_then(|p| p.trim().parse::<u32>().ok());
            let Some(port) = port else {
                continue;
            };
            let _ = stream.set_read_timeout(None);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let local = self.next_port;
            self.next_port = self.next_port.wrapping_add(1).max(FIRST_LOCAL_PORT);
            let key = (local, port);
            let c = Conn::new(stream, false);
            let h = self.reply(key, OP_REQUEST, Some(&c));
            self.conns.insert(key, c);
            self.ctl.push_back(h);
        }
        self.flush_ctl();
    }

    /// Tells the guest that every connection is gone (after a restore).
    pub(crate) fn transport_reset(&mut self) {
        let (Some(mem), Some(q)) = (self.mem.clone(), self.queues.get_mut(EVQ)) else {
            return;
        };
        if let Some(chain) = q.pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            let mut len = 0;
            if let Some(d) = chain.into_iter().next() {
                if d.is_write_only() && d.len() >= 4 && mem.write_obj(0u32, d.addr()).is_ok() {
                    len = 4;
                }
            }
            let _ = q.add_used(&mem, head, len);
            let _ = self.irq.trigger(INT_VRING);
        }
    }

    /// The stream descriptors, by connection.
    pub(crate) fn stream_fds(&self) -> Vec<(Key, RawFd)> {
        self.conns
            .iter()
            .map(|(k, c)| (*k, c.stream.as_raw_fd()))
            .collect()
    }
}

/// Writes `data` across the descriptors; returns the bytes written.
fn write_descs(
    mem: &GuestMemoryMmap,
    descs: &[virtio_queue::desc::split::Descriptor],
    data: &[u8],
) -> usize {
    let mut written = 0usize;
    for d in descs {
        if written == data.len() {
            break;
        }
        let n = (d.len() as usize).min(data.len() - written);
        if mem
            .write_slice(&data[written..written + n], d.addr())
            .is_err()
        {
            break;
        }
        written += n;
    }
    written
}

impl Drop for Vsock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.uds);
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }
    fn avail_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE]
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::super::read_config_bytes(&self.cid.to_le_bytes(), offset, data);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), ActivateError> {
        self.queues = queues;
        self.acked_features = acked_features;
        self.mem = Some(mem);
        let _ = self.tx_evt.write(1);
        Ok(())
    }
    fn reset(&mut self) {
        // Established streams end with the driver. A host program still waiting for its
        // connection (it may have connected while the guest was booting, before the driver
        // reset the device) asks again once the driver is back.
        let keys: Vec<Key> = self.conns.keys().copied().collect();
        self.ctl.clear();
        for k in keys {
            match self.conns.get(&k) {
                Some(c) if !c.established => {
                    let h = self.reply(k, OP_REQUEST, Some(c));
                    self.ctl.push_back(h);
                }
                _ => self.close(k),
            }
        }
        self.queues.clear();
        self.mem = None;
        self.acked_features = 0;
    }
}
