//! `berth-content`: content-addressed blobs, the first stop of every byte berth stores.
//!
//! A blob is named by its digest (sha256 or sha512) and lives at
//! `<root>/blobs/<algorithm>/<hex>`. Writing one is an *ingestion* (the containerd model):
//! bytes go to a temporary file under `<root>/ingest/`, are hashed as they are written,
//! fsync'd, checked against the expected digest and only then renamed into place (and the
//! directory fsync'd). Invariants:
//! - a blob visible in the store always matches its digest; a mismatching write is
//!   rejected and its temporary file removed;
//! - two writers of the same blob are safe: both hash their own temporary file and the
//!   rename of identical content is atomic;
//! - a crash leaves at most temporary files in `ingest/`, which [`Store::gc`] removes once
//!   the process that made them is gone.
#![forbid(unsafe_code)]

mod digest;

pub use digest::{Algorithm, Digest, Hasher, HashingReader};

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is larger than {limit} bytes")]
    TooLarge { digest: Digest, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A content store rooted at one directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

static INGEST_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for d in ["blobs/sha256", "blobs/sha512", "ingest"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists). Read only.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// Starts an ingestion hashed with `algorithm`. Write to it, then
    /// [`Ingestion::commit`]; dropping it uncommitted removes the temporary file.
    pub fn ingest(&self, algorithm: Algorithm) -> Result<Ingestion> {
        let dir = self.root.join("ingest");
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            INGEST_COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Ingestion {
            store: self.clone(),
            path: Some(path),
            file: Some(file),
            hasher: algorithm.hasher(),
            size: 0,
        })
    }

    /// Stores `bytes`, verified against `expected` when given; returns the digest.
    pub fn write(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        if let Some(d) = expected {
            if self.exists(d) {
                let actual = Digest::of(alg, bytes);
                return if &actual == d {
                    Ok(actual)
                } else {
                    Err(Error::Mismatch {
                        expected: d.clone(),
                        actual,
                    })
                };
            }
        }
        let mut w = self.ingest(alg)?;
        w.write_all(bytes).map_err(io_err(Path::new("ingest")))?;
        w.commit(expected)
    }

    /// Stores everything `reader` yields, verified against `expected` when given.
    pub fn copy_from(&self, reader: &mut dyn Read, expected: Option<&Digest>) -> Result<Digest> {
        self.copy_new(reader, expected).map(|(d, _)| d)
    }

    /// [`Store::copy_from`], also saying whether the blob is new (was not in the store).
    pub fn copy_new(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, bool)> {
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.ingest(alg)?;
        let tmp = w.path.clone().unwrap_or_default();
        io::copy(reader, &mut w).map_err(io_err(&tmp))?;
        w.commit_new(expected)
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let p = self.path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(digest.clone())),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Opens the blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(digest.clone())
            } else {
                io_err(&p)(e)
            }
        })
    }

    /// Reads a whole blob of at most `limit` bytes (manifests, configs: small JSON).
    pub fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let f = self.open_blob(digest)?;
        let mut buf = Vec::new();
        let p = self.path(digest);
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(io_err(&p))?;
        if buf.len() as u64 > limit {
            return Err(Error::TooLarge {
                digest: digest.clone(),
                limit,
            });
        }
        Ok(buf)
    }

    /// Re-hashes the blob and checks it against its name.
    pub fn verify(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        let r = HashingReader::new(self.open_blob(digest)?, digest.algorithm());
        let (actual, _) = r.finish().map_err(io_err(&p))?;
        if &actual != digest {
            return Err(Error::Mismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Every committed blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.name());
            for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let e = e.map_err(io_err(&dir))?;
                let name = e.file_name();
                // Anything that is not a well-formed name is not a blob (never ours).
                if let Ok(d) = format!("{}:{}", alg.name(), name.to_string_lossy()).parse() {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a blob; removing a missing blob is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Removes every blob not in `keep`, and temporary files of ingestions whose process is
    /// gone. The caller makes sure no writer is between committing blobs and recording the
    /// references to them (berth-image holds a store lock for that).
    pub fn gc(&self, keep: &HashSet<Digest>) -> Result<GcReport> {
        let mut report = GcReport::default();
        for d in self.list()? {
            if !keep.contains(&d) {
                report.bytes += self.size(&d).unwrap_or(0);
                self.delete(&d)?;
                report.removed.push(d);
            }
        }
        let (partials, bytes) = self.collect_partials()?;
        report.partials = partials;
        report.bytes += bytes;
        let dir = self.root.join("ingest");
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                report.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(e.path());
                report.stale_ingests += 1;
            }
        }
        Ok(report)
    }
}

/// The marker in the name of a download in progress beside its blob
/// (`<hex>.partial-<uuid>`, written by the registry client: `berth pull`).
pub const PARTIAL_MARKER: &str = ".partial-";

/// Creates a new partial download file `path` and locks it (`flock`, exclusive) for as
/// long as the returned file (or a duplicate of it) is open: [`Store::collect_partials`]
/// takes only files whose lock it can get, so a live download is never collected and one
/// whose process died (`kill -9` releases the lock) is. Locking after creating leaves a
/// window in which a collector can lock and unlink the new file: the link count tells,
/// and a fresh name is tried.
pub fn create_partial(mut path_for: impl FnMut() -> PathBuf) -> io::Result<(PathBuf, File)> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..8 {
        let path = path_for();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)?;
        f.try_lock().map_err(|e| match e {
            fs::TryLockError::Error(e) => e,
            fs::TryLockError::WouldBlock => io::Error::other("new partial file already locked"),
        })?;
        if f.metadata()?.nlink() > 0 {
            return Ok((path, f));
        }
    }
    Err(io::Error::other(
        "partial download files keep being collected",
    ))
}

impl Store {
    /// Removes the partial downloads (`<hex>.partial-<uuid>` in `blobs/<alg>/`) that no
    /// live process is writing: each is removed only while its `flock` is held here, which
    /// its writer holds from creation to rename (see [`create_partial`]); a writer killed
    /// with SIGKILL releases it. Returns the count and bytes removed.
    pub fn collect_partials(&self) -> Result<(usize, u64)> {
        let (mut n, mut bytes) = (0, 0);
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.name());
            for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let e = e.map_err(io_err(&dir))?;
                if !e.file_name().to_string_lossy().contains(PARTIAL_MARKER) {
                    continue;
                }
                let p = e.path();
                let Ok(f) = OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                    .open(&p)
                else {
                    continue;
                };
                if f.try_lock().is_err() {
                    continue; // a live download (or a file we may not lock): kept
                }
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                match fs::remove_file(&p) {
                    Ok(()) => {
                        n += 1;
                        bytes += size;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p)(e)),
                }
                drop(f);
            }
        }
        Ok((n, bytes))
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: Vec<Digest>,
    pub stale_ingests: usize,
    /// Partial downloads of dead `berth pull`s ([`Store::collect_partials`]).
    pub partials: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// A blob being written; see [`Store::ingest`].
#[derive(Debug)]
pub struct Ingestion {
    store: Store,
    path: Option<PathBuf>,
    file: Option<File>,
    hasher: Hasher,
    size: u64,
}

impl Ingestion {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the blob visible: fsync, check against `expected` (when given), rename into
    /// place, fsync the directory. On a mismatch nothing becomes visible.
    pub fn commit(self, expected: Option<&Digest>) -> Result<Digest> {
        self.commit_new(expected).map(|(d, _)| d)
    }

    /// [`Ingestion::commit`], also saying whether the blob is new (was not in the store).
    pub fn commit_new(mut self, expected: Option<&Digest>) -> Result<(Digest, bool)> {
        let tmp = self.path.take().unwrap_or_default();
        let file = self.file.take();
        let actual = std::mem::replace(&mut self.hasher, Algorithm::Sha256.hasher()).finish();
        let result = (|| {
            if let Some(f) = file {
                f.sync_all().map_err(io_err(&tmp))?;
            }
            if let Some(e) = expected {
                if e != &actual {
                    return Err(Error::Mismatch {
                        expected: e.clone(),
                        actual: actual.clone(),
                    });
                }
            }
            let dst = self.store.path(&actual);
            let created = !dst.is_file();
            fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
            if let Some(dir) = dst.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err(dir))?;
            }
            Ok((actual, created))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl Write for Ingestion {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("ingestion already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Drop for Ingestion {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests;
