//! virtio-blk over a raw image file: read, write (unless read-only), flush, get-id; or over a
//! read-only base behind a copy-on-write overlay (`cow.rs`).

pub mod cow;
pub mod device;
pub mod event_handler;
pub mod persist;

pub use device::{Block, BlockError};
