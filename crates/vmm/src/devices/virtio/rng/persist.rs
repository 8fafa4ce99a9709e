//! The entropy device's snapshot state: its queue.

use super::Rng;
use crate::devices::virtio::{IrqTrigger, QueueSnapshot};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

/// An entropy device's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RngSnapshot {
    pub activated: bool,
    pub queues: Vec<QueueSnapshot>,
}

impl Rng {
    /// The device's state.
    pub fn save(&self) -> RngSnapshot {
        RngSnapshot {
            activated: self.mem.is_some(),
            queues: self.queues.iter().map(QueueSnapshot::of).collect(),
        }
    }

    /// A device in the saved state.
    pub fn restore(
        snap: &RngSnapshot,
        mem: &GuestMemoryMmap,
        irq: Arc<IrqTrigger>,
    ) -> std::io::Result<Self> {
        let mut rng = Rng::new(irq)?;
        rng.queues = snap
            .queues
            .iter()
            .filter_map(|q| q.to_queue().ok())
            .collect();
        if snap.activated {
            rng.mem = Some(mem.clone());
        }
        Ok(rng)
    }
}
