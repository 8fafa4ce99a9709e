//! `berth-image`: OCI images on top of the content store.
//!
//! - [`oci`]: manifests, indexes (linux/amd64 chosen), configs, Docker v2 schema 2 types,
//!   layers joined with their diffIDs, ChainIDs.
//! - [`apply`]: unpack a layer tar (gzip, zstd or plain) treating it as hostile: nothing is
//!   written outside the target, entry count and size are capped, errors name the entry.
//! - [`snapshot`]: each layer unpacked once by ChainID; a container rootfs is an overlay of
//!   snapshots (copy fallback); nothing half-unpacked is ever visible.
//! - [`store`]: names → manifests (crash-safe metadata), resolve, tag, commit, gc, leases.
//! - [`archive`]: `load` (oci-archive, OCI layout directory, docker-archive) and `save`.
//! - [`user`]: an image's `User` resolved in its own /etc/passwd and /etc/group; the
//!   default capability set (for `berth run` and the builder alike).
//! - [`seccomp`]: the default seccomp profile (Docker's allow-list, widened by capabilities)
//!   and Docker-format profile files, as config.json's `linux.seccomp`.
//!
//! Invariants: every blob is verified against its digest before it is visible (berth-content);
//! every layer's uncompressed digest is checked against the config's diffID before its
//! snapshot is visible; an image name is recorded only after all its blobs are committed.
#![forbid(unsafe_code)]

pub mod apply;
pub mod archive;
mod copy;
pub mod error;
pub mod oci;
#[cfg(test)]
mod prop_docs;
pub mod seccomp;
pub mod snapshot;
pub mod store;
pub mod user;

pub use error::{Error, Result};
pub use oci::Layer;
pub use snapshot::{Rootfs, RootfsKind, Snapshots};
pub use store::{normalize_name, GcReport, Image, ImageStore, Lease};
