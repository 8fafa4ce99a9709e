//! `ps --format json` as Docker prints it, `-t`/`-i` with `-d` and `attach` through the
//! monitor's attach socket, `start -a`. Root, real containers, a busybox image imported
//! locally.

use berth_tests::engine::*;
use berth_tests::images::OutputExt;
use berth_tests::poll;
use serde_json::{json, Value};
use std::time::Duration;

/// `ps --format json` is Docker's `{{json .}}`: one object per line, all strings, short
/// IDs (full with `--no-trunc`), the command quoted and cut to 20 characters.
#[test]
fn ps_format_json_is_one_docker_object_per_line() {
    let e = Eng::new("psjson");
    let a = e.run_d(&[
        "--name",
        "alpha",
        "--label",
        "env=prod",
        "busybox",
        "sh",
        "-c",
        "sleep 1000; echo this is long",
    ]);
    let b = e.run_d(&["--name", "beta", "busybox", "true"]);
    e.berth(&["wait", &b]).ok();
    let out = e.berth(&["ps", "-a", "--format", "json"]);
    out.ok();
    let rows: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|err| panic!("{l:?}: {err}\n{out}")))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let alpha = rows.iter().find(|r| r["Names"] == "alpha").expect("alpha");
    assert_eq!(alpha["ID"], &a[..12], "{alpha:#}");
    assert_eq!(alpha["Image"], "busybox");
    assert_eq!(alpha["Command"], "\"sh -c sleep 1000; e…\"", "{alpha:#}");
    assert_eq!(alpha["State"], "running");
    assert!(
        alpha["Status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Up ")),
        "{alpha:#}"
    );
    assert_eq!(alpha["Labels"], "env=prod");
    let created = alpha["CreatedAt"].as_str().unwrap_or_default();
    assert!(
        created.len() == 29 && created.ends_with(" +0000 UTC") && &created[10..11] == " ",
        "CreatedAt {created:?} is not Docker's 2006-01-02 15:04:05 +0000 UTC"
    );
    for k in [
        "Mounts",
        "Networks",
        "Ports",
        "RunningFor",
        "Size",
        "LocalVolumes",
    ] {
        assert!(alpha[k].is_string(), "{k} missing: {alpha:#}");
    }
    let beta = rows.iter().find(|r| r["Names"] == "beta").expect("beta");
    assert_eq!(beta["State"], "exited");
    assert!(
        beta["Status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Exited (0)")),
        "{beta:#}"
    );
    let full = e.berth(&["ps", "--no-trunc", "--format", "json"]);
    let v: Value = serde_json::from_str(full.ok().stdout.trim()).expect("one line");
    assert_eq!(v["ID"], a.as_str());
    assert_eq!(v["Command"], "\"sh -c sleep 1000; echo this is long\"");
    let q = e.berth(&["ps", "-q", "--no-trunc"]);
    assert_eq!(q.ok().stdout.trim(), a);
}

/// Drives a command on a pseudo-terminal (python3's `pty`): `steps` are `["send", text]`,
/// `["expect", text]` (within 20 s; the output seen so far is consumed up to it),
/// `["winsize", rows, cols]` (the terminal's size: SIGWINCH to the command) and
/// `["sleep", seconds]`; then the command's output is read to its end. Prints
/// `exit=CODE` last; on a failed expectation exits 1 with the transcript.
const PTY_DRIVER: &str = r#"
import fcntl, json, os, pty, select, struct, sys, termios, time
steps = json.loads(sys.argv[1])
cmd = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.execvp(cmd[0], cmd)
seen = b""
buf = b""
def read(limit):
    global seen, buf
    r, _, _ = select.select([fd], [], [], limit)
    if not r:
        return None
    try:
        d = os.read(fd, 4096)
    except OSError:
        d = b""
    seen += d
    buf += d
    return d
for step in steps:
    if step[0] == "send":
        os.write(fd, step[1].encode("latin1"))
    elif step[0] == "winsize":
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", step[1], step[2], 0, 0))
    elif step[0] == "sleep":
        time.sleep(step[1])
    elif step[0] == "expect":
        want = step[1].encode()
        end = time.time() + 20
        while want not in buf:
            d = read(max(0, end - time.time()))
            if not d:
                print("expected %r; the terminal showed %r" % (step[1], seen))
                os.kill(pid, 9)
                sys.exit(1)
        buf = buf[buf.index(want) + len(want):]
end = time.time() + 20
while time.time() < end:
    d = read(end - time.time())
    if not d:
        break
p, status = os.waitpid(pid, 0)
print("transcript=%r" % seen)
print("exit=%d" % os.waitstatus_to_exitcode(status))
"#;

/// Runs `berth ARGS…` of `e` on a pseudo-terminal through [`PTY_DRIVER`]: its exit code.
#[track_caller]
fn on_pty(e: &Eng, steps: serde_json::Value, args: &[&str]) -> i32 {
    let c = e.s.command(args);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(PTY_DRIVER).arg(steps.to_string());
    cmd.arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = berth_tests::capture(cmd, berth_tests::Capture::Pipes, Duration::from_secs(90));
    let code = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("exit=")?.parse().ok());
    match code {
        Some(c) if out.code() == Some(0) => c,
        _ => panic!("python3 pty driver failed (is python3 installed?):\n{out}"),
    }
}

/// `run -d -it`: the monitor holds the terminal; `attach` types into it, sees its output,
/// resizes it with the user's terminal, detaches with ctrl-p ctrl-q (the container runs
/// on) and a second attach ends with the container's exit code; the log has the
/// terminal's output.
#[test]
fn detached_tty_attach_resize_detach_and_reattach() {
    let e = Eng::new("ttyattach");
    let id = e.run_d(&["-it", "--name", "term", "busybox", "sh"]);
    let v = e.inspect("term");
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["Config"]["Tty"], true, "{v:#}");
    assert_eq!(v["Config"]["OpenStdin"], true, "{v:#}");
    let code = on_pty(
        &e,
        json!([
            ["send", "echo hi-$((40+2))\r"],
            ["expect", "hi-42"],
            ["send", "stty size\r"],
            ["expect", "30 100"],
            ["winsize", 41, 123],
            ["sleep", 0.5],
            ["send", "stty size\r"],
            ["expect", "41 123"],
            ["send", "\u{10}\u{11}"],
        ]),
        &["attach", "term"],
    );
    assert_eq!(code, 0, "a detach exits 0");
    assert_eq!(
        e.inspect("term")["State"]["Status"],
        "running",
        "the container stopped at the detach"
    );
    let code = on_pty(
        &e,
        json!([
            ["send", "echo again-$((1+1))\r"],
            ["expect", "again-2"],
            ["send", "exit 7\r"],
        ]),
        &["attach", "--detach-keys", "ctrl-x", "term"],
    );
    assert_eq!(code, 7, "attach exits with the container's code");
    e.until(&id, Duration::from_secs(10), "exited", |v| {
        v["State"]["Status"] == "exited"
    });
    let logs = e.berth(&["logs", "term"]);
    logs.ok();
    assert!(
        logs.stdout.contains("hi-42") && logs.stdout.contains("again-2"),
        "the terminal's output is not in the log:\n{logs}"
    );
}

/// `run -d -i` (no terminal): the monitor keeps the container's stdin open and `attach`
/// feeds it.
#[test]
fn detached_interactive_stdin_is_fed_by_attach() {
    let e = Eng::new("stdinattach");
    e.run_d(&[
        "-i",
        "--name",
        "reader",
        "busybox",
        "sh",
        "-c",
        "read x; echo got-$x; read y; echo and-$y >&2; exit 4",
    ]);
    let code = on_pty(
        &e,
        json!([
            ["send", "first\n"],
            ["expect", "got-first"],
            ["send", "second\n"],
            ["expect", "and-second"],
        ]),
        &["attach", "reader"],
    );
    assert_eq!(code, 4);
    // Without -i the container's stdin is /dev/null: `read` sees its end at once.
    e.run_d(&[
        "--name",
        "closed",
        "busybox",
        "sh",
        "-c",
        "read x || echo eof; sleep 1000",
    ]);
    poll(Duration::from_secs(10), || {
        e.berth(&["logs", "closed"])
            .stdout
            .contains("eof")
            .then_some(())
    })
    .expect("a container without -i reads /dev/null");
}

/// `start -a`: attached before the container starts (none of its output is missed),
/// stdout and stderr apart, the container's exit code; works again on the exited one.
#[test]
fn start_attach_streams_everything_and_exits_with_the_code() {
    let e = Eng::new("startattach");
    let out = e.berth(&[
        "create",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo out-1; echo err-1 >&2; exit 3",
    ]);
    out.ok();
    for _ in 0..2 {
        let out = e.berth(&["start", "-a", "once"]);
        assert_eq!(out.code(), Some(3), "{out}");
        assert_eq!(out.stdout, "out-1\n", "{out}");
        assert_eq!(out.stderr, "err-1\n", "{out}");
    }
    // -a -i with a terminal: typed input reaches it.
    e.berth(&["create", "-it", "--name", "tt", "busybox", "sh"])
        .ok();
    let code = on_pty(
        &e,
        json!([
            ["expect", "#"],
            ["send", "echo in-$((2*3))\r"],
            ["expect", "in-6"],
            ["send", "exit 5\r"],
        ]),
        &["start", "-a", "-i", "tt"],
    );
    assert_eq!(code, 5);
    e.berth(&["start", "-a", "once", "tt"])
        .failed_mentioning(&["one container"]);
    e.berth(&["attach", "--detach-keys", "ctrl-1", "tt"])
        .failed_mentioning(&["ctrl-1"]);
}

/// `berth ARGS…` with `BERTH_RUN_DIRECT=1`: a foreground `run` takes the direct path
/// (berth runs berth-runtime itself; no monitor, no row).
fn direct(e: &Eng, args: &[&str]) -> berth_tests::Output {
    let mut c = e.s.command(args);
    c.env("BERTH_RUN_DIRECT", "1");
    berth_tests::capture(c, berth_tests::Capture::Pipes, Duration::from_secs(120))
}

/// The direct path's foreground runs and the engine share one name space: neither takes
/// a name the other holds (create, run -d, rename, run).
#[test]
fn foreground_and_engine_containers_never_share_a_name() {
    let e = Eng::new("names");
    direct(&e, &["run", "--name", "fg", "busybox", "true"]).ok();
    e.berth(&["run", "-d", "--name", "fg", "busybox", "true"])
        .failed_mentioning(&["\"fg\"", "foreground"]);
    e.berth(&["create", "--name", "fg", "busybox", "true"])
        .failed_mentioning(&["\"fg\"", "foreground"]);
    e.run_d(&["--name", "svc", "busybox", "sleep", "1000"]);
    e.berth(&["rename", "svc", "fg"])
        .failed_mentioning(&["\"fg\"", "foreground"]);
    direct(&e, &["run", "--rm", "--name", "svc", "busybox", "true"])
        .failed_mentioning(&["\"svc\"", "in use"]);
    e.berth(&["run", "--rm", "--name", "svc", "busybox", "true"])
        .failed_mentioning(&["\"svc\"", "in use"]);
    // One of each: the engine's svc and the foreground run's fg (listed by ps too).
    let mut all: Vec<String> = e
        .ps_all()
        .iter()
        .map(|c| format!("{} {}", c["Names"], c["State"]))
        .collect();
    all.sort();
    assert_eq!(all, ["\"fg\" \"exited\"", "\"svc\" \"running\""]);
    assert_eq!(e.inspect("svc")["State"]["Status"], "running");
    // Once the foreground container is gone its name is free for the engine.
    e.berth(&["container", "prune"]).ok();
    e.run_d(&["--name", "fg", "busybox", "true"]);
}

/// The states of the processes in container `c` (`Z` for a zombie), one per line.
fn zombies(e: &Eng, c: &str) -> usize {
    let out = e.berth(&[
        "exec",
        c,
        "sh",
        "-c",
        "for f in /proc/[0-9]*/stat; do read p comm st rest < $f && echo \"$st $comm\"; done",
    ]);
    out.ok();
    out.stdout.lines().filter(|l| l.starts_with("Z ")).count()
}

/// `--init`: berth-init is PID 1, reaps what is orphaned to it (the same workload without
/// it leaves a zombie) and forwards `stop`'s SIGTERM to the command.
#[test]
fn init_reaps_zombies_and_forwards_sigterm() {
    let e = Eng::new("init");
    // The background sleep is orphaned to PID 1 and exits after 0.2 s.
    let work = "(sleep 0.2 &); exec sleep 1000";
    e.run_d(&["--init", "--name", "reaped", "busybox", "sh", "-c", work]);
    assert_eq!(e.inspect("reaped")["HostConfig"]["Init"], true);
    e.run_d(&["--name", "plain", "busybox", "sh", "-c", work]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        zombies(&e, "plain"),
        1,
        "the workload should leave a zombie under a PID 1 that does not reap"
    );
    assert_eq!(zombies(&e, "reaped"), 0, "berth-init left a zombie");
    let pid1 = e.berth(&["exec", "reaped", "cat", "/proc/1/cmdline"]);
    assert!(
        pid1.ok().stdout.starts_with("/dev/init\0--\0sh\0"),
        "PID 1 is not berth-init: {pid1}"
    );
    e.run_d(&[
        "--init",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    poll(Duration::from_secs(10), || {
        e.berth(&["logs", "trapper"])
            .stdout
            .contains("ready")
            .then_some(())
    })
    .expect("the trap is never installed");
    e.berth(&["stop", "-t", "30", "trapper"]).ok();
    let v = e.inspect("trapper");
    assert_eq!(
        v["State"]["ExitCode"], 3,
        "SIGTERM did not reach the command through berth-init: {v:#}"
    );
    e.berth(&["logs", "trapper"]).ok().says("got-term");
    // Foreground runs too; exit codes pass through, a missing command is 127.
    let out = e.berth(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "echo pid=$$; exit 9",
    ]);
    assert_eq!(out.code(), Some(9), "{out}");
    assert_eq!(out.stdout, "pid=2\n", "{out}");
    let out = e.berth(&["run", "--rm", "--init", "busybox", "nosuchcommand"]);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(out.stderr.contains("nosuchcommand"), "{out}");
}

/// `ps` lists foreground runs (through the engine, and of the direct path) beside the
/// engine's containers: running while their run lives, then (kept without --rm) exited
/// with their code under `-a`.
#[test]
fn ps_lists_foreground_runs() {
    let e = Eng::new("psfg");
    let mut fg =
        e.s.command(&["run", "--rm", "--name", "fgrun", "busybox", "sleep", "3"]);
    fg.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut fg = fg.spawn().expect("start berth run");
    e.run_d(&["--name", "svc", "busybox", "sleep", "1000"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ps", "--format", "{{.Names}} {{.State}} {{.Command}}"];
        v.extend_from_slice(args);
        let out = e.berth(&v);
        let mut l: Vec<String> = out.ok().stdout.lines().map(str::to_string).collect();
        l.sort();
        l
    };
    let seen = poll(Duration::from_secs(20), || {
        let l = names(&[]);
        l.iter().any(|x| x.starts_with("fgrun ")).then_some(l)
    })
    .expect("ps never showed the foreground run");
    assert_eq!(
        seen,
        ["fgrun running \"sleep 3\"", "svc running \"sleep 1000\""],
        "{seen:?}"
    );
    assert!(fg.wait().expect("wait").success());
    assert_eq!(names(&[]), ["svc running \"sleep 1000\""]);
    direct(
        &e,
        &["run", "--name", "kept", "busybox", "sh", "-c", "exit 6"],
    );
    e.berth(&["run", "--name", "kept2", "busybox", "sh", "-c", "exit 7"]);
    let out = e.berth(&[
        "ps",
        "-a",
        "--filter",
        "name=kept2",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(out.ok().stdout.starts_with("kept2 Exited (7) "), "{out}");
    let out = e.berth(&[
        "ps",
        "-a",
        "--filter",
        "name=kept",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(
        out.ok()
            .stdout
            .lines()
            .any(|l| l.starts_with("kept Exited (6) ")),
        "{out}"
    );
    e.berth(&["container", "prune"]).ok();
    let out = e.berth(&["ps", "-a", "--filter", "name=kept", "-q"]);
    assert_eq!(out.ok().stdout, "", "{out}");
}

/// `run -d --rm`: the monitor removes the exited container (row, directory, mounts,
/// cgroup, anonymous volumes); `start -a` of a `--rm` container still gets its output and
/// code; --rm with a restart policy is refused.
#[test]
fn detached_rm_removes_the_container_once_it_exits() {
    let e = Eng::new("autorm");
    let id = e.run_d(&[
        "--rm",
        "--name",
        "gone",
        "--mount",
        "type=volume,target=/data",
        "busybox",
        "sh",
        "-c",
        "echo x > /data/f; sleep 0.5",
    ]);
    assert_eq!(e.inspect("gone")["State"]["Status"], "running");
    let vols = e.berth(&["volume", "ls", "-q"]);
    assert_eq!(vols.ok().stdout.lines().count(), 1, "{vols}");
    poll(Duration::from_secs(20), || {
        (e.berth(&["inspect", "gone"]).code() != Some(0)).then_some(())
    })
    .expect("the --rm container was never removed");
    poll(Duration::from_secs(10), || {
        host_leftovers(&e, &id).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("left behind: {:?}", host_leftovers(&e, &id)));
    let vols = e.berth(&["volume", "ls", "-q"]);
    assert_eq!(vols.ok().stdout, "", "its anonymous volume stayed: {vols}");
    e.berth(&[
        "create",
        "--rm",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo bye; exit 2",
    ])
    .ok();
    let out = e.berth(&["start", "-a", "once"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert_eq!(out.stdout, "bye\n", "{out}");
    poll(Duration::from_secs(20), || {
        (e.berth(&["inspect", "once"]).code() != Some(0)).then_some(())
    })
    .expect("the --rm container was never removed after start -a");
    e.berth(&[
        "run",
        "-d",
        "--rm",
        "--restart",
        "always",
        "busybox",
        "true",
    ])
    .failed_mentioning(&["--rm", "--restart"]);
    assert!(e.ps_all().is_empty(), "{:?}", e.ps_all());
}

/// Foreground `run` goes through the engine: the container is in `ps` while it runs, its
/// output and exit code come through the attach socket, a missing command is 127, and
/// `kill -9` of `berth run --rm` leaves it running until it ends, then its monitor removes
/// it (nothing left on the host).
#[test]
fn foreground_run_through_the_engine() {
    let e = Eng::new("fgengine");
    let out = e.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    assert_eq!(out.code(), Some(5), "{out}");
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n"),
        "{out}"
    );
    assert!(e.ps_all().is_empty(), "--rm left {:?}", e.ps_all());
    let out = e.berth(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(out.stderr.contains("nosuchcommand"), "{out}");
    assert!(
        e.ps_all().is_empty(),
        "a failed --rm run left {:?}",
        e.ps_all()
    );

    let mut victim =
        e.s.command(&["run", "--rm", "--name", "victim", "busybox", "sleep", "2"]);
    victim
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut victim = victim.spawn().expect("start berth run");
    // Polled with `ps` (inspect fails until the container exists).
    poll(Duration::from_secs(20), || {
        let out = e.berth(&["ps", "--filter", "name=victim", "-q"]);
        (!out.stdout.trim().is_empty()).then_some(())
    })
    .expect("the container never ran");
    let id = e.inspect("victim")["Id"].as_str().expect("Id").to_string();
    victim.kill().expect("SIGKILL berth");
    let _ = victim.wait();
    assert_eq!(
        e.inspect("victim")["State"]["Status"],
        "running",
        "the container should outlive its killed berth"
    );
    poll(Duration::from_secs(20), || {
        (e.berth(&["inspect", "victim"]).code() != Some(0)).then_some(())
    })
    .expect("the killed run's --rm container was never removed");
    poll(Duration::from_secs(10), || {
        host_leftovers(&e, &id).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("left behind: {:?}", host_leftovers(&e, &id)));

    // SIGTERM to berth goes to the container (Docker's --sig-proxy).
    let mut term = e.s.command(&[
        "run",
        "--rm",
        "--name",
        "trap",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 4' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    term.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut term = term.spawn().expect("start berth run");
    let mut stdout = std::io::BufReader::new(term.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read");
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(term.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let st = term.wait().expect("wait");
    assert_eq!(
        st.code(),
        Some(4),
        "SIGTERM did not reach the container's trap"
    );
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    assert_eq!(rest, "got-term\n");
}

/// `run -it` in the foreground: a terminal through the monitor (our size, typed input),
/// ctrl-p ctrl-q detaches leaving it running, `attach` takes it back.
#[test]
fn foreground_run_it_detaches_and_attach_takes_it_back() {
    let e = Eng::new("fgtty");
    let code = on_pty(
        &e,
        json!([
            ["send", "stty size; echo fg-$((3*3))\r"],
            ["expect", "30 100"],
            ["expect", "fg-9"],
            ["send", "\u{10}\u{11}"],
        ]),
        &["run", "-it", "--name", "fgt", "busybox", "sh"],
    );
    assert_eq!(code, 0, "a detach exits 0");
    assert_eq!(e.inspect("fgt")["State"]["Status"], "running");
    let code = on_pty(&e, json!([["send", "exit 3\r"]]), &["attach", "fgt"]);
    assert_eq!(code, 3);
    e.berth(&["run", "--rm", "--detach-keys", "ctrl-", "busybox", "true"])
        .failed_mentioning(&["--detach-keys"]);
}

/// `wait` on a `--rm` container answers the code it exited with even when the monitor's
/// removal wins the race with the waiter (the removal keeps the code: engine `exits`);
/// and the container is gone afterwards.
#[test]
fn wait_answers_the_exit_code_of_a_container_removed_by_rm() {
    let e = Eng::new("waitrm");
    for (i, code) in [3, 0, 42].into_iter().enumerate() {
        let name = format!("gone{i}");
        let script = format!("sleep 0.3; exit {code}");
        let id = e.run_d(&["--rm", "--name", &name, "busybox", "sh", "-c", &script]);
        let out = e.berth(&["wait", &id]);
        out.ok();
        assert_eq!(out.stdout.trim(), code.to_string(), "{out}");
        let gone = poll(Duration::from_secs(10), || {
            e.ps_all()
                .iter()
                .all(|c| c["Names"] != name.as_str())
                .then_some(())
        });
        assert!(gone.is_some(), "{name} was not removed: {:?}", e.ps_all());
    }
    let out = e.berth(&["wait", "gone0"]);
    assert!(!out.status.success(), "wait on a removed container: {out}");
}

/// `attach` (Docker's `--sig-proxy`, on by default) sends the signals it receives to the
/// container; it then exits with the container's code. With `--sig-proxy=false` the
/// signal is berth's own and the container runs on.
#[test]
fn attach_proxies_signals_to_the_container() {
    use std::io::BufRead;
    let e = Eng::new("sigproxy");
    let script = "trap 'echo got TERM; exit 7' TERM; while :; do echo tick; sleep 0.1; done";
    for (name, proxy) in [("proxied", true), ("unproxied", false)] {
        e.run_d(&["--name", name, "busybox", "sh", "-c", script]);
        let mut args = vec!["attach"];
        if !proxy {
            args.push("--sig-proxy=false");
        }
        args.push(name);
        let mut child =
            e.s.command(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn berth attach");
        // Attached (and its signals blocked) once the container's output reaches it.
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert_eq!(first, "tick", "attach relays the output");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill attach");
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().expect("wait attach");
        if proxy {
            assert_eq!(
                status.code(),
                Some(7),
                "attach exits with the code: {rest:?}"
            );
            assert!(rest.iter().any(|l| l == "got TERM"), "{rest:?}");
            e.until(name, Duration::from_secs(10), "exited", |v| {
                v["State"]["Status"] == "exited"
            });
        } else {
            assert_eq!(status.code(), None, "berth itself was terminated");
            let v = e.inspect(name);
            assert_eq!(v["State"]["Status"], "running", "{v:#}");
        }
    }
}
