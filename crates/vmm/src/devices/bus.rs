//! A bus maps address ranges to devices; the vCPU threads dispatch port I/O and MMIO exits
//! through it.

use super::GuestRequest;
use std::sync::{Arc, Mutex};

/// A device on a bus; offsets are relative to its base.
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset`; the device may ask the VMM to stop.
    fn write(&mut self, offset: u64, data: &[u8]) -> Option<GuestRequest>;
}

/// Building a bus failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// device range {base:#x}+{len:#x} overlaps another device
    #[error("device range {base:#x}+{len:#x} overlaps another device")]
    Overlap { base: u64, len: u64 },
}

type Entry = (u64, u64, Arc<Mutex<dyn BusDevice>>);

/// Devices by address range.
#[derive(Default, Clone)]
pub struct Bus {
    devices: Vec<Entry>,
}

impl Bus {
    /// Adds `dev` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        dev: Arc<Mutex<dyn BusDevice>>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .ok_or(BusError::Overlap { base, len })?;
        if len == 0
            || self
                .devices
                .iter()
                .any(|(b, l, _)| base < b + l && *b < end)
        {
            return Err(BusError::Overlap { base, len });
        }
        self.devices.push((base, len, dev));
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(u64, &Arc<Mutex<dyn BusDevice>>)> {
        self.devices
            .iter()
            .find(|(b, l, _)| addr >= *b && addr - b < *l)
            .map(|(b, _, d)| (addr - b, d))
    }

    /// Dispatches a read; returns false (and leaves `data` as is) if nothing is there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((off, dev)) => {
                dev.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .read(off, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; `None` if nothing is there.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<Option<GuestRequest>> {
        self.find(addr).map(|(off, dev)| {
            dev.lock()
                .unwrap_or_else(|p| p.into_inner())
                .write(off, data)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0 + offset as u8);
        }
        fn write(&mut self, _: u64, data: &[u8]) -> Option<GuestRequest> {
            self.0 = data[0];
            None
        }
    }

    #[test]
    fn dispatch_and_overlap() {
        let mut bus = Bus::default();
        bus.insert(0x10, 4, Arc::new(Mutex::new(Echo(1))))
            .expect("insert");
        assert!(bus.insert(0x12, 4, Arc::new(Mutex::new(Echo(1)))).is_err());
        let mut d = [0u8; 1];
        assert!(bus.read(0x12, &mut d));
        assert_eq!(d[0], 3);
        assert!(!bus.read(0x14, &mut d));
        assert_eq!(bus.write(0x10, &[7]), Some(None));
        assert_eq!(bus.write(0x9, &[7]), None);
    }
}
