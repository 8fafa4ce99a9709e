//! Snapshots: each layer unpacked once, keyed by its ChainID, shared by every image that
//! has it (the containerd overlay snapshotter's layout).
//!
//! `<dir>/<chainid hex>/fs` holds the diff of the top layer of that chain with whiteouts in
//! overlayfs form, so a container's rootfs is one overlay mount with the chain's `fs`
//! directories as lowerdirs and a fresh upper and work directory. A layer is unpacked into
//! `<dir>/tmp-<pid>-<n>/`, its diffID verified, and only then renamed to its ChainID: a crash
//! leaves no half snapshot, only a `tmp-` directory that [`Snapshots::gc`] removes. Where
//! overlayfs is unavailable (or `BERTH_SNAPSHOTTER=copy`), the lowers are merged by copying
//! into the container's own directory (`copy.rs`).

use crate::apply::{apply_layer, Caps, Whiteouts};
use crate::copy::merge_layer;
use crate::error::{invalid, io_err, Error, Result};
use crate::oci::{chain_ids, Layer};
use content::Digest;
use nix::mount::{MntFlags, MsFlags};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The snapshot directory of a store.
#[derive(Clone, Debug)]
pub struct Snapshots {
    dir: PathBuf,
    caps: Caps,
}

/// How a rootfs was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootfsKind {
    Overlay,
    Copy,
}

/// A container root filesystem prepared by [`Snapshots::prepare`].
#[derive(Debug)]
pub struct Rootfs {
    /// The directory to use as the bundle's root.
    pub path: PathBuf,
    /// Where the container's changes land (the overlay upper, or `path` for a copy).
    pub upper: PathBuf,
    pub kind: RootfsKind,
}

impl Rootfs {
    /// Unmounts an overlay rootfs (lazily if busy). A copy needs nothing.
    pub fn unmount(&self) -> Result<()> {
        if self.kind == RootfsKind::Overlay {
            nix::mount::umount2(&self.path, MntFlags::MNT_DETACH)
                .map_err(|e| io_err(&self.path)(e.into()))?;
        }
        Ok(())
    }
}

impl Snapshots {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Snapshots> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Snapshots {
            dir,
            caps: Caps::default(),
        })
    }

    /// The caps on unpacking (see [`Caps`]).
    pub fn with_caps(mut self, caps: Caps) -> Snapshots {
        self.caps = caps;
        self
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// The unpacked size recorded for a snapshot (0 for one unpacked before sizes were
    /// recorded).
    fn recorded_size(&self, chain: &Digest) -> u64 {
        fs::read_to_string(self.dir.join(chain.hex()).join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unpacked directory of the chain `chain_id` (whether or not it exists).
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex()).join("fs")
    }

    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.path(chain_id).is_dir()
    }

    /// Makes sure every layer of the stack is unpacked, unpacking only the missing ones from
    /// `content`; returns the `fs` directories bottom first. The caps hold for each layer
    /// and for the stack's total (layers unpacked earlier count at their recorded size);
    /// an error names the layer.
    pub fn ensure(&self, content: &content::Store, layers: &[Layer]) -> Result<Vec<PathBuf>> {
        self.ensure_tracked(content, layers, &mut Vec::new())
    }

    /// [`ensure`](Self::ensure), adding the chains of the snapshots it makes to `made`
    /// (also when it fails part way).
    pub fn ensure_tracked(
        &self,
        content: &content::Store,
        layers: &[Layer],
        made: &mut Vec<Digest>,
    ) -> Result<Vec<PathBuf>> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        let mut out = Vec::with_capacity(layers.len());
        let mut used = 0u64;
        for (layer, chain) in layers.iter().zip(&chains) {
            let room = self.caps.image.saturating_sub(used);
            // (A diffID mismatch names its layer already.)
            let wrap = |source: Error| match source {
                e @ Error::DiffId { .. } => e,
                source => Error::Layer {
                    layer: layer.digest.to_string(),
                    source: Box::new(source),
                },
            };
            if self.exists(chain) {
                used = used.saturating_add(self.recorded_size(chain));
            } else {
                let bytes = self.unpack(content, layer, chain, room).map_err(wrap)?;
                used = used.saturating_add(bytes);
                made.push(chain.clone());
            }
            if used > self.caps.image {
                return Err(wrap(invalid(
                    "image",
                    format!(
                        "its layers unpack to more than {} bytes (BERTH_MAX_IMAGE_SIZE)",
                        self.caps.image
                    ),
                )));
            }
            out.push(self.path(chain));
        }
        Ok(out)
    }

    /// Removes the snapshot of `chain` (one a failed load made).
    pub fn remove(&self, chain: &Digest) -> Result<()> {
        let p = self.dir.join(chain.hex());
        match fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Unpacks one layer into the snapshot `chain`; returns its unpacked size.
    fn unpack(
        &self,
        content: &content::Store,
        layer: &Layer,
        chain: &Digest,
        image_room: u64,
    ) -> Result<u64> {
        let tmp = self.dir.join(format!(
            "tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let fs_dir = tmp.join("fs");
        fs::create_dir_all(&fs_dir).map_err(io_err(&fs_dir))?;
        let result = (|| {
            let blob = content.open_blob(&layer.digest)?;
            let limits = self.caps.limits(image_room);
            let applied = apply_layer(blob, &fs_dir, Whiteouts::Overlay, &limits)?;
            if applied.diff_id != layer.diff_id {
                return Err(Error::DiffId {
                    layer: layer.digest.to_string(),
                    expected: layer.diff_id.to_string(),
                    actual: applied.diff_id.to_string(),
                });
            }
            let size = tmp.join("size");
            fs::write(&size, applied.bytes.to_string()).map_err(io_err(&size))?;
            // Flush the unpacked files before the rename publishes them (syncfs: only the
            // store's filesystem).
            let d = fs::File::open(&fs_dir).map_err(io_err(&fs_dir))?;
            nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d))
                .map_err(|e| io_err(&fs_dir)(e.into()))?;
            let dst = self.dir.join(chain.hex());
            match fs::rename(&tmp, &dst) {
                Ok(()) => Ok(applied.bytes),
                // Someone else unpacked the same chain meanwhile: theirs is as good.
                Err(_) if dst.join("fs").is_dir() => {
                    let _ = fs::remove_dir_all(&tmp);
                    Ok(applied.bytes)
                }
                Err(e) => Err(io_err(&dst)(e)),
            }
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Every unpacked chain.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let e = e.map_err(io_err(&self.dir))?;
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse() {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes snapshots not in `keep` and `tmp-` directories of dead processes; returns
    /// the removed chains.
    pub fn gc(&self, keep: &HashSet<Digest>) -> Result<Vec<Digest>> {
        let mut removed = Vec::new();
        for chain in self.list()? {
            if !keep.contains(&chain) {
                let p = self.dir.join(chain.hex());
                fs::remove_dir_all(&p).map_err(io_err(&p))?;
                removed.push(chain);
            }
        }
        for e in fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("tmp-") {
                let pid = rest.split('-').next().unwrap_or("");
                if !Path::new("/proc").join(pid).exists() || pid.is_empty() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(removed)
    }

    /// Prepares a writable rootfs for `layers` under `container_dir` (which gets `rootfs/`,
    /// `upper/` and `work/`): an overlay of the layers' snapshots, or a merged copy where
    /// overlayfs is unavailable or `BERTH_SNAPSHOTTER=copy`.
    pub fn prepare(
        &self,
        content: &content::Store,
        layers: &[Layer],
        container_dir: &Path,
    ) -> Result<Rootfs> {
        self.prepare_at(
            content,
            layers,
            container_dir,
            &container_dir.join("rootfs"),
        )
    }

    /// As [`prepare`](Self::prepare), but the overlay is mounted on `mountpoint` (an
    /// existing directory, e.g. one shared by processes that each have a private mount
    /// namespace); a copy still goes to `container_dir/rootfs`.
    pub fn prepare_at(
        &self,
        content: &content::Store,
        layers: &[Layer],
        container_dir: &Path,
        mountpoint: &Path,
    ) -> Result<Rootfs> {
        let mut lowers = self.ensure(content, layers)?;
        if lowers.is_empty() {
            // overlayfs needs one lower: an image without layers gets an empty one.
            let empty = self.dir.join("empty");
            fs::create_dir_all(&empty).map_err(io_err(&empty))?;
            lowers.push(empty);
        }
        let force_copy = std::env::var("BERTH_SNAPSHOTTER").is_ok_and(|v| v == "copy");
        if !force_copy {
            let upper = container_dir.join("upper");
            let work = container_dir.join("work");
            for d in [&upper, &work, &mountpoint.to_path_buf()] {
                fs::create_dir_all(d).map_err(io_err(d))?;
            }
            match mount_overlay(&lowers, &upper, &work, mountpoint) {
                Ok(()) => {
                    return Ok(Rootfs {
                        path: mountpoint.to_path_buf(),
                        upper,
                        kind: RootfsKind::Overlay,
                    })
                }
                Err(
                    nix::errno::Errno::ENODEV
                    | nix::errno::Errno::EPERM
                    | nix::errno::Errno::EINVAL,
                ) => {
                    let _ = fs::remove_dir_all(&upper);
                    let _ = fs::remove_dir_all(&work);
                }
                Err(e) => return Err(io_err(mountpoint)(e.into())),
            }
        }
        let target = container_dir.join("rootfs");
        fs::create_dir_all(&target).map_err(io_err(&target))?;
        for lower in &lowers {
            merge_layer(lower, &target)?;
        }
        Ok(Rootfs {
            path: target.clone(),
            upper: target,
            kind: RootfsKind::Copy,
        })
    }
}

/// `mount -t overlay overlay -o lowerdir=TOP:…:BOTTOM,upperdir=U,workdir=W TARGET`
/// (kernel `Documentation/filesystems/overlayfs.rst`: the first lowerdir is the top).
fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> nix::Result<()> {
    let mut opts = String::from("lowerdir=");
    for (i, l) in lowers.iter().rev().enumerate() {
        if i > 0 {
            opts.push(':');
        }
        opts.push_str(&l.to_string_lossy());
    }
    opts.push_str(&format!(
        ",upperdir={},workdir={}",
        upper.display(),
        work.display()
    ));
    if opts.len() >= 4000 {
        return Err(nix::errno::Errno::EINVAL);
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
}

/// Checks that a store path can appear in overlay mount options.
pub fn check_overlay_path(p: &Path) -> Result<()> {
    let s = p.to_string_lossy();
    if s.contains(',') || s.contains(':') {
        return Err(invalid(
            s.into_owned(),
            "store paths may not contain ',' or ':'",
        ));
    }
    Ok(())
}
