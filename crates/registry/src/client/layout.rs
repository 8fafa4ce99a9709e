//! OCI image layout directories (image-spec `image-layout.md`): `oci-layout`,
//! `index.json` and `blobs/<alg>/<hex>`. Images are named by the
//! `org.opencontainers.image.ref.name` annotation of their `index.json` entry.

use crate::media;
use crate::reference::parse_digest;
use crate::reference::{Algorithm, Digest};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why a layout could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{dir} has no image named {name:?}")]
    NoSuchRef { dir: PathBuf, name: String },
    #[error("{dir} holds {count} images; name one with DIR:TAG")]
    Ambiguous { dir: PathBuf, count: usize },
    #[error("descriptor in {path} is invalid: {detail}")]
    Descriptor { path: PathBuf, detail: String },
}

/// A descriptor: media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl Descriptor {
    pub fn from_json(v: &Value, path: &Path) -> Result<Descriptor, LayoutError> {
        let bad = |detail: String| LayoutError::Descriptor {
            path: path.to_path_buf(),
            detail,
        };
        let digest = v
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no digest".into()))?;
        Ok(Descriptor {
            media_type: v
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            digest: parse_digest(digest).map_err(|e| bad(e.to_string()))?,
            size: v
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no size".into()))?,
        })
    }
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError {
        let path = path.to_path_buf();
        move |source| LayoutError::Io { path, source }
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, LayoutError> {
        let p = self.blob_path(d);
        std::fs::read(&p).map_err(self.io(&p))
    }

    /// Whether the layout holds blob `d` with the right size (content is verified when
    /// written).
    pub fn has_blob(&self, d: &Digest, size: u64) -> bool {
        std::fs::metadata(self.blob_path(d)).is_ok_and(|m| m.len() == size)
    }

    fn index(&self) -> Result<Value, LayoutError> {
        let p = self.dir.join("index.json");
        let b = std::fs::read(&p).map_err(self.io(&p))?;
        serde_json::from_slice(&b).map_err(|source| LayoutError::Json { path: p, source })
    }

    /// The top descriptor named `name` (or the only one when `name` is `None`).
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor, LayoutError> {
        let idx = self.index()?;
        let p = self.dir.join("index.json");
        let ms = idx
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let found: Vec<&Value> = match name {
            Some(n) => ms
                .iter()
                .filter(|m| {
                    m.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                        .and_then(Value::as_str)
                        == Some(n)
                })
                .collect(),
            None => ms.iter().collect(),
        };
        match found.as_slice() {
            [one] => Descriptor::from_json(one, &p),
            [] => Err(LayoutError::NoSuchRef {
                dir: self.dir.clone(),
                name: name.unwrap_or_default().to_string(),
            }),
            many => Err(LayoutError::Ambiguous {
                dir: self.dir.clone(),
                count: many.len(),
            }),
        }
    }

    /// Writes a verified blob: a temp file of its own (concurrent pulls do not race),
    /// fsynced, renamed, the directory fsynced.
    pub fn write_blob(&self, d: &Digest, data: &[u8]) -> Result<(), LayoutError> {
        let p = self.blob_path(d);
        crate::server::storage::write_atomic(&p, data).map_err(self.io(&p))
    }

    /// Creates `oci-layout` and `index.json` if missing, and names `desc` as `name`
    /// (replacing an earlier image of that name).
    pub fn add_ref(&self, desc: &Descriptor, name: &str) -> Result<(), LayoutError> {
        std::fs::create_dir_all(self.dir.join("blobs")).map_err(self.io(&self.dir))?;
        let ol = self.dir.join("oci-layout");
        if !ol.exists() {
            std::fs::write(&ol, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(self.io(&ol))?;
        }
        let mut idx = self.index().unwrap_or_else(
            |_| json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []}),
        );
        let key = format!("/annotations/{}", REF_NAME.replace('/', "~1"));
        let mut ms: Vec<Value> = idx
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.pointer(&key).and_then(Value::as_str) != Some(name))
            .collect();
        ms.push(json!({
            "mediaType": desc.media_type,
            "digest": desc.digest.to_string(),
            "size": desc.size,
            "annotations": {REF_NAME: name},
        }));
        idx["manifests"] = Value::Array(ms);
        let p = self.dir.join("index.json");
        std::fs::write(&p, serde_json::to_vec(&idx).unwrap_or_default()).map_err(self.io(&p))
    }
}

/// What a manifest references: child manifests (of an index) and blobs (config, layers).
pub fn children(
    mt: &str,
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<Descriptor>, Vec<Descriptor>), LayoutError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|source| LayoutError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    if media::is_index(mt) || v.get("manifests").is_some() {
        for m in v
            .get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            manifests.push(Descriptor::from_json(m, path)?);
        }
    } else {
        if let Some(c) = v.get("config") {
            blobs.push(Descriptor::from_json(c, path)?);
        }
        for l in v
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Foreign layers (with urls) are not pushed or pulled.
            if l.get("urls")
                .and_then(Value::as_array)
                .is_some_and(|u| !u.is_empty())
            {
                continue;
            }
            blobs.push(Descriptor::from_json(l, path)?);
        }
    }
    Ok((manifests, blobs))
}

/// The media type of a manifest: its `mediaType` field, else guessed from its shape.
pub fn manifest_media_type(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match v.get("mediaType").and_then(Value::as_str) {
        Some(mt) => mt.to_string(),
        None if v.get("manifests").is_some() => media::OCI_INDEX.to_string(),
        None => media::OCI_MANIFEST.to_string(),
    }
}

/// The digest of `bytes` with `alg`.
pub fn digest_of(alg: Algorithm, bytes: &[u8]) -> Digest {
    Digest::of(alg, bytes)
}
