//! Where running VMs are recorded: one directory per VM under a root (default
//! `/run/berth/vm`), holding `vm.json` (config and pid), `api.sock` and, for a detached VM,
//! `console.log`. The directory exists exactly as long as its VMM runs; creating it is how a
//! name is claimed.

use crate::config::VmConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The default state root.
pub const DEFAULT_ROOT: &str = "/run/berth/vm";

/// What `vm.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmRecord {
    pub config: VmConfig,
    pub pid: u32,
    pub console: Option<PathBuf>,
}

/// The VM state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// a VM named {0:?} already exists
    #[error("a VM named {0:?} already exists")]
    Exists(String),
    /// a VM named {0:?} exists but its VMM is gone; remove it with `berth vm rm {0}`
    #[error("a VM named {0:?} exists but its VMM is gone; remove it with `berth vm rm {0}`")]
    Stale(String),
    /// no VM named {0:?}
    #[error("no VM named {0:?}")]
    NotFound(String),
    /// {path}: {source}
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether process `pid` exists.
pub fn alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// A VM's state directory; removed when dropped unless [`VmDir::keep`] was called.
pub struct VmDir {
    pub path: PathBuf,
    remove: bool,
}

impl VmDir {
    /// Claims `name` under `root`.
    pub fn create(root: &Path, name: &str) -> Result<VmDir, StateError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        let path = root.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(VmDir { path, remove: true }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_record(&path) {
                Some(r) if !alive(r.pid) => Err(StateError::Stale(name.to_string())),
                _ => Err(StateError::Exists(name.to_string())),
            },
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The API socket's path.
    pub fn socket(&self) -> PathBuf {
        self.path.join("api.sock")
    }

    /// Writes `vm.json`.
    pub fn write_record(&self, record: &VmRecord) -> Result<(), StateError> {
        let file = self.path.join("vm.json");
        let tmp = self.path.join(".vm.json.tmp");
        let text =
            serde_json::to_vec_pretty(record).map_err(|e| io(&file)(std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &file).map_err(io(&file))
    }

    /// Leaves the directory in place when dropped.
    pub fn keep(mut self) {
        self.remove = false;
    }
}

impl Drop for VmDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn read_record(dir: &Path) -> Option<VmRecord> {
    let text = std::fs::read(dir.join("vm.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// A recorded VM.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub dir: PathBuf,
    pub record: Option<VmRecord>,
}

impl Entry {
    /// The API socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }
    /// Whether the VMM process is still there.
    pub fn alive(&self) -> bool {
        self.record.as_ref().is_some_and(|r| alive(r.pid))
    }
}

/// Every VM under `root`, by name.
pub fn list(root: &Path) -> Result<Vec<Entry>, StateError> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root)(e)),
    };
    let mut out: Vec<Entry> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            record: read_record(&e.path()),
            dir: e.path(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The VM named `name` under `root`.
pub fn find(root: &Path, name: &str) -> Result<Entry, StateError> {
    if !crate::config::valid_name(name) {
        return Err(StateError::NotFound(name.to_string()));
    }
    let dir = root.join(name);
    if !dir.is_dir() {
        return Err(StateError::NotFound(name.to_string()));
    }
    Ok(Entry {
        name: name.to_string(),
        record: read_record(&dir),
        dir,
    })
}

/// Removes a VM's directory.
pub fn remove(entry: &Entry) -> Result<(), StateError> {
    std::fs::remove_dir_all(&entry.dir).map_err(io(&entry.dir))
}
