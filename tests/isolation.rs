//! What the container sees: namespaces, root filesystem, mounts, devices, capabilities,
//! user, rlimits, sysctls, user and time namespaces, and the classic escapes.

use berth_tests::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn drop_namespace(c: &mut Value, ty: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != ty);
}

fn add_namespace(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(ns);
}

#[test]
fn init_is_pid_1() {
    let b = Bundle::new("pid1").sh("echo $$; cat /proc/self/stat | cut -d' ' -f1,4");
    // The shell is pid 1; `cat` (its child) has parent 1.
    let out = b.run();
    let lines: Vec<&str> = out.stdout.lines().collect();
    out.ok();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "1", "{out}");
    assert!(lines[1].ends_with(" 1"), "{out}");
}

#[test]
fn hostname_from_config() {
    let b = Bundle::new("hostname").args(&["hostname"]);
    b.run().prints(&format!("{HOSTNAME}\n"));
    let b = Bundle::new("hostname2")
        .with(|c| c["hostname"] = json!("other-name"))
        .sh("hostname; cat /proc/sys/kernel/hostname");
    b.run().prints("other-name\nother-name\n");
}

// runc 1.1 ignores `domainname` (runc 1.2 sets it).
#[test]
fn domainname_from_config() {
    let b = Bundle::new("domain")
        .with(|c| c["domainname"] = json!("berth.example"))
        .args(&["cat", "/proc/sys/kernel/domainname"]);
    b.run().prints("berth.example\n");
}

/// The mount points of a /proc/mounts text.
fn mount_points(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|p| p.replace("\\040", " "))
        .collect()
}

#[test]
fn host_mounts_are_invisible_and_only_expected_mounts_exist() {
    let marker = TempDir::new("hostmarker");
    nix::mount::mount(
        Some("tmpfs"),
        marker.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount a marker tmpfs on the host");
    let b = Bundle::new("mounts").args(&["cat", "/proc/mounts"]);
    let out = b.run();
    out.ok();
    let marker_path = marker.path().to_string_lossy().into_owned();
    assert!(
        !out.stdout.contains(&marker_path),
        "host mount visible inside:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(&b.dir_str()),
        "bundle path visible in mounts:\n{}",
        out.stdout
    );
    let points = mount_points(&out.stdout);
    let configured: BTreeSet<String> = b.config()["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["destination"].as_str().map(String::from))
        .collect();
    let mut allowed = configured.clone();
    allowed.insert("/".into());
    allowed.extend(MASKED_PATHS.iter().map(|s| s.to_string()));
    allowed.extend(READONLY_PATHS.iter().map(|s| s.to_string()));
    for p in &points {
        let ok = allowed.contains(p) || p.starts_with("/sys/fs/cgroup/");
        assert!(ok, "unexpected mount {p} inside:\n{}", out.stdout);
    }
    for c in &configured {
        assert!(
            points.contains(c),
            "configured mount {c} missing:\n{}",
            out.stdout
        );
    }
    assert_eq!(
        points.first().map(String::as_str),
        Some("/"),
        "{}",
        out.stdout
    );
    // Every existing readonly path is mounted read-only.
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if READONLY_PATHS.contains(&f[1]) {
            assert!(f[3].split(',').any(|o| o == "ro"), "{line} is not ro");
        }
    }
}

#[test]
fn readonly_rootfs() {
    let b = Bundle::new("rorootfs").args(&["touch", "/x"]);
    let out = b.run();
    out.failed();
    assert!(
        out.stderr.contains("Read-only file system"),
        "touch on a readonly rootfs:\n{out}"
    );
    assert!(!b.rootfs().join("x").exists());

    let b = Bundle::new("rwrootfs")
        .with(|c| c["root"]["readonly"] = json!(false))
        .sh("echo written > /x && cat /x");
    b.run().prints("written\n");
    assert_eq!(
        fs::read_to_string(b.rootfs().join("x")).unwrap_or_default(),
        "written\n"
    );
}

#[test]
fn masked_paths() {
    assert!(
        !fs::read_to_string("/proc/timer_list")
            .unwrap_or_default()
            .is_empty(),
        "host /proc/timer_list is empty: the test proves nothing"
    );
    assert!(fs::read_dir("/sys/firmware").is_ok_and(|mut d| d.next().is_some()));
    let b = Bundle::new("masked").sh(
        "wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; cat /proc/kcore 2>/dev/null | wc -c",
    );
    b.run().prints("0\n0\n0\n");
}

#[test]
fn masked_path_custom_dir_and_file() {
    let b = Bundle::new("maskcustom")
        .with(|c| {
            c["linux"]["maskedPaths"] = json!(["/etc", "/bin/busybox-missing", "/proc/cpuinfo"]);
        })
        .sh("ls -A /etc | wc -l; wc -c < /proc/cpuinfo");
    b.run().prints("0\n0\n");
}

#[test]
fn readonly_paths() {
    let b = Bundle::new("ropaths").sh("echo x > /proc/sys/kernel/hostname");
    let out = b.run();
    out.failed();
    assert!(out.stderr.contains("Read-only file system"), "{out}");

    // Without the readonly path, the write works (uts namespace: harmless).
    let b = Bundle::new("ropaths2")
        .with(|c| c["linux"]["readonlyPaths"] = json!([]))
        .sh("echo changed > /proc/sys/kernel/hostname && hostname");
    b.run().prints("changed\n");
}

#[test]
fn capabilities_exact_masks_and_chown() {
    let dropped: Vec<&str> = DEFAULT_CAPS
        .iter()
        .copied()
        .filter(|c| *c != "CAP_NET_RAW" && *c != "CAP_CHOWN")
        .collect();
    let b = Bundle::new("capsdrop")
        .tmpfs("/tmp")
        .with(|c| {
            c["process"]["capabilities"] =
                json!({ "bounding": dropped, "effective": dropped, "permitted": dropped });
        })
        .sh("grep Cap /proc/self/status; touch /tmp/f; chown 1000 /tmp/f");
    let out = b.run();
    out.failed();
    let m = cap_mask(&dropped);
    let expected = format!(
        "CapInh:\t0000000000000000\nCapPrm:\t{m}\nCapEff:\t{m}\nCapBnd:\t{m}\nCapAmb:\t0000000000000000\n"
    );
    assert_eq!(out.stdout, expected, "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");

    let b = Bundle::new("capsdefault")
        .tmpfs("/tmp")
        .sh("grep CapEff /proc/self/status; touch /tmp/f; chown 1000 /tmp/f && stat -c %u /tmp/f");
    let m = cap_mask(DEFAULT_CAPS);
    b.run().prints(&format!("CapEff:\t{m}\n1000\n"));
}

#[test]
fn every_capability_asked_gives_what_the_host_can_give() {
    // SetupPrivileged-style configs list every capability, including ones this kernel or
    // this host's bounding set lacks: the container gets what can be had, no capset EPERM.
    let host_bnd = proc_status_field(std::process::id() as i32, "CapBnd");
    let b = Bundle::new("allcaps");
    let features = b.rt(&["features"]);
    features.ok();
    let all = serde_json::from_str::<Value>(&features.stdout).expect("features JSON")["linux"]
        ["capabilities"]
        .clone();
    assert!(all.as_array().is_some_and(|a| a.len() >= 38), "{features}");
    let b = b
        .with(|c| {
            for set in [
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ] {
                c["process"]["capabilities"][set] = all.clone();
            }
        })
        .sh("grep -E '^Cap(Eff|Bnd)' /proc/self/status | cut -f2");
    let out = b.run();
    out.ok();
    assert_eq!(out.stdout, format!("{host_bnd}\n{host_bnd}\n"), "{out}");
}

#[test]
fn ambient_and_inheritable_capabilities_for_a_non_root_user() {
    let set = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let b = Bundle::new("ambient")
        .with(|c| {
            c["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
            c["process"]["capabilities"] = json!({
                "bounding": set, "effective": set, "permitted": set,
                "inheritable": set, "ambient": set
            });
        })
        .args(&["grep", "-E", "Cap(Eff|Amb)", "/proc/self/status"]);
    let m = cap_mask(&set);
    b.run().prints(&format!("CapEff:\t{m}\nCapAmb:\t{m}\n"));
}

#[test]
fn user_groups_and_umask() {
    let b = Bundle::new("user")
        .tmpfs("/tmp")
        .with(|c| {
            c["process"]["user"] =
                json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 29], "umask": 0o027 });
        })
        .sh("id; umask; touch /tmp/f; stat -c '%u %g %a' /tmp/f");
    b.run()
        .prints("uid=1000(user) gid=1000(user) groups=10(wheel),29(audio)\n0027\n1000 1000 640\n");
}

#[test]
fn env_and_cwd() {
    let b = Bundle::new("envcwd")
        .with(|c| {
            c["process"]["env"] = json!(["PATH=/bin", "FOO=bar", "SPACED=a b  c"]);
            c["process"]["cwd"] = json!("/etc");
        })
        .sh("echo \"$FOO|$SPACED|$PATH\"; pwd");
    b.run().prints("bar|a b  c|/bin\n/etc\n");
}

#[test]
fn cwd_is_created_if_missing() {
    let b = Bundle::new("cwdnew")
        .with(|c| {
            c["root"]["readonly"] = json!(false);
            c["process"]["cwd"] = json!("/work/dir");
        })
        .args(&["pwd"]);
    b.run().prints("/work/dir\n");
}

#[test]
fn rlimits() {
    let b = Bundle::new("rlimits")
        .with(|c| {
            c["process"]["rlimits"] = json!([
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512 },
                { "type": "RLIMIT_NPROC", "hard": 300, "soft": 200 }
            ]);
        })
        .sh("ulimit -n; ulimit -Hn; ulimit -u");
    b.run().prints("512\n1024\n200\n");
}

#[test]
fn no_new_privileges() {
    let b = Bundle::new("nnp").args(&["grep", "NoNewPrivs", "/proc/self/status"]);
    b.run().prints("NoNewPrivs:\t1\n");
    assert_eq!(
        proc_status_field(std::process::id() as i32, "NoNewPrivs"),
        "0",
        "the test process has no_new_privs: the false case proves nothing"
    );
    let b = Bundle::new("nnp0")
        .with(|c| c["process"]["noNewPrivileges"] = json!(false))
        .args(&["grep", "NoNewPrivs", "/proc/self/status"]);
    b.run().prints("NoNewPrivs:\t0\n");
}

#[test]
fn oom_score_adj() {
    let b = Bundle::new("oomadj")
        .with(|c| c["process"]["oomScoreAdj"] = json!(500))
        .args(&["cat", "/proc/self/oom_score_adj"]);
    b.run().prints("500\n");
}

#[test]
fn sysctl_in_the_container_network_namespace() {
    let read = "cat /proc/sys/net/ipv4/ip_forward";
    let control = Bundle::new("sysctl0").sh(read).run();
    control.ok();
    let other = if control.stdout.trim() == "1" {
        "0"
    } else {
        "1"
    };
    let b = Bundle::new("sysctl")
        .with(|c| c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": other }))
        .sh(read);
    b.run().prints(&format!("{other}\n"));
}

#[test]
fn bind_mount_read_only() {
    let data = TempDir::new("bindro");
    fs::write(data.join("f"), "host data\n").expect("write");
    let b = Bundle::new("bindro")
        .bind(data.path(), "/data", true)
        .sh("cat /data/f; touch /data/new");
    let out = b.run();
    out.failed();
    assert_eq!(out.stdout, "host data\n", "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(!data.join("new").exists());

    let b = Bundle::new("bindrw")
        .bind(data.path(), "/data", false)
        .sh("echo from container > /data/new");
    b.run().ok();
    assert_eq!(
        fs::read_to_string(data.join("new")).unwrap_or_default(),
        "from container\n"
    );
}

#[test]
fn tmpfs_size_and_mode() {
    let b = Bundle::new("tmpfsopts")
        .mount(json!({
            "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
            "options": ["size=1m", "mode=0710"]
        }))
        .sh("stat -c %a /scratch; grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4");
    let out = b.run();
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "710", "{out}");
    assert!(lines[1].starts_with("tmpfs "), "{out}");
    let opts: Vec<&str> = lines[1][6..].split(',').collect();
    assert!(opts.contains(&"size=1024k"), "{out}");
    assert!(opts.contains(&"mode=710"), "{out}");
}

#[test]
fn noexec_tmpfs_refuses_exec() {
    let b = Bundle::new("noexec")
        .mount(json!({
            "destination": "/x", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec"]
        }))
        .sh("grep ' /x ' /proc/mounts | cut -d' ' -f4; cp /bin/busybox /x/echo && /x/echo ran");
    let out = b.run();
    out.failed();
    let opts: Vec<&str> = out.stdout.trim().split(',').collect();
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o), "{o} missing:\n{out}");
    }
    assert!(!out.stdout.contains("ran"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");

    // The same copy runs from an exec-able tmpfs.
    let b = Bundle::new("exec")
        .tmpfs("/x")
        .sh("cp /bin/busybox /x/echo && /x/echo ran");
    b.run().prints("ran\n");
}

#[test]
fn default_devices() {
    let b = Bundle::new("devices").sh(
        "stat -c '%n %F %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
         for l in ptmx fd stdin stdout stderr; do [ -e /dev/$l ] || [ -L /dev/$l ] && echo $l; done; \
         for l in fd stdin stdout stderr; do readlink /dev/$l; done; \
         head -c 4 /dev/zero | wc -c; echo ok > /dev/null && echo null-ok",
    );
    b.run().prints(
        "/dev/null character special file 1:3\n\
         /dev/zero character special file 1:5\n\
         /dev/full character special file 1:7\n\
         /dev/random character special file 1:8\n\
         /dev/urandom character special file 1:9\n\
         /dev/tty character special file 5:0\n\
         ptmx\nfd\nstdin\nstdout\nstderr\n\
         /proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n\
         4\nnull-ok\n",
    );
}

#[test]
fn default_devices_without_a_dev_mount() {
    // No mount at /dev (nor under it): the default devices go into the image's /dev, as
    // runc does, and masked paths (bound to /dev/null) still work.
    let b = Bundle::new("nodevmount")
        .with(|c| {
            c["mounts"]
                .as_array_mut()
                .expect("mounts")
                .retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
        })
        .sh(
            "stat -c '%F %t:%T' /dev/null /dev/zero; echo x > /dev/null && echo null-ok; \
             head -c 3 /dev/zero | wc -c; cat /proc/kcore | wc -c",
        );
    b.run()
        .ok()
        .prints("character special file 1:3\ncharacter special file 1:5\nnull-ok\n3\n0\n");
}

#[test]
fn extra_device_from_config() {
    let b = Bundle::new("extradev")
        .with(|c| {
            c["linux"]["devices"] = json!([{
                "path": "/dev/loop-test", "type": "c", "major": 1, "minor": 3,
                "fileMode": 0o666, "uid": 0, "gid": 0
            }]);
        })
        .sh("stat -c '%F %t:%T %a %u' /dev/loop-test; echo x > /dev/loop-test && echo written");
    b.run()
        .prints("character special file 1:3 666 0\nwritten\n");
}

#[test]
fn devices_of_every_type_from_config() {
    // runtime-tools' linux_devices: a character device, a block device and a fifo.
    let b = Bundle::new("devtypes")
        .with(|c| {
            c["linux"]["devices"] = json!([
                { "path": "/dev/test-c", "type": "c", "major": 10, "minor": 666, "fileMode": 0o600 },
                { "path": "/dev/test-b", "type": "b", "major": 8, "minor": 666, "fileMode": 0o600 },
                { "path": "/dev/test-p", "type": "p", "major": 0, "minor": 0, "fileMode": 0o600 }
            ]);
        })
        .sh("stat -c '%n %F %t:%T %a' /dev/test-c /dev/test-b /dev/test-p");
    b.run().ok().prints(
        "/dev/test-c character special file a:29a 600\n\
         /dev/test-b block special file 8:29a 600\n\
         /dev/test-p fifo 0:0 600\n",
    );
}

#[test]
fn apparmor_profile_applied_or_refused_by_name() {
    let enabled = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let b = Bundle::new("apparmor")
        .with(|c| c["process"]["apparmorProfile"] = json!("unconfined"))
        .sh("cat /proc/self/attr/current");
    let out = b.run();
    if enabled {
        out.ok();
        assert!(out.stdout.contains("unconfined"), "{out}");
    } else {
        out.failed_mentioning(&["process.apparmorProfile", "not enabled"]);
        assert_no_leftovers(&b, &b.id, None);
    }
}

/// A character device the host itself can open (so that a denial inside the container is
/// the device cgroup's doing): /dev/vcs (7:0) or /dev/hwrng (10:183).
fn host_openable_char_device() -> (&'static str, u32, u32) {
    for (path, major, minor) in [("/dev/vcs", 7, 0), ("/dev/hwrng", 10, 183)] {
        if fs::File::open(path).is_ok() {
            return (path, major, minor);
        }
    }
    panic!("neither /dev/vcs nor /dev/hwrng can be opened on this host: the device cgroup tests need one")
}

fn device_probe(name: &str, with_resources: bool) -> Bundle {
    let (_, major, minor) = host_openable_char_device();
    Bundle::new(name)
        .with(|c| {
            if !with_resources {
                c["linux"]
                    .as_object_mut()
                    .expect("linux")
                    .remove("resources");
            }
        })
        .mount(json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }))
        .sh(&format!(
            "mknod /tmp/dev c {major} {minor} && echo made; \
             head -c 1 /tmp/dev > /dev/null 2>&1 && echo opened || echo denied"
        ))
}

#[test]
fn device_cgroup_denies_other_devices() {
    // mknod works (CAP_MKNOD and the `c *:* m` rule), but opening a device the host can
    // open is denied by the device cgroup.
    device_probe("devdeny", true)
        .run()
        .ok()
        .prints("made\ndenied\n");
}

#[test]
fn device_cgroup_applies_without_resources_in_the_config() {
    // No linux.resources at all: the container is still confined to the default devices.
    device_probe("devdeny2", false)
        .run()
        .ok()
        .prints("made\ndenied\n");
}

#[test]
fn time_namespace_offsets() {
    // runc 1.1 does not support time namespaces (runc 1.2 does).
    let b = Bundle::new("timens")
        .with(|c| {
            add_namespace(c, json!({ "type": "time" }));
            c["linux"]["timeOffsets"] = json!({
                "monotonic": { "secs": 86400, "nanosecs": 0 },
                "boottime": { "secs": 86400, "nanosecs": 0 }
            });
        })
        .sh("cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime");
    let out = b.run();
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(words(lines[0]), ["monotonic", "86400", "0"], "{out}");
    assert_eq!(words(lines[1]), ["boottime", "86400", "0"], "{out}");
    let uptime: u64 = lines[2].trim().parse().expect("uptime");
    let host: f64 = fs::read_to_string("/proc/uptime")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    assert!(
        uptime >= 86400 + host as u64 - 5,
        "uptime {uptime}, host {host}"
    );
}

fn userns(c: &mut Value) {
    add_namespace(c, json!({ "type": "user" }));
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
}

#[test]
fn user_namespace_mappings() {
    let data = TempDir::new("userns");
    fs::set_permissions(data.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let b = Bundle::new("userns");
    // The container's root cannot create directories in a rootfs owned by host root.
    fs::create_dir(b.rootfs().join("data")).expect("mkdir /data");
    let b = b
        .with(userns)
        .bind(data.path(), "/data", false)
        .sh("id -u; id -g; cat /proc/self/uid_map; touch /data/made-inside; exec sleep 100");
    let created = b.create();
    created.ok();
    let pid = b.pid();
    b.start().ok();
    assert!(
        poll(WAIT, || data.join("made-inside").exists().then_some(())).is_some(),
        "container never ran"
    );
    assert_eq!(
        proc_status_field(pid, "Uid"),
        "100000\t100000\t100000\t100000"
    );
    assert_eq!(
        proc_status_field(pid, "Gid"),
        "100000\t100000\t100000\t100000"
    );
    let meta = fs::metadata(data.join("made-inside")).expect("stat");
    assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
    assert_ne!(ns_of(pid, "user"), ns_of(std::process::id() as i32, "user"));
    b.force_delete_clean(Some(pid));
    let out = created.stdout_now();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert_eq!(&lines[..2], ["0", "0"], "{out:?}");
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"], "{out:?}");
}

#[test]
fn user_namespace_run_as_root_inside() {
    let b = Bundle::new("usernsrun")
        .with(userns)
        .sh("id -u; grep -c . /proc/self/gid_map; stat -c %u /bin/busybox");
    // The rootfs is owned by host root, which is unmapped: nobody inside.
    b.run().prints("0\n1\n65534\n");
}

#[test]
fn user_namespace_joined_by_path_with_a_new_pid_namespace() {
    // The new pid (and mount, …) namespaces must belong to the joined user namespace, or
    // mounting /proc fails: the runtime forks the init after joining, as runc does.
    let a = Bundle::new("usera").with(userns).args(&["sleep", "100"]);
    let apid = a.create_start();
    let user = format!("/proc/{apid}/ns/user");
    let b = Bundle::new("userb")
        .with(|c| {
            add_namespace(c, json!({ "type": "user", "path": user }));
        })
        .sh("echo $$; id -u; readlink /proc/self/ns/user; head -c 40 /proc/self/uid_map | tr -s ' '");
    let out = b.run();
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "1", "not pid 1 of a new pid namespace: {out}");
    assert_eq!(lines[1], "0", "{out}");
    assert_eq!(lines[2], ns_of(apid, "user"), "{out}");
    assert_eq!(lines[3].trim(), "0 100000 65536", "{out}");
    a.force_delete_clean(Some(apid));
}

#[test]
fn join_network_namespace_by_path() {
    let a = Bundle::new("nsa").args(&["sleep", "100"]);
    let apid = a.create_start();
    let net = format!("/proc/{apid}/ns/net");
    let b = Bundle::new("nsb")
        .with(|c| {
            drop_namespace(c, "network");
            add_namespace(c, json!({ "type": "network", "path": net }));
        })
        .sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts");
    let out = b.run();
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], ns_of(apid, "net"), "{out}");
    assert_ne!(lines[1], ns_of(apid, "uts"), "{out}");
    a.force_delete_clean(Some(apid));
}

#[test]
fn hostname_in_a_uts_namespace_joined_by_path() {
    // runtime-tools' linux_ns_path joins every namespace by path with a hostname set.
    let a = Bundle::new("utsa").args(&["sleep", "100"]);
    let apid = a.create_start();
    let uts = format!("/proc/{apid}/ns/uts");
    let b = Bundle::new("utsb")
        .with(|c| {
            drop_namespace(c, "uts");
            add_namespace(c, json!({ "type": "uts", "path": uts }));
            c["hostname"] = json!("joined-uts");
        })
        .sh("readlink /proc/self/ns/uts; hostname");
    let out = b.run();
    out.ok();
    assert_eq!(
        out.stdout,
        format!("{}\njoined-uts\n", ns_of(apid, "uts")),
        "{out}"
    );
    a.force_delete_clean(Some(apid));
}

#[test]
fn per_mount_propagation_is_kept() {
    // An `rshared` bind stays shared inside the container; a `private` one has no peers.
    let src = TempDir::new("propsrc");
    let b = Bundle::new("propagation")
        .mount(json!({
            "destination": "/shr", "type": "bind", "source": src.path(),
            "options": ["rbind", "rshared"]
        }))
        .mount(json!({
            "destination": "/prv", "type": "bind", "source": src.path(),
            "options": ["rbind", "private"]
        }))
        .sh("grep -E ' /(shr|prv) ' /proc/self/mountinfo");
    let out = b.run();
    out.ok();
    let line = |dest: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("no {dest} mount:\n{out}"))
            .to_string()
    };
    assert!(line("/shr").contains(" shared:"), "{out}");
    let prv = line("/prv");
    assert!(
        !prv.contains(" shared:") && !prv.contains(" master:"),
        "{out}"
    );
}

#[test]
fn no_pivot_moves_and_chroots_into_the_rootfs() {
    // --no-pivot (MS_MOVE + chroot, for ramdisk roots): the container still sees only its
    // rootfs at /.
    let b = Bundle::new("nopivot");
    let host_dir = b.dir_str();
    let b = b.sh(&format!(
        "cat /etc/hostname; ls /probe-nopivot; ls {host_dir} 2>&1 | head -1"
    ));
    fs::write(b.rootfs().join("probe-nopivot"), "x").expect("write probe");
    let out = b.rt(&["run", "--no-pivot", "--bundle", &b.dir_str(), &b.id]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.get(1), Some(&"/probe-nopivot"), "{out}");
    assert!(
        out.stdout.contains("No such file or directory"),
        "the host's bundle directory is visible:\n{out}"
    );
}

#[test]
fn rootfs_propagation_shared() {
    let b = Bundle::new("rootprop")
        .with(|c| c["linux"]["rootfsPropagation"] = json!("shared"))
        .sh("grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo");
    let out = b.run();
    out.ok();
    assert!(
        out.stdout.contains(" shared:"),
        "root is not shared:\n{out}"
    );
}

#[test]
fn mount_destination_symlink_stays_in_rootfs() {
    let host = TempDir::new("symtarget");
    fs::write(host.join("marker"), "host\n").expect("write marker");
    let b = Bundle::new("symlink");
    symlink(host.path(), b.rootfs().join("evil")).expect("symlink");
    let b = b
        .mount(json!({
            "destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]
        }))
        .sh("echo inside > /evil/sub/file && cat /evil/sub/file; ls /evil");
    let out = b.run();
    out.prints("inside\nsub\n");
    let listing: Vec<String> = fs::read_dir(host.path())
        .expect("host dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing, ["marker"], "the runtime wrote into the host dir");
    assert_eq!(
        fs::read_to_string(host.join("marker")).unwrap_or_default(),
        "host\n"
    );
    let hp = host.path().to_string_lossy().into_owned();
    assert!(
        !host_mounts().iter().any(|m| m.mount_point.starts_with(&hp)),
        "a mount landed on the host dir"
    );
    // It landed inside the rootfs instead.
    assert!(b
        .rootfs()
        .join(hp.trim_start_matches('/'))
        .join("sub")
        .is_dir());
}

/// procfs and sysfs go on ordinary directories only: a symlink at `/proc` or `/sys` (or on
/// the way to them) would move them away from the masked and read-only paths.
#[test]
fn proc_and_sys_on_a_symlink_are_refused() {
    for (dest, link) in [
        ("proc", "/tmp/p"),
        ("sys", "/tmp/s"),
        ("proc", "/dev/../tmp"),
    ] {
        let b = Bundle::new("procsym").args(&["true"]);
        let at = b.rootfs().join(dest);
        let _ = fs::remove_dir_all(&at);
        symlink(link, &at).expect("symlink");
        let out = b.run();
        out.failed_mentioning(&[
            "must be mounted on an ordinary directory",
            &format!("/{dest}"),
        ]);
        assert!(
            !host_mounts().iter().any(|m| m
                .mount_point
                .starts_with(&b.rootfs().to_string_lossy().into_owned())),
            "a mount of the refused container stayed behind"
        );
    }
}

#[test]
fn bind_source_symlink_in_rootfs_does_not_escape() {
    // A mount whose destination is a symlink to /proc/self/... or an absolute host path
    // must resolve inside the rootfs even for bind mounts.
    let host = TempDir::new("symbind");
    let src = TempDir::new("symbindsrc");
    fs::write(src.join("payload"), "payload\n").expect("write");
    let b = Bundle::new("symbind");
    symlink(host.path(), b.rootfs().join("evil")).expect("symlink");
    let b = b
        .bind(src.path(), "/evil", true)
        .args(&["cat", "/evil/payload"]);
    b.run().prints("payload\n");
    assert_eq!(
        fs::read_dir(host.path()).expect("host dir").count(),
        0,
        "host dir touched"
    );
}

/// `ls -l /proc/self/fd` lines as (fd, target).
fn fd_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ").unwrap_or((l, ""));
            let fd = left.split_whitespace().last()?;
            fd.parse::<u32>().ok()?;
            Some((fd.to_string(), target.to_string()))
        })
        .collect()
}

#[test]
fn no_fd_leaks_into_the_container() {
    let file = fs::File::open("/etc/hostname").expect("open");
    let leaked = nix::unistd::dup(std::os::fd::AsRawFd::as_raw_fd(&file)).expect("dup");
    // dup(2) clears FD_CLOEXEC: the runtime inherits it and must not pass it on.
    let b = Bundle::new("fdleak").args(&["ls", "/proc/self/fd"]);
    let out = b.run();
    let _ = nix::unistd::close(leaked);
    out.prints("0\n1\n2\n3\n");
}

#[test]
fn preserve_fds_passes_fd_3() {
    let data = TempDir::new("preserve");
    fs::write(data.join("f"), "through fd 3\n").expect("write");
    let b = Bundle::new("preserve").sh("cat <&3; ls /proc/self/fd");
    b.track(&b.id);
    let mut cmd = Command::new("sh");
    cmd.env("F", data.join("f"))
        .args(["-c", "exec \"$@\" 3<\"$F\"", "sh"])
        .arg(runtime_bin())
        .arg("--root")
        .arg(b.state_root())
        .args([
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            &b.dir_str(),
            &b.id,
        ]);
    let out = capture(cmd, Capture::Pipes, CMD_TIMEOUT);
    out.prints("through fd 3\n0\n1\n2\n3\n4\n");
}

/// Runs the runtime with `args` and fd 3 open on a file holding "through fd 3".
fn rt_with_fd_3(b: &Bundle, args: &[&str]) -> Output {
    let data = TempDir::new("preserve-data");
    fs::write(data.join("f"), "through fd 3\n").expect("write");
    // Only 0-3 open: descriptors this test inherited (a CI shell's) are closed first.
    let mut cmd = Command::new("bash");
    cmd.env("F", data.join("f"))
        .args([
            "-c",
            "for i in $(seq 4 64); do eval \"exec $i<&-\"; done; exec \"$@\" 3<\"$F\"",
            "sh",
        ])
        .arg(runtime_bin())
        .arg("--root")
        .arg(b.state_root())
        .args(args);
    capture(cmd, Capture::Pipes, CMD_TIMEOUT)
}

/// `--preserve-fds 20` passes the caller's descriptors (here only 3), never the ones the
/// runtime opened itself in 4 … 22 (the exec FIFO, the state and cgroup directories, …):
/// through them the container could reach host directories.
#[test]
fn preserve_fds_passes_only_the_callers_descriptors() {
    let script = "cat <&3; ls /proc/self/fd";
    // run
    let b = Bundle::new("preserve20").sh(script);
    b.track(&b.id);
    let out = rt_with_fd_3(
        &b,
        &[
            "run",
            "--preserve-fds",
            "20",
            "--bundle",
            &b.dir_str(),
            &b.id,
        ],
    );
    out.prints("through fd 3\n0\n1\n2\n3\n4\n");
    // create + start: the init got fd 3 from `create`.
    let outdir = TempDir::new("preserve-out");
    let b = Bundle::new("preserve20c")
        .bind(outdir.path(), "/o", false)
        .sh(&format!("{{ {script}; }} > /o/out 2>&1"));
    b.track(&b.id);
    rt_with_fd_3(
        &b,
        &[
            "create",
            "--preserve-fds",
            "20",
            "--bundle",
            &b.dir_str(),
            &b.id,
        ],
    )
    .ok();
    b.start().ok();
    b.wait_status("stopped", CMD_TIMEOUT);
    assert_eq!(
        fs::read_to_string(outdir.join("out")).expect("read /o/out"),
        "through fd 3\n0\n1\n2\n3\n4\n"
    );
    b.delete().ok();
    // exec
    let b = Bundle::new("preserve20e").args(&["sleep", "100"]);
    let pid = b.create_start();
    let out = rt_with_fd_3(
        &b,
        &["exec", "--preserve-fds", "20", &b.id, "sh", "-c", script],
    );
    out.prints("through fd 3\n0\n1\n2\n3\n4\n");
    b.force_delete_clean(Some(pid));
}

#[test]
fn cve_2024_21626_cwd_and_fds_stay_inside() {
    let b = Bundle::new("cwdleak").args(&["sleep", "100"]);
    let check = |out: &Output, cwd: &str| {
        let mut lines = out.stdout.lines();
        assert_eq!(lines.next(), Some(cwd), "{out}");
        let rest: String = lines.collect::<Vec<_>>().join("\n");
        let fds = fd_lines(&rest);
        let numbers: Vec<&str> = fds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(numbers, ["0", "1", "2", "3"], "{out}");
        for (n, target) in &fds[..3] {
            let fine = target.starts_with("pipe:[") || target == "/dev/null";
            assert!(
                fine,
                "fd {n} -> {target} points outside the container:\n{out}"
            );
        }
    };
    let pid = b.create_start();
    let fd_out = b.exec(&["sh", "-c", "readlink /proc/self/cwd; ls -l /proc/self/fd"]);
    fd_out.ok();
    check(&fd_out, "/");
    let fd_out = b.exec_with(
        &["--cwd", "/etc"],
        &["sh", "-c", "readlink /proc/self/cwd; ls -l /proc/self/fd"],
    );
    fd_out.ok();
    check(&fd_out, "/etc");
    b.force_delete_clean(Some(pid));

    let b = Bundle::new("cwdleak2")
        .with(|c| c["process"]["cwd"] = json!("/tmp"))
        .sh("readlink /proc/self/cwd; ls -l /proc/self/fd");
    let out = b.run();
    out.ok();
    check(&out, "/tmp");
}

/// CVE-2019-5736 with a container in a pid namespace of its own: before `start` nothing in
/// the container can see the parked init (berth-runtime refuses `exec` until then), and
/// after it the init is the container's program, so the binary must only survive.
#[test]
fn cve_2019_5736_runtime_binary_is_not_reachable() {
    exe_guard_case("exeguard", None);
}

/// CVE-2019-5736 with a container that joins another container's pid namespace (a pod
/// member): processes already in that namespace could reach the parked init, so it must
/// run from a sealed copy or a read-only mount of the runtime.
#[test]
fn cve_2019_5736_runtime_binary_is_guarded_in_a_joined_pid_namespace() {
    let host = Bundle::new("exehost").args(&["sleep", "100"]);
    let host_pid = host.create_start();
    exe_guard_case("exejoin", Some(host_pid));
    host.force_delete_clean(Some(host_pid));
}

/// CVE-2019-5736 through the container's own program: in a pid namespace of its own, the
/// init execs a script whose interpreter is `#!/proc/self/exe` — resolved in the init, so
/// the container then runs the runtime binary itself (dumpable again, visible to anything
/// that joins its pid namespace). An attacker holds `/proc/1/exe` open and, once that
/// process no longer executes it, reopens it for writing. Here the runtime's `update
/// --resources -` keeps it alive (reading stdin); the test plays the attacker's part
/// through the same magic link.
#[test]
fn cve_2019_5736_shebang_proc_self_exe_cannot_reach_the_binary() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = TempDir::new("exeshebang");
    let orig = runtime_bin();
    let copy = tmp.join(orig.file_name().expect("file name"));
    fs::copy(&orig, &copy).expect("copy the runtime");
    let before = fs::read(&copy).expect("read copy");
    let b = Bundle::new("exeshebang").args(&["/attack", "--resources", "-"]);
    b.track(&b.id);
    let attack = b.rootfs().join("attack");
    fs::write(&attack, "#!/proc/self/exe update\n").expect("write /attack");
    fs::set_permissions(&attack, fs::Permissions::from_mode(0o755)).expect("chmod");
    // The container's stdin is a pipe we hold open: `update` blocks reading it.
    let mut create = Command::new(&copy);
    create
        .arg("--root")
        .arg(b.state_root())
        .args(["create", "--bundle", &b.dir_str(), &b.id])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = create.spawn().expect("spawn create");
    let stdin = child.stdin.take();
    assert!(
        child.wait().expect("wait create").success(),
        "create failed"
    );
    let pid = b.pid();
    let mut start = Command::new(&copy);
    start
        .arg("--root")
        .arg(b.state_root())
        .args(["start", &b.id]);
    capture(start, Capture::Pipes, CMD_TIMEOUT).ok();
    let exe = format!("/proc/{pid}/exe");
    let running_update = poll(Duration::from_secs(10), || {
        fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .filter(|c| c.windows(6).any(|w| w == b"update"))
    });
    assert!(
        running_update.is_some(),
        "the container did not exec the runtime through #!/proc/self/exe"
    );
    // The attacker's descriptor, taken while the binary runs.
    let held = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH)
        .open(&exe)
        .expect("open /proc/PID/exe O_PATH");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    drop(stdin);
    b.wait_status("stopped", CMD_TIMEOUT);
    let reopened = fs::OpenOptions::new().append(true).open(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&held)
    ));
    if let Ok(mut f) = reopened {
        let _ = f.write_all(b"x");
    }
    let after = fs::read(&copy).expect("read copy");
    assert!(
        before == after,
        "the runtime binary was reopened for writing through the container's /proc/1/exe"
    );
    let mut del = Command::new(&copy);
    del.arg("--root")
        .arg(b.state_root())
        .args(["delete", "--force", &b.id]);
    capture(del, Capture::Pipes, CMD_TIMEOUT).ok();
}

fn exe_guard_case(name: &str, join_pid_ns_of: Option<i32>) {
    // Work on a copy of the runtime, so that a vulnerable runtime corrupts only the copy.
    let tmp = TempDir::new(name);
    let orig = runtime_bin();
    let copy = tmp.join(orig.file_name().expect("file name"));
    fs::copy(&orig, &copy).expect("copy the runtime");
    let before = fs::read(&copy).expect("read copy");
    let rt = |b: &Bundle, args: &[&str]| {
        let mut cmd = Command::new(&copy);
        cmd.arg("--root").arg(b.state_root()).args(args);
        capture(cmd, Capture::Files(b.dir().join("io")), CMD_TIMEOUT)
    };
    let b = Bundle::new(name)
        .with(|c| {
            if let Some(pid) = join_pid_ns_of {
                for ns in c["linux"]["namespaces"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if ns["type"] == "pid" {
                        ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
                    }
                }
            }
        })
        .sh("for p in /proc/[0-9]*; do echo x >> $p/exe; done 2>/dev/null; exec sleep 100");
    b.track(&b.id);
    rt(&b, &["create", "--bundle", &b.dir_str(), &b.id]).ok();
    let pid = b.pid();
    // The parked init is the runtime: its executable must not be the file on disk.
    let exe = fs::metadata(format!("/proc/{pid}/exe")).expect("stat init exe");
    let file = fs::metadata(&copy).expect("stat copy");
    let same_inode = (exe.dev(), exe.ino()) == (file.dev(), file.ino());
    // If it is the same file, it must be reached through a read-only mount.
    let exe_ro = nix::sys::statvfs::statvfs(format!("/proc/{pid}/exe").as_str())
        .expect("statvfs init exe")
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
    // From inside: hold the init's executable open, let it exec, then write through the fd.
    let held = rt(
        &b,
        &[
            "exec",
            &b.id,
            "sh",
            "-c",
            "sleep 30 </proc/1/exe >/dev/null 2>&1 & echo $!",
        ],
    );
    rt(&b, &["start", &b.id]).ok();
    if held.success() {
        let spid = held.stdout.trim().to_string();
        rt(
            &b,
            &[
                "exec",
                &b.id,
                "sh",
                "-c",
                // In the background, so that it retries once no runtime process runs
                // the binary any more (while one does, the write fails with ETXTBSY).
                &format!(
                    "(for i in $(seq 100); do echo x >> /proc/{spid}/fd/0 && break; \
                     sleep 0.02; done) </dev/null >/dev/null 2>&1 &"
                ),
            ],
        );
    }
    for _ in 0..3 {
        rt(
            &b,
            &[
                "exec",
                &b.id,
                "sh",
                "-c",
                "for p in /proc/[0-9]*; do echo x >> $p/exe; done 2>/dev/null; true",
            ],
        )
        .ok();
    }
    std::thread::sleep(Duration::from_millis(2500));
    rt(&b, &["delete", "--force", &b.id]).ok();
    let after = fs::read(&copy).expect("read copy");
    assert!(
        before == after,
        "the runtime binary was modified from inside the container"
    );
    // The parked init must be guarded whenever a process of the container could reach it:
    // when it shares a pid namespace, or when `exec` before `start` was allowed.
    if join_pid_ns_of.is_some() || held.success() {
        assert!(
            !same_inode || exe_ro,
            "the container init runs the runtime binary itself from a writable mount, \
             not a sealed copy or a read-only mount (exec before start: {})",
            held.success()
        );
    } else {
        held.failed_mentioning(&["start"]);
    }
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn cve_2024_21626_cwd_through_a_leaked_fd_cannot_escape() {
    // With a leaked host directory descriptor, cwd /proc/self/fd/N would start the process
    // outside the root, and `..` would climb to the host's /.
    for n in 3..=9 {
        let b = Bundle::new("cwdfd")
            .with(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")))
            .args(&["cat", "../../../../../../../../etc/hostname"]);
        let out = b.run();
        assert!(
            !out.success() || out.stdout == "rootfs-hostname\n",
            "cwd /proc/self/fd/{n} escaped the container:\n{out}"
        );
    }
}

/// The line of our mountinfo for `/` (its propagation must not change).
fn our_root_mount_line() -> String {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn without_a_mount_namespace_the_container_shares_ours_and_delete_unmounts() {
    // config-linux.md: a namespace type that is not listed is inherited. The container's
    // mounts land in our namespace, under its rootfs; delete must take them away again.
    let b = Bundle::new("nomntns")
        .args(&["sleep", "100"])
        .with(|c| drop_namespace(c, "mount"));
    fs::write(b.rootfs().join("marker"), "inside\n").expect("marker");
    let rootfs = fs::canonicalize(b.rootfs()).expect("rootfs");
    let under = || -> Vec<String> {
        host_mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| std::path::Path::new(p).starts_with(&rootfs))
            .collect()
    };
    assert_eq!(under(), Vec::<String>::new(), "mounts before create");
    let root_before = our_root_mount_line();
    b.create().ok();
    b.start().ok();
    let during = under();
    assert!(
        during.iter().any(|p| p.ends_with("/proc")),
        "the container's /proc is not a mount in our namespace: {during:?}"
    );
    let ours = fs::read_link("/proc/self/ns/mnt").expect("our mnt ns");
    let out = b.exec(&["sh", "-c", "readlink /proc/self/ns/mnt; cat /marker"]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!("{}\ninside\n", ours.display()),
        "exec is not in our mount namespace chrooted into the rootfs: {out}"
    );
    b.kill("KILL").ok();
    b.wait_status("stopped", WAIT);
    b.delete().ok();
    assert_eq!(under(), Vec::<String>::new(), "mounts left after delete");
    assert_eq!(
        our_root_mount_line(),
        root_before,
        "our / changed propagation"
    );
    assert_no_leftovers(&b, &b.id, None);

    // A create that fails half-way (a bind of a missing source after the default mounts)
    // leaves none of the mounts it made.
    let bad = Bundle::new("nomntns-bad")
        .args(&["true"])
        .with(|c| drop_namespace(c, "mount"))
        .mount(json!({"destination": "/mnt", "type": "bind", "source": "/nonexistent-berth-src", "options": ["bind"]}));
    bad.create().failed();
    let bad_root = fs::canonicalize(bad.rootfs()).expect("rootfs");
    let left: Vec<String> = host_mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| std::path::Path::new(p).starts_with(&bad_root))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "mounts left by a failed create");
    assert_no_leftovers(&bad, &bad.id, None);
}

/// 2³²−1 is `(uid_t)-1`, "leave unchanged" to setresuid/setresgid/setgroups: a config that
/// asks for it would run the process as the runtime's own root (issue 10, item 16).
#[test]
fn user_id_minus_one_refused() {
    for (field, edit) in [
        ("process.user.uid", json!({"uid": 4294967295u64, "gid": 0})),
        (
            "process.user.gid",
            json!({"uid": 1000, "gid": 4294967295u64}),
        ),
        (
            "process.user.additionalGids[1]",
            json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 4294967295u64]}),
        ),
    ] {
        let b = Bundle::new("uidmax").sh("id");
        let mut b = b;
        b.edit(|c| c["process"]["user"] = edit);
        b.run().failed_mentioning(&[field, "4294967294"]);
    }
}

/// The runtime may be started with signals blocked (`berth run` blocks the ones it
/// forwards, and the mask survives execve); the container's program must not inherit that
/// mask (a shell's `wait` would never see SIGCHLD).
#[test]
fn process_starts_with_no_signal_blocked() {
    assert!(
        Command::new("python3").arg("-V").output().is_ok(),
        "python3 is needed to start the runtime with signals blocked"
    );
    let dir = TempDir::new("sigmask");
    let wrapper = dir.join("blocked-runtime");
    fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env python3\nimport os, signal, sys\n\
             signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR1}})\n\
             os.execv({rt:?}, [{rt:?}] + sys.argv[1:])\n",
            rt = runtime_bin().display().to_string()
        ),
    )
    .expect("write wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
    let b = Bundle::new("sigmask")
        .with_runtime(wrapper)
        .sh("grep SigBlk /proc/self/status; (true) & wait; echo waited");
    let out = b.run();
    out.ok();
    assert!(out.stdout.contains("SigBlk:\t0000000000000000\n"), "{out}");
    assert!(out.stdout.contains("waited"), "{out}");
}

#[test]
fn exec_joins_the_time_namespace() {
    // runc 1.2's exec enters the container's time namespace (setns before the fork: it
    // applies to children); a process outside it sees the host's boottime offset of 0.
    let b = Bundle::new("timens-exec")
        .with(|c| {
            add_namespace(c, json!({ "type": "time" }));
            c["linux"]["timeOffsets"] = json!({
                "boottime": { "secs": 172800, "nanosecs": 0 }
            });
        })
        .args(&["sleep", "100"]);
    let pid = b.create_start();
    let out = b.exec(&[
        "sh",
        "-c",
        "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime",
    ]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(words(lines[1]), ["boottime", "172800", "0"], "{out}");
    let uptime: u64 = lines[2].trim().parse().expect("uptime");
    assert!(
        uptime >= 172800,
        "exec'd process sees the host's uptime: {out}"
    );
    let theirs = fs::read_link(format!("/proc/{pid}/ns/time")).expect("init time ns");
    let out = b.exec(&["readlink", "/proc/self/ns/time"]);
    out.ok();
    assert_eq!(out.stdout.trim(), theirs.to_string_lossy(), "{out}");
    b.force_delete_clean(Some(pid));
}

/// A host directory with a tmpfs mounted below it (unmounted on drop).
struct TreeWithSubmount {
    dir: TempDir,
}

impl TreeWithSubmount {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        fs::create_dir(dir.join("sub")).expect("mkdir sub");
        fs::write(dir.join("prog"), "#!/bin/sh\necho ran\n").expect("write prog");
        fs::set_permissions(dir.join("prog"), fs::Permissions::from_mode(0o755)).expect("chmod");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir.join("sub"))
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs on {}", dir.join("sub").display());
        fs::write(dir.join("sub/prog"), "#!/bin/sh\necho ran\n").expect("write sub/prog");
        fs::set_permissions(dir.join("sub/prog"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        TreeWithSubmount { dir }
    }
}

impl Drop for TreeWithSubmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.join("sub")).status();
    }
}

#[test]
fn recursive_mount_options_reach_submounts() {
    // runtime-spec 1.2 config.md "Mounts": rro/rnoexec/… apply to every mount of an rbind
    // (mount_setattr with AT_RECURSIVE); plain ro leaves the submount writable.
    let tree = TreeWithSubmount::new("rro");
    let probe = "touch /t/x 2>/dev/null && echo top-rw || echo top-ro; \
                 touch /t/sub/x 2>/dev/null && echo sub-rw || echo sub-ro; \
                 /t/prog >/dev/null 2>&1 && echo top-exec || echo top-noexec; \
                 /t/sub/prog >/dev/null 2>&1 && echo sub-exec || echo sub-noexec";
    let rec = Bundle::new("rro")
        .mount(json!({
            "destination": "/t", "type": "bind", "source": tree.dir.path(),
            "options": ["rbind", "rro", "rnoexec", "rnosuid", "rnodev"]
        }))
        .sh(probe);
    rec.run()
        .ok()
        .prints("top-ro\nsub-ro\ntop-noexec\nsub-noexec\n");
    let plain = Bundle::new("ro-plain")
        .mount(json!({
            "destination": "/t", "type": "bind", "source": tree.dir.path(),
            "options": ["rbind", "ro", "noexec"]
        }))
        .sh(probe);
    plain
        .run()
        .ok()
        .prints("top-ro\nsub-rw\ntop-noexec\nsub-exec\n");
    // rrw after rro: the later option wins.
    let rw = Bundle::new("rrw")
        .mount(json!({
            "destination": "/t", "type": "bind", "source": tree.dir.path(),
            "options": ["rbind", "rro", "rrw"]
        }))
        .sh("touch /t/sub/y && echo sub-rw; grep ' /t/sub ' /proc/self/mountinfo | cut -d' ' -f6");
    rw.run().ok().prints("sub-rw\nrw,relatime\n");
    // A tmpfs (not a bind) takes them too.
    let tmp = Bundle::new("rnoatime")
        .mount(json!({
            "destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "options": ["rnoatime", "rnosymfollow"]
        }))
        .sh("grep ' /t ' /proc/self/mountinfo | cut -d' ' -f6");
    tmp.run().ok().prints("rw,noatime,nosymfollow\n");
}

#[test]
fn capability_missing_from_the_host_bounding_set_is_a_warning() {
    // The runtime runs with CAP_SYS_TIME dropped from its bounding set (a nested host):
    // the container still starts without it, and the runtime says so on its stderr
    // (never on the container's).
    let wrap_dir = TempDir::new("capwrap");
    let wrapper = wrap_dir.join("runtime");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec setpriv --bounding-set -sys_time {} \"$@\"\n",
            runtime_bin().display()
        ),
    )
    .expect("write wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
    let b = Bundle::new("capwarn")
        .with_runtime(wrapper)
        .with(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = json!(["CAP_SYS_TIME", "CAP_CHOWN"]);
            }
        })
        .sh("grep CapBnd /proc/self/status");
    let out = b.run();
    out.ok();
    // CAP_CHOWN is bit 0, CAP_SYS_TIME bit 25: only CHOWN is left.
    assert_eq!(out.stdout, "CapBnd:\t0000000000000001\n", "{out}");
    assert!(
        out.stderr.contains(
            "berth-runtime: warning: process.capabilities: CAP_SYS_TIME not in the bounding set"
        ),
        "no warning:\n{out}"
    );
    assert!(!out.stderr.contains("CAP_CHOWN"), "{out}");
}
