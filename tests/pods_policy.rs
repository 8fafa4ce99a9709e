//! Pods' edges (engine::pod, dockerapi): an explicit `--restart` of a member wins over the
//! pod's policy; `pod kill` signals the infra too, as `podman pod kill`; the Docker API's
//! `containers/json` shows a pod's infra container only with `all=1`, as `berth ps` does
//! with `-a`. berth runs inside a network namespace of the test's (tests/src/engine.rs
//! `Eng`, whose cleanup removes the pods).

use berth_tests::docker::Docker;
use berth_tests::engine::Eng;
use std::time::Duration;

fn pod_create(e: &Eng, args: &[&str]) {
    let mut a = vec!["pod", "create"];
    a.extend_from_slice(args);
    e.berth(&a).ok();
}

fn infra_of(e: &Eng, pod: &str) -> String {
    let out = e.berth(&["pod", "inspect", pod]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("pod inspect JSON");
    v[0]["InfraContainerID"]
        .as_str()
        .unwrap_or_else(|| panic!("no InfraContainerID: {v:#}"))
        .to_string()
}

#[test]
fn an_explicit_restart_no_wins_over_the_pods_policy() {
    let e = Eng::new("pod-restart");
    pod_create(&e, &["--name", "rp", "--restart", "always"]);
    let script = "sleep 0.3; exit 3";
    e.run_d(&[
        "--pod", "rp", "--name", "dflt", "busybox", "sh", "-c", script,
    ]);
    e.run_d(&[
        "--pod",
        "rp",
        "--name",
        "never",
        "--restart",
        "no",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let policy = |c: &str| e.inspect(c)["HostConfig"]["RestartPolicy"]["Name"].clone();
    assert_eq!(policy("dflt"), "always", "no --restart: the pod's");
    assert_eq!(policy("never"), "no", "--restart no given: its own");
    // --rm: removed at its exit, so never restarted (not the pod's policy).
    e.run_d(&[
        "--pod", "rp", "--name", "gone", "--rm", "busybox", "sleep", "3600",
    ]);
    assert_eq!(policy("gone"), "no", "--rm: no restart");
    // And they behave so: the first restarts, the second stays exited.
    e.until("dflt", Duration::from_secs(20), "a restart", |v| {
        v["RestartCount"].as_u64().unwrap_or(0) >= 1
    });
    let v = e.until("never", Duration::from_secs(10), "exited", |v| {
        v["State"]["Status"] == "exited"
    });
    assert_eq!(v["State"]["ExitCode"], 3, "{v:#}");
    std::thread::sleep(Duration::from_secs(2));
    let v = e.inspect("never");
    assert_eq!(
        (v["State"]["Status"].clone(), v["RestartCount"].clone()),
        ("exited".into(), 0.into()),
        "{v:#}"
    );
}

#[test]
fn pod_kill_signals_the_infra_too() {
    let e = Eng::new("pod-kill");
    pod_create(&e, &["--name", "kp"]);
    e.run_d(&["--pod", "kp", "--name", "m", "busybox", "sleep", "3600"]);
    let infra = infra_of(&e, "kp");
    assert_eq!(e.inspect(&infra)["State"]["Status"], "running");
    e.berth(&["pod", "kill", "kp"]).ok();
    for c in ["m", infra.as_str()] {
        let v = e.until(c, Duration::from_secs(10), "exited", |v| {
            v["State"]["Status"] == "exited"
        });
        assert_eq!(v["State"]["ExitCode"], 137, "{c} killed by SIGKILL: {v:#}");
    }
    // Nothing runs any more: a second kill says so.
    e.berth(&["pod", "kill", "kp"])
        .failed_mentioning(&["kp", "no running container"]);
    // The pod starts again, infra first.
    e.berth(&["pod", "start", "kp"]).ok();
    assert_eq!(e.inspect(&infra)["State"]["Status"], "running");
    assert_eq!(e.inspect("m")["State"]["Status"], "running");
}

#[test]
fn docker_api_lists_a_pods_infra_only_with_all() {
    let d = Docker::new("pod-infra");
    pod_create(&d.e, &["--name", "dp"]);
    d.e.run_d(&[
        "--pod", "dp", "--name", "member", "busybox", "sleep", "3600",
    ]);
    let infra = infra_of(&d.e, "dp");
    let running = d.docker(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]);
    assert!(running.contains("member"), "{running}");
    assert!(
        !running.contains(&infra),
        "the infra is listed without all=1:\n{running}"
    );
    let all = d.docker(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]);
    assert!(
        all.contains("member") && all.contains(&infra),
        "docker ps -a lists the infra:\n{all}"
    );
    // As berth's own ps.
    let ps = d.e.berth(&["ps", "-q", "--no-trunc"]);
    ps.ok();
    assert!(!ps.stdout.contains(&infra), "{ps}");
    let ps = d.e.berth(&["ps", "-a", "-q", "--no-trunc"]);
    assert!(ps.stdout.contains(&infra), "{ps}");
}
