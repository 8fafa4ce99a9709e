//! Images end to end: `berth import/load/save/run/images/tag/rmi/inspect/history/prune/df`
//! against a private store, with busybox-static as the image content. Run as root.

use berth_tests::images::*;
use berth_tests::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::time::Duration;

#[test]
fn busybox_import_and_run() {
    let s = Store::new("run");
    s.import_busybox("busybox");
    s.berth(&["run", "--rm", "busybox", "cat", "/etc/motd"])
        .ok()
        .says("hello from busybox");
    // The image's cmd (sh) with our own args, exit status passed through.
    s.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
        .code_is(3);
    // env, env-file, workdir, user, hostname, entrypoint.
    let envf = s.dir.join("env");
    fs::write(&envf, "# comment\nFROM_FILE=yes\nOVERRIDE=file\n").expect("env file");
    let envf = envf.to_string_lossy().into_owned();
    s.berth(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        &envf,
        "-e",
        "OVERRIDE=flag",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "boxy",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $OVERRIDE $(pwd) $(id -u):$(id -g) $(hostname)",
    ])
    .ok()
    .says("1 yes flag /tmp 65534:65534 boxy");
    s.berth(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "via",
        "entrypoint",
    ])
    .ok()
    .says("via entrypoint");
    // Unknown user: a clear error before anything runs.
    s.berth(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"])
        .failed_mentioning(&["nosuchuser"]);
}

#[test]
fn run_volumes_read_only_and_limits() {
    let s = Store::new("opts");
    s.import_busybox("busybox");
    let host = s.dir.join("vol");
    fs::create_dir(&host).expect("mkdir");
    fs::write(host.join("in"), "from host\n").expect("write");
    let rw = format!("{}:/data", host.display());
    let ro = format!("{}:/ro:ro", host.display());
    s.berth(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "cat /data/in; echo out > /data/out; echo x > /ro/x",
    ])
    .code_is(1)
    .says("from host");
    assert_eq!(
        fs::read_to_string(host.join("out")).expect("written through the bind"),
        "out\n"
    );
    assert!(!host.join("x").exists(), "a :ro volume was writable");
    s.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/file"])
        .failed();
    s.berth(&["run", "--rm", "busybox", "touch", "/file"]).ok();
    s.berth(&[
        "run", "--rm", "--memory", "64m", "--pids-limit", "50", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; true",
    ])
    .ok()
    .says("67108864\n50");
}

#[test]
fn containers_share_snapshots_and_rm_cleans_up() {
    let s = Store::new("share");
    s.import_busybox("busybox");
    s.berth(&["tag", "busybox", "other:1"]).ok();
    s.berth(&["run", "--rm", "--name", "one", "busybox", "true"])
        .ok();
    let snaps = s.snapshot_dirs();
    assert_eq!(snaps.len(), 1, "one layer, one snapshot: {snaps:?}");
    let snap = s.root().join("snapshots").join(&snaps[0]);
    let before = fs::metadata(&snap)
        .and_then(|m| m.modified())
        .expect("snapshot mtime");
    // Another image with the same layer and another run: nothing is unpacked again.
    s.berth(&[
        "run",
        "--rm",
        "other:1",
        "sh",
        "-c",
        "echo changed > /etc/motd",
    ])
    .ok();
    s.berth(&["run", "--rm", "busybox", "cat", "/etc/motd"])
        .ok()
        .says("hello from busybox");
    assert_eq!(s.snapshot_dirs(), snaps);
    assert_eq!(
        fs::metadata(&snap)
            .and_then(|m| m.modified())
            .expect("mtime"),
        before,
        "snapshot rewritten"
    );
    assert!(
        !s.root().join("containers/one").exists(),
        "--rm left the container directory"
    );
    // Without --rm the writable layer stays; the name is then taken.
    s.berth(&[
        "run",
        "--name",
        "kept",
        "busybox",
        "sh",
        "-c",
        "echo data > /kept",
    ])
    .ok();
    assert_eq!(
        fs::read_to_string(s.root().join("containers/kept/upper/kept")).expect("upper"),
        "data\n"
    );
    s.berth(&["run", "--name", "kept", "busybox", "true"])
        .failed_mentioning(&["\"kept\"", "in use"]);
    let mounts: Vec<_> = host_mounts()
        .into_iter()
        .filter(|m| m.mount_point.starts_with(&*s.dir.path().to_string_lossy()))
        .collect();
    assert!(mounts.is_empty(), "rootfs left mounted: {mounts:?}");
}

#[test]
fn image_commands() {
    let s = Store::new("cmds");
    s.import_busybox("localhost/box:1");
    s.berth(&["tag", "box:1", "copy"]).ok();
    let mut names = s.image_names();
    names.sort();
    assert_eq!(names, ["copy:latest", "localhost/box:1"]);
    let table = s.berth(&["images"]);
    table.ok().says("REPOSITORY");
    let o = s.berth(&["inspect", "copy"]);
    o.ok();
    let v: Value = serde_json::from_str(&o.stdout).expect("inspect json");
    let id = v[0]["Id"].as_str().expect("Id").to_string();
    assert_eq!(v[0]["Architecture"], "amd64");
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(v[0]["RepoTags"].as_array().map(Vec::len), Some(2));
    s.berth(&["history", "copy"]).ok().says("berth import");
    s.berth(&["system", "df"]).ok().says("Images");
    // By ID prefix too.
    s.berth(&["run", "--rm", &id[..12], "true"]).ok();
    s.berth(&["run", "--rm", "true"])
        .failed_mentioning(&["\"true\"", "not found"]);
    // Removing one name keeps the image; the last one deletes its blobs; prune then finds
    // nothing (the snapshot went with it).
    s.berth(&["rmi", "copy"]).ok().says("Untagged: copy:latest");
    assert_eq!(s.image_names(), ["localhost/box:1"]);
    assert_eq!(s.blob_files().len(), 3);
    s.berth(&["run", "--rm", "box:1", "true"]).ok();
    s.berth(&["rmi", "box:1"]).ok();
    assert!(s.image_names().is_empty());
    assert!(
        s.blob_files().is_empty(),
        "blobs left: {:?}",
        s.blob_files()
    );
    assert!(
        s.snapshot_dirs().iter().all(|d| d == "empty"),
        "{:?}",
        s.snapshot_dirs()
    );
    s.berth(&["image", "prune"]).ok().says("Deleted 0 blobs");
    s.berth(&["rmi", "box:1"]).failed_mentioning(&["box:1"]);
}

#[test]
fn save_load_roundtrip_both_formats() {
    let a = Store::new("save-a");
    a.import_busybox("box");
    for fmt in ["oci-archive", "docker-archive"] {
        let out = a.dir.join(format!("{fmt}.tar"));
        a.berth(&["save", "--format", fmt, "-o", &out.to_string_lossy(), "box"])
            .ok();
        let b = Store::new("save-b");
        b.berth(&["load", "-i", &out.to_string_lossy()])
            .ok()
            .says("Loaded image: box:latest");
        b.berth(&["run", "--rm", "box", "cat", "/etc/motd"])
            .ok()
            .says("hello from busybox");
        b.assert_blobs_verify();
        // From standard input too, as `docker load < FILE`.
        let c = Store::new("save-c");
        let o = c
            .command(&["load"])
            .stdin(fs::File::open(&out).expect("open archive"))
            .output()
            .expect("berth load");
        assert!(o.status.success(), "berth load < {}: {o:?}", out.display());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "Loaded image: box:latest\n"
        );
        c.berth(&["run", "--rm", "box", "cat", "/etc/motd"])
            .ok()
            .says("hello from busybox");
    }
}

/// Layer 2 deletes a file (`.wh.`), hides a directory's old content (opaque) and adds to
/// it; both snapshotters show the same tree.
#[test]
fn whiteouts_honoured() {
    let s = Store::new("whiteouts");
    let base = fs::read(busybox_tarball(&s.dir)).expect("busybox tar");
    let l1 = RawTar::default()
        .dir("data")
        .file("data/gone", b"1")
        .dir("opaque")
        .file("opaque/old", b"2")
        .file("keep", b"3")
        .finish();
    let l2 = RawTar::default()
        .file("data/.wh.gone", b"")
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/new", b"4")
        .finish();
    let layout = s.dir.join("layout");
    write_oci_layout(
        &layout,
        "wh:1",
        &[(base.clone(), base), (l1.clone(), l1), (gzip(&l2), l2)],
        &["sh"],
    );
    s.berth(&["load", "-i", &layout.to_string_lossy()]).ok();
    let script = "ls /data /opaque; cat /keep; echo; test -e /data/gone && echo GONE-VISIBLE; test -e /opaque/old && echo OLD-VISIBLE; ls -a /data | grep -c wh";
    for snapshotter in ["overlay", "copy"] {
        let mut c = s.command(&["run", "--rm", "wh:1", "sh", "-c", script]);
        if snapshotter == "copy" {
            c.env("BERTH_SNAPSHOTTER", "copy");
        }
        let o = capture(c, Capture::Pipes, BERTH_TIMEOUT);
        assert_eq!(
            o.stdout, "/data:\n\n/opaque:\nnew\n3\n0\n",
            "{snapshotter}: {o}"
        );
    }
}

/// Every hostile layer is refused by name when unpacked; nothing lands outside the store
/// and no half snapshot stays.
#[test]
fn hostile_layers_refused() {
    let s = Store::new("hostile");
    let outside = s.dir.join("outside");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("secret"), "secret").expect("write");
    let o = outside.to_string_lossy().into_owned();
    let up = "../../../../../../../../../../../..";
    let escape = format!("{up}{o}/escaped");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "dotdot",
            RawTar::default().file(&escape, b"x").finish(),
            escape.clone(),
        ),
        (
            "absolute",
            RawTar::default()
                .file(&format!("{o}/escaped"), b"x")
                .finish(),
            format!("{o}/escaped"),
        ),
        (
            "symlink",
            RawTar::default()
                .symlink("evil", &o)
                .file("evil/escaped", b"x")
                .finish(),
            "evil/escaped".into(),
        ),
        (
            "symlink-relative",
            RawTar::default()
                .symlink("evil", &format!("{up}{o}"))
                .file("evil/escaped", b"x")
                .finish(),
            "evil/escaped".into(),
        ),
        (
            "symlink-chain",
            RawTar::default()
                .symlink("a", "b")
                .symlink("b", "c")
                .symlink("c", &o)
                .file("a/escaped", b"x")
                .finish(),
            "a/escaped".into(),
        ),
        (
            "hardlink-dotdot",
            RawTar::default()
                .hardlink("h", &format!("{up}{o}/secret"))
                .finish(),
            "h".into(),
        ),
        (
            "hardlink-via-symlink",
            RawTar::default()
                .symlink("evil", &o)
                .hardlink("h", "evil/secret")
                .finish(),
            "h".into(),
        ),
    ];
    for (what, bytes, entry) in cases {
        let tar = s.dir.join(format!("{what}.tar"));
        fs::write(&tar, &bytes).expect("write tar");
        s.berth(&["import", "--cmd", "true", &tar.to_string_lossy(), what])
            .ok();
        let out = s.berth(&["run", "--rm", what]);
        out.failed_mentioning(&[&format!("{entry:?}")]);
        assert!(
            !outside.join("escaped").exists(),
            "{what}: wrote outside the root"
        );
        assert_eq!(
            fs::read_to_string(outside.join("secret")).expect("intact"),
            "secret",
            "{what}"
        );
        let meta = fs::metadata(outside.join("secret")).expect("secret");
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&meta),
            1,
            "{what}: hardlinked"
        );
        let snaps: Vec<String> = s
            .snapshot_dirs()
            .into_iter()
            .filter(|d| d != "empty")
            .collect();
        assert!(snaps.is_empty(), "{what}: half snapshot left: {snaps:?}");
    }
    assert!(!Path::new("/escaped").exists());
}

/// A blob whose bytes do not match its digest is refused and never becomes visible; a
/// layer whose content does not match its diffID never becomes a snapshot.
#[test]
fn wrong_digests_never_visible() {
    let s = Store::new("digest");
    let base = fs::read(busybox_tarball(&s.dir)).expect("busybox tar");
    let layout = s.dir.join("layout");
    write_oci_layout(&layout, "bad:1", &[(base.clone(), base.clone())], &["true"]);
    let layer = sha256(&base);
    let blob = layout.join("blobs/sha256").join(&layer[7..]);
    let mut tampered = base.clone();
    tampered[600] ^= 0xff;
    fs::write(&blob, &tampered).expect("tamper");
    s.berth(&["load", "-i", &layout.to_string_lossy()])
        .failed_mentioning(&[&layer[7..], "mismatch"]);
    let archive = s.dir.join("bad.tar");
    tar_dir(&layout, &archive);
    s.berth(&["load", "-i", &archive.to_string_lossy()])
        .failed_mentioning(&[&layer[7..], "mismatch"]);
    assert!(s.image_names().is_empty());
    assert!(
        !s.blob_files().iter().any(|p| p.ends_with(&layer[7..])),
        "tampered blob visible"
    );
    assert!(
        fs::read_dir(s.root().join("content/ingest"))
            .expect("ingest")
            .next()
            .is_none(),
        "temp files left"
    );
    s.assert_blobs_verify();

    // The config claims another diffID: the layer loads (its blob is fine) but is never
    // unpacked into a snapshot.
    let other = Store::new("diffid");
    let layout2 = other.dir.join("layout");
    let lie = RawTar::default().file("etc/motd", b"x").finish();
    write_oci_layout(&layout2, "lie:1", &[(base.clone(), lie)], &["true"]);
    other
        .berth(&["load", "-i", &layout2.to_string_lossy()])
        .ok();
    other
        .berth(&["run", "--rm", "lie:1"])
        .failed_mentioning(&["diffID"]);
    assert!(
        other.snapshot_dirs().iter().all(|d| d == "empty"),
        "{:?}",
        other.snapshot_dirs()
    );
}

/// SIGKILL in the middle of `berth load`: every blob still verifies, no image is listed,
/// and loading again works.
#[test]
fn sigkill_during_load() {
    let s = Store::new("kill");
    let layout = s.dir.join("layout");
    // One large layer so that the kill lands mid-ingest.
    let mut big = RawTar::default().file("small", b"small").finish();
    big.truncate(big.len() - 1024);
    let size = 400usize << 20;
    let mut t = RawTar::default();
    t.entry("big", b'0', "", &vec![7u8; size], 0o644);
    big.extend(t.finish());
    let base = fs::read(busybox_tarball(&s.dir)).expect("busybox tar");
    write_oci_layout(
        &layout,
        "big:1",
        &[(base.clone(), base), (big.clone(), big)],
        &["true"],
    );
    drop(t);
    let archive = s.dir.join("big.tar");
    tar_dir(&layout, &archive);
    fs::remove_dir_all(&layout).expect("rm layout");
    let mut child = s
        .command(&["load", "-i", &archive.to_string_lossy()])
        .spawn()
        .expect("spawn berth load");
    let ingest = s.root().join("content/ingest");
    let busy = poll(Duration::from_secs(30), || {
        fs::read_dir(&ingest)
            .ok()
            .and_then(|mut d| d.next())
            .map(|_| ())
    });
    assert!(busy.is_some(), "berth load never started ingesting");
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let status = child.wait().expect("wait");
    assert!(
        !status.success(),
        "berth load finished before the kill; make the layer larger"
    );
    s.assert_blobs_verify();
    assert!(s.image_names().is_empty(), "a half-loaded image is listed");
    s.berth(&["image", "prune"]).ok();
    assert!(
        fs::read_dir(&ingest).expect("ingest").next().is_none(),
        "prune left temporary files"
    );
    s.berth(&["load", "-i", &archive.to_string_lossy()]).ok();
    assert_eq!(s.image_names(), ["big:1"]);
    s.assert_blobs_verify();
}

/// `-t`: the container gets a pty of its own devpts (berth relays it from a console
/// socket), with our terminal's size; the exit status still passes through.
#[test]
fn run_with_a_terminal() {
    let s = Store::new("tty");
    s.import_busybox("busybox");
    let cmd = s.command(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; stty size; exit 4",
    ]);
    let line = format!("stty rows 33 cols 91; {cmd:?}");
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null());
    let o = capture(script, Capture::Pipes, BERTH_TIMEOUT);
    o.code_is(4).says("/dev/pts/0").says("33 91");
}

/// Two runs of a fresh image at once: both unpack into temporary directories, one rename
/// wins, both run, one snapshot remains.
#[test]
fn concurrent_first_runs_share_one_snapshot() {
    let s = Store::new("race");
    s.import_busybox("busybox");
    let spawn = || {
        s.command(&["run", "--rm", "busybox", "cat", "/etc/motd"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn berth run")
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from busybox\n");
    }
    let snaps: Vec<String> = s
        .snapshot_dirs()
        .into_iter()
        .filter(|d| d != "empty")
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
}

/// The rootfs overlay lives in berth's own mount namespace: the host never sees it, not
/// even while the container runs or after berth is SIGKILLed.
#[test]
fn run_mounts_nothing_on_the_host() {
    let s = Store::new("nomount");
    s.import_busybox("busybox");
    let here = s.dir.path().to_string_lossy().into_owned();
    let ours = || -> Vec<String> {
        host_mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(&here))
            .collect()
    };
    let mut child = s
        .command(&["run", "--rm", "busybox", "sleep", "2"])
        .spawn()
        .expect("spawn berth run");
    let started = poll(Duration::from_secs(20), || {
        fs::read_dir(s.dir.join("run/runtime"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|_| ())
    });
    assert!(started.is_some(), "the container never started");
    assert!(ours().is_empty(), "host sees {:?}", ours());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    assert!(ours().is_empty(), "host sees {:?}", ours());
    // The orphaned runtime finishes the container on its own.
    let gone = poll(Duration::from_secs(20), || {
        pids_with_cmdline(&here).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "runtime still running: {:?}",
        pids_with_cmdline(&here)
    );
}

/// An archive is ingested as it streams by, before its index says what is used: a load
/// that fails takes back every blob it wrote, and a load that succeeds takes back the
/// blobs no loaded image uses; blobs that were in the store before stay.
#[test]
fn load_leaves_no_unreferenced_blobs() {
    let s = Store::new("loadgc");
    let base = fs::read(busybox_tarball(&s.dir)).expect("busybox tar");
    let names = |s: &Store| -> Vec<String> {
        let mut v: Vec<String> = s
            .blob_files()
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect();
        v.sort();
        v
    };
    // A good archive with a stray blob nothing references.
    let layout = s.dir.join("good");
    write_oci_layout(
        &layout,
        "good:1",
        &[(base.clone(), base.clone())],
        &["true"],
    );
    let stray = b"not part of any image".to_vec();
    let stray_hex = sha256(&stray)[7..].to_string();
    fs::write(layout.join("blobs/sha256").join(&stray_hex), &stray).expect("stray");
    let archive = s.dir.join("good.tar");
    tar_dir(&layout, &archive);
    s.berth(&["load", "-i", &archive.to_string_lossy()]).ok();
    let after_good = names(&s);
    assert_eq!(
        after_good.len(),
        3,
        "manifest, config, layer: {after_good:?}"
    );
    assert!(!after_good.contains(&stray_hex), "the stray blob stayed");

    // An archive whose index names a manifest it lacks: the load fails, and the new
    // blobs it wrote (a layer of its own, a config) are gone; the store is as it was.
    let bad = s.dir.join("bad");
    let other = RawTar::default().file("etc/motd", b"other").finish();
    let md = write_oci_layout(&bad, "bad:1", &[(other.clone(), other.clone())], &["true"]);
    fs::remove_file(bad.join("blobs/sha256").join(&md[7..])).expect("rm manifest");
    let bad_tar = s.dir.join("bad.tar");
    tar_dir(&bad, &bad_tar);
    s.berth(&["load", "-i", &bad_tar.to_string_lossy()])
        .failed_mentioning(&[&md[7..]]);
    assert_eq!(names(&s), after_good, "a failed load left blobs");
    assert_eq!(s.image_names(), vec!["good:1".to_string()]);
    s.berth(&["run", "--rm", "good:1"]).ok();
    s.assert_blobs_verify();
}

/// `-u` ids are 0…2³²−2: 2³²−1 is `(uid_t)-1`, which setresuid/setresgid read as "leave
/// unchanged", so `1000:4294967295` would run with the runtime's gid 0 (issue 10, item 16).
#[test]
fn run_refuses_ids_out_of_range() {
    let s = Store::new("ids");
    s.import_busybox("busybox");
    for spec in [
        "1000:4294967295",
        "4294967295",
        "4294967295:1000",
        "1000:4294967296",
        "-1",
    ] {
        s.berth(&["run", "--rm", &format!("--user={spec}"), "busybox", "id"])
            .failed_mentioning(&["4294967294"]);
    }
    s.berth(&[
        "run",
        "--rm",
        "-u",
        "4294967294:4294967294",
        "busybox",
        "sh",
        "-c",
        "echo $(id -u):$(id -g)",
    ])
    .ok()
    .says("4294967294:4294967294");
}

/// Issue 10, item 5: `berth run` applies Docker's default seccomp profile (an allow-list:
/// no keyrings, no namespaces or mounts, clone3 → ENOSYS, no odd personalities, no vsock),
/// `--cap-add` widens it as Docker's does, and `--security-opt` changes it.
#[test]
fn run_applies_the_default_seccomp_profile() {
    let s = Store::new("seccomp");
    s.import_busybox("busybox");
    let pdir = s.dir.join("probe");
    fs::create_dir(&pdir).expect("mkdir");
    syscall_probe(&pdir);
    let vol = format!("{}:/probe:ro", pdir.display());
    let status = &["grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"];
    let run = |opts: &[&str], cmd: &[&str]| {
        let mut a = vec!["run", "--rm", "-v", &vol];
        a.extend_from_slice(opts);
        a.push("busybox");
        a.extend_from_slice(cmd);
        s.berth(&a)
    };

    run(&[], status).ok().says("Seccomp:\t2");
    let probe = run(&[], &["/probe/probe"]);
    probe.ok();
    for want in [
        "add_key=errno1\n",
        "keyctl=errno1\n",
        "clone3=errno38\n",
        "personality=errno1\n",
        "vsock=errno1\n",
        "unshare_user=errno1\n",
    ] {
        probe.says(want);
    }
    // A user namespace (where the process would be root) and a mount in it: refused.
    run(
        &[],
        &[
            "unshare", "-r", "-m", "mount", "-t", "tmpfs", "none", "/dev",
        ],
    )
    .failed();
    // Threads and processes still work (clone without namespace flags).
    run(&[], &["sh", "-c", "(echo child) & wait"])
        .ok()
        .says("child");

    // CAP_SYS_ADMIN opens the mount and namespace calls, as with Docker.
    run(
        &["--cap-add", "SYS_ADMIN"],
        &[
            "unshare", "-r", "-m", "mount", "-t", "tmpfs", "none", "/dev",
        ],
    )
    .ok();
    let admin = run(&["--cap-add", "sys_admin"], &["/probe/probe"]);
    admin.ok().says("unshare_user=ok\n");
    assert!(!admin.stdout.contains("clone3=errno38"), "{admin}");

    // Unconfined: no filter at all.
    run(&["--security-opt", "seccomp=unconfined"], status)
        .ok()
        .says("Seccomp:\t0");
    run(&["--security-opt", "seccomp=unconfined"], &["/probe/probe"])
        .ok()
        .says("keyctl=ok\n");

    // A profile file in Docker's format.
    let prof = s.dir.join("profile.json");
    fs::write(
        &prof,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
        ]}"#,
    )
    .expect("profile");
    let opt = format!("seccomp={}", prof.display());
    run(
        &["--security-opt", &opt],
        &["sh", "-c", "mkdir /x || echo refused; /probe/probe"],
    )
    .ok()
    .says("refused")
    .says("keyctl=ok\n");
    // A bad profile: refused before anything runs, naming the field.
    fs::write(
        &prof,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_MAYBE"}]}"#,
    )
    .expect("profile");
    run(&["--security-opt", &opt], &["true"])
        .failed_mentioning(&["syscalls[0].action", "SCMP_ACT_MAYBE"]);
    fs::write(
        &prof,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "sycalls": []}"#,
    )
    .expect("profile");
    run(&["--security-opt", &opt], &["true"]).failed_mentioning(&["sycalls"]);
    run(
        &["--security-opt", "seccomp=/no/such/profile.json"],
        &["true"],
    )
    .failed_mentioning(&["/no/such/profile.json"]);
    run(&["--security-opt", "apparmor-ish"], &["true"]).failed_mentioning(&["apparmor-ish"]);
    run(&["--cap-add", "WISHFUL"], &["true"]).failed_mentioning(&["WISHFUL"]);

    // no_new_privs on request (and off on request).
    run(&["--security-opt", "no-new-privileges"], status)
        .ok()
        .says("NoNewPrivs:\t1");
    run(&["--security-opt", "no-new-privileges=false"], status)
        .ok()
        .says("NoNewPrivs:\t0");
}

/// Issue 10, item 18: `kill -9` of `berth run --rm` leaves the container running (as with
/// Docker's CLI), but once it ends, its directory (writable layer, chains.json pinning the
/// snapshots) must not stay forever: the next `image prune` finishes the `--rm`, a running
/// container is kept, and `container prune` removes ended containers kept without `--rm`.
#[test]
fn killed_run_rm_is_removed_once_its_container_ends() {
    let s = Store::new("stale");
    s.import_busybox("busybox");
    let containers = s.root().join("containers");
    let rt_state = |id: &str| s.dir.join("run/runtime").join(id).join("state.json");
    let start = |name: &str, secs: &str| {
        let mut c = s.command(&["run", "--rm", "--name", name, "busybox", "sleep", secs]);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c.spawn().expect("start berth run")
    };
    let mut live = start("live", "8");
    let mut victim = start("victim", "2");
    for id in ["live", "victim"] {
        poll(Duration::from_secs(20), || {
            rt_state(id).exists().then_some(())
        })
        .unwrap_or_else(|| panic!("container {id} did not start"));
    }
    victim.kill().expect("SIGKILL berth");
    let _ = victim.wait();
    // The container (and the runtime waiting for it) ends by itself.
    poll(Duration::from_secs(20), || {
        (!rt_state("victim").exists()).then_some(())
    })
    .expect("the victim's container did not end");
    assert!(containers.join("victim").exists(), "nothing to clean up?");

    s.berth(&["image", "prune"]).ok();
    assert!(
        !containers.join("victim").exists(),
        "image prune left the killed --rm container's directory"
    );
    assert!(
        containers.join("live").join("upper").exists(),
        "image prune removed a running container"
    );
    s.berth(&["container", "prune"]).ok();
    assert!(
        containers.join("live").exists(),
        "container prune removed a running container"
    );

    let st = live.wait().expect("wait for berth run");
    assert!(st.success(), "the live run failed: {st:?}");
    // Nothing pins the image's snapshot any more.
    s.berth(&["run", "--name", "kept", "busybox", "true"]).ok();
    s.berth(&["rmi", "busybox"]).ok();
    assert!(
        containers.join("kept").exists(),
        "a stopped container without --rm is kept"
    );
    assert_eq!(s.snapshot_dirs().len(), 1, "kept pins its snapshot");
    s.berth(&["container", "prune"]).ok().says("kept");
    s.berth(&["image", "prune"]).ok();
    assert_eq!(
        fs::read_dir(&containers).map(|d| d.count()).unwrap_or(0),
        0,
        "containers left"
    );
    assert!(
        s.snapshot_dirs().is_empty(),
        "snapshots left: {:?}",
        s.snapshot_dirs()
    );
}
