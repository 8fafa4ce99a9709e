//! `berth registry gc`: mark and sweep that is safe while pushes continue.
//!
//! Mark: every manifest linked in any repository, and every blob and child manifest those
//! manifests reference, is live. Sweep: a blob that is not live is deleted only if its mtime
//! is older than the GC start minus a grace period. Pushes cannot lose data to a concurrent
//! GC because (1) uploads in progress live under `uploads/`, which GC never touches, (2) a
//! blob committed, mounted, found by `HEAD` or referenced by a manifest `PUT` has its mtime
//! set to now, and (3) a manifest `PUT` checks its blobs exist before it links itself.
//! Stale uploads (older than a day) are removed too.

use super::storage::Storage;
use crate::reference::parse_digest;
use crate::reference::{Digest, Name};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What a GC run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub live: usize,
    pub deleted_blobs: usize,
    pub deleted_bytes: u64,
    pub kept_young: usize,
    pub removed_links: usize,
    pub removed_uploads: usize,
}

/// Why GC stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("open storage root {path}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("walk {path}")]
    Walk {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn children(bytes: &[u8]) -> Vec<Digest> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |d: Option<&Value>| {
        if let Some(d) = d.and_then(|d| d.get("digest")).and_then(Value::as_str) {
            if let Ok(d) = parse_digest(d) {
                out.push(d);
            }
        }
    };
    push(v.get("config"));
    for key in ["layers", "manifests", "blobs"] {
        if let Some(a) = v.get(key).and_then(Value::as_array) {
            for x in a {
                push(Some(x));
            }
        }
    }
    out
}

/// Runs one GC over the storage at `root`. `grace` protects blobs younger than
/// `start - grace`; `dry_run` only reports.
pub fn run(root: &Path, grace: Duration, dry_run: bool) -> Result<Report, GcError> {
    let start = SystemTime::now();
    let cutoff = start.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let store = Storage::open(root).map_err(|source| GcError::Open {
        path: root.to_path_buf(),
        source,
    })?;
    let walk = |source| GcError::Walk {
        path: root.to_path_buf(),
        source,
    };
    let mut report = Report::default();
    // Mark.
    let mut live: HashSet<Digest> = HashSet::new();
    let repos: Vec<Name> = store.repositories().map_err(walk)?;
    let mut stack: Vec<Digest> = Vec::new();
    for r in &repos {
        stack.extend(store.manifests(r).map_err(walk)?);
    }
    while let Some(d) = stack.pop() {
        if !live.insert(d.clone()) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(store.blob_path(&d)) {
            if bytes.first() == Some(&b'{') {
                stack.extend(children(&bytes));
            }
        }
    }
    report.live = live.len();
    // Sweep blobs.
    let blobs = root.join("blobs");
    for alg in super::storage::read_dir_names(&blobs).map_err(walk)? {
        for hh in super::storage::read_dir_names(&blobs.join(&alg)).map_err(walk)? {
            let dir = blobs.join(&alg).join(&hh);
            for hex in super::storage::read_dir_names(&dir).map_err(walk)? {
                let Ok(d) = parse_digest(&format!("{alg}:{hex}")) else {
                    // A temp file a crash left behind (manifests are written through one).
                    let p = dir.join(&hex);
                    let old = std::fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .is_ok_and(|m| m < cutoff);
                    if hex.starts_with(".tmp-") && old && !dry_run {
                        let _ = std::fs::remove_file(&p);
                    }
                    continue;
                };
                if live.contains(&d) {
                    continue;
                }
                let p = dir.join(&hex);
                let Ok(meta) = std::fs::metadata(&p) else {
                    continue;
                };
                // Re-read the mtime right before deleting: a push may have touched it.
                if meta.modified().map(|m| m >= cutoff).unwrap_or(true) {
                    report.kept_young += 1;
                    continue;
                }
                report.deleted_blobs += 1;
                report.deleted_bytes += meta.len();
                if !dry_run {
                    tracing::info!(digest = %d, size = meta.len(), "gc: delete blob");
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
    // Drop blob links whose blob is gone.
    for r in &repos {
        for d in store.layer_links(r).map_err(walk)? {
            if store.blob_size(&d).map_err(walk)?.is_none() {
                report.removed_links += 1;
                if !dry_run {
                    let _ = store.unlink_blob(r, &d);
                }
            }
        }
    }
    for (_, dir) in
        super::uploads::stale_uploads(&store.uploads_dir(), Duration::from_secs(24 * 3600))
    {
        report.removed_uploads += 1;
        if !dry_run {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(report)
}
