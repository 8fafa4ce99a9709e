//! The block device's snapshot state: its image, features and queues.

use super::Block;
use crate::devices::virtio::{IrqTrigger, QueueSnapshot};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

/// A block device's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockSnapshot {
    pub path: PathBuf,
    pub read_only: bool,
    pub acked_features: u64,
    pub activated: bool,
    pub queues: Vec<QueueSnapshot>,
}

/// Restoring a block device failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockPersistError {
    /// {0}
    #[error(transparent)]
    Open(#[from] super::BlockError),
    /// disk {0}: invalid queue state in the snapshot
    #[error("disk {0}: invalid queue state in the snapshot")]
    Queue(PathBuf),
}

impl Block {
    /// The device's state.
    pub fn save(&self) -> BlockSnapshot {
        BlockSnapshot {
            path: self.path.clone(),
            read_only: self.read_only,
            acked_features: self.acked_features,
            activated: self.mem.is_some(),
            queues: self.queues.iter().map(QueueSnapshot::of).collect(),
        }
    }

    /// Reopens the image and puts the device back in its saved state.
    pub fn restore(
        snap: &BlockSnapshot,
        mem: &GuestMemoryMmap,
        irq: Arc<IrqTrigger>,
    ) -> Result<Self, BlockPersistError> {
        let mut block = Block::new(&snap.path, snap.read_only, irq)?;
        block.acked_features = snap.acked_features;
        block.queues = snap
            .queues
            .iter()
            .map(|q| q.to_queue())
            .collect::<Result<_, _>>()
            .map_err(|_| BlockPersistError::Queue(snap.path.clone()))?;
        if snap.activated {
            block.mem = Some(mem.clone());
        }
        Ok(block)
    }
}
