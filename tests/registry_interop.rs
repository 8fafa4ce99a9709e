//! The registry against real peers: skopeo and podman as clients of `berth registry
//! serve`, and (in the client tests) Debian's docker-registry as the server.

use berth_tests::oci::{busybox_layer, have, noise, run_ok, sha256, tar, Image, Registry};
use berth_tests::TempDir;
use std::fs;
use std::path::Path;
use std::process::Command;

fn need(prog: &str) {
    assert!(
        have(prog),
        "{prog} is not installed: run scripts/install-deps.sh (apt-get install {prog})"
    );
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.args(["--insecure-policy"]);
    c
}

/// Every blob file of an OCI layout: (file name, sha256 of its bytes, size).
fn layout_blobs(dir: &Path) -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = fs::read_dir(dir.join("blobs/sha256"))
        .expect("layout blobs")
        .map(|e| {
            let e = e.expect("dir entry");
            let b = fs::read(e.path()).expect("read blob");
            (
                e.file_name().to_string_lossy().into_owned(),
                sha256(&b),
                b.len(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn skopeo_push_then_pull_is_byte_identical() {
    need("skopeo");
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("skopeo");
    let img = Image::new(
        vec![busybox_layer(), tar(&[("etc/motd", b"hello from berth\n")])],
        "skopeo",
    );
    img.write_layout(&tmp.join("src"), "v1");
    let dest = format!("docker://{}/interop/busybox:v1", reg.addr);
    // Every blob is stored under its own digest.
    run_ok(
        skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", tmp.join("src").display()))
            .arg(&dest),
    );
    run_ok(
        skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(&dest)
            .arg(format!("oci:{}:v1", tmp.join("back").display())),
    );
    assert_eq!(
        layout_blobs(&tmp.join("src")),
        layout_blobs(&tmp.join("back")),
        "the pulled layout's blobs differ from the pushed ones"
    );
    let inspect = run_ok(
        skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(&dest),
    );
    assert_eq!(
        inspect.as_bytes(),
        img.manifest.as_slice(),
        "manifest bytes changed on the way"
    );
}

#[test]
fn dedupe_only_new_layer_config_and_manifest_cross_the_wire() {
    need("skopeo");
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("dedupe");
    let base = tar(&[("data/base", &noise(1, 3 << 20))]);
    let mid = tar(&[("data/mid", &noise(2, 2 << 20))]);
    let v1 = Image::new(
        vec![
            base.clone(),
            mid.clone(),
            tar(&[("data/top", &noise(3, 1 << 20))]),
        ],
        "v1",
    );
    let v2 = Image::new(
        vec![base, mid, tar(&[("data/top", &noise(4, 1 << 20))])],
        "v2",
    );
    v1.write_layout(&tmp.join("v1"), "v1");
    v2.write_layout(&tmp.join("v2"), "v2");
    let push = |dir: &str, tag: &str| {
        run_ok(
            skopeo()
                .args(["copy", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:{tag}", tmp.join(dir).display()))
                .arg(format!("docker://{}/dedupe/app:{tag}", reg.addr)),
        );
    };
    push("v1", "v1");
    let before = reg.metrics()["berth_registry_bytes_received_total"];
    let v1_total: usize =
        v1.layers.iter().map(|(_, l)| l.len()).sum::<usize>() + v1.config.len() + v1.manifest.len();
    assert_eq!(
        before as usize, v1_total,
        "the first push should send every byte once"
    );
    push("v2", "v2");
    let after = reg.metrics()["berth_registry_bytes_received_total"];
    let expected = v2.layers[2].1.len() + v2.config.len() + v2.manifest.len();
    assert_eq!(
        (after - before) as usize,
        expected,
        "v2 should send only its new top layer ({} B), config ({} B) and manifest ({} B)",
        v2.layers[2].1.len(),
        v2.config.len(),
        v2.manifest.len()
    );
}

#[test]
fn podman_pull_and_push() {
    need("podman");
    need("skopeo");
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("podman");
    let img = Image::new(vec![busybox_layer()], "podman");
    img.write_layout(&tmp.join("src"), "v1");
    let src = format!("{}/interop/podman-src:v1", reg.addr);
    run_ok(
        skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", tmp.join("src").display()))
            .arg(format!("docker://{src}")),
    );
    let storage = tmp.join("storage");
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"));
        c.args(["--storage-driver", "vfs"]);
        c
    };
    run_ok(podman().args(["pull", "--tls-verify=false", &src]));
    let dst = format!("{}/interop/podman-dst:v2", reg.addr);
    run_ok(podman().args(["tag", &src, &dst]));
    run_ok(podman().args(["push", "--tls-verify=false", &dst]));
    run_ok(podman().args(["rmi", "-a", "-f"]));
    run_ok(podman().args(["pull", "--tls-verify=false", &dst]));
    let id = run_ok(podman().args(["images", "-q", &dst]));
    assert!(
        !id.trim().is_empty(),
        "podman did not list {dst} after pulling it back"
    );
    // The layer podman pushed is the one skopeo pushed (same diff id), stored once.
    let tags = reqwest::blocking::get(format!(
        "http://{}/v2/interop/podman-dst/tags/list",
        reg.addr
    ))
    .and_then(|r| r.text())
    .expect("tags list");
    assert!(tags.contains("\"v2\""), "tags of podman-dst: {tags}");
    let _ = podman().args(["rmi", "-a", "-f"]).output();
}
