//! Images with real peers: podman/buildah-made images loaded and run by berth, berth's
//! saved images loaded and run by podman, berth's OCI layout accepted by skopeo and umoci.
//! podman runs with the runtime under test, cgroupfs and explicit ulimits (see podman.rs).

use berth_tests::images::*;
use berth_tests::*;
use std::process::Command;
use std::time::Duration;

const PODMAN_TIMEOUT: Duration = Duration::from_secs(180);
const ULIMITS: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn need(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("{tool} is not available: install it (apt-get install {tool})"),
    }
}

/// podman with private storage in `dir`.
fn podman(dir: &TempDir, args: &[&str]) -> Output {
    need("podman");
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(dir.join("proot"))
        .arg("--runroot")
        .arg(dir.join("prun"))
        .arg("--tmpdir")
        .arg(dir.join("ptmp"))
        .arg("--runtime")
        .arg(runtime_bin())
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
        .args(args);
    capture(cmd, Capture::Pipes, PODMAN_TIMEOUT)
}

struct PodmanCleanup<'a>(&'a TempDir);
impl Drop for PodmanCleanup<'_> {
    fn drop(&mut self) {
        let d = self.0;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            podman(d, &["rm", "--all", "--force"])
        }));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            podman(d, &["system", "reset", "--force"])
        }));
    }
}

#[test]
fn podman_built_image_runs_under_berth() {
    let s = Store::new("from-podman");
    let _c = PodmanCleanup(&s.dir);
    let tar = busybox_tarball(&s.dir);
    podman(
        &s.dir,
        &["import", &tar.to_string_lossy(), "localhost/bbase:1"],
    )
    .ok();
    let ctx = s.dir.join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::write(ctx.join("msg"), "built by podman\n").expect("write");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/bbase:1\nCOPY msg /msg\nRUN rm /etc/motd && mkdir /work\nWORKDIR /work\nENV GREETING=hi\nCMD [\"sh\", \"-c\", \"cat /msg; echo $GREETING $(pwd); test -e /etc/motd || echo motd-removed\"]\n",
    )
    .expect("write");
    let mut build = vec![
        "build",
        "--isolation",
        "oci",
        "--network",
        "none",
        "-t",
        "localhost/pbuilt:1",
    ];
    build.extend_from_slice(ULIMITS);
    build.push(ctx.to_str().expect("utf-8 path"));
    podman(&s.dir, &build).ok();
    for fmt in ["oci-archive", "docker-archive"] {
        let out = s.dir.join(format!("p-{fmt}.tar"));
        podman(
            &s.dir,
            &[
                "save",
                "--format",
                fmt,
                "-o",
                &out.to_string_lossy(),
                "localhost/pbuilt:1",
            ],
        )
        .ok();
        let b = Store::new("from-podman-load");
        b.berth(&["load", "-i", &out.to_string_lossy()])
            .ok()
            .says("localhost/pbuilt:1");
        b.berth(&["run", "--rm", "pbuilt:1"])
            .ok()
            .says("built by podman\nhi /work\nmotd-removed");
        b.assert_blobs_verify();
    }
}

#[test]
fn berth_saved_image_runs_under_podman() {
    let s = Store::new("to-podman");
    let _c = PodmanCleanup(&s.dir);
    s.import_busybox("localhost/bexport:1");
    for (fmt, name) in [
        ("oci-archive", "localhost/bexport:1"),
        ("docker-archive", "localhost/bexport:1"),
    ] {
        let out = s.dir.join(format!("b-{fmt}.tar"));
        s.berth(&[
            "save",
            "--format",
            fmt,
            "-o",
            &out.to_string_lossy(),
            "bexport:1",
        ])
        .ok();
        podman(&s.dir, &["load", "-i", &out.to_string_lossy()])
            .ok()
            .says(name);
        // No network: podman would make its bridge in the host's namespace.
        let mut run = vec!["run", "--rm", "--network", "none"];
        run.extend_from_slice(ULIMITS);
        run.extend_from_slice(&[name, "cat", "/etc/motd"]);
        podman(&s.dir, &run).ok().says("hello from busybox");
        podman(&s.dir, &["rmi", name]).ok();
    }
}

#[test]
fn exported_layout_accepted_by_skopeo_and_umoci() {
    need("skopeo");
    let s = Store::new("layout");
    s.import_busybox("localhost/lay:1");
    let out = s.dir.join("lay.tar");
    s.berth(&["save", "-o", &out.to_string_lossy(), "lay:1"])
        .ok();
    let mut c = Command::new("skopeo");
    c.args(["inspect", &format!("oci-archive:{}", out.display())]);
    capture(c, Capture::Pipes, PODMAN_TIMEOUT)
        .ok()
        .says("\"Architecture\": \"amd64\"");
    let dir = s.dir.join("layout");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut x = Command::new("tar");
    x.arg("-C").arg(&dir).arg("-xf").arg(&out);
    capture(x, Capture::Pipes, PODMAN_TIMEOUT).ok();
    let mut c = Command::new("skopeo");
    c.args(["inspect", &format!("oci:{}:localhost/lay:1", dir.display())]);
    capture(c, Capture::Pipes, PODMAN_TIMEOUT)
        .ok()
        .says("\"Os\": \"linux\"");
    match Command::new("umoci").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("umoci is not available: install it (apt-get install umoci)"),
    }
    let mut u = Command::new("umoci");
    u.args([
        "stat",
        "--image",
        &format!("{}:localhost/lay:1", dir.display()),
    ]);
    capture(u, Capture::Pipes, PODMAN_TIMEOUT)
        .ok()
        .says("berth import");
    // The docker-archive too.
    let dout = s.dir.join("lay-docker.tar");
    s.berth(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        &dout.to_string_lossy(),
        "lay:1",
    ])
    .ok();
    let mut c = Command::new("skopeo");
    c.args(["inspect", &format!("docker-archive:{}", dout.display())]);
    capture(c, Capture::Pipes, PODMAN_TIMEOUT)
        .ok()
        .says("\"Os\": \"linux\"");
    // And berth loads the layout directory back.
    let b = Store::new("layout-back");
    b.berth(&["load", "-i", &dir.to_string_lossy()]).ok();
    b.berth(&["run", "--rm", "lay:1", "cat", "/etc/motd"])
        .ok()
        .says("hello from busybox");
}

/// `buildah from scratch` + `copy` + `config` + `commit`, pushed as an oci-archive and as
/// a docker-archive: berth loads and runs both.
#[test]
fn buildah_scratch_image_runs_under_berth() {
    need("buildah");
    let s = Store::new("from-buildah");
    let rootfs = s.dir.join("rootfs");
    build_rootfs(&rootfs);
    std::fs::write(rootfs.join("etc/motd"), "made by buildah\n").expect("write");
    let buildah = |args: &[&str]| {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(s.dir.join("broot"))
            .arg("--runroot")
            .arg(s.dir.join("brun"))
            .args(args);
        capture(c, Capture::Pipes, PODMAN_TIMEOUT)
    };
    let ctr = buildah(&["from", "scratch"]);
    ctr.ok();
    let ctr = ctr.stdout.trim().to_string();
    buildah(&["copy", &ctr, &rootfs.to_string_lossy(), "/"]).ok();
    buildah(&[
        "config",
        "--cmd",
        "cat /etc/motd",
        "--env",
        "FROM=buildah",
        &ctr,
    ])
    .ok();
    buildah(&["commit", "-q", &ctr, "localhost/bscratch:1"]).ok();
    for fmt in ["oci-archive", "docker-archive"] {
        let out = s.dir.join(format!("{fmt}.tar"));
        buildah(&[
            "push",
            "localhost/bscratch:1",
            &format!("{fmt}:{}:localhost/bscratch:1", out.display()),
        ])
        .ok();
        let b = Store::new("from-buildah-load");
        b.berth(&["load", "-i", &out.to_string_lossy()])
            .ok()
            .says("localhost/bscratch:1");
        b.berth(&["run", "--rm", "bscratch:1"])
            .ok()
            .says("made by buildah");
        b.berth(&["run", "--rm", "bscratch:1", "sh", "-c", "echo $FROM"])
            .ok()
            .says("buildah");
    }
    let _ = buildah(&["rm", "--all"]);
    let _ = buildah(&["rmi", "--all", "--force"]);
}
