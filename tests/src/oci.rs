//! Support for the registry suites: OCI image layouts written from memory (deterministic
//! tar layers), `berth registry serve` and Debian's `docker-registry` on ephemeral
//! loopback ports, and small HTTP helpers.

use crate::{workspace_dir, TempDir};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A ustar archive of regular files (mtime 0, uid 0), byte-for-byte reproducible.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar name {name} too long for this writer");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let mut field = |off: usize, len: usize, v: String| {
            h[off..off + v.len()].copy_from_slice(v.as_bytes());
            let _ = len;
        };
        field(100, 8, format!("{:07o}\0", 0o755));
        field(108, 8, format!("{:07o}\0", 0));
        field(116, 8, format!("{:07o}\0", 0));
        field(124, 12, format!("{:011o}\0", data.len()));
        field(136, 12, format!("{:011o}\0", 0));
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let cs = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(cs.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// `gzip -n` of `data` (reproducible: no name, no time stamp).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-n", "-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gzip");
    let mut stdin = child.stdin.take().expect("gzip stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().expect("gzip writer").expect("write to gzip");
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// Pseudo-random bytes from a seed (xorshift), so layers do not compress or collide.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What [`write_layout`] wrote.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<(String, Vec<u8>)>,
}

impl Image {
    /// Builds an image in memory from uncompressed tar layers (stored gzipped, as
    /// registries and skopeo expect).
    pub fn new(layers: Vec<Vec<u8>>, label: &str) -> Image {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        let layers: Vec<Vec<u8>> = layers.iter().map(|l| gzip(l)).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Labels": {"berth.test": label}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("config json");
        let config_digest = sha256(&config);
        let layers: Vec<(String, Vec<u8>)> = layers.into_iter().map(|l| (sha256(&l), l)).collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layers.iter().map(|(d, l)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d,
                "size": l.len(),
            })).collect::<Vec<Value>>(),
        }))
        .expect("manifest json");
        Image {
            manifest_digest: sha256(&manifest),
            manifest,
            config,
            config_digest,
            layers,
        }
    }

    /// Writes the image as an OCI image layout at `dir` (created), tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).expect("mkdir layout");
        let put = |d: &str, b: &[u8]| {
            fs::write(blobs.join(d.trim_start_matches("sha256:")), b).expect("write blob")
        };
        put(&self.manifest_digest, &self.manifest);
        put(&self.config_digest, &self.config);
        for (d, l) in &self.layers {
            put(d, l);
        }
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": self.manifest_digest,
                "size": self.manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    }
}

/// A busybox-static root filesystem as one tar layer (for images podman can run).
pub fn busybox_layer() -> Vec<u8> {
    let bb = fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    tar(&[("bin/busybox", &bb), ("bin/sh", &bb)])
}

/// `target/debug/berth`.
pub fn berth_bin() -> PathBuf {
    let p = workspace_dir().join("target/debug/berth");
    assert!(
        p.is_file(),
        "berth not built: run `cargo build --workspace` ({})",
        p.display()
    );
    p
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `berth registry serve` on an ephemeral port with its own storage; killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    pub root: PathBuf,
    _dir: Option<TempDir>,
}

impl Registry {
    /// Starts a registry with a fresh root and extra flags.
    pub fn start(extra: &[&str]) -> Registry {
        let dir = TempDir::new("registry");
        let root = dir.join("root");
        let mut r = Registry::start_at(&root, extra);
        r._dir = Some(dir);
        r
    }

    /// Starts a registry on an existing root (to test restarts).
    pub fn start_at(root: &Path, extra: &[&str]) -> Registry {
        let mut cmd = Command::new(berth_bin());
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn berth registry serve");
        let stdout = child.stdout.take().expect("stdout pipe");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("berth registry serve did not start: {line:?}"))
            .to_string();
        Registry {
            child,
            addr,
            root: root.to_path_buf(),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The counters of `GET /metrics`.
    pub fn metrics(&self) -> HashMap<String, u64> {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .and_then(|r| r.text())
            .expect("GET /metrics");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `docker-registry` (distribution 2.8) with a temporary config and storage on
/// an ephemeral loopback port; killed on drop. Never the system service.
pub struct DockerRegistry {
    child: Child,
    pub addr: String,
    _dir: TempDir,
}

impl DockerRegistry {
    pub fn start() -> DockerRegistry {
        DockerRegistry::start_with(None)
    }

    /// With `htpasswd`: distribution's basic auth over that bcrypt file.
    pub fn start_with(htpasswd: Option<&Path>) -> DockerRegistry {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.is_file(),
            "docker-registry missing: apt-get install docker-registry"
        );
        let dir = TempDir::new("docker-registry");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        let cfg = match htpasswd {
            Some(p) => format!(
                "{cfg}auth:\n  htpasswd:\n    realm: peer\n    path: {}\n",
                p.display()
            ),
            None => cfg,
        };
        fs::write(dir.join("config.yml"), cfg).expect("write config");
        let child = Command::new(bin)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let r = DockerRegistry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(&r.addr).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {}", r.addr);
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP/1.1 request (the path is sent verbatim, unlike URL libraries that
/// normalise `..`) and returns (status, body).
pub fn raw_request(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The `errors[0].code` of an error body.
pub fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/code")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("<no error code in {body:?}>"))
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a program is on PATH.
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails the test with an install hint when `prog` is missing.
pub fn need(prog: &str) {
    assert!(
        have(prog),
        "{prog} is not installed: run scripts/install-deps.sh (apt-get install {prog})"
    );
}

/// `skopeo --insecure-policy`.
pub fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.args(["--insecure-policy"]);
    c
}

/// Every blob file of an OCI layout: (file name, sha256 of its bytes, size).
pub fn layout_blobs(dir: &Path) -> Vec<(String, String, usize)> {
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

/// `berth` with its auth file and blob-location cache in `home`.
pub fn berth(home: &Path) -> Command {
    let mut c = Command::new(berth_bin());
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("BERTH_AUTH_FILE")
        .env("BERTH_LOG", "warn");
    c
}

/// An image of three layers (3 MiB, 2 MiB, 64 KiB of noise).
pub fn three_layer_image(seed: u64) -> Image {
    Image::new(
        vec![
            tar(&[("a", &noise(seed, 3 << 20))]),
            tar(&[("b", &noise(seed + 1, 2 << 20))]),
            tar(&[("c", &noise(seed + 2, 64 << 10))]),
        ],
        "client",
    )
}
