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
    /// Run an OCI Distribution registry (`serve`) or collect its garbage (`gc`).
    Registry(cmd::registry::Args),
    /// Push an OCI image layout to a registry.
    Push(cmd::transfer::PushArgs),
    /// Pull an image from a registry into an OCI image layout.
    Pull(cmd::transfer::PullArgs),
    /// Store credentials for a registry in ~/.config/berth/auth.json.
    Login(cmd::transfer::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(cmd::transfer::LogoutArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Bundle(a) => cmd::bundle::run(a),
        Cmd::Registry(a) => cmd::registry::run(a),
        Cmd::Push(a) => cmd::transfer::push(a),
        Cmd::Pull(a) => cmd::transfer::pull(a),
        Cmd::Login(a) => cmd::transfer::login(a),
        Cmd::Logout(a) => cmd::transfer::logout(a),
    }
}
