//! The image store against a real directory (as root: overlay mounts, owners).

use super::*;
use crate::apply::tests::{tmpdir, Tar};
use crate::snapshot::RootfsKind;
use oci_spec::image::{Arch, ImageConfigurationBuilder, Os};

fn config() -> ImageConfiguration {
    ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .build()
        .expect("config")
}

fn store(name: &str) -> (PathBuf, ImageStore) {
    let t = tmpdir(name);
    let s = ImageStore::open(t.join("root")).expect("open");
    (t, s)
}

#[test]
fn names_normalize() {
    assert_eq!(
        normalize_name("busybox").ok().as_deref(),
        Some("busybox:latest")
    );
    assert_eq!(
        normalize_name("localhost:5000/a/b:1.0").ok().as_deref(),
        Some("localhost:5000/a/b:1.0")
    );
    for bad in ["", "UPPER", "../x", "a b", "a:", "/abs"] {
        assert!(
            matches!(normalize_name(bad), Err(Error::InvalidName(_))),
            "{bad}"
        );
    }
}

#[test]
fn commit_resolve_tag_untag_gc() {
    let (t, s) = store("commit");
    let l1 = s
        .add_layer(&mut &Tar::default().file("a", b"1").finish()[..])
        .expect("layer");
    let l2 = s
        .add_layer(&mut &Tar::default().file("b", b"2").finish()[..])
        .expect("layer");
    let d = s
        .commit_image(&[l1.clone(), l2.clone()], config(), &["x/img:1".into()])
        .expect("commit");
    let img = s.resolve("x/img:1").expect("resolve");
    assert_eq!(img.manifest_digest, d);
    assert_eq!(img.layers().expect("layers"), vec![l1.clone(), l2.clone()]);
    assert_eq!(s.resolve(&img.id()[..8]).expect("by id").manifest_digest, d);
    assert_eq!(
        s.resolve(&d.to_string())
            .expect("by digest")
            .manifest_digest,
        d
    );
    s.tag("x/img:1", "other").expect("tag");
    assert_eq!(s.lookup("other:latest").ok(), Some(d.clone()));
    assert_eq!(
        s.untag("other").expect("untag"),
        vec!["other:latest".to_string()]
    );
    assert!(
        s.gc().expect("gc").blobs.is_empty(),
        "a named image lost blobs"
    );
    assert_eq!(
        s.untag(img.id()).expect("untag by id"),
        vec!["x/img:1".to_string()]
    );
    let r = s.gc().expect("gc");
    assert_eq!(
        r.blobs.len(),
        4,
        "manifest, config and two layers: {:?}",
        r.blobs
    );
    assert!(matches!(s.resolve("x/img:1"), Err(Error::NotFound(_))));
    let _ = fs::remove_dir_all(t);
}

#[test]
fn rootfs_overlay_and_copy_share_snapshots() {
    let (t, s) = store("rootfs");
    let l1 = s
        .add_layer(
            &mut &Tar::default()
                .dir("d")
                .file("d/old", b"1")
                .file("f", b"1")
                .finish()[..],
        )
        .expect("l1");
    let l2 = s
        .add_layer(
            &mut &Tar::default()
                .file(".wh.f", b"")
                .dir("d")
                .file("d/.wh..wh..opq", b"")
                .file("d/new", b"2")
                .finish()[..],
        )
        .expect("l2");
    let layers = [l1, l2];
    for (i, copy) in [false, true].into_iter().enumerate() {
        if copy {
            std::env::set_var("BERTH_SNAPSHOTTER", "copy");
        }
        let dir = s.root().join(format!("containers/c{i}"));
        let r = s.prepare_rootfs(&layers, &dir).expect("prepare");
        std::env::remove_var("BERTH_SNAPSHOTTER");
        assert_eq!(
            r.kind,
            if copy {
                RootfsKind::Copy
            } else {
                RootfsKind::Overlay
            }
        );
        assert!(!r.path.join("f").exists());
        assert!(!r.path.join("d/old").exists());
        assert_eq!(fs::read(r.path.join("d/new")).expect("new"), b"2");
        fs::write(r.path.join("written"), b"w").expect("write");
        assert!(r.upper.join("written").exists());
        r.unmount().expect("unmount");
    }
    assert_eq!(s.snapshots().list().expect("list").len(), 2);
    // Snapshots used by a container directory survive gc even with no image.
    assert_eq!(s.gc().expect("gc").snapshots.len(), 0);
    fs::remove_dir_all(s.root().join("containers/c0")).expect("rm");
    fs::remove_dir_all(s.root().join("containers/c1")).expect("rm");
    assert_eq!(s.gc().expect("gc").snapshots.len(), 2);
    let _ = fs::remove_dir_all(t);
}
