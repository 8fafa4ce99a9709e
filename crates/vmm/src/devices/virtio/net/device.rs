//! The net device. The tap carries a `virtio_net_hdr_v1` before every frame (see
//! `tap.rs`), so frames move between guest memory and the tap without copies: a transmit
//! chain is written to the tap with one `writev` over its buffers, header included; a frame
//! from the tap is read with one `readv` straight into the next receive chain, after which
//! the device sets the header's `flags` to 0 (no checksum offload is offered) and
//! `num_buffers` to 1. A frame is read only when a receive chain is there to take it.

use super::tap::{Tap, TapError, VNET_HDR_LEN};
use crate::devices::virtio::{
    ActivateError, IrqTrigger, VirtioDevice, INT_VRING, TYPE_NET, VIRTIO_F_VERSION_1,
};
use std::sync::Arc;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const QUEUE_SIZE: u16 = 256;
const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// `virtio_net_hdr_v1` (with VIRTIO_F_VERSION_1 the header always has `num_buffers`).
pub const HDR_LEN: usize = VNET_HDR_LEN;
/// The largest frame: a 1500-byte MTU plus the Ethernet header (no VLAN, no offloads).
pub const MAX_FRAME: usize = 1514;
/// Where `num_buffers` is in the header.
const NUM_BUFFERS: usize = 10;
const RX: usize = 0;
const TX: usize = 1;

/// Creating a net device failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// {0}
    #[error(transparent)]
    Tap(#[from] TapError),
    /// cannot create an eventfd: {0}
    #[error("cannot create an eventfd: {0}")]
    EventFd(std::io::Error),
}

/// A virtio-net device.
pub struct Net {
    pub(crate) tap: Tap,
    pub(crate) mac: [u8; 6],
    pub(crate) acked_features: u64,
    pub(crate) queues: Vec<Queue>,
    pub(crate) mem: Option<GuestMemoryMmap>,
    pub(crate) irq: Arc<IrqTrigger>,
    /// Signalled when the guest adds receive buffers.
    pub rx_evt: EventFd,
    /// Signalled when the guest queues frames to send.
    pub tx_evt: EventFd,
    /// Whether the event loop watches the tap (not while the guest has no receive buffer).
    pub(crate) tap_watched: bool,
}

/// A locally administered MAC address derived from `index` (the device's slot).
pub fn mac_for(index: usize) -> [u8; 6] {
    [0x06, 0xbe, 0x47, 0x00, 0x00, index as u8]
}

/// A chain's buffers: host iovecs, the same as guest ranges, and their total length.
type Buffers = (Vec<libc::iovec>, Vec<(GuestAddress, usize)>, usize);

/// The buffers of a descriptor chain, if each is of the wanted direction (`writable`) and
/// inside one guest memory region.
fn iovecs(
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
    writable: bool,
) -> Option<Buffers> {
    let mut iovs = Vec::new();
    let mut parts = Vec::new();
    let mut total = 0usize;
    for d in chain {
        if d.is_write_only() != writable {
            return None;
        }
        let len = d.len() as usize;
        if len == 0 {
            continue;
        }
        let slice = mem.get_slice(d.addr(), len).ok()?;
        iovs.push(libc::iovec {
            iov_base: slice.ptr_guard_mut().as_ptr().cast(),
            iov_len: slice.len(),
        });
        parts.push((d.addr(), len));
        total += len;
    }
    Some((iovs, parts, total))
}

/// Writes `bytes` at byte `offset` of the buffers `parts` (the header may span several).
fn write_at(mem: &GuestMemoryMmap, parts: &[(GuestAddress, usize)], offset: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        let mut at = offset + i;
        for (addr, len) in parts {
            if at < *len {
                let _ = mem.write_obj(*b, addr.unchecked_add(at as u64));
                break;
            }
            at -= len;
        }
    }
}

impl Net {
    /// Attaches to the tap `tap`; the guest sees the MAC address `mac`.
    pub fn new(tap: &str, mac: [u8; 6], irq: Arc<IrqTrigger>) -> Result<Self, NetError> {
        let evt = || EventFd::new(libc::EFD_NONBLOCK).map_err(NetError::EventFd);
        Ok(Net {
            tap: Tap::open(tap)?,
            mac,
            acked_features: 0,
            queues: Vec::new(),
            mem: None,
            irq,
            rx_evt: evt()?,
            tx_evt: evt()?,
            tap_watched: true,
        })
    }

    /// Sends every frame of the transmit queue to the tap, header and all, from guest
    /// memory. A chain with a write-only buffer, one outside guest memory, one of no more
    /// than a header or of more than a header and [`MAX_FRAME`] is dropped.
    pub fn process_tx(&mut self) {
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let Some(queue) = self.queues.get_mut(TX) else {
            return;
        };
        let mut done = Vec::new();
        while let Some(chain) = queue.pop_descriptor_chain(&mem) {
            let head = chain.head_index();
            if let Some((iovs, _, total)) = iovecs(&mem, chain, false) {
                if total > HDR_LEN && total <= HDR_LEN + MAX_FRAME {
                    // SAFETY: every iovec lies inside one region of `mem` (get_slice checked
                    // it), which stays mapped while `mem` is held here. A full tap drops the
                    // frame, as a full wire would.
                    let _ = unsafe { self.tap.writev(&iovs) };
                }
            }
            done.push(head);
        }
        if done.is_empty() {
            return;
        }
        for head in done {
            let _ = queue.add_used(&mem, head, 0);
        }
        let _ = self.irq.trigger(INT_VRING);
    }

    /// Reads frames from the tap straight into receive chains while both are there. Returns
    /// whether the tap should stay watched (false while the guest has no receive buffer).
    pub fn process_rx(&mut self) -> bool {
        let Some(mem) = self.mem.clone() else {
            // Not started: frames from the tap are dropped.
            let mut buf = [0u8; HDR_LEN + MAX_FRAME];
            while self.tap.read_frame(&mut buf).is_ok() {}
            return true;
        };
        let Some(queue) = self.queues.get_mut(RX) else {
            return true;
        };
        let mut used = false;
        let watch = loop {
            let Some(chain) = queue.pop_descriptor_chain(&mem) else {
                break false;
            };
            let head = chain.head_index();
            let Some((iovs, parts, total)) = iovecs(&mem, chain, true) else {
                // Not a receive buffer: returned unused.
                let _ = queue.add_used(&mem, head, 0);
                used = true;
                continue;
            };
            if total < HDR_LEN {
                let _ = queue.add_used(&mem, head, 0);
                used = true;
                continue;
            }
            // SAFETY: every iovec lies inside one region of `mem` (get_slice checked it),
            // which stays mapped while `mem` is held here; readv writes at most their lengths.
            match unsafe { self.tap.readv(&iovs) } {
                Ok(n) => {
                    write_at(&mem, &parts, 0, &[0]);
                    write_at(&mem, &parts, NUM_BUFFERS, &1u16.to_le_bytes());
                    let _ = queue.add_used(&mem, head, n as u32);
                    used = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                    // The frame did not fit the buffer and was dropped: the buffer waits for
                    // the next one.
                    queue.go_to_previous_position();
                }
                Err(_) => {
                    // No frame (WouldBlock) or a tap error: the buffer stays the guest's.
                    queue.go_to_previous_position();
                    break true;
                }
            }
        };
        if used {
            let _ = self.irq.trigger(INT_VRING);
        }
        watch
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn avail_features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::super::read_config_bytes(&self.mac, offset, data);
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
        let _ = self.rx_evt.write(1);
        let _ = self.tx_evt.write(1);
        Ok(())
    }

    fn reset(&mut self) {
        self.queues.clear();
        self.mem = None;
        self.acked_features = 0;
    }
}
