//! Layer diff: an overlayfs upper directory becomes an OCI layer tar.
//!
//! overlayfs records a deletion as a 0:0 character device and an opaque directory (a
//! directory that replaces, not merges with, the one below) with the xattr
//! `trusted.overlay.opaque=y` (`user.overlay.opaque` under `userxattr`). The OCI image spec
//! (image-spec `layer.md`, "Whiteouts") writes them as an empty file `.wh.NAME` beside the
//! deleted entry and an empty file `.wh..wh..opq` inside the opaque directory.
//!
//! The tar is reproducible: entries sorted by name, every mtime set to one fixed value,
//! numeric owners only, no access or change times, xattrs as sorted PAX records. The same
//! tree gives the same bytes and so the same digest.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The image-spec prefix of a whiteout file.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The image-spec name of the opaque-directory marker.
pub const OPAQUE: &str = ".wh..wh..opq";

/// A layer diff error: the path it is about and what failed.
#[derive(Debug, thiserror::Error)]
#[error("layer diff of {path}")]
pub struct DiffError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> DiffError + '_ {
    move |source| DiffError {
        path: path.to_path_buf(),
        source,
    }
}

/// What was written: the sha256 of the tar (`sha256:…`, both the layer digest and its
/// diffID since it is uncompressed) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The xattrs a layer carries (the overlay's own bookkeeping is not part of the image).
fn keep_xattr(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
}

fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| matches!(xattr::get(path, n), Ok(Some(v)) if v == b"y"))
}

fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

struct Differ<W: Write> {
    tar: tar::Builder<Hashing<W>>,
    mtime: u64,
    /// (dev, ino) of multiply-linked files already written → their name in the tar.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Differ<W> {
    fn header(&self, md: &Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(self.mtime);
        h.set_size(0);
        h
    }

    fn empty_file(&mut self, name: &Path) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(0);
        self.tar.append_data(&mut h, name, io::empty())
    }

    fn xattrs(&mut self, path: &Path) -> io::Result<()> {
        let mut names: Vec<Vec<u8>> = match xattr::list(path) {
            Ok(l) => l
                .map(|n| n.as_bytes().to_vec())
                .filter(|n| keep_xattr(n))
                .collect(),
            // A filesystem without xattrs has none to carry.
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
            Err(e) => return Err(e),
        };
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let mut records = Vec::new();
        for n in &names {
            let name = std::ffi::OsStr::from_bytes(n);
            if let Some(v) = xattr::get(path, name)? {
                let mut key = b"SCHILY.xattr.".to_vec();
                key.extend_from_slice(n);
                records.push((key, v));
            }
        }
        self.tar.append_pax_extensions(records.iter().map(|(k, v)| {
            (
                std::str::from_utf8(k).unwrap_or("SCHILY.xattr.?"),
                v.as_slice(),
            )
        }))
    }

    /// Writes `dir` (on disk) whose entries go under `name` in the tar.
    fn walk(&mut self, dir: &Path, name: &Path) -> Result<(), DiffError> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(at(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(at(dir))?;
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for file_name in entries {
            let path = dir.join(&file_name);
            let rel = name.join(&file_name);
            let md = fs::symlink_metadata(&path).map_err(at(&path))?;
            self.entry(&path, &rel, &md).map_err(at(&path))?;
            if md.is_dir() {
                self.walk(&path, &rel)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &Path, md: &Metadata) -> io::Result<()> {
        let ft = md.file_type();
        if is_whiteout(md) {
            let mut wh = std::ffi::OsString::from(WHITEOUT_PREFIX);
            wh.push(rel.file_name().unwrap_or_default());
            return self.empty_file(&rel.with_file_name(wh));
        }
        if ft.is_symlink() {
            let target = fs::read_link(path)?;
            let mut h = self.header(md, tar::EntryType::Symlink);
            return self.tar.append_link(&mut h, rel, target);
        }
        if !ft.is_dir() && md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())).cloned() {
                let mut h = self.header(md, tar::EntryType::Link);
                return self.tar.append_link(&mut h, rel, first);
            }
            self.links.insert((md.dev(), md.ino()), rel.to_path_buf());
        }
        self.xattrs(path)?;
        if ft.is_dir() {
            let mut h = self.header(md, tar::EntryType::Directory);
            self.tar.append_data(&mut h, rel, io::empty())?;
            if is_opaque(path) {
                self.empty_file(&rel.join(OPAQUE))?;
            }
        } else if ft.is_file() {
            let mut h = self.header(md, tar::EntryType::Regular);
            h.set_size(md.len());
            let f = File::open(path)?;
            self.tar.append_data(&mut h, rel, f)?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                // Sockets are not representable in a layer; docker skips them too.
                return Ok(());
            };
            let mut h = self.header(md, kind);
            if kind != tar::EntryType::Fifo {
                h.set_device_major(nix::sys::stat::major(md.rdev()) as u32)?;
                h.set_device_minor(nix::sys::stat::minor(md.rdev()) as u32)?;
            }
            self.tar.append_data(&mut h, rel, io::empty())?;
        }
        Ok(())
    }
}

/// Writes the layer tar of overlay upper directory `upper` to `out` with every mtime set
/// to `mtime` (seconds since the epoch).
pub fn diff_upper(upper: &Path, out: &Path, mtime: u64) -> Result<Layer, DiffError> {
    let file = File::create(out).map_err(at(out))?;
    let mut d = Differ {
        tar: tar::Builder::new(Hashing {
            inner: BufWriter::new(file),
            hash: Sha256::new(),
            size: 0,
        }),
        mtime,
        links: HashMap::new(),
    };
    d.tar.mode(tar::HeaderMode::Deterministic);
    d.walk(upper, Path::new(""))?;
    let mut h = d.tar.into_inner().map_err(at(out))?;
    h.flush().map_err(at(out))?;
    h.inner
        .into_inner()
        .map_err(|e| at(out)(e.into_error()))?
        .sync_all()
        .map_err(at(out))?;
    Ok(Layer {
        digest: format!("sha256:{:x}", h.hash.finalize()),
        size: h.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("berth-diff-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("mkdir");
        p
    }

    fn names(tar_path: &Path) -> Vec<String> {
        let mut a = tar::Archive::new(File::open(tar_path).expect("open"));
        a.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                format!(
                    "{}:{}",
                    e.path().expect("path").display(),
                    e.header().mtime().expect("mtime")
                )
            })
            .collect()
    }

    #[test]
    fn sorted_fixed_mtime_and_reproducible() {
        let d = tmp("repro");
        let up = d.join("up");
        fs::create_dir_all(up.join("b/c")).expect("mkdir");
        fs::write(up.join("b/c/f"), "x").expect("write");
        fs::write(up.join("a"), "y").expect("write");
        std::os::unix::fs::symlink("a", up.join("l")).expect("symlink");
        fs::hard_link(up.join("a"), up.join("h")).expect("link");
        let one = diff_upper(&up, &d.join("1.tar"), 7).expect("diff");
        let listed = names(&d.join("1.tar"));
        assert_eq!(listed, ["a:7", "b:7", "b/c:7", "b/c/f:7", "h:7", "l:7"]);
        // Touch everything: the digest must not change.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(up.join("b/c/f"), "x").expect("rewrite");
        let two = diff_upper(&up, &d.join("2.tar"), 7).expect("diff");
        assert_eq!(one, two);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: mknod and trusted xattrs need root");
            return;
        }
        let d = tmp("wh");
        let up = d.join("up");
        fs::create_dir_all(up.join("etc/opq")).expect("mkdir");
        nix::sys::stat::mknod(
            &up.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .expect("mknod");
        xattr::set(up.join("etc/opq"), "trusted.overlay.opaque", b"y").expect("xattr");
        diff_upper(&up, &d.join("l.tar"), 0).expect("diff");
        assert_eq!(
            names(&d.join("l.tar")),
            [
                "etc:0",
                "etc/.wh.gone:0",
                "etc/opq:0",
                "etc/opq/.wh..wh..opq:0"
            ]
        );
        let _ = fs::remove_dir_all(&d);
    }
}
