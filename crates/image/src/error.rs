//! The error type of berth-image.

use std::path::PathBuf;

/// Errors of image handling. Messages are lower-case and name what they are about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Content(#[from] content::Error),
    /// A hostile or malformed layer entry, named as it appears in the tar stream.
    #[error("layer entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
    #[error("layer {layer}: uncompressed digest {actual} does not match diffID {expected}")]
    DiffId {
        layer: String,
        expected: String,
        actual: String,
    },
    /// Something wrong with one layer of an image (unpacking it, its size, its diffID).
    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: Box<Error>,
    },
    /// Something wrong with the image named (e.g. while loading it).
    #[error("image {image}: {source}")]
    Image {
        image: String,
        #[source]
        source: Box<Error>,
    },
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("invalid image name {0:?}")]
    InvalidName(String),
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

pub(crate) fn invalid(what: impl Into<String>, reason: impl ToString) -> Error {
    Error::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

pub(crate) fn entry_err(entry: &str, reason: impl ToString) -> Error {
    Error::Entry {
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}
