//! virtio-net over a host tap device: one receive and one transmit queue, a MAC address, no
//! offloads.

pub mod device;
pub mod event_handler;
pub mod persist;
pub mod tap;

pub use device::{Net, NetError};
