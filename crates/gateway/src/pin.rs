//! Image pins (image::ImageStore::pin) held by the gateway: a deployed function pins its
//! image as `fn-NAME` (crate::deploy, dropped by crate::remove), and each pool pins the
//! image its instances and spare run on as `gw-NAME-N` while it lives, so a redeploy's old
//! instances keep their snapshots until they stop. A gateway starting drops the `gw-` pins
//! a killed one left.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The owner of a deployed function's pin.
pub fn function_owner(name: &str) -> String {
    format!("fn-{name}")
}

/// A pool's pin, dropped with the pool.
#[derive(Debug)]
pub struct PoolPin {
    root: PathBuf,
    owner: String,
}

impl PoolPin {
    /// Pins `manifest` for a pool of `name`; `None` (logged) when that fails.
    pub fn new(root: &Path, name: &str, manifest: &content::Digest) -> Option<PoolPin> {
        static N: AtomicU64 = AtomicU64::new(0);
        let owner = format!("gw-{name}-{}", N.fetch_add(1, Ordering::Relaxed));
        let r = image::ImageStore::open(root).and_then(|s| s.pin(&owner, manifest));
        match r {
            Ok(()) => Some(PoolPin {
                root: root.to_path_buf(),
                owner,
            }),
            Err(e) => {
                tracing::warn!(function = %name, error = %e, "pin the function's image");
                None
            }
        }
    }
}

impl Drop for PoolPin {
    fn drop(&mut self) {
        if let Err(e) = image::ImageStore::open(&self.root).and_then(|s| s.unpin(&self.owner)) {
            tracing::warn!(pin = %self.owner, error = %e, "unpin the function's image");
        }
    }
}

/// Drops the pools' pins a killed gateway left.
pub fn drop_stale(root: &Path) {
    match image::ImageStore::open(root).and_then(|s| s.unpin_prefix("gw-")) {
        Ok(0) => {}
        Ok(n) => tracing::info!(pins = n, "dropped image pins of an earlier gateway"),
        Err(e) => tracing::warn!(error = %e, "drop stale image pins"),
    }
}
