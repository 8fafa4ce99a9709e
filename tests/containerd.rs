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

use berth_tests::containerd::*;
use berth_tests::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn ctr_run_rm_and_tty() {
    let c = Containerd::start("run", NO_CRI);
    c.import_busybox();
    c.ctr(&["image", "ls", "--quiet"])
        .ok()
        .prints("box:latest\n");
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
