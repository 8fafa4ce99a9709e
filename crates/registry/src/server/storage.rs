//! Local-disk storage. Layout under the root:
//!
//! ```text
//! blobs/<alg>/<hh>/<hex>                      content, shared by every repository
//! uploads/<uuid>/{data,repo}                  uploads in progress (never a blob until verified)
//! repos/<name>/_layers/<alg>/<hex>            blob links: the blob belongs to the repository
//! repos/<name>/_manifests/<alg>/<hex>         manifest links; the file holds the media type
//! repos/<name>/_tags/<tag>                    the digest the tag points at
//! repos/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   descriptors of manifests whose subject is <alg>:<hex>
//! ```
//!
//! Paths are built only from validated [`Name`]s, tags, [`Digest`]s and upload UUIDs: name
//! components cannot start with `_` or `.`, so `_layers` and friends never collide with a
//! nested repository and `..` cannot appear. Every metadata write is temp file → fsync →
//! rename → fsync of the directory, so a crash leaves the old or the new value, never a torn
//! one; a blob is renamed into `blobs/` only after its digest verified.

use crate::reference::parse_digest;
use crate::reference::{Digest, Name};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Runs two independent durable writes at once (each is mostly an fsync's wait), and
/// fails if either failed.
pub fn both(
    a: impl FnOnce() -> io::Result<()> + Send,
    b: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let rb = b();
        let ra = a
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("durable write thread panicked")));
        ra.and(rb)
    })
}

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", path.display())))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn not_found_ok(r: io::Result<()>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Storage {
    pub fn open(root: &Path) -> io::Result<Storage> {
        for d in ["blobs", "uploads", "repos"] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(Storage {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    /// The size of a stored blob, if present.
    pub fn blob_size(&self, d: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Marks a blob as recently used so a concurrent GC keeps it (GC spares blobs whose
    /// mtime is after its start minus the grace period).
    pub fn touch_blob(&self, d: &Digest) {
        if let Ok(f) = fs::File::options().append(true).open(self.blob_path(d)) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Makes the verified file `tmp` the blob `d` and links it into `repo`. An existing
    /// blob is never replaced: the new file is renamed into place with
    /// `renameat2(RENAME_NOREPLACE)`, which fails when the name exists (so a blob another
    /// push committed first stays as it is, and is only touched for GC) and leaves no
    /// second name of the blob's file behind (a hard link would leave the upload's `data`
    /// pointing at it until removed: a crash in between, and a resumed upload could
    /// append to a committed blob). The link is made only after the blob exists (a concurrent
    /// GC drops links whose blob is missing), but its fsync and the blob directory's run
    /// at once: the link counts only while the blob exists ([`Storage::blob_in_repo`]), so
    /// a crash between the two leaves nothing a client was told exists.
    pub fn commit_blob(&self, tmp: &Path, d: &Digest, repo: &Name) -> io::Result<()> {
        let dst = self.blob_path(d);
        let dir = dst
            .parent()
            .ok_or_else(|| io::Error::other("blob path has no parent"))?;
        if dst.exists() {
            self.touch_blob(d);
            return self.link_blob(repo, d);
        }
        fs::File::open(tmp)?.sync_all()?;
        fs::create_dir_all(dir)?;
        // The linked file keeps the fresh mtime of its writing, which a concurrent GC
        // reads as "in use".
        match nix::fcntl::renameat2(
            None,
            tmp,
            None,
            &dst,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => {
                self.touch_blob(d);
                let _ = fs::remove_file(tmp);
            }
            Err(e) => return Err(io::Error::from(e)),
        }
        both(|| fsync_dir(dir), || self.link_blob(repo, d))
    }

    /// Stores small content (a manifest) as a blob.
    pub fn put_blob_bytes(&self, d: &Digest, data: &[u8]) -> io::Result<()> {
        if self.blob_size(d)?.is_some() {
            self.touch_blob(d);
            return Ok(());
        }
        write_atomic(&self.blob_path(d), data)
    }

    pub fn remove_blob(&self, d: &Digest) -> io::Result<bool> {
        not_found_ok(fs::remove_file(self.blob_path(d)))
    }

    pub fn repo_dir(&self, name: &Name) -> PathBuf {
        self.root.join("repos").join(name.as_str())
    }

    pub fn repo_exists(&self, name: &Name) -> bool {
        let d = self.repo_dir(name);
        d.join("_manifests").is_dir() || d.join("_layers").is_dir() || d.join("_tags").is_dir()
    }

    fn layer_link(&self, name: &Name, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_layers")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    /// Links a blob into a repository: an empty file whose existence is the link, made
    /// durable by an fsync of its directory.
    pub fn link_blob(&self, name: &Name, d: &Digest) -> io::Result<()> {
        let p = self.layer_link(name, d);
        if p.exists() {
            return Ok(());
        }
        let dir = p
            .parent()
            .ok_or_else(|| io::Error::other("link path has no parent"))?;
        fs::create_dir_all(dir)?;
        fs::File::create(&p)?;
        fsync_dir(dir)
    }

    /// Whether the repository holds the blob (linked and present in the blob store).
    pub fn blob_in_repo(&self, name: &Name, d: &Digest) -> io::Result<Option<u64>> {
        if !self.layer_link(name, d).exists() && !self.manifest_link(name, d).exists() {
            return Ok(None);
        }
        self.blob_size(d)
    }

    pub fn unlink_blob(&self, name: &Name, d: &Digest) -> io::Result<bool> {
        not_found_ok(fs::remove_file(self.layer_link(name, d)))
    }

    fn manifest_link(&self, name: &Name, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_manifests")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    pub fn put_manifest_link(&self, name: &Name, d: &Digest, media_type: &str) -> io::Result<()> {
        write_atomic(&self.manifest_link(name, d), media_type.as_bytes())
    }

    /// The media type of a manifest the repository holds.
    pub fn manifest_media_type(&self, name: &Name, d: &Digest) -> io::Result<Option<String>> {
        Ok(read_opt(&self.manifest_link(name, d))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub fn delete_manifest_link(&self, name: &Name, d: &Digest) -> io::Result<bool> {
        not_found_ok(fs::remove_file(self.manifest_link(name, d)))
    }

    /// Every manifest digest of a repository.
    pub fn manifests(&self, name: &Name) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        let base = self.repo_dir(name).join("_manifests");
        for alg in read_dir_names(&base)? {
            for hex in read_dir_names(&base.join(&alg))? {
                if let Ok(d) = parse_digest(&format!("{alg}:{hex}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Every blob link of a repository.
    pub fn layer_links(&self, name: &Name) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        let base = self.repo_dir(name).join("_layers");
        for alg in read_dir_names(&base)? {
            for hex in read_dir_names(&base.join(&alg))? {
                if let Ok(d) = parse_digest(&format!("{alg}:{hex}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    fn tag_path(&self, name: &Name, tag: &str) -> PathBuf {
        self.repo_dir(name).join("_tags").join(tag)
    }

    pub fn set_tag(&self, name: &Name, tag: &str, d: &Digest) -> io::Result<()> {
        write_atomic(&self.tag_path(name, tag), d.to_string().as_bytes())
    }

    pub fn get_tag(&self, name: &Name, tag: &str) -> io::Result<Option<Digest>> {
        Ok(read_opt(&self.tag_path(name, tag))?
            .and_then(|b| parse_digest(String::from_utf8_lossy(&b).trim()).ok()))
    }

    pub fn delete_tag(&self, name: &Name, tag: &str) -> io::Result<bool> {
        not_found_ok(fs::remove_file(self.tag_path(name, tag)))
    }

    /// Tags of a repository, sorted; `None` if the repository is unknown.
    pub fn tags(&self, name: &Name) -> io::Result<Option<Vec<String>>> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let mut tags: Vec<String> = read_dir_names(&self.repo_dir(name).join("_tags"))?
            .into_iter()
            .filter(|t| crate::reference::valid_tag(t))
            .collect();
        tags.sort();
        Ok(Some(tags))
    }

    fn referrers_dir(&self, name: &Name, subject: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_referrers")
            .join(subject.algorithm().name())
            .join(subject.hex())
    }

    pub fn add_referrer(
        &self,
        name: &Name,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> io::Result<()> {
        let p = self.referrers_dir(name, subject).join(format!(
            "{}-{}",
            referrer.algorithm().name(),
            referrer.hex()
        ));
        write_atomic(&p, descriptor)
    }

    pub fn remove_referrer(
        &self,
        name: &Name,
        subject: &Digest,
        referrer: &Digest,
    ) -> io::Result<()> {
        let p = self.referrers_dir(name, subject).join(format!(
            "{}-{}",
            referrer.algorithm().name(),
            referrer.hex()
        ));
        not_found_ok(fs::remove_file(p)).map(|_| ())
    }

    /// The stored descriptors of the manifests whose subject is `subject`.
    pub fn referrers(&self, name: &Name, subject: &Digest) -> io::Result<Vec<Vec<u8>>> {
        let dir = self.referrers_dir(name, subject);
        let mut names = read_dir_names(&dir)?;
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if n.starts_with('.') {
                continue;
            }
            if let Some(b) = read_opt(&dir.join(n))? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Every repository, sorted (walks `repos/`, a directory is a repository when it
    /// holds `_manifests`, `_layers` or `_tags`).
    pub fn repositories(&self) -> io::Result<Vec<Name>> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = if prefix.is_empty() {
                self.root.join("repos")
            } else {
                self.root.join("repos").join(&prefix)
            };
            for entry in read_dir_names(&dir)? {
                if entry.starts_with('_') || entry.starts_with('.') {
                    continue;
                }
                let full = if prefix.is_empty() {
                    entry
                } else {
                    format!("{prefix}/{entry}")
                };
                if let Ok(n) = Name::parse(&full) {
                    if self.repo_exists(&n) {
                        out.push(n);
                    }
                    stack.push(full);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Names in a directory; an absent directory is empty.
pub fn read_dir_names(dir: &Path) -> io::Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        if let Ok(n) = e?.file_name().into_string() {
            out.push(n);
        }
    }
    Ok(out)
}
