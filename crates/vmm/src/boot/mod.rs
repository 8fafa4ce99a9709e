//! Loading a kernel and writing what it expects to find at boot.
//!
//! An ELF with a `XEN_ELFNOTE_PHYS32_ENTRY` note boots through PVH ([`pvh`]: 32-bit protected
//! mode, `hvm_start_info` in EBX); any other ELF (a vmlinux) and a bzImage boot through the
//! 64-bit Linux boot protocol ([`linux`]: long mode, zero page in RSI). Both get the same
//! memory map and the MP table ([`mptable`]) that tells the guest its CPUs.

pub mod linux;
pub mod mptable;
pub mod pvh;

use crate::config::VmConfig;
use crate::memory::{self, CMDLINE_ADDR, CMDLINE_MAX, HIMEM_START};
use linux_loader::cmdline::Cmdline;
use linux_loader::loader::{
    bzimage::BzImage, elf::Elf, elf::PvhBootCapability, KernelLoader, KernelLoaderResult,
};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// How the boot vCPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMode {
    /// 32-bit protected mode at the PVH entry, EBX = start_info.
    Pvh,
    /// 64-bit long mode at the kernel entry, RSI = zero page.
    Linux64,
}

/// Where and how to start the boot vCPU.
#[derive(Clone, Copy, Debug)]
pub struct BootEntry {
    pub mode: BootMode,
    pub entry: u64,
}

/// Booting the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// {what} {path}: {source}
    #[error("{what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// kernel {path}: not an ELF or bzImage kernel ({detail})
    #[error("kernel {path}: not an ELF or bzImage kernel ({detail})")]
    BadKernel { path: PathBuf, detail: String },
    /// kernel {path}: loads at {start:#x}..{end:#x}, outside guest RAM above 1 MiB
    #[error("kernel {path}: loads at {start:#x}..{end:#x}, outside guest RAM above 1 MiB")]
    KernelPlacement { path: PathBuf, start: u64, end: u64 },
    /// kernel {path}: PVH entry {entry:#x} is not inside the loaded image
    #[error("kernel {path}: PVH entry {entry:#x} is not inside the loaded image")]
    PvhEntry { path: PathBuf, entry: u64 },
    /// initrd {path}: {size} bytes do not fit in guest memory above the kernel
    #[error("initrd {path}: {size} bytes do not fit in guest memory above the kernel")]
    InitrdTooLarge { path: PathBuf, size: u64 },
    /// kernel command line: {0}
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// writing boot structures into guest memory: {0}
    #[error("writing boot structures into guest memory: {0}")]
    Write(String),
    /// too many vCPUs for the MP table ({0})
    #[error("too many vCPUs for the MP table ({0})")]
    MpTable(u8),
}

/// A loaded initrd.
#[derive(Clone, Copy, Debug)]
pub struct Initrd {
    pub addr: u64,
    pub size: u64,
}

/// Loads the kernel, the initrd and the command line, and writes the boot structures.
/// `extra_cmdline` is appended to the user's command line (device descriptions).
pub fn load(
    config: &VmConfig,
    mem: &GuestMemoryMmap,
    extra_cmdline: &str,
) -> Result<BootEntry, BootError> {
    let kpath = &config.kernel;
    let read_err = |what: &'static str, path: &PathBuf| {
        let path = path.clone();
        move |source| BootError::Read { what, path, source }
    };
    let mut kernel = File::open(kpath).map_err(read_err("kernel", kpath))?;
    let mut magic = [0u8; 4];
    kernel
        .read_exact(&mut magic)
        .map_err(read_err("kernel", kpath))?;
    kernel
        .seek(SeekFrom::Start(0))
        .map_err(read_err("kernel", kpath))?;
    let is_elf = magic == *b"\x7fELF";
    let bad = |e: linux_loader::loader::Error| BootError::BadKernel {
        path: kpath.clone(),
        detail: e.to_string(),
    };
    let loaded: KernelLoaderResult = if is_elf {
        Elf::load(mem, None, &mut kernel, Some(GuestAddress(HIMEM_START))).map_err(bad)?
    } else {
        BzImage::load(mem, None, &mut kernel, Some(GuestAddress(HIMEM_START))).map_err(bad)?
    };
    let low_end = memory::low_ram_end(config.memory_mib);
    let start = loaded.kernel_load.0;
    // A bzImage reports only where it starts; its end is the file's protected-mode part.
    let end = loaded.kernel_end.max(start);
    if start < HIMEM_START || end > low_end {
        return Err(BootError::KernelPlacement {
            path: kpath.clone(),
            start,
            end,
        });
    }
    let pvh = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr)
            if config.boot_protocol == crate::config::BootProtocol::Auto =>
        {
            Some(addr)
        }
        _ => None,
    };
    let entry = match (is_elf, pvh) {
        (true, Some(addr)) => {
            if addr.0 < HIMEM_START || addr.0 >= end.max(start + 1) {
                return Err(BootError::PvhEntry {
                    path: kpath.clone(),
                    entry: addr.0,
                });
            }
            BootEntry {
                mode: BootMode::Pvh,
                entry: addr.0,
            }
        }
        (true, _) => BootEntry {
            mode: BootMode::Linux64,
            entry: start,
        },
        // The 64-bit entry of a bzImage is 0x200 past its protected-mode code.
        (false, _) => BootEntry {
            mode: BootMode::Linux64,
            entry: start + 0x200,
        },
    };

    let initrd = match &config.initrd {
        Some(path) => Some(load_initrd(mem, path, end, low_end)?),
        None => None,
    };

    let mut cmdline = Cmdline::new(CMDLINE_MAX).map_err(|e| BootError::Cmdline(e.to_string()))?;
    let text = if extra_cmdline.is_empty() {
        config.cmdline.clone()
    } else {
        format!("{} {}", config.cmdline, extra_cmdline)
    };
    cmdline
        .insert_str(text.trim())
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE_ADDR), &cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    let cmdline_len = text.trim().len() as u32 + 1;

    mptable::write(mem, config.cpus)?;
    match entry.mode {
        BootMode::Pvh => pvh::write_start_info(mem, config.memory_mib, initrd)?,
        BootMode::Linux64 => linux::write_zero_page(
            mem,
            config.memory_mib,
            loaded.setup_header,
            cmdline_len,
            initrd,
        )?,
    }
    Ok(entry)
}

/// Places the initrd at the top of low RAM, page-aligned, above the kernel.
fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &PathBuf,
    kernel_end: u64,
    low_end: u64,
) -> Result<Initrd, BootError> {
    let mut file = File::open(path).map_err(|source| BootError::Read {
        what: "initrd",
        path: path.clone(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| BootError::Read {
            what: "initrd",
            path: path.clone(),
            source,
        })?
        .len();
    let too_large = || BootError::InitrdTooLarge {
        path: path.clone(),
        size,
    };
    let addr = low_end.checked_sub(size).ok_or_else(too_large)? & !0xfff;
    if addr < kernel_end {
        return Err(too_large());
    }
    let len = usize::try_from(size).map_err(|_| too_large())?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|e| BootError::Read {
            what: "initrd",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    Ok(Initrd { addr, size })
}

/// The RAM entries of the memory map: (start, size).
pub fn ram_map(memory_mib: u64) -> Vec<(u64, u64)> {
    let mut map = vec![(0, memory::EBDA_START)];
    for (start, size) in memory::ram_ranges(memory_mib) {
        let end = start.0 + size as u64;
        let start = start.0.max(HIMEM_START);
        if end > start {
            map.push((start, end - start));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_map_skips_the_legacy_hole() {
        assert_eq!(
            ram_map(64),
            vec![(0, 0x9fc00), (HIMEM_START, (64 << 20) - HIMEM_START)]
        );
        let m = ram_map(4096);
        assert_eq!(
            m[2],
            (memory::MMIO_GAP_END, (4096 << 20) - memory::MMIO_GAP_START)
        );
    }
}
