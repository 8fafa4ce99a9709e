//! The engine under faults (issue 11, "Bad input and faults"): `kill -9` of the CLI at each
//! named stage of create/start/rm (`BERTH_TEST_ABORT_AT`, crates/engine/src/fault.rs) and
//! after random delays, `kill -9` of `berth serve`, and 200 concurrent `run -d` / `rm -f`.
//! After each: `ps -a` tells the truth (a running row has a live process, no monitor works
//! for a row that says otherwise), no row points at nothing, and `rm -f` leaves no mount,
//! cgroup, process, directory or row. Root, real containers, a busybox image.

use berth_tests::engine::*;
use berth_tests::images::BERTH_TIMEOUT;
use berth_tests::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ABORT_AT: &str = "BERTH_TEST_ABORT_AT";

/// `berth ARGS…` with `BERTH_TEST_ABORT_AT=stage`: it must die of SIGKILL at that stage.
#[track_caller]
fn killed_at(e: &Eng, stage: &str, args: &[&str]) {
    let mut c = e.s.command(args);
    c.env(ABORT_AT, stage);
    let out = capture(c, Capture::Pipes, BERTH_TIMEOUT);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "berth {args:?} did not die at {stage}:\n{out}"
    );
}

/// Whether `pid` runs (a zombie waiting for its reaper has ended).
fn pid_alive(pid: i64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
    pid > 0 && !matches!(state, Some(Some('Z' | 'X')))
}

/// Whether what `inspect` says of every row holds (None) or what does not (Some).
/// `ps -a` as this file reads it: `Id`, `State`, `Names` and, for a running container,
/// `Pid` (from inspect; Docker's `ps --format json` has no pid).
fn ps_rows(e: &Eng) -> Vec<serde_json::Value> {
    e.ps_all()
        .into_iter()
        .map(|r| {
            let id = r["ID"].as_str().unwrap_or_default().to_string();
            let state = r["State"].as_str().unwrap_or_default().to_string();
            let pid = if state == "running" {
                let out = e.berth(&["inspect", &id]);
                serde_json::from_str::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v[0]["State"]["Pid"].as_i64())
                    .unwrap_or(0)
            } else {
                0
            };
            serde_json::json!({"Id": id, "State": state, "Names": [r["Names"]], "Pid": pid})
        })
        .collect()
}

fn untruths(e: &Eng) -> Option<String> {
    let mut bad = Vec::new();
    for row in ps_rows(e) {
        let id = row["Id"].as_str().unwrap_or_default().to_string();
        let status = row["State"].as_str().unwrap_or_default().to_string();
        let pid = row["Pid"].as_i64().unwrap_or(0);
        let monitors = monitor_pids(&id);
        match status.as_str() {
            "running" if !pid_alive(pid) => bad.push(format!("{id}: running, pid {pid} gone")),
            "created" | "exited" if !monitors.is_empty() => {
                bad.push(format!("{id}: {status} but monitor {monitors:?} runs"))
            }
            "created" | "exited" if pid_alive(pid) && pid != 0 => {
                bad.push(format!("{id}: {status} but pid {pid} runs"))
            }
            _ => {}
        }
    }
    (!bad.is_empty()).then(|| bad.join("\n"))
}

/// Polls (a monitor may still be finishing a start the killed CLI asked for) until every
/// row is true; fails the test with the last untruths after 20 s.
#[track_caller]
fn assert_truthful(e: &Eng) {
    let mut last = String::new();
    let ok = poll(Duration::from_secs(20), || match untruths(e) {
        None => Some(()),
        Some(u) => {
            last = u;
            None
        }
    });
    assert!(ok.is_some(), "ps -a does not tell the truth:\n{last}");
}

/// `rm -f` of every row, then nothing of any of `ids` (or of any row) may be left.
#[track_caller]
fn rm_all_and_assert_clean(e: &Eng, ids: &[String]) {
    let rows: Vec<String> = ps_rows(e)
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_string))
        .collect();
    if !rows.is_empty() {
        let mut a = vec!["rm", "-f"];
        a.extend(rows.iter().map(String::as_str));
        e.berth(&a).ok();
    }
    assert!(ps_rows(e).is_empty(), "rows left: {:?}", ps_rows(e));
    for id in ids.iter().chain(rows.iter()) {
        let left = host_leftovers(e, id);
        assert!(left.is_empty(), "{id}: rm -f left {left:?}");
    }
    let root = e.s.root().to_string_lossy().to_string();
    let mons: Vec<_> = pids_with_cmdline("berth-monitor")
        .into_iter()
        .filter(|(_, c)| c.contains(&root))
        .collect();
    assert!(mons.is_empty(), "monitors left: {mons:?}");
}

fn id_of(e: &Eng, name: &str) -> String {
    e.inspect(name)["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn cli_killed_at_each_stage_of_create_start_rm() {
    let e = Eng::new("faults-stages");
    // create: the row is in, its directory not yet. The container is `created`, and
    // starts and goes like any other.
    killed_at(
        &e,
        "create:inserted",
        &["run", "-d", "--name", "c1", "busybox", "sleep", "1000"],
    );
    let v = e.inspect("c1");
    assert_eq!(v["State"]["Status"], "created", "{v:#}");
    assert_truthful(&e);
    e.berth(&["start", "c1"]).ok();
    let v = e.inspect("c1");
    assert_eq!(v["State"]["Status"], "running", "{v:#}");
    assert!(pid_alive(v["State"]["Pid"].as_i64().unwrap_or(0)), "{v:#}");
    let c1 = id_of(&e, "c1");
    e.berth(&["rm", "-f", "c1"]).ok();
    assert!(
        host_leftovers(&e, &c1).is_empty(),
        "{:?}",
        host_leftovers(&e, &c1)
    );

    // start: the monitor was spawned, the CLI died before its report. The monitor goes on:
    // the container runs, and the row says so.
    killed_at(
        &e,
        "start:spawned",
        &["run", "-d", "--name", "c2", "busybox", "sleep", "1000"],
    );
    let v = e.until("c2", Duration::from_secs(10), "running", |v| {
        v["State"]["Status"] == "running"
    });
    assert!(pid_alive(v["State"]["Pid"].as_i64().unwrap_or(0)), "{v:#}");
    let c2 = id_of(&e, "c2");
    assert_eq!(monitor_pids(&c2).len(), 1, "one monitor for c2");
    assert_truthful(&e);

    // rm, at each of its stages: the row stays (removing) until the next rm finishes it.
    let mut ids = vec![c2.clone()];
    for (i, stage) in ["rm:removing", "rm:killed", "rm:deleted"]
        .iter()
        .enumerate()
    {
        let name = format!("r{i}");
        let id = e.run_d(&["--name", &name, "busybox", "sleep", "1000"]);
        killed_at(&e, stage, &["rm", "-f", &name]);
        let v = e.inspect(&name);
        assert_eq!(v["State"]["Status"], "removing", "{stage}: {v:#}");
        assert_truthful(&e);
        // A removing container is never started again (its monitor restarts nothing).
        e.berth(&["start", &name])
            .failed_mentioning(&["being removed"]);
        e.berth(&["rm", "-f", &name]).ok();
        let left = host_leftovers(&e, &id);
        assert!(left.is_empty(), "{stage}: the second rm -f left {left:?}");
        ids.push(id);
    }
    rm_all_and_assert_clean(&e, &ids);
}

/// A tiny xorshift generator (no dependency; the seed is printed so a failure repeats).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spawn_berth(e: &Eng, args: &[&str]) -> Child {
    let mut c: Command = e.s.command(args);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.spawn().expect("spawn berth")
}

fn kill9_after(mut child: Child, delay: Duration) {
    std::thread::sleep(delay);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGKILL,
    );
    let _ = child.wait();
}

#[test]
fn cli_killed_after_random_delays() {
    let e = Eng::new("faults-random");
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(88172645463325252)
        });
    eprintln!("FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    // Measure one run -d so the delays cover its whole length.
    let t = Instant::now();
    e.run_d(&["--name", "probe", "busybox", "sleep", "1000"]);
    let span = (t.elapsed().as_millis() as u64).max(20) * 3 / 2;
    for i in 0..12 {
        let name = format!("k{i}");
        let child = spawn_berth(
            &e,
            &["run", "-d", "--name", &name, "busybox", "sleep", "1000"],
        );
        kill9_after(child, Duration::from_millis(rng.below(span)));
    }
    assert_truthful(&e);
    // Killed removals of whatever is there now.
    for row in ps_rows(&e) {
        let id = row["Id"].as_str().unwrap_or_default().to_string();
        let child = spawn_berth(&e, &["rm", "-f", &id]);
        kill9_after(child, Duration::from_millis(rng.below(span)));
    }
    assert_truthful(&e);
    // Every name that is left can be used: started if created, removed whatever it is.
    for row in ps_rows(&e) {
        if row["State"] == "created" {
            let id = row["Id"].as_str().unwrap_or_default();
            e.berth(&["start", id]).ok();
        }
    }
    assert_truthful(&e);
    rm_all_and_assert_clean(&e, &[]);
}

#[test]
fn killed_serve_leaves_the_truth_and_the_next_serve_carries_on() {
    let e = Eng::new("faults-serve");
    let id = e.run_d(&[
        "--name",
        "svc",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    let kill_monitor = || {
        let mons = monitor_pids(&id);
        assert_eq!(mons.len(), 1, "one monitor: {mons:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(mons[0]),
            nix::sys::signal::SIGKILL,
        )
        .expect("kill the monitor");
        poll(Duration::from_secs(5), || {
            monitor_pids(&id).is_empty().then_some(())
        })
        .expect("the monitor survived SIGKILL");
    };
    for round in 0..2 {
        let before = e.inspect("svc")["State"]["Pid"].as_i64().unwrap_or(0);
        kill_monitor();
        let serve = spawn_berth(&e, &["serve", "--interval", "1"]);
        // serve kills the orphaned process and starts the container under a new monitor.
        let v = e.until("svc", Duration::from_secs(20), "a new process", |v| {
            let pid = v["State"]["Pid"].as_i64().unwrap_or(0);
            v["State"]["Status"] == "running" && pid != before && pid_alive(pid)
        });
        assert_eq!(monitor_pids(&id).len(), 1, "round {round}: {v:#}");
        kill9_after(serve, Duration::from_millis(0));
        let old = std::fs::read_to_string(format!("/proc/{before}/stat")).unwrap_or_default();
        assert!(
            !pid_alive(before),
            "round {round}: the old process {before} still runs: {old}"
        );
        assert_truthful(&e);
    }
    let rows = ps_rows(&e);
    assert_eq!(rows.len(), 1, "{rows:?}");
    rm_all_and_assert_clean(&e, &[id]);
}

#[test]
fn two_hundred_concurrent_run_d_then_rm_f() {
    let e = Eng::new("faults-200");
    let n = 200;
    let run = |args: Vec<String>| {
        let e = &e;
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let a: Vec<String> = args
                        .iter()
                        .map(|s| s.replace("{i}", &i.to_string()))
                        .collect();
                    sc.spawn(move || {
                        let a: Vec<&str> = a.iter().map(String::as_str).collect();
                        let mut c = e.s.command(&a);
                        // 200 inits set up at once on two shared cores can take longer
                        // than the runtime's default 10 s to reach their exec; this test
                        // is about the database, not start latency.
                        c.env("BERTH_START_TIMEOUT", "120");
                        capture(c, Capture::Pipes, BERTH_TIMEOUT)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("thread"))
                .collect::<Vec<Output>>()
        })
    };
    let shown = |o: &Output| {
        let s = o.stderr.to_lowercase();
        [
            "database is locked",
            "database is busy",
            "database table is locked",
            "sqlite",
        ]
        .iter()
        .any(|m| s.contains(m))
    };
    let runs = run(["run", "-d", "--name", "p{i}", "busybox", "sleep", "1000"]
        .iter()
        .map(|s| s.to_string())
        .collect());
    let mut ids = std::collections::HashSet::new();
    for o in &runs {
        assert!(!shown(o), "the database showed through:\n{o}");
        o.ok();
        assert!(ids.insert(o.stdout.trim().to_string()), "duplicate id: {o}");
    }
    let rows = ps_rows(&e);
    assert_eq!(rows.len(), n, "containers lost or duplicated");
    let names: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| r["Names"][0].as_str().map(str::to_string))
        .collect();
    assert!(
        rows.iter().all(|r| r["State"] == "running"),
        "not all running"
    );
    assert_eq!(names.len(), n, "names: {names:?}");
    let rms = run(["rm", "-f", "p{i}"].iter().map(|s| s.to_string()).collect());
    for o in &rms {
        assert!(!shown(o), "the database showed through:\n{o}");
        o.ok();
    }
    let ids: Vec<String> = ids.into_iter().collect();
    rm_all_and_assert_clean(&e, &ids);
}
