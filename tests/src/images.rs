//! Helpers for the image tests: a private berth store, tarballs and OCI layouts built by
//! hand (so hostile and malformed inputs can be expressed), blob verification.

use crate::{build_rootfs, capture, runtime_bin, workspace_dir, Capture, Output, TempDir};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long one berth command may take.
pub const BERTH_TIMEOUT: Duration = Duration::from_secs(120);

/// `target/debug/berth`.
pub fn berth_bin() -> PathBuf {
    let p = workspace_dir().join("target/debug/berth");
    if !p.is_file() {
        panic!(
            "berth not built: run `cargo build --workspace` first (looked for {})",
            p.display()
        );
    }
    p
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A berth store of its own (`--root`, `--runroot`) in a temporary directory.
#[derive(Debug)]
pub struct Store {
    pub dir: TempDir,
    /// When set, every berth command runs inside this network namespace (the engine's
    /// containers join networks: their bridge and nftables table live there, never on the
    /// host's network).
    pub netns: Option<crate::net::NetNs>,
}

impl Store {
    pub fn new(name: &str) -> Store {
        Store {
            dir: TempDir::new(&format!("images-{name}")),
            netns: None,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// A `berth --root … --runroot …` command using the runtime under test.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = ns.command(&[]);
                c.arg(berth_bin());
                c
            }
            None => Command::new(berth_bin()),
        };
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.dir.join("run"));
        c.env("BERTH_RUNTIME", runtime_bin());
        if self.netns.is_none() {
            // Outside a namespace of the test's, containers get no network: the default
            // bridge and berth's nftables table are never made in the host's namespace.
            c.env("BERTH_DEFAULT_NETWORK", "none");
        }
        c.args(args);
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        capture(self.command(args), Capture::Pipes, BERTH_TIMEOUT)
    }

    /// Imports a busybox rootfs (with `/etc/motd` = `hello from busybox`) as `name`.
    pub fn import_busybox(&self, name: &str) {
        let tar = busybox_tarball(&self.dir);
        self.berth(&["import", "--cmd", "sh", &tar.to_string_lossy(), name])
            .ok();
    }

    /// Every committed blob file of the store.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            if let Ok(rd) = fs::read_dir(self.root().join("content/blobs").join(alg)) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out
    }

    /// Asserts that every blob's content hashes to its name.
    pub fn assert_blobs_verify(&self) {
        for p in self.blob_files() {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let alg = p
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            assert_eq!(
                alg.as_deref(),
                Some("sha256"),
                "unexpected blob {}",
                p.display()
            );
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            assert_eq!(
                sha256(&bytes),
                format!("sha256:{name}"),
                "blob {} does not verify",
                p.display()
            );
        }
    }

    /// Names listed by `berth images --format json`.
    pub fn image_names(&self) -> Vec<String> {
        let o = self.berth(&["images", "--format", "json"]);
        o.ok();
        let v: Value =
            serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("images json: {e}\n{o}"));
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["Names"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect()
    }

    /// Unpacked snapshots and leftover temporary unpack directories.
    pub fn snapshot_dirs(&self) -> Vec<String> {
        fs::read_dir(self.root().join("snapshots"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A tarball of a busybox rootfs (plus `/etc/motd`) in `dir`; returns its path.
pub fn busybox_tarball(dir: &TempDir) -> PathBuf {
    let rootfs = dir.join("busybox-rootfs");
    if !rootfs.exists() {
        build_rootfs(&rootfs);
        fs::write(rootfs.join("etc/motd"), "hello from busybox\n").expect("write motd");
    }
    let tar = dir.join("busybox.tar");
    if !tar.exists() {
        let mut cmd = Command::new("tar");
        cmd.arg("-C")
            .arg(&rootfs)
            .arg("--numeric-owner")
            .arg("-cf")
            .arg(&tar)
            .arg(".");
        capture(cmd, Capture::Pipes, BERTH_TIMEOUT).ok();
    }
    tar
}

/// A tar stream built entry by entry, names written raw (tar writers refuse hostile ones).
#[derive(Default)]
pub struct RawTar {
    out: Vec<u8>,
}

impl RawTar {
    pub fn entry(&mut self, name: &str, kind: u8, link: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8], off: usize, len: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = len - 1);
            h[off..off + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 1_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
        self
    }
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, b'0', "", data, 0o644)
    }
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, b'5', "", b"", 0o755)
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, b'2', target, b"", 0o777)
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, b'1', target, b"", 0o644)
    }
    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.out);
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

/// gzip of `bytes` (via the `gzip` tool).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is needed (apt-get install gzip)");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("gzip");
    writer.join().expect("writer").expect("write to gzip");
    out.stdout
}

/// Writes an OCI image layout at `dir` holding one image `name` whose layers are
/// `layers` (each a tar, gzip'd or not: `(blob, uncompressed)`), with `cmd`.
pub fn write_oci_layout(
    dir: &Path,
    name: &str,
    layers: &[(Vec<u8>, Vec<u8>)],
    cmd: &[&str],
) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let put = |bytes: &[u8]| -> String {
        let d = sha256(bytes);
        fs::write(blobs.join(&d[7..]), bytes).expect("write blob");
        d
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, raw) in layers {
        let gz = blob != raw;
        let mt = if gz {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        };
        descs.push(json!({"mediaType": mt, "digest": put(blob), "size": blob.len()}));
        diff_ids.push(sha256(raw));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config");
    let cd = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .expect("manifest");
    let md = put(&manifest);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": name}}]});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("index.json");
    md
}

/// `tar -C dir -cf out .`
pub fn tar_dir(dir: &Path, out: &Path) {
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(dir).arg("-cf").arg(out).arg(".");
    capture(cmd, Capture::Pipes, BERTH_TIMEOUT).ok();
}

/// Assertions on output that [`Output::prints`] (exact) is too strict for.
pub trait OutputExt {
    /// Panics unless stdout contains `needle` (whatever the exit status).
    fn says(&self, needle: &str) -> &Self;
}

impl OutputExt for Output {
    #[track_caller]
    fn says(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout does not contain {needle:?}:\n{self}"
        );
        self
    }
}
