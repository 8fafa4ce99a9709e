//! The 8250 UART at 0x3f8 (vm-superio), on IRQ 4. Its output goes to the terminal or a log
//! file; its input comes from the terminal ([`event_handler`]).

pub mod event_handler;
pub mod persist;

use super::{BusDevice, EventFdTrigger, GuestRequest};
use std::io::Write;
use vm_superio::serial::NoEvents;
use vm_superio::Serial;

/// The COM1 port.
pub const PORT: u16 = 0x3f8;
/// Its width.
pub const LEN: u64 = 8;
/// Its interrupt line.
pub const IRQ: u32 = 4;

/// Where the console output goes.
pub type SerialOut = Box<dyn Write + Send>;

/// The serial device.
pub struct SerialDevice {
    pub(crate) serial: Serial<EventFdTrigger, NoEvents, SerialOut>,
}

impl SerialDevice {
    /// A UART that raises `irq` and writes to `out`.
    pub fn new(irq: EventFdTrigger, out: SerialOut) -> Self {
        SerialDevice {
            serial: Serial::new(irq, out),
        }
    }

    /// Queues input bytes for the guest; returns how many fit.
    pub fn enqueue(&mut self, bytes: &[u8]) -> usize {
        self.serial.enqueue_raw_bytes(bytes).unwrap_or(0)
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if let Some(first) = data.first_mut() {
            *first = self.serial.read(offset as u8);
        }
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        if let Some(v) = data.first() {
            // Output errors (a closed terminal) must not stop the guest.
            let _ = self.serial.write(offset as u8, *v);
        }
        None
    }
}
