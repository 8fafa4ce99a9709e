//! The registry against real peers: skopeo and podman as clients of `berth registry
//! serve`, and (in the client tests) Debian's docker-registry as the server.

use berth_tests::oci::{
    berth_bin, busybox_layer, have, noise, run_ok, sha256, tar, DockerRegistry, Image, Registry,
};
use berth_tests::TempDir;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// `berth` with its auth file and blob-location cache in `home`.
fn berth(home: &Path) -> Command {
    let mut c = Command::new(berth_bin());
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("BERTH_AUTH_FILE")
        .env("BERTH_LOG", "warn");
    c
}

fn three_layer_image(seed: u64) -> Image {
    Image::new(
        vec![
            tar(&[("a", &noise(seed, 3 << 20))]),
            tar(&[("b", &noise(seed + 1, 2 << 20))]),
            tar(&[("c", &noise(seed + 2, 64 << 10))]),
        ],
        "client",
    )
}

#[test]
fn berth_push_and_pull_against_docker_registry() {
    let peer = DockerRegistry::start();
    let tmp = TempDir::new("client-peer");
    let img = three_layer_image(100);
    img.write_layout(&tmp.join("src"), "v1");
    let home = tmp.join("home");
    let src = format!("{}:v1", tmp.join("src").display());
    let out = run_ok(berth(&home).args([
        "push",
        "--tls-verify=false",
        "--chunk-size",
        "1048576",
        "--layout",
        &src,
        &format!("{}/team/app:v1", peer.addr),
    ]));
    assert!(out.starts_with("4 blobs sent"), "first push: {out}");
    assert!(out.contains(&img.manifest_digest), "{out}");
    // Again: every blob is already there.
    let out = run_ok(berth(&home).args([
        "push",
        "--tls-verify=false",
        "--layout",
        &src,
        &format!("{}/team/app:v1", peer.addr),
    ]));
    assert!(
        out.starts_with("0 blobs sent (0 bytes), 4 already there"),
        "second push: {out}"
    );
    // To another repository: mounted, not sent.
    let out = run_ok(berth(&home).args([
        "push",
        "--tls-verify=false",
        "--layout",
        &src,
        &format!("{}/other/app:v1", peer.addr),
    ]));
    assert!(
        out.starts_with("0 blobs sent (0 bytes), 0 already there, 4 mounted"),
        "cross-repo push: {out}"
    );
    // Pull back: byte-identical blobs, the same manifest digest.
    let back = tmp.join("back");
    let out = run_ok(
        berth(&home)
            .args([
                "pull",
                "--tls-verify=false",
                &format!("{}/other/app:v1", peer.addr),
                "--layout",
            ])
            .arg(&back),
    );
    assert!(out.contains(&img.manifest_digest), "pull: {out}");
    assert_eq!(
        layout_blobs(&tmp.join("src")),
        layout_blobs(&back),
        "pulled blobs differ"
    );
    // skopeo reads what berth pulled.
    run_ok(
        skopeo()
            .args(["inspect"])
            .arg(format!("oci:{}:v1", back.display())),
    );
}

#[test]
fn berth_login_push_pull_with_bearer_tokens() {
    let tmp = TempDir::new("client-auth");
    let pw = tmp.join("htpasswd");
    run_ok(
        Command::new("htpasswd")
            .arg("-cbB")
            .arg(&pw)
            .args(["alice", "wonderland"]),
    );
    let reg = Registry::start(&[
        "--htpasswd",
        &pw.to_string_lossy(),
        "--token-realm",
        "/token",
    ]);
    let home = tmp.join("home");
    let img = three_layer_image(200);
    img.write_layout(&tmp.join("src"), "v1");
    let src = format!("{}:v1", tmp.join("src").display());
    let dest = format!("{}/alice/app:v1", reg.addr);
    // Without credentials the push is refused.
    let out = berth(&home)
        .args(["push", "--tls-verify=false", "--layout", &src, &dest])
        .output()
        .expect("spawn berth");
    assert!(!out.status.success(), "push without credentials succeeded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A wrong password does not log in.
    let out = berth(&home)
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "nope",
            &reg.addr,
        ])
        .output()
        .expect("spawn berth");
    assert!(
        !out.status.success(),
        "login with a wrong password succeeded"
    );
    let mut login = berth(&home);
    login.args([
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "--password-stdin",
        &reg.addr,
    ]);
    login
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = login.spawn().expect("spawn berth login");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"wonderland\n").expect("write password");
    }
    assert!(
        child.wait().expect("wait login").success(),
        "berth login failed"
    );
    let auth = home.join(".config/berth/auth.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&auth).expect("auth.json").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "auth.json mode");
    let text = fs::read_to_string(&auth).expect("read auth.json");
    assert!(
        text.contains("\"auths\"") && text.contains(&reg.addr),
        "{text}"
    );
    let out = run_ok(berth(&home).args(["push", "--tls-verify=false", "--layout", &src, &dest]));
    assert!(out.starts_with("4 blobs sent"), "{out}");
    let back = tmp.join("back");
    run_ok(
        berth(&home)
            .args(["pull", "--tls-verify=false", &dest, "--layout"])
            .arg(&back),
    );
    assert_eq!(layout_blobs(&tmp.join("src")), layout_blobs(&back));
    run_ok(berth(&home).args(["logout", &reg.addr]));
    let out = berth(&home)
        .args(["pull", "--tls-verify=false", &dest, "--layout"])
        .arg(tmp.join("again"))
        .output()
        .expect("spawn berth");
    assert!(
        !out.status.success(),
        "pull of a private repository after logout succeeded"
    );
}

/// A loopback TCP proxy that cuts the first connection carrying more than `cut_after`
/// request bytes, to drop an upload mid-chunk.
struct CuttingProxy {
    addr: String,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    fn start(upstream: String, cut_after: usize) -> CuttingProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = l.local_addr().expect("proxy addr").to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let cuts2 = cuts.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(client) = conn else { break };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    break;
                };
                let cuts = cuts2.clone();
                let (mut c_r, mut s_w) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (mut s_r, mut c_w) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_r, &mut c_w);
                    let _ = c_w.shutdown(Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut total = 0;
                    loop {
                        let n = match c_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        total += n;
                        if total > cut_after && cuts.load(Ordering::SeqCst) == 0 {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            let _ = s_w.write_all(&buf[..n / 2]);
                            let _ = s_w.shutdown(Shutdown::Both);
                            let _ = c_r.shutdown(Shutdown::Both);
                            break;
                        }
                        if s_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_w.shutdown(Shutdown::Write);
                });
            }
        });
        CuttingProxy { addr, cuts }
    }
}

#[test]
fn chunked_upload_resumes_after_a_dropped_connection() {
    let reg = Registry::start(&[]);
    let proxy = CuttingProxy::start(reg.addr.clone(), 2_500_000);
    let tmp = TempDir::new("client-resume");
    let img = Image::new(vec![tar(&[("big", &noise(300, 6 << 20))])], "resume");
    img.write_layout(&tmp.join("src"), "v1");
    let out = run_ok(berth(&tmp.join("home")).args([
        "push",
        "--tls-verify=false",
        "--parallel",
        "1",
        "--chunk-size",
        "1048576",
        "--layout",
        &format!("{}:v1", tmp.join("src").display()),
        &format!("{}/resume/app:v1", proxy.addr),
    ]));
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy never cut the upload"
    );
    assert!(out.contains(&img.manifest_digest), "{out}");
    let total: usize = img.layers.iter().map(|(_, l)| l.len()).sum::<usize>() + img.config.len();
    let received = reg.metrics()["berth_registry_blob_bytes_received_total"] as usize;
    // Resumed, not restarted: at most one chunk is sent twice.
    assert!(
        received >= total && received < total + (1 << 20) + 65536,
        "server received {received} blob bytes for {total}: the upload restarted instead of resuming"
    );
    let back = tmp.join("back");
    run_ok(
        berth(&tmp.join("home"))
            .args([
                "pull",
                "--tls-verify=false",
                &format!("{}/resume/app:v1", reg.addr),
                "--layout",
            ])
            .arg(&back),
    );
    assert_eq!(layout_blobs(&tmp.join("src")), layout_blobs(&back));
}

#[test]
fn build_push_pull_and_run_an_image() {
    need("umoci");
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("build-run");
    let img = format!("{}:v1", tmp.join("img").display());
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(tmp.join("img")),
    );
    run_ok(Command::new("umoci").args(["new", "--image", &img]));
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &img])
            .arg(tmp.join("build")),
    );
    let rootfs = tmp.join("build/rootfs");
    fs::create_dir_all(rootfs.join("bin")).expect("mkdir bin");
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox (busybox-static)");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).expect("symlink sh");
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image", &img])
            .arg(tmp.join("build")),
    );
    run_ok(Command::new("umoci").args([
        "config",
        "--image",
        &img,
        "--config.cmd",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "echo hello from the registry",
    ]));
    let home = tmp.join("home");
    let dest = format!("{}/demo/hello:v1", reg.addr);
    run_ok(berth(&home).args(["push", "--tls-verify=false", "--layout", &img, &dest]));
    let pulled = tmp.join("pulled");
    run_ok(
        berth(&home)
            .args(["pull", "--tls-verify=false", &dest, "--layout"])
            .arg(&pulled),
    );
    let bundle = tmp.join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:v1", pulled.display())])
            .arg(&bundle),
    );
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(&cfg_path).expect("read config.json"))
            .expect("config.json");
    cfg["process"]["terminal"] = serde_json::Value::Bool(false);
    fs::write(&cfg_path, cfg.to_string()).expect("write config.json");
    let out = run_ok(
        Command::new(berth_tests::runtime_bin())
            .arg("--root")
            .arg(tmp.join("state"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(berth_tests::unique_id("regrun")),
    );
    assert_eq!(out, "hello from the registry\n");
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

#[test]
fn berth_login_and_push_with_basic_auth_to_docker_registry() {
    let tmp = TempDir::new("client-basic");
    let pw = tmp.join("htpasswd");
    run_ok(
        Command::new("htpasswd")
            .arg("-cbB")
            .arg(&pw)
            .args(["carol", "secret"]),
    );
    let peer = DockerRegistry::start_with(Some(&pw));
    let home = tmp.join("home");
    let img = three_layer_image(700);
    img.write_layout(&tmp.join("src"), "v1");
    let src = format!("{}:v1", tmp.join("src").display());
    let dest = format!("{}/carol/app:v1", peer.addr);
    let out = berth(&home)
        .args(["push", "--tls-verify=false", "--layout", &src, &dest])
        .output()
        .expect("spawn berth");
    assert!(
        !out.status.success(),
        "push to an auth-protected peer without login succeeded"
    );
    run_ok(berth(&home).args([
        "login",
        "--tls-verify=false",
        "-u",
        "carol",
        "-p",
        "secret",
        &peer.addr,
    ]));
    let out = run_ok(berth(&home).args(["push", "--tls-verify=false", "--layout", &src, &dest]));
    assert!(out.starts_with("4 blobs sent"), "{out}");
    let back = tmp.join("back");
    run_ok(
        berth(&home)
            .args(["pull", "--tls-verify=false", &dest, "--layout"])
            .arg(&back),
    );
    assert_eq!(layout_blobs(&tmp.join("src")), layout_blobs(&back));
}

#[test]
fn berth_push_and_pull_a_multi_platform_index() {
    let reg = Registry::start(&[]);
    let tmp = TempDir::new("client-index");
    let amd = Image::new(vec![tar(&[("arch", b"amd64\n")])], "amd64");
    let arm = Image::new(vec![tar(&[("arch", b"arm64\n")])], "arm64");
    let src = tmp.join("src");
    amd.write_layout(&src, "amd");
    arm.write_layout(&src, "arm");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.manifest_digest, "size": amd.manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.manifest_digest, "size": arm.manifest.len(), "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }))
    .expect("index json");
    let index_digest = sha256(&index);
    fs::write(src.join("blobs/sha256").join(&index_digest[7..]), &index).expect("write index blob");
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index_digest, "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }]});
    fs::write(src.join("index.json"), top.to_string()).expect("write index.json");
    let home = tmp.join("home");
    let dest = format!("{}/multi/app:v1", reg.addr);
    let out = run_ok(berth(&home).args([
        "push",
        "--tls-verify=false",
        "--layout",
        &format!("{}:multi", src.display()),
        &dest,
    ]));
    assert!(
        out.contains("3 manifests") && out.contains(&index_digest),
        "{out}"
    );
    let back = tmp.join("back");
    let out = run_ok(
        berth(&home)
            .args(["pull", "--tls-verify=false", &dest, "--layout"])
            .arg(&back),
    );
    assert!(
        out.contains("3 manifests") && out.contains(&index_digest),
        "{out}"
    );
    assert_eq!(
        layout_blobs(&src),
        layout_blobs(&back),
        "pulled index differs"
    );
    // The registry serves the index with its media type.
    let r = reqwest::blocking::Client::new()
        .get(reg.url("/v2/multi/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .expect("GET index");
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/vnd.oci.image.index.v1+json")
    );
}
