//! Pins: an image kept whole (its manifest, config, layer blobs and unpacked snapshots) by
//! an owner outside the image names, as the engine's containers keep their snapshots with
//! `chains.json`. A deployed function pins its image (`fn-NAME`), so `rmi` of another name,
//! a retag and `image prune` never take what its next cold start needs; a gateway pins the
//! image of each function it has instances of (`gw-…`) for as long as they may run.
//!
//! One file per owner, `<root>/pins/<owner>`, holding the manifest digest; written as
//! temp + fsync + rename + directory fsync under the gc lock held shared (a lease), so a
//! concurrent gc either sees the pin or ran before the image could be unnamed.

use super::ImageStore;
use crate::error::{invalid, io_err, Result};
use content::Digest;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

/// An owner names a file: `[a-z0-9._-]`, not starting with `.`, at most 128 bytes.
fn check_owner(owner: &str) -> Result<()> {
    let ok = !owner.is_empty()
        && owner.len() <= 128
        && !owner.starts_with('.')
        && owner
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            format!("pin owner {owner:?}"),
            "expected [a-z0-9._-]",
        ))
    }
}

impl ImageStore {
    fn pins_dir(&self) -> PathBuf {
        self.root.join("pins")
    }

    /// Pins the image `manifest` for `owner` (replacing what `owner` pinned before).
    pub fn pin(&self, owner: &str, manifest: &Digest) -> Result<()> {
        check_owner(owner)?;
        let _lease = self.lease()?;
        let dir = self.pins_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = dir.join(format!(".{owner}.tmp-{}", std::process::id()));
        let path = dir.join(owner);
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(manifest.to_string().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))
    }

    /// Drops `owner`'s pin (none is fine).
    pub fn unpin(&self, owner: &str) -> Result<()> {
        check_owner(owner)?;
        let path = self.pins_dir().join(owner);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Drops every pin whose owner starts with `prefix` (a gateway's pins left by a killed
    /// one). Returns how many.
    pub fn unpin_prefix(&self, prefix: &str) -> Result<usize> {
        let dir = self.pins_dir();
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && check_owner(&name).is_ok() {
                self.unpin(&name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The owners and the images they pin.
    pub fn pins(&self) -> Result<Vec<(String, Digest)>> {
        let dir = self.pins_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if check_owner(&name).is_err() {
                continue;
            }
            let p = e.path();
            let text = fs::read_to_string(&p).map_err(io_err(&p))?;
            let d: Digest = text
                .trim()
                .parse()
                .map_err(|e| invalid(p.display().to_string(), e))?;
            out.push((name, d));
        }
        out.sort();
        Ok(out)
    }

    /// Adds what the pinned images reach to gc's sets. A pinned image whose manifest is
    /// already gone keeps nothing (there is nothing left to keep).
    pub(super) fn pinned_reach(
        &self,
        blobs: &mut HashSet<Digest>,
        chains: &mut HashSet<Digest>,
    ) -> Result<()> {
        for (_, d) in self.pins()? {
            let Ok(img) = self.image(&d) else { continue };
            blobs.insert(img.manifest_digest.clone());
            blobs.insert(img.config_digest.clone());
            for l in img.layers()? {
                blobs.insert(l.digest);
            }
            chains.extend(img.chain_ids()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::tests::{tmpdir, Tar};
    use oci_spec::image::{Arch, ImageConfigurationBuilder, Os};

    #[test]
    fn a_pinned_image_survives_untag_and_gc_until_unpinned() {
        let t = tmpdir("pins");
        let s = ImageStore::open(t.join("root")).expect("open");
        let l = s
            .add_layer(&mut &Tar::default().file("a", b"1").finish()[..])
            .expect("layer");
        let cfg = ImageConfigurationBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()
            .expect("config");
        let d = s
            .commit_image(std::slice::from_ref(&l), cfg, &["x/img:1".into()])
            .expect("commit");
        let img = s.image(&d).expect("image");
        s.snapshots()
            .ensure(s.content(), &img.layers().expect("layers"))
            .expect("unpack");
        s.pin("fn-web", &d).expect("pin");
        assert!(s.pin("../x", &d).is_err());
        s.untag("x/img:1").expect("untag");
        let r = s.gc().expect("gc");
        assert!(r.blobs.is_empty() && r.snapshots.is_empty(), "{r:?}");
        assert_eq!(s.image(&d).expect("still there").manifest_digest, d);
        assert_eq!(
            s.pins().expect("pins"),
            vec![("fn-web".to_string(), d.clone())]
        );
        s.pin("gw-1-web", &d).expect("pin");
        assert_eq!(s.unpin_prefix("gw-").expect("unpin"), 1);
        s.unpin("fn-web").expect("unpin");
        s.unpin("fn-web").expect("unpin twice");
        let r = s.gc().expect("gc");
        assert_eq!(r.blobs.len(), 3, "manifest, config, layer: {r:?}");
        assert_eq!(r.snapshots.len(), 1, "{r:?}");
        let _ = fs::remove_dir_all(t);
    }
}
