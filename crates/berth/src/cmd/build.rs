//! `berth build -t NAME[:TAG] [-f FILE] [--build-arg K=V]… [--target STAGE] [--no-cache]
//! [--quiet] DIR`: builds an image from a Containerfile into the store.

use crate::Globals;
use anyhow::{bail, Context, Result};
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Name (and tag) of the image; repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// The Containerfile (default: DIR/Containerfile, else DIR/Dockerfile; `-`: stdin).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// A build argument `K=V` (or `K`, taken from the environment); repeatable.
    #[arg(long = "build-arg", value_name = "K=V")]
    build_args: Vec<String>,
    /// Build up to this stage (its name or index).
    #[arg(long)]
    target: Option<String>,
    /// Run every step, reusing no cached layer.
    #[arg(long)]
    no_cache: bool,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// The build context.
    dir: PathBuf,
}

/// `berth-runtime`: `$BERTH_RUNTIME`, else beside this binary, else on `$PATH`.
fn runtime() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_RUNTIME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("berth-runtime")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("berth-runtime"))
}

/// Removes step directories left by builds that died (their pid is gone).
fn clean_stale(work: &Path) {
    let Ok(rd) = std::fs::read_dir(work) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or("");
        if pid.is_empty() || !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    // Overlay mounts of the build live in a private mount namespace: whatever happens to
    // this process, they vanish with it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("unshare the mount namespace (berth build needs root)")?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make / private")?;
    let file = match a.file {
        Some(f) => f,
        None => ["Containerfile", "Dockerfile"]
            .iter()
            .map(|n| a.dir.join(n))
            .find(|p| p.is_file())
            .with_context(|| format!("no Containerfile or Dockerfile in {}", a.dir.display()))?,
    };
    let containerfile = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("read the Containerfile from stdin")?
    } else {
        std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?
    };
    let mut build_args = Vec::new();
    for ba in &a.build_args {
        match ba.split_once('=') {
            Some((k, v)) => build_args.push((k.to_string(), v.to_string())),
            None => {
                // `--build-arg K` takes K from the environment; unset, it is left out.
                if let Ok(v) = std::env::var(ba) {
                    build_args.push((ba.clone(), v));
                }
            }
        }
    }
    if !a.dir.is_dir() {
        bail!("build context {} is not a directory", a.dir.display());
    }
    let store = g.store()?;
    let work_dir = g.root.join("build/tmp");
    std::fs::create_dir_all(&work_dir).with_context(|| format!("create {}", work_dir.display()))?;
    clean_stale(&work_dir);
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => Some(
            s.parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    let opts = build::Options {
        context: a.dir.clone(),
        containerfile,
        tags: a.tags,
        build_args,
        target: a.target,
        no_cache: a.no_cache,
        quiet: a.quiet,
        runtime: runtime(),
        runtime_state: g.runroot.join("build"),
        work_dir,
        cache_dir: g.root.join("build/cache"),
        source_date_epoch,
    };
    let backend = build::StoreBackend::new(store).context("lease the image store")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    build::build(&backend, &opts, &mut out)?;
    Ok(())
}
