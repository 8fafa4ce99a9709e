//! Kubernetes probes run by a container's monitor (liveness, readiness, startup; exec,
//! httpGet, tcpSocket) and Podman's `--health-on-failure`. Root, real containers from a
//! busybox image imported locally, berth inside a network namespace of the test's.

use berth_tests::engine::Eng;
use serde_json::Value;
use std::time::Duration;

fn restarts(v: &Value) -> u64 {
    v["RestartCount"].as_u64().unwrap_or(0)
}

fn running_pid(v: &Value) -> i64 {
    if v["State"]["Status"] == "running" {
        v["State"]["Pid"].as_i64().unwrap_or(0)
    } else {
        0
    }
}

/// Waits until `c` runs again with another init than `old_pid`, restarted at least once.
#[track_caller]
fn restarted(e: &Eng, c: &str, old_pid: i64) -> Value {
    e.until(
        c,
        Duration::from_secs(30),
        "restarted with a new pid",
        |v| restarts(v) >= 1 && running_pid(v) != 0 && running_pid(v) != old_pid,
    )
}

#[test]
fn failing_exec_liveness_probe_restarts_the_container() {
    let e = Eng::new("live-exec");
    e.run_d(&[
        "--stop-timeout",
        "1",
        "--name",
        "web",
        "--liveness-probe-cmd",
        "test -f /tmp/ok",
        "--probe-period",
        "200ms",
        "--probe-failure-threshold",
        "2",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    let v = e.until("web", Duration::from_secs(10), "running", |v| {
        running_pid(v) != 0
    });
    let pid = running_pid(&v);
    // Passing probes: nothing happens (ten periods).
    std::thread::sleep(Duration::from_secs(2));
    let v = e.inspect("web");
    assert_eq!((restarts(&v), running_pid(&v)), (0, pid), "{v:#}");
    assert_eq!(
        v["State"]["Ready"], true,
        "no readiness probe: ready once running\n{v:#}"
    );
    // The probe starts failing: the container is killed and restarted (its restart policy
    // is `no`: a liveness kill is Kubernetes' restart).
    e.berth(&["exec", "web", "rm", "/tmp/ok"]).ok();
    let v = restarted(&e, "web", pid);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no", "{v:#}");
    assert!(
        v["State"]["Probes"]["Last"]
            .as_str()
            .unwrap_or("")
            .contains("liveness probe"),
        "{v:#}"
    );
    // The restarted container passes again (its command made the file): it stays up.
    let pid2 = running_pid(&v);
    let n = restarts(&v);
    std::thread::sleep(Duration::from_secs(2));
    let v = e.inspect("web");
    assert_eq!((restarts(&v), running_pid(&v)), (n, pid2), "{v:#}");
}

#[test]
fn http_liveness_probe_on_busybox_httpd() {
    let e = Eng::new("live-http");
    e.run_d(&[
        "--stop-timeout",
        "1",
        "--name",
        "web",
        "--liveness-probe-http",
        "8080/ok.html",
        "--probe-period",
        "200ms",
        "--probe-failure-threshold",
        "2",
        // The restarted container's first probe waits for its httpd to listen: a refused
        // connection before would replace the 404 read below as the last failure.
        "--probe-initial-delay",
        "1s",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo ok > /www/ok.html && exec httpd -f -p 8080 -h /www",
    ]);
    let v = e.until("web", Duration::from_secs(10), "running", |v| {
        running_pid(v) != 0
    });
    let pid = running_pid(&v);
    std::thread::sleep(Duration::from_secs(2));
    let v = e.inspect("web");
    assert_eq!(
        (restarts(&v), running_pid(&v)),
        (0, pid),
        "200 keeps it alive\n{v:#}"
    );
    // 404: a failure.
    e.berth(&["exec", "web", "rm", "/www/ok.html"]).ok();
    let v = restarted(&e, "web", pid);
    assert!(
        v["State"]["Probes"]["Last"]
            .as_str()
            .unwrap_or("")
            .contains("404"),
        "{v:#}"
    );
}

#[test]
fn tcp_readiness_probe_turns_ready_when_the_server_listens() {
    let e = Eng::new("ready-tcp");
    e.run_d(&[
        "--name",
        "web",
        "--readiness-probe-tcp",
        "9000",
        "--probe-period",
        "200ms",
        "busybox",
        "sh",
        "-c",
        "sleep 3; exec httpd -f -p 9000 -h /",
    ]);
    let v = e.until("web", Duration::from_secs(10), "running", |v| {
        running_pid(v) != 0
    });
    assert_eq!(v["State"]["Ready"], false, "not listening yet\n{v:#}");
    let ready = |e: &Eng| {
        let out = e.berth(&["ps", "--format", "{{.Names}} {{.Ready}}"]);
        out.ok();
        out.stdout.trim().to_string()
    };
    assert_eq!(ready(&e), "web false");
    let v = e.until("web", Duration::from_secs(15), "ready", |v| {
        v["State"]["Ready"] == true
    });
    // A readiness failure never restarts.
    assert_eq!(restarts(&v), 0, "{v:#}");
    assert_eq!(ready(&e), "web true");
    // Stopped: not ready.
    e.berth(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(e.inspect("web")["State"]["Ready"], false);
}

#[test]
fn startup_probe_holds_the_liveness_probe_back() {
    let e = Eng::new("startup");
    let probes = serde_json::json!({
        "startup": {
            "action": {"exec": ["test", "-f", "/tmp/started"]},
            "initialDelay": 0, "period": 200, "timeout": 1000,
            "successThreshold": 1, "failureThreshold": 100
        },
        "liveness": {
            "action": {"exec": ["test", "-f", "/tmp/alive"]},
            "initialDelay": 0, "period": 200, "timeout": 1000,
            "successThreshold": 1, "failureThreshold": 1
        }
    });
    let file = e.s.dir.path().join("probes.json");
    std::fs::write(&file, probes.to_string()).expect("write probes.json");
    e.run_d(&[
        "--stop-timeout",
        "1",
        "--name",
        "app",
        "--probes",
        file.to_str().expect("utf-8 path"),
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = e.until("app", Duration::from_secs(10), "running", |v| {
        running_pid(v) != 0
    });
    let pid = running_pid(&v);
    // The liveness probe would fail at once, but it waits for the startup probe.
    std::thread::sleep(Duration::from_secs(2));
    let v = e.inspect("app");
    assert_eq!((restarts(&v), running_pid(&v)), (0, pid), "{v:#}");
    assert_eq!(v["State"]["Probes"]["Started"], false, "{v:#}");
    assert_eq!(v["State"]["Ready"], false, "{v:#}");
    e.berth(&["exec", "app", "touch", "/tmp/started"]).ok();
    // Started: the liveness probe runs, fails once, and the container is restarted.
    restarted(&e, "app", pid);
}

#[test]
fn health_on_failure_restart_restarts_an_unhealthy_container() {
    let e = Eng::new("hof");
    e.run_d(&[
        "--stop-timeout",
        "1",
        "--name",
        "web",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "--health-on-failure",
        "restart",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    let v = e.until("web", Duration::from_secs(10), "healthy", |v| {
        v["State"]["Health"]["Status"] == "healthy"
    });
    let pid = running_pid(&v);
    assert_ne!(pid, 0, "{v:#}");
    e.berth(&["exec", "web", "rm", "/tmp/ok"]).ok();
    let v = restarted(&e, "web", pid);
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "no", "{v:#}");
    e.until("web", Duration::from_secs(10), "healthy again", |v| {
        v["State"]["Health"]["Status"] == "healthy"
    });
}

#[test]
fn health_on_failure_stop_leaves_it_exited() {
    let e = Eng::new("hof-stop");
    e.run_d(&[
        "--name",
        "web",
        "--restart",
        "always",
        "--health-cmd",
        "false",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "--health-on-failure",
        "stop",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v = e.until("web", Duration::from_secs(15), "exited", |v| {
        v["State"]["Status"] == "exited"
    });
    assert_eq!(
        restarts(&v),
        0,
        "stop is final, even with --restart always\n{v:#}"
    );
}

#[test]
fn bad_probe_flags_are_refused() {
    let e = Eng::new("probe-bad");
    e.berth(&["create", "--health-on-failure", "reboot", "busybox"])
        .failed_mentioning(&["--health-on-failure", "reboot"]);
    e.berth(&["create", "--liveness-probe-http", "http", "busybox"])
        .failed_mentioning(&["--liveness-probe-http"]);
    e.berth(&[
        "create",
        "--liveness-probe-tcp",
        "80",
        "--probe-failure-threshold",
        "0",
        "busybox",
    ])
    .failed_mentioning(&["liveness probe", "threshold"]);
}

#[test]
fn failing_startup_probe_restarts_and_never_restart_keeps_it_exited() {
    let e = Eng::new("startup-fail");
    let probes = |never: bool| {
        serde_json::json!({
            "startup": {
                "action": {"tcpSocket": {"port": 9999, "host": null}},
                "initialDelay": 0, "period": 200, "timeout": 500,
                "successThreshold": 1, "failureThreshold": 2
            },
            "neverRestart": never
        })
    };
    let dir = e.s.dir.path();
    for (name, never) in [("again", false), ("never", true)] {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, probes(never).to_string()).expect("write probes");
        e.run_d(&[
            "--stop-timeout",
            "1",
            "--name",
            name,
            "--probes",
            file.to_str().expect("utf-8 path"),
            "busybox",
            "sleep",
            "1000",
        ]);
    }
    let v = e.until("again", Duration::from_secs(10), "running", |v| {
        running_pid(v) != 0
    });
    restarted(&e, "again", running_pid(&v));
    let v = e.until("never", Duration::from_secs(20), "exited", |v| {
        v["State"]["Status"] == "exited"
    });
    assert_eq!(restarts(&v), 0, "{v:#}");
    assert!(
        v["State"]["Probes"]["Last"]
            .as_str()
            .unwrap_or("")
            .contains("startup probe"),
        "{v:#}"
    );
}
