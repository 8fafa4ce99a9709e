//! OCI image-spec documents (manifest, index, config) and their Docker v2 schema 2
//! equivalents, as far as berth reads them.
//!
//! - `manifest.md`: `config` and `layers` descriptors; Docker's
//!   `application/vnd.docker.distribution.manifest.v2+json` has the same shape.
//! - `image-index.md`: `manifests` with an optional `platform`; berth picks linux/amd64
//!   (Docker's `manifest.list.v2+json` is the same shape).
//! - `config.md`: `rootfs.diff_ids[i]` is the sha256 of layer i uncompressed; the
//!   ChainID of layers 0..=n is `DiffID(0)` for n = 0 and
//!   `sha256(ChainID(n-1) + " " + DiffID(n))` after that.

use crate::error::{invalid, Result};
use content::Digest;
use oci_spec::image::{Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Os};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Manifests and indexes are small; anything larger is refused.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Configs carry history and labels, still small.
pub const MAX_CONFIG: u64 = 16 << 20;

/// One layer of an image: its blob and its diffID (from the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
}

/// A manifest or an index, as found behind a descriptor.
#[derive(Debug)]
pub enum Document {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Parses a manifest or an index (OCI or Docker), told apart by `mediaType` or, where that
/// is absent, by the presence of `manifests`.
pub fn parse_document(bytes: &[u8], what: &str) -> Result<Document> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| invalid(what, e))?;
    let mt = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
    let is_index =
        mt == OCI_INDEX || mt == DOCKER_LIST || (mt.is_empty() && v.get("manifests").is_some());
    if is_index {
        Ok(Document::Index(Box::new(
            ImageIndex::from_reader(bytes).map_err(|e| invalid(what, e))?,
        )))
    } else if mt.is_empty() || mt == OCI_MANIFEST || mt == DOCKER_MANIFEST {
        let m = ImageManifest::from_reader(bytes).map_err(|e| invalid(what, e))?;
        Ok(Document::Manifest(Box::new(m)))
    } else {
        Err(invalid(what, format!("unsupported media type {mt:?}")))
    }
}

/// The digest of a descriptor, in berth's type.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    Ok(d.digest().to_string().parse()?)
}

/// Picks the linux/amd64 manifest of an index (or its only entry when no platform is given).
pub fn choose_platform(index: &ImageIndex) -> Result<&Descriptor> {
    let ms = index.manifests();
    let matching = ms.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == Arch::Amd64)
    });
    match (matching, ms.len()) {
        (Some(d), _) => Ok(d),
        (None, 1) if ms[0].platform().is_none() => Ok(&ms[0]),
        _ => Err(invalid("image index", "no manifest for linux/amd64")),
    }
}

/// The layers of `manifest` joined with the diffIDs of `config`; refuses a count mismatch.
pub fn layers(manifest: &ImageManifest, config: &ImageConfiguration) -> Result<Vec<Layer>> {
    let descs = manifest.layers();
    let diff_ids = config.rootfs().diff_ids();
    if descs.len() != diff_ids.len() {
        return Err(invalid(
            "image config",
            format!(
                "{} layers in the manifest but {} diff_ids",
                descs.len(),
                diff_ids.len()
            ),
        ));
    }
    descs
        .iter()
        .zip(diff_ids)
        .map(|(d, id)| {
            Ok(Layer {
                digest: descriptor_digest(d)?,
                size: d.size(),
                media_type: d.media_type().to_string(),
                diff_id: id.parse()?,
            })
        })
        .collect()
}

/// ChainIDs of a stack of layers, bottom first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn picks_linux_amd64() {
        let d = Digest::sha256(b"x");
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":2,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        match parse_document(idx.as_bytes(), "index") {
            Ok(Document::Index(i)) => {
                assert_eq!(choose_platform(&i).map(|d| d.size()).ok(), Some(2))
            }
            other => panic!("{other:?}"),
        }
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{d}","size":3}},"layers":[{{"mediaType":"{DOCKER_LAYER}","digest":"{d}","size":4}}]}}"#
        );
        assert!(matches!(
            parse_document(docker.as_bytes(), "m"),
            Ok(Document::Manifest(_))
        ));
        assert!(parse_document(br#"{"mediaType":"text/html"}"#, "m").is_err());
    }
}
