//! A Service sends traffic only to ready backends (engine::endpoints, as Kubernetes'
//! endpoints): a replica whose readiness probe fails leaves the service's elements and
//! comes back when it passes; a stopped one leaves too. berth runs inside a network
//! namespace of the test's (tests/src/engine.rs `Eng`); busybox `httpd` serves each pod's
//! /etc, so `/hostname` names the replica that answered.

use berth_tests::engine::Eng;
use berth_tests::net::{http_get, NetNs};
use berth_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

const URL: &str = "http://127.0.0.1:30081/hostname";

/// `n` requests to `url`: how many each backend answered ("-" for none).
fn spread_at(ns: &NetNs, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let who = http_get(ns, url).map_or("-".to_string(), |b| b.trim().to_string());
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}

/// `n` requests through the Deployment's service.
fn spread(ns: &NetNs, n: usize) -> BTreeMap<String, usize> {
    spread_at(ns, URL, n)
}

/// Polls until 8 requests in a row to `url` are answered by `want` exactly; fails the test
/// with the last spread after 30 s.
#[track_caller]
fn until_spread_at(ns: &NetNs, url: &str, want: &[&str], what: &str) -> BTreeMap<String, usize> {
    let mut last = BTreeMap::new();
    let got = poll(Duration::from_secs(30), || {
        last = spread_at(ns, url, 8);
        (last.keys().map(String::as_str).collect::<Vec<_>>() == want).then(|| last.clone())
    });
    got.unwrap_or_else(|| panic!("{what}: never only {want:?}; last spread {last:?}"))
}

/// Polls until 8 requests in a row through the Deployment's service are answered by
/// `want` exactly.
#[track_caller]
fn until_spread(ns: &NetNs, want: &[&str], what: &str) -> BTreeMap<String, usize> {
    until_spread_at(ns, URL, want, what)
}

/// The file played, taken down when the test ends.
struct Played<'a>(&'a Eng, std::path::PathBuf);

impl Drop for Played<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .berth(&["kube", "down", "--force", &self.1.to_string_lossy()]);
    }
}

#[test]
fn a_service_sends_traffic_only_to_ready_running_replicas() {
    let e = Eng::new("endpoints");
    let ns = e.s.netns.as_ref().expect("the test's namespace");
    let yaml = e.s.dir.join("deploy.yaml");
    std::fs::write(
        &yaml,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: srv
        image: busybox
        command: [sh, -c, "touch /tmp/ready; exec httpd -f -p 8000 -h /etc"]
        ports: [{containerPort: 8000}]
        readinessProbe:
          exec: {command: [test, -f, /tmp/ready]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8000, nodePort: 30081}
"#,
    )
    .expect("write the YAML");
    let _played = Played(&e, yaml.clone());
    e.berth(&["kube", "play", &yaml.to_string_lossy()]).ok();
    // Both ready (their probes passed): both answer.
    until_spread(ns, &["web-1", "web-2"], "both replicas ready");

    // web-2's readiness fails: it leaves the service, every request goes to web-1.
    e.berth(&["exec", "web-2-srv", "rm", "/tmp/ready"]).ok();
    e.until("web-2-srv", Duration::from_secs(20), "not ready", |v| {
        v["State"]["Ready"] == false
    });
    until_spread(ns, &["web-1"], "web-2 not ready");
    let seen = spread(ns, 10);
    assert_eq!(seen.get("web-1"), Some(&10), "{seen:?}");
    // It still runs (a readiness failure restarts nothing).
    assert_eq!(e.inspect("web-2-srv")["State"]["Status"], "running");

    // Ready again: back in the service.
    e.berth(&["exec", "web-2-srv", "touch", "/tmp/ready"]).ok();
    until_spread(ns, &["web-1", "web-2"], "web-2 ready again");

    // web-1's container stopped: the pod is not ready, web-2 takes everything.
    e.berth(&["stop", "-t", "1", "web-1-srv"]).ok();
    until_spread(ns, &["web-2"], "web-1 stopped");
    let seen = spread(ns, 10);
    assert_eq!(seen.get("web-2"), Some(&10), "{seen:?}");
    // Started again (and ready): both.
    e.berth(&["start", "web-1-srv"]).ok();
    until_spread(ns, &["web-1", "web-2"], "web-1 started again");

    // Neither ready: the port answers nothing (no element is left to DNAT to).
    for r in ["web-1-srv", "web-2-srv"] {
        e.berth(&["exec", r, "rm", "/tmp/ready"]).ok();
    }
    until_spread(ns, &["-"], "no replica ready");
}

#[test]
fn plain_backends_leave_a_service_while_unready_stopped_or_paused() {
    let e = Eng::new("endpoints-plain");
    let ns = e.s.netns.as_ref().expect("the test's namespace");
    for n in ["b1", "b2"] {
        e.run_d(&[
            "--name",
            n,
            "--hostname",
            n,
            "--readiness-probe-cmd",
            "test -f /tmp/ready",
            "--probe-period",
            "300ms",
            "--probe-failure-threshold",
            "1",
            "busybox",
            "sh",
            "-c",
            "touch /tmp/ready; exec httpd -f -p 80 -h /etc",
        ]);
    }
    // b3 has no probe: ready while it runs.
    e.run_d(&[
        "--name",
        "b3",
        "--hostname",
        "b3",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    e.berth(&[
        "service", "publish", "-p", "8097:80", "plain", "b1", "b2", "b3",
    ])
    .ok();
    let url = "http://127.0.0.1:8097/hostname";
    until_spread_at(ns, url, &["b1", "b2", "b3"], "all ready");
    e.berth(&["exec", "b1", "rm", "/tmp/ready"]).ok();
    until_spread_at(ns, url, &["b2", "b3"], "b1 not ready");
    e.berth(&["stop", "-t", "1", "b3"]).ok();
    until_spread_at(ns, url, &["b2"], "b1 not ready, b3 stopped");
    // The rows keep all three: only the kernel's elements follow readiness.
    let v: serde_json::Value =
        serde_json::from_str(&e.berth(&["service", "inspect", "plain"]).stdout).expect("JSON");
    assert_eq!(v[0]["backends"].as_array().map(Vec::len), Some(3), "{v:#}");
    e.berth(&["start", "b3"]).ok();
    e.berth(&["exec", "b1", "touch", "/tmp/ready"]).ok();
    until_spread_at(ns, url, &["b1", "b2", "b3"], "all back");
    // A paused (frozen) backend answers nothing: out while paused.
    e.berth(&["pause", "b2"]).ok();
    until_spread_at(ns, url, &["b1", "b3"], "b2 paused");
    e.berth(&["unpause", "b2"]).ok();
    until_spread_at(ns, url, &["b1", "b2", "b3"], "b2 unpaused");
    e.berth(&["service", "rm", "plain"]).ok();
}
