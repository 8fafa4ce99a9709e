//! `berth push`, `berth pull`, `berth login`, `berth logout`: the registry client on OCI
//! image-layout directories (the image store will plug in here).

use anyhow::{bail, Context, Result};
use registry::client::layout::Layout;
use registry::client::transfer::{self, Progress};
use registry::client::{auth, ImageRef, Options, Registry};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Tls {
    /// `false`: plain HTTP, for a registry on loopback (like podman's flag).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Blobs transferred in parallel.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Upload chunk size in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    chunk_size: u64,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The image: an OCI image layout directory, `DIR` or `DIR:NAME` (its ref.name).
    #[arg(long)]
    layout: String,
    /// Destination: `HOST[:PORT]/NAME[:TAG]`.
    dest: String,
    #[command(flatten)]
    tls: Tls,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Source: `HOST[:PORT]/NAME[:TAG|@DIGEST]`.
    src: String,
    /// OCI image layout directory to pull into (created if missing).
    #[arg(long)]
    layout: PathBuf,
    /// Name of the image in the layout's index.json (default: the tag or digest).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    tls: Tls,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// `HOST[:PORT]`.
    registry: String,
    #[arg(short, long)]
    username: String,
    /// The password (prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    tls: Tls,
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// `HOST[:PORT]`.
    registry: String,
}

fn connect(host: &str, tls: &Tls) -> Result<Arc<Registry>> {
    let path = auth::default_path()?;
    let credentials = auth::get(&path, host)?;
    let opts = Options {
        tls_verify: tls.tls_verify,
        credentials,
        parallel: tls.parallel,
        chunk_size: tls.chunk_size.max(1),
        ..Options::default()
    };
    Ok(Arc::new(Registry::new(host, opts)?))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn split_layout(s: &str) -> (PathBuf, Option<String>) {
    match s.rsplit_once(':') {
        Some((dir, name)) if !name.contains('/') && !name.is_empty() => {
            (PathBuf::from(dir), Some(name.to_string()))
        }
        _ => (PathBuf::from(s), None),
    }
}

pub fn push(a: PushArgs) -> Result<()> {
    let dest = ImageRef::parse(&a.dest)?;
    let (dir, name) = split_layout(&a.layout);
    let layout = Layout::new(&dir);
    let reg = connect(&dest.registry, &a.tls)?;
    let r = runtime()?
        .block_on(transfer::push(
            reg,
            &layout,
            name.as_deref(),
            &dest,
            &Progress::auto(),
        ))
        .with_context(|| format!("push {} to {}", dir.display(), a.dest))?;
    println!(
        "{} blobs sent ({} bytes), {} already there, {} mounted, {} manifests; digest {}",
        r.transferred,
        r.bytes,
        r.skipped,
        r.mounted,
        r.manifests,
        r.digest.unwrap_or_default()
    );
    Ok(())
}

pub fn pull(a: PullArgs) -> Result<()> {
    let src = ImageRef::parse(&a.src)?;
    let layout = Layout::new(&a.layout);
    let reg = connect(&src.registry, &a.tls)?;
    let tag = a.name.clone().unwrap_or_else(|| src.reference_str());
    let r = runtime()?
        .block_on(transfer::pull(reg, &src, &layout, &tag, &Progress::auto()))
        .with_context(|| format!("pull {} into {}", a.src, a.layout.display()))?;
    println!(
        "{} blobs received ({} bytes), {} already present, {} manifests; digest {}",
        r.transferred,
        r.bytes,
        r.skipped,
        r.manifests,
        r.digest.unwrap_or_default()
    );
    Ok(())
}

pub fn login(a: LoginArgs) -> Result<()> {
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("read the password from stdin")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password-stdin or --password"),
    };
    let opts = Options {
        tls_verify: a.tls.tls_verify,
        credentials: Some((a.username.clone(), password.clone())),
        ..Options::default()
    };
    let reg = Registry::new(&a.registry, opts)?;
    runtime()?
        .block_on(reg.ping())
        .with_context(|| format!("log in to {} as {}", a.registry, a.username))?;
    let path = auth::default_path()?;
    auth::set(&path, &a.registry, &a.username, &password)?;
    println!("Login Succeeded ({})", path.display());
    Ok(())
}

pub fn logout(a: LogoutArgs) -> Result<()> {
    let path = auth::default_path()?;
    if auth::remove(&path, &a.registry)? {
        println!("Removed login credentials for {}", a.registry);
        Ok(())
    } else {
        bail!("not logged in to {}", a.registry)
    }
}
