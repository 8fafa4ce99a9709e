//! The image store: names → manifest digests (crash-safe JSON metadata), images resolved
//! from the content store, commits of new images, leases and garbage collection.
//!
//! Layout under the root (default `/var/lib/berth`):
//! `content/` (blobs, berth-content), `snapshots/` (unpacked layers by ChainID),
//! `images.json` (names; rewritten as temp file + fsync + rename under `images.lock`),
//! `containers/<id>/` (per-container upper/work and the chains it uses), `gc.lock`
//! (writers hold it shared through a [`Lease`]; garbage collection takes it exclusive).

use crate::error::{invalid, io_err, Error, Result};
use crate::oci::{self, chain_ids, Document, Layer, MAX_CONFIG, MAX_MANIFEST};
use crate::snapshot::{check_overlay_path, Rootfs, Snapshots};
use content::Digest;
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{
    DescriptorBuilder, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One name's record in `images.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub manifest: Digest,
    /// Seconds since the epoch when the name was set.
    pub tagged: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Metadata {
    images: BTreeMap<String, Record>,
}

/// An image resolved from the store.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    /// The raw config blob (what `inspect` shows; it may carry fields oci-spec drops).
    pub config_bytes: Vec<u8>,
}

impl Image {
    /// The image ID as podman and docker print it: the config digest's hex.
    pub fn id(&self) -> &str {
        self.config_digest.hex()
    }

    pub fn layers(&self) -> Result<Vec<Layer>> {
        oci::layers(&self.manifest, &self.config)
    }

    /// ChainIDs of the layers, bottom first.
    pub fn chain_ids(&self) -> Result<Vec<Digest>> {
        Ok(chain_ids(
            &self
                .layers()?
                .into_iter()
                .map(|l| l.diff_id)
                .collect::<Vec<_>>(),
        ))
    }

    /// Total size of the layer blobs.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum::<u64>() + self.manifest.config().size()
    }
}

/// Holds the store's gc lock shared: blobs and snapshots written while it is held survive
/// a concurrent garbage collection until they are referenced (or the lease is dropped).
#[derive(Debug)]
pub struct Lease {
    _lock: Flock<File>,
}

/// The image store at one root.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    content: content::Store,
    snapshots: Snapshots,
}

/// Normalizes a reference to a name as stored: a tag `:latest` is added when there is
/// neither a tag nor a digest. Names are `[a-z0-9._/-]` plus the tag.
pub fn normalize_name(reference: &str) -> Result<String> {
    let bad = || Error::InvalidName(reference.to_string());
    if reference.is_empty() || reference.len() > 255 {
        return Err(bad());
    }
    let (repo, tag) = match reference.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (reference, None),
    };
    let repo_ok = !repo.is_empty()
        && !repo.starts_with(['/', '.', '-'])
        && !repo.contains("..")
        && repo.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b) || b == b':'
        });
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    if !repo_ok || !tag_ok {
        return Err(bad());
    }
    Ok(format!("{repo}:{}", tag.unwrap_or("latest")))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        check_overlay_path(&root)?;
        fs::create_dir_all(root.join("containers")).map_err(io_err(&root))?;
        let content = content::Store::open(root.join("content"))?;
        let snapshots =
            Snapshots::open(root.join("snapshots"))?.with_caps(crate::apply::Caps::from_env()?);
        Ok(ImageStore {
            root,
            content,
            snapshots,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &content::Store {
        &self.content
    }

    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    fn lock(&self, name: &str, arg: FlockArg) -> Result<Flock<File>> {
        let p = self.root.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io_err(&p))?;
        Flock::lock(f, arg).map_err(|(_, e)| io_err(&p)(e.into()))
    }

    /// Takes a lease: hold it from the first blob written until the image is committed.
    pub fn lease(&self) -> Result<Lease> {
        Ok(Lease {
            _lock: self.lock("gc.lock", FlockArg::LockShared)?,
        })
    }

    fn read_meta(&self) -> Result<Metadata> {
        let p = self.root.join("images.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| invalid(p.display().to_string(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata::default()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Changes the metadata under its lock, written as temp + fsync + rename + dir fsync.
    fn update_meta<T>(&self, f: impl FnOnce(&mut Metadata) -> Result<T>) -> Result<T> {
        let _lock = self.lock("images.lock", FlockArg::LockExclusive)?;
        let mut meta = self.read_meta()?;
        let out = f(&mut meta)?;
        let p = self.root.join("images.json");
        let tmp = self
            .root
            .join(format!("images.json.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| invalid("images.json", e))?;
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &p).map_err(io_err(&p))?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.root))?;
        Ok(out)
    }

    /// Every name with its record, sorted by name.
    pub fn names(&self) -> Result<Vec<(String, Record)>> {
        Ok(self.read_meta()?.images.into_iter().collect())
    }

    /// Reads the image whose manifest is `manifest_digest` (following an index to its
    /// linux/amd64 manifest).
    pub fn image(&self, manifest_digest: &Digest) -> Result<Image> {
        let mut digest = manifest_digest.clone();
        for _ in 0..4 {
            let bytes = self.content.read(&digest, MAX_MANIFEST)?;
            match oci::parse_document(&bytes, &format!("manifest {digest}"))? {
                Document::Index(idx) => {
                    digest = oci::descriptor_digest(oci::choose_platform(&idx)?)?
                }
                Document::Manifest(m) => {
                    let config_digest = oci::descriptor_digest(m.config())?;
                    let config_bytes = self.content.read(&config_digest, MAX_CONFIG)?;
                    let config = ImageConfiguration::from_reader(&config_bytes[..])
                        .map_err(|e| invalid(format!("config {config_digest}"), e))?;
                    let img = Image {
                        manifest_digest: digest,
                        manifest: *m,
                        config_digest,
                        config,
                        config_bytes,
                    };
                    img.layers()?;
                    return Ok(img);
                }
            }
        }
        Err(invalid(
            format!("manifest {manifest_digest}"),
            "indexes nested too deep",
        ))
    }

    /// Finds a reference: a name (`busybox`, `busybox:1`, `localhost/busybox:1`), a full
    /// manifest digest, or a unique prefix of an image ID. Returns the manifest digest.
    pub fn lookup(&self, reference: &str) -> Result<Digest> {
        let meta = self.read_meta()?;
        if let Ok(name) = normalize_name(reference) {
            for candidate in [
                name.clone(),
                format!("localhost/{name}"),
                format!("docker.io/library/{name}"),
            ] {
                if let Some(r) = meta.images.get(&candidate) {
                    return Ok(r.manifest.clone());
                }
            }
        }
        if let Ok(d) = reference.parse::<Digest>() {
            if self.content.exists(&d) {
                return Ok(d);
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: Vec<Digest> = Vec::new();
            for r in meta.images.values() {
                if found.contains(&r.manifest) {
                    continue;
                }
                let img = self.image(&r.manifest)?;
                if img.id().starts_with(prefix) || r.manifest.hex().starts_with(prefix) {
                    found.push(r.manifest.clone());
                }
            }
            if found.len() == 1 {
                return Ok(found.remove(0));
            }
        }
        Err(Error::NotFound(reference.to_string()))
    }

    /// [`lookup`](Self::lookup) then [`image`](Self::image).
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        self.image(&self.lookup(reference)?)
    }

    /// Names the image `manifest` (which must be in the store) `name`.
    pub fn set_name(&self, name: &str, manifest: &Digest) -> Result<String> {
        let name = normalize_name(name)?;
        if !self.content.exists(manifest) {
            return Err(content::Error::NotFound(manifest.clone()).into());
        }
        self.update_meta(|m| {
            m.images.insert(
                name.clone(),
                Record {
                    manifest: manifest.clone(),
                    tagged: now(),
                },
            );
            Ok(())
        })?;
        Ok(name)
    }

    /// `tag SRC DST`.
    pub fn tag(&self, src: &str, dst: &str) -> Result<String> {
        let d = self.lookup(src)?;
        self.set_name(dst, &d)
    }

    /// Removes a name; a digest or ID removes every name of that image. Returns the names
    /// removed. Blobs stay until [`gc`](Self::gc).
    pub fn untag(&self, reference: &str) -> Result<Vec<String>> {
        let digest = self.lookup(reference)?;
        let direct = normalize_name(reference).ok();
        self.update_meta(|m| {
            let by_name: Vec<String> = direct
                .iter()
                .flat_map(|n| {
                    [
                        n.clone(),
                        format!("localhost/{n}"),
                        format!("docker.io/library/{n}"),
                    ]
                })
                .filter(|n| m.images.get(n).is_some_and(|r| r.manifest == digest))
                .take(1)
                .collect();
            let names = if by_name.is_empty() {
                m.images
                    .iter()
                    .filter(|(_, r)| r.manifest == digest)
                    .map(|(n, _)| n.clone())
                    .collect()
            } else {
                by_name
            };
            for n in &names {
                m.images.remove(n);
            }
            Ok(names)
        })
    }

    /// Writes `config` (its `rootfs.diff_ids` set from `layers`) and an OCI manifest for
    /// `layers` (whose blobs must already be in the store), then names the image `names`.
    /// Returns the manifest digest. For the builder and `import`.
    pub fn commit_image(
        &self,
        layers: &[Layer],
        mut config: ImageConfiguration,
        names: &[String],
    ) -> Result<Digest> {
        let _lease = self.lease()?;
        config
            .rootfs_mut()
            .set_diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect());
        let config_bytes = serde_json::to_vec(&config).map_err(|e| invalid("image config", e))?;
        let config_digest = self.content.write(&config_bytes, None)?;
        let desc = |mt: &str, size: u64, d: &Digest| -> Result<oci_spec::image::Descriptor> {
            let digest: oci_spec::image::Digest = d
                .to_string()
                .parse()
                .map_err(|e| invalid(d.to_string(), e))?;
            DescriptorBuilder::default()
                .media_type(MediaType::from(mt))
                .size(size)
                .digest(digest)
                .build()
                .map_err(|e| invalid("descriptor", e))
        };
        let mut layer_descs = Vec::new();
        for l in layers {
            if !self.content.exists(&l.digest) {
                return Err(content::Error::NotFound(l.digest.clone()).into());
            }
            layer_descs.push(desc(&l.media_type, l.size, &l.digest)?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(desc(
                oci::OCI_CONFIG,
                config_bytes.len() as u64,
                &config_digest,
            )?)
            .layers(layer_descs)
            .build()
            .map_err(|e| invalid("manifest", e))?;
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| invalid("manifest", e))?;
        let digest = self.content.write(&manifest_bytes, None)?;
        for n in names {
            self.set_name(n, &digest)?;
        }
        Ok(digest)
    }

    /// Stores an uncompressed layer tar from `reader` as a blob (its digest is its diffID).
    pub fn add_layer(&self, reader: &mut dyn std::io::Read) -> Result<Layer> {
        let digest = self.content.copy_from(reader, None)?;
        Ok(Layer {
            size: self.content.size(&digest)?,
            diff_id: digest.clone(),
            digest,
            media_type: oci::OCI_LAYER.into(),
        })
    }

    /// Decompresses `reader` (gzip, zstd or plain) into a new blob, under the caps: the
    /// layer size, and the expansion ratio past its floor (as an unpack checks them).
    fn ingest_decompressed(
        &self,
        reader: impl std::io::Read,
        what: &str,
    ) -> Result<(Digest, bool)> {
        use std::io::Read;
        let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counted = crate::apply::Counting::new(reader, read.clone());
        let mut r = crate::apply::decompress(counted).map_err(io_err(what))?;
        let caps = self.snapshots.caps();
        let mut w = self.content.ingest(content::Algorithm::Sha256)?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(what)(e)),
            };
            w.write_all(&buf[..n]).map_err(io_err(what))?;
            let out = w.size();
            if out > caps.layer || out > caps.image {
                return Err(invalid(
                    what,
                    format!(
                        "unpacks to more than {} bytes (BERTH_MAX_LAYER_SIZE, BERTH_MAX_IMAGE_SIZE)",
                        caps.layer.min(caps.image)
                    ),
                ));
            }
            let inp = read.get().max(1);
            if out > caps.ratio_floor && out > inp.saturating_mul(caps.ratio) {
                return Err(invalid(
                    what,
                    format!(
                        "expands more than {}:1 ({out} bytes from {inp}; BERTH_MAX_LAYER_RATIO)",
                        caps.ratio
                    ),
                ));
            }
        }
        Ok(w.commit_new(None)?)
    }

    /// `berth import`: stores the tar stream `reader` (plain, gzip or zstd) as an
    /// uncompressed layer and unpacks it with the checks of an unpack (hostile entries,
    /// the caps), so that what would fail at `run` fails here. A stream that is empty or
    /// holds no entry is refused (`what` names it). On failure, nothing it wrote stays.
    /// The caller holds a [`Lease`] until the image is named.
    pub fn import_layer(&self, reader: impl std::io::Read, what: &str) -> Result<Layer> {
        let (digest, created) = self.ingest_decompressed(reader, what)?;
        let layer = Layer {
            size: self.content.size(&digest)?,
            diff_id: digest.clone(),
            digest: digest.clone(),
            media_type: oci::OCI_LAYER.into(),
        };
        let mut made = Vec::new();
        let checked = (|| {
            // A tar archive ends with two zero blocks; a first block of zeros is an
            // archive without entries (tar's own reader takes it for the end).
            let mut head = [0u8; 512];
            let mut f = self.content.open_blob(&digest)?;
            let n = std::io::Read::read(&mut f, &mut head).map_err(io_err(what))?;
            if n == 0 {
                return Err(invalid(what, "is empty: not a tar archive"));
            }
            if head[..n].iter().all(|b| *b == 0) {
                return Err(invalid(what, "is a tar archive with no entries"));
            }
            self.snapshots
                .ensure_tracked(&self.content, std::slice::from_ref(&layer), &mut made)
                .map_err(|e| invalid(what, format!("not a usable root filesystem: {e}")))
        })();
        match checked {
            Ok(_) => Ok(layer),
            Err(e) => {
                // A blob that fails these checks can be part of no image (any image with
                // it would fail them too), so it goes without the gc lock (which our
                // caller's lease would block); a failed single layer made no snapshot.
                if created {
                    let _ = self.content.delete(&digest);
                }
                for c in &made {
                    let _ = self.snapshots.remove(c);
                }
                Err(e)
            }
        }
    }

    /// Prepares a writable rootfs for `layers` in `container_dir` (see [`Snapshots::prepare`]),
    /// recording the chains it uses in `container_dir/chains.json` so that gc keeps them
    /// while the directory exists.
    pub fn prepare_rootfs(&self, layers: &[Layer], container_dir: &Path) -> Result<Rootfs> {
        self.prepare_rootfs_at(layers, container_dir, &container_dir.join("rootfs"))
    }

    /// As [`prepare_rootfs`](Self::prepare_rootfs) with the overlay mounted on `mountpoint`
    /// (see [`Snapshots::prepare_at`]).
    pub fn prepare_rootfs_at(
        &self,
        layers: &[Layer],
        container_dir: &Path,
        mountpoint: &Path,
    ) -> Result<Rootfs> {
        let _lease = self.lease()?;
        fs::create_dir_all(container_dir).map_err(io_err(container_dir))?;
        let chains = chain_ids(&layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
        let p = container_dir.join("chains.json");
        fs::write(
            &p,
            serde_json::to_vec(&chains).map_err(|e| invalid("chains", e))?,
        )
        .map_err(io_err(&p))?;
        self.snapshots
            .prepare_at(&self.content, layers, container_dir, mountpoint)
    }

    /// Writes the flattened root filesystem of `layers` into `target` (an existing, empty
    /// directory): each layer's snapshot (unpacked first if missing) merged in order, as
    /// overlayfs would show the stack, by the copying snapshotter (`copy.rs`). Used for VM
    /// disks (`berth vm image`); holds a lease so gc keeps the snapshots meanwhile.
    pub fn flatten_rootfs(&self, layers: &[Layer], target: &Path) -> Result<()> {
        let _lease = self.lease()?;
        for lower in self.snapshots.ensure(&self.content, layers)? {
            crate::copy::merge_layer(&lower, target)?;
        }
        Ok(())
    }

    /// Removes blobs no named or pinned image references and snapshots no image, pin or
    /// container directory uses. Waits for leases to end.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock("gc.lock", FlockArg::LockExclusive)?;
        let (blobs, chains) = self.reachable()?;
        let content = self.content.gc(&blobs)?;
        let snapshots = self.snapshots.gc(&chains)?;
        Ok(GcReport {
            blobs: content.removed,
            bytes: content.bytes,
            snapshots,
            partials: content.partials,
        })
    }

    /// Unpacks every layer of `img` (missing snapshots only) with the checks of an unpack
    /// (hostile entries, the caps, diffIDs), so that an image is named only once it is known
    /// to unpack; the chains it made go to `made`. Errors name the image as `what`.
    pub fn unpack_image(&self, what: &str, img: &Image, made: &mut Vec<Digest>) -> Result<()> {
        let wrap = |source: Error| Error::Image {
            image: what.to_string(),
            source: Box::new(source),
        };
        let layers = img.layers().map_err(wrap)?;
        let _lease = self.lease()?;
        self.snapshots
            .ensure_tracked(&self.content, &layers, made)
            .map(|_| ())
            .map_err(wrap)
    }

    /// Deletes those of `candidates` (blobs an aborted or partial ingest wrote) and of
    /// `chains` (snapshots it made) that no named image or container reaches. Takes the gc
    /// lock exclusively, so no load or pull holding a lease can be about to name an image
    /// that uses one of them.
    pub fn remove_unreferenced(&self, candidates: &[Digest], chains: &[Digest]) -> Result<usize> {
        if candidates.is_empty() && chains.is_empty() {
            return Ok(0);
        }
        let _lock = self.lock("gc.lock", FlockArg::LockExclusive)?;
        let (blobs, used_chains) = self.reachable()?;
        let mut removed = 0;
        for d in candidates.iter().filter(|d| !blobs.contains(*d)) {
            if self.content.exists(d) {
                self.content.delete(d)?;
                removed += 1;
            }
        }
        for c in chains.iter().filter(|c| !used_chains.contains(*c)) {
            self.snapshots.remove(c)?;
        }
        Ok(removed)
    }

    /// The blobs and snapshot ChainIDs that named images and containers reach.
    fn reachable(&self) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for (_, r) in self.names()? {
            blobs.insert(r.manifest.clone());
            // Indexes: keep every manifest they list that is present, and its blobs.
            let bytes = self.content.read(&r.manifest, MAX_MANIFEST)?;
            if let Document::Index(idx) = oci::parse_document(&bytes, "index")? {
                for d in idx.manifests() {
                    blobs.insert(oci::descriptor_digest(d)?);
                }
            }
            let img = self.image(&r.manifest)?;
            blobs.insert(img.manifest_digest.clone());
            blobs.insert(img.config_digest.clone());
            for l in img.layers()? {
                blobs.insert(l.digest);
            }
            chains.extend(img.chain_ids()?);
        }
        self.pinned_reach(&mut blobs, &mut chains)?;
        let cdir = self.root.join("containers");
        for e in fs::read_dir(&cdir).map_err(io_err(&cdir))?.flatten() {
            if let Ok(b) = fs::read(e.path().join("chains.json")) {
                if let Ok(list) = serde_json::from_slice::<Vec<Digest>>(&b) {
                    chains.extend(list);
                }
            }
        }
        Ok((blobs, chains))
    }
}

/// What [`ImageStore::gc`] removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub bytes: u64,
    pub snapshots: Vec<Digest>,
    /// Partial downloads of dead pulls removed.
    pub partials: usize,
}

mod pins;

#[cfg(test)]
mod tests;
