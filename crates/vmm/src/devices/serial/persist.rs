//! The serial device's snapshot state (the UART registers and its input FIFO).

use super::{SerialDevice, SerialOut};
use crate::devices::EventFdTrigger;
use serde::{Deserialize, Serialize};
use vm_superio::serial::{NoEvents, SerialState};
use vm_superio::Serial;

/// The UART registers and queued input.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SerialSnapshot {
    pub regs: [u8; 9],
    pub in_buffer: Vec<u8>,
}

impl SerialDevice {
    /// The device's state.
    pub fn save(&self) -> SerialSnapshot {
        let s = self.serial.state();
        SerialSnapshot {
            regs: [
                s.baud_divisor_low,
                s.baud_divisor_high,
                s.interrupt_enable,
                s.interrupt_identification,
                s.line_control,
                s.line_status,
                s.modem_control,
                s.modem_status,
                s.scratch,
            ],
            in_buffer: s.in_buffer,
        }
    }

    /// A device in the saved state (input beyond the 64-byte FIFO is dropped).
    pub fn restore(
        snap: &SerialSnapshot,
        irq: EventFdTrigger,
        out: SerialOut,
    ) -> Result<Self, String> {
        let r = snap.regs;
        let state = SerialState {
            baud_divisor_low: r[0],
            baud_divisor_high: r[1],
            interrupt_enable: r[2],
            interrupt_identification: r[3],
            line_control: r[4],
            line_status: r[5],
            modem_control: r[6],
            modem_status: r[7],
            scratch: r[8],
            in_buffer: snap.in_buffer.iter().take(64).copied().collect(),
        };
        let serial =
            Serial::from_state(&state, irq, NoEvents, out).map_err(|e| format!("{e:?}"))?;
        Ok(SerialDevice { serial })
    }
}
