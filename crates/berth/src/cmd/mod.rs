//! Subcommands of `berth`, one file each.

pub mod bundle;
pub mod vm;
