//! Virtio devices over the MMIO transport (virtio 1.x, split queues from `virtio-queue`).

pub mod block;
pub mod mmio;
pub mod net;
pub mod rng;
pub mod vsock;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// VIRTIO_F_VERSION_1: the device is a modern (1.x) device.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Interrupt status bit: a used ring changed.
pub const INT_VRING: u32 = 1;
/// Device ids.
pub const TYPE_NET: u32 = 1;
pub const TYPE_BLOCK: u32 = 2;
pub const TYPE_RNG: u32 = 4;
pub const TYPE_VSOCK: u32 = 19;

/// A device's interrupt line: the status register the driver reads and acknowledges, and the
/// irqfd that raises the GSI.
pub struct IrqTrigger {
    status: AtomicU32,
    evt: EventFd,
}

impl IrqTrigger {
    /// A line signalled through `evt` (registered as an irqfd).
    pub fn new(evt: EventFd) -> Self {
        IrqTrigger {
            status: AtomicU32::new(0),
            evt,
        }
    }
    /// Sets `bits` in the interrupt status and raises the line.
    pub fn trigger(&self, bits: u32) -> std::io::Result<()> {
        self.status.fetch_or(bits, Ordering::SeqCst);
        self.evt.write(1)
    }
    /// The interrupt status register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }
    /// Clears `bits` (the driver's acknowledgement).
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }
    /// Restores the status register.
    pub fn set_status(&self, v: u32) {
        self.status.store(v, Ordering::SeqCst);
    }
}

/// Activating a device failed.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// queue {0} is not valid (size, alignment or addresses outside guest memory)
    #[error("queue {0} is not valid (size, alignment or addresses outside guest memory)")]
    BadQueue(usize),
}

/// Checks the driver's queues before a device is activated: sizes, alignment and rings
/// inside guest memory (the transport calls it, so no device runs on a bad queue).
pub fn check_queues(mem: &GuestMemoryMmap, queues: &[Queue]) -> Result<(), ActivateError> {
    match queues.iter().position(|q| !q.is_valid(mem)) {
        Some(i) => Err(ActivateError::BadQueue(i)),
        None => Ok(()),
    }
}

/// Copies a device's configuration space `config` from `offset` into `data`; what lies
/// past its end reads as zero.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    if let Some(src) = usize::try_from(offset).ok().and_then(|o| config.get(o..)) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}

/// What the MMIO transport needs from a device.
pub trait VirtioDevice: Send {
    /// The virtio device id.
    fn device_type(&self) -> u32;
    /// Feature bits the device offers.
    fn avail_features(&self) -> u64;
    /// The maximum size of each queue.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads the device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the device-specific configuration space.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device with the driver's queues (checked by [`check_queues`]) and features.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), ActivateError>;
    /// Stops the device (the driver wrote 0 to the status register).
    fn reset(&mut self);
}

/// A queue's state, as saved in a snapshot.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct QueueSnapshot {
    pub max_size: u16,
    pub next_avail: u16,
    pub next_used: u16,
    pub event_idx: bool,
    pub size: u16,
    pub ready: bool,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
}

impl QueueSnapshot {
    /// The state of `q`.
    pub fn of(q: &Queue) -> Self {
        let s = q.state();
        QueueSnapshot {
            max_size: s.max_size,
            next_avail: s.next_avail,
            next_used: s.next_used,
            event_idx: s.event_idx_enabled,
            size: s.size,
            ready: s.ready,
            desc_table: s.desc_table,
            avail_ring: s.avail_ring,
            used_ring: s.used_ring,
        }
    }
    /// A queue in this state (validated by `virtio-queue`).
    pub fn to_queue(self) -> Result<Queue, virtio_queue::Error> {
        Queue::try_from(QueueState {
            max_size: self.max_size,
            next_avail: self.next_avail,
            next_used: self.next_used,
            event_idx_enabled: self.event_idx,
            size: self.size,
            ready: self.ready,
            desc_table: self.desc_table,
            avail_ring: self.avail_ring,
            used_ring: self.used_ring,
        })
    }
}
