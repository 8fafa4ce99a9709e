//! `berth registry serve|gc`: run the OCI Distribution server, collect garbage.

use anyhow::{Context, Result};
use registry::server::{self, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Serve the OCI Distribution API (distribution-spec v1.1).
    Serve(ServeArgs),
    /// Delete blobs no manifest references (safe while pushes continue).
    Gc(GcArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Storage directory.
    #[arg(long, default_value = "/var/lib/berth/registry")]
    root: PathBuf,
    /// htpasswd file with bcrypt entries (`htpasswd -B`); enables authentication.
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// Challenge clients for bearer tokens from this URL (the registry serves `/token`).
    #[arg(long)]
    token_realm: Option<String>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse every write.
    #[arg(long)]
    read_only: bool,
    /// Repositories anyone may pull: `*`, `NAME` or `PREFIX/*` (repeatable).
    #[arg(long = "anonymous-pull")]
    anonymous_pull: Vec<String>,
    /// Uploads open at once; more are answered 429 TOOMANYREQUESTS.
    #[arg(long, default_value_t = 4096)]
    max_uploads: usize,
    /// Uploads one client (a user, or an address when anonymous) may have open at once.
    #[arg(long, default_value_t = 128)]
    max_uploads_per_client: usize,
    /// Seconds after which an upload no request touched expires.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    upload_idle_timeout: u64,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds without a byte moving after which a connection is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Connections served at once; more are closed (and logged).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Connections one client address may hold at once.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_client: u64,
}

#[derive(clap::Args, Debug)]
struct GcArgs {
    /// Storage directory.
    #[arg(long, default_value = "/var/lib/berth/registry")]
    root: PathBuf,
    /// Keep unreferenced blobs younger than this many seconds (pushes in flight).
    #[arg(long, default_value_t = 3600)]
    grace_seconds: u64,
    /// Report only.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(a: Args) -> Result<()> {
    match a.cmd {
        Sub::Serve(s) => serve(s),
        Sub::Gc(g) => {
            let r = server::gc::run(&g.root, Duration::from_secs(g.grace_seconds), g.dry_run)
                .with_context(|| format!("gc of {}", g.root.display()))?;
            println!(
                "live {} deleted {} blobs ({} bytes), kept {} young, removed {} links, {} stale uploads{}",
                r.live,
                r.deleted_blobs,
                r.deleted_bytes,
                r.kept_young,
                r.removed_links,
                r.removed_uploads,
                if g.dry_run { " (dry run)" } else { "" }
            );
            Ok(())
        }
    }
}

fn serve(s: ServeArgs) -> Result<()> {
    let cfg = Config {
        htpasswd: s.htpasswd,
        token_realm: s.token_realm,
        tls: s.tls_cert.zip(s.tls_key),
        read_only: s.read_only,
        anonymous_pull: s.anonymous_pull,
        max_uploads: s.max_uploads,
        max_uploads_per_client: s.max_uploads_per_client,
        upload_idle_timeout: Duration::from_secs(s.upload_idle_timeout),
        header_timeout: Duration::from_secs(s.header_timeout),
        idle_timeout: Duration::from_secs(s.idle_timeout),
        max_connections: usize::try_from(s.max_connections).unwrap_or(usize::MAX),
        max_connections_per_client: usize::try_from(s.max_connections_per_client)
            .unwrap_or(usize::MAX),
        ..Config::new(s.listen, s.root)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Ok(addr) = rx.await {
                // Tests and scripts read the bound address (useful with port 0) from here.
                println!("listening on {addr}");
            }
        });
        server::serve(cfg, Some(tx)).await
    })
    .context("registry server")?;
    Ok(())
}
