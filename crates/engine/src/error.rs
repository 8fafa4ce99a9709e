//! The engine's errors: one line each, naming what was wrong.

/// Errors of the engine. Messages are lower-case and name the container, option or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option or value (`--restart`, `--memory`, a volume, a name).
    #[error("{0}")]
    Invalid(String),
    /// No container by that name or id.
    #[error("no such container: {0}")]
    NotFound(String),
    /// No pod by that name or id (pod.rs).
    #[error("no such pod: {0}")]
    NoSuchPod(String),
    /// The request conflicts with the container's state or another container (a name in
    /// use, removing a running container without force).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Net(#[from] net::Error),
    #[error(transparent)]
    User(#[from] image::user::UserError),
    #[error(transparent)]
    Seccomp(#[from] image::seccomp::SeccompError),
    #[error("database {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// berth-runtime or the monitor failed; the message is theirs.
    #[error("{0}")]
    Runtime(String),
    /// The node has not enough free capacity for the container (admission.rs).
    #[error("{0}")]
    Capacity(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Error::Invalid(format!(…))`.
#[macro_export]
macro_rules! invalid {
    ($($t:tt)*) => { $crate::error::Error::Invalid(format!($($t)*)) };
}

/// Wraps an I/O error with what was being done.
pub fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}
