//! virtio-blk over a raw image file: read, write (unless read-only), flush, get-id.

pub mod device;
pub mod event_handler;
pub mod persist;

pub use device::{Block, BlockError};
