//! The net device's snapshot state: its tap, MAC, features and queues. A frame waiting for a
//! receive buffer is not saved (a wire may drop it too).

use super::{Net, NetError};
use crate::devices::virtio::{IrqTrigger, QueueSnapshot};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

/// A net device's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetSnapshot {
    pub tap: String,
    pub mac: [u8; 6],
    pub acked_features: u64,
    pub activated: bool,
    pub queues: Vec<QueueSnapshot>,
}

impl Net {
    /// The device's state.
    pub fn save(&self) -> NetSnapshot {
        NetSnapshot {
            tap: self.tap.name.clone(),
            mac: self.mac,
            acked_features: self.acked_features,
            activated: self.mem.is_some(),
            queues: self.queues.iter().map(QueueSnapshot::of).collect(),
        }
    }

    /// Reattaches the tap and puts the device back in its saved state.
    pub fn restore(
        snap: &NetSnapshot,
        mem: &GuestMemoryMmap,
        irq: Arc<IrqTrigger>,
    ) -> Result<Self, NetError> {
        let mut net = Net::new(&snap.tap, snap.mac, irq)?;
        net.acked_features = snap.acked_features;
        net.queues = snap
            .queues
            .iter()
            .filter_map(|q| q.to_queue().ok())
            .collect();
        if snap.activated {
            net.mem = Some(mem.clone());
        }
        Ok(net)
    }
}
