//! Layer apply: unpack one layer tar (image-spec `layer.md`, "Applying Changesets") into a
//! directory, treating the stream as hostile.
//!
//! Every entry path is cleaned lexically (an absolute path or a `..` component is refused),
//! then its parent is opened with `openat2(RESOLVE_BENEATH)` so that a symlink (or a chain of
//! them) leading out of the target is refused with `EXDEV` instead of followed; the entry
//! itself is created with `*at` calls on that pinned parent and never follows a final
//! symlink. Hardlink targets go through the same resolution. Entry count and total size are
//! capped. Errors name the entry as it appears in the stream.
//!
//! Whiteouts (`.wh.NAME`, opaque `.wh..wh..opq`) are either kept in overlayfs form
//! ([`Whiteouts::Overlay`]: a 0/0 character device, `trusted.overlay.opaque=y`) so that the
//! directory can be an overlay lower layer, or applied by removing what they hide
//! ([`Whiteouts::Remove`]) when layers are unpacked on top of each other.

use crate::error::{entry_err, io_err, Result};
use content::{Algorithm, Digest, HashingReader};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{self, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};
use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use sys::resolve::open_beneath;

/// The prefix of a whiteout file (image-spec `layer.md`, "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of an opaque-directory whiteout.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The overlayfs xattr that makes a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How whiteout entries are materialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// As overlayfs expects in a lower directory: character device 0/0 and the opaque xattr.
    Overlay,
    /// By removing the hidden files from the target (layers applied on top of each other).
    Remove,
}

/// Caps on one layer. Sizes count regular-file content as unpacked (a GNU sparse file at
/// its declared real size, checked before anything of it is written).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_entries: u64,
    /// Unpacked bytes of one layer (`BERTH_MAX_LAYER_SIZE`).
    pub max_bytes: u64,
    /// Unpacked bytes the image this layer belongs to may still take
    /// (`BERTH_MAX_IMAGE_SIZE` minus its layers below).
    pub image_room: u64,
    /// Unpacked bytes per byte of the layer blob (`BERTH_MAX_LAYER_RATIO`), enforced once
    /// a layer has unpacked more than [`ratio_floor`](Self::ratio_floor) bytes: a layer
    /// of zeros compresses ~1000:1, but only a bomb does that for hundreds of MiB.
    pub max_ratio: u64,
    /// See [`max_ratio`](Self::max_ratio) (`BERTH_LAYER_RATIO_FLOOR`).
    pub ratio_floor: u64,
    /// Bytes in one entry path.
    pub max_path: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_bytes: 16 << 30,
            image_room: u64::MAX,
            max_ratio: 100,
            ratio_floor: 256 << 20,
            max_path: 4096,
        }
    }
}

/// The configurable caps on unpacking (environment variables, sizes like `512M`, `16G`):
/// `BERTH_MAX_LAYER_SIZE` (one layer, default 16 GiB), `BERTH_MAX_IMAGE_SIZE` (all layers
/// of an image, default 64 GiB), `BERTH_MAX_LAYER_RATIO` (unpacked bytes per blob byte,
/// default 100) past `BERTH_LAYER_RATIO_FLOOR` (default 256 MiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    pub layer: u64,
    pub image: u64,
    pub ratio: u64,
    pub ratio_floor: u64,
}

impl Default for Caps {
    fn default() -> Self {
        let l = Limits::default();
        Caps {
            layer: l.max_bytes,
            image: 64 << 30,
            ratio: l.max_ratio,
            ratio_floor: l.ratio_floor,
        }
    }
}

impl Caps {
    /// The defaults, overridden by the environment; a malformed value is an error naming
    /// its variable.
    pub fn from_env() -> Result<Caps> {
        let mut c = Caps::default();
        for (var, field) in [
            ("BERTH_MAX_LAYER_SIZE", &mut c.layer),
            ("BERTH_MAX_IMAGE_SIZE", &mut c.image),
            ("BERTH_MAX_LAYER_RATIO", &mut c.ratio),
            ("BERTH_LAYER_RATIO_FLOOR", &mut c.ratio_floor),
        ] {
            if let Some(v) = std::env::var_os(var) {
                let v = v.to_string_lossy();
                *field = parse_size(&v).ok_or_else(|| {
                    crate::error::invalid(
                        var,
                        format!("expected a number with an optional K, M, G or T, got {v:?}"),
                    )
                })?;
            }
        }
        if c.ratio == 0 {
            return Err(crate::error::invalid(
                "BERTH_MAX_LAYER_RATIO",
                "must be at least 1",
            ));
        }
        Ok(c)
    }

    /// The limits of one layer of an image that has `image_room` bytes left.
    pub fn limits(&self, image_room: u64) -> Limits {
        Limits {
            max_bytes: self.layer,
            image_room,
            max_ratio: self.ratio,
            ratio_floor: self.ratio_floor,
            ..Limits::default()
        }
    }
}

/// `123`, `64K`, `512M`, `16G`, `1T` (binary multiples; a trailing `B`/`iB` is allowed).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_suffix("iB")
        .or_else(|| s.strip_suffix('B'))
        .unwrap_or(s);
    let (num, shift) = match s.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// Counts the bytes read from a layer blob (the denominator of the expansion ratio).
pub(crate) struct Counting<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R> Counting<R> {
    pub(crate) fn new(inner: R, n: Rc<Cell<u64>>) -> Self {
        Counting { inner, n }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// What one [`apply_layer`] did.
#[derive(Clone, Debug)]
pub struct Applied {
    pub entries: u64,
    pub bytes: u64,
    /// sha256 of the uncompressed tar stream: the layer's diffID.
    pub diff_id: Digest,
}

/// Wraps `r` in the decompressor its magic bytes call for (gzip, zstd, or none).
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut b = BufReader::with_capacity(256 << 10, r);
    let head = b.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(b)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(b)?))
    } else {
        Ok(Box::new(b))
    }
}

/// Unpacks the layer `blob` (compressed or not) into `target`, an existing directory.
pub fn apply_layer(
    blob: impl Read,
    target: &Path,
    whiteouts: Whiteouts,
    limits: &Limits,
) -> Result<Applied> {
    let root: OwnedFd = File::open(target).map_err(io_err(target))?.into();
    let read = Rc::new(Cell::new(0));
    let counted = Counting {
        inner: blob,
        n: read.clone(),
    };
    let stream = decompress(counted).map_err(io_err(target))?;
    let hashing = HashingReader::new(stream, Algorithm::Sha256);
    let mut archive = tar::Archive::new(hashing);
    let mut a = Applier {
        root,
        whiteouts,
        limits,
        read,
        entries: 0,
        bytes: 0,
        created: HashSet::new(),
        dir_times: Vec::new(),
        opaque: Vec::new(),
    };
    let entries = archive.entries().map_err(io_err(target))?;
    for entry in entries {
        let mut entry = entry.map_err(stream_err)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        a.entry(&mut entry, &raw, &name)?;
    }
    a.finish()?;
    let (entries, bytes) = (a.entries, a.bytes);
    let (diff_id, _) = archive.into_inner().finish().map_err(stream_err)?;
    Ok(Applied {
        entries,
        bytes,
        diff_id,
    })
}

/// A stream that is not (or no longer) a tar archive; tar's message may quote raw header
/// bytes, shown as ASCII (others as `?`) and cut short.
fn stream_err(e: io::Error) -> crate::Error {
    let msg: String = e
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(120)
        .collect();
    entry_err("(tar stream)", format!("not a valid tar archive: {msg}"))
}

/// Splits an entry path into clean components, refusing absolute paths and `..`.
pub fn clean_path(raw: &[u8], name: &str, limits: &Limits) -> Result<Vec<OsString>> {
    if raw.len() > limits.max_path {
        return Err(entry_err(
            name,
            format!("path longer than {} bytes", limits.max_path),
        ));
    }
    if raw.first() == Some(&b'/') {
        return Err(entry_err(name, "absolute path"));
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(entry_err(name, "path contains \"..\"")),
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

struct Applier<'l> {
    root: OwnedFd,
    whiteouts: Whiteouts,
    limits: &'l Limits,
    /// Bytes read from the blob so far.
    read: Rc<Cell<u64>>,
    entries: u64,
    bytes: u64,
    /// Paths this layer created (an opaque whiteout keeps them).
    created: HashSet<PathBuf>,
    /// Directory mtimes, set last (creating children changes them).
    dir_times: Vec<(PathBuf, i64)>,
    /// Opaque directories to empty of older content ([`Whiteouts::Remove`]).
    opaque: Vec<PathBuf>,
}

/// `/proc/self/fd/N/name`: a path through a pinned directory, for calls without an `*at`
/// form (xattrs, recursive removal). Only used with calls that do not follow `name`.
fn via_fd(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

fn escape_reason(e: Errno) -> String {
    match e {
        Errno::EXDEV => "path escapes the layer root (through a symlink or \"..\")".into(),
        Errno::ELOOP => "too many levels of symlinks".into(),
        Errno::ENOTDIR => "a parent is not a directory".into(),
        e => e.desc().to_lowercase(),
    }
}

impl Applier<'_> {
    /// Opens (creating missing directories when `create`) the directory `comps` beneath
    /// the root.
    fn open_dir(&self, comps: &[OsString], create: bool, name: &str) -> Result<OwnedFd> {
        let path: PathBuf = comps.iter().collect();
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let rel = if comps.is_empty() {
            Path::new(".")
        } else {
            &path
        };
        match open_beneath(self.root.as_fd(), rel, flags, 0) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) if create && !comps.is_empty() => {
                let parent = self.open_dir(&comps[..comps.len() - 1], true, name)?;
                let last = &comps[comps.len() - 1];
                match stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    last.as_os_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(entry_err(name, format!("mkdir {}: {e}", path.display())))
                    }
                }
                open_beneath(self.root.as_fd(), &path, flags, 0)
                    .map_err(|e| entry_err(name, escape_reason(e)))
            }
            Err(e) => Err(entry_err(name, escape_reason(e))),
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        name: &str,
    ) -> Result<()> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(entry_err(
                name,
                format!("more than {} entries in one layer", self.limits.max_entries),
            ));
        }
        let comps = clean_path(raw, name, self.limits)?;
        let Some((last, parent_comps)) = comps.split_last() else {
            return Ok(()); // the root directory itself
        };
        let last_s = last.to_string_lossy();
        let parent = self.open_dir(parent_comps, true, name)?;
        let rel: PathBuf = comps.iter().collect();

        if let Some(hidden) = last_s.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&parent, parent_comps, hidden, name);
        }

        // Replace whatever is there, unless a directory meets a directory.
        let existing = stat::fstatat(
            Some(parent.as_raw_fd()),
            last.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok();
        let is_dir = |st: &stat::FileStat| st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if let Some(st) = existing {
            if !(kind == T::Directory && is_dir(&st)) {
                remove_at(&parent, last, name)?;
            }
        }
        let h = entry.header();
        // Blank numeric fields (some writers leave them empty) read as zero.
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let uid = h.uid().unwrap_or(0);
        let gid = h.gid().unwrap_or(0);
        let mtime = h.mtime().unwrap_or(0) as i64;
        let pfd = Some(parent.as_raw_fd());
        let err = |e: Errno| entry_err(name, e.desc().to_lowercase());
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                // The declared size counts before anything is written: for a GNU sparse
                // entry that is its real size, whatever few bytes the archive stores.
                let size = entry.size();
                self.check_size(size, name)?;
                if kind == T::GNUSparse {
                    let stored = h.entry_size().unwrap_or(0).saturating_add(512);
                    let total = self.bytes.saturating_add(size);
                    if total > self.limits.ratio_floor
                        && size > stored.saturating_mul(self.limits.max_ratio)
                    {
                        return Err(entry_err(
                            name,
                            format!(
                                "sparse file declares {size} bytes in {stored} stored: it \
                                 expands more than {}:1 (BERTH_MAX_LAYER_RATIO)",
                                self.limits.max_ratio
                            ),
                        ));
                    }
                }
                let fd = open_beneath(
                    parent.as_fd(),
                    Path::new(last),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(err)?;
                let mut f = File::from(fd);
                self.copy_content(&mut entry.take(size), &mut f, name)?;
            }
            T::Directory => {
                if existing.is_none_or(|st| !is_dir(&st)) {
                    stat::mkdirat(pfd, last.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(err)?;
                }
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(name, "symlink without a target"))?;
                unistd::symlinkat(OsStr::from_bytes(&target), pfd, last.as_os_str())
                    .map_err(err)?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(name, "hardlink without a target"))?;
                let tcomps = clean_path(&target, name, self.limits).map_err(|_| {
                    entry_err(
                        name,
                        format!(
                            "hardlink target {:?} leaves the layer root",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                let Some((tlast, tparent)) = tcomps.split_last() else {
                    return Err(entry_err(name, "hardlink to the root directory"));
                };
                let tdir = self.open_dir(tparent, false, name).map_err(|_| {
                    entry_err(
                        name,
                        format!(
                            "hardlink target {:?} is outside the layer root or missing",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                unistd::linkat(
                    Some(tdir.as_raw_fd()),
                    tlast.as_os_str(),
                    pfd,
                    last.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    entry_err(
                        name,
                        format!(
                            "hardlink to {:?}: {}",
                            String::from_utf8_lossy(&target),
                            e.desc().to_lowercase()
                        ),
                    )
                })?;
                self.created.insert(rel);
                return Ok(()); // a hardlink shares its target's metadata
            }
            T::Char | T::Block | T::Fifo => {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    T::Char => SFlag::S_IFCHR,
                    T::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                stat::mknodat(
                    pfd,
                    last.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    stat::makedev(major.into(), minor.into()),
                )
                .map_err(err)?;
            }
            other => return Err(entry_err(name, format!("unsupported entry type {other:?}"))),
        }
        // Owner, then mode (chown clears set-id bits), then xattrs (chown clears
        // security.capability), then mtime.
        unistd::fchownat(
            pfd,
            last.as_os_str(),
            Some(Uid::from_raw(uid as u32)),
            Some(Gid::from_raw(gid as u32)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| entry_err(name, format!("chown: {}", e.desc().to_lowercase())))?;
        if kind != T::Symlink {
            stat::fchmodat(
                pfd,
                last.as_os_str(),
                Mode::from_bits_truncate(mode as libc::mode_t),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| entry_err(name, format!("chmod: {}", e.desc().to_lowercase())))?;
        }
        if let Some(exts) = entry.pax_extensions().map_err(|e| entry_err(name, e))? {
            for ext in exts {
                let ext = ext.map_err(|e| entry_err(name, e))?;
                let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                // overlayfs reads its own attributes: a layer may never set them.
                if attr.starts_with(b"trusted.overlay.") {
                    continue;
                }
                xattr::set(
                    via_fd(&parent, last),
                    OsStr::from_bytes(attr),
                    ext.value_bytes(),
                )
                .map_err(|e| {
                    entry_err(
                        name,
                        format!("xattr {}: {e}", String::from_utf8_lossy(attr)),
                    )
                })?;
            }
        }
        if kind == T::Directory {
            self.dir_times.push((rel.clone(), mtime));
        } else {
            let t = TimeSpec::new(mtime, 0);
            stat::utimensat(
                pfd,
                last.as_os_str(),
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| entry_err(name, format!("utimensat: {}", e.desc().to_lowercase())))?;
        }
        self.created.insert(rel);
        Ok(())
    }

    /// Refuses `size` more bytes past the layer's or the image's size cap.
    fn check_size(&self, size: u64, name: &str) -> Result<()> {
        let total = self.bytes.saturating_add(size);
        if total > self.limits.max_bytes {
            return Err(entry_err(
                name,
                format!(
                    "layer content exceeds {} bytes (BERTH_MAX_LAYER_SIZE)",
                    self.limits.max_bytes
                ),
            ));
        }
        if total > self.limits.image_room {
            return Err(entry_err(
                name,
                format!(
                    "the image's unpacked content would exceed its cap; {} bytes were left \
                     for this layer (BERTH_MAX_IMAGE_SIZE)",
                    self.limits.image_room
                ),
            ));
        }
        Ok(())
    }

    /// Copies one file's content, checking the expansion ratio as it streams.
    fn copy_content(&mut self, from: &mut impl Read, to: &mut File, name: &str) -> Result<()> {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(entry_err(name, e)),
            };
            io::Write::write_all(to, &buf[..n]).map_err(|e| entry_err(name, e))?;
            self.bytes += n as u64;
            let read = self.read.get().max(1);
            if self.bytes > self.limits.ratio_floor
                && self.bytes > read.saturating_mul(self.limits.max_ratio)
            {
                return Err(entry_err(
                    name,
                    format!(
                        "the layer expands more than {}:1 ({} bytes unpacked from {read}; \
                         BERTH_MAX_LAYER_RATIO)",
                        self.limits.max_ratio, self.bytes
                    ),
                ));
            }
        }
    }

    fn whiteout(
        &mut self,
        parent: &OwnedFd,
        parent_comps: &[OsString],
        hidden: &str,
        name: &str,
    ) -> Result<()> {
        let dir: PathBuf = parent_comps.iter().collect();
        if hidden == ".wh..opq" {
            match self.whiteouts {
                Whiteouts::Overlay => {
                    let rel = if parent_comps.is_empty() {
                        Path::new(".")
                    } else {
                        &dir
                    };
                    let fd = open_beneath(
                        self.root.as_fd(),
                        rel,
                        libc::O_RDONLY | libc::O_DIRECTORY,
                        0,
                    )
                    .map_err(|e| entry_err(name, escape_reason(e)))?;
                    xattr::FileExt::set_xattr(&File::from(fd), OVERLAY_OPAQUE_XATTR, b"y")
                        .map_err(|e| {
                            entry_err(name, format!("xattr {OVERLAY_OPAQUE_XATTR}: {e}"))
                        })?;
                }
                Whiteouts::Remove => self.opaque.push(dir),
            }
            return Ok(());
        }
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(entry_err(name, "whiteout of an invalid name"));
        }
        let hidden = OsStr::new(hidden);
        match self.whiteouts {
            Whiteouts::Overlay => {
                if stat::fstatat(
                    Some(parent.as_raw_fd()),
                    hidden,
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .is_ok()
                {
                    remove_at(parent, hidden, name)?;
                }
                stat::mknodat(
                    Some(parent.as_raw_fd()),
                    hidden,
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    stat::makedev(0, 0),
                )
                .map_err(|e| entry_err(name, format!("whiteout: {}", e.desc().to_lowercase())))?;
            }
            Whiteouts::Remove => remove_at(parent, hidden, name)?,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        for dir in std::mem::take(&mut self.opaque) {
            let rel = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.clone()
            };
            let name = dir.join(OPAQUE_WHITEOUT).to_string_lossy().into_owned();
            let fd = open_beneath(self.root.as_fd(), &rel, libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(|e| entry_err(&name, escape_reason(e)))?;
            let listing =
                std::fs::read_dir(via_fd(&fd, OsStr::new(""))).map_err(|e| entry_err(&name, e))?;
            for child in listing {
                let child = child.map_err(|e| entry_err(&name, e))?.file_name();
                let p = dir.join(&child);
                let keep = self.created.iter().any(|c| c.starts_with(&p));
                if !keep {
                    remove_at(&fd, &child, &name)?;
                }
            }
        }
        for (dir, mtime) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let name = dir.to_string_lossy().into_owned();
            if let Ok(fd) = open_beneath(
                self.root.as_fd(),
                &dir,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                let t = TimeSpec::new(mtime, 0);
                let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
                stat::utimensat(None, Path::new(&p), &t, &t, UtimensatFlags::FollowSymlink)
                    .map_err(|e| {
                        entry_err(&name, format!("utimensat: {}", e.desc().to_lowercase()))
                    })?;
            }
        }
        Ok(())
    }
}

/// Removes `name` (recursively, never following symlinks) from the pinned `dir`.
fn remove_at(dir: &OwnedFd, name: &OsStr, entry: &str) -> Result<()> {
    let st = match stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(entry_err(entry, e.desc().to_lowercase())),
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // std's remove_dir_all opens each level with O_NOFOLLOW (symlink-race safe).
        std::fs::remove_dir_all(via_fd(dir, name))
            .map_err(|e| entry_err(entry, format!("remove: {e}")))
    } else {
        unistd::unlinkat(
            Some(dir.as_raw_fd()),
            name,
            unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| entry_err(entry, format!("remove: {}", e.desc().to_lowercase())))
    }
}

#[cfg(test)]
mod prop;
#[cfg(test)]
pub(crate) mod tests;
