//! berth's container networks end to end. Every berth command runs inside a network
//! namespace made by the test (tests/src/net.rs), where the bridges, berth's nftables table
//! and NAT live; another namespace routed to it plays an outside host. Containers are
//! busybox: `httpd` serves their /etc, `nc` is the client.

use berth_tests::images::berth_bin;
use berth_tests::net::*;
use berth_tests::*;
use std::time::Duration;

/// A busybox `nc` request for `/hostname` to `addr port`, run in a fresh container on
/// `network` (`--rm`-like: removed after). Its output.
fn nc_get(e: &NetEng, network: &str, addr: &str, port: &str) -> String {
    let script = format!(
        "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}; echo nc-done"
    );
    let id = e.run_d(&["--network", network, "busybox", "sh", "-c", &script]);
    let out = e.log_until(&id, "nc-done");
    e.berth(&["rm", "-f", &id]).ok();
    out
}

/// The httpd container `name` on `network` serving its /etc, with `extra` flags.
fn web(e: &NetEng, name: &str, network: &str, extra: &[&str]) -> String {
    let mut a = vec!["--name", name, "--network", network, "--hostname", name];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    e.run_d(&a)
}

#[test]
fn published_ports_answer_on_loopback_bridge_other_containers_and_outside() {
    let e = NetEng::new("publish");
    web(
        &e,
        "web",
        "bridge",
        &["-p", "8080:80", "-p", "127.0.0.1:8081:80"],
    );
    let gw = e.inspect("web")["NetworkSettings"]["Networks"]["berth"]["Gateway"]
        .as_str()
        .expect("a gateway")
        .to_string();
    let ip = e.ip("web", "berth");
    // From the host (the test's namespace): 127.0.0.1 (route_localnet + DNAT in output),
    // the bridge address, the container's own address.
    let body = poll(Duration::from_secs(10), || {
        http_get(&e.ns, "http://127.0.0.1:8080/hostname")
    })
    .expect("no answer on 127.0.0.1:8080");
    assert_eq!(body.trim(), "web");
    for url in [
        format!("http://{gw}:8080/hostname"),
        "http://127.0.0.1:8081/hostname".to_string(),
        format!("http://{ip}:80/hostname"),
    ] {
        assert_eq!(
            http_get(&e.ns, &url).as_deref().map(str::trim),
            Some("web"),
            "{url}"
        );
    }
    // 8081 is published on 127.0.0.1 only: not on the bridge address.
    assert_eq!(http_get(&e.ns, &format!("http://{gw}:8081/hostname")), None);
    // From another container (hairpin through the host's address).
    let out = nc_get(&e, "bridge", &gw, "8080");
    assert!(out.contains("200 OK") && out.contains("web"), "{out}");
    // From an outside host routed to this one.
    let outside = e.outside();
    assert_eq!(
        http_get(&outside, "http://192.0.2.1:8080/hostname")
            .as_deref()
            .map(str::trim),
        Some("web")
    );
    // port, ps and inspect show the mapping.
    let port = e.berth(&["port", "web"]);
    port.ok();
    assert!(port.stdout.contains("80/tcp -> 0.0.0.0:8080"), "{port}");
    assert!(port.stdout.contains("80/tcp -> 127.0.0.1:8081"), "{port}");
    e.berth(&["port", "web", "80/tcp"]).ok();
    e.berth(&["port", "web", "81"]).failed_mentioning(&["81"]);
    let ps = e.berth(&["ps"]);
    assert!(ps.stdout.contains("0.0.0.0:8080->80/tcp"), "{ps}");

    // -p CTRPORT: an ephemeral host port, shown by port; -P: none exposed here, so none.
    web(&e, "eph", "bridge", &["-p", "80"]);
    let port = e.berth(&["port", "eph", "80"]);
    port.ok();
    let hp = port
        .stdout
        .trim()
        .rsplit(':')
        .next()
        .unwrap_or("")
        .to_string();
    assert!(hp.parse::<u16>().is_ok_and(|p| p > 0), "{port}");
    assert_eq!(
        http_get(&e.ns, &format!("http://127.0.0.1:{hp}/hostname"))
            .as_deref()
            .map(str::trim),
        Some("eph")
    );
}

#[test]
fn a_port_in_use_is_refused_before_the_container_starts() {
    let e = NetEng::new("portuse");
    web(&e, "first", "bridge", &["-p", "8080:80"]);
    let out = e.berth(&[
        "run", "-d", "--name", "second", "-p", "8080:80", "busybox", "sleep", "100",
    ]);
    out.failed_mentioning(&["8080/tcp", "first"]);
    let second = e.inspect("second");
    assert_ne!(second["State"]["Status"], "running", "{second:#}");
    // Something on the host listening on the port: refused too.
    let mut listener = e.ns.command(&["busybox", "nc", "-l", "-p", "8090"]);
    let mut child = listener
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn a listener");
    poll(Duration::from_secs(5), || {
        e.ns.exec(&["ss", "-ltn"])
            .stdout
            .contains(":8090")
            .then_some(())
    })
    .expect("the listener never listened");
    e.berth(&["run", "-d", "-p", "8090:80", "busybox", "sleep", "100"])
        .failed_mentioning(&["8090/tcp", "in use"]);
    let _ = child.kill();
    let _ = child.wait();
    // Once the first is removed, its port is free for another.
    e.berth(&["rm", "-f", "first", "second"]).ok();
    web(&e, "third", "bridge", &["-p", "8080:80"]);
    let body = poll(Duration::from_secs(10), || {
        http_get(&e.ns, "http://127.0.0.1:8080/hostname")
    });
    assert_eq!(body.as_deref().map(str::trim), Some("third"));
}

#[test]
fn user_networks_are_isolated_and_internal_ones_have_no_route_out() {
    let e = NetEng::new("isolation");
    e.berth(&["network", "create", "--subnet", "10.61.0.0/24", "neta"])
        .ok();
    e.berth(&["network", "create", "--subnet", "10.62.0.0/24", "netb"])
        .ok();
    e.berth(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.63.0.0/24",
        "neti",
    ])
    .ok();
    web(&e, "a1", "neta", &[]);
    let a1 = e.ip("a1", "neta");
    assert!(a1.starts_with("10.61.0."), "{a1}");
    // Same network: reachable. Another network: not.
    let same = nc_get(&e, "neta", &a1, "80");
    assert!(same.contains("a1"), "{same}");
    let other = nc_get(&e, "netb", &a1, "80");
    assert!(!other.contains("200 OK"), "netb reached neta: {other}");
    // Internal: its containers reach each other, nothing outside.
    web(&e, "i1", "neti", &[]);
    let i1 = e.ip("i1", "neti");
    let inside = nc_get(&e, "neti", &i1, "80");
    assert!(inside.contains("i1"), "{inside}");
    let outside = e.outside();
    let mut srv = outside.command(&["busybox", "httpd", "-f", "-p", "9000", "-h", "/etc"]);
    let mut child = srv.spawn().expect("an outside server");
    poll(Duration::from_secs(5), || {
        outside
            .exec(&["ss", "-ltn"])
            .stdout
            .contains(":9000")
            .then_some(())
    })
    .expect("the outside server never listened");
    let from_a = nc_get(&e, "neta", "192.0.2.2", "9000");
    let from_i = nc_get(&e, "neti", "192.0.2.2", "9000");
    let _ = child.kill();
    let _ = child.wait();
    assert!(from_a.contains("200 OK"), "neta has no route out: {from_a}");
    assert!(
        !from_i.contains("200 OK"),
        "an internal network reached out: {from_i}"
    );
    let routes = {
        let id = e.run_d(&[
            "--network",
            "neti",
            "busybox",
            "sh",
            "-c",
            "ip route; echo done",
        ]);
        e.log_until(&id, "done")
    };
    assert!(!routes.contains("default"), "{routes}");

    // A network in use is not removed; once unused it is, with its bridge.
    e.berth(&["network", "rm", "neta"])
        .failed_mentioning(&["neta", "a1"]);
    e.berth(&["rm", "-f", "a1"]).ok();
    let bridge = format!(
        "br-{}",
        &e.berth(&["network", "inspect", "neta"])
            .stdout
            .split("\"Id\": \"")
            .nth(1)
            .unwrap_or("")[..12]
    );
    assert!(e.ns.links().contains(&bridge), "{:?}", e.ns.links());
    e.berth(&["network", "rm", "neta"]).ok();
    assert!(!e.ns.links().contains(&bridge), "{:?}", e.ns.links());
    let ls = e.berth(&["network", "ls", "-q"]);
    assert!(!ls.stdout.lines().any(|l| l == "neta"), "{ls}");
}

#[test]
fn network_modes_none_host_and_container() {
    let e = NetEng::new("modes");
    let id = e.run_d(&[
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ip -o link; echo done",
    ]);
    let out = e.log_until(&id, "done");
    assert!(out.contains("lo") && !out.contains("eth0"), "{out}");

    e.ns.exec(&[
        "ip", "link", "add", "btdummy0", "type", "veth", "peer", "name", "btdummy1",
    ])
    .ok();
    let id = e.run_d(&[
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "ip -o link; echo done",
    ]);
    let out = e.log_until(&id, "done");
    assert!(
        out.contains("btdummy0"),
        "--network host does not see the host's links: {out}"
    );

    web(&e, "base", "bridge", &[]);
    let ip = e.ip("base", "berth");
    let id = e.run_d(&[
        "--network",
        "container:base",
        "busybox",
        "sh",
        "-c",
        "ip -o addr; printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 80; echo done",
    ]);
    let out = e.log_until(&id, "done");
    assert!(
        out.contains(&format!("{ip}/")),
        "not in base's namespace: {out}"
    );
    assert!(
        out.contains("base"),
        "127.0.0.1:80 is not base's httpd: {out}"
    );
}

#[test]
fn hosts_resolv_and_hostname_are_written_per_container() {
    let e = NetEng::new("files");
    let id = e.run_d(&[
        "--name",
        "named",
        "--hostname",
        "box1",
        "--add-host",
        "db:10.9.8.7",
        "--dns",
        "10.1.2.3",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname; echo done",
    ]);
    let out = e.log_until(&id, "done");
    let ip = e.ip("named", "berth");
    assert!(out.contains(&format!("{ip}\tbox1 named")), "{out}");
    assert!(out.contains("10.9.8.7\tdb"), "{out}");
    assert!(out.contains("nameserver 10.1.2.3"), "{out}");
    assert!(
        out.lines().filter(|l| l.trim() == "box1").count() >= 2,
        "{out}"
    );
    // The image's own files are untouched (its /etc/hostname says rootfs-hostname).
    let dir = e.s.root().join("containers").join(&id);
    assert!(dir.join("hosts").is_file());
}

#[test]
fn bad_network_input_is_one_clear_line_and_changes_nothing() {
    let e = NetEng::new("badinput");
    e.berth(&["network", "create", "--subnet", "10.71.0.0/16", "one"])
        .ok();
    let before = e.berth(&["network", "ls", "-q"]).stdout;
    for (args, needles) in [
        (
            vec!["network", "create", "--subnet", "10.71.5.0/24", "two"],
            vec!["10.71.5.0/24", "overlaps", "one"],
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.72.0.0/16",
                "--gateway",
                "10.73.0.1",
                "two",
            ],
            vec!["10.73.0.1", "not a host address"],
        ),
        (
            vec!["network", "create", "--subnet", "10.72.0.1/16", "two"],
            vec!["10.72.0.1/16", "host bits"],
        ),
        (
            vec!["network", "create", "--subnet", "nonsense", "two"],
            vec!["nonsense"],
        ),
        (
            vec!["network", "create", "../evil"],
            vec!["../evil", "invalid network name"],
        ),
        (
            vec!["network", "create", "one"],
            vec!["one", "already exists"],
        ),
        (vec!["network", "rm", "nosuch"], vec!["nosuch"]),
        (
            vec!["run", "-d", "--network", "nosuch", "busybox", "true"],
            vec!["nosuch"],
        ),
        (
            vec!["run", "-d", "-p", "70000:80", "busybox", "true"],
            vec!["70000"],
        ),
        (
            vec!["run", "-d", "-p", "80/sctp", "busybox", "true"],
            vec!["sctp"],
        ),
        (
            vec![
                "run",
                "-d",
                "--network",
                "one",
                "--ip",
                "10.99.0.5",
                "busybox",
                "true",
            ],
            vec!["10.99.0.5"],
        ),
        (
            vec!["run", "-d", "--hostname", "a/b", "busybox", "true"],
            vec!["a/b"],
        ),
        (
            vec![
                "run",
                "-d",
                "--mac-address",
                "01:00:5e:00:00:01",
                "busybox",
                "true",
            ],
            vec!["multicast"],
        ),
        (
            vec![
                "run",
                "-d",
                "--network",
                "none",
                "-p",
                "80:80",
                "busybox",
                "true",
            ],
            vec!["bridge network"],
        ),
        (
            vec!["run", "-d", "--add-host", "nocolon", "busybox", "true"],
            vec!["nocolon"],
        ),
    ] {
        let out = e.berth(&args);
        out.failed_mentioning(&needles);
        let lines = out.stderr.trim().lines().count();
        assert_eq!(lines, 1, "{args:?}: not one line:\n{out}");
    }
    assert_eq!(e.berth(&["network", "ls", "-q"]).stdout, before);
    assert!(e.berth(&["ps", "-a", "-q"]).stdout.trim().is_empty());
    // A fixed address already taken.
    e.run_d(&[
        "--network",
        "one",
        "--ip",
        "10.71.0.9",
        "busybox",
        "sleep",
        "100",
    ]);
    e.berth(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "one",
        "--ip",
        "10.71.0.9",
        "busybox",
        "sleep",
        "100",
    ])
    .failed_mentioning(&["10.71.0.9", "in use"]);
}

#[test]
fn nothing_leaks_after_many_runs_killed_monitors_and_killed_commands() {
    let e = NetEng::new("leaks");
    // The first run makes the bridge and the table; count from there.
    let id = e.run_d(&["-p", "7000:80", "busybox", "sleep", "100"]);
    e.berth(&["rm", "-f", &id]).ok();
    let links = e.ns.links();
    let table = e.ns.nft();
    assert!(table.contains("map ports"), "{table}");
    let netns_dir = e.s.dir.join("run/netns");
    let count = |d: &std::path::Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    for i in 0..20 {
        let port = format!("{}:80", 7100 + i);
        let id = e.run_d(&["-p", &port, "-p", "9999/udp", "busybox", "sleep", "100"]);
        if i % 5 == 4 {
            // A monitor killed -9: rm still removes everything.
            for pid in berth_tests::engine::monitor_pids(&id) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        e.berth(&["rm", "-f", &id]).ok();
    }
    // `berth run` killed -9 at any point of its setup: rm -f of what it left repairs all.
    for i in 0..10u64 {
        let mut cmd = e.ns.command(&[]);
        cmd.arg(berth_bin())
            .arg("--root")
            .arg(e.s.root())
            .arg("--runroot")
            .arg(e.s.dir.join("run"))
            .env("BERTH_RUNTIME", runtime_bin())
            .args([
                "run",
                "-d",
                "-p",
                &format!("{}:80", 7200 + i),
                "busybox",
                "sleep",
                "100",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("spawn berth run");
        std::thread::sleep(Duration::from_millis(i * 7));
        let _ = child.kill();
        let _ = child.wait();
    }
    for id in e.berth(&["ps", "-a", "-q"]).stdout.split_whitespace() {
        e.berth(&["rm", "-f", id]).ok();
    }
    assert_eq!(e.ns.links(), links, "links leaked");
    assert_eq!(e.ns.nft(), table, "nftables elements leaked");
    assert_eq!(count(&netns_dir), 0, "namespace files leaked");
    let hostmounts = host_mounts();
    assert!(
        !hostmounts
            .iter()
            .any(|m| m.mount_point.starts_with(&*netns_dir.to_string_lossy())),
        "netns mounts leaked"
    );
    // system reset removes the bridge and the table.
    e.berth(&["system", "reset", "-f"]).ok();
    assert!(
        !e.ns.links().iter().any(|l| l == "berth0"),
        "{:?}",
        e.ns.links()
    );
    assert!(e.ns.nft().is_empty());
}

#[test]
fn publish_all_exposes_the_images_ports_and_udp_is_forwarded() {
    let e = NetEng::new("exposeall");
    let ctx = e.s.dir.join("ctx");
    std::fs::create_dir_all(&ctx).expect("context dir");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nEXPOSE 80 5353/udp\n",
    )
    .expect("write Containerfile");
    e.berth(&["build", "-t", "exposer", &ctx.to_string_lossy()])
        .ok();
    let id = e.run_d(&[
        "-P",
        "--hostname",
        "exp",
        "exposer",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let port = |p: &str| -> String {
        let out = e.berth(&["port", &id, p]);
        out.ok();
        out.stdout
            .trim()
            .rsplit(':')
            .next()
            .unwrap_or("")
            .to_string()
    };
    let (tcp, udp) = (port("80/tcp"), port("5353/udp"));
    assert!(
        tcp.parse::<u16>().is_ok() && udp.parse::<u16>().is_ok(),
        "{tcp} {udp}"
    );
    let body = poll(Duration::from_secs(10), || {
        http_get(&e.ns, &format!("http://127.0.0.1:{tcp}/hostname"))
    });
    assert_eq!(body.as_deref().map(str::trim), Some("exp"));
    // Datagrams to the published UDP port arrive in the container's namespace (busybox
    // has no UDP server: nothing listens there, so its kernel counts them in NoPorts).
    let gw = e.inspect(&id)["NetworkSettings"]["Networks"]["berth"]["Gateway"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let netns = e.s.dir.join("run/netns").join(&id);
    let no_ports = || -> u64 {
        let out = e.ns.exec(&[
            "nsenter",
            &format!("--net={}", netns.display()),
            "cat",
            "/proc/net/snmp",
        ]);
        out.ok();
        let lines: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("Udp:"))
            .collect();
        let (names, values) = (lines[0], lines[1]);
        let i = names
            .split_whitespace()
            .position(|n| n == "NoPorts")
            .expect("NoPorts");
        values
            .split_whitespace()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .expect("a count")
    };
    let before = no_ports();
    for _ in 0..3 {
        e.ns.exec(&[
            "bash",
            "-c",
            &format!("echo udp-hello > /dev/udp/{gw}/{udp}"),
        ])
        .ok();
        e.ns.exec(&[
            "bash",
            "-c",
            &format!("echo udp-hello > /dev/udp/127.0.0.1/{udp}"),
        ])
        .ok();
    }
    let after = no_ports();
    assert!(
        after >= before + 6,
        "the datagrams did not arrive: {before} -> {after}"
    );
}

#[test]
fn concurrent_starts_get_distinct_addresses() {
    let e = std::sync::Arc::new(NetEng::new("concurrent"));
    e.berth(&["network", "create", "--subnet", "10.81.0.0/24", "conc"])
        .ok();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || e.run_d(&["--network", "conc", "busybox", "sleep", "100"]))
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().expect("a run -d thread"))
        .collect();
    let mut ips: Vec<String> = ids.iter().map(|id| e.ip(id, "conc")).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 6, "duplicate addresses: {ips:?}");
    let out = e.berth(&["network", "inspect", "conc"]);
    assert_eq!(out.stdout.matches("IPv4Address").count(), 6, "{out}");
}

/// A container on `network` that looks `names` up (busybox nslookup, which asks the
/// server of its resolv.conf) and fetches /hostname from each address: its log.
fn lookup_and_get(e: &NetEng, network: &str, names: &[&str]) -> String {
    let script = format!(
        "for n in {}; do a=$(nslookup $n 2>/dev/null | sed -n 's/^Address: //p' | tail -n 1); \
         echo \"resolved $n=$a\"; [ -n \"$a\" ] && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $a 80; \
         done; echo all-done",
        names.join(" ")
    );
    let id = e.run_d(&["--network", network, "busybox", "sh", "-c", &script]);
    let out = e.log_until(&id, "all-done");
    e.berth(&["rm", "-f", &id]).ok();
    out
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_alias() {
    let e = NetEng::new("dns");
    e.berth(&["network", "create", "--subnet", "10.64.0.0/24", "app"])
        .ok();
    e.berth(&["network", "create", "--subnet", "10.65.0.0/24", "other"])
        .ok();
    web(&e, "web", "app", &["--network-alias", "www"]);
    let ip = e.ip("web", "app");
    let out = lookup_and_get(&e, "app", &["web", "www", "WEB"]);
    for n in ["web", "www", "WEB"] {
        assert!(
            out.contains(&format!("resolved {n}={ip}")),
            "{n} not resolved to {ip}:\n{out}"
        );
    }
    assert_eq!(out.matches("200 OK").count(), 3, "{out}");
    // Another network's responder does not know it.
    let out = lookup_and_get(&e, "other", &["web"]);
    assert!(
        out.contains("resolved web=\n") || out.contains("resolved web=\r"),
        "{out}"
    );
    // An alias another container answers to is refused, naming it.
    e.berth(&[
        "run",
        "-d",
        "--network",
        "app",
        "--network-alias",
        "web",
        "busybox",
        "sleep",
        "9",
    ])
    .failed_mentioning(&["web", "already used", "app"]);

    // connect: a second network (eth1) with an alias, answered by that network's responder.
    web(&e, "multi", "other", &[]);
    e.berth(&["network", "connect", "--alias", "mb", "app", "multi"])
        .ok();
    let mip = e.ip("multi", "app");
    assert!(mip.starts_with("10.64.0."), "{mip}");
    let out = lookup_and_get(&e, "app", &["mb", "multi"]);
    assert!(out.contains(&format!("resolved mb={mip}")), "{out}");
    assert!(out.matches("multi").count() >= 2, "{out}");
    e.berth(&["network", "connect", "app", "multi"])
        .failed_mentioning(&["already connected"]);
    e.berth(&["network", "disconnect", "other", "multi"])
        .failed_mentioning(&["own"]);
    e.berth(&["network", "disconnect", "app", "multi"]).ok();
    let out = lookup_and_get(&e, "app", &["mb"]);
    assert!(out.contains("resolved mb=\n"), "{out}");
    let links = e.berth(&["exec", "multi", "ip", "-o", "link"]);
    assert!(!links.stdout.contains("eth1"), "{links}");

    // The responder stops with the network's last container.
    let records = e.s.dir.join("run/dns/app/records");
    assert!(records.is_file());
    let responders = || {
        pids_with_cmdline("berth-dns")
            .into_iter()
            .filter(|(_, c)| c.contains(&*records.to_string_lossy()))
            .count()
    };
    assert_eq!(responders(), 1);
    e.berth(&["rm", "-f", "web"]).ok();
    assert!(!records.exists(), "records left after the last container");
    poll(Duration::from_secs(5), || (responders() == 0).then_some(()))
        .expect("the responder of app did not exit");
}

#[test]
fn a_restarted_container_keeps_its_address_and_published_port() {
    let e = NetEng::new("restart");
    web(&e, "web", "bridge", &["-p", "8080:80"]);
    let ip = e.ip("web", "berth");
    let get = || {
        poll(Duration::from_secs(10), || {
            http_get(&e.ns, "http://127.0.0.1:8080/hostname")
        })
    };
    assert_eq!(get().as_deref().map(str::trim), Some("web"));
    e.berth(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(http_get(&e.ns, "http://127.0.0.1:8080/hostname"), None);
    e.berth(&["start", "web"]).ok();
    assert_eq!(e.ip("web", "berth"), ip);
    assert_eq!(get().as_deref().map(str::trim), Some("web"));
    e.berth(&["restart", "-t", "1", "web"]).ok();
    assert_eq!(get().as_deref().map(str::trim), Some("web"));
    let links = e.ns.links();
    assert_eq!(
        links.iter().filter(|l| l.starts_with("veth")).count(),
        1,
        "{links:?}"
    );
}

#[test]
fn other_names_are_forwarded_to_the_hosts_resolvers_except_on_internal_networks() {
    let e = NetEng::new("dnsfwd");
    let outside = e.outside();
    let _upstream = FakeUpstream::start(&outside, std::net::Ipv4Addr::new(203, 0, 113, 7));
    let conf = e.s.dir.join("resolv.conf");
    std::fs::write(&conf, "nameserver 192.0.2.2\n").expect("write resolv.conf");
    let conf = conf.to_string_lossy().to_string();
    let env = [("BERTH_RESOLV_CONF", conf.as_str())];
    e.berth(&["network", "create", "--subnet", "10.66.0.0/24", "fwd"])
        .ok();
    e.berth(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.67.0.0/24",
        "closed",
    ])
    .ok();
    let script = "a=$(nslookup example.test 2>/dev/null | sed -n 's/^Address: //p' | tail -n 1); \
                  echo \"resolved=$a\"; cat /etc/resolv.conf; echo all-done";
    for (net, want) in [("fwd", "resolved=203.0.113.7"), ("closed", "resolved=\n")] {
        let out = e.berth_env(
            &["run", "-d", "--network", net, "busybox", "sh", "-c", script],
            &env,
        );
        out.ok();
        let id = out.stdout.trim().to_string();
        let log = e.log_until(&id, "all-done");
        assert!(log.contains(want), "{net}: {log}");
        let gw = if net == "fwd" {
            "10.66.0.1"
        } else {
            "10.67.0.1"
        };
        assert!(log.contains(&format!("nameserver {gw}")), "{net}: {log}");
    }
}
