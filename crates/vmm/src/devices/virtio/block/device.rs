//! The block device: its configuration space and the request processing.

use super::cow::CowDisk;
use crate::devices::virtio::{
    ActivateError, IrqTrigger, VirtioDevice, INT_VRING, TYPE_BLOCK, VIRTIO_F_VERSION_1,
};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const SECTOR: u64 = 512;
const QUEUE_SIZE: u16 = 256;
const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
const VIRTIO_BLK_F_RO: u64 = 1 << 5;
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// Largest data segment one descriptor may carry.
const MAX_SEGMENT: u32 = 4 << 20;

/// Opening a disk failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// disk {path}: {source}
    #[error("disk {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// disk {0}: not a regular file
    #[error("disk {0}: not a regular file")]
    NotAFile(PathBuf),
    /// disk {path}: copy-on-write overlay: {source}
    #[error("disk {path}: copy-on-write overlay: {source}")]
    Overlay {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a disk's sectors live: a raw image, or a read-only base behind a copy-on-write
/// overlay.
pub(crate) enum Backing {
    Raw(File),
    Cow(CowDisk),
}

impl Backing {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Backing::Raw(f) => f.read_exact_at(buf, offset),
            Backing::Cow(c) => c.read_at(buf, offset),
        }
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        match self {
            Backing::Raw(f) => f.write_all_at(buf, offset),
            Backing::Cow(c) => c.write_at(buf, offset),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Backing::Raw(f) => f.sync_all(),
            Backing::Cow(c) => c.flush(),
        }
    }
}

/// A virtio-blk device.
pub struct Block {
    pub(crate) path: PathBuf,
    pub(crate) disk: Backing,
    pub(crate) read_only: bool,
    capacity: u64,
    pub(crate) acked_features: u64,
    pub(crate) queues: Vec<Queue>,
    pub(crate) mem: Option<GuestMemoryMmap>,
    pub(crate) irq: Arc<IrqTrigger>,
    /// Signalled by the guest's queue notification (an ioeventfd).
    pub queue_evt: EventFd,
}

impl Block {
    /// Opens `path` (read-only if `read_only`) as a disk that interrupts through `irq`.
    pub fn new(path: &Path, read_only: bool, irq: Arc<IrqTrigger>) -> Result<Self, BlockError> {
        let open = |source| BlockError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(open)?;
        let meta = file.metadata().map_err(open)?;
        if !meta.is_file() {
            return Err(BlockError::NotAFile(path.to_path_buf()));
        }
        Self::with_backing(path, Backing::Raw(file), read_only, meta.len(), irq)
    }

    /// Opens `base` read-only behind a new copy-on-write overlay at `overlay` (which must
    /// not exist; the allocation map goes beside it): the guest may write, the base never
    /// changes.
    pub fn new_cow(base: &Path, overlay: &Path, irq: Arc<IrqTrigger>) -> Result<Self, BlockError> {
        let meta = std::fs::metadata(base).map_err(|source| BlockError::Open {
            path: base.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(BlockError::NotAFile(base.to_path_buf()));
        }
        let cow = CowDisk::create(base, overlay).map_err(|source| BlockError::Overlay {
            path: base.to_path_buf(),
            source,
        })?;
        let len = cow.len();
        Self::with_backing(base, Backing::Cow(cow), false, len, irq)
    }

    fn with_backing(
        path: &Path,
        disk: Backing,
        read_only: bool,
        len: u64,
        irq: Arc<IrqTrigger>,
    ) -> Result<Self, BlockError> {
        let open = |source| BlockError::Open {
            path: path.to_path_buf(),
            source,
        };
        Ok(Block {
            path: path.to_path_buf(),
            disk,
            read_only,
            capacity: len / SECTOR,
            acked_features: 0,
            queues: Vec::new(),
            mem: None,
            irq,
            queue_evt: EventFd::new(libc::EFD_NONBLOCK).map_err(open)?,
        })
    }

    /// Serves every request in the queue and interrupts the guest if any completed.
    pub fn process_queue(&mut self) {
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let Some(queue) = self.queues.get_mut(0) else {
            return;
        };
        let mut done = Vec::new();
        if let Ok(iter) = queue.iter(&mem) {
            for chain in iter {
                let head = chain.head_index();
                let descs: Vec<_> = chain.collect();
                let written = serve(&mut self.disk, self.read_only, self.capacity, &mem, &descs);
                done.push((head, written));
            }
        }
        if done.is_empty() {
            return;
        }
        for (head, len) in done {
            let _ = queue.add_used(&mem, head, len);
        }
        if queue.needs_notification(&mem).unwrap_or(true) {
            let _ = self.irq.trigger(INT_VRING);
        }
    }
}

/// Serves one request; returns the bytes written into guest memory.
fn serve(
    file: &mut Backing,
    read_only: bool,
    capacity: u64,
    mem: &GuestMemoryMmap,
    descs: &[virtio_queue::desc::split::Descriptor],
) -> u32 {
    // header (device-readable) … data … status (device-writable, 1 byte)
    let (Some(header), Some(status)) = (descs.first(), descs.last()) else {
        return 0;
    };
    if descs.len() < 2 || header.len() < 16 || !status.is_write_only() || status.len() < 1 {
        return 0;
    }
    let (Ok(kind), Ok(sector)) = (
        mem.read_obj::<u32>(header.addr()),
        mem.read_obj::<u64>(header.addr().unchecked_add(8)),
    ) else {
        return 0;
    };
    let data = &descs[1..descs.len() - 1];
    let mut written = 0u32;
    let result = match kind {
        T_IN | T_OUT => rw(
            file,
            read_only,
            capacity,
            mem,
            data,
            kind,
            sector,
            &mut written,
        ),
        T_FLUSH => {
            if read_only {
                Ok(())
            } else {
                file.flush().map_err(|_| S_IOERR)
            }
        }
        T_GET_ID => match data.first() {
            Some(d) if d.is_write_only() => {
                let mut id = [0u8; 20];
                let name = b"berth-disk";
                id[..name.len()].copy_from_slice(name);
                let n = (d.len() as usize).min(id.len());
                mem.write_slice(&id[..n], d.addr())
                    .map(|_| written += n as u32)
                    .map_err(|_| S_IOERR)
            }
            _ => Err(S_IOERR),
        },
        _ => Err(S_UNSUPP),
    };
    let code = result.err().unwrap_or(S_OK);
    if mem.write_obj(code, status.addr()).is_err() {
        return written;
    }
    written + 1
}

#[allow(clippy::too_many_arguments)]
fn rw(
    file: &mut Backing,
    read_only: bool,
    capacity: u64,
    mem: &GuestMemoryMmap,
    data: &[virtio_queue::desc::split::Descriptor],
    kind: u32,
    sector: u64,
    written: &mut u32,
) -> Result<(), u8> {
    if kind == T_OUT && read_only {
        return Err(S_IOERR);
    }
    let total: u64 = data.iter().map(|d| u64::from(d.len())).sum();
    let start = sector.checked_mul(SECTOR).ok_or(S_IOERR)?;
    let end = start.checked_add(total).ok_or(S_IOERR)?;
    if !total.is_multiple_of(SECTOR) || end > capacity * SECTOR {
        return Err(S_IOERR);
    }
    let mut offset = start;
    for d in data {
        if d.len() > MAX_SEGMENT || d.is_write_only() != (kind == T_IN) {
            return Err(S_IOERR);
        }
        let mut buf = vec![0u8; d.len() as usize];
        if kind == T_IN {
            file.read_at(&mut buf, offset).map_err(|_| S_IOERR)?;
            mem.write_slice(&buf, d.addr()).map_err(|_| S_IOERR)?;
            *written += d.len();
        } else {
            mem.read_slice(&mut buf, d.addr()).map_err(|_| S_IOERR)?;
            file.write_at(&buf, offset).map_err(|_| S_IOERR)?;
        }
        offset += u64::from(d.len());
    }
    Ok(())
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn avail_features(&self) -> u64 {
        let ro = if self.read_only { VIRTIO_BLK_F_RO } else { 0 };
        VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // capacity (u64), size_max (u32), seg_max (u32)
        let mut config = [0u8; 16];
        config[..8].copy_from_slice(&self.capacity.to_le_bytes());
        config[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
        super::super::read_config_bytes(&config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), ActivateError> {
        self.queues = queues;
        self.acked_features = acked_features;
        self.mem = Some(mem);
        // Requests queued before the notification was seen.
        let _ = self.queue_evt.write(1);
        Ok(())
    }

    fn reset(&mut self) {
        self.queues.clear();
        self.mem = None;
        self.acked_features = 0;
    }
}

impl Block {
    /// The disk's size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
    /// Whether the driver has started the device.
    pub fn activated(&self) -> bool {
        self.mem.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::split::Descriptor;
    use vm_memory::GuestAddress;

    const WRITE: u16 = 2;

    struct Fixture {
        mem: GuestMemoryMmap,
        file: Backing,
        path: PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn fixture(name: &str) -> Fixture {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("memory");
        let path = std::env::temp_dir().join(format!("berth-blk-{name}-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 4096]).expect("disk");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        Fixture {
            mem,
            file: Backing::Raw(file),
            path,
        }
    }

    fn header(mem: &GuestMemoryMmap, kind: u32, sector: u64) -> Descriptor {
        mem.write_obj(kind, GuestAddress(0x1000)).expect("write");
        mem.write_obj(sector, GuestAddress(0x1008)).expect("write");
        Descriptor::new(0x1000, 16, 1, 1)
    }

    fn status(mem: &GuestMemoryMmap) -> u8 {
        mem.read_obj(GuestAddress(0x3000)).expect("read")
    }

    #[test]
    fn reads_and_writes_inside_the_disk() {
        let mut f = fixture("rw");
        let hdr = header(&f.mem, T_IN, 7);
        let data = Descriptor::new(0x2000, 512, 1 | WRITE, 2);
        let st = Descriptor::new(0x3000, 1, WRITE, 0);
        assert_eq!(serve(&mut f.file, false, 8, &f.mem, &[hdr, data, st]), 513);
        assert_eq!(status(&f.mem), S_OK);
        let hdr = header(&f.mem, T_OUT, 0);
        let data = Descriptor::new(0x2000, 512, 1, 2);
        assert_eq!(serve(&mut f.file, false, 8, &f.mem, &[hdr, data, st]), 1);
        assert_eq!(status(&f.mem), S_OK);
    }

    #[test]
    fn refuses_what_a_hostile_driver_asks() {
        let mut f = fixture("hostile");
        let st = Descriptor::new(0x3000, 1, WRITE, 0);
        // Past the end of the disk (8 sectors), and a sector number that overflows.
        for sector in [8, u64::MAX / 256] {
            let hdr = header(&f.mem, T_IN, sector);
            let data = Descriptor::new(0x2000, 512, 1 | WRITE, 2);
            serve(&mut f.file, false, 8, &f.mem, &[hdr, data, st]);
            assert_eq!(status(&f.mem), S_IOERR, "sector {sector}");
        }
        // Not a whole sector; a write to a read-only disk; a buffer outside guest memory.
        let hdr = header(&f.mem, T_IN, 0);
        let odd = Descriptor::new(0x2000, 100, 1 | WRITE, 2);
        serve(&mut f.file, false, 8, &f.mem, &[hdr, odd, st]);
        assert_eq!(status(&f.mem), S_IOERR);
        let hdr = header(&f.mem, T_OUT, 0);
        let data = Descriptor::new(0x2000, 512, 1, 2);
        serve(&mut f.file, true, 8, &f.mem, &[hdr, data, st]);
        assert_eq!(status(&f.mem), S_IOERR);
        let hdr = header(&f.mem, T_IN, 0);
        let outside = Descriptor::new(0xff_ff00, 512, 1 | WRITE, 2);
        serve(&mut f.file, false, 8, &f.mem, &[hdr, outside, st]);
        assert_eq!(status(&f.mem), S_IOERR);
        // A device-readable buffer for a read; an unknown request type.
        let hdr = header(&f.mem, T_IN, 0);
        let wrong_dir = Descriptor::new(0x2000, 512, 1, 2);
        serve(&mut f.file, false, 8, &f.mem, &[hdr, wrong_dir, st]);
        assert_eq!(status(&f.mem), S_IOERR);
        let hdr = header(&f.mem, 99, 0);
        serve(&mut f.file, false, 8, &f.mem, &[hdr, st]);
        assert_eq!(status(&f.mem), S_UNSUPP);
        // No status descriptor, or a short header: nothing is done.
        let hdr = header(&f.mem, T_IN, 0);
        assert_eq!(serve(&mut f.file, false, 8, &f.mem, &[hdr]), 0);
        let short = Descriptor::new(0x1000, 8, 1, 1);
        assert_eq!(serve(&mut f.file, false, 8, &f.mem, &[short, st]), 0);
    }
}
