//! What the builder needs from an image store, as a trait: the builder knows layers and
//! configs, the store knows blobs, snapshots and names. `berth` implements it over the
//! `content` and `image` crates; tests can implement it over a directory.

use std::path::{Path, PathBuf};

/// Any error of a backend (its own type, boxed).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// The media type of the layers berth builds (uncompressed tar).
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A layer: its blob (digest, media type, size) and its diffID (the digest of the
/// uncompressed tar; equal to `digest` for the layers berth builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
}

impl LayerRef {
    /// A layer berth built: an uncompressed tar.
    pub fn built(digest: String, size: u64) -> LayerRef {
        LayerRef {
            diff_id: digest.clone(),
            digest,
            media_type: LAYER_TAR.to_string(),
            size,
        }
    }
}

/// A local image: its config digest (the image id), its config (the JSON bytes, as
/// stored) and its layers (bottom first).
#[derive(Debug, Clone)]
pub struct BaseImage {
    pub id: String,
    pub config: Vec<u8>,
    pub layers: Vec<LayerRef>,
}

pub trait Backend {
    /// The local image `reference` names (`name[:tag]`, `name@digest`, an id), if any.
    fn image(&self, reference: &str) -> Result<Option<BaseImage>, BackendError>;

    /// The unpacked directories (overlay lower dirs, bottom first) of `layers` (an image's
    /// whole chain, bottom first); unpacks what is missing.
    fn layer_dirs(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>, BackendError>;

    /// Whether the top layer of chain `layers` (bottom first) is stored, blob and unpacked
    /// directory (a cache hit must not point at a collected layer).
    fn has_layer(&self, layers: &[LayerRef]) -> bool;

    /// Stores a built layer on top of chain `parent` (diffIDs, bottom first): the tar at
    /// `tar` (its digest is `layer.diff_id`) and its unpacked tree `upper` (in overlay form:
    /// whiteouts as 0:0 character devices), which the backend may move away.
    fn put_layer(
        &self,
        parent: &[String],
        layer: &LayerRef,
        tar: &Path,
        upper: &Path,
    ) -> Result<(), BackendError>;

    /// Stores the image (config bytes and its layers) and, once it is complete, gives it
    /// the names `tags`. Returns the image id (the config digest).
    fn commit_image(
        &self,
        config: &[u8],
        layers: &[LayerRef],
        tags: &[String],
    ) -> Result<String, BackendError>;
}
