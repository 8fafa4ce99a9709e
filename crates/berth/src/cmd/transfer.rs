//! `berth push`, `berth pull`, `berth login`, `berth logout`: the registry client between
//! a registry and berth's image store (or an OCI image-layout directory with `--layout`).
//!
//! The store keeps blobs as an OCI layout does (`blobs/<alg>/<hex>`), so both directions go
//! through a small layout view whose `blobs` is the store's: a push reads them in place; a
//! pull skips what the store has and writes each new blob once (the client verifies it
//! against its digest, fsyncs it and renames it into place), then names the image.

use crate::Globals;
use anyhow::{bail, Context, Result};
use registry::client::layout::{Descriptor, Layout};
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
    /// `IMAGE [DEST]`: an image of the store and where to push it (`HOST[:PORT]/NAME[:TAG]`;
    /// default: the image's own name). With `--layout`, only `DEST`.
    #[arg(required = true, num_args = 1..=2)]
    refs: Vec<String>,
    /// Push an OCI image layout directory instead, `DIR` or `DIR:NAME` (its ref.name).
    #[arg(long)]
    layout: Option<String>,
    #[command(flatten)]
    tls: Tls,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Source: `HOST[:PORT]/NAME[:TAG|@DIGEST]`.
    src: String,
    /// Pull into this OCI image layout directory (created if missing) instead of the store.
    #[arg(long)]
    layout: Option<PathBuf>,
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

/// A layout view of one image of the store: `oci-layout`, an `index.json` naming it, and
/// `blobs` pointing at the store's own blobs. Removed on drop.
struct StoreView {
    dir: PathBuf,
}

impl StoreView {
    /// A layout directory (under the run root) whose `blobs` are the store's.
    fn empty(g: &Globals, what: &str) -> Result<StoreView> {
        let store = g.store()?;
        let dir = g.runroot.join(format!("{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let view = StoreView { dir };
        std::os::unix::fs::symlink(store.content().root().join("blobs"), view.dir.join("blobs"))
            .context("link the store's blobs")?;
        Ok(view)
    }

    /// A view naming one image of the store.
    fn new(g: &Globals, image: &str) -> Result<StoreView> {
        let store = g.store()?;
        let digest = store
            .lookup(image)
            .with_context(|| format!("no image {image:?} in the store"))?;
        let manifest = store
            .content()
            .read(&digest, 4 << 20)
            .with_context(|| format!("read manifest {digest}"))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
        let view = StoreView::empty(g, "push")?;
        let desc = Descriptor {
            media_type,
            digest,
            size: manifest.len() as u64,
        };
        Layout::new(&view.dir).add_ref(&desc, "image")?;
        Ok(view)
    }
}

impl Drop for StoreView {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn push(g: &Globals, a: PushArgs) -> Result<()> {
    let (view, dir, name, dest_str) = match (&a.layout, a.refs.as_slice()) {
        (Some(l), [dest]) => {
            let (dir, name) = split_layout(l);
            (None, dir, name, dest.clone())
        }
        (Some(_), _) => bail!("with --layout, give only the destination"),
        (None, [image, rest @ ..]) => {
            let view = StoreView::new(g, image)?;
            let dir = view.dir.clone();
            let dest = rest.first().unwrap_or(image).clone();
            (Some(view), dir, Some("image".to_string()), dest)
        }
        (None, []) => bail!("name the image to push"),
    };
    let dest = ImageRef::parse(&dest_str)?;
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
        .with_context(|| format!("push {} to {dest_str}", a.refs[0]))?;
    drop(view);
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

pub fn pull(g: &Globals, a: PullArgs) -> Result<()> {
    let src = ImageRef::parse(&a.src)?;
    // Into the store: a layout view whose `blobs` are the store's own, so a blob the store
    // has is never fetched, and a fetched one (verified against its digest, fsynced, then
    // renamed into place by the client) is written once; then the image is named.
    let view = match &a.layout {
        Some(_) => None,
        None => Some(StoreView::empty(g, "pull")?),
    };
    // Into the store: a lease from the first blob to the name (gc waits for it), and the
    // partial files of pulls that were killed go first (a live pull's are locked and kept).
    let lease = match &view {
        Some(_) => {
            let store = g.store()?;
            match store.content().collect_partials() {
                Ok((n, bytes)) if n > 0 => {
                    tracing::info!(files = n, bytes, "removed partial downloads of dead pulls")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "collect partial downloads"),
            }
            Some(store.lease()?)
        }
        None => None,
    };
    let dir = match (&a.layout, &view) {
        (Some(l), _) => l.clone(),
        (None, Some(v)) => v.dir.clone(),
        (None, None) => bail!("no destination"),
    };
    let layout = Layout::new(&dir);
    let reg = connect(&src.registry, &a.tls)?;
    let tag = match (&a.name, &view) {
        (Some(n), _) => n.clone(),
        (None, Some(_)) => a.src.clone(),
        (None, None) => src.reference_str(),
    };
    let r = runtime()?
        .block_on(transfer::pull(reg, &src, &layout, &tag, &Progress::auto()))
        .with_context(|| format!("pull {} into {}", a.src, dir.display()))?;
    println!(
        "{} blobs received ({} bytes), {} already present, {} manifests; digest {}",
        r.transferred,
        r.bytes,
        r.skipped,
        r.manifests,
        r.digest.unwrap_or_default()
    );
    if view.is_some() {
        let store = g.store()?;
        let lease = match lease {
            Some(l) => l,
            None => store.lease()?,
        };
        for (name, _) in image::archive::load_leased(&store, &dir, lease)
            .with_context(|| format!("load {} into the store", a.src))?
        {
            println!("Pulled image: {name}");
        }
    }
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
