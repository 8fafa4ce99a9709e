//! The runtime's error type. Messages are lower-case, name the offending value or field,
//! and do not repeat their source.

use std::path::PathBuf;

/// Everything that can go wrong in a runtime verb.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json (or a process.json) is malformed or contradicts itself; names the field.
    #[error("{file}: {field}: {msg}")]
    Config {
        file: String,
        field: String,
        msg: String,
    },
    /// A container id that the runc grammar rejects.
    #[error("invalid container id {0:?}: must match [A-Za-z0-9_+.-]+ and not be ., .. or .seccomp-cache (the runtime's own)")]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    /// A verb that the container's current status forbids.
    #[error("cannot {verb} container {id}: it is {status}")]
    BadState {
        verb: &'static str,
        id: String,
        status: String,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: nix::errno::Errno,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("{kind} hook {path}: {msg}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        msg: String,
    },
    /// The container's init reported a failure while setting the container up.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Usage(String),
}

/// Result alias for the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a description to errno and io errors.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}

/// A config error for `config.json`.
pub fn config_err(field: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Config {
        file: "config.json".into(),
        field: field.into(),
        msg: msg.into(),
    }
}

impl Error {
    /// A config error re-attributed to the document it came from (an `exec --process`
    /// file, or the exec command line), not config.json.
    pub fn in_file(self, name: &str) -> Error {
        match self {
            Error::Config { field, msg, .. } => Error::Config {
                file: name.into(),
                field,
                msg,
            },
            e => e,
        }
    }
}
