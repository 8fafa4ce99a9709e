//! The net device: frames from the transmit queue go to the tap; frames from the tap go
//! into the guest's receive buffers, each behind a zeroed `virtio_net_hdr_v1`.

use super::tap::{Tap, TapError};
use crate::devices::virtio::{
    ActivateError, IrqTrigger, VirtioDevice, INT_VRING, TYPE_NET, VIRTIO_F_VERSION_1,
};
use std::sync::Arc;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const QUEUE_SIZE: u16 = 256;
const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// `virtio_net_hdr_v1` (with VIRTIO_F_VERSION_1 the header always has `num_buffers`).
pub const HDR_LEN: usize = 12;
/// The largest frame: a 1500-byte MTU plus the Ethernet header (no VLAN, no offloads).
pub const MAX_FRAME: usize = 1514;
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
    /// A frame read from the tap that found no receive buffer yet.
    pub(crate) pending: Option<Vec<u8>>,
    /// Whether the event loop watches the tap (not while a frame is pending).
    pub(crate) tap_watched: bool,
}

/// A locally administered MAC address derived from `index` (the device's slot).
pub fn mac_for(index: usize) -> [u8; 6] {
    [0x06, 0xbe, 0x47, 0x00, 0x00, index as u8]
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
            pending: None,
            tap_watched: true,
        })
    }

    /// Sends every frame of the transmit queue to the tap.
    pub fn process_tx(&mut self) {
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let Some(queue) = self.queues.get_mut(TX) else {
            return;
        };
        let mut done = Vec::new();
        if let Ok(iter) = queue.iter(&mem) {
            for chain in iter {
                let head = chain.head_index();
                let mut frame = Vec::new();
                let mut ok = true;
                for d in chain {
                    if d.is_write_only() || frame.len() + d.len() as usize > HDR_LEN + MAX_FRAME {
                        ok = false;
                        break;
                    }
                    let start = frame.len();
                    frame.resize(start + d.len() as usize, 0);
                    if mem.read_slice(&mut frame[start..], d.addr()).is_err() {
                        ok = false;
                        break;
                    }
                }
                if ok && frame.len() > HDR_LEN {
                    // A full tap drops the frame, as a full wire would.
                    let _ = self.tap.write_frame(&frame[HDR_LEN..]);
                }
                done.push(head);
            }
        }
        if done.is_empty() {
            return;
        }
        for head in done {
            let _ = queue.add_used(&mem, head, 0);
        }
        let _ = self.irq.trigger(INT_VRING);
    }

    /// Puts `frame` into the next receive buffer; false if the guest has none.
    fn deliver(&mut self, frame: &[u8]) -> bool {
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
        let mut data = vec![0u8; HDR_LEN];
        data[10] = 1; // num_buffers
        data.extend_from_slice(frame);
        let mut written = 0usize;
        for d in chain {
            if written == data.len() {
                break;
            }
            if !d.is_write_only() {
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
        // A frame that did not fit is dropped (the buffer is returned with what was written).
        let _ = queue.add_used(&mem, head, written as u32);
        let _ = self.irq.trigger(INT_VRING);
        true
    }

    /// Moves frames from the tap into receive buffers while both are available. Returns
    /// whether the tap should stay watched (false while a frame waits for a buffer).
    pub fn process_rx(&mut self) -> bool {
        if self.mem.is_none() {
            // Not started: frames from the tap are dropped.
            let mut buf = [0u8; MAX_FRAME];
            while self.tap.read_frame(&mut buf).is_ok() {}
            return true;
        }
        if let Some(frame) = self.pending.take() {
            if !self.deliver(&frame) {
                self.pending = Some(frame);
                return false;
            }
        }
        let mut buf = vec![0u8; 65536];
        loop {
            match self.tap.read_frame(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    let frame = &buf[..n];
                    if !self.deliver(frame) {
                        self.pending = Some(frame.to_vec());
                        return false;
                    }
                }
            }
        }
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
        data.fill(0);
        if let Some(src) = self.mac.get(offset as usize..) {
            let n = src.len().min(data.len());
            data[..n].copy_from_slice(&src[..n]);
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), ActivateError> {
        for (i, q) in queues.iter().enumerate() {
            if !q.is_valid(&mem) {
                return Err(ActivateError::BadQueue(i));
            }
        }
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
        self.pending = None;
    }
}
