//! End-to-end test support for berth (see `tests/*.rs`).
#![forbid(unsafe_code)]
