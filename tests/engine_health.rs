//! Health checks, `berth kill` as a manual stop, and `berth serve` bringing back
//! containers whose monitor died. Root, real containers, a busybox image imported locally
//! (and one built from it with a HEALTHCHECK).

use berth_tests::engine::{monitor_pids, Eng};
use berth_tests::*;
use serde_json::Value;
use std::process::{Child, Stdio};
use std::time::Duration;

/// What these tests ask of the shared engine test store beyond tests/src/engine.rs.
trait HealthEng {
    fn ps_status(&self, name: &str) -> String;
}

impl HealthEng for Eng {
    /// `ps -a` STATUS of container `name`.
    fn ps_status(&self, name: &str) -> String {
        self.ps_all()
            .into_iter()
            .find(|c| c["Names"] == name)
            .map(|c| c["Status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("{name} not in ps -a"))
    }
}

fn health(v: &Value) -> &str {
    v["State"]["Health"]["Status"].as_str().unwrap_or("")
}

#[test]
fn failing_check_turns_unhealthy_then_healthy_once_it_passes() {
    let e = Eng::new("flip");
    e.run_d(&[
        "--name",
        "web",
        "--health-cmd",
        "echo probe-out; test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = e.until("web", Duration::from_secs(20), "unhealthy", |v| {
        health(v) == "unhealthy"
    });
    let h = &v["State"]["Health"];
    assert!(h["FailingStreak"].as_u64().unwrap_or(0) >= 2, "{h:#}");
    let log = h["Log"].as_array().expect("Health.Log");
    assert!(!log.is_empty() && log.len() <= 5, "{h:#}");
    assert_eq!(log[0]["ExitCode"], 1, "{h:#}");
    assert!(
        log[0]["Output"]
            .as_str()
            .unwrap_or("")
            .contains("probe-out"),
        "{h:#}"
    );
    assert_eq!(v["Config"]["Healthcheck"]["Test"][0], "CMD-SHELL", "{v:#}");
    let st = e.ps_status("web");
    assert!(st.starts_with("Up ") && st.ends_with("(unhealthy)"), "{st}");

    e.berth(&["exec", "web", "touch", "/tmp/ok"]).ok();
    let v = e.until("web", Duration::from_secs(20), "healthy", |v| {
        health(v) == "healthy"
    });
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0, "{v:#}");
    let st = e.ps_status("web");
    assert!(st.ends_with("(healthy)"), "{st}");
    // Only the last five results are kept.
    std::thread::sleep(Duration::from_millis(1500));
    let v = e.inspect("web");
    let n = v["State"]["Health"]["Log"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 5, "{v:#}");
}

#[test]
fn a_hanging_check_is_killed_at_its_timeout() {
    let e = Eng::new("hang");
    e.run_d(&[
        "--name",
        "slow",
        "--health-cmd",
        "sleep 100",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = e.until("slow", Duration::from_secs(20), "unhealthy", |v| {
        health(v) == "unhealthy"
    });
    let log = &v["State"]["Health"]["Log"][0];
    assert_eq!(log["ExitCode"], -1, "{v:#}");
    assert!(
        log["Output"]
            .as_str()
            .unwrap_or("")
            .contains("exceeded timeout"),
        "{v:#}"
    );
    // Probes keep coming (each one killed): the monitor was not stuck on the first.
    e.until("slow", Duration::from_secs(20), "a third result", |v| {
        v["State"]["Health"]["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    });
    // At most the running probe's shell and its sleep; none of the killed ones.
    // Exactly `sleep 100` (other containers on the machine run `sleep 1000`).
    let sleepers: Vec<_> = pids_with_cmdline("sleep 100")
        .into_iter()
        .filter(|(_, c)| c.trim() == "sleep 100")
        .collect();
    assert!(
        sleepers.len() <= 2,
        "timed-out probes left processes: {sleepers:?}"
    );
}

#[test]
fn image_healthcheck_is_used_overridden_and_disabled() {
    let e = Eng::new("image");
    let ctx = e.s.dir.join("ctx");
    std::fs::create_dir_all(&ctx).expect("mkdir ctx");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD [\"sh\", \"-c\", \"echo from-image\"]\n",
    )
    .expect("write Containerfile");
    e.berth(&["build", "-t", "hc", &ctx.to_string_lossy()]).ok();

    e.run_d(&["--name", "img", "hc", "sleep", "1000"]);
    let v = e.until("img", Duration::from_secs(20), "healthy", |v| {
        health(v) == "healthy"
    });
    assert_eq!(v["Config"]["Healthcheck"]["Test"][0], "CMD", "{v:#}");
    assert!(
        v["State"]["Health"]["Log"][0]["Output"]
            .as_str()
            .unwrap_or("")
            .contains("from-image"),
        "{v:#}"
    );

    // A --health-cmd replaces the image's test; the image's interval and retries stay.
    e.run_d(&[
        "--name",
        "over",
        "--health-cmd",
        "exit 3",
        "hc",
        "sleep",
        "1000",
    ]);
    let v = e.until("over", Duration::from_secs(20), "unhealthy", |v| {
        health(v) == "unhealthy"
    });
    assert_eq!(v["State"]["Health"]["Log"][0]["ExitCode"], 3, "{v:#}");

    // --no-healthcheck: no check at all.
    e.run_d(&["--name", "off", "--no-healthcheck", "hc", "sleep", "1000"]);
    std::thread::sleep(Duration::from_millis(800));
    let v = e.inspect("off");
    assert!(v["State"].get("Health").is_none(), "{v:#}");
    let st = e.ps_status("off");
    assert!(st.starts_with("Up ") && !st.contains('('), "{st}");
}

#[test]
fn bad_health_options_are_one_clear_error_and_make_nothing() {
    let e = Eng::new("bad");
    for (args, needles) in [
        (
            vec!["--health-interval", "soon"],
            vec!["--health-interval", "soon"],
        ),
        (
            vec!["--health-timeout", "10"],
            vec!["--health-timeout", "missing unit"],
        ),
        (
            vec!["--health-retries", "-1"],
            vec!["--health-retries", "negative"],
        ),
        (
            vec!["--no-healthcheck", "--health-cmd", "true"],
            vec!["--no-healthcheck"],
        ),
    ] {
        let mut a = vec!["create", "--name", "x"];
        a.extend_from_slice(&args);
        a.extend_from_slice(&["busybox", "true"]);
        e.berth(&a).failed_mentioning(&needles);
    }
    let ps = e.berth(&["ps", "-a", "-q"]);
    ps.ok();
    assert!(ps.stdout.trim().is_empty(), "containers were made: {ps}");
}

#[test]
fn kill_is_a_manual_stop_for_always() {
    let e = Eng::new("kill");
    e.run_d(&[
        "--name",
        "k",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    e.berth(&["kill", "k"]).ok();
    e.until("k", Duration::from_secs(10), "exited", |v| {
        v["State"]["Status"] == "exited"
    });
    std::thread::sleep(Duration::from_millis(1500));
    let v = e.inspect("k");
    assert_eq!(
        v["State"]["Status"], "exited",
        "killed, yet restarted: {v:#}"
    );
    assert_eq!(v["RestartCount"], 0, "{v:#}");
    // Started again, its policy applies again.
    e.berth(&["start", "k"]).ok();
    let pid = e.inspect("k")["State"]["Pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .expect("kill the process");
    e.until("k", Duration::from_secs(10), "restarted", |v| {
        v["RestartCount"].as_u64().unwrap_or(0) >= 1 && v["State"]["Status"] == "running"
    });
}

/// `berth serve` as a child, stopped (SIGTERM) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

#[test]
fn serve_restarts_always_after_its_monitor_was_killed_not_a_stopped_unless_stopped() {
    let e = Eng::new("serve");
    let a = e.run_d(&[
        "--name",
        "a",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    e.run_d(&[
        "--name",
        "u",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]);
    e.run_d(&[
        "--name",
        "s",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    e.berth(&["stop", "-t", "1", "u"]).ok();
    e.berth(&["stop", "-t", "1", "s"]).ok();
    let old_pid = e.inspect("a")["State"]["Pid"].as_i64().unwrap_or(0);
    let mons = monitor_pids(&a);
    assert_eq!(mons.len(), 1, "{mons:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mons[0]),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill -9 the monitor");
    poll(Duration::from_secs(5), || {
        monitor_pids(&a).is_empty().then_some(())
    })
    .expect("the monitor survived SIGKILL");

    let mut cmd = e.s.command(&["serve", "--interval", "1"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let serve = Serve(cmd.spawn().expect("start berth serve"));

    let v = e.until("a", Duration::from_secs(30), "restarted by serve", |v| {
        v["State"]["Status"] == "running"
            && v["State"]["Pid"].as_i64().unwrap_or(0) != old_pid
            && v["State"]["Pid"].as_i64().unwrap_or(0) > 0
    });
    assert_eq!(monitor_pids(&a).len(), 1, "a new monitor: {v:#}");
    // Docker's daemon start: a stopped `always` comes back, a stopped `unless-stopped`
    // does not.
    e.until(
        "s",
        Duration::from_secs(30),
        "started at serve's start",
        |v| v["State"]["Status"] == "running",
    );
    std::thread::sleep(Duration::from_millis(2500));
    let v = e.inspect("u");
    assert_eq!(v["State"]["Status"], "exited", "{v:#}");

    // SIGTERM: it ends cleanly.
    let mut serve = serve;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.0.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .expect("SIGTERM serve");
    let st = poll(Duration::from_secs(10), || {
        serve.0.try_wait().ok().flatten()
    })
    .expect("berth serve did not stop on SIGTERM");
    assert!(st.success(), "berth serve exited with {st}");
}
