//! `berth-registry`: berth's OCI Distribution (distribution-spec v1.1) server and client.
//!
//! The server ([`server`]) stores blobs by digest on local disk and serves the whole
//! `/v2/` API with basic or bearer-token auth; the client ([`client`]) pushes and pulls
//! OCI image-layout directories, sending only the blobs the registry lacks.
//!
//! Invariants: every name, tag, digest and upload id from a request is validated
//! ([`reference`]) before it becomes part of a path; an upload becomes a blob only after
//! its digest verifies, via fsync and a rename that never replaces an existing blob;
//! this crate and `berth` are the only ones that know HTTP.
#![forbid(unsafe_code)]

pub mod client;
pub mod media;
pub mod reference;
pub mod server;
