//! The debug-exit port (qemu's `isa-debug-exit`): a guest writes a byte and the VM stops with
//! that exit code. Test guests use it; it has no state to persist.

use super::{BusDevice, GuestRequest};

/// The port where the debug-exit device sits (as qemu's `iobase=0xf4`).
pub const PORT: u16 = 0xf4;
/// Its width.
pub const LEN: u64 = 4;

/// The debug-exit device.
#[derive(Default)]
pub struct DebugExit;

impl BusDevice for DebugExit {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _offset: u64, data: &[u8]) -> Option<GuestRequest> {
        Some(GuestRequest::Exit(data.first().copied().unwrap_or(0)))
    }
}
