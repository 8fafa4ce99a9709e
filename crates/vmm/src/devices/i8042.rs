//! A minimal i8042 keyboard controller: enough for a guest to reset the machine (command
//! 0xfe on port 0x64), which stops the VM. No keyboard, no state to persist.

use super::{BusDevice, GuestRequest};

/// The controller's base port (data 0x60, command/status 0x64).
pub const PORT: u16 = 0x60;
/// Its width.
pub const LEN: u64 = 5;
const CMD_OFFSET: u64 = 4;
const CMD_RESET_CPU: u8 = 0xfe;

/// The i8042 device.
#[derive(Default)]
pub struct I8042;

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status 0: output buffer empty, input buffer empty.
        data.fill(0);
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest> {
        (offset == CMD_OFFSET && data.first() == Some(&CMD_RESET_CPU))
            .then_some(GuestRequest::Reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command() {
        let mut d = I8042;
        assert_eq!(d.write(4, &[0xfe]), Some(GuestRequest::Reset));
        assert_eq!(d.write(0, &[0xfe]), None);
        assert_eq!(d.write(4, &[0xaa]), None);
    }
}
