//! The 64-bit Linux boot protocol: the zero page (`boot_params`) with its e820 map.

use super::{ram_map, BootError, Initrd};
use crate::memory::{CMDLINE_ADDR, ZERO_PAGE_ADDR};
use linux_loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::configurator::{linux::LinuxBootConfigurator, BootConfigurator, BootParams};
use vm_memory::{GuestAddress, GuestMemoryMmap};

const E820_RAM: u32 = 1;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;

/// Writes the zero page at [`ZERO_PAGE_ADDR`] (the kernel finds it in RSI).
pub fn write_zero_page(
    mem: &GuestMemoryMmap,
    memory_mib: u64,
    header: Option<setup_header>,
    cmdline_len: u32,
    initrd: Option<Initrd>,
) -> Result<(), BootError> {
    let mut params = boot_params::default();
    if let Some(hdr) = header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = cmdline_len;
    params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    if let Some(i) = initrd {
        params.hdr.ramdisk_image = i.addr as u32;
        params.hdr.ramdisk_size = i.size as u32;
    }
    let map = ram_map(memory_mib);
    if map.len() > params.e820_table.len() {
        return Err(BootError::Write("too many e820 entries".into()));
    }
    for (slot, (addr, size)) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: E820_RAM,
        };
    }
    params.e820_entries = map.len() as u8;
    LinuxBootConfigurator::write_bootparams(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_ADDR)),
        mem,
    )
    .map_err(|e| BootError::Write(e.to_string()))
}
