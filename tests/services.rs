//! Services: host ports that DNAT round-robin over backend containers (`berth service`,
//! engine::service over berth-net's `nft::svc` maps). berth runs inside a network
//! namespace of the test's (its bridge and nftables table live there); busybox `httpd`
//! serves each container's /etc, so `/hostname` names the backend that answered.

use berth_tests::net::{http_get, NetEng, NetNs};
use berth_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn web(e: &NetEng, name: &str, extra: &[&str]) -> String {
    let mut a = vec!["--name", name, "--hostname", name];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    e.run_d(&a)
}

/// `n` requests to `url` from `ns`: how many each backend answered.
fn spread(ns: &NetNs, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let body = http_get(ns, url).unwrap_or_else(|| panic!("no answer from {url}"));
        *seen.entry(body.trim().to_string()).or_insert(0) += 1;
    }
    seen
}

/// The first line of the elements of the service maps in `nft list table ip berth`.
fn svc_elements(e: &NetEng) -> String {
    let t = e.ns.nft();
    let mut out = String::new();
    let mut inside = false;
    for l in t.lines() {
        let l = l.trim();
        if l.starts_with("map svc ") || l.starts_with("map hsvc ") {
            inside = true;
        } else if inside && l == "}" {
            inside = false;
        } else if inside && l.starts_with("elements") {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

#[test]
fn service_spreads_requests_over_its_backends_round_robin() {
    let e = NetEng::new("svc-rr");
    for n in ["w1", "w2", "w3"] {
        web(&e, n, &[]);
    }
    e.berth(&[
        "service", "publish", "-p", "8090:80", "front", "w1", "w2", "w3",
    ])
    .ok();
    let url = "http://127.0.0.1:8090/hostname";
    poll(Duration::from_secs(10), || http_get(&e.ns, url)).expect("no answer on 127.0.0.1:8090");
    // Nine connections: three each (the counter steps once per new connection).
    let seen = spread(&e.ns, url, 9);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["w1", "w2", "w3"],
        "{seen:?}"
    );
    assert!(seen.values().all(|&n| (2..=4).contains(&n)), "{seen:?}");
    // From an outside host routed to this one, on this host's address.
    let outside = e.outside();
    let seen = spread(&outside, "http://192.0.2.1:8090/hostname", 6);
    assert_eq!(seen.len(), 3, "{seen:?}");
    // From another container (hairpin through the bridge's gateway).
    let gw = e.inspect("w1")["NetworkSettings"]["Networks"]["berth"]["Gateway"]
        .as_str()
        .expect("a gateway")
        .to_string();
    let out = e.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("for i in 1 2 3; do wget -q -O - http://{gw}:8090/hostname; done"),
    ]);
    out.ok();
    let mut names: Vec<&str> = out.stdout.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["w1", "w2", "w3"], "{out}");

    let ls = e.berth(&["service", "ls"]);
    ls.ok();
    assert!(
        ls.stdout.contains("front") && ls.stdout.contains("8090->80/tcp"),
        "{ls}"
    );

    // A backend removed: the service goes on over the others.
    e.berth(&["rm", "-f", "w3"]).ok();
    let seen = spread(&e.ns, url, 6);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["w1", "w2"], "{seen:?}");
    let v: serde_json::Value =
        serde_json::from_str(&e.berth(&["service", "inspect", "front"]).stdout).expect("JSON");
    assert_eq!(v[0]["backends"].as_array().map(Vec::len), Some(2), "{v:#}");

    // Unpublished: no element left, nothing answers.
    let listed = e.ns.exec(&["nft", "list", "table", "ip", "berth"]);
    listed.ok();
    assert!(!svc_elements(&e).is_empty(), "{listed}");
    assert!(listed.stdout.contains("numgen inc mod 840"), "{listed}");
    e.berth(&["service", "rm", "front"]).ok();
    assert_eq!(svc_elements(&e), "", "{}", e.ns.nft());
    assert_eq!(http_get(&e.ns, url), None);
    e.berth(&["service", "inspect", "front"])
        .failed_mentioning(&["no such service", "front"]);
}

#[test]
fn service_replaced_and_ports_held_are_refused() {
    let e = NetEng::new("svc-clash");
    web(&e, "a", &["-p", "8091:80"]);
    web(&e, "b", &[]);
    // A port a container publishes.
    e.berth(&["service", "publish", "-p", "8091:80", "s1", "b"])
        .failed_mentioning(&["8091", "container a"]);
    e.berth(&["service", "publish", "-p", "8092:80", "s1", "b"])
        .ok();
    // A port another service publishes, by a service or a container.
    e.berth(&["service", "publish", "-p", "8092:80", "s2", "a"])
        .failed_mentioning(&["8092", "service s1"]);
    e.berth(&["run", "-d", "-p", "8092:80", "busybox", "sleep", "100"])
        .failed_mentioning(&["8092", "service s1"]);
    // Something on the host listening.
    let l = e.ns.command(&["busybox", "nc", "-l", "-p", "8093"]).spawn();
    let mut l = l.expect("a listener in the test's namespace");
    poll(Duration::from_secs(5), || {
        e.ns.exec(&["ss", "-ltn", "sport = :8093"])
            .stdout
            .contains("8093")
            .then_some(())
    })
    .expect("the listener never listened");
    e.berth(&["service", "publish", "-p", "8093:80", "s3", "a"])
        .failed_mentioning(&["8093", "in use"]);
    let _ = l.kill();
    let _ = l.wait();
    // Replaced: s1 moves to backend a on another port; the old port answers no more.
    let url = "http://127.0.0.1:8092/hostname";
    poll(Duration::from_secs(10), || http_get(&e.ns, url)).expect("s1 never answered");
    assert_eq!(http_get(&e.ns, url).as_deref().map(str::trim), Some("b"));
    e.berth(&["service", "publish", "-p", "8094:80", "s1", "a"])
        .ok();
    assert_eq!(http_get(&e.ns, url), None);
    assert_eq!(
        http_get(&e.ns, "http://127.0.0.1:8094/hostname")
            .as_deref()
            .map(str::trim),
        Some("a")
    );
    // Bad input: one line naming it.
    e.berth(&["service", "publish", "-p", "8095", "s4", "a"])
        .failed_mentioning(&["8095", "host port"]);
    e.berth(&["service", "publish", "-p", "8096:80", "s4", "nosuch"])
        .failed_mentioning(&["nosuch"]);
    e.berth(&["service", "publish", "-p", "8096:80", "../x", "a"])
        .failed_mentioning(&["service name"]);
    assert!(
        !e.berth(&["service", "ls"]).stdout.contains("s4"),
        "a refused service left a row"
    );
    e.berth(&["service", "rm", "s1"]).ok();
}
