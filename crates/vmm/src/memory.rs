//! Guest physical memory: the layout of the boot structures and the RAM regions.
//!
//! ```text
//! 0x0000_0500  GDT            0x0000_0520  IDT (empty)
//! 0x0000_6000  PVH start_info, memory map at 0x6100, module list at 0x6400
//! 0x0000_7000  Linux zero page (boot_params)
//! 0x0000_8ff0  boot stack     0x0000_9000  PML4, PDPT at 0xa000, PD at 0xb000
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA: the MP table (CPU count for the guest)
//! 0x0010_0000  kernel
//! 0xd000_0000  MMIO gap: virtio-mmio devices (4 KiB each), IOAPIC, LAPIC
//! 0x1_0000_0000 RAM above the gap, when the VM has more than 3.25 GiB
//! ```

use vm_memory::{GuestAddress, GuestMemoryMmap};

pub const GDT_ADDR: u64 = 0x500;
pub const IDT_ADDR: u64 = 0x520;
pub const PVH_INFO_ADDR: u64 = 0x6000;
pub const PVH_MEMMAP_ADDR: u64 = 0x6100;
pub const PVH_MODLIST_ADDR: u64 = 0x6400;
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
pub const BOOT_STACK: u64 = 0x8ff0;
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
pub const PD_ADDR: u64 = 0xb000;
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// Longest kernel command line, with its NUL (Linux's x86 COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;
pub const EBDA_START: u64 = 0x9_fc00;
pub const HIMEM_START: u64 = 0x10_0000;
pub const MMIO_GAP_START: u64 = 0xd000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Size of one virtio-mmio device window.
pub const MMIO_DEVICE_SIZE: u64 = 0x1000;
/// How many virtio-mmio devices fit (and have a GSI of their own).
pub const MAX_MMIO_DEVICES: usize = 16;
/// First GSI of the virtio-mmio devices (serial has 4).
pub const FIRST_DEVICE_GSI: u32 = 5;

/// Creating guest memory failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// cannot map {mib} MiB of guest memory: {source}
    #[error("cannot map {mib} MiB of guest memory: {source}")]
    Map {
        mib: u64,
        source: vm_memory::mmap::FromRangesError,
    },
}

/// The RAM ranges of a VM with `mib` MiB: below the MMIO gap, and above 4 GiB for the rest.
pub fn ram_ranges(mib: u64) -> Vec<(GuestAddress, usize)> {
    let size = mib << 20;
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize),
        ]
    }
}

/// Fresh anonymous guest memory of `mib` MiB.
pub fn create(mib: u64) -> Result<GuestMemoryMmap, MemoryError> {
    GuestMemoryMmap::from_ranges(&ram_ranges(mib))
        .map_err(|source| MemoryError::Map { mib, source })
}

/// The guest-physical window of virtio-mmio device `index`.
pub fn mmio_device_addr(index: usize) -> u64 {
    MMIO_GAP_START + index as u64 * MMIO_DEVICE_SIZE
}

/// The end of RAM below the MMIO gap.
pub fn low_ram_end(mib: u64) -> u64 {
    (mib << 20).min(MMIO_GAP_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_around_the_gap() {
        assert_eq!(ram_ranges(64), vec![(GuestAddress(0), 64 << 20)]);
        let r = ram_ranges(4096);
        assert_eq!(r[0], (GuestAddress(0), MMIO_GAP_START as usize));
        assert_eq!(r[1].0, GuestAddress(MMIO_GAP_END));
        assert_eq!(r[0].1 + r[1].1, 4096 << 20);
    }
}
