//! The vsock device's snapshot state: CID, socket path, features and queues. Connections
//! are not saved: a restored guest gets a transport-reset event and reconnects.

use super::{Vsock, VsockError};
use crate::devices::virtio::{IrqTrigger, QueueSnapshot};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

/// A vsock device's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VsockSnapshot {
    pub cid: u64,
    pub uds: PathBuf,
    pub acked_features: u64,
    pub activated: bool,
    pub queues: Vec<QueueSnapshot>,
}

impl Vsock {
    /// The device's state.
    pub fn save(&self) -> VsockSnapshot {
        VsockSnapshot {
            cid: self.cid,
            uds: self.uds.clone(),
            acked_features: self.acked_features,
            activated: self.mem.is_some(),
            queues: self.queues.iter().map(QueueSnapshot::of).collect(),
        }
    }

    /// A device in the saved state, listening on `uds` (the restored VM's own path).
    pub fn restore(
        snap: &VsockSnapshot,
        uds: &std::path::Path,
        mem: &GuestMemoryMmap,
        irq: Arc<IrqTrigger>,
    ) -> Result<Self, VsockError> {
        let mut v = Vsock::new(snap.cid, uds, irq)?;
        v.acked_features = snap.acked_features;
        v.queues = snap
            .queues
            .iter()
            .filter_map(|q| q.to_queue().ok())
            .collect();
        if snap.activated {
            v.mem = Some(mem.clone());
            v.transport_reset();
        }
        Ok(v)
    }
}
