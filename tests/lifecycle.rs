//! The container lifecycle and the runc command line: run, create/start/state/kill/delete,
//! list, ps, pause/resume, pid files, spec, features and exec.

use berth_tests::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn run_prints_output() {
    let b = Bundle::new("echo").args(&["echo", "hi"]);
    b.run().prints("hi\n");
    // `run` deletes the container when it exits.
    assert_no_leftovers(&b, &b.id, None);
}

#[test]
fn run_passes_exit_code_through() {
    let b = Bundle::new("exit3").sh("echo before; exit 3");
    let out = b.run();
    out.code_is(3);
    assert_eq!(out.stdout, "before\n", "{out}");
    assert_no_leftovers(&b, &b.id, None);
}

#[test]
fn run_reports_stderr_separately() {
    let b = Bundle::new("stderr").sh("echo out; echo err >&2; exit 0");
    let out = b.run();
    out.prints("out\n");
    assert!(out.stderr.contains("err\n"), "{out}");
}

#[test]
fn create_start_kill_delete() {
    let b = Bundle::new("life").args(&["sleep", "100"]);
    b.create().ok();
    let st = b.state_json();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], b.id.as_str(), "{st}");
    let pid = pid_of(&st);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "init {pid} not alive"
    );
    let bundle = st["bundle"].as_str().unwrap_or_default();
    assert_eq!(
        fs::canonicalize(bundle).ok(),
        fs::canonicalize(b.dir()).ok(),
        "{st}"
    );
    // The user's process is not running yet: the init is still the runtime.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm.trim(), "sleep", "process started before `start`");

    b.start().ok();
    let st = b.state_json();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(pid_of(&st), pid, "pid changed across start");
    let comm = poll(WAIT, || {
        let c = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (c.trim() == "sleep").then_some(c)
    });
    assert!(comm.is_some(), "init {pid} never became `sleep`");

    // The leftover check sees a live container (so it can fail).
    let live = leftovers(&b, &b.id, Some(pid));
    for what in ["state dir", "cgroup dir", "container init"] {
        assert!(
            live.iter().any(|l| l.starts_with(what)),
            "no {what} among {live:?}"
        );
    }

    b.kill("KILL").ok();
    b.wait_status("stopped", WAIT);
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
    b.state().failed();
}

#[test]
fn kill_sigterm_reaches_a_trapping_init() {
    let data = TempDir::new("term");
    let b = Bundle::new("term")
        .bind(data.path(), "/data", false)
        .sh("trap 'echo got-term > /data/t; exit 0' TERM; echo ready > /data/r; while :; do sleep 0.02; done");
    let pid = b.create_start();
    assert!(
        poll(WAIT, || data.join("r").exists().then_some(())).is_some(),
        "container never got ready"
    );
    b.kill("SIGTERM").ok();
    b.wait_status("stopped", WAIT);
    assert_eq!(
        fs::read_to_string(data.join("t")).unwrap_or_default(),
        "got-term\n"
    );
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn kill_all_kills_every_process_without_a_pid_namespace() {
    // Without a pid namespace the init's death does not take its children along:
    // only `kill --all` reaches them.
    let b = Bundle::new("killall")
        .with(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
            ns.retain(|n| n["type"] != "pid");
        })
        .sh("sleep 101 & sleep 102 & wait");
    let pid = b.create_start();
    let procs = poll(WAIT, || {
        let p: Vec<i32> = b
            .cgroup_file("pids", "cgroup.procs")
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        (p.len() == 3).then_some(p)
    })
    .expect("the cgroup never held init + 2 sleeps");
    b.rt(&["kill", "--all", &b.id, "KILL"]).ok();
    b.wait_status("stopped", WAIT);
    let gone = poll(WAIT, || {
        procs
            .iter()
            .all(|p| !matches!(fs::read_to_string(format!("/proc/{p}/stat")), Ok(s) if !s.contains(") Z ")))
            .then_some(())
    });
    assert!(gone.is_some(), "processes {procs:?} survived kill --all");
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn kill_with_a_real_time_signal() {
    // podman stops systemd images with SIGRTMIN+3 (37 with glibc).
    let b = Bundle::new("killrt")
        .sh("trap 'echo got-rt; exit 3' 37; echo ready; while :; do sleep 0.05; done");
    let out = b.create();
    out.ok();
    let pid = b.pid();
    b.start().ok();
    poll(WAIT, || out.stdout_now().contains("ready").then_some(()))
        .expect("the container never became ready");
    b.kill("RTMIN+3").ok();
    b.wait_status("stopped", WAIT);
    assert!(out.stdout_now().contains("got-rt"), "{}", out.stdout_now());
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn delete_running_needs_force() {
    let b = Bundle::new("delrun").args(&["sleep", "100"]);
    let pid = b.create_start();
    let out = b.delete();
    out.failed();
    assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    assert_eq!(
        b.status(),
        "running",
        "a failed delete changed the container"
    );
    b.delete_force().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn delete_force_of_created_container() {
    let b = Bundle::new("delcreated").args(&["sleep", "100"]);
    b.create().ok();
    let pid = b.pid();
    b.force_delete_clean(Some(pid));
}

#[test]
fn delete_of_created_container_without_force_fails() {
    let b = Bundle::new("delcreated2").args(&["sleep", "100"]);
    b.create().ok();
    let pid = b.pid();
    b.delete().failed_mentioning(&["created"]);
    assert_eq!(
        b.status(),
        "created",
        "a failed delete changed the container"
    );
    b.force_delete_clean(Some(pid));
}

#[test]
fn kill_sigterm_stops_a_created_container() {
    // The parked init is pid 1 of its namespace: it must still die of SIGTERM.
    let b = Bundle::new("killcreated").args(&["sleep", "100"]);
    b.create().ok();
    let pid = b.pid();
    b.kill("TERM").ok();
    b.wait_status("stopped", WAIT);
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn container_gets_default_sigpipe() {
    // `yes | head -1` ends only if SIGPIPE kills `yes`: the runtime (a Rust program ignores
    // SIGPIPE) must not pass its ignored SIGPIPE on.
    let b = Bundle::new("sigpipe").sh(
        "grep SigIgn /proc/self/status | cut -f2 > /tmp/ign; yes | head -1; \
         echo ign=$(( 0x$(cat /tmp/ign) >> 12 & 1 ))",
    );
    let b =
        b.mount(serde_json::json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }));
    b.run().ok().prints("y\nign=0\n");
}

#[test]
fn start_twice_fails() {
    let b = Bundle::new("start2").args(&["sleep", "100"]);
    let pid = b.create_start();
    let out = b.start();
    out.failed();
    assert!(!out.stderr.trim().is_empty(), "no error message:\n{out}");
    assert_eq!(b.status(), "running");
    assert_eq!(b.pid(), pid);
    b.force_delete_clean(Some(pid));
}

#[test]
fn start_of_stopped_container_fails() {
    let b = Bundle::new("startstopped").args(&["true"]);
    b.create_start();
    b.wait_status("stopped", WAIT);
    b.start().failed();
    b.delete().ok();
}

#[test]
fn unknown_id_is_an_error_naming_it() {
    // runc says only "container does not exist", without the id.
    let b = Bundle::new("unknown");
    let id = unique_id("nosuch");
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
    ] {
        b.rt(&args).failed_mentioning(&[&id]);
    }
}

#[test]
fn list_shows_the_container() {
    let b = Bundle::new("list").args(&["sleep", "100"]);
    let pid = b.create_start();
    let out = b.rt(&["list"]);
    out.ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(b.id.as_str()))
        .unwrap_or_else(|| panic!("id not listed:\n{out}"));
    assert!(line.contains("running"), "{line}");
    assert!(line.contains(&pid.to_string()), "{line}");

    let out = b.rt(&["list", "--format", "json"]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    let list = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array:\n{out}"));
    assert_eq!(list.len(), 1, "{out}");
    assert_eq!(list[0]["id"], b.id.as_str());
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[0]["pid"], pid);

    let out = b.rt(&["list", "-q"]);
    out.prints(&format!("{}\n", b.id));
    b.force_delete_clean(Some(pid));
    let out = b.rt(&["list", "--format", "json"]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or(json!([]));
    assert!(
        v.as_array().is_none_or(|a| a.is_empty()),
        "deleted container still listed:\n{out}"
    );
}

#[test]
fn ps_lists_pids_as_json() {
    let b = Bundle::new("ps").sh("sleep 100 & sleep 100 & wait");
    let pid = b.create_start();
    let pids = poll(WAIT, || {
        let out = b.rt(&["ps", "--format", "json", &b.id]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        let mut pids: Vec<i64> = v.as_array()?.iter().filter_map(Value::as_i64).collect();
        pids.sort();
        (pids.len() == 3).then_some(pids)
    })
    .expect("ps --format json never listed 3 pids");
    assert!(pids.contains(&(pid as i64)), "{pids:?} lacks init {pid}");
    let mut host: Vec<i64> = b
        .cgroup_file("pids", "cgroup.procs")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    host.sort();
    assert_eq!(pids, host, "ps disagrees with the cgroup");
    b.force_delete_clean(Some(pid));
}

#[test]
fn pause_and_resume() {
    let data = TempDir::new("pause");
    let b = Bundle::new("pause")
        .bind(data.path(), "/data", false)
        .sh("while :; do echo x >> /data/c; sleep 0.01; done");
    let pid = b.create_start();
    let size = || fs::metadata(data.join("c")).map(|m| m.len()).unwrap_or(0);
    assert!(
        poll(WAIT, || (size() > 0).then_some(())).is_some(),
        "counter never started"
    );
    b.rt(&["pause", &b.id]).ok();
    assert_eq!(b.status(), "paused");
    let frozen = size();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(size(), frozen, "the container made progress while paused");
    b.rt(&["resume", &b.id]).ok();
    assert_eq!(b.status(), "running");
    assert!(
        poll(WAIT, || (size() > frozen).then_some(())).is_some(),
        "no progress after resume"
    );
    b.force_delete_clean(Some(pid));
}

#[test]
fn pid_file_holds_the_init_pid() {
    let b = Bundle::new("pidfile").args(&["sleep", "100"]);
    let pid_file = b.dir().join("init.pid");
    b.track(&b.id);
    b.rt_files(&[
        "create",
        "--bundle",
        &b.dir_str(),
        "--pid-file",
        &pid_file.to_string_lossy(),
        &b.id,
    ])
    .ok();
    let written = fs::read_to_string(&pid_file).expect("pid file not written");
    assert_eq!(
        written.trim().parse::<i32>().ok(),
        Some(b.pid()),
        "{written:?}"
    );
    b.force_delete_clean(Some(b.pid()));
}

#[test]
fn run_detach_returns_with_the_container_running() {
    let b = Bundle::new("detach").args(&["sleep", "100"]);
    let t = std::time::Instant::now();
    b.rt_files(&["run", "--detach", "--bundle", &b.dir_str(), &b.id])
        .ok();
    assert!(t.elapsed() < Duration::from_secs(10), "run --detach waited");
    let st = b.state_json();
    assert_eq!(st["status"], "running", "{st}");
    let pid = pid_of(&st);
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "sleep");
    b.force_delete_clean(Some(pid));
}

#[test]
fn spec_writes_a_config() {
    let b = Bundle::new("spec");
    let dir = TempDir::new("spec");
    b.rt(&["spec", "--bundle", &dir.path().to_string_lossy()])
        .ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("spec wrote no config.json");
    let v: Value = serde_json::from_str(&text).expect("config.json from spec is not JSON");
    let args = v["process"]["args"].as_array().expect("process.args");
    assert!(!args.is_empty(), "{text}");
    assert!(v["ociVersion"]
        .as_str()
        .is_some_and(|s| s.starts_with("1.")));
    assert_eq!(v["root"]["path"], "rootfs");
}

#[test]
fn features_prints_json() {
    let b = Bundle::new("features");
    let out = b.rt(&["features"]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    for k in ["ociVersionMin", "ociVersionMax"] {
        assert!(
            v[k].as_str().is_some_and(|s| s.starts_with("1.")),
            "{k} missing:\n{out}"
        );
    }
    let hooks = v["hooks"].as_array().map(|h| h.len()).unwrap_or(0);
    assert!(hooks >= 5, "hooks not listed:\n{out}");
    // runtime-spec 1.2's recursive mount options are listed.
    let opts: Vec<&str> = v["mountOptions"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o.as_str()).collect())
        .unwrap_or_default();
    for o in [
        "rro",
        "rrw",
        "rnosuid",
        "rnodev",
        "rnoexec",
        "rnoatime",
        "rstrictatime",
        "rnodiratime",
        "rnosymfollow",
        "rbind",
    ] {
        assert!(opts.contains(&o), "{o} not listed:\n{out}");
    }
}

#[test]
fn exec_joins_the_container_namespaces() {
    let b = Bundle::new("execns").args(&["sleep", "100"]);
    let pid = b.create_start();
    let nss = ["pid", "net", "mnt", "uts", "ipc", "cgroup"];
    let script: String = nss
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n}; "))
        .collect::<String>()
        + "hostname";
    let out = b.exec(&["sh", "-c", &script]);
    out.ok();
    let mut expected: String = nss.iter().map(|n| ns_of(pid, n) + "\n").collect();
    expected.push_str(HOSTNAME);
    expected.push('\n');
    assert_eq!(out.stdout, expected, "{out}");
    // And they differ from the host's.
    let me = std::process::id() as i32;
    for n in nss {
        assert_ne!(
            ns_of(pid, n),
            ns_of(me, n),
            "container shares the host {n} ns"
        );
    }
    b.force_delete_clean(Some(pid));
}

#[test]
fn exec_options() {
    let b = Bundle::new("execopts").args(&["sleep", "100"]);
    let pid = b.create_start();
    b.exec(&["sh", "-c", "exit 5"]).code_is(5);
    b.exec_with(&["--env", "FOO=bar baz"], &["sh", "-c", "echo \"$FOO\""])
        .prints("bar baz\n");
    b.exec_with(&["--cwd", "/etc"], &["pwd"]).prints("/etc\n");
    b.exec_with(&["--user", "1000:1000"], &["sh", "-c", "id -u; id -g"])
        .prints("1000\n1000\n");
    b.exec(&["sh", "-c", "echo $$"]).ok();
    let out = b.exec(&["/bin/nonexistent"]);
    out.failed();
    b.force_delete_clean(Some(pid));
}

#[test]
fn exec_process_json() {
    let b = Bundle::new("execjson").args(&["sleep", "100"]);
    let pid = b.create_start();
    let process = json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000 },
        "args": ["sh", "-c", "echo $GREETING; pwd; id -u; exit 4"],
        "env": ["PATH=/bin", "GREETING=hello"],
        "cwd": "/tmp",
        "noNewPrivileges": true
    });
    let path = b.dir().join("process.json");
    fs::write(&path, process.to_string()).expect("write process.json");
    let out = b.rt(&["exec", "--process", &path.to_string_lossy(), &b.id]);
    out.code_is(4);
    assert_eq!(out.stdout, "hello\n/tmp\n1000\n", "{out}");
    b.force_delete_clean(Some(pid));
}

#[test]
fn exec_detach_with_pid_file() {
    let b = Bundle::new("execdetach").args(&["sleep", "100"]);
    let pid = b.create_start();
    let pid_file = b.dir().join("exec.pid");
    b.rt_files(&[
        "exec",
        "--detach",
        "--pid-file",
        &pid_file.to_string_lossy(),
        &b.id,
        "sleep",
        "99",
    ])
    .ok();
    let epid: i32 = fs::read_to_string(&pid_file)
        .expect("exec pid file not written")
        .trim()
        .parse()
        .expect("pid file holds a number");
    assert_ne!(epid, pid);
    let cmdline = fs::read_to_string(format!("/proc/{epid}/cmdline")).unwrap_or_default();
    assert_eq!(cmdline, "sleep\x0099\x00");
    assert_eq!(ns_of(epid, "pid"), ns_of(pid, "pid"));
    assert_eq!(ns_of(epid, "mnt"), ns_of(pid, "mnt"));
    let procs = b.cgroup_file("pids", "cgroup.procs");
    assert!(
        procs.lines().any(|l| l == epid.to_string()),
        "exec'd process not in the container's cgroup: {procs}"
    );
    b.force_delete_clean(Some(pid));
    assert!(
        poll(WAIT, || (!Path::new(&format!("/proc/{epid}")).exists()
            || proc_status_field(epid, "State").starts_with('Z'))
        .then_some(()))
        .is_some(),
        "exec'd process survived delete --force"
    );
}

#[test]
fn session_keyring_of_its_own_unless_no_new_keyring() {
    // runc's default: the container joins a new session keyring named `_ses.<id>`.
    let keys = |id: &str| {
        fs::read_to_string("/proc/keys")
            .unwrap_or_default()
            .contains(&format!("_ses.{id}"))
    };
    let b = Bundle::new("keyring").args(&["sleep", "100"]);
    let pid = b.create_start();
    assert!(
        keys(&b.id),
        "no session keyring _ses.{} in /proc/keys",
        b.id
    );
    b.force_delete_clean(Some(pid));

    let id2 = format!("{}-nk", b.id);
    b.track(&id2);
    b.rt_files(&["create", "--no-new-keyring", "--bundle", &b.dir_str(), &id2])
        .ok();
    assert!(!keys(&id2), "--no-new-keyring made a keyring");
    delete(&b, &id2, true).ok();
}

/// Accepts one connection on `listener` and receives the descriptor sent over it
/// (SCM_RIGHTS), as podman/conmon do with `--console-socket`. The caller closes it.
fn receive_console(listener: &std::os::unix::net::UnixListener) -> std::os::fd::RawFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let (conn, _) = listener.accept().expect("accept console socket");
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg on console socket");
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                return *fd;
            }
        }
    }
    panic!("no descriptor received on the console socket");
}

#[test]
fn console_socket_gets_the_pty_master() {
    // process.terminal with --console-socket: the runtime sends the pty master over the
    // socket; the container's stdio is the slave, a terminal.
    let sock_dir = TempDir::new("console");
    let sock = sock_dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind console socket");
    let b = Bundle::new("console")
        .with(|c| c["process"]["terminal"] = json!(true))
        .sh("[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; stty size");
    b.track(&b.id);
    let cmd = b.command(&[
        "create",
        "--console-socket",
        &sock.to_string_lossy(),
        "--bundle",
        &b.dir_str(),
        &b.id,
    ]);
    let io = b.dir().join("io");
    let create = std::thread::scope(|s| {
        let h = s.spawn(move || capture(cmd, Capture::Files(io), CMD_TIMEOUT));
        let master = receive_console(&listener);
        (h.join().expect("create thread"), master)
    });
    let (out, master) = create;
    out.ok();
    let pid = b.pid();
    b.start().ok();
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        match nix::unistd::read(master, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let _ = nix::unistd::close(master);
    let text = String::from_utf8_lossy(&text).replace('\r', "");
    assert!(text.contains("is-a-tty\n"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    b.wait_status("stopped", WAIT);
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

/// The ELF program header types of a 64-bit little-endian executable.
fn elf_segment_types(bytes: &[u8]) -> Vec<u32> {
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    assert!(
        bytes.len() > 64 && &bytes[..4] == b"\x7fELF" && bytes[4] == 2,
        "not ELF64"
    );
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("e_phoff")) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).map(|i| u32_at(phoff + i * size)).collect()
}

#[test]
fn runtime_binary_is_static_and_position_independent() {
    // What the RSS and exec-time numbers in docs/benchmarks.md rest on: no interpreter
    // (PT_INTERP, 3), so no dynamic loader and no shared libraries; and ET_DYN, so ASLR.
    let bin = runtime_bin();
    if runtime_is_runc() {
        return; // a property of berth-runtime's build only
    }
    let bytes = fs::read(&bin).expect("read berth-runtime");
    let types = elf_segment_types(&bytes);
    assert!(!types.is_empty(), "no program headers in {}", bin.display());
    assert!(
        !types.contains(&3),
        "{} is dynamically linked (has PT_INTERP): .cargo/config.toml's static link is not in effect",
        bin.display()
    );
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    assert_eq!(
        e_type,
        3,
        "{} is not position-independent (e_type {e_type})",
        bin.display()
    );
}

/// `start` waits for the init to execute the container's process, but not forever: an
/// init that never gets there (here: stopped before `start`, as anything sharing its pid
/// namespace could do) makes `start` fail after its bound, naming the container, and
/// stops the container.
#[test]
fn start_of_an_init_that_never_execs_fails_after_a_bound() {
    let b = Bundle::new("stuckinit").args(&["true"]);
    b.create().ok();
    let pid = nix::unistd::Pid::from_raw(b.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP init");
    let mut cmd = b.command(&["start", &b.id]);
    cmd.env("BERTH_START_TIMEOUT", "1");
    let t = std::time::Instant::now();
    let out = capture(cmd, Capture::Pipes, CMD_TIMEOUT);
    out.failed_mentioning(&[&b.id, "did not execute", "1s"]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "start took {:?}",
        t.elapsed()
    );
    // Killed, not left to run its process after `start` said it failed.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    b.wait_status("stopped", Duration::from_secs(5));
    b.delete().ok();
}

#[test]
fn exec_ignore_paused() {
    let b = Bundle::new("execpaused").args(&["sleep", "100"]);
    let pid = b.create_start();
    b.rt(&["pause", &b.id]).ok();
    b.exec(&["true"])
        .failed_mentioning(&["paused", "--ignore-paused"]);
    // With --ignore-paused the process joins the frozen cgroup and runs after resume.
    let mut cmd = b.command(&["exec", "--ignore-paused", &b.id, "sh", "-c", "echo thawed"]);
    cmd.stdin(std::process::Stdio::null());
    let child = std::thread::spawn(move || capture(cmd, Capture::Pipes, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !child.is_finished(),
        "the exec'd process ran in a frozen container"
    );
    b.rt(&["resume", &b.id]).ok();
    child.join().expect("exec thread").ok().prints("thawed\n");
    b.force_delete_clean(Some(pid));
}

#[test]
fn exec_into_a_sub_cgroup() {
    let b = Bundle::new("execcg").args(&["sleep", "100"]);
    let pid = b.create_start();
    let sub = b.cgroup_dir("memory").join("side");
    fs::create_dir(&sub).expect("mkdir sub-cgroup");
    let path = b.cgroups_path();
    let out = b.exec_with(
        &["--cgroup", "memory:side"],
        &["grep", ":memory:", "/proc/self/cgroup"],
    );
    out.ok();
    // The container has a cgroup namespace: its paths are relative to the container's.
    assert!(
        out.stdout.trim().ends_with(":memory:/side"),
        "not in the sub-cgroup ({path}/side):\n{out}"
    );
    let out = b.exec(&["grep", ":memory:", "/proc/self/cgroup"]);
    assert!(out.stdout.trim().ends_with(":memory:/"), "{out}");
    b.exec_with(&["--cgroup", "memory:nope"], &["true"])
        .failed_mentioning(&["nope", "does not exist"]);
    b.exec_with(&["--cgroup", "bogus:side"], &["true"])
        .failed_mentioning(&["unknown cgroup controller \"bogus\""]);
    b.exec_with(&["--cgroup", "../up"], &["true"])
        .failed_mentioning(&["--cgroup", ".."]);
    b.force_delete_clean(Some(pid));
}

#[test]
fn errors_are_one_line_with_the_level_like_runc() {
    // runc's failures carry the level (`level=error msg=…` on stderr, `"level":"error"` in
    // a JSON --log, which containerd's shim reads); tools scraping stderr look for it.
    let b = Bundle::new("errline");
    let id = unique_id("nosuch");
    let out = b.rt(&["state", &id]);
    out.failed();
    assert_eq!(
        out.stderr,
        format!("berth-runtime: error: container {id} does not exist\n"),
        "{out}"
    );
    let out = b.rt(&["frobnicate"]);
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    assert!(
        out.stderr
            .starts_with("berth-runtime: error: unknown command"),
        "{out}"
    );
    let log = b.dir().join("rt.log");
    let log_s = log.to_string_lossy().into_owned();
    b.rt(&["--log", &log_s, "--log-format", "json", "delete", &id])
        .failed();
    let text = fs::read_to_string(&log).expect("log");
    let line: Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).expect("JSON log line");
    assert_eq!(line["level"], "error", "{line}");
    assert!(
        line["msg"].as_str().is_some_and(|m| m.contains(&id)),
        "{line}"
    );
    // A missing executable in runc's words (podman maps them to exit codes 127 / 126).
    let b = Bundle::new("errexe").args(&["no-such-program"]);
    b.create()
        .failed_mentioning(&["error:", "executable file not found in $PATH"]);
    let b = Bundle::new("errexe2").args(&["/no/such/program"]);
    b.create()
        .failed_mentioning(&["error:", "no such file or directory"]);
}

#[test]
fn exec_lsm_flags_apply_or_fail_clearly() {
    // runc accepts --process-label and --apparmor on exec; on a host without the module it
    // fails ("selinux label is specified in config, but selinux is disabled or not
    // supported"; AppArmor: "write /proc/self/attr/exec: invalid argument"). berth-runtime
    // fails the same way, naming the field and the reason, and runs nothing.
    let b = Bundle::new("execlsm").args(&["sleep", "100"]);
    let pid = b.create_start();
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let apparmor = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let out = b.exec_with(
        &["--process-label", "system_u:system_r:container_t:s0"],
        &["echo", "ran"],
    );
    if selinux {
        out.ok().prints("ran\n");
    } else {
        out.failed_mentioning(&["process.selinuxLabel", "SELinux is not enabled"]);
        assert!(!out.stdout.contains("ran"), "{out}");
    }
    let out = b.exec_with(&["--apparmor", "unconfined"], &["echo", "ran"]);
    if apparmor {
        out.ok().prints("ran\n");
    } else {
        out.failed_mentioning(&["process.apparmorProfile", "AppArmor is not enabled"]);
        assert!(!out.stdout.contains("ran"), "{out}");
    }
    b.force_delete_clean(Some(pid));
}

#[test]
fn update_reads_resources_from_stdin() {
    // runc update -r -: the linux.resources document on stdin.
    let b = Bundle::new("updstdin")
        .resources("memory", json!({ "limit": 64u64 << 20 }))
        .args(&["sleep", "100"]);
    let pid = b.create_start();
    let mut cmd = b.command(&["update", "-r", "-", &b.id]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn update");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(br#"{"memory": {"limit": 33554432}, "pids": {"limit": 42}}"#)
            .expect("write resources");
    }
    let out = child.wait_with_output().expect("update");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.cgroup_file("memory", "memory.limit_in_bytes"), "33554432");
    assert_eq!(b.cgroup_file("pids", "pids.max"), "42");
    // Not JSON on stdin: one line naming the document.
    let mut cmd = b.command(&["update", "-r", "-", &b.id]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn update");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"memory: lots").expect("write");
    }
    let out = child.wait_with_output().expect("update");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("resources"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    b.force_delete_clean(Some(pid));
}

#[test]
fn kill_of_a_stopped_container_says_not_running() {
    // containerd's runc shim treats a kill failing with "container not running" as done
    // (CRI StopContainer after the process exited); `kill --all` still reaches the cgroup.
    let b = Bundle::new("killstopped").args(&["true"]);
    let pid = b.create_start();
    b.wait_status("stopped", WAIT);
    b.kill("KILL")
        .failed_mentioning(&["container not running", &b.id]);
    b.rt(&["kill", "--all", &b.id, "KILL"]).ok();
    b.delete().ok();
    assert_no_leftovers(&b, &b.id, Some(pid));
}

#[test]
fn socket_activation_fds_reach_the_container() {
    // runc passes systemd's socket-activation descriptors (LISTEN_FDS from 3, when
    // LISTEN_PID is the runtime's pid) ahead of --preserve-fds, and tells the process
    // LISTEN_FDS=n, LISTEN_PID=1. Without LISTEN_PID naming it, nothing is passed.
    let data = TempDir::new("listenfds");
    fs::write(data.join("a"), "socket-a\n").expect("write");
    fs::write(data.join("b"), "extra-b\n").expect("write");
    let b = Bundle::new("listenfds").sh("echo $LISTEN_FDS $LISTEN_PID; cat <&3; cat <&4");
    let script = format!(
        "exec 3<{a} 4<{bb}; LISTEN_FDS=1 LISTEN_PID=$$ exec {rt} --root {root} run --preserve-fds 1 \
         --bundle {dir} {id}",
        a = data.join("a").display(),
        bb = data.join("b").display(),
        rt = runtime_bin().display(),
        root = b.state_root().display(),
        dir = b.dir_str(),
        id = b.id
    );
    b.track(&b.id);
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    capture(cmd, Capture::Pipes, WAIT)
        .ok()
        .prints("1 1\nsocket-a\nextra-b\n");
    // LISTEN_PID of another process: no activation descriptors, no variables.
    let b =
        Bundle::new("listenfds2").sh("echo \"[$LISTEN_FDS]\"; cat <&3 2>/dev/null || echo closed");
    let script = format!(
        "exec 3<{a}; LISTEN_FDS=1 LISTEN_PID=1 exec {rt} --root {root} run --bundle {dir} {id}",
        a = data.join("a").display(),
        rt = runtime_bin().display(),
        root = b.state_root().display(),
        dir = b.dir_str(),
        id = b.id
    );
    b.track(&b.id);
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    capture(cmd, Capture::Pipes, WAIT)
        .ok()
        .prints("[]\nclosed\n");
}
