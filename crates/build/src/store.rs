//! The [`Backend`] over berth's image store (`berth-image` on `berth-content`).
//!
//! A built layer's tar becomes a blob (committed with its expected digest), and the step's
//! overlay upper directory — already in the snapshot form, whiteouts as 0:0 character
//! devices — becomes the layer's snapshot directly (`<snapshots>/<chainid>/fs`, moved in by
//! rename under a `tmp-` name first, as `Snapshots` does), so a built layer is never
//! unpacked again. The config bytes are stored as the builder wrote them (oci-spec's type
//! would drop Docker's `Healthcheck`); a fully cached rebuild writes nothing. A lease on
//! the store is held for the whole build, so a garbage collection cannot take blobs that
//! the image will reference; the name is set last, after every blob is in.

use crate::backend::{Backend, BackendError, BaseImage, LayerRef};
use content::Digest;
use image::{oci, ImageStore, Layer, Lease};
use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static TMP: AtomicUsize = AtomicUsize::new(0);

/// An image store used by one build.
#[derive(Debug)]
pub struct StoreBackend {
    store: ImageStore,
    _lease: Lease,
}

impl StoreBackend {
    pub fn new(store: ImageStore) -> Result<StoreBackend, image::Error> {
        let lease = store.lease()?;
        Ok(StoreBackend {
            store,
            _lease: lease,
        })
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }
}

fn digest(s: &str) -> Result<Digest, BackendError> {
    s.parse::<Digest>().map_err(|e| Box::new(e) as BackendError)
}

fn layer(l: &LayerRef) -> Result<Layer, BackendError> {
    Ok(Layer {
        digest: digest(&l.digest)?,
        size: l.size,
        media_type: l.media_type.clone(),
        diff_id: digest(&l.diff_id)?,
    })
}

fn layer_ref(l: &Layer) -> LayerRef {
    LayerRef {
        digest: l.digest.to_string(),
        media_type: l.media_type.clone(),
        size: l.size,
        diff_id: l.diff_id.to_string(),
    }
}

impl Backend for StoreBackend {
    fn image(&self, reference: &str) -> Result<Option<BaseImage>, BackendError> {
        let d = match self.store.lookup(reference) {
            Ok(d) => d,
            Err(image::Error::NotFound(_) | image::Error::InvalidName(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let img = self.store.image(&d)?;
        Ok(Some(BaseImage {
            id: img.config_digest.to_string(),
            layers: img.layers()?.iter().map(layer_ref).collect(),
            config: img.config_bytes,
        }))
    }

    fn layer_dirs(&self, layers: &[LayerRef]) -> Result<Vec<PathBuf>, BackendError> {
        let layers: Vec<Layer> = layers.iter().map(layer).collect::<Result<_, _>>()?;
        Ok(self
            .store
            .snapshots()
            .ensure(self.store.content(), &layers)?)
    }

    fn has_layer(&self, layers: &[LayerRef]) -> bool {
        let Ok(ids) = layers
            .iter()
            .map(|l| digest(&l.diff_id))
            .collect::<Result<Vec<_>, _>>()
        else {
            return false;
        };
        let chains = oci::chain_ids(&ids);
        match (layers.last().map(layer), chains.last()) {
            (Some(Ok(top)), Some(chain)) => {
                self.store.content().exists(&top.digest) && self.store.snapshots().exists(chain)
            }
            _ => false,
        }
    }

    fn put_layer(
        &self,
        parent: &[String],
        l: &LayerRef,
        tar: &Path,
        upper: &Path,
    ) -> Result<(), BackendError> {
        let expected = digest(&l.digest)?;
        let mut f = File::open(tar)?;
        self.store.content().copy_from(&mut f, Some(&expected))?;
        let mut ids: Vec<Digest> = parent.iter().map(|d| digest(d)).collect::<Result<_, _>>()?;
        ids.push(digest(&l.diff_id)?);
        let chain = oci::chain_ids(&ids).pop().ok_or("empty layer chain")?;
        let snaps = self.store.snapshots();
        if snaps.exists(&chain) {
            return Ok(());
        }
        let tmp = snaps.dir().join(format!(
            "tmp-{}-b{}",
            std::process::id(),
            TMP.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&tmp)?;
        fs::rename(upper, tmp.join("fs"))?;
        // The layer's files reach the disk before its snapshot gets its final name (one
        // filesystem flushed, not the whole machine's as sync(2) would).
        let d = File::open(&tmp)?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d))?;
        let dst = snaps.dir().join(chain.hex());
        if let Err(e) = fs::rename(&tmp, &dst) {
            let _ = fs::remove_dir_all(&tmp);
            // Another build made the same chain meanwhile: theirs is as good.
            if !snaps.exists(&chain) {
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn commit_image(
        &self,
        config: &[u8],
        layers: &[LayerRef],
        tags: &[String],
    ) -> Result<String, BackendError> {
        let content = self.store.content();
        // A rebuild with nothing changed writes nothing: blobs already present are not
        // written again (and not fsync'd again), a name already right is not rewritten.
        let config_digest = content.write(config, Some(&Digest::sha256(config)))?;
        let desc =
            |mt: &str, size: u64, d: &str| -> Result<oci_spec::image::Descriptor, BackendError> {
                let digest: oci_spec::image::Digest = d.parse()?;
                Ok(DescriptorBuilder::default()
                    .media_type(MediaType::from(mt))
                    .size(size)
                    .digest(digest)
                    .build()?)
            };
        let mut descs = Vec::new();
        for l in layers {
            let d = layer(l)?;
            if !content.exists(&d.digest) {
                return Err(format!("layer blob {} is missing", d.digest).into());
            }
            descs.push(desc(&l.media_type, content.size(&d.digest)?, &l.digest)?);
        }
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(desc(
                oci::OCI_CONFIG,
                config.len() as u64,
                &config_digest.to_string(),
            )?)
            .layers(descs)
            .build()?;
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        let manifest_digest =
            content.write(&manifest_bytes, Some(&Digest::sha256(&manifest_bytes)))?;
        let names = self.store.names()?;
        for t in tags {
            let current = image::normalize_name(t)
                .ok()
                .and_then(|n| names.iter().find(|(k, _)| *k == n))
                .map(|(_, r)| &r.manifest);
            if current != Some(&manifest_digest) {
                self.store.set_name(t, &manifest_digest)?;
            }
        }
        Ok(config_digest.to_string())
    }
}
