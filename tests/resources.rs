//! cgroup limits (memory, pids, cpu, cpuset, blkio), `update`, and seccomp.

use berth_tests::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const MIB: u64 = 1024 * 1024;

fn memory_limited(name: &str, limit: u64) -> Bundle {
    Bundle::new(name).resources("memory", json!({ "limit": limit, "swap": limit }))
}

#[test]
fn memory_limit_oom_kills_and_run_exits_137() {
    let b = memory_limited("oomrun", 32 * MIB).args(&["tail", "/dev/zero"]);
    let out = b.run();
    out.code_is(137);
    assert_no_leftovers(&b, &b.id, None);
}

#[test]
fn memory_limit_in_cgroup_and_oom_counted() {
    let b = memory_limited("oomcg", 32 * MIB).args(&["tail", "/dev/zero"]);
    b.create().ok();
    let pid = b.pid();
    assert_eq!(
        b.cgroup_file("memory", "memory.limit_in_bytes"),
        (32 * MIB).to_string()
    );
    let memsw = b.cgroup_dir("memory").join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        assert_eq!(
            b.cgroup_file("memory", "memory.memsw.limit_in_bytes"),
            (32 * MIB).to_string()
        );
    }
    b.start().ok();
    b.wait_status("stopped", WAIT);
    let oom = b.cgroup_file("memory", "memory.oom_control");
    let kills: u64 = oom
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill in memory.oom_control: {oom}"));
    assert!(kills >= 1, "no OOM kill counted: {oom}");
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn memory_reservation_and_swappiness() {
    let b = Bundle::new("memres")
        .resources(
            "memory",
            json!({ "limit": 64 * MIB, "reservation": 16 * MIB, "swappiness": 10 }),
        )
        .args(&["sleep", "100"]);
    let pid = b.create_start();
    assert_eq!(
        b.cgroup_file("memory", "memory.soft_limit_in_bytes"),
        (16 * MIB).to_string()
    );
    assert_eq!(b.cgroup_file("memory", "memory.swappiness"), "10");
    b.force_delete_clean(Some(pid));
}

#[test]
fn pids_limit() {
    let b = Bundle::new("pids")
        .resources("pids", json!({ "limit": 20 }))
        // The inner shell gives up at the first failed fork; the init survives it.
        .sh("sh -c 'for i in $(seq 100); do sleep 30 & done'; echo loop-done; exec sleep 100");
    let created = b.create();
    created.ok();
    let pid = b.pid();
    assert_eq!(b.cgroup_file("pids", "pids.max"), "20");
    b.start().ok();
    assert!(
        poll(WAIT, || created
            .stdout_now()
            .contains("loop-done")
            .then_some(()))
        .is_some(),
        "the fork loop never finished: {:?}",
        created.stderr_now()
    );
    let current: u32 = b
        .cgroup_file("pids", "pids.current")
        .parse()
        .expect("pids.current");
    assert!(current <= 20, "pids.current {current} > 20");
    assert!(
        current >= 15,
        "pids.current {current}: the loop did not fork much"
    );
    let err = created.stderr_now();
    assert!(err.contains("can't fork"), "stderr: {err:?}");
    b.force_delete_clean(Some(pid));
}

#[test]
fn cpu_and_cpuset_in_host_cgroup() {
    let b = Bundle::new("cpu")
        .resources(
            "cpu",
            json!({ "shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0" }),
        )
        .args(&["sleep", "100"]);
    let pid = b.create_start();
    assert_eq!(b.cgroup_file("cpu", "cpu.shares"), "512");
    assert_eq!(b.cgroup_file("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(b.cgroup_file("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(b.cgroup_file("cpuset", "cpuset.cpus"), "0");
    assert_eq!(b.cgroup_file("cpuset", "cpuset.mems"), "0");
    assert_eq!(proc_status_field(pid, "Cpus_allowed_list"), "0");
    // The init really is in those cgroups.
    for ctrl in [
        "cpu", "cpuset", "memory", "pids", "freezer", "devices", "blkio",
    ] {
        let procs = b.cgroup_file(ctrl, "cgroup.procs");
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "init {pid} not in the {ctrl} cgroup: {procs:?}"
        );
    }
    b.force_delete_clean(Some(pid));
}

fn root_block_device() -> (u64, u64) {
    let dev = fs::metadata("/").expect("stat /").dev();
    (nix::sys::stat::major(dev), nix::sys::stat::minor(dev))
}

#[test]
fn blkio_throttle_and_weight() {
    let (major, minor) = root_block_device();
    assert!(
        Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists(),
        "/ is not on a block device"
    );
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| Path::new("/sys/fs/cgroup/blkio").join(f).exists());
    let b = Bundle::new("blkio")
        .resources(
            "blockIO",
            json!({
                "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 1048576 }],
                "throttleWriteIOPSDevice": [{ "major": major, "minor": minor, "rate": 300 }]
            }),
        )
        .with(|c| {
            if weight_file.is_some() {
                c["linux"]["resources"]["blockIO"]["weight"] = json!(300);
            }
        })
        .args(&["sleep", "100"]);
    let pid = b.create_start();
    assert_eq!(
        b.cgroup_file("blkio", "blkio.throttle.read_bps_device"),
        format!("{major}:{minor} 1048576")
    );
    assert_eq!(
        b.cgroup_file("blkio", "blkio.throttle.write_iops_device"),
        format!("{major}:{minor} 300")
    );
    if let Some(f) = weight_file {
        let w = b.cgroup_file("blkio", f);
        assert!(w == "300" || w.starts_with("default 300"), "{f} is {w:?}");
    }
    b.force_delete_clean(Some(pid));
}

#[test]
fn update_resources_of_a_running_container() {
    let b = Bundle::new("update")
        .resources("pids", json!({ "limit": 50 }))
        .resources("memory", json!({ "limit": 64 * MIB }))
        .args(&["sleep", "100"]);
    let pid = b.create_start();
    assert_eq!(b.cgroup_file("pids", "pids.max"), "50");
    assert_eq!(
        b.cgroup_file("memory", "memory.limit_in_bytes"),
        (64 * MIB).to_string()
    );
    let res = json!({ "pids": { "limit": 30 }, "memory": { "limit": 128 * MIB } });
    let path = b.dir().join("resources.json");
    fs::write(&path, res.to_string()).expect("write resources");
    b.rt(&["update", "--resources", &path.to_string_lossy(), &b.id])
        .ok();
    assert_eq!(b.cgroup_file("pids", "pids.max"), "30");
    assert_eq!(
        b.cgroup_file("memory", "memory.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    // The flag form too.
    b.rt(&["update", "--pids-limit", "25", &b.id]).ok();
    assert_eq!(b.cgroup_file("pids", "pids.max"), "25");
    assert_eq!(b.status(), "running");
    b.force_delete_clean(Some(pid));
}

fn seccomp(c: &mut Value, profile: Value) {
    c["linux"]["seccomp"] = profile;
}

#[test]
fn seccomp_errno_rule() {
    let b = Bundle::new("seccompdeny")
        .tmpfs("/tmp")
        .with(|c| {
            seccomp(
                c,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{
                        "names": ["mkdir", "mkdirat"],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": 1
                    }]
                }),
            )
        })
        .sh("echo before; mkdir /tmp/x");
    let out = b.run();
    out.failed();
    assert_eq!(out.stdout, "before\n", "{out}");
    assert!(
        out.stderr.contains("Operation not permitted"),
        "mkdir was not denied:\n{out}"
    );
    // Control: the same mkdir works without the filter.
    let b = Bundle::new("seccompctl")
        .tmpfs("/tmp")
        .sh("mkdir /tmp/x && echo made");
    b.run().prints("made\n");
}

#[test]
fn seccomp_argument_filter() {
    // kill(pid, SIGUSR1) is denied; kill(pid, SIGUSR2) is not.
    let b = Bundle::new("seccompargs")
        .with(|c| {
            seccomp(
                c,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{
                        "names": ["kill"],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": 1,
                        "args": [{ "index": 1, "value": 10, "op": "SCMP_CMP_EQ" }]
                    }]
                }),
            )
        })
        .sh("trap 'echo got-usr1' USR1; trap 'echo got-usr2' USR2; \
             kill -USR1 $$; echo rc1=$?; kill -USR2 $$; echo rc2=$?");
    let out = b.run();
    out.prints("rc1=1\ngot-usr2\nrc2=0\n");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

#[test]
fn seccomp_masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    // config-linux.md: SCMP_CMP_MASKED_EQ matches when (arg & value) == valueTwo.
    // Denied: modes whose group/other bits are exactly 0o07 (707); allowed: 777.
    let rule = |name: &str, index: u32| {
        json!({
            "names": [name],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [{ "index": index, "value": 0o77, "valueTwo": 0o7, "op": "SCMP_CMP_MASKED_EQ" }]
        })
    };
    let b = Bundle::new("seccompmask")
        .with(|c| {
            seccomp(
                c,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [rule("chmod", 1), rule("fchmodat", 2), rule("fchmodat2", 2)]
                }),
            )
        })
        .mount(json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }))
        .sh(
            "touch /tmp/f; chmod 707 /tmp/f 2>/dev/null; echo rc707=$?; \
             chmod 777 /tmp/f; echo rc777=$?",
        );
    b.run().ok().prints("rc707=1\nrc777=0\n");
}

/// Syscalls a static busybox shell (and a runtime finishing its exec) needs.
const ALLOWED: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "open",
    "openat",
    "openat2",
    "close",
    "close_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "mremap",
    "madvise",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "ioctl",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "dup",
    "dup2",
    "dup3",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "gettimeofday",
    "getpid",
    "getppid",
    "gettid",
    "getpgrp",
    "setpgid",
    "getpgid",
    "setsid",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "tgkill",
    "tkill",
    "uname",
    "fcntl",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "readlink",
    "readlinkat",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "setuid",
    "setgid",
    "setresuid",
    "setresgid",
    "setgroups",
    "getrandom",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrlimit",
    "futex",
    "prctl",
    "capget",
    "capset",
    "umask",
    "sched_yield",
    "sched_getaffinity",
    "sysinfo",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "membarrier",
    "getrusage",
    "times",
    "statfs",
    "fstatfs",
    "fsync",
    "flock",
];

#[test]
fn seccomp_default_errno_with_allow_list() {
    let b = Bundle::new("seccompallow")
        .tmpfs("/tmp")
        .with(|c| {
            seccomp(
                c,
                json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{ "names": ALLOWED, "action": "SCMP_ACT_ALLOW" }]
                }),
            )
        })
        .sh("echo hi; mkdir /tmp/x");
    let out = b.run();
    out.failed();
    assert_eq!(out.stdout, "hi\n", "{out}");
    assert!(
        out.stderr.contains("Operation not permitted"),
        "mkdir (not allowed) was not denied:\n{out}"
    );
}

/// A seccomp agent on `sock`: accepts one connection and returns the container process
/// state it was sent and the descriptor that came with it (SCM_RIGHTS).
fn seccomp_agent(sock: &Path) -> std::thread::JoinHandle<(Value, std::os::fd::RawFd)> {
    let listener = std::os::unix::net::UnixListener::bind(sock).expect("bind agent socket");
    std::thread::spawn(move || {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        let (conn, _) = listener.accept().expect("accept agent connection");
        let mut buf = vec![0u8; 1 << 16];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .expect("recvmsg on agent socket");
        let mut fd = None;
        for c in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().copied();
            }
        }
        let n = msg.bytes;
        let fd = fd.expect("no descriptor sent to the agent");
        let state: Value = serde_json::from_slice(&buf[..n]).expect("state JSON");
        (state, fd)
    })
}

#[test]
fn seccomp_agent_gets_the_notify_fd_during_create() {
    // runc hands the notify descriptor to linux.seccomp.listenerPath while `create` runs
    // (the agent must be ready before the process starts), with the container process
    // state of runtime-spec config-linux.md "Seccomp" (`fds: ["seccompFd"]`).
    let data = TempDir::new("seccompagent");
    let sock = data.join("agent.sock");
    let b = Bundle::new("seccompagent")
        .tmpfs("/tmp")
        .bind(data.path(), "/data", false)
        .with(|c| {
            seccomp(
                c,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": sock,
                    "listenerMetadata": "berth-test",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }]
                }),
            )
        })
        .sh("mkdir /tmp/x 2>/dev/null; echo $? > /data/out");
    // Twice: the first container compiles the profile, the second loads the cached program
    // (seccomp(2) with SECCOMP_FILTER_FLAG_NEW_LISTENER) and must hand over its fd too.
    let mut cached_ino = None;
    for id in [b.id.clone(), unique_id("seccompagent2")] {
        let _ = fs::remove_file(&sock);
        let _ = fs::remove_file(data.join("out"));
        let agent = seccomp_agent(&sock);
        create(&b, &id).ok();
        let pid = pid_of(&state_json(&b, &id));
        let got = poll(Duration::from_secs(3), || agent.is_finished().then_some(()));
        assert!(got.is_some(), "{id}: the agent got nothing during create");
        let (state, fd) = agent.join().expect("agent thread");
        assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
        assert_eq!(state["pid"], json!(pid), "{state}");
        assert_eq!(state["metadata"], json!("berth-test"), "{state}");
        assert_eq!(state["state"]["id"], json!(id), "{state}");
        let link = fs::read_link(format!("/proc/self/fd/{fd}")).expect("readlink notify fd");
        assert_eq!(link.to_string_lossy(), "anon_inode:seccomp notify");
        // Without the agent the notified mkdir fails (ENOSYS) and the container goes on.
        nix::unistd::close(fd).expect("close notify fd");
        b.rt(&["start", &id]).ok();
        wait_status(&b, &id, "stopped", WAIT);
        assert_eq!(
            fs::read_to_string(data.join("out"))
                .unwrap_or_default()
                .trim(),
            "1"
        );
        delete(&b, &id, false).ok();
        let entries = seccomp_cache_entries(&b);
        assert_eq!(entries.len(), 1, "{id}: cache entries {entries:?}");
        let ino = fs::metadata(&entries[0]).expect("stat cache entry").ino();
        // The second container read the entry the first wrote, it did not rewrite it.
        assert_eq!(*cached_ino.get_or_insert(ino), ino, "{id}: entry rewritten");
    }
}

/// The runtime's compiled seccomp programs under the bundle's `--root`.
fn seccomp_cache_entries(b: &Bundle) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(b.state_root().join(".seccomp-cache"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "bpf"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A cache entry holding `prog` (magic, SHA-256 of the program, the program).
fn seccomp_cache_file(prog: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut v = b"BSECBPF1".to_vec();
    v.extend_from_slice(&sha2::Sha256::digest(prog));
    v.extend_from_slice(prog);
    v
}

#[test]
fn seccomp_program_cached_denies_alike_and_bad_entries_are_replaced() {
    let b = Bundle::new("seccompcache")
        .tmpfs("/tmp")
        .with(|c| {
            seccomp(
                c,
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{
                        "names": ["mkdir", "mkdirat"],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": 1
                    }]
                }),
            )
        })
        .sh("echo before; mkdir /tmp/x && echo made");
    let denied = |round: &str| {
        let out = run(&b, &unique_id("seccompcache"));
        out.failed();
        assert_eq!(out.stdout, "before\n", "{round}: {out}");
        assert!(
            out.stderr.contains("Operation not permitted"),
            "{round}: mkdir was not denied:\n{out}"
        );
    };
    let dir = b.state_root().join(".seccomp-cache");
    assert!(!dir.exists(), "a cache before any container");
    // First run: compiled, then stored (0700 directory, 0600 root-owned file).
    denied("compiled");
    let entries = seccomp_cache_entries(&b);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries[0].clone();
    let dm = fs::metadata(&dir).expect("stat cache dir");
    assert_eq!(dm.mode() & 0o777, 0o700);
    let fm = fs::metadata(&entry).expect("stat cache entry");
    assert_eq!((fm.mode() & 0o777, fm.uid()), (0o600, 0));
    let good = fs::read(&entry).expect("read cache entry");
    // Second run: from the cache, the same denial, the entry untouched.
    denied("cached");
    assert_eq!(fs::metadata(&entry).expect("stat").ino(), fm.ino());

    // The cache is what gets loaded: a sound entry holding an allow-everything program
    // (BPF_RET|BPF_K SECCOMP_RET_ALLOW) lets mkdir through.
    let mut allow = 0x06u16.to_ne_bytes().to_vec();
    allow.extend_from_slice(&[0, 0]);
    allow.extend_from_slice(&0x7fff_0000u32.to_ne_bytes());
    fs::write(&entry, seccomp_cache_file(&allow)).expect("write allow-all entry");
    let out = run(&b, &unique_id("seccompcache"));
    out.ok();
    assert_eq!(out.stdout, "before\nmade\n", "{out}");

    // A corrupt entry (one byte of the program flipped, digest left alone) is detected:
    // the profile is compiled again, the container still denied, the entry replaced.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs::write(&entry, &bad).expect("corrupt cache entry");
    denied("corrupt entry");
    assert_eq!(
        fs::read(&entry).expect("read"),
        good,
        "corrupt entry not replaced"
    );

    // An entry others may write is not trusted, however sound: the allow-all program again,
    // mode 0666.
    fs::write(&entry, seccomp_cache_file(&allow)).expect("write allow-all entry");
    fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    denied("world-writable entry");
    assert_eq!(fs::read(&entry).expect("read"), good);
    assert_eq!(fs::metadata(&entry).expect("stat").mode() & 0o777, 0o600);

    // A truncated entry: compiled again too.
    fs::write(&entry, &good[..good.len() - 3]).expect("truncate cache entry");
    denied("truncated entry");
    assert_eq!(fs::read(&entry).expect("read"), good);
}

#[test]
fn systemd_cgroup_path_maps_to_systemds_layout_without_systemd() {
    // runc --systemd-cgroup takes linux.cgroupsPath as slice:prefix:name. This host has no
    // systemd: the runtime uses the cgroupfs layout systemd would have made (the slice
    // expanded into its parents, the unit prefix-name.scope below it), and later verbs
    // find the same cgroup without the flag.
    let scope =
        Path::new("/sys/fs/cgroup/memory/berthtest.slice/berthtest-sd.slice/berth-sdcg.scope");
    let b = Bundle::new("sdcg")
        .with(|c| c["linux"]["cgroupsPath"] = json!("berthtest-sd.slice:berth:sdcg"))
        .resources("memory", json!({ "limit": 64 * MIB }))
        .args(&["sleep", "100"]);
    b.rt(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        &b.dir_str(),
        &b.id,
    ])
    .ok();
    let pid = b.pid();
    let procs = fs::read_to_string(scope.join("cgroup.procs")).expect("scope cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    assert_eq!(
        fs::read_to_string(scope.join("memory.limit_in_bytes"))
            .unwrap_or_default()
            .trim(),
        (64 * MIB).to_string()
    );
    b.start().ok();
    b.rt(&["update", "--memory", &(32 * MIB).to_string(), &b.id])
        .ok();
    assert_eq!(
        fs::read_to_string(scope.join("memory.limit_in_bytes"))
            .unwrap_or_default()
            .trim(),
        (32 * MIB).to_string()
    );
    b.delete_force().ok();
    assert!(!scope.exists(), "the scope's cgroup was left behind");
    // The slice directories the runtime made in every hierarchy (as systemd would keep them).
    for h in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = fs::remove_dir(h.path().join("berthtest.slice/berthtest-sd.slice"));
        let _ = fs::remove_dir(h.path().join("berthtest.slice"));
    }
    // A cgroupfs path with the flag is refused, naming the field and the form.
    let bad = Bundle::new("sdcgbad")
        .with(|c| c["linux"]["cgroupsPath"] = json!("/berth-test/plain"))
        .args(&["true"]);
    bad.rt(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        &bad.dir_str(),
        &bad.id,
    ])
    .failed_mentioning(&["linux.cgroupsPath", "slice:prefix:name"]);
    // No cgroupsPath with the flag: system.slice:berth:ID (seen from the host's cgroup
    // namespace).
    let sd = Bundle::new("sdcgdef2")
        .with(|c| {
            c["linux"]
                .as_object_mut()
                .expect("linux")
                .remove("cgroupsPath");
            c["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .retain(|n| n["type"] != "cgroup");
        })
        .sh("grep :memory: /proc/self/cgroup");
    let out = sd.rt(&["--systemd-cgroup", "run", "--bundle", &sd.dir_str(), &sd.id]);
    out.ok();
    assert!(
        out.stdout
            .trim()
            .ends_with(&format!("/system.slice/berth-{}.scope", sd.id)),
        "{out}"
    );
    // The slice directories this test made (empty ones only; rmdir fails on the rest).
    for h in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = fs::remove_dir(h.path().join("system.slice"));
    }
}

#[test]
fn events_stats_and_oom_like_runc() {
    // runc events: JSON lines {"type":"stats","id":…,"data":types.Stats}; --stats prints
    // one; otherwise one per --interval, an {"type":"oom"} line when the memory controller
    // kills, and the stream ends when the container stops.
    let b = memory_limited("events", 32 * MIB)
        .resources("pids", json!({ "limit": 50 }))
        .sh(
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1; \
             dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 1",
        );
    let pid = b.create_start();
    let out = b.rt(&["events", "--stats", &b.id]);
    out.ok();
    assert_eq!(out.stdout.lines().count(), 1, "{out}");
    let ev: Value = serde_json::from_str(out.stdout.trim()).expect("event JSON");
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], json!(b.id), "{ev}");
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], json!(32 * MIB), "{ev}");
    assert!(
        d["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{ev}"
    );
    assert!(d["memory"]["raw"].is_object(), "{ev}");
    assert!(
        d["cpu"]["usage"]["total"].as_u64().is_some_and(|t| t > 0),
        "{ev}"
    );
    assert_eq!(d["pids"]["limit"], json!(50), "{ev}");
    assert!(
        d["pids"]["current"].as_u64().is_some_and(|c| c >= 1),
        "{ev}"
    );
    // The stream: several stats lines, the OOM kill of dd, and an end when sh exits.
    let out = capture(
        b.command(&["events", "--interval", "200ms", &b.id]),
        Capture::Pipes,
        Duration::from_secs(30),
    );
    out.ok();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect();
    assert!(
        lines.iter().filter(|e| e["type"] == "stats").count() >= 3,
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|e| e["type"] == "oom" && e["id"] == json!(b.id)),
        "{out}"
    );
    // A stopped container has no events: an error naming it.
    b.rt(&["events", "--stats", &b.id])
        .failed_mentioning(&[&b.id, "stopped"]);
    b.rt(&["events", "--interval", "soon", &b.id])
        .failed_mentioning(&["--interval", "soon"]);
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

/// The init is born in its v1 cgroups (the runtime's thread joins them for the clone): it is
/// in every controller's cgroup before it runs anything, and the runtime — still alive in
/// the foreground of `run` — is in none of them.
#[test]
fn init_born_in_its_cgroups_and_the_runtime_not_left_there() {
    let b = Bundle::new("born")
        .resources("pids", json!({ "limit": 20 }))
        .args(&["sleep", "100"]);
    b.track(&b.id);
    let mut cmd = b.command(&["run", "--bundle", &b.dir_str(), &b.id]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut runtime = cmd.spawn().expect("spawn berth-runtime run");
    let st = b.wait_status("running", WAIT);
    let pid = pid_of(&st);
    let me = runtime.id().to_string();
    for ctrl in [
        "cpu", "cpuset", "memory", "pids", "freezer", "devices", "blkio",
    ] {
        let procs = b.cgroup_file(ctrl, "cgroup.procs");
        assert_eq!(
            procs.lines().collect::<Vec<_>>(),
            vec![pid.to_string().as_str()],
            "{ctrl}: the cgroup holds {procs:?}; the init is {pid}, the runtime {me}"
        );
    }
    b.kill("KILL").ok();
    let status = runtime.wait().expect("wait for berth-runtime run");
    assert_eq!(status.code(), Some(137), "run's exit: {status:?}");
    assert_no_leftovers(&b, &b.id, Some(pid));
}

/// With `pids.max` 1 the runtime's thread cannot fork inside the cgroup: the init is made
/// outside and moved in, as before, and runs.
#[test]
fn pids_limit_of_one_still_runs() {
    let b = Bundle::new("pids1")
        .resources("pids", json!({ "limit": 1 }))
        // Builtins only: a fork would exceed the limit.
        .sh("echo one; while read l; do echo $l; done < /proc/self/cgroup");
    let out = b.run();
    out.code_is(0);
    assert!(out.stdout.starts_with("one\n"), "{out}");
    assert!(
        out.stdout.lines().any(|l| l.contains(":pids:")),
        "no pids line in {out}"
    );
    assert_no_leftovers(&b, &b.id, None);
}
