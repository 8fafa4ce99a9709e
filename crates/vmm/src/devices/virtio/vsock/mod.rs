//! virtio-vsock with Firecracker's host side: the guest's connections to host port P reach
//! the unix socket `UDS_P`; a host program connecting to `UDS` and writing `CONNECT P\n`
//! reaches guest port P (answer `OK <host port>\n`). Stream sockets only, with credit-based
//! flow control.

pub mod device;
pub mod event_handler;
pub mod packet;
pub mod persist;

pub use device::{Vsock, VsockError};
