//! The virtio-mmio transport (version 2): the register window a driver programs, in front of
//! one [`VirtioDevice`].

use super::{IrqTrigger, QueueSnapshot, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::devices::{BusDevice, GuestRequest};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0x4854_5242; // "BRTH"

/// Offset of the queue-notify register (where the ioeventfds sit).
pub const QUEUE_NOTIFY: u64 = 0x50;
const CONFIG_SPACE: u64 = 0x100;

const S_ACKNOWLEDGE: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
const S_NEEDS_RESET: u32 = 0x40;
const S_FAILED: u32 = 0x80;

/// The transport's registers, as saved in a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MmioSnapshot {
    pub status: u32,
    pub features_select: u32,
    pub acked_features_select: u32,
    pub acked_features: u64,
    pub queue_select: u32,
    pub queues: Vec<QueueSnapshot>,
    pub interrupt_status: u32,
    pub config_generation: u32,
}

/// A virtio device behind its MMIO registers.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: GuestMemoryMmap,
    irq: Arc<IrqTrigger>,
    queue_evts: Vec<EventFd>,
    queues: Vec<Queue>,
    status: u32,
    features_select: u32,
    acked_features_select: u32,
    acked_features: u64,
    queue_select: u32,
    config_generation: u32,
}

impl MmioTransport {
    /// A transport for `device`; `queue_evts[i]` is signalled when the driver notifies queue i.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: GuestMemoryMmap,
        irq: Arc<IrqTrigger>,
        queue_evts: Vec<EventFd>,
    ) -> Self {
        let queues = device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue_max_sizes()
            .iter()
            .filter_map(|m| Queue::new(*m).ok())
            .collect();
        MmioTransport {
            device,
            mem,
            irq,
            queue_evts,
            queues,
            status: 0,
            features_select: 0,
            acked_features_select: 0,
            acked_features: 0,
            queue_select: 0,
            config_generation: 0,
        }
    }

    fn dev(&self) -> std::sync::MutexGuard<'_, dyn VirtioDevice + 'static> {
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        // Queues are configured only before DRIVER_OK.
        if self.status & S_DRIVER_OK != 0 {
            return None;
        }
        self.queues.get_mut(self.queue_select as usize)
    }

    fn reset(&mut self) {
        self.dev().reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.acked_features = 0;
        self.features_select = 0;
        self.acked_features_select = 0;
        self.queue_select = 0;
        self.irq.ack(u32::MAX);
    }

    fn set_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let new = v & !self.status;
        if new & S_FEATURES_OK != 0 {
            let offered = self.dev().avail_features();
            if self.acked_features & !offered != 0 || self.acked_features & VIRTIO_F_VERSION_1 == 0
            {
                // Not a subset, or a legacy driver: FEATURES_OK stays clear.
                self.status |= v & !S_FEATURES_OK & (S_ACKNOWLEDGE | S_DRIVER | S_FAILED);
                return;
            }
        }
        if new & S_DRIVER_OK != 0 && self.status & S_FEATURES_OK != 0 {
            let queues: Vec<Queue> = self
                .queues
                .iter()
                .filter_map(|q| Queue::try_from(q.state()).ok())
                .collect();
            let acked = self.acked_features;
            let result = super::check_queues(&self.mem, &queues)
                .and_then(|()| self.dev().activate(self.mem.clone(), queues, acked));
            if result.is_err() {
                self.status |= S_NEEDS_RESET;
                let _ = self.irq.trigger(2); // configuration change
                return;
            }
        }
        self.status |= v;
    }

    /// The transport's registers.
    pub fn save(&self) -> MmioSnapshot {
        MmioSnapshot {
            status: self.status,
            features_select: self.features_select,
            acked_features_select: self.acked_features_select,
            acked_features: self.acked_features,
            queue_select: self.queue_select,
            queues: self.queues.iter().map(QueueSnapshot::of).collect(),
            interrupt_status: self.irq.status(),
            config_generation: self.config_generation,
        }
    }

    /// Puts the registers back (the device restores its own state).
    pub fn restore(&mut self, s: &MmioSnapshot) -> Result<(), virtio_queue::Error> {
        let queues = s
            .queues
            .iter()
            .map(|q| q.to_queue())
            .collect::<Result<Vec<_>, _>>()?;
        if queues.len() == self.queues.len() {
            self.queues = queues;
        }
        self.status = s.status;
        self.features_select = s.features_select;
        self.acked_features_select = s.acked_features_select;
        self.acked_features = s.acked_features;
        self.queue_select = s.queue_select;
        self.config_generation = s.config_generation;
        self.irq.set_status(s.interrupt_status);
        Ok(())
    }
}

fn half(v: u64, select: u32) -> u32 {
    match select {
        0 => v as u32,
        1 => (v >> 32) as u32,
        _ => 0,
    }
}

fn set_low(v: u64, low: u32) -> u64 {
    (v & !0xffff_ffff) | u64::from(low)
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE {
            self.dev().read_config(offset - CONFIG_SPACE, data);
            return;
        }
        if data.len() != 4 {
            data.fill(0);
            return;
        }
        let v = match offset {
            0x00 => MAGIC,
            0x04 => VERSION,
            0x08 => self.dev().device_type(),
            0x0c => VENDOR,
            0x10 => half(self.dev().avail_features(), self.features_select),
            0x34 => self
                .queues
                .get(self.queue_select as usize)
                .map_or(0, |q| u32::from(q.max_size())),
            0x44 => self
                .queues
                .get(self.queue_select as usize)
                .map_or(0, |q| u32::from(q.ready())),
            0x60 => self.irq.status(),
            0x70 => self.status,
            0xfc => self.config_generation,
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        if offset >= CONFIG_SPACE {
            self.dev().write_config(offset - CONFIG_SPACE, data);
            return None;
        }
        let Ok(raw) = <[u8; 4]>::try_from(data) else {
            return None;
        };
        let v = u32::from_le_bytes(raw);
        let configuring = self.status & (S_DRIVER_OK | S_FAILED) == 0;
        match offset {
            0x14 => self.features_select = v,
            0x20 if configuring && self.status & S_FEATURES_OK == 0 => {
                match self.acked_features_select {
                    0 => self.acked_features = set_low(self.acked_features, v),
                    1 => {
                        self.acked_features =
                            (self.acked_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            0x24 => self.acked_features_select = v,
            0x30 => self.queue_select = v,
            0x38 => {
                if let Some(q) = self.queue() {
                    q.set_size(v as u16);
                }
            }
            0x44 => {
                if let Some(q) = self.queue() {
                    q.set_ready(v == 1);
                }
            }
            QUEUE_NOTIFY => {
                // Normally an ioeventfd catches this write before it exits to us.
                if let Some(evt) = self.queue_evts.get(v as usize) {
                    let _ = evt.write(1);
                }
            }
            0x64 => self.irq.ack(v),
            0x70 => self.set_status(v),
            0x80 => self
                .queue()
                .map_or((), |q| q.set_desc_table_address(Some(v), None)),
            0x84 => self
                .queue()
                .map_or((), |q| q.set_desc_table_address(None, Some(v))),
            0x90 => self
                .queue()
                .map_or((), |q| q.set_avail_ring_address(Some(v), None)),
            0x94 => self
                .queue()
                .map_or((), |q| q.set_avail_ring_address(None, Some(v))),
            0xa0 => self
                .queue()
                .map_or((), |q| q.set_used_ring_address(Some(v), None)),
            0xa4 => self
                .queue()
                .map_or((), |q| q.set_used_ring_address(None, Some(v))),
            _ => {}
        }
        None
    }
}
