//! `berth build` end to end: a multi-stage Containerfile on a busybox-static base (FROM
//! scratch + COPY busybox), the layer cache step by step, whiteouts, reproducible digests,
//! SIGKILL in the middle of a build, errors with line numbers, hostile paths, and interop
//! with podman and buildah through `berth save`/`berth load`.

use berth_tests::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The static busybox of the busybox-static package.
const BUSYBOX: &str = "/bin/busybox";

const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// The multi-stage Containerfile of these tests (15 steps).
const CONTAINERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG GREETING=hello
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/tmp", "/etc"]
RUN ["/bin/busybox", "--install", "-s"]

FROM base AS build
ARG GREETING
WORKDIR /src
COPY msg.txt .
RUN echo "$GREETING from $(cat msg.txt)" > /out.txt && touch /tmp/gone \
 && mkdir /tmp/dir && touch /tmp/dir/a
RUN rm /tmp/gone && rm -r /tmp/dir

FROM base
COPY --from=build /out.txt /app/out.txt
COPY extra.txt /app/
ENV SUFFIX=done
CMD ["sh", "-c", "cat /app/out.txt /app/extra.txt; echo $SUFFIX; ls -A /tmp"]
"#;

/// What the image built from [`CONTAINERFILE`] prints.
const EXPECTED: &str = "hello from v1\nextra v1\ndone\n";

/// The `berth` binary under test (`target/debug/berth`).
fn berth_bin() -> PathBuf {
    let p = workspace_dir().join("target/debug/berth");
    assert!(
        p.is_file(),
        "berth not built: run `cargo build --workspace` first (looked for {})",
        p.display()
    );
    p
}

/// A store (`--root`, `--runroot`) of its own and a build context.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new(name: &str) -> Env {
        assert!(
            Path::new(BUSYBOX).is_file(),
            "{BUSYBOX} not found: install busybox-static"
        );
        let e = Env {
            dir: TempDir::new(&format!("build-{name}")),
        };
        let ctx = e.ctx();
        fs::create_dir_all(&ctx).expect("mkdir context");
        fs::copy(BUSYBOX, ctx.join("busybox")).expect("copy busybox");
        fs::write(ctx.join("Containerfile"), CONTAINERFILE).expect("write Containerfile");
        fs::write(ctx.join("msg.txt"), "v1").expect("write msg.txt");
        fs::write(ctx.join("extra.txt"), "extra v1\n").expect("write extra.txt");
        e
    }

    fn ctx(&self) -> PathBuf {
        self.dir.join("ctx")
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(args)
            .env("BERTH_RUNTIME", runtime_bin())
            // `berth run` goes through the engine: outside a namespace of the test's its
            // containers get no network, so the default bridge and berth's nftables table
            // are never made in the host's namespace (as tests/src/images.rs does).
            .env("BERTH_DEFAULT_NETWORK", "none");
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        capture(self.command(args), Capture::Pipes, BUILD_TIMEOUT)
    }

    /// `berth build -t NAME <extra> CTX`, which must succeed.
    fn build(&self, name: &str, extra: &[&str]) -> Build {
        self.build_env(name, extra, &[])
    }

    /// [`Env::build`] with environment variables.
    fn build_env(&self, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Build {
        let ctx = self.ctx().display().to_string();
        let mut args = vec!["build", "-t", name];
        args.extend_from_slice(extra);
        args.push(&ctx);
        let mut cmd = self.command(&args);
        cmd.envs(env.iter().copied());
        let out = capture(cmd, Capture::Pipes, BUILD_TIMEOUT);
        out.ok();
        Build::parse(out)
    }

    /// Every blob of the content store, each checked against its digest.
    fn verify_blobs(&self) -> usize {
        let dir = self.root().join("content/blobs/sha256");
        let mut n = 0;
        for e in fs::read_dir(&dir).expect("list blobs") {
            let e = e.expect("blob entry");
            let bytes = fs::read(e.path()).expect("read blob");
            let hex = format!("{:x}", Sha256::digest(&bytes));
            assert_eq!(
                hex,
                e.file_name().to_string_lossy(),
                "blob {} does not match its digest",
                e.path().display()
            );
            n += 1;
        }
        n
    }

    /// The names in the store's metadata.
    fn names(&self) -> Vec<String> {
        let p = self.root().join("images.json");
        let Ok(text) = fs::read_to_string(&p) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&text).expect("images.json is JSON");
        v["images"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The manifest of image `name` (from the store's files).
    fn manifest(&self, name: &str) -> serde_json::Value {
        let text = fs::read_to_string(self.root().join("images.json")).expect("images.json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let d = v["images"][name]["manifest"]
            .as_str()
            .unwrap_or_else(|| panic!("no image {name} in {v}"))
            .to_string();
        serde_json::from_slice(&fs::read(self.blob(&d)).expect("manifest blob")).expect("json")
    }

    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.root().join("content/blobs/sha256").join(hex)
    }

    /// Entry names of every layer of image `name`, layer by layer.
    fn layer_entries(&self, name: &str) -> Vec<Vec<String>> {
        let m = self.manifest(name);
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| {
                let f = fs::File::open(self.blob(l["digest"].as_str().expect("digest")))
                    .expect("open layer");
                tar::Archive::new(f)
                    .entries()
                    .expect("tar entries")
                    .map(|e| {
                        e.expect("entry")
                            .path()
                            .expect("path")
                            .display()
                            .to_string()
                    })
                    .collect()
            })
            .collect()
    }
}

/// A build's output: per step, whether it was CACHED (filesystem steps only), and the id.
#[derive(Debug)]
struct Build {
    out: Output,
    cached: BTreeMap<usize, bool>,
    id: String,
}

impl Build {
    fn parse(out: Output) -> Build {
        let mut cached = BTreeMap::new();
        let mut step = 0;
        for line in out.stdout.lines() {
            if let Some(rest) = line.strip_prefix("STEP ") {
                step = rest
                    .split('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad STEP line {line:?}"));
            } else if let Some(rest) = line.strip_prefix("--> ") {
                if step > 0 && !rest.contains(" layers)") {
                    cached.insert(step, rest.starts_with("CACHED"));
                }
            }
        }
        let id = out
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(id.starts_with("sha256:"), "no image id at the end:\n{out}");
        Build { out, cached, id }
    }

    /// The filesystem steps that were CACHED.
    fn cached_steps(&self) -> Vec<usize> {
        self.cached
            .iter()
            .filter(|(_, c)| **c)
            .map(|(n, _)| *n)
            .collect()
    }

    fn built_steps(&self) -> Vec<usize> {
        self.cached
            .iter()
            .filter(|(_, c)| !**c)
            .map(|(n, _)| *n)
            .collect()
    }
}

#[test]
fn cache_rebuilds_from_the_changed_step_only() {
    let e = Env::new("cache");
    let first = e.build("cache-test", &[]);
    assert_eq!(
        first.built_steps(),
        [2, 3, 4, 8, 9, 10, 12, 13],
        "{}",
        first.out
    );
    let again = e.build("cache-test", &[]);
    assert_eq!(
        again.cached_steps(),
        [2, 3, 4, 8, 9, 10, 12, 13],
        "{}",
        again.out
    );
    assert_eq!(again.id, first.id);
    // The last COPY's source changes: only that step runs again.
    fs::write(e.ctx().join("extra.txt"), "extra v2\n").expect("write");
    let b = e.build("cache-test", &[]);
    assert_eq!(b.cached_steps(), [2, 3, 4, 8, 9, 10, 12], "{}", b.out);
    assert_eq!(b.built_steps(), [13], "{}", b.out);
    assert_ne!(b.id, first.id);
    // A COPY in the middle: it and everything after it run again.
    fs::write(e.ctx().join("msg.txt"), "v2").expect("write");
    let b = e.build("cache-test", &[]);
    assert_eq!(b.cached_steps(), [2, 3, 4], "{}", b.out);
    assert_eq!(b.built_steps(), [8, 9, 10, 12, 13], "{}", b.out);
    // A build arg in scope of the RUN: from that RUN on.
    let b = e.build("cache-test", &["--build-arg", "GREETING=hi"]);
    assert_eq!(b.cached_steps(), [2, 3, 4, 8], "{}", b.out);
    // --no-cache runs everything.
    let b = e.build("cache-test", &["--no-cache"]);
    assert!(b.cached_steps().is_empty(), "{}", b.out);
}

#[test]
fn same_inputs_give_the_same_digests() {
    let a = Env::new("repro-a");
    let b = Env::new("repro-b");
    // Layers are reproducible as they are (sorted entries, fixed mtimes)…
    a.build("repro", &[]);
    b.build("repro", &[]);
    assert_eq!(
        a.manifest("repro:latest")["layers"],
        b.manifest("repro:latest")["layers"]
    );
    // …and with SOURCE_DATE_EPOCH the config (its `created` time) too: the same image id.
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let one = a.build_env("repro", &["--no-cache"], &epoch);
    let two = b.build_env("repro", &[], &epoch);
    assert_eq!(
        one.id, two.id,
        "image ids differ:\n{}\n{}",
        one.out, two.out
    );
    assert_eq!(a.manifest("repro:latest"), b.manifest("repro:latest"));
    let cfg = fs::read_to_string(a.blob(&one.id)).expect("config blob");
    assert!(
        cfg.contains("\"created\":\"2023-11-14T22:13:20Z\""),
        "{cfg}"
    );
}

/// Fails with a clear message when a peer tool is missing.
fn require(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            panic!("{tool} is not available: run scripts/install-deps.sh (apt-get install {tool})")
        }
    }
}

#[test]
fn multi_stage_build_runs() {
    let e = Env::new("run");
    let b = e.build("multi", &["-t", "multi:2", "--build-arg", "UNUSED=1"]);
    assert!(
        b.out.stdout.contains("build arg \"UNUSED\" is not used"),
        "{}",
        b.out
    );
    e.berth(&["run", "--rm", "multi"]).prints(EXPECTED);
    e.berth(&["run", "--rm", "multi:2"]).prints(EXPECTED);
    // The config carries what the Containerfile said.
    let m = e.manifest("multi:latest");
    let cfg: serde_json::Value = serde_json::from_slice(
        &fs::read(e.blob(m["config"]["digest"].as_str().expect("config digest"))).expect("config"),
    )
    .expect("json");
    assert_eq!(
        m["config"]["digest"],
        b.id.as_str(),
        "the image id is the config digest"
    );
    assert!(
        cfg["config"]["Env"]
            .as_array()
            .expect("Env")
            .contains(&"SUFFIX=done".into()),
        "{cfg}"
    );
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(5),
        "{cfg}"
    );
}

#[test]
fn whiteouts_of_run_rm_are_honoured() {
    let e = Env::new("whiteout");
    e.build("wh", &["--target", "build"]);
    // In the store that built it (snapshots from the overlay upper dirs)…
    e.berth(&["run", "--rm", "wh", "ls", "-A", "/tmp"])
        .prints("");
    // …and after a round trip through an archive (layers applied from their tars).
    let archive = e.dir.join("wh.tar");
    e.berth(&["save", "-o", &archive.display().to_string(), "wh"])
        .ok();
    let fresh = Env::new("whiteout-load");
    fresh
        .berth(&["load", "-i", &archive.display().to_string()])
        .ok();
    fresh
        .berth(&["run", "--rm", "wh", "ls", "-A", "/tmp"])
        .prints("");
    let layers = e.layer_entries("wh:latest");
    // Layers: busybox, mkdir, --install, COPY msg.txt, RUN echo, RUN rm.
    assert_eq!(layers.len(), 6, "{layers:?}");
    let rm = &layers[5];
    assert!(rm.contains(&"tmp/.wh.gone".to_string()), "{rm:?}");
    assert!(rm.contains(&"tmp/.wh.dir".to_string()), "{rm:?}");
    // Sorted entries, parents first.
    let mut sorted = rm.clone();
    sorted.sort();
    assert_eq!(&sorted, rm);
}

#[test]
fn podman_runs_what_berth_built() {
    require("podman");
    let e = Env::new("podman");
    e.build("localhost/berth-built:1", &[]);
    let archive = e.dir.join("img.tar");
    e.berth(&[
        "save",
        "-o",
        &archive.display().to_string(),
        "localhost/berth-built:1",
    ])
    .ok();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(e.dir.join("podman/root"))
            .arg("--runroot")
            .arg(e.dir.join("podman/run"))
            .arg("--tmpdir")
            .arg(e.dir.join("podman/tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(["--runtime", "runc"])
            .args(args);
        capture(c, Capture::Pipes, BUILD_TIMEOUT)
    };
    podman(&["load", "-i", &archive.display().to_string()]).ok();
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/berth-built:1",
    ]);
    out.prints(EXPECTED);
    podman(&["rmi", "--all", "--force"]);
}

#[test]
fn berth_runs_what_buildah_built() {
    require("buildah");
    let e = Env::new("buildah");
    let buildah = |args: &[&str]| {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(e.dir.join("buildah/root"))
            .arg("--runroot")
            .arg(e.dir.join("buildah/run"))
            .args(args);
        capture(c, Capture::Pipes, BUILD_TIMEOUT)
    };
    let ctx = e.ctx().display().to_string();
    buildah(&["bud", "--isolation", "chroot", "-t", "localhost/bh:1", &ctx]).ok();
    let archive = e.dir.join("bh.tar");
    buildah(&[
        "push",
        "localhost/bh:1",
        &format!("oci-archive:{}:localhost/bh:1", archive.display()),
    ])
    .ok();
    buildah(&["rmi", "--all", "--force"]);
    e.berth(&["load", "-i", &archive.display().to_string()])
        .ok();
    e.berth(&["run", "--rm", "localhost/bh:1"]).prints(EXPECTED);
    // And berth builds on it: FROM a loaded image (its layers as buildah stored them).
    fs::write(
        e.ctx().join("Containerfile"),
        "FROM localhost/bh:1\nRUN echo more >> /app/extra.txt\nUSER 65534\n",
    )
    .expect("write");
    e.build("on-top", &[]);
    let expected = EXPECTED.replace("extra v1\n", "extra v1\nmore\n");
    e.berth(&["run", "--rm", "on-top"]).prints(&expected);
    e.berth(&["run", "--rm", "on-top", "id", "-u"])
        .prints("65534\n");
}

#[test]
fn errors_name_the_line() {
    let e = Env::new("errors");
    let ctx = e.ctx().display().to_string();
    let cases: &[(&str, &[&str])] = &[
        (
            "FROM scratch\n\nCOPY missing.txt /x\n",
            &["line 3", "missing.txt"],
        ),
        (
            "FROM scratch\nADD https://example.com/x /x\n",
            &["line 2", "url"],
        ),
        ("FROM scratch\nFROBNICATE\n", &["line 2", "frobnicate"]),
        ("FROM scratch\nRUN [\"/nope\"]\n", &["line 2", "run"]),
        ("FROM no-such-image\n", &["line 1", "no-such-image"]),
        // `..` is clamped at the context: the parent's file is not found.
        ("FROM scratch\nCOPY ../root /x\n", &["line 2", "not found"]),
    ];
    for (cf, needles) in cases {
        fs::write(e.ctx().join("Containerfile"), cf).expect("write");
        e.berth(&["build", "-t", "bad", &ctx])
            .failed_mentioning(needles);
    }
    assert!(e.names().is_empty(), "a failed build named an image");
}

#[test]
fn copy_never_reads_outside_the_context() {
    let e = Env::new("escape");
    fs::write(e.dir.join("secret"), "secret").expect("write");
    std::os::unix::fs::symlink("../secret", e.ctx().join("link")).expect("symlink");
    std::os::unix::fs::symlink(e.dir.join("secret"), e.ctx().join("abs")).expect("symlink");
    let ctx = e.ctx().display().to_string();
    // A symlink that leads out of the context is named as such (it is not "not found").
    for (src, says) in [
        ("link", "leads outside the build context"),
        ("abs", "leads outside the build context"),
        ("../secret", "not found"),
    ] {
        fs::write(
            e.ctx().join("Containerfile"),
            format!("FROM scratch\nCOPY {src} /x\n"),
        )
        .expect("write");
        e.berth(&["build", "-t", "esc", &ctx])
            .failed_mentioning(&["line 2", says]);
    }
    // `COPY --from`: a symlink of the stage that leads out of its root, likewise.
    fs::create_dir_all(e.ctx().join("d")).expect("mkdir");
    std::os::unix::fs::symlink("../../../../nowhere/x", e.ctx().join("d/out")).expect("symlink");
    fs::write(
        e.ctx().join("Containerfile"),
        "FROM scratch AS a\nCOPY d /\nFROM scratch\nCOPY --from=a /out /x\n",
    )
    .expect("write");
    e.berth(&["build", "-t", "esc", &ctx]).failed_mentioning(&[
        "line 4",
        "\"out\"",
        "leads outside stage \"a\"",
    ]);
    assert!(e.names().is_empty(), "a failed build named an image");
}

#[test]
fn copy_of_a_fifo_is_refused_not_waited_on() {
    // A FIFO named as a COPY source would block the build forever if it were opened.
    let e = Env::new("fifo");
    nix::unistd::mkfifo(
        &e.ctx().join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    fs::write(
        e.ctx().join("Containerfile"),
        "FROM scratch\nCOPY pipe /x\n",
    )
    .expect("write");
    let ctx = e.ctx().display().to_string();
    e.berth(&["build", "-t", "fifo", &ctx])
        .failed_mentioning(&["line 2", "not a regular file"]);
}

#[test]
fn sigkill_mid_build_leaves_a_consistent_store() {
    let e = Env::new("sigkill");
    fs::write(
        e.ctx().join("Containerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /m\nRUN [\"/bin/busybox\", \"sleep\", \"30\"]\n",
    )
    .expect("write");
    let ctx = e.ctx().display().to_string();
    let log = e.dir.join("out.log");
    let mut cmd = e.command(&["build", "-t", "killed", &ctx]);
    cmd.stdout(fs::File::create(&log).expect("log"));
    let mut child = cmd.spawn().expect("spawn berth build");
    let started = poll(Duration::from_secs(60), || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        text.contains("STEP 4/4").then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL berth build");
    let _ = child.wait();
    assert!(started.is_some(), "the build never reached its RUN step");
    // The container of the RUN outlives berth; stop it so the test leaves nothing.
    let state = e.dir.join("run/build");
    for id in fs::read_dir(&state).into_iter().flatten().flatten() {
        let id = id.file_name().to_string_lossy().into_owned();
        let mut c = Command::new(runtime_bin());
        c.arg("--root").arg(&state).args(["delete", "--force", &id]);
        capture(c, Capture::Pipes, CMD_TIMEOUT);
    }
    assert!(e.verify_blobs() >= 2, "the finished COPY layers are stored");
    assert!(
        e.names().is_empty(),
        "a half image is listed: {:?}",
        e.names()
    );
    let root = e.root().display().to_string();
    assert!(
        !host_mounts()
            .iter()
            .any(|m| m.mount_point.starts_with(&root)),
        "a build mount leaked into the host"
    );
    // The next build reuses what was finished and completes.
    fs::write(
        e.ctx().join("Containerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /m\nRUN [\"/bin/busybox\", \"true\"]\n",
    )
    .expect("write");
    let b = e.build("killed", &[]);
    assert_eq!(b.cached_steps(), [2, 3], "{}", b.out);
    assert_eq!(e.names(), ["killed:latest"]);
    e.verify_blobs();
}

#[test]
fn add_archives_chown_globs_and_ignore_files() {
    let e = Env::new("add");
    let ctx = e.ctx();
    // An archive with a directory, a file, a symlink and a hostile `../../` entry.
    let script = r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
        i = tarfile.TarInfo(name); i.type = kind; i.linkname = link; i.size = len(data); i.mode = 0o644
        t.addfile(i, io.BytesIO(data))
    add("pkg", kind=tarfile.DIRTYPE)
    add("pkg/data.txt", b"from the archive\n")
    add("pkg/link", kind=tarfile.SYMTYPE, link="data.txt")
    add("../../escaped.txt", b"clamped\n")
"#;
    let mut py = Command::new("python3");
    py.args(["-c", script]).arg(ctx.join("a.tar.gz"));
    capture(py, Capture::Pipes, CMD_TIMEOUT).ok();
    fs::create_dir_all(ctx.join("conf")).expect("mkdir");
    fs::write(ctx.join("conf/a.conf"), "a\n").expect("write");
    fs::write(ctx.join("conf/b.conf"), "b\n").expect("write");
    fs::write(ctx.join("conf/secret.conf"), "secret\n").expect("write");
    fs::write(ctx.join(".containerignore"), "conf/secret.conf\n").expect("write");
    fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         ADD a.tar.gz /opt/\nCOPY --chown=65534:65534 --chmod=600 msg.txt /m\nCOPY conf/*.conf /etc/app/\n\
         RUN mkdir -m 1777 /tmp\nCOPY conf /tmp/\n",
    )
    .expect("write");
    e.build("add", &[]);
    let run = |script: &str| e.berth(&["run", "--rm", "add", "sh", "-c", script]);
    run("cat /opt/pkg/data.txt /opt/pkg/link /opt/escaped.txt")
        .prints("from the archive\nfrom the archive\nclamped\n");
    run("stat -c '%u:%g %a' /m").prints("65534:65534 600\n");
    run("ls /etc/app").prints("a.conf\nb.conf\n");
    // A directory's contents go into an existing directory, which keeps its mode.
    run("stat -c %a /tmp; ls /tmp").prints("1777\na.conf\nb.conf\n");
    assert!(!e.dir.join("escaped.txt").exists() && !e.root().join("escaped.txt").exists());
}

#[test]
fn run_sees_env_workdir_user_and_no_network() {
    let e = Env::new("runenv");
    fs::write(
        e.ctx().join("Containerfile"),
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -m 1777 /tmp && mkdir /w && chown 65534:65534 /w
ARG COLOR=blue
ENV FOO=bar
WORKDIR /w
USER 65534:65534
RUN echo "$FOO $COLOR $(pwd) $(id -u):$(id -g)" > /tmp/seen && ls /sys/class/net > /tmp/net
"#,
    )
    .expect("write");
    e.build("runenv", &["--build-arg", "COLOR=red"]);
    e.berth(&["run", "--rm", "runenv", "cat", "/tmp/seen", "/tmp/net"])
        .prints("bar red /w 65534:65534\nlo\n");
    // The build arg is not part of the image's environment.
    e.berth(&["run", "--rm", "runenv", "sh", "-c", "echo ${COLOR:-unset}"])
        .prints("unset\n");
}

#[test]
fn dockerfile_name_and_stdin() {
    let e = Env::new("names");
    fs::remove_file(e.ctx().join("Containerfile")).expect("rm");
    fs::write(
        e.ctx().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"echo\", \"from a Dockerfile\"]\n",
    )
    .expect("write");
    e.build("df", &[]);
    e.berth(&["run", "--rm", "df"])
        .prints("from a Dockerfile\n");
    // `-f -`: the Containerfile comes from stdin.
    let ctx = e.ctx().display().to_string();
    let mut cmd = e.command(&["build", "-q", "-t", "stdin", "-f", "-", &ctx]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn berth build");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"echo\", \"from stdin\"]\n")
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("berth build");
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout);
    assert!(
        id.trim().starts_with("sha256:") && id.lines().count() == 1,
        "{id:?}"
    );
    e.berth(&["run", "--rm", "stdin"]).prints("from stdin\n");
}

/// Issue 10, item 5: RUN steps run under no_new_privs and the default seccomp profile
/// (no keyrings, no user namespaces, clone3 → ENOSYS), as `berth run` does.
#[test]
fn run_steps_are_confined() {
    let e = Env::new("confined");
    syscall_probe(&e.ctx());
    fs::write(
        e.ctx().join("Containerfile"),
        r#"FROM scratch
COPY busybox /bin/busybox
COPY probe /probe
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status > /status && /probe > /probe.out
"#,
    )
    .expect("write");
    e.build("confined", &[]);
    let out = e.berth(&["run", "--rm", "confined", "cat", "/status", "/probe.out"]);
    out.ok();
    for want in [
        "NoNewPrivs:\t1\n",
        "Seccomp:\t2\n",
        "add_key=errno1\n",
        "keyctl=errno1\n",
        "clone3=errno38\n",
        "unshare_user=errno1\n",
    ] {
        assert!(out.stdout.contains(want), "{want:?} missing:\n{out}");
    }
    // A step that needs what the profile forbids fails the build, naming the step.
    fs::write(
        e.ctx().join("Containerfile"),
        "FROM confined\nRUN unshare -r true\n",
    )
    .expect("write");
    let ctx = e.ctx().display().to_string();
    let out = e.berth(&["build", "-t", "nope", &ctx]);
    assert!(!out.success(), "unshare -r succeeded in a RUN step:\n{out}");
    assert!(out.stderr.contains("unshare"), "{out}");
}
