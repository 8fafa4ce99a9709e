//! The registry against real peers: skopeo and podman as clients of `berth registry
//! serve` (push, pull, byte-identical round trips, dedupe by bytes on the wire, token auth,
//! GC while pushes continue).

use berth_tests::oci::*;
use berth_tests::TempDir;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

#[test]
fn skopeo_with_bearer_tokens_and_private_namespaces() {
    need("skopeo");
    let tmp = TempDir::new("skopeo-auth");
    let pw = tmp.join("htpasswd");
    run_ok(
        Command::new("htpasswd")
            .arg("-cbB")
            .arg(&pw)
            .args(["alice", "wonderland"]),
    );
    run_ok(
        Command::new("htpasswd")
            .arg("-bB")
            .arg(&pw)
            .args(["bob", "builder"]),
    );
    let reg = Registry::start(&[
        "--htpasswd",
        &pw.to_string_lossy(),
        "--token-realm",
        "/token",
    ]);
    let img = Image::new(vec![tar(&[("f", b"private\n")])], "auth");
    img.write_layout(&tmp.join("src"), "v1");
    let src = format!("oci:{}:v1", tmp.join("src").display());
    let dest = format!("docker://{}/alice/secret:v1", reg.addr);
    // No credentials: refused.
    let out = skopeo()
        .args(["copy", "--dest-tls-verify=false", &src, &dest])
        .output()
        .expect("spawn skopeo");
    assert!(!out.status.success(), "anonymous push succeeded");
    // alice pushes through the token flow and reads it back.
    run_ok(skopeo().args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wonderland",
        &src,
        &dest,
    ]));
    let raw = run_ok(skopeo().args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wonderland",
        &dest,
    ]));
    assert_eq!(raw.as_bytes(), img.manifest.as_slice());
    // bob cannot read alice's namespace.
    let out = skopeo()
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "bob:builder",
            &dest,
        ])
        .output()
        .expect("spawn skopeo");
    assert!(!out.status.success(), "bob read alice/secret");
}

#[test]
fn gc_while_pushes_continue_loses_nothing() {
    need("skopeo");
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("gc-live");
    let images: Vec<Image> = (0..4)
        .map(|i| {
            Image::new(
                vec![
                    tar(&[("d", &noise(500 + i, 512 << 10))]),
                    tar(&[("e", &noise(600 + i, 64 << 10))]),
                ],
                "gc",
            )
        })
        .collect();
    for (i, img) in images.iter().enumerate() {
        img.write_layout(&tmp.join(format!("src{i}")), "v1");
    }
    let stop = Arc::new(AtomicUsize::new(0));
    let gc_runs = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        let (stop2, runs2, root) = (stop.clone(), gc_runs.clone(), reg.root.clone());
        s.spawn(move || {
            while stop2.load(Ordering::SeqCst) == 0 {
                run_ok(
                    Command::new(berth_bin())
                        .args(["registry", "gc", "--grace-seconds", "120", "--root"])
                        .arg(&root),
                );
                runs2.fetch_add(1, Ordering::SeqCst);
            }
        });
        for (i, _) in images.iter().enumerate() {
            run_ok(
                skopeo()
                    .args(["copy", "--dest-tls-verify=false"])
                    .arg(format!("oci:{}:v1", tmp.join(format!("src{i}")).display()))
                    .arg(format!("docker://{}/gc/app{i}:v1", reg.addr)),
            );
        }
        stop.store(1, Ordering::SeqCst);
    });
    assert!(
        gc_runs.load(Ordering::SeqCst) > 0,
        "gc never ran during the pushes"
    );
    // A last GC after the pushes: everything is referenced, nothing goes.
    let out = run_ok(
        Command::new(berth_bin())
            .args(["registry", "gc", "--grace-seconds", "0", "--root"])
            .arg(&reg.root),
    );
    assert!(
        out.contains("deleted 0 blobs"),
        "gc after the pushes: {out}"
    );
    for i in 0..images.len() {
        let back = tmp.join(format!("back{i}"));
        run_ok(
            skopeo()
                .args(["copy", "--src-tls-verify=false"])
                .arg(format!("docker://{}/gc/app{i}:v1", reg.addr))
                .arg(format!("oci:{}:v1", back.display())),
        );
        assert_eq!(
            layout_blobs(&tmp.join(format!("src{i}"))),
            layout_blobs(&back),
            "image {i} damaged by gc"
        );
    }
}
