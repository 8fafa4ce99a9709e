//! The remaining container commands end to end: pause/unpause, rename, top, stats, port,
//! attach, logs --since/--until and rotation (--log-opt), ps --filter/--format and
//! system reset. Root, real containers, a busybox image imported locally.

use berth_tests::engine::*;
use berth_tests::*;
use serde_json::Value;
use std::time::Duration;

/// `sh -c` that prints `n0`, `n1`, … every 0.1 s.
const COUNTER: &str = "i=0; while true; do echo n$i; i=$((i+1)); sleep 0.1; done";

fn lines(out: &Output) -> Vec<String> {
    out.stdout.lines().map(str::to_string).collect()
}

/// The numbers of the `nK` lines of `logs`.
fn counter_values(e: &Eng, c: &str) -> Vec<u64> {
    let out = e.berth(&["logs", c]);
    out.ok();
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix('n')?.parse().ok())
        .collect()
}

#[test]
fn pause_freezes_the_container_and_unpause_thaws_it() {
    let e = Eng::new("pause");
    e.run_d(&["--name", "ticker", "busybox", "sh", "-c", COUNTER]);
    poll(Duration::from_secs(10), || {
        (counter_values(&e, "ticker").len() >= 3).then_some(())
    })
    .expect("the counter never started");
    e.berth(&["pause", "ticker"]).ok();
    let v = e.inspect("ticker");
    assert_eq!(v["State"]["Status"], "paused", "{v:#}");
    assert_eq!(v["State"]["Paused"], true, "{v:#}");
    let ps = e.berth(&["ps", "--format", "{{.Names}} {{.State}} {{.Status}}"]);
    ps.ok();
    assert!(
        ps.stdout.contains("ticker paused") && ps.stdout.contains("(Paused)"),
        "{ps}"
    );
    // Frozen: not one more line in a second.
    let before = counter_values(&e, "ticker");
    std::thread::sleep(Duration::from_millis(1200));
    let after = counter_values(&e, "ticker");
    assert_eq!(before, after, "a paused container kept counting");
    e.berth(&["pause", "ticker"])
        .failed_mentioning(&["ticker", "already paused"]);
    e.berth(&["unpause", "ticker"]).ok();
    assert_eq!(e.inspect("ticker")["State"]["Status"], "running");
    poll(Duration::from_secs(10), || {
        (counter_values(&e, "ticker").len() > after.len() + 3).then_some(())
    })
    .expect("an unpaused container did not count on");
    e.berth(&["unpause", "ticker"])
        .failed_mentioning(&["ticker", "not paused"]);
    // A paused container can be stopped and removed (it is thawed for its signal).
    e.berth(&["pause", "ticker"]).ok();
    e.berth(&["stop", "-t", "5", "ticker"]).ok();
    assert_eq!(e.inspect("ticker")["State"]["Status"], "exited");
    e.berth(&["pause", "ticker"])
        .failed_mentioning(&["ticker", "not running"]);
}

#[test]
fn rm_f_of_a_paused_container_leaves_nothing() {
    let e = Eng::new("pause-rm");
    let id = e.run_d(&["busybox", "sleep", "1000"]);
    e.berth(&["pause", &id]).ok();
    e.berth(&["rm", "-f", &id]).ok();
    let left = host_leftovers(&e, &id);
    assert!(
        left.is_empty(),
        "rm -f of a paused container left: {left:?}"
    );
}

#[test]
fn rename_moves_the_name_and_refuses_a_clash() {
    let e = Eng::new("rename");
    let id = e.run_d(&["--name", "old", "busybox", "sleep", "1000"]);
    e.run_d(&["--name", "taken", "busybox", "sleep", "1000"]);
    e.berth(&["rename", "old", "new"]).ok();
    e.berth(&["inspect", "old"]).failed_mentioning(&["old"]);
    assert_eq!(e.inspect("new")["Id"], id.as_str());
    assert_eq!(e.inspect("new")["Name"], "/new");
    e.berth(&["exec", "new", "true"]).ok();
    e.berth(&["rename", "new", "taken"])
        .failed_mentioning(&["taken", "already in use"]);
    e.berth(&["rename", "new", "bad name!"])
        .failed_mentioning(&["bad name!", "invalid"]);
    e.berth(&["rename", "nosuch", "x"])
        .failed_mentioning(&["nosuch"]);
    assert_eq!(e.inspect("new")["Name"], "/new");
    // The old name is free again.
    e.run_d(&["--name", "old", "busybox", "true"]);
}

#[test]
fn top_lists_the_container_process_and_port_lists_none() {
    let e = Eng::new("top");
    e.run_d(&["--name", "sleeper", "busybox", "sleep", "1000"]);
    let out = e.berth(&["top", "sleeper"]);
    out.ok();
    let l = lines(&out);
    assert!(l[0].contains("PID"), "no header:\n{out}");
    assert!(
        l.iter().any(|x| x.contains("sleep 1000")),
        "top does not list the container's process:\n{out}"
    );
    assert!(
        !l.iter().any(|x| x.contains("berth-monitor")),
        "top lists a process outside the container:\n{out}"
    );
    let out = e.berth(&["top", "sleeper", "-o", "pid,comm"]);
    out.ok();
    assert!(
        out.stdout.contains("COMMAND") && out.stdout.contains("sleep"),
        "{out}"
    );
    let out = e.berth(&["port", "sleeper"]);
    out.ok();
    assert_eq!(out.stdout, "", "no -p: no published ports");
    e.berth(&["port", "nosuch"]).failed_mentioning(&["nosuch"]);
    e.berth(&["stop", "-t", "1", "sleeper"]).ok();
    e.berth(&["top", "sleeper"])
        .failed_mentioning(&["sleeper", "not running"]);
}

#[test]
fn stats_no_stream_shows_the_memory_limit() {
    let e = Eng::new("stats");
    e.run_d(&[
        "--name", "limited", "--memory", "64m", "busybox", "sleep", "1000",
    ]);
    let out = e.berth(&["stats", "--no-stream", "limited"]);
    out.ok();
    let l = lines(&out);
    assert_eq!(l.len(), 2, "a header and one row:\n{out}");
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(l[0].contains(col), "no {col} column:\n{out}");
    }
    assert!(
        l[1].contains("limited") && l[1].contains("/ 64MiB"),
        "no 64MiB limit in the row:\n{out}"
    );
    let out = e.berth(&["stats", "--no-stream", "--format", "json", "limited"]);
    out.ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(v["MemLimitBytes"], 64u64 << 20, "{v:#}");
    assert!(v["MemUsageBytes"].as_u64().unwrap_or(0) > 0, "{v:#}");
    assert_eq!(v["PIDs"], "1", "{v:#}");
    // Every running container by default.
    let out = e.berth(&["stats", "--no-stream"]);
    out.ok();
    assert!(out.stdout.contains("limited"), "{out}");
    e.berth(&["stats", "--no-stream", "nosuch"])
        .failed_mentioning(&["nosuch"]);
}

#[test]
fn logs_since_and_until() {
    let e = Eng::new("since");
    e.run_d(&["--name", "talker", "busybox", "sh", "-c", COUNTER]);
    poll(Duration::from_secs(10), || {
        (counter_values(&e, "talker").len() >= 10).then_some(())
    })
    .expect("the counter never got to 10");
    e.berth(&["stop", "-t", "1", "talker"]).ok();
    let out = e.berth(&["logs", "-t", "talker"]);
    out.ok();
    let stamped: Vec<(String, String)> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, l)| (t.to_string(), l.to_string()))
        .collect();
    assert!(stamped.len() >= 10, "{out}");
    let (t5, l5) = &stamped[5];
    let since = e.berth(&["logs", "--since", t5, "talker"]);
    since.ok();
    assert_eq!(since.stdout.lines().next(), Some(l5.as_str()), "{since}");
    assert_eq!(since.stdout.lines().count(), stamped.len() - 5, "{since}");
    let until = e.berth(&["logs", "--until", t5, "talker"]);
    until.ok();
    assert_eq!(
        lines(&until),
        stamped[..5]
            .iter()
            .map(|(_, l)| l.clone())
            .collect::<Vec<_>>(),
        "{until}"
    );
    let both = e.berth(&["logs", "--since", &stamped[2].0, "--until", t5, "talker"]);
    both.ok();
    assert_eq!(lines(&both).len(), 3, "{both}");
    // Relative times: everything was in the last hour, nothing in the future.
    let out = e.berth(&["logs", "--since", "1h", "talker"]);
    assert_eq!(lines(out.ok()).len(), stamped.len());
    let out = e.berth(&["logs", "--until", "1h", "talker"]);
    assert_eq!(out.ok().stdout, "");
    e.berth(&["logs", "--since", "yesterday", "talker"])
        .failed_mentioning(&["--since", "yesterday"]);
}

#[test]
fn log_rotation_keeps_max_file_files_and_logs_reads_them_in_order() {
    let e = Eng::new("rotate");
    let id = e.run_d(&[
        "--name",
        "chatty",
        "--log-opt",
        "max-size=1k,max-file=2",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line$i; i=$((i+1)); done",
    ]);
    e.berth(&["wait", "chatty"]).ok();
    let dir = e.s.root().join("containers").join(&id);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("container dir")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ctr.log"))
        .collect();
    files.sort();
    assert_eq!(files, ["ctr.log", "ctr.log.1"], "max-file=2: two files");
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).expect("stat").len();
        assert!(len <= 1024, "{f} is {len} bytes, over max-size=1k");
    }
    let out = e.berth(&["logs", "chatty"]);
    out.ok();
    let nums: Vec<u32> = out
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("line").parse().expect("lineN"))
        .collect();
    assert_eq!(nums.last(), Some(&399), "the latest line is last:\n{out}");
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "logs across the rotated files is not in order: {nums:?}"
    );
    assert!(nums.len() < 400, "the oldest output was dropped");
    let out = e.berth(&["logs", "--tail", "3", "chatty"]);
    assert_eq!(lines(out.ok()), ["line397", "line398", "line399"]);
    e.berth(&["run", "-d", "--log-opt", "max-file=2", "busybox", "true"])
        .failed_mentioning(&["max-file", "max-size"]);
    e.berth(&["run", "-d", "--log-opt", "colour=red", "busybox", "true"])
        .failed_mentioning(&["colour"]);
}

#[test]
fn attach_follows_the_output_until_the_container_ends() {
    let e = Eng::new("attach");
    e.run_d(&[
        "--name",
        "short",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo one; echo two >&2; sleep 1; echo three; exit 7",
    ]);
    let out = e.berth(&["attach", "short"]);
    assert_eq!(
        out.code(),
        Some(7),
        "attach exits with the container's code:\n{out}"
    );
    assert!(out.stdout.contains("three"), "{out}");
    assert!(out.stderr.contains("two"), "{out}");
    e.berth(&["attach", "short"])
        .failed_mentioning(&["short", "start it first"]);
}

#[test]
fn ps_filters_and_formats() {
    let e = Eng::new("ps");
    let a = e.run_d(&[
        "--name", "alpha", "-l", "env=prod", "busybox", "sleep", "1000",
    ]);
    e.run_d(&[
        "--name", "beta", "-l", "env=dev", "busybox", "sleep", "1000",
    ]);
    e.run_d(&["--name", "gamma", "busybox", "sh", "-c", "exit 3"]);
    e.berth(&["wait", "gamma"]).ok();
    let names = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["ps", "--format", "{{.Names}}"];
        v.extend_from_slice(args);
        let out = e.berth(&v);
        let mut l = lines(out.ok());
        l.sort();
        l
    };
    assert_eq!(names(&[]), ["alpha", "beta"]);
    assert_eq!(names(&["-a"]), ["alpha", "beta", "gamma"]);
    // A status filter lists stopped containers without -a.
    assert_eq!(names(&["--filter", "status=exited"]), ["gamma"]);
    assert_eq!(names(&["-f", "status=running"]), ["alpha", "beta"]);
    assert_eq!(names(&["--filter", "label=env=prod"]), ["alpha"]);
    assert_eq!(names(&["--filter", "label=env"]), ["alpha", "beta"]);
    // The same key twice: either; different keys: both.
    assert_eq!(
        names(&["-a", "--filter", "name=alpha", "--filter", "name=gamma"]),
        ["alpha", "gamma"]
    );
    assert_eq!(
        names(&["--filter", "label=env", "--filter", "name=bet"]),
        ["beta"]
    );
    assert_eq!(
        names(&["--filter", "id=", "--filter", "id=nomatch"]).len(),
        2
    );
    assert_eq!(names(&["--filter", &format!("id={}", &a[..8])]), ["alpha"]);
    assert_eq!(
        names(&["-a", "--filter", "ancestor=busybox"]),
        ["alpha", "beta", "gamma"]
    );
    assert!(names(&["-a", "--filter", "ancestor=nosuchimage"]).is_empty());
    // Templates.
    let out = e.berth(&[
        "ps",
        "--filter",
        "name=alpha",
        "--format",
        "{{.ID}}\\t{{.Names}}\\t{{.Label \"env\"}}",
    ]);
    assert_eq!(out.ok().stdout, format!("{}\talpha\tprod\n", &a[..12]));
    let out = e.berth(&[
        "ps",
        "-a",
        "--filter",
        "name=gamma",
        "--format",
        "table {{.Names}}\\t{{.Status}}",
    ]);
    let l = lines(out.ok());
    assert_eq!(l.len(), 2, "{out}");
    assert!(
        l[0].starts_with("NAMES   ") && l[0].ends_with("STATUS"),
        "{out}"
    );
    assert!(
        l[1].starts_with("gamma   ") && l[1].contains("Exited (3)"),
        "{out}"
    );
    let out = e.berth(&["ps", "--filter", "name=beta", "--format", "{{json .}}"]);
    let v: Value = serde_json::from_str(out.ok().stdout.trim()).expect("json");
    assert_eq!(v["Names"], "beta", "{v:#}");
    assert_eq!(v["State"], "running", "{v:#}");
    e.berth(&["ps", "--format", "{{.Nope}}"])
        .failed_mentioning(&[".Nope"]);
    e.berth(&["ps", "--filter", "colour=red"])
        .failed_mentioning(&["colour"]);
    e.berth(&["ps", "--filter", "status=sleepy"])
        .failed_mentioning(&["sleepy"]);
}

#[test]
fn system_reset_asks_then_leaves_nothing() {
    let e = Eng::new("reset");
    let id = e.run_d(&["--name", "svc", "busybox", "sleep", "1000"]);
    let stopped = e.run_d(&["busybox", "true"]);
    // No answer on stdin (it is /dev/null here): refused, nothing removed.
    e.berth(&["system", "reset"])
        .failed_mentioning(&["no answer", "-f"]);
    assert_eq!(e.inspect("svc")["State"]["Status"], "running");
    let out = e.berth(&["system", "reset", "-f"]);
    out.ok();
    let root = e.s.root();
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "system reset -f left {left:?} in {}",
        root.display()
    );
    for c in [&id, &stopped] {
        let l = host_leftovers(&e, c);
        assert!(l.is_empty(), "system reset -f left: {l:?}");
        assert!(monitor_pids(c).is_empty(), "a monitor of {c} still runs");
    }
    // The store works again from scratch.
    let out = e.berth(&["ps", "-a", "-q"]);
    assert_eq!(out.ok().stdout, "");
    let out = e.berth(&["images", "-q"]);
    assert_eq!(
        out.ok().stdout.trim(),
        "",
        "images survived the reset:\n{out}"
    );
}

/// A container started without a command shows the image's (resolved at create) in `ps`.
#[test]
fn ps_shows_the_image_command_when_none_was_given() {
    let e = Eng::new("pscmd");
    let id = e.run_d(&["--name", "imagecmd", "busybox"]);
    e.berth(&["wait", &id]).ok();
    let out = e.berth(&["ps", "-a", "--format", "{{.Names}} {{.Command}}"]);
    out.ok();
    assert!(
        out.stdout.lines().any(|l| l == "imagecmd \"sh\""),
        "ps does not show the image's command:\n{out}"
    );
}
