//! The device model: a port-I/O bus and an MMIO bus, and the devices on them. Every device
//! keeps the same files as in Firecracker: the device, its event handler (what it does when
//! one of its file descriptors is ready) and its persist (its snapshot state).

pub mod bus;
pub mod debug_exit;
pub mod i8042;
pub mod serial;
pub mod virtio;

pub use bus::{Bus, BusDevice, BusError};

/// What a guest asked of the VMM by writing to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestRequest {
    /// A byte written to the debug-exit port: stop with this code.
    Exit(u8),
    /// Reset through the i8042 (Linux's `reboot=k`): stop.
    Reset,
}

/// An `EventFd` as the interrupt line of a vm-superio device (an irqfd).
pub struct EventFdTrigger(pub vmm_sys_util::eventfd::EventFd);

impl vm_superio::Trigger for EventFdTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}
