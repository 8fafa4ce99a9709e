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
