//! Subcommands of `berth`, one file each.

pub mod build;
pub mod bundle;
