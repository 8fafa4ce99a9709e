//! What a VM is made of: the user's choices, validated before anything is created.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The most vCPUs a VM may have (the MP table lives in the 1 KiB EBDA).
pub const MAX_CPUS: u8 = 32;
/// The least guest memory, in MiB.
pub const MIN_MEMORY_MIB: u64 = 2;

/// A VM's configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VmConfig {
    /// The VM's name (unique per state root).
    pub name: String,
    /// Number of vCPUs.
    pub cpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Kernel image: PVH ELF, 64-bit Linux ELF (vmlinux) or bzImage.
    pub kernel: PathBuf,
    /// Initial ramdisk.
    pub initrd: Option<PathBuf>,
    /// Kernel command line (berth appends the virtio-mmio device descriptions).
    pub cmdline: String,
    /// Block devices, in guest order.
    pub disks: Vec<DiskConfig>,
    /// Network devices (after the disks), in guest order.
    #[serde(default)]
    pub nets: Vec<NetConfig>,
    /// A virtio-rng device (after the network devices).
    #[serde(default)]
    pub rng: bool,
    /// A virtio-vsock device (last).
    #[serde(default)]
    pub vsock: Option<VsockConfig>,
    /// How to enter an ELF kernel that has a PVH note (default: PVH).
    #[serde(default)]
    pub boot_protocol: BootProtocol,
}

/// The boot protocol for an ELF kernel with a PVH entry note (others have one choice).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum BootProtocol {
    /// PVH when the kernel has the note, else the 64-bit Linux boot protocol.
    #[default]
    Auto,
    /// The 64-bit Linux boot protocol (long mode, zero page) even with a PVH note.
    Linux,
}

/// The vsock device: the guest's CID and the host's unix socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VsockConfig {
    /// The guest's context id (3 or more).
    pub cid: u32,
    /// The host side's unix socket (default: `vsock.sock` in the VM's state directory).
    pub uds: Option<PathBuf>,
}

/// One virtio-mmio network device on a host tap.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetConfig {
    /// The tap device's name (in the monitor's network namespace).
    pub tap: String,
}

/// One virtio-mmio block device.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiskConfig {
    /// A raw image file.
    pub path: PathBuf,
    /// The guest may not write.
    pub read_only: bool,
    /// The guest writes to a copy-on-write overlay in the VM's state directory (deleted with
    /// it); `path` is opened read-only and never changes.
    #[serde(default)]
    pub cow: bool,
}

/// The overlay file of copy-on-write disk `index` in the state directory `dir` (its
/// allocation map is beside it, with `.map` appended).
pub fn overlay_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("disk{index}.overlay"))
}

/// The default kernel command line.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1";

/// Invalid VM configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// invalid VM name {0:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'
    #[error(
        "invalid VM name {0:?}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
    )]
    Name(String),
    /// --cpus {0}: must be between 1 and {MAX_CPUS}
    #[error("--cpus {0}: must be between 1 and {MAX_CPUS}")]
    Cpus(u8),
    /// --cpus {requested}: more than the host has ({host} CPUs online)
    #[error("--cpus {requested}: more than the host has ({host} CPUs online)")]
    CpusTooMany { requested: u8, host: u64 },
    /// --memory {0} MiB: must be at least {MIN_MEMORY_MIB}
    #[error("--memory {0} MiB: must be at least {MIN_MEMORY_MIB}")]
    MemoryTooSmall(u64),
    /// --memory {requested} MiB: more than the host has ({host} MiB)
    #[error("--memory {requested} MiB: more than the host has ({host} MiB)")]
    MemoryTooLarge { requested: u64, host: u64 },
    /// cannot read the host's memory size from /proc/meminfo
    #[error("cannot read the host's memory size from /proc/meminfo")]
    HostMemory,
    /// {what} {path}: {source}
    #[error("{what} {path}: {source}")]
    Open {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// {what} {path}: not a regular file
    #[error("{what} {path}: not a regular file")]
    NotAFile { what: &'static str, path: PathBuf },
    /// {what} {path}: empty file
    #[error("{what} {path}: empty file")]
    Empty { what: &'static str, path: PathBuf },
    /// disk {0}: size is not a multiple of 512 bytes
    #[error("disk {0}: size is not a multiple of 512 bytes")]
    DiskSize(PathBuf),
    /// disk {0}: read-only and copy-on-write are exclusive
    #[error("disk {0}: read-only and copy-on-write are exclusive")]
    DiskRoCow(PathBuf),
    /// disk {0}: given twice
    #[error("disk {0}: given twice")]
    DiskTwice(PathBuf),
    /// too many devices ({0}; at most {max})
    #[error("too many devices ({0}; at most {max})", max = crate::memory::MAX_MMIO_DEVICES)]
    TooManyDisks(usize),
    /// tap {0:?}: a name of 1-15 bytes without '/'
    #[error("tap {0:?}: a name of 1-15 bytes without '/'")]
    TapName(String),
    /// vsock CID {0}: must be at least 3
    #[error("vsock CID {0}: must be at least 3")]
    VsockCid(u32),
    /// tap {0}: given twice
    #[error("tap {0}: given twice")]
    TapTwice(String),
    /// tap {0}: no such tap device in this network namespace (create it: ip tuntap add dev {0} mode tap)
    #[error("tap {0}: no such tap device in this network namespace (create it: ip tuntap add dev {0} mode tap)")]
    NoTap(String),
}

/// Whether `name` is a usable VM name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The host's physical memory in MiB (MemTotal).
pub fn host_memory_mib() -> Result<u64, ConfigError> {
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|_| ConfigError::HostMemory)?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .ok_or(ConfigError::HostMemory)
}

/// The host's online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`).
pub fn host_cpus() -> u64 {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(n).unwrap_or(1).max(1)
}

fn check_file(what: &'static str, path: &Path) -> Result<u64, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Open {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ConfigError::NotAFile {
            what,
            path: path.to_path_buf(),
        });
    }
    // Readability, not just existence.
    std::fs::File::open(path).map_err(|source| ConfigError::Open {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() == 0 {
        return Err(ConfigError::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(meta.len())
}

impl VmConfig {
    /// Checks everything that can be checked before a VM is created: name, sizes, files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_shape()?;
        check_file("kernel", &self.kernel)?;
        if let Some(initrd) = &self.initrd {
            check_file("initrd", initrd)?;
        }
        for net in &self.nets {
            // Attach to an existing tap only: never create a host interface by accident.
            if !Path::new("/sys/class/net")
                .join(&net.tap)
                .join("tun_flags")
                .exists()
            {
                return Err(ConfigError::NoTap(net.tap.clone()));
            }
        }
        for (i, disk) in self.disks.iter().enumerate() {
            let len = check_file("disk", &disk.path)?;
            if !len.is_multiple_of(512) {
                return Err(ConfigError::DiskSize(disk.path.clone()));
            }
            if disk.read_only && disk.cow {
                return Err(ConfigError::DiskRoCow(disk.path.clone()));
            }
            // A copy-on-write base is only read: several disks (and VMs) may share it.
            if self.disks[..i]
                .iter()
                .any(|d| d.path == disk.path && !(d.cow && disk.cow))
            {
                return Err(ConfigError::DiskTwice(disk.path.clone()));
            }
        }
        Ok(())
    }

    /// How many virtio-mmio devices the VM has.
    pub fn device_count(&self) -> usize {
        self.disks.len()
            + self.nets.len()
            + usize::from(self.rng)
            + usize::from(self.vsock.is_some())
    }

    /// Checks the name and sizes (what a snapshot's configuration must also satisfy).
    pub fn validate_shape(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.name) {
            return Err(ConfigError::Name(self.name.clone()));
        }
        if self.cpus == 0 || self.cpus > MAX_CPUS {
            return Err(ConfigError::Cpus(self.cpus));
        }
        // A vCPU is a host thread: more of them than host CPUs only makes them contend.
        let host_cpus = host_cpus();
        if u64::from(self.cpus) > host_cpus {
            return Err(ConfigError::CpusTooMany {
                requested: self.cpus,
                host: host_cpus,
            });
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(ConfigError::MemoryTooSmall(self.memory_mib));
        }
        let host = host_memory_mib()?;
        if self.memory_mib > host {
            return Err(ConfigError::MemoryTooLarge {
                requested: self.memory_mib,
                host,
            });
        }
        let devices = self.device_count();
        if devices > crate::memory::MAX_MMIO_DEVICES {
            return Err(ConfigError::TooManyDisks(devices));
        }
        if let Some(v) = &self.vsock {
            if v.cid < 3 || v.cid == u32::MAX {
                return Err(ConfigError::VsockCid(v.cid));
            }
        }
        for (i, net) in self.nets.iter().enumerate() {
            if net.tap.is_empty() || net.tap.len() > 15 || net.tap.contains(['/', '\0']) {
                return Err(ConfigError::TapName(net.tap.clone()));
            }
            if self.nets[..i].iter().any(|n| n.tap == net.tap) {
                return Err(ConfigError::TapTwice(net.tap.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("vm-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
