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
    let left: Vec<_> = fs::read_dir(s.root().join("containers"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "--rm left container directories: {left:?}");
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
    let o = s.berth(&["inspect", "kept"]);
    let v: Value = serde_json::from_str(&o.ok().stdout).expect("inspect json");
    let id = v[0]["Id"].as_str().expect("Id").to_string();
    assert_eq!(
        fs::read_to_string(s.root().join("containers").join(&id).join("upper/kept"))
            .expect("upper"),
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
        // Refused at import (the checks of an unpack), not first at `run`.
        s.berth(&["import", "--cmd", "true", &tar.to_string_lossy(), what])
            .failed_mentioning(&[&format!("{entry:?}")]);
        assert!(
            s.image_names().is_empty(),
            "{what}: a hostile import is named"
        );
        // The same layer in an archive: `load` refuses it too and names nothing.
        let layout = s.dir.join(format!("{what}-layout"));
        write_oci_layout(&layout, what, &[(bytes.clone(), bytes.clone())], &["true"]);
        s.berth(&["load", "-i", &layout.to_string_lossy()])
            .failed_mentioning(&[&format!("{entry:?}"), what]);
        assert!(
            s.image_names().is_empty(),
            "{what}: a hostile load is named"
        );
        assert!(
            s.blob_files().is_empty(),
            "{what}: a failed load left blobs"
        );
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

    // The config claims another diffID: the load fails (its blobs are fine, the layer is
    // not what the config says), names nothing, keeps no blob and no snapshot.
    let other = Store::new("diffid");
    let layout2 = other.dir.join("layout");
    let lie = RawTar::default().file("etc/motd", b"x").finish();
    write_oci_layout(&layout2, "lie:1", &[(base.clone(), lie)], &["true"]);
    for input in [layout2.clone(), other.dir.join("lie.tar")] {
        if input.extension().is_some() {
            tar_dir(&layout2, &input);
        }
        other
            .berth(&["load", "-i", &input.to_string_lossy()])
            .failed_mentioning(&["diffID", "lie:1"]);
        assert!(other.image_names().is_empty(), "a wrong diffID is named");
        assert!(other.blob_files().is_empty(), "a failed load left blobs");
        assert!(
            other.snapshot_dirs().iter().all(|d| d == "empty"),
            "{:?}",
            other.snapshot_dirs()
        );
    }
}

/// `import` of something that is not a root filesystem tarball (random bytes, an empty
/// file, an archive without entries) is refused and names no image.
#[test]
fn import_refuses_what_is_not_a_tarball() {
    let s = Store::new("notatar");
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("random", random, "random"),
        ("empty", Vec::new(), "empty"),
        ("no-entries", vec![0u8; 1024], "no entries"),
    ];
    for (what, bytes, says) in cases {
        let f = s.dir.join(what);
        fs::write(&f, &bytes).expect("write");
        s.berth(&["import", &f.to_string_lossy(), what])
            .failed_mentioning(&[says]);
        assert!(s.image_names().is_empty(), "{what}: imported");
    }
    assert!(
        s.blob_files().is_empty(),
        "blobs left: {:?}",
        s.blob_files()
    );
}

/// A layer that expands without bound is refused while it streams, by name: a gzip
/// bomb past the expansion ratio (with the default caps), a GNU sparse file declaring
/// 4 GiB in a few KiB (before anything is written), and a layer or an image over the
/// sizes set with `BERTH_MAX_LAYER_SIZE` / `BERTH_MAX_IMAGE_SIZE`.
#[test]
fn layer_caps_refuse_bombs() {
    let s = Store::new("bombs");
    let sh = |script: &str| {
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(script).current_dir(s.dir.path());
        capture(c, Capture::Pipes, BERTH_TIMEOUT).ok();
    };
    // 300 MiB of zeros in one file, gzip'd to ~300 KiB (ratio ~1000:1).
    sh("mkdir -p z && head -c 300M /dev/zero > z/zeros && tar -C z -cf - zeros | gzip -1 > bomb.tar.gz && rm -r z");
    // A sparse file of 4 GiB that GNU tar stores in a few KiB.
    sh("mkdir -p sp && truncate -s 4G sp/sparse && tar -C sp --sparse -cf sparse.tar sparse && rm -r sp");
    let sparse = fs::read(s.dir.join("sparse.tar")).expect("sparse tar");
    assert!(
        sparse.len() < 64 << 10,
        "GNU tar did not write a sparse entry"
    );
    let bomb = fs::read(s.dir.join("bomb.tar.gz")).expect("bomb");
    assert!(bomb.len() < 4 << 20, "gzip bomb too large: {}", bomb.len());
    // (The bomb's diffID is unknown without expanding it: any will do, the refusal comes
    // first.)
    for (what, blob, raw) in [
        ("gzipbomb", &bomb, Vec::new()),
        ("sparse", &sparse, sparse.clone()),
    ] {
        let layout = s.dir.join(format!("{what}-layout"));
        write_oci_layout(&layout, what, &[(blob.clone(), raw)], &["true"]);
        let layer = sha256(blob);
        let out = s.berth(&["load", "-i", &layout.to_string_lossy()]);
        out.failed_mentioning(&[what, &layer[7..19]]);
        assert!(
            out.stderr.contains("ratio") || out.stderr.contains("expands"),
            "{what}: not refused for its expansion:\n{out}"
        );
        assert!(s.image_names().is_empty(), "{what}: named");
        assert!(
            s.snapshot_dirs().iter().all(|d| d == "empty"),
            "{what}: {:?}",
            s.snapshot_dirs()
        );
        // Imported as a root filesystem tarball, the same.
        let f = s.dir.join(format!("{what}.import"));
        fs::write(&f, blob).expect("write");
        s.berth(&["import", &f.to_string_lossy(), what])
            .failed_mentioning(&[what]);
        assert!(s.image_names().is_empty(), "{what}: imported");
    }

    // Configured caps: a 2 MiB layer over a 1 MiB layer cap; two 600 KiB layers over a
    // 1 MiB image cap.
    let noise = |seed: u32, len: usize| -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect()
    };
    let big = RawTar::default().file("big", &noise(1, 2 << 20)).finish();
    let a = RawTar::default().file("a", &noise(2, 600 << 10)).finish();
    let b = RawTar::default().file("b", &noise(3, 600 << 10)).finish();
    let capped = |args: &[&str]| {
        let mut c = s.command(args);
        c.env("BERTH_MAX_LAYER_SIZE", "1M")
            .env("BERTH_MAX_IMAGE_SIZE", "1M");
        capture(c, Capture::Pipes, BERTH_TIMEOUT)
    };
    let l1 = s.dir.join("big-layout");
    write_oci_layout(&l1, "biglayer:1", &[(big.clone(), big.clone())], &["true"]);
    capped(&["load", "-i", &l1.to_string_lossy()]).failed_mentioning(&[
        "biglayer:1",
        &sha256(&big)[7..19],
        "BERTH_MAX_LAYER_SIZE",
    ]);
    let l2 = s.dir.join("two-layout");
    write_oci_layout(
        &l2,
        "twolayers:1",
        &[(a.clone(), a.clone()), (b.clone(), b.clone())],
        &["true"],
    );
    capped(&["load", "-i", &l2.to_string_lossy()]).failed_mentioning(&[
        "twolayers:1",
        &sha256(&b)[7..19],
        "BERTH_MAX_IMAGE_SIZE",
    ]);
    assert!(s.image_names().is_empty());
    // Without the caps both load and run.
    s.berth(&["load", "-i", &l2.to_string_lossy()]).ok();
    assert_eq!(s.image_names(), ["twolayers:1"]);
}

/// `kill -9` of `berth pull` mid-blob leaves a `.partial-` file in the content store: it
/// is locked while its pull runs (another prune keeps it), and collected by the next
/// `image prune` once its writer is gone.
#[test]
fn killed_pull_partials_are_collected() {
    use std::io::{BufRead, BufReader, Write as _};
    let s = Store::new("partial");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = vec![0x55u8; 1 << 20];
    let cd = sha256(&config);
    let ld = sha256(&layer);
    let layer_hex = ld[7..].to_string();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    }))
    .expect("manifest");
    // A registry on loopback that sends half of the layer and then stalls (it stops by
    // itself after a minute).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    std::thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        while std::time::Instant::now() < deadline {
            let Ok((conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let (manifest, config, layer) = (manifest.clone(), config.clone(), layer.clone());
            let (cd, ld) = (cd.clone(), ld.clone());
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let ping = b"{}".to_vec();
                    let (ct, body, stall) = if path == "/v2/" {
                        ("application/json", &ping, false)
                    } else if path.contains("/manifests/") {
                        (
                            "application/vnd.oci.image.manifest.v1+json",
                            &manifest,
                            false,
                        )
                    } else if path.ends_with(&cd) {
                        ("application/octet-stream", &config, false)
                    } else if path.ends_with(&ld) {
                        ("application/octet-stream", &layer, true)
                    } else {
                        let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                        continue;
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: {}\r\ndocker-content-digest: {}\r\n\r\n",
                        body.len(),
                        sha256(body)
                    );
                    let _ = w.write_all(head.as_bytes());
                    if stall {
                        let _ = w.write_all(&body[..body.len() / 2]);
                        let _ = w.flush();
                        std::thread::sleep(
                            deadline.saturating_duration_since(std::time::Instant::now()),
                        );
                        return;
                    }
                    let _ = w.write_all(body);
                }
            });
        }
    });
    let home = s.dir.join("home");
    fs::create_dir_all(&home).expect("home");
    let partials = || -> Vec<String> {
        fs::read_dir(s.root().join("content/blobs/sha256"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".partial"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let spawn = || {
        let mut c = s.command(&[
            "pull",
            "--tls-verify=false",
            &format!("{addr}/stall/app:v1"),
        ]);
        c.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c.spawn().expect("spawn berth pull")
    };
    // Starts a pull and waits for the partial file of its layer (a name not in `known`).
    let start = |known: &[String]| -> (std::process::Child, String) {
        let child = spawn();
        let new = poll(Duration::from_secs(30), || {
            partials()
                .into_iter()
                .find(|n| n.starts_with(&layer_hex) && !known.contains(n))
        });
        (child, new.expect("berth pull never wrote a partial file"))
    };
    let kill = |mut child: std::process::Child| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        let _ = child.wait();
    };
    // Two pulls at once: the second one's collection spares the first one's live file.
    let (a, pa) = start(&[]);
    let (b, _) = start(std::slice::from_ref(&pa));
    assert!(
        partials().contains(&pa),
        "a live partial file was collected"
    );
    kill(a);
    kill(b);
    let stale = partials();
    assert!(stale.len() >= 2, "{stale:?}");
    // The next pull collects what the killed ones left.
    let (c, pc) = start(&stale);
    let left = partials();
    assert!(
        !left.iter().any(|n| stale.contains(n)),
        "the next pull left {left:?}"
    );
    assert!(left.contains(&pc));
    kill(c);
    // And so does `image prune`.
    s.berth(&["image", "prune"]).ok();
    assert!(partials().is_empty(), "prune left {:?}", partials());
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

/// Issue 10, item 18 (the direct path, `BERTH_RUN_DIRECT=1`: berth runs berth-runtime
/// itself, no monitor): `kill -9` of `berth run --rm` leaves the container running (as
/// with Docker's CLI), but once it ends, its directory (writable layer, chains.json
/// pinning the snapshots) must not stay forever: the next `image prune` finishes the
/// `--rm`, a running container is kept, and `container prune` removes ended containers
/// kept without `--rm`. (Through the engine, the default, the monitor removes it:
/// tests/engine_cmds2.rs.)
#[test]
fn killed_run_rm_is_removed_once_its_container_ends() {
    let s = Store::new("stale");
    let direct_run = |args: &[&str]| {
        let mut c = s.command(args);
        c.env("BERTH_RUN_DIRECT", "1");
        c
    };
    s.import_busybox("busybox");
    let containers = s.root().join("containers");
    let rt_state = |id: &str| s.dir.join("run/runtime").join(id).join("state.json");
    let start = |name: &str, secs: &str| {
        let mut c = direct_run(&["run", "--rm", "--name", name, "busybox", "sleep", secs]);
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
    capture(
        direct_run(&["run", "--name", "kept", "busybox", "true"]),
        Capture::Pipes,
        BERTH_TIMEOUT,
    )
    .ok();
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

/// The late `--rm` (of the direct path) never removes a running container run with
/// another `--runroot` (its runtime state is there, not in ours), and a directory it
/// cannot remove never fails the user's command.
#[test]
fn late_rm_respects_another_runroot_and_never_fails_the_command() {
    let s = Store::new("stale-runroot");
    let direct_run = |args: &[&str]| {
        let mut c = s.command(args);
        c.env("BERTH_RUN_DIRECT", "1");
        c
    };
    s.import_busybox("busybox");
    let containers = s.root().join("containers");
    let other = s.dir.join("other-run");
    let mut c = std::process::Command::new(berth_bin());
    c.arg("--root")
        .arg(s.root())
        .arg("--runroot")
        .arg(&other)
        .env("BERTH_RUNTIME", runtime_bin())
        .env("BERTH_RUN_DIRECT", "1")
        .args(["run", "--rm", "--name", "away", "busybox", "sleep", "4"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut away = c.spawn().expect("start berth run");
    let state = other.join("runtime/away/state.json");
    poll(Duration::from_secs(20), || state.exists().then_some(()))
        .expect("the container did not start");
    away.kill().expect("SIGKILL berth");
    let _ = away.wait();
    // Our runroot knows nothing of it, but it runs: kept.
    s.berth(&["image", "prune"]).ok();
    assert!(
        containers.join("away").join("upper").exists(),
        "image prune removed a running container started with another --runroot"
    );
    poll(Duration::from_secs(20), || (!state.exists()).then_some(()))
        .expect("the container did not end");
    // Ended: its late --rm happens, from any runroot.
    s.berth(&["image", "prune"]).ok();
    assert!(
        !containers.join("away").exists(),
        "the ended --rm container stayed"
    );

    // A stale directory that cannot be removed: the next run still works.
    let mut c = direct_run(&["run", "--rm", "--name", "stuck", "busybox", "sleep", "1"]);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut stuck = c.spawn().expect("start berth run");
    let st2 = s.dir.join("run/runtime/stuck/state.json");
    poll(Duration::from_secs(20), || st2.exists().then_some(()))
        .expect("the container did not start");
    stuck.kill().expect("SIGKILL berth");
    let _ = stuck.wait();
    poll(Duration::from_secs(20), || (!st2.exists()).then_some(()))
        .expect("the container did not end");
    let pinned = containers.join("stuck").join("pinned");
    fs::write(&pinned, "x").expect("write");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&pinned)
            .status()
            .is_ok_and(|st| st.success())
    };
    assert!(
        chattr("+i"),
        "chattr +i failed (e2fsprogs is in install-deps)"
    );
    let out = capture(
        direct_run(&["run", "--rm", "busybox", "echo", "still works"]),
        Capture::Pipes,
        BERTH_TIMEOUT,
    );
    chattr("-i");
    out.ok().says("still works");
    assert!(
        out.stderr
            .contains("could not remove ended container stuck"),
        "no warning: {out}"
    );
}
