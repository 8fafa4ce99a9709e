//! The build cache: a step's key is a hash of its parent's key (so a change at step k
//! changes every key after it), the instruction as substituted, its inputs (the content
//! hash of COPY/ADD sources) and the build args in scope. A filesystem step's key maps to
//! the layer it made.
//!
//! Entries are files `<dir>/<key>` written to a temporary name, fsync'd and renamed: a
//! crash leaves either no entry or a complete one, and an entry is only written after its
//! layer is stored.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::backend::LayerRef;

/// A cache key (hex sha256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub String);

impl Key {
    /// The key of a stage's start: what it is built on (an image id, `scratch`, or another
    /// stage's last key).
    pub fn base(what: &str) -> Key {
        Key::hash(&[b"base", what.as_bytes()])
    }

    /// The key of a step after `self`.
    pub fn step(&self, instruction: &str, inputs: &str, args: &[(String, String)]) -> Key {
        let mut parts: Vec<Vec<u8>> = vec![
            self.0.as_bytes().to_vec(),
            instruction.as_bytes().to_vec(),
            inputs.as_bytes().to_vec(),
        ];
        let mut args: Vec<_> = args.to_vec();
        args.sort();
        args.dedup_by(|a, b| a.0 == b.0);
        for (k, v) in args {
            parts.push(format!("{k}={v}").into_bytes());
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Key::hash(&refs)
    }

    fn hash(parts: &[&[u8]]) -> Key {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Key(format!("{:x}", h.finalize()))
    }
}

/// A cache error naming the entry.
#[derive(Debug, thiserror::Error)]
#[error("build cache entry {path}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        fs::create_dir_all(dir).map_err(|source| CacheError {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    /// The layer of `key`, if cached (an unreadable or malformed entry is a miss).
    pub fn get(&self, key: &Key) -> Option<LayerRef> {
        let text = fs::read_to_string(self.dir.join(&key.0)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(LayerRef::built(
            v["digest"].as_str()?.to_string(),
            v["size"].as_u64()?,
        ))
    }

    /// Records `key` → `layer` (atomically).
    pub fn put(&self, key: &Key, layer: &LayerRef) -> Result<(), CacheError> {
        let body = serde_json::json!({"digest": layer.digest, "size": layer.size}).to_string();
        self.write(&key.0, body.as_bytes())
    }

    /// The image config a build whose final key was `key` committed.
    pub fn get_config(&self, key: &Key) -> Option<Vec<u8>> {
        fs::read(self.dir.join(format!("{}.config", key.0))).ok()
    }

    /// Records the image config of final key `key` (atomically; unchanged: not rewritten).
    pub fn put_config(&self, key: &Key, config: &[u8]) -> Result<(), CacheError> {
        if self.get_config(key).as_deref() == Some(config) {
            return Ok(());
        }
        self.write(&format!("{}.config", key.0), config)
    }

    fn write(&self, name: &str, body: &[u8]) -> Result<(), CacheError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".tmp-{}-{name}", std::process::id()));
        let err = |source| CacheError {
            path: path.clone(),
            source,
        };
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(body).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_chain_and_entries_round_trip() {
        let a = Key::base("scratch");
        let b = a.step("COPY a /a", "h1", &[]);
        assert_ne!(b, a.step("COPY a /a", "h2", &[]));
        assert_ne!(b, a.step("COPY a /a", "h1", &[("X".into(), "1".into())]));
        assert_eq!(b, Key::base("scratch").step("COPY a /a", "h1", &[]));
        let d = std::env::temp_dir().join(format!("berth-cache-{}", std::process::id()));
        let c = Cache::open(&d).expect("open");
        assert_eq!(c.get(&b), None);
        let l = LayerRef::built("sha256:00".into(), 3);
        c.put(&b, &l).expect("put");
        assert_eq!(c.get(&b), Some(l));
        assert_eq!(c.get_config(&b), None);
        c.put_config(&b, b"{}").expect("put config");
        assert_eq!(c.get_config(&b).as_deref(), Some(&b"{}"[..]));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&d)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
        let _ = fs::remove_dir_all(&d);
    }
}
