//! Snapshot files: a header (JSON: configuration, vCPU, interrupt-controller and device
//! state, memory layout) followed by the guest memory, page-aligned, so a restore maps it
//! copy-on-write instead of reading it.
//!
//! ```text
//! "BERTHSNP" | version u32 | 0u32 | header length u64 | header JSON | pad to 4 KiB | memory
//! ```

use crate::config::VmConfig;
use crate::devices::serial::persist::SerialSnapshot;
use crate::devices::virtio::block::persist::BlockSnapshot;
use crate::devices::virtio::mmio::MmioSnapshot;
use crate::devices::virtio::net::persist::NetSnapshot;
use crate::devices::virtio::rng::persist::RngSnapshot;
use crate::devices::virtio::vsock::persist::VsockSnapshot;
use crate::memory;
use crate::vcpu::state::VcpuState;
use crate::vm::{Vm, VmState};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use vm_memory::mmap::{GuestRegionMmap, MmapRegion};
use vm_memory::{
    Bytes as _, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};

const MAGIC: &[u8; 8] = b"BERTHSNP";
const VERSION: u32 = 1;
const PAGE: u64 = 4096;
const MAX_HEADER: u64 = 64 << 20;

/// One RAM region in the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryRegion {
    pub guest_addr: u64,
    pub size: u64,
    pub offset: u64,
}

/// Everything but the memory.
#[derive(Serialize, Deserialize)]
pub struct Header {
    pub config: VmConfig,
    pub vm: VmState,
    pub vcpus: Vec<VcpuState>,
    pub serial: SerialSnapshot,
    pub disks: Vec<(MmioSnapshot, BlockSnapshot)>,
    #[serde(default)]
    pub nets: Vec<(MmioSnapshot, NetSnapshot)>,
    #[serde(default)]
    pub rng: Option<(MmioSnapshot, RngSnapshot)>,
    #[serde(default)]
    pub vsock: Option<(MmioSnapshot, VsockSnapshot)>,
    pub memory: Vec<MemoryRegion>,
}

/// Writing or reading a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// snapshot {path}: {source}
    #[error("snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// snapshot {path}: not a berth snapshot
    #[error("snapshot {path}: not a berth snapshot")]
    Magic { path: PathBuf },
    /// snapshot {path}: unsupported version {version}
    #[error("snapshot {path}: unsupported version {version}")]
    Version { path: PathBuf, version: u32 },
    /// snapshot {path}: corrupt ({detail})
    #[error("snapshot {path}: corrupt ({detail})")]
    Corrupt { path: PathBuf, detail: String },
    /// snapshot {path}: the VM must be paused
    #[error("snapshot {path}: the VM must be paused")]
    Running { path: PathBuf },
    /// snapshot {path}: disk {disk} is copy-on-write; its overlay goes with the VM, so the
    /// VM cannot be snapshotted
    #[error("snapshot {path}: disk {disk} is copy-on-write; its overlay goes with the VM, so the VM cannot be snapshotted")]
    CowDisk { path: PathBuf, disk: PathBuf },
    /// {0}
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn align(v: u64) -> u64 {
    v.div_ceil(PAGE) * PAGE
}

/// Writes a snapshot of the paused `vm` to `path` (atomically: a temporary file renamed).
pub fn save(vm: &Vm, path: &Path) -> Result<(), SnapshotError> {
    if !vm.paused() {
        return Err(SnapshotError::Running {
            path: path.to_path_buf(),
        });
    }
    if let Some(d) = vm.config.disks.iter().find(|d| d.cow) {
        return Err(SnapshotError::CowDisk {
            path: path.to_path_buf(),
            disk: d.path.clone(),
        });
    }
    let serial = vm.serial.lock().unwrap_or_else(|p| p.into_inner()).save();
    let disks = vm
        .disks
        .iter()
        .map(|d| {
            (
                d.transport.lock().unwrap_or_else(|p| p.into_inner()).save(),
                d.block.lock().unwrap_or_else(|p| p.into_inner()).save(),
            )
        })
        .collect();
    let nets = vm
        .nets
        .iter()
        .map(|d| {
            (
                d.transport.lock().unwrap_or_else(|p| p.into_inner()).save(),
                d.net.lock().unwrap_or_else(|p| p.into_inner()).save(),
            )
        })
        .collect();
    let rng = vm.rng.as_ref().map(|d| {
        (
            d.transport.lock().unwrap_or_else(|p| p.into_inner()).save(),
            d.rng.lock().unwrap_or_else(|p| p.into_inner()).save(),
        )
    });
    let vsock = vm.vsock.as_ref().map(|d| {
        (
            d.transport.lock().unwrap_or_else(|p| p.into_inner()).save(),
            d.vsock.lock().unwrap_or_else(|p| p.into_inner()).save(),
        )
    });
    let mut header = Header {
        config: vm.config.clone(),
        vm: vm.save_state()?,
        vcpus: vm.save_vcpus()?,
        serial,
        disks,
        nets,
        rng,
        vsock,
        memory: Vec::new(),
    };
    // The header's size depends on the offsets it lists: compute with placeholders first.
    let regions: Vec<(u64, u64)> = vm.mem.iter().map(|r| (r.start_addr().0, r.len())).collect();
    header.memory = regions
        .iter()
        .map(|&(guest_addr, size)| MemoryRegion {
            guest_addr,
            size,
            offset: u64::MAX,
        })
        .collect();
    let probe = serde_json::to_vec(&header).map_err(|e| io(path)(std::io::Error::other(e)))?;
    let mut offset = align(24 + probe.len() as u64);
    for m in &mut header.memory {
        m.offset = offset;
        offset += align(m.size);
    }
    let json = serde_json::to_vec(&header).map_err(|e| io(path)(std::io::Error::other(e)))?;

    let tmp = path.with_extension("partial");
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    let result = (|| -> Result<(), SnapshotError> {
        file.write_all(MAGIC).map_err(io(&tmp))?;
        file.write_all(&VERSION.to_le_bytes()).map_err(io(&tmp))?;
        file.write_all(&0u32.to_le_bytes()).map_err(io(&tmp))?;
        file.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io(&tmp))?;
        file.write_all(&json).map_err(io(&tmp))?;
        for m in &header.memory {
            file.seek(SeekFrom::Start(m.offset)).map_err(io(&tmp))?;
            vm.mem
                .write_all_volatile_to(GuestAddress(m.guest_addr), &mut file, m.size as usize)
                .map_err(|e| io(&tmp)(std::io::Error::other(e.to_string())))?;
        }
        file.set_len(offset).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A snapshot opened for restore: its header and its memory, mapped copy-on-write.
pub struct Loaded {
    pub header: Header,
    pub mem: GuestMemoryMmap,
}

/// Reads and checks a snapshot's header and maps its memory.
pub fn load(path: &Path) -> Result<Loaded, SnapshotError> {
    let corrupt = |detail: &str| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let mut file = File::open(path).map_err(io(path))?;
    let file_len = file.metadata().map_err(io(path))?.len();
    let mut fixed = [0u8; 24];
    file.read_exact(&mut fixed)
        .map_err(|_| SnapshotError::Magic {
            path: path.to_path_buf(),
        })?;
    if &fixed[..8] != MAGIC {
        return Err(SnapshotError::Magic {
            path: path.to_path_buf(),
        });
    }
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&fixed[r]);
        u64::from_le_bytes(b)
    };
    let version = word(8..12) as u32;
    if version != VERSION {
        return Err(SnapshotError::Version {
            path: path.to_path_buf(),
            version,
        });
    }
    let len = word(16..24);
    if len > MAX_HEADER || 24 + len > file_len {
        return Err(corrupt("header length"));
    }
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json).map_err(io(path))?;
    let header: Header =
        serde_json::from_slice(&json).map_err(|e| corrupt(&format!("header: {e}")))?;
    header
        .config
        .validate_shape()
        .map_err(|e| corrupt(&e.to_string()))?;
    let expected = memory::ram_ranges(header.config.memory_mib);
    if expected.len() != header.memory.len() {
        return Err(corrupt("memory layout"));
    }
    let mut regions = Vec::new();
    for (m, (addr, size)) in header.memory.iter().zip(expected) {
        let end = m.offset.checked_add(m.size);
        if m.guest_addr != addr.0
            || m.size != size as u64
            || !m.offset.is_multiple_of(PAGE)
            || m.offset < 24 + len
            || end.is_none_or(|e| e > file_len)
        {
            return Err(corrupt("memory region outside the file or layout"));
        }
        let fo = FileOffset::new(file.try_clone().map_err(io(path))?, m.offset);
        let region = MmapRegion::build(
            Some(fo),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_NORESERVE | libc::MAP_PRIVATE,
        )
        .map_err(|e| corrupt(&format!("mapping memory: {e}")))?;
        regions.push(GuestRegionMmap::new(region, addr).ok_or_else(|| corrupt("memory region"))?);
    }
    let mem = GuestMemoryMmap::from_regions(regions).map_err(|e| corrupt(&e.to_string()))?;
    Ok(Loaded { header, mem })
}
