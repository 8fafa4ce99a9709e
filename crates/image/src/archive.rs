//! `load` and `save`: image archives in and out of the store.
//!
//! Formats (detected on load):
//! - OCI image layout (image-spec `image-layout.md`): `oci-layout`, `index.json`,
//!   `blobs/<alg>/<hex>`; as a directory or a tar of one (`oci-archive`). Names come from
//!   the index's `io.containerd.image.name` or `org.opencontainers.image.ref.name`
//!   annotations (`annotations.md`).
//! - docker-archive (`docker save`, `podman save`): `manifest.json` listing `Config`,
//!   `RepoTags` and `Layers` (uncompressed tars, whose digests are their diffIDs).
//!
//! Every blob is ingested through the content store (verified against its name where the
//! archive names it by digest); names are recorded only once all blobs of an image are
//! committed, so an interrupted load never lists a half image.

use crate::apply::decompress;
use crate::error::{invalid, io_err, Error, Result};
use crate::oci::{self, Document, MAX_MANIFEST};
use crate::store::{ImageStore, Lease};
use content::Digest;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The archive formats `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OciArchive,
    DockerArchive,
}

const NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Loads every image of the archive or layout at `path`; returns `(name, manifest digest)`.
pub fn load(store: &ImageStore, path: &Path) -> Result<Vec<(String, Digest)>> {
    load_leased(store, path, store.lease()?)
}

/// [`load`] under a lease the caller took before writing blobs (a pull into the store);
/// it is released before the blobs no image uses are removed (under the gc lock).
pub fn load_leased(store: &ImageStore, path: &Path, lease: Lease) -> Result<Vec<(String, Digest)>> {
    let mut files = Archive::default();
    if path.is_dir() {
        for name in ["oci-layout", "index.json", "manifest.json"] {
            if let Ok(b) = fs::read(path.join(name)) {
                files.small.insert(name.to_string(), b);
            }
        }
        files.dir = Some(path.to_path_buf());
    } else {
        let f = File::open(path).map_err(io_err(path))?;
        let read = decompress(f)
            .map_err(io_err(path))
            .and_then(|r| read_tar(store, r, &mut files));
        if let Err(e) = read {
            return Err(drop_unreferenced(store, lease, &files, e));
        }
    }
    let mut made = Vec::new();
    let loaded = finish_load(store, &files, &path.display().to_string(), &mut made);
    settle(store, lease, &files, &made, loaded)
}

/// A failed load: the blobs it wrote that no image uses go again; returns `e`.
fn drop_unreferenced(store: &ImageStore, lease: Lease, files: &Archive, e: Error) -> Error {
    drop(lease);
    let _ = store.remove_unreferenced(&files.new_blobs.borrow(), &[]);
    e
}

/// After `finish_load`: an archive's entries are ingested as they stream by, before its
/// index says which are used, so the new blobs no loaded image uses (or all of them, when
/// the load failed) are removed rather than left for `image prune`; so are the snapshots
/// the load made for an image it did not name.
fn settle(
    store: &ImageStore,
    lease: Lease,
    files: &Archive,
    made: &[Digest],
    loaded: Result<Vec<(String, Digest)>>,
) -> Result<Vec<(String, Digest)>> {
    drop(lease);
    let _ = store.remove_unreferenced(&files.new_blobs.borrow(), made);
    loaded
}

/// Loads every image of the archive streamed by `reader` (e.g. stdin).
pub fn load_stream(store: &ImageStore, reader: impl Read) -> Result<Vec<(String, Digest)>> {
    let lease = store.lease()?;
    let mut files = Archive::default();
    let read = decompress(reader)
        .map_err(io_err("-"))
        .and_then(|r| read_tar(store, r, &mut files));
    if let Err(e) = read {
        return Err(drop_unreferenced(store, lease, &files, e));
    }
    let mut made = Vec::new();
    let loaded = finish_load(store, &files, "standard input", &mut made);
    settle(store, lease, &files, &made, loaded)
}

/// Every image of the archive is unpacked (as `berth run` would: hostile entries, the
/// caps, diffIDs) before any is named: an image that would fail at `run` is refused here.
fn finish_load(
    store: &ImageStore,
    files: &Archive,
    what: &str,
    made: &mut Vec<Digest>,
) -> Result<Vec<(String, Digest)>> {
    if let Some(index) = files.small.get("index.json").cloned() {
        load_oci(store, files, &index, made)
    } else if let Some(manifest) = files.small.get("manifest.json").cloned() {
        load_docker(store, files, &manifest, made)
    } else {
        Err(invalid(
            what,
            "neither an OCI layout (index.json) nor a docker archive (manifest.json)",
        ))
    }
}

#[derive(Default)]
struct Archive {
    /// Small metadata files by path.
    small: HashMap<String, Vec<u8>>,
    /// Every other regular file, ingested: path → digest.
    blobs: HashMap<String, Digest>,
    /// Symlinks: path → target path (resolved in the archive).
    links: HashMap<String, String>,
    /// An OCI layout directory to take blobs from.
    dir: Option<PathBuf>,
    /// Blobs this load wrote to the store (they were not there before).
    new_blobs: std::cell::RefCell<Vec<Digest>>,
}

impl Archive {
    fn blob_of(&self, path: &str) -> Option<&Digest> {
        let mut p = path.trim_start_matches("./").to_string();
        for _ in 0..8 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        self.blobs.get(&p)
    }
}

/// Entries an image archive may hold (an image has a few files per layer).
const MAX_ARCHIVE_ENTRIES: usize = 100_000;

fn read_tar(store: &ImageStore, r: Box<dyn Read + '_>, files: &mut Archive) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    for (n, entry) in ar.entries().map_err(|e| invalid("archive", e))?.enumerate() {
        if n >= MAX_ARCHIVE_ENTRIES {
            return Err(invalid(
                "archive",
                format!("more than {MAX_ARCHIVE_ENTRIES} entries"),
            ));
        }
        let mut entry = entry.map_err(|e| invalid("archive", e))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw)
            .trim_start_matches("./")
            .to_string();
        match entry.header().entry_type() {
            tar::EntryType::Symlink => {
                if let Some(t) = entry.link_name_bytes() {
                    let t = String::from_utf8_lossy(&t).into_owned();
                    let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                    let joined = normalize_rel(&base.join(t));
                    files.links.insert(name, joined);
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // docker-archive's legacy per-layer metadata is never referenced.
                if name.ends_with("/VERSION") || name.ends_with("/json") {
                    continue;
                }
                if matches!(
                    name.as_str(),
                    "oci-layout" | "index.json" | "manifest.json" | "repositories"
                ) {
                    let mut b = Vec::new();
                    entry
                        .by_ref()
                        .take(MAX_MANIFEST + 1)
                        .read_to_end(&mut b)
                        .map_err(|e| invalid(&name, e))?;
                    if b.len() as u64 > MAX_MANIFEST {
                        return Err(invalid(name, "too large"));
                    }
                    files.small.insert(name, b);
                    continue;
                }
                // blobs/<alg>/<hex> is verified against its name; anything else is hashed.
                let expected = name
                    .strip_prefix("blobs/")
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
                let digest = match &expected {
                    Some(d) if store.content().exists(d) => d.clone(),
                    _ => {
                        let (d, created) = store
                            .content()
                            .copy_new(&mut entry, expected.as_ref())
                            .map_err(|e| match e {
                                content::Error::Mismatch { .. } => invalid(&name, e),
                                e => e.into(),
                            })?;
                        if created {
                            files.new_blobs.borrow_mut().push(d.clone());
                        }
                        d
                    }
                };
                files.blobs.insert(name, digest);
            }
            _ => {}
        }
    }
    Ok(())
}

fn normalize_rel(p: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    out.join("/")
}

/// Makes sure the blob `d` is in the store (copying it from a layout directory if needed).
fn need(store: &ImageStore, files: &Archive, d: &Digest) -> Result<()> {
    if store.content().exists(d) {
        return Ok(());
    }
    if let Some(dir) = &files.dir {
        let p = dir.join("blobs").join(d.algorithm().name()).join(d.hex());
        let mut f = File::open(&p).map_err(io_err(&p))?;
        let (_, created) = store
            .content()
            .copy_new(&mut f, Some(d))
            .map_err(|e| invalid(p.display().to_string(), e))?;
        if created {
            files.new_blobs.borrow_mut().push(d.clone());
        }
        return Ok(());
    }
    Err(invalid(format!("blob {d}"), "missing from the archive"))
}

/// Fetches every blob of the manifest or index `d`.
fn need_tree(store: &ImageStore, files: &Archive, d: &Digest, depth: usize) -> Result<()> {
    need(store, files, d)?;
    let bytes = store.content().read(d, MAX_MANIFEST)?;
    match oci::parse_document(&bytes, &format!("manifest {d}"))? {
        Document::Index(idx) if depth < 4 => {
            let chosen = oci::descriptor_digest(oci::choose_platform(&idx)?)?;
            need_tree(store, files, &chosen, depth + 1)
        }
        Document::Index(_) => Err(invalid(format!("index {d}"), "nested too deep")),
        Document::Manifest(m) => {
            need(store, files, &oci::descriptor_digest(m.config())?)?;
            for l in m.layers() {
                need(store, files, &oci::descriptor_digest(l)?)?;
            }
            Ok(())
        }
    }
}

fn load_oci(
    store: &ImageStore,
    files: &Archive,
    index: &[u8],
    made: &mut Vec<Digest>,
) -> Result<Vec<(String, Digest)>> {
    let v: Value = serde_json::from_slice(index).map_err(|e| invalid("index.json", e))?;
    let manifests = v["manifests"]
        .as_array()
        .ok_or_else(|| invalid("index.json", "no manifests"))?;
    let mut out = Vec::new();
    for m in manifests {
        let d: Digest = m["digest"].as_str().unwrap_or("").parse()?;
        need_tree(store, files, &d, 0)?;
        let ann = &m["annotations"];
        let name = ann[CONTAINERD_NAME]
            .as_str()
            .or_else(|| ann[NAME_ANNOTATION].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("untagged/{}", &d.hex()[..12]));
        // Parses and checks layers against diff_ids, then unpacks them.
        let img = store.image(&d).map_err(|e| Error::Image {
            image: name.clone(),
            source: Box::new(e),
        })?;
        store.unpack_image(&name, &img, made)?;
        out.push((name, d));
    }
    let mut named = Vec::new();
    for (name, d) in out {
        named.push((store.set_name(&name, &d)?, d));
    }
    Ok(named)
}

fn load_docker(
    store: &ImageStore,
    files: &Archive,
    manifest: &[u8],
    made: &mut Vec<Digest>,
) -> Result<Vec<(String, Digest)>> {
    let v: Value = serde_json::from_slice(manifest).map_err(|e| invalid("manifest.json", e))?;
    let entries = v
        .as_array()
        .ok_or_else(|| invalid("manifest.json", "not a list"))?;
    let mut staged = Vec::new();
    for e in entries {
        let cfg_path = e["Config"]
            .as_str()
            .ok_or_else(|| invalid("manifest.json", "an entry has no Config"))?;
        let cfg = files
            .blob_of(cfg_path)
            .ok_or_else(|| invalid(cfg_path, "missing from the archive"))?;
        let mut layers = Vec::new();
        for l in e["Layers"].as_array().into_iter().flatten() {
            let lp = l.as_str().unwrap_or("");
            let d = files
                .blob_of(lp)
                .ok_or_else(|| invalid(lp, "missing from the archive"))?;
            let mut head = [0u8; 4];
            let n = store
                .content()
                .open_blob(d)?
                .read(&mut head)
                .map_err(|e| invalid(lp, e))?;
            let mt = match &head[..n] {
                [0x1f, 0x8b, ..] => oci::DOCKER_LAYER_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => oci::OCI_LAYER_ZSTD,
                _ => oci::DOCKER_LAYER,
            };
            layers.push(
                json!({"mediaType": mt, "size": store.content().size(d)?, "digest": d.to_string()}),
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": oci::DOCKER_MANIFEST,
            "config": {"mediaType": oci::DOCKER_CONFIG, "size": store.content().size(cfg)?, "digest": cfg.to_string()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| invalid("manifest", e))?;
        let d = Digest::sha256(&bytes);
        if !store.content().exists(&d) {
            store.content().write(&bytes, Some(&d))?;
            files.new_blobs.borrow_mut().push(d.clone());
        }
        let tags: Vec<String> = e["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let what = tags
            .first()
            .cloned()
            .unwrap_or_else(|| format!("untagged/{}", &d.hex()[..12]));
        let img = store.image(&d).map_err(|e| Error::Image {
            image: what.clone(),
            source: Box::new(e),
        })?;
        store.unpack_image(&what, &img, made)?;
        staged.push((tags, d));
    }
    let mut out = Vec::new();
    for (tags, d) in staged {
        if tags.is_empty() {
            out.push((
                store.set_name(&format!("untagged/{}", &d.hex()[..12]), &d)?,
                d.clone(),
            ));
        }
        for t in tags {
            out.push((store.set_name(&t, &d)?, d.clone()));
        }
    }
    Ok(out)
}

fn append(
    b: &mut tar::Builder<impl Write>,
    path: &str,
    size: u64,
    data: &mut dyn Read,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    b.append_data(&mut h, path, data)
        .map_err(|e| invalid(path, e))
}

fn append_blob(
    store: &ImageStore,
    b: &mut tar::Builder<impl Write>,
    path: &str,
    d: &Digest,
) -> Result<()> {
    let size = store.content().size(d)?;
    let mut f = store.content().open_blob(d)?;
    append(b, path, size, &mut f)
}

/// Saves the images `refs` to `out` (written beside it, then renamed).
pub fn save(store: &ImageStore, refs: &[String], format: Format, out: &Path) -> Result<()> {
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let f = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut b = tar::Builder::new(BufWriter::new(f));
        match format {
            Format::OciArchive => save_oci(store, refs, &mut b)?,
            Format::DockerArchive => save_docker(store, refs, &mut b, out)?,
        }
        let w = b.into_inner().map_err(io_err(&tmp))?;
        let f = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, out).map_err(io_err(out))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The display name of a reference: the stored name it resolves to, when it is a name.
fn stored_name(store: &ImageStore, r: &str, d: &Digest) -> Option<String> {
    let n = crate::store::normalize_name(r).ok()?;
    let names = store.names().ok()?;
    [
        n.clone(),
        format!("localhost/{n}"),
        format!("docker.io/library/{n}"),
    ]
    .into_iter()
    .find(|c| {
        names
            .iter()
            .any(|(name, rec)| name == c && &rec.manifest == d)
    })
}

fn save_oci(store: &ImageStore, refs: &[String], b: &mut tar::Builder<impl Write>) -> Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(b, "oci-layout", layout.len() as u64, &mut &layout[..])?;
    let mut written: BTreeMap<Digest, ()> = BTreeMap::new();
    let mut index = Vec::new();
    for r in refs {
        let d = store.lookup(r)?;
        let img = store.image(&d)?;
        // Docker-typed manifests are rewritten with OCI media types (same blobs).
        let layers: Vec<Value> = img
            .layers()?
            .iter()
            .map(|l| {
                let mt = match l.media_type.as_str() {
                    oci::DOCKER_LAYER_GZIP => oci::OCI_LAYER_GZIP,
                    oci::DOCKER_LAYER => oci::OCI_LAYER,
                    other => other,
                };
                json!({"mediaType": mt, "size": l.size, "digest": l.digest.to_string()})
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST,
            "config": {"mediaType": oci::OCI_CONFIG, "size": img.config_bytes.len(), "digest": img.config_digest.to_string()},
            "layers": layers,
        });
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| invalid("manifest", e))?;
        let md = Digest::sha256(&mbytes);
        if written.insert(md.clone(), ()).is_none() {
            append(
                b,
                &format!("blobs/sha256/{}", md.hex()),
                mbytes.len() as u64,
                &mut &mbytes[..],
            )?;
        }
        for blob in std::iter::once(img.config_digest.clone())
            .chain(img.layers()?.into_iter().map(|l| l.digest))
        {
            if written.insert(blob.clone(), ()).is_none() {
                append_blob(
                    store,
                    b,
                    &format!("blobs/{}/{}", blob.algorithm().name(), blob.hex()),
                    &blob,
                )?;
            }
        }
        let mut desc =
            json!({"mediaType": oci::OCI_MANIFEST, "digest": md.to_string(), "size": mbytes.len()});
        if let Some(name) = stored_name(store, r, &d) {
            desc["annotations"] = json!({NAME_ANNOTATION: name, CONTAINERD_NAME: name});
        }
        index.push(desc);
    }
    let idx = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": index}),
    )
    .map_err(|e| invalid("index.json", e))?;
    append(b, "index.json", idx.len() as u64, &mut &idx[..])
}

fn save_docker(
    store: &ImageStore,
    refs: &[String],
    b: &mut tar::Builder<impl Write>,
    out: &Path,
) -> Result<()> {
    let mut manifest = Vec::new();
    let mut written: BTreeMap<Digest, ()> = BTreeMap::new();
    for r in refs {
        let d = store.lookup(r)?;
        let img = store.image(&d)?;
        let cfg_path = format!("{}.json", img.config_digest.hex());
        if written.insert(img.config_digest.clone(), ()).is_none() {
            append_blob(store, b, &cfg_path, &img.config_digest)?;
        }
        let mut layer_paths = Vec::new();
        for l in img.layers()? {
            let path = format!("{}/layer.tar", l.diff_id.hex());
            if written.insert(l.diff_id.clone(), ()).is_none() {
                if l.digest == l.diff_id {
                    append_blob(store, b, &path, &l.digest)?;
                } else {
                    // docker-archive layers are uncompressed: decompress to a temp file first.
                    let tmp_path =
                        out.with_file_name(format!(".berth-layer-{}", std::process::id()));
                    let mut tmp = fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&tmp_path)
                        .map_err(io_err(&tmp_path))?;
                    let _ = fs::remove_file(&tmp_path);
                    let mut r = decompress(store.content().open_blob(&l.digest)?)
                        .map_err(io_err(&tmp_path))?;
                    let size = std::io::copy(&mut r, &mut tmp).map_err(io_err(&tmp_path))?;
                    tmp.rewind().map_err(io_err(&tmp_path))?;
                    append(b, &path, size, &mut tmp)?;
                }
            }
            layer_paths.push(path);
        }
        let tags: Vec<String> = stored_name(store, r, &d).into_iter().collect();
        manifest.push(json!({"Config": cfg_path, "RepoTags": tags, "Layers": layer_paths}));
    }
    let m = serde_json::to_vec(&manifest).map_err(|e| invalid("manifest.json", e))?;
    append(b, "manifest.json", m.len() as u64, &mut &m[..])
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        invalid("json", e)
    }
}
