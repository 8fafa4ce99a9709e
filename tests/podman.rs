//! podman as a real client of the runtime: `podman --runtime <runtime> run/exec/stop/rm`,
//! with per-test podman storage (`--root`, `--runroot`, `--tmpdir`).

use berth_tests::*;
use std::process::Command;
use std::time::Duration;

const IMAGE: &str = "localhost/berth-busybox:test";
const PODMAN_TIMEOUT: Duration = Duration::from_secs(120);
const ULIMITS: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// A podman with its own storage holding the busybox image, using the runtime under test.
struct Podman {
    dir: TempDir,
}

impl Podman {
    fn new(name: &str) -> Podman {
        match Command::new("podman").arg("--version").output() {
            Ok(o) if o.status.success() => {}
            _ => panic!("podman is not available: install podman (apt-get install podman)"),
        }
        let p = Podman {
            dir: TempDir::new(&format!("podman-{name}")),
        };
        let rootfs = p.dir.join("rootfs");
        build_rootfs(&rootfs);
        let tar = p.dir.join("rootfs.tar");
        let mut cmd = Command::new("tar");
        cmd.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
        capture(cmd, Capture::Pipes, PODMAN_TIMEOUT).ok();
        p.podman(&["import", &tar.to_string_lossy(), IMAGE]).ok();
        p
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .arg("--runtime")
            .arg(runtime_bin())
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args);
        cmd
    }

    fn podman(&self, args: &[&str]) -> Output {
        capture(self.command(args), Capture::Pipes, PODMAN_TIMEOUT)
    }

    /// `podman run <ulimits> <args>`.
    fn run(&self, args: &[&str]) -> Output {
        let mut v = vec!["run"];
        if !args.contains(&"--network") {
            // No network unless a test asks: podman would make its bridge (cni-podman0)
            // and firewall rules in the host's namespace.
            v.extend_from_slice(&["--network", "none"]);
        }
        v.extend_from_slice(ULIMITS);
        v.extend_from_slice(args);
        self.podman(&v)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let cmd = self.command(&["rm", "--all", "--force", "--time", "0"]);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            capture(cmd, Capture::Pipes, PODMAN_TIMEOUT)
        }));
    }
}

#[test]
fn podman_run_echo() {
    let p = Podman::new("echo");
    p.run(&["--rm", IMAGE, "echo", "hi"]).prints("hi\n");
    let out = p.podman(&["ps", "--all", "--quiet"]);
    out.prints("");
}

#[test]
fn podman_run_exit_code() {
    let p = Podman::new("exit");
    p.run(&["--rm", IMAGE, "sh", "-c", "exit 7"]).code_is(7);
}

#[test]
fn podman_run_sees_its_isolation() {
    let p = Podman::new("iso");
    p.run(&[
        "--rm",
        "--network",
        "none",
        "--hostname",
        "podhost",
        IMAGE,
        "sh",
        "-c",
        "echo $$; hostname; id -u",
    ])
    .prints("1\npodhost\n0\n");
}

#[test]
fn podman_detach_exec_stop_rm() {
    let p = Podman::new("detach");
    let out = p.run(&["-d", "--name", "berth-detached", IMAGE, "sleep", "1000"]);
    out.ok();
    let id = out.stdout.trim().to_string();
    assert!(!id.is_empty(), "{out}");
    let out = p.podman(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Pid}} {{.OCIRuntime}}",
        &id,
    ]);
    out.ok();
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{out}");
    assert_eq!(fields[0], "running", "{out}");
    let pid: i32 = fields[1].parse().expect("pid");
    assert!(pid > 0, "{out}");
    let runtime = runtime_bin();
    assert!(
        fields[2] == runtime.to_string_lossy() || runtime.ends_with(fields[2]),
        "podman did not use the runtime under test: {out}"
    );

    let out = p.podman(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo in-exec; readlink /proc/self/ns/pid",
    ]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!("in-exec\n{}\n", ns_of(pid, "pid")),
        "{out}"
    );
    p.podman(&["exec", &id, "sh", "-c", "exit 3"]).code_is(3);

    p.podman(&["stop", "--time", "1", &id]).ok();
    let out = p.podman(&["inspect", "--format", "{{.State.Status}}", &id]);
    out.prints("exited\n");
    p.podman(&["rm", &id]).ok();
    p.podman(&["ps", "--all", "--quiet"]).prints("");
    assert!(
        poll(Duration::from_secs(5), || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        })
        .is_some(),
        "container process {pid} survived podman rm"
    );
}

/// A detached `sleep` container of `p`, with its id and init pid.
fn detached(p: &Podman, name: &str, extra: &[&str]) -> (String, i32) {
    let mut args = vec!["-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, "sleep", "1000"]);
    let out = p.run(&args);
    out.ok();
    let id = out.stdout.trim().to_string();
    let out = p.podman(&["inspect", "--format", "{{.State.Pid}}", &id]);
    out.ok();
    let pid = out.stdout.trim().parse().expect("pid");
    (id, pid)
}

fn status(p: &Podman, id: &str) -> String {
    let out = p.podman(&["inspect", "--format", "{{.State.Status}}", id]);
    out.ok();
    out.stdout.trim().to_string()
}

#[test]
fn podman_exec_tty_pause_top_stats() {
    let p = Podman::new("more");
    let (id, pid) = detached(&p, "berth-more", &[]);
    // exec -t: conmon passes berth-runtime a console socket for the exec'd process.
    let out = p.podman(&[
        "exec",
        "-t",
        &id,
        "sh",
        "-c",
        "tty; test -t 1 && echo out-is-a-tty",
    ]);
    out.ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert!(out.stdout.contains("out-is-a-tty"), "{out}");
    // top: the container's processes.
    let out = p.podman(&["top", &id, "pid", "args"]);
    out.ok();
    assert!(out.stdout.contains("sleep 1000"), "{out}");
    // stats: read from the cgroup berth-runtime made.
    let out = p.podman(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.ID}} {{.PIDs}} {{.MemUsage}}",
        &id,
    ]);
    out.ok();
    let f: Vec<&str> = out.stdout.split_whitespace().collect();
    assert!(id.starts_with(f.first().copied().unwrap_or("-")), "{out}");
    assert_eq!(f.get(1).copied(), Some("1"), "{out}");
    // pause / unpause: berth-runtime's freezer.
    p.podman(&["pause", &id]).ok();
    assert_eq!(status(&p, &id), "paused");
    // The container's freezer cgroup (v1) says FROZEN.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let rel = cg
        .lines()
        .find_map(|l| l.split_once(":freezer:").map(|(_, p)| p.to_string()))
        .expect("freezer cgroup of the container");
    let state = std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{rel}/freezer.state"))
        .unwrap_or_default();
    assert_eq!(state.trim(), "FROZEN", "{rel}");
    p.podman(&["unpause", &id]).ok();
    assert_eq!(status(&p, &id), "running");
    p.podman(&["exec", &id, "true"]).ok();
    p.podman(&["rm", "-f", "-t", "0", &id]).ok();
}

#[test]
fn podman_update_kill_restart() {
    let p = Podman::new("upd");
    let (id, pid) = detached(&p, "berth-upd", &["--memory", "64m"]);
    let mem = || {
        let out = p.podman(&[
            "exec",
            &id,
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ]);
        out.ok();
        out.stdout.trim().to_string()
    };
    assert_eq!(mem(), (64u64 << 20).to_string());
    // update: podman sends `berth-runtime update --resources -` the new limits.
    p.podman(&["update", "--memory", "32m", &id]).ok();
    assert_eq!(mem(), (32u64 << 20).to_string());
    // kill: a signal through berth-runtime kill.
    p.podman(&["kill", "--signal", "KILL", &id]).ok();
    assert!(
        poll(Duration::from_secs(10), || (status(&p, &id) == "exited")
            .then_some(()))
        .is_some(),
        "not exited after kill: {}",
        status(&p, &id)
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // restart: a new init (create + start again) in the same container.
    p.podman(&["restart", &id]).ok();
    assert_eq!(status(&p, &id), "running");
    let out = p.podman(&["inspect", "--format", "{{.State.Pid}}", &id]);
    let new_pid: i32 = out.stdout.trim().parse().expect("pid");
    assert!(new_pid > 0 && new_pid != pid, "{out}");
    p.podman(&["exec", &id, "true"]).ok();
    p.podman(&["rm", "-f", "-t", "0", &id]).ok();
}

#[test]
fn podman_run_init_and_read_only() {
    let p = Podman::new("init");
    // --init: catatonit is pid 1 and runs the command as its child.
    p.run(&[
        "--rm",
        "--init",
        "--init-path",
        "/usr/bin/catatonit",
        IMAGE,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ])
    .ok()
    .prints("/run/podman-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$ \n2\n");
    // --read-only: the root is read-only, /tmp and /run are writable tmpfs.
    p.run(&[
        "--rm",
        "--read-only",
        IMAGE,
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
         touch /tmp/x && echo tmp-rw; touch /run/x && echo run-rw",
    ])
    .ok()
    .prints("root-ro\ntmp-rw\nrun-rw\n");
}

#[test]
fn podman_run_with_user_namespace_mappings() {
    // --uidmap/--gidmap (what --userns=auto picks from /etc/subuid, which this host has
    // none of): berth-runtime makes the user namespace and writes the maps.
    let p = Podman::new("userns");
    p.run(&[
        "--rm",
        "--uidmap",
        "0:200000:65536",
        "--gidmap",
        "0:200000:65536",
        IMAGE,
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | sed 's/^ //'; id -u; \
         touch /tmp/f && stat -c %u /tmp/f",
    ])
    .ok()
    .prints("0 200000 65536\n0 200000 65536\n0\n0\n");
}

#[test]
fn podman_maps_exec_failures_to_126_and_127() {
    // podman reads the runtime's error: "executable file not found" / "no such file or
    // directory" give 127, "permission denied" 126 (as with runc and crun).
    let p = Podman::new("execfail");
    let out = p.run(&["--rm", IMAGE, "no-such-program"]);
    out.code_is(127);
    assert!(out.stderr.contains("executable file not found"), "{out}");
    p.run(&["--rm", IMAGE, "/no/such/program"]).code_is(127);
    p.run(&["--rm", IMAGE, "/etc/passwd"]).code_is(126);
}
