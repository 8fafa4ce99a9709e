//! virtio-rng: the guest's receive buffers are filled from the host's `getrandom`.

pub mod device;
pub mod event_handler;
pub mod persist;

pub use device::Rng;
