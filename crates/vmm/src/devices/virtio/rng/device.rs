//! The entropy device: one queue of device-writable buffers, filled with random bytes.

use crate::devices::virtio::{
    ActivateError, IrqTrigger, VirtioDevice, INT_VRING, TYPE_RNG, VIRTIO_F_VERSION_1,
};
use std::sync::Arc;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const QUEUE_SIZE: u16 = 256;
/// The most bytes served per buffer (a guest asking for more gets this much).
const MAX_CHUNK: u32 = 64 << 10;

/// A virtio-rng device.
pub struct Rng {
    pub(crate) queues: Vec<Queue>,
    pub(crate) mem: Option<GuestMemoryMmap>,
    pub(crate) irq: Arc<IrqTrigger>,
    /// Signalled when the guest offers buffers.
    pub queue_evt: EventFd,
}

fn random(buf: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n <= 0 {
            return false;
        }
        filled += n as usize;
    }
    true
}

impl Rng {
    /// An entropy device that interrupts through `irq`.
    pub fn new(irq: Arc<IrqTrigger>) -> std::io::Result<Self> {
        Ok(Rng {
            queues: Vec::new(),
            mem: None,
            irq,
            queue_evt: EventFd::new(libc::EFD_NONBLOCK)?,
        })
    }

    /// Fills every buffer the guest has offered.
    pub fn process_queue(&mut self) {
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let Some(queue) = self.queues.get_mut(0) else {
            return;
        };
        let mut done = Vec::new();
        if let Ok(iter) = queue.iter(&mem) {
            for chain in iter {
                let head = chain.head_index();
                let mut written = 0u32;
                for d in chain {
                    if !d.is_write_only() || written >= MAX_CHUNK {
                        break;
                    }
                    let mut buf = vec![0u8; d.len().min(MAX_CHUNK - written) as usize];
                    if !random(&mut buf) || mem.write_slice(&buf, d.addr()).is_err() {
                        break;
                    }
                    written += buf.len() as u32;
                }
                done.push((head, written));
            }
        }
        if done.is_empty() {
            return;
        }
        for (head, len) in done {
            let _ = queue.add_used(&mem, head, len);
        }
        let _ = self.irq.trigger(INT_VRING);
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        TYPE_RNG
    }
    fn avail_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        _acked_features: u64,
    ) -> Result<(), ActivateError> {
        self.queues = queues;
        self.mem = Some(mem);
        let _ = self.queue_evt.write(1);
        Ok(())
    }
    fn reset(&mut self) {
        self.queues.clear();
        self.mem = None;
    }
}
