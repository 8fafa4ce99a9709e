//! `berth-image`: OCI images on top of the content store (work in progress).
#![forbid(unsafe_code)]
