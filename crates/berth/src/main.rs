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

fn main() {
    let result = match Cli::parse().cmd {
        Cmd::Bundle(a) => cmd::bundle::run(a),
        Cmd::Vm(a) => cmd::vm::run(a),
    };
    if let Err(e) = result {
        // One line: the message, then each cause it does not already spell out.
        let mut msg = e.to_string();
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg = format!("{msg}: {c}");
            }
        }
        eprintln!("Error: {msg}");
        std::process::exit(1);
    }
}
