//! The engine end to end: detached containers under their monitor (`run -d`, `ps`,
//! `logs -f`, `exec`, `stop`, restart policies, `rm`), a killed monitor, name clashes and
//! concurrent commands. Root, real containers, a busybox image imported locally.

use berth_tests::engine::*;
use berth_tests::images::*;
use berth_tests::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn detached_service_logs_follow_ps_inspect_exec() {
    let e = Eng::new("service");
    let id = e.run_d(&[
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo line$i; echo err$i >&2; i=$((i+1)); sleep 0.2; done",
    ]);
    // The overlay lives in the monitor's mount namespace, never in the host's (the
    // container's network namespace file, nsfs, is the only mount of it there).
    let mounts: Vec<String> = host_mounts()
        .into_iter()
        .filter(|m| m.mount_point.contains(&id) && m.fstype != "nsfs")
        .map(|m| m.mount_point)
        .collect();
    assert!(
        mounts.is_empty(),
        "the rootfs is mounted on the host: {mounts:?}"
    );

    let v = e.inspect("web");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/web");
    assert_eq!(v["State"]["Status"], "running", "{v:#}");
    assert_eq!(v["State"]["Running"], true);
    assert!(v["State"]["Pid"].as_i64().unwrap_or(0) > 0, "{v:#}");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(v["Config"]["Image"], "busybox");

    let ps = e.berth(&["ps"]);
    ps.ok();
    let header = ps.stdout.lines().next().unwrap_or("");
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ] {
        assert!(header.contains(col), "ps header lacks {col}:\n{ps}");
    }
    assert!(
        ps.stdout.contains(&id[..12]) && ps.stdout.contains("Up ") && ps.stdout.contains("web"),
        "ps does not show the running container:\n{ps}"
    );

    // logs -f follows output written after it started.
    poll(Duration::from_secs(10), || {
        e.berth(&["logs", "web"])
            .stdout
            .contains("line2")
            .then_some(())
    })
    .expect("the log never showed line2");
    let before = e.berth(&["logs", "web"]);
    before.ok();
    assert!(
        before.stderr.contains("err0"),
        "stderr lines go to stderr:\n{before}"
    );
    let last: u32 = before
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("line")?.parse().ok())
        .max()
        .expect("numbered lines");
    let want = format!("line{}", last + 5);
    let mut follow = e.s.command(&["logs", "-f", "web"]);
    follow.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = follow.spawn().expect("spawn logs -f");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                let done = l == want;
                seen.push(l);
                if done {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains(&want),
        "logs -f did not follow new output (wanted {want}); saw {} lines, last {:?}",
        seen.len(),
        seen.last()
    );
    // --tail and -t.
    let tail = e.berth(&["logs", "--tail", "2", "-t", "web"]);
    tail.ok();
    let lines: Vec<&str> = tail.stdout.lines().chain(tail.stderr.lines()).collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(
        lines.iter().all(|l| l.starts_with("20") && l.contains('T')),
        "no timestamps:\n{tail}"
    );

    // exec: the process's output and status are ours.
    e.berth(&["exec", "web", "cat", "/etc/motd"])
        .ok()
        .says("hello from busybox");
    e.berth(&[
        "exec",
        "-e",
        "X=42",
        "-w",
        "/tmp",
        "web",
        "sh",
        "-c",
        "echo $X $(pwd)",
    ])
    .ok()
    .says("42 /tmp");
    e.berth(&["exec", "web", "sh", "-c", "exit 7"]).code_is(7);

    // The image is in use: rmi refuses it, naming the container.
    e.berth(&["rmi", "busybox"]).failed_mentioning(&["web"]);
    assert!(e.s.image_names().iter().any(|n| n.contains("busybox")));

    // rm of a running container without -f: refused, nothing changed.
    e.berth(&["rm", "web"])
        .failed_mentioning(&["web", "running", "-f"]);
    assert_eq!(e.inspect("web")["State"]["Status"], "running");

    e.berth(&["stop", "-t", "1", "web"]).ok();
    let v = e.inspect("web");
    assert_eq!(v["State"]["Status"], "exited", "{v:#}");
    assert!(!v["State"]["FinishedAt"].as_str().unwrap_or("").is_empty());
    let ps = e.berth(&["ps"]);
    assert!(
        !ps.stdout.contains("web"),
        "ps without -a shows a stopped container:\n{ps}"
    );
    let psa = e.berth(&["ps", "-a"]);
    assert!(psa.stdout.contains("Exited ("), "ps -a:\n{psa}");

    // Started again: the same container, running.
    e.berth(&["start", "web"]).ok();
    assert_eq!(e.inspect("web")["State"]["Status"], "running");
    e.berth(&["rm", "-f", "web"]).ok();
    let left = host_leftovers(&e, &id);
    assert!(left.is_empty(), "rm -f left: {left:?}");
    assert!(e.ps_all().is_empty());
}

#[test]
fn stop_kills_a_process_that_ignores_sigterm() {
    let e = Eng::new("stop");
    e.run_d(&[
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    poll(Duration::from_secs(10), || {
        e.berth(&["logs", "stubborn"])
            .stdout
            .contains("ready")
            .then_some(())
    })
    .expect("the container never started its loop");
    let t = Instant::now();
    e.berth(&["stop", "-t", "1", "stubborn"]).ok();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "stop -t 1 took {took:?}"
    );
    let v = e.inspect("stubborn");
    assert_eq!(v["State"]["Status"], "exited", "{v:#}");
    assert_eq!(v["State"]["ExitCode"], 137, "not ended by SIGKILL: {v:#}");
    e.berth(&["wait", "stubborn"]).ok().says("137");
}

#[test]
fn restart_on_failure_stops_after_three() {
    let e = Eng::new("restart");
    e.run_d(&[
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo attempt; exit 3",
    ]);
    let v = e.until(
        "flaky",
        Duration::from_secs(30),
        "exited after 3 restarts",
        |v| v["State"]["Status"] == "exited" && v["RestartCount"] == 3,
    );
    assert_eq!(v["State"]["ExitCode"], 3, "{v:#}");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);
    std::thread::sleep(Duration::from_millis(1500));
    let v = e.inspect("flaky");
    assert_eq!(v["RestartCount"], 3, "restarted past its limit: {v:#}");
    assert_eq!(v["State"]["Status"], "exited");
    let logs = e.berth(&["logs", "flaky"]);
    assert_eq!(logs.stdout.matches("attempt").count(), 4, "{logs}");
    // A bad policy: one clear error, nothing created.
    e.berth(&["run", "-d", "--restart", "sometimes", "busybox", "true"])
        .failed_mentioning(&["restart policy", "sometimes"]);
    assert_eq!(e.ps_all().len(), 1);
}

#[test]
fn killed_monitor_then_ps_shows_the_truth_and_rm_f_cleans_up() {
    let e = Eng::new("monitor");
    let a = e.run_d(&["--name", "a", "busybox", "sleep", "1000"]);
    let b = e.run_d(&["--name", "b", "busybox", "sleep", "1000"]);
    for id in [&a, &b] {
        let mons = monitor_pids(id);
        assert_eq!(mons.len(), 1, "one monitor per container: {mons:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(mons[0]),
            nix::sys::signal::SIGKILL,
        )
        .expect("kill the monitor");
    }
    poll(Duration::from_secs(5), || {
        monitor_pids(&a).is_empty().then_some(())
    })
    .expect("the monitor survived SIGKILL");
    // Its process still runs: that is the truth.
    let v = e.inspect("a");
    assert_eq!(v["State"]["Status"], "running", "{v:#}");
    // b's process dies too: the next command shows it exited (code unknown).
    let pid = e.inspect("b")["State"]["Pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .expect("kill b's process");
    let v = e.until("b", Duration::from_secs(10), "exited", |v| {
        v["State"]["Status"] == "exited"
    });
    assert_eq!(v["State"]["ExitCode"], -1, "{v:#}");
    let psa = e.berth(&["ps", "-a"]);
    assert!(
        psa.stdout.contains("Exited (-1)") && psa.stdout.contains("Up "),
        "{psa}"
    );
    // rm -f leaves no mount, cgroup, process, directory or row.
    e.berth(&["rm", "-f", "a", "b"]).ok();
    for id in [&a, &b] {
        let left = host_leftovers(&e, id);
        assert!(left.is_empty(), "rm -f left: {left:?}");
    }
    assert!(e.ps_all().is_empty(), "rows left: {:?}", e.ps_all());
}

#[test]
fn name_clash_is_one_clear_error() {
    let e = Eng::new("clash");
    let id = e.run_d(&["--name", "dup", "busybox", "sleep", "1000"]);
    let dirs = || {
        std::fs::read_dir(e.s.root().join("containers"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = dirs();
    e.berth(&["run", "-d", "--name", "dup", "busybox", "true"])
        .failed_mentioning(&["dup", "already in use", &id[..12]]);
    e.berth(&["create", "--name", "dup", "busybox", "true"])
        .failed_mentioning(&["dup", "already in use"]);
    assert_eq!(dirs(), before, "a refused create left a directory");
    let all = e.ps_all();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["ID"], id.as_str());
    assert_eq!(all[0]["State"], "running");
    e.berth(&["rm", "-f", "nosuch"])
        .failed_mentioning(&["no such container", "nosuch"]);
}

#[test]
fn concurrent_run_d_and_rm_f() {
    let e = Eng::new("concurrent");
    let n = 20;
    let results: Vec<(String, Output, Output)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let e = &e;
                sc.spawn(move || {
                    let name = format!("c{i}");
                    let run = e.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
                    let rm = e.berth(&["rm", "-f", &name]);
                    (name, run, rm)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let mut ids = std::collections::HashSet::new();
    for (name, run, rm) in &results {
        for o in [run, rm] {
            assert!(
                !o.stderr.to_lowercase().contains("locked")
                    && !o.stderr.to_lowercase().contains("database"),
                "{name}: the database showed through:\n{o}"
            );
            o.ok();
        }
        assert!(
            ids.insert(run.stdout.trim().to_string()),
            "duplicate id: {run}"
        );
    }
    assert_eq!(ids.len(), n);
    assert!(e.ps_all().is_empty(), "containers left: {:?}", e.ps_all());
    for id in &ids {
        let left = host_leftovers(&e, id);
        assert!(left.is_empty(), "{id} left: {left:?}");
    }
}
