//! Push and pull of OCI image layouts. A push sends a blob only when the registry lacks
//! it: `HEAD` first, then a cross-repository mount from a repository of the same registry
//! where the blob was seen before (remembered in `~/.cache/berth/blob-locations.json`),
//! and only then an upload. Blobs move in parallel; manifests go last, children first.

use super::layout::{children, Descriptor, Layout};
use super::{ClientError, ImageRef, Registry};
use crate::reference::{Digest, Name};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a push or pull did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Blobs sent or received.
    pub transferred: usize,
    pub bytes: u64,
    /// Blobs the other side already had.
    pub skipped: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    pub manifests: usize,
    pub digest: Option<String>,
}

/// Progress: bars on a terminal, one line per blob otherwise.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn auto() -> Progress {
        Progress {
            multi: std::io::stderr().is_terminal().then(MultiProgress::new),
        }
    }

    pub fn quiet() -> Progress {
        Progress { multi: None }
    }

    fn bar(&self, label: &str, size: u64) -> Option<ProgressBar> {
        let m = self.multi.as_ref()?;
        let pb = m.add(ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(label.to_string());
        Some(pb)
    }

    fn line(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

fn short(d: &Digest) -> String {
    format!("{}:{}", d.algorithm().name(), &d.hex()[..12])
}

/// Where blobs were seen: registry → digest → repositories.
#[derive(Default)]
struct Locations {
    path: Option<PathBuf>,
    map: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Locations {
    fn load() -> Locations {
        let path = std::env::var_os("XDG_CACHE_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("berth/blob-locations.json"));
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Locations { path, map }
    }

    fn repos(&self, registry: &str, d: &Digest) -> Vec<String> {
        self.map
            .get(registry)
            .and_then(|m| m.get(&d.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn record(&mut self, registry: &str, d: &Digest, repo: &Name) {
        let v = self
            .map
            .entry(registry.to_string())
            .or_default()
            .entry(d.to_string())
            .or_default();
        v.retain(|r| r != repo.as_str());
        v.insert(0, repo.as_str().to_string());
        v.truncate(8);
    }

    fn save(&self) {
        let Some(p) = &self.path else { return };
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = p.with_extension("json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&self.map).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, p);
        }
    }
}

/// A manifest and its bytes.
type Manifest = (Descriptor, Vec<u8>);

/// A manifest tree read from a layout: manifests children-first, then the blobs.
fn walk_layout(
    layout: &Layout,
    top: &Descriptor,
) -> Result<(Vec<Manifest>, Vec<Descriptor>), ClientError> {
    let mut manifests = Vec::new();
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    fn visit(
        layout: &Layout,
        d: &Descriptor,
        manifests: &mut Vec<Manifest>,
        blobs: &mut Vec<Descriptor>,
        seen: &mut HashSet<Digest>,
    ) -> Result<(), ClientError> {
        let bytes = layout.read_blob(&d.digest)?;
        let mt = if d.media_type.is_empty() {
            super::layout::manifest_media_type(&bytes)
        } else {
            d.media_type.clone()
        };
        let (ms, bs) = children(&mt, &bytes, &layout.blob_path(&d.digest))?;
        for m in &ms {
            if seen.insert(m.digest.clone()) {
                visit(layout, m, manifests, blobs, seen)?;
            }
        }
        for b in bs {
            if seen.insert(b.digest.clone()) {
                blobs.push(b);
            }
        }
        let mut d = d.clone();
        d.media_type = mt;
        manifests.push((d, bytes));
        Ok(())
    }
    visit(layout, top, &mut manifests, &mut blobs, &mut seen)?;
    Ok((manifests, blobs))
}

/// Runs `f` over `items`, at most `parallel` at once; the first error wins.
async fn for_each_parallel<T, F, Fut>(
    items: Vec<T>,
    parallel: usize,
    f: F,
) -> Result<(), ClientError>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), ClientError>> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    for it in items {
        let permit = sem.clone().acquire_owned().await;
        let f = f.clone();
        set.spawn(async move {
            let _permit = permit;
            f(it).await
        });
    }
    let mut first = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Err(e)) if first.is_none() => first = Some(e),
            Err(e) if first.is_none() => {
                first = Some(ClientError::Io {
                    path: PathBuf::from("<task>"),
                    source: std::io::Error::other(e.to_string()),
                })
            }
            _ => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// Pushes the image named `name` (or the only one) of the layout to `dest`.
pub async fn push(
    reg: Arc<Registry>,
    layout: &Layout,
    name: Option<&str>,
    dest: &ImageRef,
    progress: &Progress,
) -> Result<Report, ClientError> {
    let top = layout.resolve(name)?;
    let (manifests, blobs) = walk_layout(layout, &top)?;
    let report = Arc::new(Mutex::new(Report::default()));
    let locations = Arc::new(Mutex::new(Locations::load()));
    let bytes = Arc::new(AtomicU64::new(0));
    let parallel = reg.options().parallel;
    {
        let (reg, report, locations, bytes) = (
            reg.clone(),
            report.clone(),
            locations.clone(),
            bytes.clone(),
        );
        let (repo, host, layout, progress) = (
            dest.name.clone(),
            dest.registry.clone(),
            layout.clone(),
            progress.clone(),
        );
        for_each_parallel(blobs, parallel, move |b| {
            let (reg, report, locations, bytes) = (
                reg.clone(),
                report.clone(),
                locations.clone(),
                bytes.clone(),
            );
            let (repo, host, layout, progress) =
                (repo.clone(), host.clone(), layout.clone(), progress.clone());
            async move {
                if reg.blob_exists(&repo, &b.digest).await? {
                    progress.line(&format!("{}: already in {repo}", short(&b.digest)));
                    if let Ok(mut r) = report.lock() {
                        r.skipped += 1;
                    }
                    if let Ok(mut l) = locations.lock() {
                        l.record(&host, &b.digest, &repo);
                    }
                    return Ok(());
                }
                let candidates: Vec<String> = locations
                    .lock()
                    .map(|l| l.repos(&host, &b.digest))
                    .unwrap_or_default();
                for from in candidates.iter().filter(|r| r.as_str() != repo.as_str()) {
                    let Ok(from) = Name::parse(from) else {
                        continue;
                    };
                    if reg.mount(&repo, &b.digest, &from).await? {
                        progress.line(&format!("{}: mounted from {from}", short(&b.digest)));
                        if let Ok(mut r) = report.lock() {
                            r.mounted += 1;
                        }
                        if let Ok(mut l) = locations.lock() {
                            l.record(&host, &b.digest, &repo);
                        }
                        return Ok(());
                    }
                }
                let bar = progress.bar(&short(&b.digest), b.size);
                let bar2 = bar.clone();
                let counter = bytes.clone();
                reg.upload(&repo, &b, &layout.blob_path(&b.digest), &move |n| {
                    counter.fetch_add(n, Ordering::Relaxed);
                    if let Some(pb) = &bar2 {
                        pb.inc(n);
                    }
                })
                .await?;
                if let Some(pb) = bar {
                    pb.finish_and_clear();
                }
                progress.line(&format!("{}: pushed {} bytes", short(&b.digest), b.size));
                if let Ok(mut r) = report.lock() {
                    r.transferred += 1;
                }
                if let Ok(mut l) = locations.lock() {
                    l.record(&host, &b.digest, &repo);
                }
                Ok(())
            }
        })
        .await?;
    }
    let last = manifests.len().saturating_sub(1);
    for (i, (d, body)) in manifests.iter().enumerate() {
        let reference = if i == last {
            dest.reference_str()
        } else {
            d.digest.to_string()
        };
        reg.put_manifest(&dest.name, &reference, &d.media_type, body)
            .await?;
    }
    if let Ok(l) = locations.lock() {
        l.save();
    }
    let mut r = report.lock().map(|r| r.clone()).unwrap_or_default();
    r.bytes = bytes.load(Ordering::Relaxed);
    r.manifests = manifests.len();
    r.digest = Some(top.digest.to_string());
    progress.line(&format!(
        "pushed {}/{}:{} ({})",
        dest.registry,
        dest.name,
        dest.reference_str(),
        top.digest
    ));
    Ok(r)
}

/// Pulls `src` into the layout, naming it `tag` in `index.json`.
pub async fn pull(
    reg: Arc<Registry>,
    src: &ImageRef,
    layout: &Layout,
    tag: &str,
    progress: &Progress,
) -> Result<Report, ClientError> {
    let (bytes, mt, digest) = reg.get_manifest(&src.name, &src.reference_str()).await?;
    let top = Descriptor {
        media_type: mt.clone(),
        digest: digest.clone(),
        size: bytes.len() as u64,
    };
    let mut manifests = 0;
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(top.clone(), bytes, mt)];
    while let Some((d, body, mt)) = stack.pop() {
        let (ms, bs) = children(&mt, &body, &layout.dir)?;
        layout.write_blob(&d.digest, &body)?;
        manifests += 1;
        for m in ms {
            if seen.insert(m.digest.clone()) {
                let (b, mt, _) = reg.get_manifest(&src.name, &m.digest.to_string()).await?;
                let mt = if m.media_type.is_empty() {
                    mt
                } else {
                    m.media_type.clone()
                };
                stack.push((m, b, mt));
            }
        }
        for b in bs {
            if seen.insert(b.digest.clone()) {
                blobs.push(b);
            }
        }
    }
    let report = Arc::new(Mutex::new(Report::default()));
    let total = Arc::new(AtomicU64::new(0));
    {
        let (reg, report, total) = (reg.clone(), report.clone(), total.clone());
        let (repo, layout2, progress) = (src.name.clone(), layout.clone(), progress.clone());
        for_each_parallel(blobs, reg.options().parallel, move |b| {
            let (reg, report, total) = (reg.clone(), report.clone(), total.clone());
            let (repo, layout, progress) = (repo.clone(), layout2.clone(), progress.clone());
            async move {
                if layout.has_blob(&b.digest, b.size) {
                    if let Ok(mut r) = report.lock() {
                        r.skipped += 1;
                    }
                    return Ok(());
                }
                let bar = progress.bar(&short(&b.digest), b.size);
                let bar2 = bar.clone();
                let counter = total.clone();
                reg.download(&repo, &b, &layout.blob_path(&b.digest), &move |n| {
                    counter.fetch_add(n, Ordering::Relaxed);
                    if let Some(pb) = &bar2 {
                        pb.inc(n);
                    }
                })
                .await?;
                if let Some(pb) = bar {
                    pb.finish_and_clear();
                }
                progress.line(&format!("{}: pulled {} bytes", short(&b.digest), b.size));
                if let Ok(mut r) = report.lock() {
                    r.transferred += 1;
                }
                Ok(())
            }
        })
        .await?;
    }
    layout.add_ref(&top, tag)?;
    let mut locations = Locations::load();
    for d in &seen {
        locations.record(&src.registry, d, &src.name);
    }
    locations.save();
    let mut r = report.lock().map(|r| r.clone()).unwrap_or_default();
    r.bytes = total.load(Ordering::Relaxed);
    r.manifests = manifests;
    r.digest = Some(digest.to_string());
    progress.line(&format!(
        "pulled {}/{}:{} ({digest})",
        src.registry,
        src.name,
        src.reference_str()
    ));
    Ok(r)
}
