//! The filesystem steps (RUN, COPY, ADD): each runs on an overlay mount of the stage's
//! layers with a fresh upper directory; the upper directory then becomes the step's layer
//! (`diff.rs`) and, through the backend, its unpacked snapshot.

use crate::context::{Item, Kind, SourceRoot};
use crate::fsroot::{clean, Owner, Root, RootError};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

/// A filesystem error naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{path}")]
pub struct FsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| FsError {
        path: path.to_path_buf(),
        source,
    }
}

/// An overlay mount, unmounted on drop.
#[derive(Debug)]
pub struct Overlay {
    merged: PathBuf,
}

impl Overlay {
    /// Mounts at `merged` the layers `lowers` (bottom first; `empty` is put below them so
    /// there are always two) with `rw` = (upper, work) for a writable mount, read-only
    /// without.
    pub fn mount(
        lowers: &[PathBuf],
        empty: &Path,
        rw: Option<(&Path, &Path)>,
        merged: &Path,
    ) -> Result<Overlay, FsError> {
        let mut all: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
        all.push(empty);
        for p in all.iter().chain(rw.iter().flat_map(|(u, w)| [u, w])) {
            let s = p.to_string_lossy();
            if s.contains([':', ',']) {
                return Err(at(p)(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "overlay paths cannot contain ':' or ','",
                )));
            }
        }
        let lower: Vec<String> = all.iter().map(|p| p.display().to_string()).collect();
        let mut opts = format!("lowerdir={}", lower.join(":"));
        if let Some((u, w)) = rw {
            opts.push_str(&format!(
                ",upperdir={},workdir={}",
                u.display(),
                w.display()
            ));
        }
        let flags = if rw.is_some() {
            nix::mount::MsFlags::empty()
        } else {
            nix::mount::MsFlags::MS_RDONLY
        };
        let mount =
            |o: &str| nix::mount::mount(Some("overlay"), merged, Some("overlay"), flags, Some(o));
        // The upper directory must hold whole files and directories to be a layer: no
        // metadata-only copy-up, no renamed directory recorded as a redirect (both are off
        // by default, but a host may turn them on; kernels before 4.19 do not know the
        // options).
        let strict = format!("{opts},redirect_dir=off,metacopy=off");
        match mount(&strict) {
            Err(nix::errno::Errno::EINVAL) => mount(&opts),
            r => r,
        }
        .map_err(|e| at(merged)(e.into()))?;
        Ok(Overlay {
            merged: merged.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.merged
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        // Nothing can be done about a failed unmount here; the build's private mount
        // namespace goes away with the process anyway.
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A step's scratch directory (upper, work, merged, bundle), removed on drop.
#[derive(Debug)]
pub struct StepDir {
    pub dir: PathBuf,
}

impl StepDir {
    pub fn new(parent: &Path, name: &str) -> Result<StepDir, FsError> {
        let dir = parent.join(name);
        let _ = fs::remove_dir_all(&dir);
        for d in ["upper", "work", "merged", "empty", "from"] {
            fs::create_dir_all(dir.join(d)).map_err(at(&dir))?;
        }
        Ok(StepDir { dir })
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }
}

impl Drop for StepDir {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir.join("merged"), nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&self.dir.join("from"), nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// How COPY/ADD write entries: `owner` (--chown) replaces the source owner, `mode`
/// (--chmod) the source mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOpts {
    pub owner: Option<Owner>,
    pub mode: Option<u32>,
    /// ADD: extract local tar archives instead of copying them.
    pub extract: bool,
}

/// Copies `items` (listed by `from`) into `root`. Returns the number of bytes written.
pub fn copy_items(
    root: &Root,
    from: &SourceRoot,
    items: &[Item],
    o: CopyOpts,
) -> Result<u64, CopyError> {
    let owner = o.owner.unwrap_or_default();
    let mut total: u64 = 0;
    for it in items {
        let mode = o.mode.unwrap_or(it.mode);
        match &it.kind {
            // The destination of a directory source: made if missing, else left alone.
            Kind::Dir if it.top => {
                root.mkdir_all(&it.dest, 0o755, owner)?;
            }
            Kind::Dir => root.dir(&it.dest, mode, owner)?,
            Kind::Symlink(t) => root.symlink(&it.dest, t, owner)?,
            Kind::File => {
                // Resolved inside the source root again, non-blocking, and only a regular
                // file: the source may have changed since it was listed.
                let mut f = from.open_file(&it.src).map_err(at(&it.src))?;
                if o.extract && it.top {
                    if let Some(reader) = archive_reader(&mut f).map_err(at(&it.src))? {
                        // An archive is unpacked as a directory at the destination.
                        let dest = if it.dest_is_dir {
                            it.dest.parent().unwrap_or(Path::new("")).to_path_buf()
                        } else {
                            it.dest.clone()
                        };
                        total += extract(root, reader, &dest, o.owner).map_err(|source| {
                            CopyError::Archive {
                                archive: it.src.clone(),
                                source: Box::new(source),
                            }
                        })?;
                        continue;
                    }
                }
                total += root.write_file(&it.dest, &mut f, mode, owner)?;
            }
        }
    }
    Ok(total)
}

/// A COPY/ADD error.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("archive {archive}")]
    Archive {
        archive: PathBuf,
        #[source]
        source: Box<CopyError>,
    },
    #[error("archive entry {0:?} is of a kind ADD does not extract")]
    Entry(PathBuf),
    #[error("archive has more than {MAX_ENTRIES} entries or {MAX_BYTES} bytes")]
    TooLarge,
}

/// The decompressing reader of a tar archive (plain or gzip), or None if `f` is not one.
fn archive_reader(f: &mut File) -> io::Result<Option<Box<dyn Read + '_>>> {
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    f.rewind()?;
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        return Ok(Some(Box::new(flate2::read::GzDecoder::new(
            BufReader::new(f),
        ))));
    }
    // A ustar or GNU tar header has "ustar" at offset 257.
    if n >= 262 && &head[257..262] == b"ustar" {
        return Ok(Some(Box::new(BufReader::new(f))));
    }
    Ok(None)
}

/// The most entries an ADD archive may have.
pub const MAX_ENTRIES: u64 = 1_000_000;
/// The most bytes an ADD archive may unpack to.
pub const MAX_BYTES: u64 = 64 << 30;

/// Extracts a tar stream under `dest` in `root` (every entry confined to the root, the
/// entry count and unpacked size capped).
fn extract(
    root: &Root,
    r: Box<dyn Read + '_>,
    dest: &Path,
    owner: Option<Owner>,
) -> Result<u64, CopyError> {
    let mut a = tar::Archive::new(r);
    let mut total: u64 = 0;
    for (n, e) in a.entries().map_err(at(dest))?.enumerate() {
        let mut e = e.map_err(at(dest))?;
        let size = e.header().size().map_err(at(dest))?;
        if n as u64 >= MAX_ENTRIES || total.saturating_add(size) > MAX_BYTES {
            return Err(CopyError::TooLarge);
        }
        let name = e.path().map_err(at(dest))?.into_owned();
        let rel = dest.join(clean(&name));
        let h = e.header();
        let mode = h.mode().map_err(at(&name))? & 0o7777;
        let own = owner.unwrap_or(Owner {
            uid: h.uid().map_err(at(&name))? as u32,
            gid: h.gid().map_err(at(&name))? as u32,
        });
        match h.entry_type() {
            tar::EntryType::Directory => root.dir(&rel, mode, own)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total += root.write_file(&rel, &mut e, mode, own)?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(at(&name))?
                    .ok_or_else(|| CopyError::Entry(name.clone()))?
                    .into_owned();
                root.symlink(&rel, &target, own)?;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(at(&name))?
                    .ok_or_else(|| CopyError::Entry(name.clone()))?;
                let mut src = root.read_file(&dest.join(clean(&target)))?;
                total += root.write_file(&rel, &mut src, mode, own)?;
            }
            // PAX and GNU long-name records are consumed by the tar reader.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            _ => return Err(CopyError::Entry(name)),
        }
    }
    Ok(total)
}
