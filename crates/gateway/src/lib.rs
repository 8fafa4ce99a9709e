//! berth's function gateway (issue 14; `../shared/ARCHITECTURE.md`, "Functions").
//!
//! - [`def`]: a function's definition and its flags; [`store`]: definitions in
//!   `<root>/functions.db` (SQLite, one transaction per change).
//! - [`deploy`]: resolves the image and unpacks its snapshots before any request (the
//!   expensive part of a cold start is paid here), then records the function.
//! - [`instance`]: the container backend (berth-runtime on the image's snapshots, a fresh
//!   upper directory per instance, an agent for stdio mode, connections opened in the
//!   instance's network namespace for http mode).
//! - [`pool`]: per function, the instances and their states, limits, queue and idle timer.
//! - [`server`]: the HTTP front in `berth serve --listen`; [`cron`]: `--schedule`.
//!
//! Invariants: instances are never shared between functions and never outlive the gateway
//! (stopped at shutdown; a killed gateway's leftovers are removed at the next start); an
//! instance's writable layer and `/tmp` go with it.
#![forbid(unsafe_code)]

pub mod cron;
pub mod def;
pub mod instance;
pub mod metrics;
pub mod pin;
pub mod pool;
pub mod queue;
pub mod server;
pub mod store;
pub mod trace;

pub use def::{Function, Mode};
pub use server::{AsyncConfig, Gateway};

use std::path::Path;

/// Errors of the gateway's library side. Messages are one line naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("no such function: {0}")]
    NotFound(String),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error("function database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[macro_export]
#[doc(hidden)]
macro_rules! invalid {
    ($($t:tt)*) => { $crate::Error::Invalid(format!($($t)*)) };
}

/// Deploys (or redeploys) `f`: validates it, resolves its image in the store at `root` and
/// unpacks the image's layer snapshots now, checks that the image gives a command for the
/// mode, and records the function with the image's manifest digest. A missing image is an
/// error naming it.
pub fn deploy(root: &Path, mut f: Function) -> Result<Function> {
    f.validate()?;
    let store = image::ImageStore::open(root)?;
    let img = store.resolve(&f.image).map_err(|e| match e {
        image::Error::NotFound(_) => invalid!(
            "function {}: image {:?} is not in the store (build, pull or load it first)",
            f.name,
            f.image
        ),
        e => Error::Image(e),
    })?;
    instance::check_command(&f, &img)?;
    let layers = img.layers()?;
    {
        let _lease = store.lease()?;
        store.snapshots().ensure(store.content(), &layers)?;
    }
    f.image_id = img.manifest_digest.to_string();
    f.created = runtime::state::now_rfc3339();
    // Pinned before it is recorded: from here on no gc takes its image (crate::pin).
    store.pin(&pin::function_owner(&f.name), &img.manifest_digest)?;
    store::Store::open(root)?.put(&f)?;
    tracing::debug!(function = %f.name, image = %f.image, "deployed");
    Ok(f)
}

/// Removes the function `name` and its log (its instances are stopped by the gateway's
/// next sync).
pub fn remove(root: &Path, name: &str) -> Result<()> {
    def::check_name(name)?;
    store::Store::open(root)?.remove(name)?;
    image::ImageStore::open(root)?.unpin(&pin::function_owner(name))?;
    let _ = std::fs::remove_file(instance::log_path(root, name));
    Ok(())
}

/// The functions deployed from the image with manifest digest `manifest` (`rmi` refuses to
/// remove it while there are any). No database yet means none.
pub fn users_of_image(root: &Path, manifest: &str) -> Result<Vec<String>> {
    if !root.join("functions.db").exists() {
        return Ok(Vec::new());
    }
    Ok(store::Store::open(root)?
        .list()?
        .into_iter()
        .filter(|f| f.image_id == manifest)
        .map(|f| f.name)
        .collect())
}
