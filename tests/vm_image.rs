//! VM images end to end: `berth vm image` turns an image built by `berth build` (on a
//! busybox-static base, no network) into an ext4 root disk with the guest agent, checked
//! with e2fsck and debugfs without mounting it; its bad inputs; the agent binary itself on
//! a host unix socket; and `berth vm run --image`, which boots the image's cached disk
//! behind a copy-on-write overlay (with the asm test guest here: under kvm_pvm a Linux
//! guest's userspace, and so the agent, cannot run). The VM tests need /dev/kvm.

use berth_tests::images::{sha256, tar_dir, Store};
use berth_tests::vm::*;
use berth_tests::{build_rootfs, capture, Capture, TempDir};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";

/// A two-stage build on busybox-static: files, a deleted file (a whiteout), and an image
/// config with every field the guest configuration carries.
const CONTAINERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/sbin", "/usr/sbin", "/tmp", "/etc"]
RUN ["/bin/busybox", "--install", "-s"]
COPY hello.txt /app/hello.txt
RUN echo gone > /app/gone.txt && echo 'www:x:33:33::/app:/bin/sh' >> /etc/passwd
RUN rm /app/gone.txt
ENV GREETING=hi-from-the-image
WORKDIR /app
USER www
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/hello.txt"]
"#;

/// A store with the image `vmimg:1` built from [`CONTAINERFILE`].
fn built_store() -> Store {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} not found: install busybox-static"
    );
    let s = Store::new("vm-image");
    let ctx = s.dir.join("ctx");
    fs::create_dir_all(&ctx).expect("mkdir context");
    fs::copy(BUSYBOX, ctx.join("busybox")).expect("copy busybox");
    fs::write(ctx.join("Containerfile"), CONTAINERFILE).expect("write Containerfile");
    fs::write(ctx.join("hello.txt"), "hello from a berth VM image\n").expect("write hello");
    let ctx = ctx.to_string_lossy().into_owned();
    let mut cmd = s.command(&["build", "-t", "vmimg:1", &ctx]);
    cmd.env_remove("RUST_BACKTRACE");
    capture(cmd, Capture::Pipes, Duration::from_secs(300)).ok();
    s
}

/// `debugfs -R REQUEST DISK`: stdout (debugfs reads the file system, nothing is mounted).
fn debugfs(disk: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(disk)
        .output()
        .expect("run debugfs (install e2fsprogs)");
    assert!(out.status.success(), "debugfs {request}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `e2fsck -fn DISK` must find nothing to fix.
#[track_caller]
fn assert_fsck_clean(disk: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(disk)
        .output()
        .expect("run e2fsck (install e2fsprogs)");
    assert!(
        out.status.success(),
        "e2fsck -fn {}: {}\n{}",
        disk.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `berth vm --root <r> image --store <store> --agent <agent> ARGS…`
fn vm_image(r: &VmRoot, store: &Store, args: &[&str]) -> berth_tests::Output {
    let agent = agent_bin();
    let root = store.root();
    let mut all = vec!["image", "--store", s(&root), "--agent", s(&agent)];
    all.extend_from_slice(args);
    r.vm(&all)
}

#[test]
fn the_agent_is_static_and_serves_scripts_on_a_unix_socket() {
    use std::os::unix::net::UnixStream;
    let agent = agent_bin();
    let file = Command::new("file").arg(&agent).output().expect("run file");
    let kind = String::from_utf8_lossy(&file.stdout);
    assert!(kind.contains("static"), "not static: {kind}");
    let ldd = Command::new("ldd").arg(&agent).output().expect("run ldd");
    let ldd = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        ldd.contains("statically linked") || ldd.contains("not a dynamic executable"),
        "{ldd}"
    );

    // Not PID 1 and no --unix: it refuses to act as init.
    let out = Command::new(&agent).output().expect("run the agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not PID 1"));

    let dir = TempDir::new("agent");
    let sock = dir.join("agent.sock");
    let cfg = dir.join("config.json");
    fs::write(&cfg, r#"{"env":["WHO=host test"],"cmd":["true"]}"#).expect("config");
    let mut child = Command::new(&agent)
        .arg("--unix")
        .arg(&sock)
        .arg("--config")
        .arg(&cfg)
        .spawn()
        .expect("start the agent");
    berth_tests::poll(Duration::from_secs(10), || sock.exists().then_some(()))
        .expect("the agent's socket appears");
    let mut c = UnixStream::connect(&sock).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let call = |c: &mut UnixStream, req: &str| -> serde_json::Value {
        c.write_all(&(req.len() as u32).to_be_bytes())
            .expect("write");
        c.write_all(req.as_bytes()).expect("write");
        let mut len = [0u8; 4];
        c.read_exact(&mut len).expect("read length");
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut body).expect("read body");
        serde_json::from_slice(&body).expect("json answer")
    };
    let r = call(
        &mut c,
        r#"{"op":"run_script","script":"echo \"$WHO\"; echo err >&2; exit 5"}"#,
    );
    assert_eq!(r["result"], "script", "{r}");
    assert_eq!(r["exit_code"], 5, "{r}");
    assert_eq!(r["output"], "host test\nerr\n", "{r}");
    let r = call(&mut c, r#"{"op":"reformat"}"#);
    assert_eq!(r["result"], "error", "{r}");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("bad request")),
        "{r}"
    );
    let r = call(&mut c, r#"{"op":"shutdown"}"#);
    assert_eq!(r["result"], "shutting_down", "{r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success());
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn vm_image_makes_a_checked_ext4_disk_with_the_files_agent_and_config() {
    let store = built_store();
    let r = VmRoot::new();
    let disk = r.dir.join("vmimg.ext4");
    let out = vm_image(&r, &store, &["vmimg:1", "-o", s(&disk)]);
    out.ok();
    assert!(out.stdout.contains("MiB ext4 root disk"), "{out}");
    assert_fsck_clean(&disk);
    // Nothing but the disk is left beside it.
    let names: Vec<String> = fs::read_dir(r.dir.path())
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("vmimg"))
        .collect();
    assert_eq!(names, ["vmimg.ext4"]);

    // The image's files, as the last layer left them (gone.txt was deleted).
    assert_eq!(
        debugfs(&disk, "cat /app/hello.txt"),
        "hello from a berth VM image\n"
    );
    let listing = debugfs(&disk, "ls -l /app");
    assert!(listing.contains("hello.txt"), "{listing}");
    assert!(!listing.contains("gone.txt"), "{listing}");
    assert!(debugfs(&disk, "stat /bin/busybox").contains("Type: regular"));
    let passwd = debugfs(&disk, "cat /etc/passwd");
    assert!(passwd.contains("www:x:33:33"), "{passwd}");

    // The agent, byte for byte, executable, owned by root.
    let dumped = r.dir.join("agent.out");
    debugfs(&disk, &format!("dump /.berth/agent {}", dumped.display()));
    let agent = fs::read(agent_bin()).expect("read the agent");
    assert_eq!(
        sha256(&fs::read(&dumped).expect("dumped agent")),
        sha256(&agent)
    );
    let stat = debugfs(&disk, "stat /.berth/agent");
    assert!(stat.contains("Mode:  0755"), "{stat}");
    assert!(stat.contains("User:     0"), "{stat}");

    // The configuration carries the image config.
    let cfg: serde_json::Value =
        serde_json::from_str(&debugfs(&disk, "cat /.berth/config.json")).expect("config json");
    assert_eq!(cfg["entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["cmd"], serde_json::json!(["cat /app/hello.txt"]));
    assert_eq!(cfg["workdir"], "/app");
    assert_eq!(cfg["user"], "www");
    assert!(
        cfg["env"]
            .as_array()
            .expect("env")
            .contains(&serde_json::json!("GREETING=hi-from-the-image")),
        "{cfg}"
    );
    // The agent's mount points exist.
    let root = debugfs(&disk, "ls /");
    for d in ["proc", "sys", "dev", "tmp", "run", ".berth"] {
        assert!(root.split_whitespace().any(|w| w == d), "no /{d}: {root}");
    }

    // --size: honoured when large enough.
    let sized = r.dir.join("sized.ext4");
    vm_image(&r, &store, &["vmimg:1", "-o", s(&sized), "--size", "96"]).ok();
    assert_eq!(fs::metadata(&sized).expect("stat").len(), 96 << 20);
    assert_fsck_clean(&sized);
}

#[test]
fn vm_image_refuses_bad_input_with_clear_errors_and_no_leftovers() {
    let store = built_store();
    let r = VmRoot::new();
    let out_dir = r.dir.join("out");
    fs::create_dir_all(&out_dir).expect("mkdir");
    let disk = out_dir.join("d.ext4");
    vm_image(&r, &store, &["no-such-image:9", "-o", s(&disk)])
        .failed_mentioning(&["no-such-image:9"]);
    vm_image(&r, &store, &["vmimg:1", "-o", s(&out_dir)]).failed_mentioning(&["is a directory"]);
    vm_image(&r, &store, &["vmimg:1", "-o", s(&disk), "--size", "1"])
        .failed_mentioning(&["--size 1 MiB", "too small"]);
    let missing = r.dir.join("nope/d.ext4");
    vm_image(&r, &store, &["vmimg:1", "-o", s(&missing)]).failed_mentioning(&["does not exist"]);
    // A dynamically linked agent (the berth binary itself) cannot be a guest's PID 1.
    let root = store.root();
    let berth = berth_bin();
    r.vm(&[
        "image",
        "--store",
        s(&root),
        "--agent",
        s(&berth),
        "vmimg:1",
        "-o",
        s(&disk),
    ])
    .failed_mentioning(&["agent", "dynamically linked"]);
    let nostore = r.dir.join("no-store");
    r.vm(&[
        "image",
        "--store",
        s(&nostore),
        "--agent",
        s(&agent_bin()),
        "vmimg:1",
        "-o",
        s(&disk),
    ])
    .failed_mentioning(&["image store", "no such directory"]);
    let left: Vec<_> = fs::read_dir(&out_dir).expect("read").flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_hostile_dot_berth_in_the_image_is_replaced_not_followed() {
    let s_ = Store::new("vm-image-hostile");
    let target = s_.dir.join("host-target");
    fs::create_dir_all(&target).expect("mkdir");
    let rootfs = s_.dir.join("rootfs");
    build_rootfs(&rootfs);
    // /.berth points at a directory of the host: writing through it would escape.
    std::os::unix::fs::symlink(&target, rootfs.join(".berth")).expect("symlink");
    let tar = s_.dir.join("hostile.tar");
    tar_dir(&rootfs, &tar);
    s_.berth(&["import", "--cmd", "sh", s(&tar), "hostile:1"])
        .ok();
    let r = VmRoot::new();
    let disk = r.dir.join("hostile.ext4");
    vm_image(&r, &s_, &["hostile:1", "-o", s(&disk)]).ok();
    assert!(
        fs::read_dir(&target).expect("read").next().is_none(),
        "something was written through the image's symlink"
    );
    let stat = debugfs(&disk, "stat /.berth");
    assert!(stat.contains("Type: directory"), "{stat}");
    assert!(debugfs(&disk, "ls /.berth").contains("config.json"));
    assert_fsck_clean(&disk);
}

/// The cached base disks of a store.
fn cached_disks(store: &Store) -> Vec<PathBuf> {
    fs::read_dir(store.root().join("vm-disks"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn vm_run_image_boots_the_cached_disk_behind_a_copy_on_write_overlay() {
    let store = built_store();
    let r = VmRoot::new();
    let guest = test_guest();
    let agent = agent_bin();
    let root = store.root();
    let script = r.dir.join("configure.sh");
    fs::write(&script, "echo configured\n").expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "--kernel",
            s(&guest),
            "--image",
            "vmimg:1",
            "--store",
            s(&root),
            "--agent",
            s(&agent),
        ];
        a.extend_from_slice(extra);
        r.vm(&a)
    };

    // In the foreground: the test guest writes sector 1 of /dev/vda (the image's disk) and
    // exits; the VM's overlay goes with it.
    let out = run(&["--name", "img1"]);
    out.ok();
    assert!(out.stdout.contains("blk: write status=0\n"), "{out}");
    assert!(
        out.stdout
            .contains("blk: sector1=berth-guest wrote sector 1......"),
        "{out}"
    );
    let disks = cached_disks(&store);
    assert_eq!(disks.len(), 1, "{disks:?}");
    let base = disks[0].clone();
    assert_fsck_clean(&base);
    let before = sha256(&fs::read(&base).expect("read base"));
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());

    // Detached, with a configuration script: the agent cannot answer (the test guest has
    // none; under kvm_pvm no guest userspace runs): a clear error in seconds, not a hang,
    // and the VM runs on with its overlay in its state directory.
    let start = Instant::now();
    let out = run(&[
        "-d",
        "--name",
        "img2",
        "--cmdline",
        "tick",
        "--config-script",
        s(&script),
        "--agent-timeout",
        "3",
    ]);
    out.failed_mentioning(&[
        "vm img2 runs",
        "guest agent never answered on vsock port 1024",
        "kvm_pvm",
    ]);
    assert!(start.elapsed() < Duration::from_secs(30));
    r.wait_first_tick("img2");
    assert!(r
        .console("img2")
        .contains("blk: sector1=berth-guest wrote sector 1"));
    let overlay = r.root().join("img2").join("disk0.overlay");
    let ov = fs::read(&overlay).expect("the overlay is in the VM's state directory");
    assert_eq!(&ov[512..538], b"berth-guest wrote sector 1");
    // The cached base was reused, not rebuilt, and never written.
    assert_eq!(cached_disks(&store), std::slice::from_ref(&base));
    assert_eq!(sha256(&fs::read(&base).expect("read base")), before);
    r.vm(&["rm", "-f", "img2"]).ok();
    assert!(!overlay.exists(), "`vm rm` left the overlay");
    assert!(r.names().is_empty(), "{:?}", r.names());
    assert_fsck_clean(&base);

    // --config-script needs --image; an unknown image is named.
    r.vm(&["run", "--kernel", s(&guest), "--config-script", s(&script)])
        .failed_mentioning(&["--image"]);
    run(&[]).ok();
    let mut a = vec!["run", "--kernel", s(&guest), "--image", "nope:1"];
    a.extend_from_slice(&["--store", s(&root), "--agent", s(&agent)]);
    r.vm(&a).failed_mentioning(&["nope:1"]);
    assert!(r.names().is_empty(), "{:?}", r.names());
}

/// The kernel command line for a Linux guest under kvm_pvm (see tests/vmm.rs).
const LINUX_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 noxsave nofsgsbase \
     clearcpuid=smap,cx16,popcnt,bmi1,bmi2,movbe,rdrand,rdseed,avx2,avx,abm";

/// Slow (about 75 s here, like the Linux tests of tests/vmm.rs): the guest kernel mounts
/// the image's ext4 disk as its root through the copy-on-write layer and runs the agent as
/// init. Under kvm_pvm the agent's first system call then faults; on hardware KVM it
/// listens on vsock and the configuration completes.
#[test]
fn linux_guest_mounts_the_image_disk_and_runs_the_agent_as_init() {
    let store = built_store();
    let r = VmRoot::new();
    let kernel = guest_kernel().join("vmlinux");
    let agent = agent_bin();
    let root = store.root();
    let mut cmd = Command::new(berth_bin());
    cmd.env_remove("RUST_BACKTRACE")
        .arg("vm")
        .arg("--root")
        .arg(r.root())
        .args(["run", "--memory", "256", "--kernel", s(&kernel)])
        .args([
            "--image",
            "vmimg:1",
            "--store",
            s(&root),
            "--agent",
            s(&agent),
        ])
        .args(["--agent-timeout", "500", "--cmdline", LINUX_CMDLINE]);
    let out = capture(cmd, Capture::Pipes, Duration::from_secs(600));
    assert!(
        out.stdout.contains("Mounted root (ext4 filesystem)"),
        "the kernel did not mount the image's disk:\n{out}"
    );
    assert!(
        out.stdout.contains("Run /.berth/agent as init process"),
        "the kernel did not run the agent:\n{out}"
    );
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());
}
