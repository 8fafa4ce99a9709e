//! Subcommands of `berth`, one file each.

pub mod build;
pub mod bundle;
pub mod container;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod registry;
pub mod rmi;
pub mod run;
mod run_spec;
mod run_tty;
pub mod save;
pub mod system;
pub mod tag;
pub mod transfer;
mod util;
pub mod vm;
