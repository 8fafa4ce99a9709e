//! Volumes, `cp` and admission end to end: named volumes outliving their containers and
//! seeded from the image, `volume rm` of a used volume, anonymous volumes and `rm -v`,
//! `--tmpfs` and `--mount`, `cp` both ways (running and stopped) and through a hostile
//! symlink, admission refusing what does not fit and two starts racing for the last slot.
//! Root, real containers, a busybox image imported locally.

use berth_tests::engine::Eng;
use berth_tests::*;
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// What these tests ask of the shared engine test store beyond tests/src/engine.rs.
trait VolumeEng {
    fn data(&self, volume: &str) -> PathBuf;
    fn volumes(&self) -> Vec<String>;
    fn exec(&self, c: &str, cmd: &str) -> Output;
}

impl VolumeEng for Eng {
    fn data(&self, volume: &str) -> PathBuf {
        self.s.root().join("volumes").join(volume).join("_data")
    }

    fn volumes(&self) -> Vec<String> {
        let out = self.berth(&["volume", "ls", "-q"]);
        out.ok();
        out.stdout.lines().map(str::to_string).collect()
    }

    fn exec(&self, c: &str, cmd: &str) -> Output {
        self.berth(&["exec", c, "sh", "-c", cmd])
    }
}

#[test]
fn named_volume_is_seeded_from_the_image_and_outlives_its_container() {
    let e = Eng::new("named");
    e.berth(&["volume", "create", "--label", "tier=db", "data1"])
        .ok()
        .prints("data1\n");
    let v: Value = serde_json::from_str(&e.berth(&["volume", "inspect", "data1"]).stdout)
        .expect("inspect prints JSON");
    assert_eq!(v[0]["Name"], "data1");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Labels"]["tier"], "db");
    assert_eq!(v[0]["Mountpoint"], e.data("data1").display().to_string());
    assert!(v[0]["CreatedAt"].as_str().is_some_and(|s| !s.is_empty()));

    e.run_d(&[
        "--name",
        "w1",
        "-v",
        "data1:/etc",
        "busybox",
        "sh",
        "-c",
        "echo kept > /etc/kept; sleep 1000",
    ]);
    let kept = e.data("data1").join("kept");
    assert!(
        poll(Duration::from_secs(20), || kept.exists().then_some(())).is_some(),
        "the container's write never reached the volume"
    );
    // The image's /etc was copied into the empty volume (Docker's copy-up).
    assert_eq!(
        fs::read_to_string(e.data("data1").join("motd"))
            .ok()
            .as_deref(),
        Some("hello from busybox\n")
    );
    e.berth(&["rm", "-f", "w1"]).ok();
    assert!(kept.exists(), "rm removed the named volume's data");
    assert!(e.volumes().contains(&"data1".to_string()));
    // A new container (foreground) sees it.
    e.berth(&[
        "run",
        "--rm",
        "-v",
        "data1:/etc",
        "busybox",
        "cat",
        "/etc/kept",
    ])
    .ok()
    .prints("kept\n");

    // A volume made on first use, seeded with the image's /bin: its symlinks are copied
    // as symlinks, never followed.
    e.berth(&["run", "--rm", "-v", "bins:/bin:ro", "busybox", "true"])
        .ok();
    let sh = e.data("bins").join("sh");
    assert_eq!(
        fs::read_link(&sh).ok(),
        Some(PathBuf::from("busybox")),
        "the image's /bin/sh symlink was not copied as a symlink"
    );

    e.berth(&["volume", "create", "a/b"])
        .failed_mentioning(&["invalid volume name", "a/b"]);
    e.berth(&["run", "--rm", "-v", "x:/data", "busybox", "true"])
        .failed_mentioning(&["invalid volume name", "\"x\""]);
}

#[test]
fn volume_rm_of_a_used_volume_is_refused_naming_the_container() {
    let e = Eng::new("inuse");
    e.berth(&[
        "create",
        "--name",
        "holder",
        "-v",
        "used1:/data",
        "busybox",
        "true",
    ])
    .ok();
    assert!(
        e.volumes().contains(&"used1".to_string()),
        "create made no volume"
    );
    e.berth(&["volume", "rm", "used1"])
        .failed_mentioning(&["used1", "in use", "holder"]);
    // Docker refuses it with -f too.
    e.berth(&["volume", "rm", "-f", "used1"])
        .failed_mentioning(&["holder"]);
    e.berth(&["volume", "prune", "-a"]).ok();
    assert!(
        e.volumes().contains(&"used1".to_string()),
        "prune took a used volume"
    );
    e.berth(&["rm", "holder"]).ok();
    e.berth(&["volume", "rm", "used1"]).ok();
    assert!(!e.volumes().contains(&"used1".to_string()));
    assert!(!e.s.root().join("volumes/used1").exists());
    e.berth(&["volume", "rm", "used1"])
        .failed_mentioning(&["no such volume", "used1"]);
    e.berth(&["volume", "rm", "-f", "used1"]).ok();
}

#[test]
fn anonymous_volumes_go_with_rm_v_only() {
    let e = Eng::new("anon");
    let ctx = e.s.dir.join("ctx");
    fs::create_dir_all(&ctx).expect("mkdir ctx");
    fs::write(ctx.join("seed"), "from the image\n").expect("write seed");
    fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nCOPY seed /data/seed\nVOLUME /data\n",
    )
    .expect("write Containerfile");
    e.berth(&["build", "-t", "withvol", &ctx.display().to_string()])
        .ok();

    e.berth(&["create", "--name", "keep", "withvol", "true"])
        .ok();
    let first = e.volumes();
    assert_eq!(
        first.len(),
        1,
        "one anonymous volume for VOLUME /data: {first:?}"
    );
    e.berth(&["rm", "keep"]).ok();
    assert_eq!(
        e.volumes(),
        first,
        "a plain rm removed the anonymous volume"
    );

    e.run_d(&["--name", "gone", "withvol", "sleep", "1000"]);
    let both = e.volumes();
    assert_eq!(both.len(), 2, "{both:?}");
    let mine: Vec<&String> = both.iter().filter(|v| !first.contains(v)).collect();
    let seed = e.data(mine[0]).join("seed");
    assert!(
        poll(Duration::from_secs(20), || seed.exists().then_some(())).is_some(),
        "the anonymous volume was not seeded from the image"
    );
    e.berth(&["rm", "-f", "-v", "gone"]).ok();
    assert_eq!(e.volumes(), first, "rm -v kept the anonymous volume");
    // A -v to the same path replaces the image's volume: nothing anonymous is made.
    e.berth(&[
        "create",
        "--name",
        "named",
        "-v",
        "mine:/data",
        "withvol",
        "true",
    ])
    .ok();
    let mut want = first.clone();
    want.push("mine".into());
    want.sort();
    assert_eq!(e.volumes(), want);
}

#[test]
fn tmpfs_and_mount_flags() {
    let e = Eng::new("tmpfs");
    let host = e.s.dir.join("hostdir");
    fs::create_dir_all(&host).expect("mkdir");
    fs::write(host.join("f"), "host file\n").expect("write");
    let bind = format!("type=bind,source={},target=/h,readonly", host.display());
    let out = e.berth(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m,mode=750",
        "--mount",
        "type=tmpfs,target=/t2,tmpfs-size=2m",
        "--mount",
        &bind,
        "--mount",
        "type=volume,source=mv1,target=/v",
        "busybox",
        "sh",
        "-c",
        "grep -E ' /(scratch|t2|h) ' /proc/mounts; cat /h/f; echo hi > /v/hi; \
         if echo x > /h/new 2>/dev/null; then echo WROTE; fi",
    ]);
    out.ok();
    let m = &out.stdout;
    assert!(
        m.lines().any(|l| l.contains(" /scratch tmpfs ")
            && l.contains("size=1024k")
            && l.contains("mode=750")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.contains(" /t2 tmpfs ") && l.contains("size=2048k")),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l.contains(" /h ") && l.contains("ro,")),
        "{m}"
    );
    assert!(m.contains("host file"), "{m}");
    assert!(
        !m.contains("WROTE"),
        "a readonly bind mount was writable: {m}"
    );
    assert!(!host.join("new").exists());
    assert_eq!(
        fs::read_to_string(e.data("mv1").join("hi")).ok().as_deref(),
        Some("hi\n")
    );
    // Detached too, and bad flags are one clear error.
    e.run_d(&[
        "--name", "t", "--tmpfs", "/scratch", "busybox", "sleep", "1000",
    ]);
    e.exec("t", "grep ' /scratch tmpfs ' /proc/mounts").ok();
    e.berth(&[
        "run",
        "-d",
        "--mount",
        "type=nfs,target=/x",
        "busybox",
        "true",
    ])
    .failed_mentioning(&["--mount", "nfs"]);
    e.berth(&["run", "-d", "--tmpfs", "rel", "busybox", "true"])
        .failed_mentioning(&["--tmpfs", "not absolute"]);
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let e = Eng::new("cp");
    e.run_d(&[
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /srv/d && echo inner > /srv/d/f && sleep 1000",
    ]);
    assert!(
        poll(Duration::from_secs(20), || e
            .exec("c", "test -f /srv/d/f")
            .success()
            .then_some(()))
        .is_some(),
        "the container never wrote its file"
    );
    let out = e.s.dir.join("out");
    fs::create_dir_all(&out).expect("mkdir");
    // A directory out, into an existing host directory.
    e.berth(&["cp", "c:/srv/d", &out.display().to_string()])
        .ok();
    assert_eq!(
        fs::read_to_string(out.join("d/f")).ok().as_deref(),
        Some("inner\n")
    );
    // A file in, under a new name, and into a directory.
    let src = e.s.dir.join("in.txt");
    fs::write(&src, "from the host\n").expect("write");
    e.berth(&["cp", &src.display().to_string(), "c:/srv/copied"])
        .ok();
    e.berth(&["cp", &src.display().to_string(), "c:/srv/d"])
        .ok();
    e.exec("c", "cat /srv/copied /srv/d/in.txt")
        .ok()
        .prints("from the host\nfrom the host\n");

    // Stopped: through its overlay.
    e.berth(&["stop", "-t", "1", "c"]).ok();
    e.berth(&["cp", &src.display().to_string(), "c:/srv/while-stopped"])
        .ok();
    e.berth(&[
        "cp",
        "c:/srv/copied",
        &out.join("back").display().to_string(),
    ])
    .ok();
    assert_eq!(
        fs::read_to_string(out.join("back")).ok().as_deref(),
        Some("from the host\n")
    );
    e.berth(&["start", "c"]).ok();
    e.exec("c", "cat /srv/while-stopped")
        .ok()
        .prints("from the host\n");
    e.berth(&["cp", "c:/nonexistent", &out.display().to_string()])
        .failed_mentioning(&["no such file", "/nonexistent"]);
}

#[test]
fn cp_through_a_hostile_symlink_stays_inside_the_container() {
    let e = Eng::new("cphostile");
    let marker = format!("berth-cp-planted-{}", std::process::id());
    e.run_d(&[
        "--name",
        "h",
        "busybox",
        "sh",
        "-c",
        "ln -s /etc /evil && ln -s ../../../../.. /up && sleep 1000",
    ]);
    assert!(
        poll(Duration::from_secs(20), || e
            .exec("h", "test -L /evil")
            .success()
            .then_some(()))
        .is_some(),
        "no symlink"
    );
    let out = e.s.dir.join("out");
    fs::create_dir_all(&out).expect("mkdir");
    // Reading through /evil reads the container's /etc, never the host's.
    e.berth(&[
        "cp",
        "h:/evil/passwd",
        &out.join("passwd").display().to_string(),
    ])
    .ok();
    assert_eq!(
        fs::read_to_string(out.join("passwd")).ok().as_deref(),
        Some(PASSWD)
    );
    e.berth(&[
        "cp",
        "h:/up/up/etc/hostname",
        &out.join("hostname").display().to_string(),
    ])
    .ok();
    // The container's /etc/hostname (berth writes it per container), never the host's.
    let inside = e.exec("h", "cat /etc/hostname");
    assert!(inside.success(), "{inside}");
    assert_eq!(
        fs::read_to_string(out.join("hostname")).ok().as_deref(),
        Some(inside.stdout.as_str())
    );
    // The symlink itself is copied as a symlink.
    e.berth(&["cp", "h:/evil", &out.display().to_string()]).ok();
    assert_eq!(
        fs::read_link(out.join("evil")).ok(),
        Some(PathBuf::from("/etc"))
    );
    // Writing through it lands in the container's /etc, never the host's.
    let src = e.s.dir.join(&marker);
    fs::write(&src, "planted\n").expect("write");
    e.berth(&[
        "cp",
        &src.display().to_string(),
        &format!("h:/evil/{marker}"),
    ])
    .ok();
    e.berth(&["cp", &src.display().to_string(), "h:/up/../../evil/"])
        .ok();
    assert!(
        !PathBuf::from("/etc").join(&marker).exists(),
        "cp wrote into the host's /etc"
    );
    let _ = fs::remove_file(PathBuf::from("/etc").join(&marker));
    e.exec("h", &format!("cat /etc/{marker}"))
        .ok()
        .prints("planted\n");
    // Stopped, through the overlay's upper dir: the same.
    e.berth(&["stop", "-t", "1", "h"]).ok();
    e.berth(&[
        "cp",
        &src.display().to_string(),
        &format!("h:/evil/{marker}.2"),
    ])
    .ok();
    assert!(
        !PathBuf::from("/etc").join(format!("{marker}.2")).exists(),
        "cp wrote into the host's /etc"
    );
    let _ = fs::remove_file(PathBuf::from("/etc").join(format!("{marker}.2")));
    e.berth(&[
        "cp",
        "h:/evil/passwd",
        &out.join("passwd2").display().to_string(),
    ])
    .ok();
    assert_eq!(
        fs::read_to_string(out.join("passwd2")).ok().as_deref(),
        Some(PASSWD)
    );
}

#[test]
fn admission_refuses_what_does_not_fit_and_queues_with_wait() {
    let e = Eng::new("admit");
    e.berth(&["system", "capacity", "--memory", "64m", "--cpus", "2"])
        .ok();
    e.run_d(&["--name", "a", "--memory", "48m", "busybox", "sleep", "1000"]);
    e.berth(&[
        "run", "-d", "--name", "b", "--memory", "32m", "busybox", "sleep", "1000",
    ])
    .failed_mentioning(&[
        "b",
        "needs 32MiB memory",
        "16MiB of 64MiB free",
        "reserved by a",
    ]);
    e.berth(&["start", "b", "--wait", "--wait-timeout", "1"])
        .failed_mentioning(&["needs 32MiB memory", "waited"]);
    e.berth(&["run", "-d", "--name", "c", "--cpus", "3", "busybox", "true"])
        .failed_mentioning(&["needs 3 CPUs", "2 of 2 free"]);
    let info = e.berth(&["system", "info", "--format", "json"]);
    info.ok();
    let v: Value = serde_json::from_str(&info.stdout).expect("json");
    assert_eq!(v["Capacity"]["Memory"], 64 << 20);
    assert_eq!(v["Reserved"]["Memory"], 48 << 20);
    assert_eq!(v["Free"]["Memory"], 16 << 20);
    assert_eq!(v["Reservations"][0]["Container"], "a");

    // Queued: b starts once a stops.
    let mut waiting = e.s.command(&["start", "--wait", "b"]);
    waiting
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = waiting.spawn().expect("spawn start --wait");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "start --wait did not wait"
    );
    e.berth(&["stop", "-t", "1", "a"]).ok();
    let got = poll(Duration::from_secs(30), || child.try_wait().ok().flatten());
    let status = got.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("start --wait never started b after a stopped")
    });
    assert!(status.success(), "start --wait failed");
    let info = e.berth(&["system", "info", "--format", "json"]);
    let v: Value = serde_json::from_str(&info.stdout).expect("json");
    assert_eq!(v["Reserved"]["Memory"], 32 << 20, "{v:#}");
}

#[test]
fn two_concurrent_starts_for_the_last_slot_exactly_one_wins() {
    let e = Eng::new("race");
    e.berth(&["system", "capacity", "--memory", "100m"]).ok();
    for n in ["x", "y"] {
        e.berth(&[
            "create", "--name", n, "--memory", "60m", "busybox", "sleep", "1000",
        ])
        .ok();
    }
    for round in 0..3 {
        let children: Vec<_> = ["x", "y"]
            .iter()
            .map(|n| {
                let mut c = e.s.command(&["start", n]);
                c.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c.spawn().expect("spawn start")
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait"))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        let msgs: Vec<String> = outs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        assert_eq!(won, 1, "round {round}: {won} starts won: {msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("does not fit") && m.contains("reserved by")),
            "{msgs:?}"
        );
        for n in ["x", "y"] {
            let _ = e.berth(&["stop", "-t", "0", n]);
        }
    }
}
