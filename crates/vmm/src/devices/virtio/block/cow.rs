//! Copy-on-write disks: a read-only base image and a writable overlay.
//!
//! The overlay is a sparse file as long as the base; an allocation map beside it
//! (`<overlay>.map`) has one bit per 4 KiB cluster. A read of an allocated cluster comes from
//! the overlay, any other from the base; a write allocates its clusters in the overlay (the
//! rest of a partly written cluster is copied up from the base first). The base is opened
//! read-only, so no guest request can change it.
//!
//! The map on disk is a 32-byte header (`BERTHCOW`, version, cluster size, disk size) and the
//! bits. New bits are written to it on a flush, after the overlay's data is synced, so a map
//! on disk never names a cluster whose data may not be there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The allocation unit of the overlay.
pub const CLUSTER: u64 = 4096;
const MAGIC: &[u8; 8] = b"BERTHCOW";
const VERSION: u32 = 1;
const HEADER: u64 = 32;

/// A copy-on-write disk.
pub struct CowDisk {
    base: File,
    overlay: File,
    map: File,
    /// The overlay's path (the map is beside it).
    pub overlay_path: PathBuf,
    bits: Vec<u8>,
    /// Indexes into `bits` changed since the last flush.
    dirty: Vec<usize>,
    size: u64,
}

/// The map file's path of an overlay.
pub fn map_path(overlay: &Path) -> PathBuf {
    let mut s = overlay.as_os_str().to_os_string();
    s.push(".map");
    PathBuf::from(s)
}

fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl CowDisk {
    /// Creates a new, empty overlay at `overlay` (which must not exist) over `base`.
    pub fn create(base: &Path, overlay: &Path) -> io::Result<CowDisk> {
        let base_file = File::open(base).map_err(with_path(base))?;
        let size = base_file.metadata().map_err(with_path(base))?.len();
        let new = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .map_err(with_path(p))
        };
        let overlay_file = new(overlay)?;
        overlay_file.set_len(size).map_err(with_path(overlay))?;
        let map_p = map_path(overlay);
        let map = new(&map_p)?;
        let clusters = size.div_ceil(CLUSTER);
        let bits = vec![0u8; usize::try_from(clusters.div_ceil(8)).map_err(io::Error::other)?];
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(CLUSTER as u32).to_le_bytes());
        header[16..24].copy_from_slice(&size.to_le_bytes());
        map.write_all_at(&header, 0).map_err(with_path(&map_p))?;
        map.set_len(HEADER + bits.len() as u64)
            .map_err(with_path(&map_p))?;
        Ok(CowDisk {
            base: base_file,
            overlay: overlay_file,
            map,
            overlay_path: overlay.to_path_buf(),
            bits,
            dirty: Vec::new(),
            size,
        })
    }

    /// The disk's size in bytes (the base's).
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the disk has no bytes.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Whether cluster `c` lives in the overlay.
    pub fn allocated(&self, c: u64) -> bool {
        let Ok(i) = usize::try_from(c / 8) else {
            return false;
        };
        self.bits.get(i).is_some_and(|b| b & (1 << (c % 8)) != 0)
    }

    fn mark(&mut self, c: u64) {
        if let Ok(i) = usize::try_from(c / 8) {
            if let Some(b) = self.bits.get_mut(i) {
                *b |= 1 << (c % 8);
                self.dirty.push(i);
            }
        }
    }

    fn check(&self, len: usize, offset: u64) -> io::Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "request past the end of the disk",
            )),
        }
    }

    /// Splits `[offset, offset+len)` into (position, length) pieces that stay in a cluster.
    fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize)> {
        let mut pos = offset;
        let end = offset + len as u64;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let n = (CLUSTER - pos % CLUSTER).min(end - pos);
            let piece = (pos, n as usize);
            pos += n;
            Some(piece)
        })
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check(buf.len(), offset)?;
        let mut done = 0;
        for (pos, n) in Self::pieces(offset, buf.len()) {
            let src = if self.allocated(pos / CLUSTER) {
                &self.overlay
            } else {
                &self.base
            };
            src.read_exact_at(&mut buf[done..done + n], pos)?;
            done += n;
        }
        Ok(())
    }

    /// Writes `buf` at `offset` into the overlay, copying up partly written clusters.
    pub fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check(buf.len(), offset)?;
        let mut done = 0;
        for (pos, n) in Self::pieces(offset, buf.len()) {
            let c = pos / CLUSTER;
            let data = &buf[done..done + n];
            if self.allocated(c) {
                self.overlay.write_all_at(data, pos)?;
            } else {
                let start = c * CLUSTER;
                let clen = CLUSTER.min(self.size - start) as usize;
                if n == clen {
                    self.overlay.write_all_at(data, pos)?;
                } else {
                    let mut cluster = vec![0u8; clen];
                    self.base.read_exact_at(&mut cluster, start)?;
                    let at = (pos - start) as usize;
                    cluster[at..at + n].copy_from_slice(data);
                    self.overlay.write_all_at(&cluster, start)?;
                }
                self.mark(c);
            }
            done += n;
        }
        Ok(())
    }

    /// Makes the overlay's data durable, then the map's new bits.
    pub fn flush(&mut self) -> io::Result<()> {
        self.overlay.sync_data()?;
        if self.dirty.is_empty() {
            return Ok(());
        }
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for &i in &self.dirty {
            self.map
                .write_all_at(&self.bits[i..=i], HEADER + i as u64)?;
        }
        self.map.sync_data()?;
        self.dirty.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup(name: &str, size: usize) -> (Dir, PathBuf, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("berth-cow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let base: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let p = dir.join("base.img");
        std::fs::write(&p, &base).expect("write base");
        (Dir(dir), p, base)
    }

    #[test]
    fn writes_go_to_the_overlay_and_reads_see_them() {
        let (dir, base_p, base) = setup("rw", 3 * 4096 + 1024);
        let ov = dir.0.join("disk.overlay");
        let mut d = CowDisk::create(&base_p, &ov).expect("create");
        assert_eq!(d.len(), base.len() as u64);
        // Unallocated: the base's bytes.
        let mut buf = vec![0u8; 1536];
        d.read_at(&mut buf, 4000).expect("read");
        assert_eq!(buf, base[4000..5536]);
        // A write across a cluster boundary, partly covering both clusters.
        let data = vec![0xabu8; 1024];
        d.write_at(&data, 4096 - 512).expect("write");
        assert!(d.allocated(0) && d.allocated(1) && !d.allocated(2));
        let mut all = vec![0u8; base.len()];
        d.read_at(&mut all, 0).expect("read");
        let mut expected = base.clone();
        expected[4096 - 512..4096 + 512].fill(0xab);
        assert_eq!(all, expected);
        // A write to the short last cluster (1024 bytes).
        d.write_at(&[1u8; 512], 3 * 4096 + 512).expect("write last");
        expected[3 * 4096 + 512..].fill(1);
        d.read_at(&mut all, 0).expect("read");
        assert_eq!(all, expected);
        // Past the end: refused.
        assert!(d.write_at(&[0u8; 512], base.len() as u64).is_err());
        assert!(d.read_at(&mut [0u8; 512], u64::MAX - 10).is_err());
        // The base is untouched; the overlay holds the data.
        d.flush().expect("flush");
        assert_eq!(std::fs::read(&base_p).expect("base"), base);
        let overlay = std::fs::read(&ov).expect("overlay");
        assert_eq!(overlay[4096 - 512..4096 + 512], data[..]);
        // The map on disk names clusters 0, 1 and 3.
        let map = std::fs::read(map_path(&ov)).expect("map");
        assert_eq!(&map[..8], MAGIC);
        assert_eq!(map[HEADER as usize], 0b1011);
    }

    #[test]
    fn an_existing_overlay_is_never_reused() {
        let (dir, base_p, _) = setup("excl", 4096);
        let ov = dir.0.join("disk.overlay");
        std::fs::write(&ov, b"someone else's").expect("write");
        let err = CowDisk::create(&base_p, &ov).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("disk.overlay"), "{err}");
    }
}
