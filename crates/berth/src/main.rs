//! `berth`: the user-facing binary. One file per subcommand under `cmd/`; the only crate
//! that uses `anyhow`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "berth: run isolated workloads (containers today; images, registry, functions and microVMs as they land)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make an OCI bundle from a static busybox, ready for `berth-runtime run`.
    Bundle(cmd::bundle::Args),
    /// MicroVMs: run, list, stop, pause, snapshot and restore KVM virtual machines.
    Vm(cmd::vm::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Bundle(a) => cmd::bundle::run(a),
        Cmd::Vm(a) => cmd::vm::run(a),
    }
}
