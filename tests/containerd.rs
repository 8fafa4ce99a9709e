//! containerd (Debian's 1.6) driving berth-runtime through its runc v2 shim, as on a
//! Kubernetes node: `ctr run --runc-binary <berth-runtime>` (--rm, -d, --tty), `ctr task
//! exec/ps/metrics/pause/resume/kill/delete`. Each test starts its own containerd on private
//! sockets and directories (config file written here; no TCP listener), in a namespace of
//! its own, with a busybox image made by `berth save` and imported with `ctr image import`.
//!
//! (The shim's own sockets live in /run/containerd/s/, a path containerd 1.6 fixes; they
//! go with the shim.)
//!
//! berth-runtime, not runc, ran each container: the shim's `log.json` holds berth-runtime's
//! own debug lines, and `berth-runtime state` reads the runtime state directory the shim
//! gave it (runc's state files are a different format).

use berth_tests::images::Store;
use berth_tests::oci::need;
use berth_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CTR_TIMEOUT: Duration = Duration::from_secs(60);
const IMAGE: &str = "box:latest";
/// ctr needs no CRI plugin (it would set up CNI state for nothing).
const NO_CRI: &str = r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#;

/// A containerd of the test's own: state, root, sockets and log under one directory.
struct Containerd {
    dir: TempDir,
    child: Option<Child>,
    ns: String,
}

impl Containerd {
    /// Starts containerd with `extra` appended to its config (TOML), and waits until it
    /// answers on its socket.
    fn start(name: &str, extra: &str) -> Containerd {
        need("containerd");
        need("ctr");
        need("containerd-shim-runc-v2");
        let dir = TempDir::new(&format!("containerd-{name}"));
        let d = dir.path().display().to_string();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
{extra}
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[metrics]
  address = ""
"#
        );
        std::fs::write(dir.join("config.toml"), config).expect("write containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            ns: unique_id(name),
            dir,
            child: Some(child),
        };
        let up = poll(Duration::from_secs(20), || {
            c.ctr_quiet(&["version"]).success().then_some(())
        });
        assert!(up.is_some(), "containerd did not come up:\n{}", c.log());
        c
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The runc root the shim passes to berth-runtime (`--runc-root`).
    fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.ns)
            .args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn ctr_quiet(&self, args: &[&str]) -> Output {
        capture(self.command(args), Capture::Pipes, CTR_TIMEOUT)
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let out = self.ctr_quiet(args);
        if !out.success() {
            eprintln!("containerd log:\n{}", self.log());
        }
        out
    }

    /// `ctr run` with berth-runtime as the shim's runc binary.
    fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Output {
        let rt = runtime_bin().display().to_string();
        let root = self.runc_root().display().to_string();
        let fifos = self.dir.join("fifo").display().to_string();
        let mut v = vec![
            "run",
            "--runc-binary",
            &rt,
            "--runc-root",
            &root,
            "--fifo-dir",
            &fifos,
        ];
        v.extend_from_slice(flags);
        v.push(IMAGE);
        v.push(id);
        v.extend_from_slice(args);
        self.ctr(&v)
    }

    /// Imports a busybox image saved by `berth save` (an OCI archive).
    fn import_busybox(&self) {
        let store = Store::new("ctd-src");
        store.import_busybox("box");
        let archive = self.dir.join("box.tar");
        store
            .berth(&[
                "save",
                "--format",
                "oci-archive",
                "-o",
                &archive.to_string_lossy(),
                "box",
            ])
            .ok();
        self.ctr(&["image", "import", &archive.to_string_lossy()])
            .ok();
        self.ctr(&["image", "ls", "--quiet"])
            .ok()
            .prints("box:latest\n");
    }

    /// The task's (pid, status) from `ctr task ls`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = self.ctr_quiet(&["task", "ls"]);
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    fn wait_task(&self, id: &str, status: &str) -> i32 {
        poll(Duration::from_secs(10), || {
            self.task(id).filter(|t| t.1 == status).map(|t| t.0)
        })
        .unwrap_or_else(|| panic!("task {id} never {status}: {:?}", self.task(id)))
    }

    /// berth-runtime reading the state the shim made it write.
    fn berth_state(&self, id: &str) -> Value {
        let mut cmd = Command::new(runtime_bin());
        cmd.arg("--root")
            .arg(self.runc_root().join(&self.ns))
            .args(["state", id]);
        let out = capture(cmd, Capture::Pipes, CTR_TIMEOUT);
        out.ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{out}"))
    }

    /// The shim's bundle directory of a container.
    fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let tasks = self.ctr_quiet(&["task", "ls", "--quiet"]);
            for t in tasks.stdout.lines() {
                self.ctr_quiet(&["task", "kill", "--signal", "SIGKILL", t]);
                let _ = poll(Duration::from_secs(5), || {
                    self.ctr_quiet(&["task", "rm", "--force", t])
                        .success()
                        .then_some(())
                });
            }
            let cs = self.ctr_quiet(&["container", "ls", "--quiet"]);
            for c in cs.stdout.lines() {
                self.ctr_quiet(&["container", "rm", c]);
            }
        }));
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let gone = poll(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().map(|_| ())
            });
            if gone.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// berth-runtime's own debug lines in the shim's log.json: runc writes none of these.
fn ran_by_berth(log_json: &Path, verb: &str) -> bool {
    std::fs::read_to_string(log_json)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("root ") && m.contains(&format!(": {verb}")))
        })
}

#[test]
fn ctr_run_rm_and_tty() {
    let c = Containerd::start("run", NO_CRI);
    c.import_busybox();
    c.run(
        &["--rm"],
        "rm1",
        &["sh", "-c", "echo hello; cat /etc/motd; echo $$"],
    )
    .ok()
    .prints("hello\nhello from busybox\n1\n");
    // --rm removed the container, and berth-runtime's state for it.
    c.ctr(&["container", "ls", "--quiet"]).ok().prints("");
    assert!(
        !c.runc_root().join(&c.ns).join("rm1").exists(),
        "runtime state left after --rm"
    );
    // The exit status passes through.
    c.run(&["--rm"], "rm2", &["sh", "-c", "exit 7"]).code_is(7);
    // --tty: the shim hands berth-runtime a console socket; ctr needs a terminal of its
    // own, which `script` provides.
    let rt = runtime_bin().display().to_string();
    let root = c.runc_root().display().to_string();
    let line = format!(
        "ctr --address {} --namespace {} run --rm --tty --runc-binary {rt} --runc-root {root} \
         --fifo-dir {} {IMAGE} tty1 sh -c 'tty; test -t 0 && echo stdin-is-a-tty'",
        c.socket().display(),
        c.ns,
        c.dir.join("fifo").display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["--quiet", "--return", "--command", &line, "/dev/null"]);
    cmd.stdin(Stdio::null());
    let out = capture(cmd, Capture::Pipes, CTR_TIMEOUT);
    out.ok();
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    assert!(out.stdout.contains("stdin-is-a-tty"), "{out}");
}

#[test]
fn ctr_detached_task_exec_ps_metrics_pause_kill_delete() {
    let c = Containerd::start("task", NO_CRI);
    c.import_busybox();
    c.run(&["-d"], "d1", &["sleep", "1000"]).ok();
    let pid = c.wait_task("d1", "RUNNING");
    assert!(pid > 0);
    // berth-runtime ran it: its own log lines, and its state of the container.
    let log_json = c.bundle("d1").join("log.json");
    assert!(
        ran_by_berth(&log_json, "Create") && ran_by_berth(&log_json, "Start"),
        "no berth-runtime lines in {}:\n{}",
        log_json.display(),
        std::fs::read_to_string(&log_json).unwrap_or_default()
    );
    let st = c.berth_state("d1");
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], serde_json::json!(pid), "{st}");

    // exec joins the container's namespaces; its exit status passes through.
    let fifos = c.dir.join("fifo").display().to_string();
    let out = c.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifos,
        "--exec-id",
        "e1",
        "d1",
        "sh",
        "-c",
        "echo in-exec; readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt",
    ]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!("in-exec\n{}\n{}\n", ns_of(pid, "pid"), ns_of(pid, "mnt")),
        "{out}"
    );
    assert!(ran_by_berth(&log_json, "Exec"), "exec not by berth-runtime");
    c.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifos,
        "--exec-id",
        "e2",
        "d1",
        "sh",
        "-c",
        "exit 3",
    ])
    .code_is(3);

    // ps: the shim asks `berth-runtime ps --format json`.
    let out = c.ctr(&["task", "ps", "d1"]);
    out.ok();
    assert!(
        out.stdout
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{out}"
    );

    // metrics: the shim reads the cgroup berth-runtime made for the task.
    let out = c.ctr(&["task", "metrics", "--format", "json", "d1"]);
    out.ok();
    let m: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert!(m["pids"]["current"].as_u64().is_some_and(|n| n >= 1), "{m}");
    assert!(
        m["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{m}"
    );

    // pause / resume through berth-runtime's freezer.
    c.ctr(&["task", "pause", "d1"]).ok();
    c.wait_task("d1", "PAUSED");
    assert_eq!(c.berth_state("d1")["status"], "paused");
    c.ctr(&["task", "resume", "d1"]).ok();
    c.wait_task("d1", "RUNNING");
    assert_eq!(c.berth_state("d1")["status"], "running");

    // kill, delete: the task is gone, and so are the process and berth-runtime's state.
    c.ctr(&["task", "kill", "--signal", "SIGKILL", "d1"]).ok();
    c.wait_task("d1", "STOPPED");
    c.ctr(&["task", "delete", "d1"]).ok();
    assert!(c.task("d1").is_none(), "task still listed");
    c.ctr(&["container", "rm", "d1"]).ok();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "container process {pid} survived"
    );
    assert!(
        !c.runc_root().join(&c.ns).join("d1").exists(),
        "berth-runtime state left after delete"
    );
}
