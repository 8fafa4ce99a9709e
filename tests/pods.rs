//! Pods end to end (engine::pod, `berth pod`): members share localhost, IPC and the
//! hostname through the infra's namespaces; the pod's published ports (changed while it
//! runs); its status from its members; `pod rm -f` leaving nothing. Every berth command
//! runs inside a network namespace the test made (tests/src/net.rs), where the bridge and
//! berth's nftables table live.

use berth_tests::net::*;
use berth_tests::*;
use serde_json::Value;
use std::time::Duration;

/// A store in a namespace of the test's whose pods are force-removed when the test ends
/// (before NetEng's own cleanup of the containers left).
struct Pods {
    e: NetEng,
}

impl Pods {
    fn new(name: &str) -> Pods {
        Pods {
            e: NetEng::new(name),
        }
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.e.berth(args)
    }

    /// `pod create ARGS…`: the pod's id.
    #[track_caller]
    fn create(&self, args: &[&str]) -> String {
        let mut a = vec!["pod", "create"];
        a.extend_from_slice(args);
        let out = self.berth(&a);
        out.ok();
        let id = out.stdout.trim().to_string();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "pod create printed no id:\n{out}"
        );
        id
    }

    /// `pod inspect POD`.
    #[track_caller]
    fn inspect(&self, pod: &str) -> Value {
        let out = self.berth(&["pod", "inspect", pod]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).expect("pod inspect prints JSON");
        v[0].clone()
    }

    /// The pod's status as `pod ls --format json` shows it.
    #[track_caller]
    fn status(&self, pod: &str) -> String {
        let out = self.berth(&["pod", "ls", "--format", "json"]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).expect("pod ls prints JSON");
        v.as_array()
            .and_then(|a| a.iter().find(|p| p["Name"] == pod))
            .and_then(|p| p["Status"].as_str())
            .unwrap_or_else(|| panic!("pod {pod} not in pod ls: {v:#}"))
            .to_string()
    }

    /// `exec CTR ARGS…`: its stdout, trimmed.
    #[track_caller]
    fn exec(&self, c: &str, args: &[&str]) -> String {
        let mut a = vec!["exec", c];
        a.extend_from_slice(args);
        let out = self.berth(&a);
        out.ok();
        out.stdout.trim().to_string()
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        let out = self.berth(&["pod", "ls", "-q", "--no-trunc"]);
        for id in out.stdout.split_whitespace() {
            let _ = self.berth(&["pod", "rm", "-f", id]);
        }
    }
}

#[test]
fn members_share_localhost_ipc_and_hostname_but_not_with_outsiders() {
    let p = Pods::new("share");
    p.create(&["--name", "duo", "--hostname", "podhost"]);
    // The server listens on the pod's loopback only.
    p.e.run_d(&[
        "--pod",
        "duo",
        "--name",
        "srv",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "127.0.0.1:8080",
        "-h",
        "/etc",
    ]);
    p.e.run_d(&["--pod", "duo", "--name", "cli", "busybox", "sleep", "3600"]);
    let outsider =
        p.e.run_d(&["--name", "outsider", "busybox", "sleep", "3600"]);
    assert_eq!(p.status("duo"), "Running");
    // localhost: the client reaches the server's 127.0.0.1 (the pod's hosts file too).
    let body = poll(Duration::from_secs(10), || {
        let o = p.berth(&[
            "exec",
            "cli",
            "wget",
            "-qO-",
            "http://127.0.0.1:8080/hostname",
        ]);
        o.success().then(|| o.stdout.trim().to_string())
    })
    .expect("the client never reached the server on 127.0.0.1:8080");
    assert_eq!(body, "podhost");
    // The hostname (UTS) is the pod's in both.
    for c in ["srv", "cli"] {
        assert_eq!(p.exec(c, &["hostname"]), "podhost", "{c}");
    }
    assert_ne!(p.exec(&outsider, &["hostname"]), "podhost");
    // The namespaces: one net, ipc and uts for the pod; the outsider has its own; each
    // member its own mount namespace.
    let ns = |c: &str, kind: &str| p.exec(c, &["readlink", &format!("/proc/self/ns/{kind}")]);
    for kind in ["net", "ipc", "uts"] {
        let (a, b, o) = (ns("srv", kind), ns("cli", kind), ns(&outsider, kind));
        assert!(a.starts_with(kind), "{a}");
        assert_eq!(a, b, "{kind} differs between members");
        assert_ne!(a, o, "the outsider shares the pod's {kind} namespace");
    }
    assert_ne!(
        ns("srv", "mnt"),
        ns("cli", "mnt"),
        "members share a mount namespace"
    );
    // A real IPC object: a POSIX message queue made in one member (mqueue is the IPC
    // namespace's file system) is seen by the other, not by the outsider.
    p.exec("srv", &["touch", "/dev/mqueue/berthq"]);
    assert!(
        p.exec("cli", &["ls", "/dev/mqueue"]).contains("berthq"),
        "the queue is not shared in the pod"
    );
    assert!(
        !p.exec(&outsider, &["ls", "/dev/mqueue"]).contains("berthq"),
        "the queue leaked out of the pod"
    );
    // Their writable layers are their own.
    p.exec("srv", &["touch", "/only-in-srv"]);
    let o = p.berth(&["exec", "cli", "ls", "/only-in-srv"]);
    assert!(!o.success(), "a member sees another's files:\n{o}");
    // ps hides the infra without -a; --pod names the pod.
    let ps = p.berth(&["ps"]);
    ps.ok();
    assert!(!ps.stdout.contains("-infra"), "{ps}");
    let ps = p.berth(&["ps", "--pod"]);
    ps.ok();
    assert!(
        ps.stdout.contains("PODNAME") && ps.stdout.contains("duo"),
        "{ps}"
    );
    assert!(ps.stdout.contains("-infra"), "{ps}");
}

#[test]
fn pod_ports_publish_and_change_while_running() {
    let p = Pods::new("ports");
    p.create(&["--name", "web", "-p", "18080:80"]);
    let srv = p.e.run_d(&[
        "--pod", "web", "--name", "srv", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc",
    ]);
    let body = poll(Duration::from_secs(10), || {
        http_get(&p.e.ns, "http://127.0.0.1:18080/hostname")
    })
    .expect("no answer on the pod's port 18080");
    assert_eq!(body.trim(), "web");
    let pid = p.e.inspect(&srv)["State"]["Pid"].clone();
    assert!(pid.as_i64().is_some_and(|n| n > 0), "{pid}");
    // A member's own -p is refused: the pod publishes.
    let o = p.berth(&[
        "run", "-d", "--pod", "web", "-p", "9090:90", "busybox", "sleep", "60",
    ]);
    o.failed_mentioning(&["published", "pod"]);
    // Change the port while it runs.
    p.berth(&["pod", "update", "-p", "18081:80", "web"]).ok();
    let body = poll(Duration::from_secs(10), || {
        http_get(&p.e.ns, "http://127.0.0.1:18081/hostname")
    })
    .expect("no answer on the new port 18081");
    assert_eq!(body.trim(), "web");
    assert_eq!(
        http_get(&p.e.ns, "http://127.0.0.1:18080/hostname"),
        None,
        "the old port still answers"
    );
    assert_eq!(
        p.e.inspect(&srv)["State"]["Pid"],
        pid,
        "the member was restarted"
    );
    let ports = &p.inspect("web")["InfraConfig"]["PortBindings"];
    assert_eq!(ports[0]["HostPort"], "18081", "{ports:#}");
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports:#}");
    // A port another container publishes is refused, and nothing changes.
    p.e.run_d(&[
        "--name", "other", "-p", "18085:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc",
    ]);
    p.berth(&["pod", "update", "-p", "18085:80", "web"])
        .failed_mentioning(&["18085", "other"]);
    assert!(http_get(&p.e.ns, "http://127.0.0.1:18081/hostname").is_some());
    // A stopped pod gets its new ports at its next start.
    p.berth(&["pod", "stop", "-t", "1", "web"]).ok();
    p.berth(&["pod", "update", "-p", "18082:80", "web"]).ok();
    p.berth(&["pod", "start", "web"]).ok();
    let body = poll(Duration::from_secs(10), || {
        http_get(&p.e.ns, "http://127.0.0.1:18082/hostname")
    })
    .expect("no answer on 18082 after the restart");
    assert_eq!(body.trim(), "web");
    assert_eq!(http_get(&p.e.ns, "http://127.0.0.1:18081/hostname"), None);
    let nft = p.e.ns.nft();
    assert!(!nft.contains("18081") && !nft.contains("18080"), "{nft}");
}

#[test]
fn pod_status_follows_members_and_rm_leaves_nothing() {
    let p = Pods::new("status");
    let links = p.e.ns.links();
    let table = p.e.ns.nft();
    let id = p.create(&["--name", "life", "-p", "18090:80"]);
    assert_eq!(p.status("life"), "Created");
    for n in ["a", "b"] {
        p.berth(&[
            "create", "--pod", "life", "--name", n, "busybox", "sleep", "3600",
        ])
        .ok();
    }
    assert_eq!(p.status("life"), "Created");
    p.berth(&["pod", "start", "life"]).ok();
    assert_eq!(p.status("life"), "Running");
    p.berth(&["stop", "-t", "1", "b"]).ok();
    assert_eq!(p.status("life"), "Degraded");
    p.berth(&["stop", "-t", "1", "a"]).ok();
    assert_eq!(p.status("life"), "Exited");
    p.berth(&["pod", "start", "life"]).ok();
    assert_eq!(p.status("life"), "Running");
    let v = p.inspect("life");
    assert_eq!(v["NumContainers"], 3, "{v:#}");
    let infra = v["InfraContainerID"]
        .as_str()
        .expect("an infra id")
        .to_string();
    // The infra is not removed alone.
    p.berth(&["rm", "-f", &infra])
        .failed_mentioning(&["infra", "life"]);
    // rm without -f names the running members.
    p.berth(&["pod", "rm", "life"])
        .failed_mentioning(&["running", "a", "b"]);
    p.berth(&["pod", "rm", "-f", "life"]).ok();
    let ls = p.berth(&["pod", "ls", "-q"]);
    ls.ok();
    assert!(ls.stdout.trim().is_empty(), "{ls}");
    let ps = p.berth(&["ps", "-a", "-q"]);
    ps.ok();
    assert!(ps.stdout.trim().is_empty(), "containers left: {ps}");
    let netns = p.e.s.dir.join("run").join("netns").join(&infra);
    assert!(!netns.exists(), "{} left", netns.display());
    assert!(!p.e.s.root().join("containers").join(&infra).exists());
    // The bridge stays (the default network's); no veth nor port element is left.
    let now: Vec<String> =
        p.e.ns
            .links()
            .into_iter()
            .filter(|l| !links.contains(l) && l != "berth0")
            .collect();
    assert!(now.is_empty(), "links left: {now:?}");
    let nft = p.e.ns.nft();
    assert!(
        !nft.contains("18090"),
        "port element left:\n{nft}\n(before: {table})"
    );
    p.berth(&["pod", "inspect", &id])
        .failed_mentioning(&["no such pod"]);
}

#[test]
fn pod_bad_input_is_refused_with_one_clear_line() {
    let p = Pods::new("bad");
    p.berth(&["pod", "create", "--name", "../evil"])
        .failed_mentioning(&["invalid pod name", "../evil"]);
    p.berth(&["pod", "create", "--share", "net,bogus"])
        .failed_mentioning(&["bogus", "net, ipc, uts or pid"]);
    p.berth(&["run", "-d", "--pod", "nosuch", "busybox", "true"])
        .failed_mentioning(&["no such pod: nosuch"]);
    p.create(&["--name", "dup"]);
    p.berth(&["pod", "create", "--name", "dup"])
        .failed_mentioning(&["dup", "already in use"]);
    p.berth(&[
        "run",
        "-d",
        "--pod",
        "dup",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .failed_mentioning(&["network", "dup"]);
    p.berth(&["pod", "stop", "nosuch"])
        .failed_mentioning(&["no such pod: nosuch"]);
    p.berth(&["pod", "update", "dup"])
        .failed_mentioning(&["nothing to change"]);
    p.berth(&["pod", "update", "-p", "notaport", "dup"])
        .failed();
    // Nothing was made by the refused commands.
    let ls = p.berth(&["pod", "ls", "-q"]);
    assert_eq!(ls.stdout.lines().count(), 1, "{ls}");
}

#[test]
fn shared_pid_namespace_shows_the_infra_and_the_other_member() {
    let p = Pods::new("pid");
    p.create(&["--name", "pids", "--share", "net,ipc,uts,pid"]);
    p.e.run_d(&["--pod", "pids", "--name", "one", "busybox", "sleep", "3601"]);
    p.e.run_d(&["--pod", "pids", "--name", "two", "busybox", "sleep", "3602"]);
    let ps = p.exec("two", &["ps", "-o", "pid,args"]);
    // PID 1 is the infra (berth-init's pause mode), and the other member's sleep is seen.
    let first = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no PID 1 in the pod:\n{ps}"));
    assert!(first.contains("/dev/init --pause"), "{ps}");
    assert!(ps.contains("sleep 3601"), "{ps}");
    // Without --share pid, a member is PID 1 of its own namespace.
    p.create(&["--name", "nopid"]);
    p.e.run_d(&[
        "--pod", "nopid", "--name", "solo", "busybox", "sleep", "3603",
    ]);
    let ps = p.exec("solo", &["ps", "-o", "pid,args"]);
    assert!(!ps.contains("--pause") && !ps.contains("3601"), "{ps}");
}

#[test]
fn pod_commands_logs_top_stats_pause_kill_restart_prune() {
    let p = Pods::new("cmds");
    p.create(&["--name", "ops", "--restart", "on-failure:2"]);
    let script = "echo hello-$0; exec sleep 3600";
    for n in ["x", "y"] {
        p.e.run_d(&[
            "--pod", "ops", "--name", n, "busybox", "sh", "-c", script, n,
        ]);
    }
    // The pod's restart policy went to members created without one.
    assert_eq!(
        p.e.inspect("x")["HostConfig"]["RestartPolicy"]["Name"],
        "on-failure",
        "{:#}",
        p.e.inspect("x")["HostConfig"]
    );
    let logs = poll(Duration::from_secs(10), || {
        let o = p.berth(&["pod", "logs", "ops"]);
        (o.stdout.contains("x hello-x") && o.stdout.contains("y hello-y")).then_some(o)
    })
    .expect("pod logs never showed both members' lines with their names");
    logs.ok();
    let one = p.berth(&["pod", "logs", "-c", "y", "ops"]);
    one.ok();
    assert_eq!(one.stdout.trim(), "hello-y", "{one}");
    let top = p.berth(&["pod", "top", "ops"]);
    top.ok();
    assert!(top.stdout.starts_with("CONTAINER"), "{top}");
    assert!(
        top.stdout
            .lines()
            .any(|l| l.starts_with("x ") && l.contains("sleep 3600")),
        "{top}"
    );
    let stats = p.berth(&["pod", "stats", "--no-stream", "--format", "json", "ops"]);
    stats.ok();
    let names: Vec<String> = stats
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a json line");
            v["Name"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(names, ["x", "y"], "{stats}");
    p.berth(&["pod", "pause", "ops"]).ok();
    assert_eq!(p.status("ops"), "Paused");
    p.berth(&["pod", "unpause", "ops"]).ok();
    assert_eq!(p.status("ops"), "Running");
    let before = p.e.inspect("x")["State"]["Pid"].clone();
    p.berth(&["pod", "restart", "-t", "1", "ops"]).ok();
    assert_eq!(p.status("ops"), "Running");
    assert_ne!(
        p.e.inspect("x")["State"]["Pid"],
        before,
        "restart did not restart x"
    );
    p.berth(&["pod", "kill", "ops"]).ok();
    poll(Duration::from_secs(10), || {
        (p.status("ops") == "Exited").then_some(())
    })
    .expect("the pod never exited after pod kill");
    // A member started alone starts the (stopped) infra first.
    p.berth(&["pod", "stop", "-t", "1", "ops"]).ok();
    let infra = p.inspect("ops")["InfraContainerID"]
        .as_str()
        .expect("infra id")
        .to_string();
    assert_eq!(p.e.inspect(&infra)["State"]["Status"], "exited");
    p.berth(&["start", "x"]).ok();
    assert_eq!(p.e.inspect(&infra)["State"]["Status"], "running");
    assert_eq!(p.status("ops"), "Degraded");
    // prune removes stopped pods only.
    p.create(&["--name", "idle"]);
    let pruned = p.berth(&["pod", "prune", "-f"]);
    pruned.ok();
    assert_eq!(pruned.stdout.trim(), "idle", "{pruned}");
    p.berth(&["pod", "inspect", "ops"]).ok();
    // container prune leaves a stopped pod's infra alone.
    p.berth(&["pod", "stop", "-t", "1", "ops"]).ok();
    p.berth(&["container", "prune"]).ok();
    p.berth(&["pod", "inspect", "ops"]).ok();
    p.e.inspect(&infra);
}

#[test]
fn admission_counts_the_members_of_pods() {
    let p = Pods::new("admit");
    p.berth(&["system", "capacity", "--memory", "100m"]).ok();
    p.create(&["--name", "big"]);
    p.e.run_d(&[
        "--pod", "big", "--name", "m1", "--memory", "60m", "busybox", "sleep", "600",
    ]);
    p.berth(&[
        "run", "-d", "--pod", "big", "--name", "m2", "--memory", "60m", "busybox", "sleep", "600",
    ])
    .failed_mentioning(&["does not fit", "m1"]);
}

#[test]
fn infra_image_runs_that_images_entrypoint() {
    let p = Pods::new("infraimg");
    p.berth(&["pod", "create", "--infra-command", "sleep 1"])
        .failed_mentioning(&["--infra-image"]);
    p.create(&[
        "--name",
        "img",
        "--infra-image",
        "busybox",
        "--infra-command",
        "sleep 3600",
    ]);
    p.berth(&["pod", "start", "img"]).ok();
    let infra = p.inspect("img")["InfraContainerID"]
        .as_str()
        .expect("infra id")
        .to_string();
    let v = p.e.inspect(&infra);
    assert_eq!(v["State"]["Status"], "running", "{v:#}");
    assert_eq!(v["Config"]["Entrypoint"][0], "sleep", "{v:#}");
    assert_eq!(v["IsInfra"], true, "{v:#}");
    p.e.run_d(&["--pod", "img", "--name", "m", "busybox", "sleep", "600"]);
    assert_eq!(p.exec("m", &["hostname"]), "img");
}

#[test]
fn a_pod_create_killed_halfway_is_finished_by_pod_rm() {
    let p = Pods::new("fault");
    for (stage, name) in [("pod-create:inserted", "k1"), ("pod-create:infra", "k2")] {
        let o = p.e.berth_env(
            &["pod", "create", "--name", name],
            &[("BERTH_TEST_ABORT_AT", stage)],
        );
        assert!(!o.success(), "{stage}: the create was not killed:\n{o}");
        // The row is there (Created: no member), and pod rm -f takes everything.
        assert_eq!(p.status(name), "Created", "{stage}");
        p.berth(&["pod", "rm", "-f", name]).ok();
        let ps = p.berth(&["ps", "-a", "-q"]);
        assert!(
            ps.stdout.trim().is_empty(),
            "{stage}: containers left: {ps}"
        );
        p.berth(&["pod", "inspect", name])
            .failed_mentioning(&["no such pod"]);
    }
}
