//! berth's registry client (`berth push`, `pull`, `login`, `logout`) against Debian's
//! docker-registry (distribution 2.8) and against `berth registry serve`: only missing
//! blobs move, cross-repository mounts, basic and bearer auth, a resumed upload after a
//! cut connection, a multi-platform index, and an image built, pushed, pulled and run.

use berth_tests::oci::*;
use berth_tests::TempDir;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Which way a [`CuttingProxy`] counts and cuts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Request bytes (an upload).
    Upload,
    /// Response bytes (a download).
    Download,
}

/// A loopback TCP proxy that cuts the first connection carrying more than `cut_after`
/// bytes in one direction, to drop a transfer midway.
struct CuttingProxy {
    addr: String,
    cuts: Arc<AtomicUsize>,
}

/// Copies `from` to `to`; with `cut`, stops after `cut_after` bytes (once per proxy),
/// passing on only half of the last read, and shuts both connections.
fn pipe(mut from: TcpStream, mut to: TcpStream, cut: Option<(usize, Arc<AtomicUsize>)>) {
    let mut buf = [0u8; 16384];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n;
        if let Some((after, cuts)) = &cut {
            if total > *after && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = to.write_all(&buf[..n / 2]);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl CuttingProxy {
    fn start(upstream: String, cut_after: usize, dir: Cut) -> CuttingProxy {
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
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let cut = Some((cut_after, cuts2.clone()));
                let (up_cut, down_cut) = match dir {
                    Cut::Upload => (cut, None),
                    Cut::Download => (None, cut),
                };
                std::thread::spawn(move || pipe(client, server, up_cut));
                std::thread::spawn(move || pipe(s2, c2, down_cut));
            }
        });
        CuttingProxy { addr, cuts }
    }

    fn cut_count(&self) -> usize {
        self.cuts.load(Ordering::SeqCst).min(1)
    }
}

#[test]
fn chunked_upload_resumes_after_a_dropped_connection() {
    let reg = Registry::start(&[]);
    let proxy = CuttingProxy::start(reg.addr.clone(), 2_500_000, Cut::Upload);
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
    assert_eq!(proxy.cut_count(), 1, "the proxy never cut the upload");
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

#[test]
fn download_resumes_after_a_dropped_connection() {
    let reg = Registry::start(&[]);
    let proxy = CuttingProxy::start(reg.addr.clone(), 3_000_000, Cut::Download);
    let tmp = TempDir::new("client-resume-pull");
    let img = Image::new(vec![tar(&[("big", &noise(310, 6 << 20))])], "resume-pull");
    img.write_layout(&tmp.join("src"), "v1");
    let home = tmp.join("home");
    run_ok(berth(&home).args([
        "push",
        "--tls-verify=false",
        "--layout",
        &format!("{}:v1", tmp.join("src").display()),
        &format!("{}/resume/pull:v1", reg.addr),
    ]));
    let back = tmp.join("back");
    let out = run_ok(
        berth(&home)
            .args([
                "pull",
                "--tls-verify=false",
                &format!("{}/resume/pull:v1", proxy.addr),
                "--layout",
            ])
            .arg(&back),
    );
    assert_eq!(proxy.cut_count(), 1, "the proxy never cut the download");
    assert!(out.contains(&img.manifest_digest), "{out}");
    assert_eq!(
        layout_blobs(&tmp.join("src")),
        layout_blobs(&back),
        "resumed download differs"
    );
}

/// Uploads a blob to docker-registry (POST, then PUT with the bytes).
fn peer_upload(c: &reqwest::blocking::Client, addr: &str, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = c
        .post(format!("http://{addr}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST upload");
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("upload location")
        .to_string();
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("http://{addr}{loc}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{url}{sep}digest={d}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .expect("PUT upload");
    assert_eq!(r.status().as_u16(), 201, "upload to docker-registry");
    d
}

#[test]
fn pull_refuses_a_blob_longer_than_its_descriptor() {
    // berth's server refuses such a manifest (MANIFEST_INVALID); distribution stores it.
    let peer = DockerRegistry::start();
    let c = reqwest::blocking::Client::new();
    let cfg = b"{}".to_vec();
    let layer = noise(800, 300_000);
    let cd = peer_upload(&c, &peer.addr, "lying/app", &cfg);
    let ld = peer_upload(&c, &peer.addr, "lying/app", &layer);
    // The manifest claims the layer is 1000 bytes; the registry serves 300,000.
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": 1000}],
    }))
    .expect("manifest json");
    let r = c
        .put(format!("http://{}/v2/lying/app/manifests/v1", peer.addr))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send()
        .expect("PUT manifest");
    assert_eq!(
        r.status().as_u16(),
        201,
        "docker-registry took the manifest"
    );
    let tmp = TempDir::new("client-lying");
    let back = tmp.join("back");
    let out = berth(&tmp.join("home"))
        .args([
            "pull",
            "--tls-verify=false",
            &format!("{}/lying/app:v1", peer.addr),
            "--layout",
        ])
        .arg(&back)
        .output()
        .expect("spawn berth");
    assert!(!out.status.success(), "pull of an oversized blob succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sent more than 1000 bytes"), "{err}");
    let leftovers: Vec<_> = fs::read_dir(back.join("blobs/sha256"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".partial")),
        "partial download left behind: {leftovers:?}"
    );
}

/// berth's main job end to end: an image of the store is pushed to `berth registry serve`
/// on loopback, removed, pulled back into the store and run; pushing it again sends no
/// blob.
#[test]
fn store_image_push_rmi_pull_run() {
    let reg = Registry::start(&[]);
    let s = berth_tests::images::Store::new("pushpull");
    let home = s.dir.join("home");
    std::fs::create_dir_all(&home).expect("mkdir home");
    s.import_busybox("busybox");
    let dest = format!("{}/demo/busybox:v1", reg.addr);
    let berth = |args: &[&str]| {
        let mut c = s.command(args);
        c.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("BERTH_LOG", "warn");
        berth_tests::capture(
            c,
            berth_tests::Capture::Pipes,
            std::time::Duration::from_secs(120),
        )
    };
    berth(&["push", "--tls-verify=false", "busybox", &dest]).ok();
    berth(&["rmi", "busybox"]).ok();
    assert!(
        !berth(&["images"]).ok().stdout.contains("busybox"),
        "busybox still listed after rmi"
    );
    let pulled = berth(&["pull", "--tls-verify=false", &dest]);
    pulled.ok();
    assert!(
        pulled.stdout.contains(&format!("Pulled image: {dest}")),
        "{pulled}"
    );
    berth(&["run", "--rm", &dest, "cat", "/etc/motd"])
        .ok()
        .prints("hello from busybox\n");
    let again = berth(&["push", "--tls-verify=false", &dest]);
    again.ok();
    assert!(
        again.stdout.starts_with("0 blobs sent (0 bytes)"),
        "{again}"
    );
    // The store has every blob: a second pull fetches none, and leaves no temp files.
    let again = berth(&["pull", "--tls-verify=false", &dest]);
    again.ok();
    assert!(
        again.stdout.starts_with("0 blobs received (0 bytes)"),
        "{again}"
    );
    s.assert_blobs_verify();
}

/// A loopback proxy that drops the connection of the first `PATCH` request before any of
/// it reaches the registry, so the upload session holds 0 bytes when the client asks.
struct DropFirstPatch {
    addr: String,
    dropped: Arc<AtomicUsize>,
}

impl DropFirstPatch {
    fn start(upstream: String) -> DropFirstPatch {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = l.local_addr().expect("proxy addr").to_string();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d2 = dropped.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut client) = conn else { break };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    break;
                };
                let (c2, mut s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let d3 = d2.clone();
                std::thread::spawn(move || {
                    let mut server = server;
                    let mut buf = [0u8; 16384];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if buf[..n].starts_with(b"PATCH ") && d3.fetch_add(1, Ordering::SeqCst) == 0
                        {
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            return;
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let mut c2 = c2;
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Write);
                });
            }
        });
        DropFirstPatch { addr, dropped }
    }
}

#[test]
fn chunked_upload_resumes_from_an_empty_upload() {
    let reg = Registry::start(&[]);
    let proxy = DropFirstPatch::start(reg.addr.clone());
    let tmp = TempDir::new("client-empty-resume");
    let img = Image::new(vec![tar(&[("big", &noise(310, 3 << 20))])], "empty-resume");
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
        &format!("{}/empty/app:v1", proxy.addr),
    ]));
    assert!(
        proxy.dropped.load(Ordering::SeqCst) >= 1,
        "the proxy never dropped a PATCH"
    );
    assert!(out.contains(&img.manifest_digest), "{out}");
    let back = tmp.join("back");
    run_ok(
        berth(&tmp.join("home"))
            .args([
                "pull",
                "--tls-verify=false",
                &format!("{}/empty/app:v1", reg.addr),
                "--layout",
            ])
            .arg(&back),
    );
    assert_eq!(layout_blobs(&tmp.join("src")), layout_blobs(&back));
}
