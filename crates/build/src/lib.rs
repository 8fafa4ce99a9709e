//! berth's image builder: a Containerfile (Dockerfile) parser and a builder that turns each
//! filesystem step (RUN, COPY, ADD) into a reproducible OCI layer and reuses every step
//! whose inputs did not change.
//!
//! Invariants: paths from a Containerfile or a build context are hostile — a COPY never
//! reads outside the context (sources are resolved lexically under it and symlinks are not
//! followed out) and never writes outside the image's root (`openat2(RESOLVE_IN_ROOT)`); a
//! RUN runs under `berth-runtime` in its own empty network namespace; the same inputs give
//! the same layer digests; a cache entry becomes visible only once complete (rename).
#![forbid(unsafe_code)]

pub mod backend;
mod builder;
pub mod cache;
pub mod config;
pub mod context;
pub mod diff;
pub mod fsroot;
pub mod parse;
#[cfg(test)]
mod prop;
pub mod run;
pub mod steps;
pub mod store;
pub mod words;

pub use backend::{Backend, BackendError, BaseImage, LayerRef, LAYER_TAR};
pub use builder::{build, human, BuildError, Options, Report, StepError, StepReport};
pub use store::StoreBackend;
