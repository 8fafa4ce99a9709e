//! microVMs end to end: `berth vm` boots the test guest (tests/guest/guest.asm, a PVH ELF
//! assembled by the suite) under KVM and the tests read what the guest reports on its serial
//! console: the marker, the memory and CPU count it found, what it read from and wrote to a
//! virtio-blk disk. They need /dev/kvm and fail, saying so, where it is absent.

use berth_tests::vm::*;
use berth_tests::{unique_suffix, TempDir};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim_end).collect()
}

#[test]
fn boots_the_test_guest_and_prints_its_marker() {
    let r = VmRoot::new();
    let out = r.run_guest(&["--name", "marker", "--cpus", "1", "--memory", "32"]);
    out.ok();
    assert_eq!(
        lines(&out.stdout),
        [
            "berth-guest: hello",
            "mem_mib=32",
            "cpus=1",
            "berth-guest: done"
        ],
        "{out}"
    );
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());
}

/// The host's online CPUs (a VM may have at most as many vCPUs).
fn host_cpus() -> u8 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(32) as u8)
}

#[test]
fn memory_and_cpus_are_as_configured() {
    let r = VmRoot::new();
    let most = host_cpus();
    for (cpus, mib) in [(1u8, 64u64), (most.min(2), 256), (most, 1024)] {
        let out = r.run_guest(&["--cpus", &cpus.to_string(), "--memory", &mib.to_string()]);
        out.ok();
        assert!(out.stdout.contains(&format!("\nmem_mib={mib}\n")), "{out}");
        assert!(out.stdout.contains(&format!("\ncpus={cpus}\n")), "{out}");
    }
}

#[test]
fn memory_above_the_mmio_gap_is_reported() {
    // 4 GiB: 3.25 GiB below the MMIO gap and the rest above 4 GiB (untouched pages cost
    // nothing: the mapping is MAP_NORESERVE).
    let host_mib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |k| k / 1024);
    let r = VmRoot::new();
    let mib = 4096.min(host_mib);
    let out = r.run_guest(&["--memory", &mib.to_string()]);
    out.ok();
    assert!(out.stdout.contains(&format!("\nmem_mib={mib}\n")), "{out}");
}

#[test]
fn reset_through_the_i8042_stops_the_vm_cleanly() {
    let r = VmRoot::new();
    let out = r.run_guest(&["--cmdline", "reset"]);
    out.ok();
    assert!(out.stdout.contains("berth-guest: done"), "{out}");
    assert!(r.names().is_empty());
}

#[test]
fn a_guest_crash_is_reported_and_stops_only_that_vm() {
    let r = VmRoot::new();
    let out = r.run_guest(&["--name", "crash", "--cmdline", "crash"]);
    out.failed_mentioning(&["vm crash", "triple fault", "rip 0x"]);
    assert!(out.stdout.contains("cpus=1"), "{out}");
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());
}

#[test]
fn two_vms_run_at_once() {
    let r = VmRoot::new();
    r.run_guest(&["-d", "--name", "one", "--cmdline", "tick"])
        .ok();
    r.run_guest(&["-d", "--name", "two", "--cpus", "2", "--cmdline", "tick"])
        .ok();
    let one = r.wait_console("one", "tick 2\n");
    let two = r.wait_console("two", "tick 2\n");
    assert!(
        one.contains("cpus=1\n") && two.contains("cpus=2\n"),
        "{one}\n{two}"
    );
    let ls = r.vm(&["ls"]);
    ls.ok();
    let rows: Vec<&str> = ls.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{ls}");
    assert!(
        rows[0].starts_with("one ") && rows[0].contains("running"),
        "{ls}"
    );
    assert!(
        rows[1].starts_with("two ") && rows[1].contains("running"),
        "{ls}"
    );
    r.vm(&["stop", "one"]).ok();
    r.vm(&["stop", "two"]).ok();
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());
    assert!(vmm_processes(&r.root(), 0).is_empty());
}

#[test]
fn pause_stops_the_guest_and_resume_continues_it() {
    let r = VmRoot::new();
    r.run_guest(&["-d", "--name", "p", "--cmdline", "tick"])
        .ok();
    r.wait_console("p", "tick 2\n");
    r.vm(&["pause", "p"]).ok();
    let ls = r.vm(&["ls"]);
    assert!(ls.stdout.contains("paused"), "{ls}");
    let before = last_tick(&r.console("p"));
    std::thread::sleep(Duration::from_millis(700));
    let after = last_tick(&r.console("p"));
    assert_eq!(before, after, "ticks while paused:\n{}", r.console("p"));
    r.vm(&["resume", "p"]).ok();
    r.wait_console("p", &format!("tick {}\n", after + 2));
    assert!(r.vm(&["ls"]).stdout.contains("running"));
    r.vm(&["kill", "p"]).ok();
    assert!(r.names().is_empty());
}

#[test]
fn snapshot_and_restore_continue_where_the_guest_stopped() {
    let r = VmRoot::new();
    let snap = r.dir.join("snap");
    r.run_guest(&["-d", "--name", "orig", "--cmdline", "tick"])
        .ok();
    r.wait_console("orig", "tick 3\n");
    r.vm(&["snapshot", "orig", snap.to_str().expect("path")])
        .ok();
    // The snapshot leaves the VM running.
    let at = last_tick(&r.console("orig"));
    r.wait_console("orig", &format!("tick {}\n", at + 1));
    // (The console log goes with the VM's state directory when it stops.)
    let saved = last_tick(&r.console("orig"));
    r.vm(&["stop", "orig"]).ok();

    r.vm(&[
        "restore",
        "-d",
        "--name",
        "copy",
        snap.to_str().expect("path"),
    ])
    .ok();
    let first = r.wait_first_tick("copy");
    let copy = r.wait_console("copy", &format!("tick {}\n", first + 1));
    // It continues counting (no reboot: no marker), from where the snapshot was taken.
    assert!(
        !copy.contains("berth-guest: hello"),
        "the restored guest rebooted:\n{copy}"
    );
    let first = first_tick(&copy);
    assert!(
        (4..=saved).contains(&first),
        "first tick {first} (saved at 3 or later, before {saved}):\n{copy}"
    );
    r.vm(&["stop", "copy"]).ok();

    // A restore keeps the name unique and refuses files that are not snapshots.
    let bogus = r.dir.join("bogus");
    fs::write(&bogus, b"not a snapshot at all, just text").expect("write");
    r.vm(&["restore", bogus.to_str().expect("path")])
        .failed_mentioning(&["not a berth snapshot"]);
    let mut bytes = fs::read(&snap).expect("read snapshot");
    bytes.truncate(4096);
    fs::write(&bogus, &bytes).expect("write");
    r.vm(&["restore", bogus.to_str().expect("path")])
        .failed_mentioning(&["snapshot", "corrupt"]);
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());
}

fn disk(dir: &TempDir, name: &str, sector0: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut data = vec![0u8; 1 << 20];
    data[..sector0.len()].copy_from_slice(sector0);
    fs::write(&path, &data).expect("write disk");
    path
}

#[test]
fn block_device_round_trip() {
    let r = VmRoot::new();
    let path = disk(&r.dir, "disk.img", b"written by the host into sector 0");
    let spec = path.to_str().expect("path");
    let out = r.run_guest(&["--disk", spec]);
    out.ok();
    // The guest sees the host's data…
    assert!(out.stdout.contains("blk: capacity=2048\n"), "{out}");
    assert!(
        out.stdout
            .contains("blk: sector0=written by the host into sector \n"),
        "{out}"
    );
    assert!(out.stdout.contains("blk: write status=0\n"), "{out}");
    assert!(out.stdout.contains("blk: flush status=0\n"), "{out}");
    // …and the host sees the guest's.
    let data = fs::read(&path).expect("read disk");
    let text = b"berth-guest wrote sector 1";
    assert_eq!(&data[512..512 + text.len()], text);
    assert!(data[512 + text.len()..1024].iter().all(|b| *b == 0));
    assert!(data[1024..].iter().all(|b| *b == 0));
}

#[test]
fn read_only_disk_refuses_writes() {
    let r = VmRoot::new();
    let path = disk(&r.dir, "ro.img", b"read-only data");
    let before = fs::read(&path).expect("read disk");
    let spec = format!("{}:ro", path.display());
    let out = r.run_guest(&["--disk", &spec]);
    out.ok();
    assert!(
        out.stdout
            .contains("blk: sector0=read-only data.................."),
        "{out}"
    );
    assert!(out.stdout.contains("blk: write status=1\n"), "{out}");
    assert_eq!(fs::read(&path).expect("read disk"), before);
}

/// The pid recorded in a VM's `vm.json`.
fn monitor_pid(r: &VmRoot, name: &str) -> i32 {
    let text = fs::read(r.root().join(name).join("vm.json")).expect("read vm.json");
    let v: serde_json::Value = serde_json::from_slice(&text).expect("parse vm.json");
    v["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .expect("pid")
}

#[test]
fn a_copy_on_write_disk_keeps_its_base_and_its_overlay_goes_with_the_vm() {
    use berth_tests::images::sha256;
    let r = VmRoot::new();
    let base = disk(&r.dir, "base.img", b"the base's sector 0");
    let mut data = fs::read(&base).expect("read base");
    data[512..512 + 18].copy_from_slice(b"pristine sector 1!");
    fs::write(&base, &data).expect("write base");
    let before = sha256(&data);
    let spec = format!("{}:cow", base.display());

    // A detached VM writes sector 1 and reads it back, then ticks (keeps running).
    r.run_guest(&["-d", "--name", "cow1", "--disk", &spec, "--cmdline", "tick"])
        .ok();
    r.wait_first_tick("cow1");
    let console = r.console("cow1");
    assert!(
        console.contains("blk: sector1 was=pristine sector 1!.............."),
        "{console}"
    );
    assert!(console.contains("blk: write status=0\n"), "{console}");
    assert!(console.contains("blk: flush status=0\n"), "{console}");
    assert!(
        console.contains("blk: sector1=berth-guest wrote sector 1......"),
        "{console}"
    );
    // The guest's data is in the overlay (in the VM's state directory), not in the base.
    let overlay = r.root().join("cow1").join("disk0.overlay");
    let map = r.root().join("cow1").join("disk0.overlay.map");
    let ov = fs::read(&overlay).expect("read the overlay");
    assert_eq!(ov.len(), data.len());
    let text = b"berth-guest wrote sector 1";
    assert_eq!(&ov[512..512 + text.len()], text);
    assert_eq!(&fs::read(&map).expect("read the map")[..8], b"BERTHCOW");
    assert_eq!(sha256(&fs::read(&base).expect("read base")), before);

    // A monitor killed outright leaves its directory (and overlay) behind until `vm rm`.
    let pid = nix::unistd::Pid::from_raw(monitor_pid(&r, "cow1"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill the monitor");
    berth_tests::poll(VM_TIMEOUT, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .expect("the monitor dies");
    assert!(overlay.exists(), "the overlay went before `vm rm`");
    r.vm(&["rm", "cow1"]).ok();
    assert!(
        !overlay.exists() && !map.exists(),
        "`vm rm` left the overlay"
    );
    assert!(r.names().is_empty(), "{:?}", r.names());

    // A second VM on the same base sees pristine data; its overlay goes when it exits.
    let out = r.run_guest(&["--name", "cow2", "--disk", &spec]);
    out.ok();
    assert!(
        out.stdout
            .contains("blk: sector0=the base's sector 0............."),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("blk: sector1 was=pristine sector 1!.............."),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("blk: sector1=berth-guest wrote sector 1......"),
        "{out}"
    );
    assert!(r.names().is_empty(), "state left behind: {:?}", r.names());
    assert_eq!(sha256(&fs::read(&base).expect("read base")), before);

    // A VM with a copy-on-write disk is not snapshotted (its overlay goes with it).
    r.run_guest(&["-d", "--name", "cow3", "--disk", &spec, "--cmdline", "tick"])
        .ok();
    r.wait_first_tick("cow3");
    let snap = r.dir.join("cow.snap");
    r.vm(&["snapshot", "cow3", snap.to_str().expect("path")])
        .failed_mentioning(&["copy-on-write", "cannot be snapshotted"]);
    assert!(!snap.exists());
    r.vm(&["rm", "-f", "cow3"]).ok();
    assert!(r.names().is_empty(), "{:?}", r.names());
    assert_eq!(sha256(&fs::read(&base).expect("read base")), before);
}

/// `berth vm run` must fail mentioning `needles`, leaving no state and no process.
#[track_caller]
fn rejected(r: &VmRoot, args: &[&str], needles: &[&str]) {
    let out = r.vm(args);
    out.failed_mentioning(needles);
    assert!(
        r.names().is_empty(),
        "state left behind: {:?}\n{out}",
        r.names()
    );
    let left = vmm_processes(&r.root(), 0);
    assert!(left.is_empty(), "a VMM is left: {left:?}\n{out}");
}

fn run_args<'a>(detach: bool, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run"];
    if detach {
        a.push("-d");
    }
    a.extend_from_slice(extra);
    a
}

#[test]
fn bad_input_is_refused_without_leftovers() {
    let r = VmRoot::new();
    let guest = test_guest();
    let g = guest.to_str().expect("path");
    let missing = r.dir.join("missing");
    let m = missing.to_str().expect("path");
    let text = r.dir.join("text");
    fs::write(&text, b"this is not a kernel\n".repeat(100)).expect("write");
    let t = text.to_str().expect("path");
    let empty = r.dir.join("empty");
    fs::write(&empty, b"").expect("write");
    let e = empty.to_str().expect("path");
    // An ELF header that claims more program headers than the file has.
    let mut truncated = fs::read(&guest).expect("read guest");
    truncated.truncate(80);
    let trunc = r.dir.join("truncated.elf");
    fs::write(&trunc, &truncated).expect("write");
    let tr = trunc.to_str().expect("path");
    let d = r.dir.path().to_str().expect("path");
    let long = "x".repeat(4096);
    // An initrd larger than the guest's memory (sparse: it costs no disk).
    let big_path = r.dir.join("big.cpio");
    fs::File::create(&big_path)
        .and_then(|f| f.set_len(64 << 20))
        .expect("create big initrd");
    let big = big_path.to_str().expect("path");
    let odd = r.dir.join("odd.img");
    fs::write(&odd, [0u8; 1000]).expect("write");

    for detach in [false, true] {
        rejected(
            &r,
            &run_args(detach, &["--kernel", m]),
            &["kernel", "missing", "no such file"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", d]),
            &["kernel", "not a regular file"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", e]),
            &["kernel", "empty"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", t]),
            &["kernel", "text", "not an elf or bzimage"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", tr]),
            &["kernel", "not an elf or bzimage"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--initrd", m]),
            &["initrd", "no such file"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--disk", m]),
            &["disk", "no such file"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--disk", d]),
            &["disk", "not a regular file"],
        );
        rejected(
            &r,
            &run_args(
                detach,
                &["--kernel", g, "--disk", odd.to_str().expect("path")],
            ),
            &["disk", "multiple of 512"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--memory", "100000000"]),
            &["--memory 100000000", "more than the host has"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--cpus", "0"]),
            &["--cpus 0"],
        );
        let too_many = (u32::from(host_cpus()) + 1).to_string();
        if host_cpus() < 32 {
            rejected(
                &r,
                &run_args(detach, &["--kernel", g, "--cpus", &too_many]),
                &[&format!("--cpus {too_many}"), "more than the host has"],
            );
        }
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--name", "a/b"]),
            &["invalid vm name"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--net", "a/b"]),
            &["tap \"a/b\""],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--net", "berthnotap0"]),
            &["tap berthnotap0: no such tap device"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--cmdline", &long]),
            &["kernel command line"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--memory", "16", "--initrd", big]),
            &["initrd", "do not fit"],
        );
        rejected(
            &r,
            &run_args(detach, &["--kernel", g, "--disk", e]),
            &["disk", "empty"],
        );
    }
}

#[test]
fn a_duplicate_name_is_refused() {
    let r = VmRoot::new();
    r.run_guest(&["-d", "--name", "dup", "--cmdline", "tick"])
        .ok();
    r.wait_console("dup", "tick 1\n");
    for detach in [false, true] {
        let mut args = vec!["--name", "dup"];
        if detach {
            args.push("-d");
        }
        r.run_guest(&args)
            .failed_mentioning(&["a vm named \"dup\" already exists"]);
    }
    assert_eq!(r.names(), ["dup"]);
    assert_eq!(vmm_processes(&r.root(), 1).len(), 1);
    // The first VM is unharmed.
    let now = last_tick(&r.console("dup"));
    r.wait_console("dup", &format!("tick {}\n", now + 1));
    r.vm(&["stop", "dup"]).ok();
    r.vm(&["stop", "dup"])
        .failed_mentioning(&["no vm named \"dup\""]);
    assert!(r.names().is_empty());
}

/// A network namespace of this test, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = format!("berth-t-{}", unique_suffix());
        sh(&["ip", "netns", "add", &name]);
        NetNs(name)
    }
    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[track_caller]
fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn net_frames_flow_between_the_guest_and_a_tap() {
    let r = VmRoot::new();
    let ns = NetNs::new();
    for cmd in [
        vec!["ip", "tuntap", "add", "dev", "btap0", "mode", "tap"],
        vec!["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        vec!["ip", "link", "set", "btap0", "up"],
    ] {
        let st = ns.exec(&cmd).status().expect("ip netns exec");
        assert!(st.success(), "{cmd:?}");
    }
    let peer = berth_tests::workspace_dir().join("tests/guest/net-peer.py");
    let mut py = ns
        .exec(&["python3", peer.to_str().expect("path"), "btap0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3 (install python3)");
    let mut lines = BufReader::new(py.stdout.take().expect("stdout"));
    let mut ready = String::new();
    lines.read_line(&mut ready).expect("read");
    assert_eq!(ready.trim(), "ready");

    let guest = test_guest();
    let mut vm = ns.exec(&[berth_bin().to_str().expect("path"), "vm", "--root"]);
    vm.arg(r.root()).args([
        "run",
        "--kernel",
        guest.to_str().expect("path"),
        "--memory",
        "32",
        "--net",
        "btap0",
        "--cmdline",
        "net",
    ]);
    let out = berth_tests::capture(vm, berth_tests::Capture::Pipes, VM_TIMEOUT);
    let mut heard = String::new();
    lines.read_to_string(&mut heard).expect("read");
    let _ = py.wait();
    out.ok();
    // The guest's frame reached the host…
    assert_eq!(
        heard.trim(),
        "got berth-guest frame from 06:be:47:00:00:00",
        "{out}"
    );
    // …and the host's answer reached the guest.
    assert!(out.stdout.contains("net: mac=06:be:47:00:00:00\n"), "{out}");
    assert!(out.stdout.contains("net: sent\n"), "{out}");
    // The receive header (from the tap's vnet header): no flags or GSO, num_buffers 1.
    assert!(out.stdout.contains("net: rx header ok\n"), "{out}");
    assert!(
        out.stdout.contains("net: received=berth-host frame\n"),
        "{out}"
    );
}

#[test]
fn rng_fills_the_guests_buffers_with_random_bytes() {
    let r = VmRoot::new();
    let out = r.run_guest(&["--rng", "--cmdline", "rng"]);
    out.ok();
    let draws: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("rng: "))
        .collect();
    assert_eq!(draws.len(), 2, "{out}");
    for d in &draws {
        assert!(
            d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()),
            "{out}"
        );
        assert_ne!(*d, "0".repeat(32), "{out}");
    }
    assert_ne!(draws[0], draws[1], "{out}");
}

#[test]
fn vsock_connects_the_guest_to_a_host_unix_socket() {
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    let r = VmRoot::new();
    let uds = r.dir.join("v.sock");
    // The guest connects to host port 1234: the monitor connects to `<uds>_1234`.
    let listener = UnixListener::bind(format!("{}_1234", uds.display())).expect("bind");
    let host = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut got = vec![0u8; 20];
        conn.read_exact(&mut got).expect("read the guest's message");
        conn.write_all(b"hello from the host").expect("write");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)
            .expect("read to the guest's shutdown");
        (String::from_utf8_lossy(&got).into_owned(), rest)
    });
    let spec = format!("3:{}", uds.display());
    let out = r.run_guest(&["--name", "vs", "--vsock", &spec, "--cmdline", "vsock"]);
    out.ok();
    let (got, rest) = host.join().expect("host thread");
    assert_eq!(got, "hello from the guest", "{out}");
    assert!(rest.is_empty(), "{out}");
    assert!(out.stdout.contains("vsock: connected\n"), "{out}");
    assert!(
        out.stdout.contains("vsock: received=hello from the host\n"),
        "{out}"
    );
    assert!(out.stdout.contains("vsock: closed\n"), "{out}");
    // The device's own socket goes with the VM.
    assert!(!uds.exists());

    // A host program connects to the device's socket and asks for guest port 5000.
    let uds2 = r.dir.join("h.sock");
    let spec = format!("3:{}", uds2.display());
    let guest = test_guest();
    let mut cmd = Command::new(berth_bin());
    cmd.arg("vm")
        .arg("--root")
        .arg(r.root())
        .args(["run", "--kernel"])
        .arg(&guest)
        .args(["--vsock", &spec, "--cmdline", "vsock-listen"]);
    let vm = std::thread::spawn(move || {
        berth_tests::capture(cmd, berth_tests::Capture::Pipes, VM_TIMEOUT)
    });
    berth_tests::poll(VM_TIMEOUT, || uds2.exists().then_some(()))
        .expect("the vsock socket appears");
    let mut conn = std::os::unix::net::UnixStream::connect(&uds2).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    conn.write_all(b"CONNECT 5000\n").expect("write");
    let mut ack = [0u8; 14];
    conn.read_exact(&mut ack).expect("read the ack");
    assert_eq!(&ack, b"OK 1073741824\n");
    conn.write_all(b"ping from the host").expect("write");
    let mut echo = [0u8; 18];
    conn.read_exact(&mut echo).expect("read the echo");
    assert_eq!(&echo, b"ping from the host");
    drop(conn);
    let out = vm.join().expect("vm thread");
    out.ok();
    assert!(
        out.stdout.contains("vsock: accepted\nvsock: echoed\n"),
        "{out}"
    );

    // Nobody listening on the port: the guest's connection is refused.
    let out = r.run_guest(&["--vsock", "4", "--cmdline", "vsock"]);
    out.ok();
    assert!(out.stdout.contains("vsock: refused\n"), "{out}");
}

#[test]
fn a_vm_with_every_device_snapshots_and_restores() {
    let r = VmRoot::new();
    let path = disk(&r.dir, "snapdisk.img", b"disk of a snapshotted VM");
    let snap = r.dir.join("devices.snap");
    let spec = path.to_str().expect("path");
    r.run_guest(&[
        "-d",
        "--name",
        "full",
        "--disk",
        spec,
        "--rng",
        "--vsock",
        "5",
        "--cpus",
        "2",
        "--cmdline",
        "tick",
    ])
    .ok();
    let console = r.wait_console("full", "tick 2\n");
    assert!(console.contains("blk: write status=0\n"), "{console}");
    assert!(r.root().join("full/vsock.sock").exists());
    // `berth vm console` prints what the guest wrote so far (and follows until it stops).
    r.vm(&["snapshot", "full", snap.to_str().expect("path")])
        .ok();
    r.vm(&["stop", "full"]).ok();
    r.vm(&[
        "restore",
        "-d",
        "--name",
        "again",
        snap.to_str().expect("path"),
    ])
    .ok();
    let first = r.wait_first_tick("again");
    r.wait_console("again", &format!("tick {}\n", first + 1));
    assert!(r.root().join("again/vsock.sock").exists());
    let ls = r.vm(&["ls"]);
    assert!(
        ls.stdout.contains("again") && ls.stdout.contains("running"),
        "{ls}"
    );
    r.vm(&["stop", "again"]).ok();
    assert!(r.names().is_empty());
}

#[test]
fn console_follows_a_detached_vm_until_it_stops() {
    let r = VmRoot::new();
    r.run_guest(&["-d", "--name", "con", "--cmdline", "tick"])
        .ok();
    r.wait_console("con", "tick 1\n");
    let root = r.root();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        let mut cmd = Command::new(berth_bin());
        cmd.arg("vm").arg("--root").arg(&root).args(["stop", "con"]);
        berth_tests::capture(cmd, berth_tests::Capture::Pipes, VM_TIMEOUT)
    });
    let out = r.vm(&["console", "con"]);
    stopper.join().expect("stopper").ok();
    out.ok();
    assert!(out.stdout.starts_with("berth-guest: hello\n"), "{out}");
    assert!(last_tick(&out.stdout) >= 2, "{out}");
    // A foreground VM has no console to follow; an unknown name is an error.
    r.vm(&["console", "nope"])
        .failed_mentioning(&["no vm named \"nope\""]);
}

/// The status fields `Name` and `Seccomp` of every task of process `pid`.
fn task_seccomp(pid: u32) -> Vec<(String, String)> {
    let mut tasks = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        tasks.push((field("Name:"), field("Seccomp:")));
    }
    tasks.sort();
    tasks
}

/// Every thread of the monitor (the `berth-vmm` process `berth vm run` execs) runs under a
/// seccomp filter (mode 2): the vCPU threads under theirs from the start, the main thread
/// under its own once the event loop runs (KVM's per-VM worker thread inherits a vCPU
/// thread's). No forbidden system call can be provoked
/// from outside the monitor, so the test reads the kernel's view of every task.
#[test]
fn every_monitor_thread_runs_under_a_seccomp_filter() {
    let r = VmRoot::new();
    let cpus = host_cpus().min(2);
    r.run_guest(&[
        "-d",
        "--name",
        "sec",
        "--cpus",
        &cpus.to_string(),
        "--cmdline",
        "tick",
    ])
    .ok();
    r.wait_console("sec", "tick 1\n");
    let pid = vmm_pid(&r.root(), "sec");
    let tasks = task_seccomp(pid);
    let vcpus: Vec<&(String, String)> = tasks
        .iter()
        .filter(|(n, _)| n.starts_with("vcpu"))
        .collect();
    assert_eq!(vcpus.len(), usize::from(cpus), "{tasks:?}");
    assert!(
        tasks.iter().any(|(n, _)| n == "berth-vmm"),
        "no main thread: {tasks:?}"
    );
    for (name, mode) in &tasks {
        assert_eq!(mode, "2", "task {name} has no seccomp filter: {tasks:?}");
    }
    // The filtered main thread still serves every request.
    r.vm(&["pause", "sec"]).ok();
    r.vm(&["resume", "sec"]).ok();
    r.vm(&["stop", "sec"]).ok();
}

/// The monitor's confinement: its own cgroup with limits from the VM's size (every task of
/// it inside), no descriptor it did not open itself (an inherited one is closed), an empty
/// environment when detached; and the cgroup is gone once the VM has ended.
#[test]
fn the_monitor_runs_confined_in_a_cgroup_of_its_own() {
    let r = VmRoot::new();
    let cpus = host_cpus().min(2);
    let guest = test_guest();
    // Descriptor 7 is inherited (not close-on-exec) by berth and its detached monitor.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec 7</etc/hostname; exec \"$0\" \"$@\"")
        .arg(berth_bin())
        .args(["vm", "--root"])
        .arg(r.root())
        .args([
            "run",
            "-d",
            "--name",
            "jail",
            "--memory",
            "64",
            "--cmdline",
            "tick",
        ])
        .args(["--cpus", &cpus.to_string(), "--kernel"])
        .arg(&guest)
        .env("BERTH_TEST_SECRET", "leaked");
    berth_tests::capture(cmd, berth_tests::Capture::Pipes, VM_TIMEOUT).ok();
    r.wait_console("jail", "tick 1\n");
    let pid = vmm_pid(&r.root(), "jail");

    let dirs = vmm_cgroup_dirs("jail", pid);
    let limit = |dir: &std::path::Path, file: &str| {
        fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
            .trim()
            .to_string()
    };
    let memory = (64u64 + 64) << 20;
    for (ctrl, dir) in &dirs {
        match ctrl.as_str() {
            "memory" => assert_eq!(limit(dir, "memory.limit_in_bytes"), memory.to_string()),
            "cpu" => {
                assert_eq!(limit(dir, "cpu.cfs_period_us"), "100000");
                assert_eq!(
                    limit(dir, "cpu.cfs_quota_us"),
                    (u64::from(cpus) * 100_000).to_string()
                );
            }
            "pids" => assert_eq!(limit(dir, "pids.max"), (u64::from(cpus) + 4).to_string()),
            _ => {
                assert_eq!(limit(dir, "memory.max"), memory.to_string());
                assert_eq!(
                    limit(dir, "cpu.max"),
                    format!("{} 100000", u64::from(cpus) * 100_000)
                );
                assert_eq!(limit(dir, "pids.max"), (u64::from(cpus) + 4).to_string());
            }
        }
    }
    // Every task of the monitor is in it, in every hierarchy.
    let want = format!("/berth-vm/jail.{pid}");
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let cg = fs::read_to_string(task.path().join("cgroup")).unwrap_or_default();
        for (ctrl, _) in &dirs {
            let line = cg
                .lines()
                .find(|l| {
                    let mut f = l.splitn(3, ':').skip(1);
                    let ctrls = f.next().unwrap_or_default();
                    if ctrl.is_empty() {
                        ctrls.is_empty()
                    } else {
                        ctrls.split(',').any(|c| c == ctrl)
                    }
                })
                .unwrap_or_default();
            assert!(
                line.ends_with(&want),
                "task {:?} not in {want} ({ctrl}):\n{cg}",
                task.path()
            );
        }
    }
    // Descriptors: the console, /dev/null, KVM's, eventfds, epoll, the API socket.
    let mut fds = Vec::new();
    for fd in fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
    {
        let target = fs::read_link(fd.path()).unwrap_or_default();
        fds.push(target.to_string_lossy().into_owned());
    }
    let console = r.root().join("jail/console.log");
    for t in &fds {
        let expected = t == "/dev/null"
            || t == console.to_str().unwrap_or_default()
            || t.starts_with("socket:[")
            || t == "anon_inode:kvm-vm"
            || t.starts_with("anon_inode:kvm-vcpu:")
            || t == "anon_inode:[eventfd]"
            || t == "anon_inode:[eventpoll]";
        assert!(
            expected,
            "unexpected descriptor {t} in the monitor: {fds:?}"
        );
    }
    // An empty environment.
    let environ = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ.is_empty(),
        "environment: {:?}",
        String::from_utf8_lossy(&environ)
    );

    r.vm(&["stop", "jail"]).ok();
    let left = cgroups_left(&dirs);
    assert!(left.is_empty(), "cgroup left after the VM ended: {left:?}");
    assert!(vmm_processes(&r.root(), 0).is_empty());
}

/// `vm kill` removes the cgroup of the monitor it killed; a monitor that fails to boot its
/// VM removes its own.
#[test]
fn a_killed_or_failed_monitor_leaves_no_cgroup() {
    let r = VmRoot::new();
    r.run_guest(&["-d", "--name", "jk", "--cmdline", "tick"])
        .ok();
    r.wait_console("jk", "tick 1\n");
    let dirs = vmm_cgroup_dirs("jk", vmm_pid(&r.root(), "jk"));
    assert!(dirs.iter().all(|(_, d)| d.is_dir()), "no cgroup: {dirs:?}");
    r.vm(&["kill", "jk"]).ok();
    let left: Vec<_> = dirs.iter().filter(|(_, d)| d.exists()).collect();
    assert!(left.is_empty(), "cgroup left after vm kill: {left:?}");

    // A kernel that is no kernel fails after the cgroup was made.
    let bad = r.dir.join("garbage.elf");
    fs::write(&bad, vec![0x5au8; 8192]).expect("write");
    let parents: Vec<std::path::PathBuf> = dirs
        .iter()
        .filter_map(|(_, d)| d.parent().map(|p| p.to_path_buf()))
        .collect();
    r.vm(&[
        "run",
        "--name",
        "jf",
        "--kernel",
        bad.to_str().expect("path"),
    ])
    .failed_mentioning(&["kernel"]);
    for p in &parents {
        let stale: Vec<String> = fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("jf."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            stale.is_empty(),
            "cgroup left by a failed boot in {}: {stale:?}",
            p.display()
        );
    }
    assert!(r.names().is_empty(), "{:?}", r.names());
}

/// The kernel command line for a Linux guest here: under kvm_pvm (software KVM) the guest
/// must not use the features KVM's instruction emulator lacks (see ../shared/vmm/NOTES.md).
const LINUX_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 noxsave nofsgsbase \
     clearcpuid=smap,cx16,popcnt,bmi1,bmi2,movbe,rdrand,rdseed,avx2,avx,abm";

/// Boots the guest kernel (built by scripts/build-guest-kernel.sh) with a busybox initramfs
/// until it runs /init. Slow: about 75 s of guest time under kvm_pvm, where the guest's
/// userspace then faults and the kernel panics and reboots; on hardware KVM /init reboots.
#[track_caller]
fn boot_linux(kernel: &str, extra: &[&str]) -> berth_tests::Output {
    let _one_at_a_time = linux_boot_lock();
    let r = VmRoot::new();
    let kernel = guest_kernel().join(kernel);
    let initrd = busybox_initramfs(r.dir.path());
    let mut cmd = Command::new(berth_bin());
    cmd.env_remove("RUST_BACKTRACE")
        .arg("vm")
        .arg("--root")
        .arg(r.root())
        .args(["run", "--memory", "256", "--kernel"])
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--cmdline", LINUX_CMDLINE])
        .args(extra);
    let out = berth_tests::capture(cmd, berth_tests::Capture::Pipes, Duration::from_secs(600));
    assert!(
        out.stdout.contains("Linux version 6.1"),
        "no kernel banner:\n{out}"
    );
    assert!(
        out.stdout.contains("Run /init as init process"),
        "the kernel did not reach /init:\n{out}"
    );
    out
}

/// Two vCPUs: Linux finds them in the MP table and starts the second with INIT/SIPI.
#[test]
fn linux_guest_boots_to_init_through_pvh() {
    let out = boot_linux("vmlinux", &["--cpus", "2"]);
    assert!(
        out.stdout.contains("smp: Brought up 1 node, 2 CPUs"),
        "{out}"
    );
}

/// The same vmlinux entered in long mode at its ELF entry with a zero page (how
/// Firecracker boots it).
#[test]
fn linux_guest_boots_to_init_through_the_64_bit_boot_protocol() {
    let out = boot_linux("vmlinux", &["--linux-boot"]);
    assert!(
        out.stdout
            .contains("BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable"),
        "{out}"
    );
}

/// A bzImage, loaded by linux-loader and entered at its 64-bit entry with a zero page: its
/// decompressor runs in the guest first. The script's LZ4 bzImage, because gzip's
/// decompressor runs for minutes under kvm_pvm's emulator; LZ4's adds about a minute to the
/// boot here (about 2 min 20 s in all, the slowest test of the suite).
#[test]
fn linux_bzimage_boots_to_init_through_the_64_bit_boot_protocol() {
    let image = fs::read(guest_kernel().join("bzImage-lz4")).expect("read bzImage-lz4");
    assert_eq!(
        image.get(0x202..0x206),
        Some(&b"HdrS"[..]),
        "bzImage-lz4 is not a bzImage"
    );
    let out = boot_linux("bzImage-lz4", &[]);
    assert!(
        out.stdout
            .contains("BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable"),
        "{out}"
    );
}

/// A Linux guest snapshotted early in its boot and restored goes on booting from there
/// (no second "Linux version" banner) up to /init.
#[test]
fn linux_guest_restored_from_a_snapshot_continues_booting() {
    let _one_at_a_time = linux_boot_lock();
    let r = VmRoot::new();
    let kernel = guest_kernel().join("vmlinux");
    let initrd = busybox_initramfs(r.dir.path());
    let snap = r.dir.join("linux.snap");
    let out = r.vm(&[
        "run",
        "-d",
        "--name",
        "lx",
        "--memory",
        "256",
        "--kernel",
        kernel.to_str().expect("path"),
        "--initrd",
        initrd.to_str().expect("path"),
        "--cmdline",
        LINUX_CMDLINE,
    ]);
    out.ok();
    berth_tests::poll(Duration::from_secs(600), || {
        r.console("lx").contains("pid_max").then_some(())
    })
    .unwrap_or_else(|| panic!("no pid_max line:\n{}", r.console("lx")));
    r.vm(&["snapshot", "lx", snap.to_str().expect("path")]).ok();
    r.vm(&["kill", "lx"]).ok();
    let mut cmd = Command::new(berth_bin());
    cmd.env_remove("RUST_BACKTRACE")
        .arg("vm")
        .arg("--root")
        .arg(r.root())
        .args(["restore", "--name", "lx2"])
        .arg(&snap);
    let out = berth_tests::capture(cmd, berth_tests::Capture::Pipes, Duration::from_secs(600));
    assert!(!out.stdout.contains("Linux version"), "rebooted:\n{out}");
    assert!(
        out.stdout.contains("Run /init as init process"),
        "the restored kernel did not reach /init:\n{out}"
    );
}
