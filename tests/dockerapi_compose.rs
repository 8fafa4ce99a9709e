//! docker-compose (Debian's 1.29) on berth's Docker API (issue 15): the three-service project
//! of tests/fixtures/compose (a service built with `build:`, a published port, a user
//! network where services resolve each other by name, a named volume one service writes and
//! another reads, `depends_on`, `environment`) brought up, listed, logged and taken down
//! with `down -v`, leaving no container, network or volume. berth serve (and so the
//! containers and the published port) is inside the test's network namespace.

use berth_tests::docker::*;
use berth_tests::engine::host_leftovers;
use berth_tests::images::BERTH_TIMEOUT;
use berth_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const COMPOSE: &str = "/usr/bin/docker-compose";

/// Copies the fixture project into `dir`.
fn copy_project(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compose");
    std::fs::create_dir_all(dir.join("web")).expect("mkdir the project");
    for f in ["docker-compose.yml", "web/Dockerfile"] {
        std::fs::copy(src.join(f), dir.join(f))
            .unwrap_or_else(|e| panic!("copy the fixture's {f}: {e}"));
    }
}

/// `docker-compose -p demo ARGS…` in the project directory; it must exit 0; its output.
#[track_caller]
fn compose(d: &Docker, dir: &Path, args: &[&str]) -> String {
    assert!(
        Path::new(COMPOSE).exists(),
        "docker-compose is missing: apt-get install docker-compose (scripts/install-deps.sh)"
    );
    let mut cmd = Command::new(COMPOSE);
    cmd.current_dir(dir).args(["-p", "demo"]).args(args);
    d.client_env(&mut cmd);
    let out = capture(cmd, Capture::Pipes, BERTH_TIMEOUT);
    assert!(
        out.success(),
        "docker-compose {args:?} failed:\n{out}\nberth serve's log:\n{}",
        d.serve_log()
    );
    out.stdout
}

#[test]
fn compose_up_ps_logs_down() {
    let d = Docker::new("compose");
    let dir = d.e.s.dir.join("demo");
    copy_project(&dir);
    compose(&d, &dir, &["up", "-d"]);
    let ps = compose(&d, &dir, &["ps"]);
    for svc in ["demo_web_1", "demo_app_1", "demo_writer_1"] {
        assert!(
            ps.lines().any(|l| l.contains(svc) && l.contains("Up")),
            "docker-compose ps: {svc} is not up:\n{ps}"
        );
    }
    // `app` reached `web` by name and read what `writer` wrote to the volume.
    let logs = poll(Duration::from_secs(30), || {
        let l = compose(&d, &dir, &["logs", "--no-color", "app"]);
        (l.contains("served-by-web") && l.contains("written-by-writer")).then_some(l)
    });
    assert!(
        logs.is_some(),
        "app's logs never showed web's page and the volume's file:\n{}",
        compose(&d, &dir, &["logs", "--no-color"])
    );
    // The published port answers inside the test's namespace (where berth serve runs).
    let ns = d.e.s.netns.as_ref().expect("the test's network namespace");
    let page = poll(Duration::from_secs(10), || {
        let o = capture(
            ns.command(&[
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://127.0.0.1:18081/greeting.txt",
            ]),
            Capture::Pipes,
            BERTH_TIMEOUT,
        );
        o.stdout.contains("hello-compose").then_some(o.stdout)
    });
    assert!(
        page.is_some(),
        "web's published port 18081 never answered with its environment"
    );
    // `exec` needs the exec endpoint (the connection hijack): checked once berth serve has
    // it; while it answers "not part of berth's Docker API" the step is reported, not run.
    let mut cmd = Command::new(COMPOSE);
    cmd.current_dir(&dir)
        .args(["-p", "demo", "exec", "-T", "app", "cat", "/shared/greeting"]);
    d.client_env(&mut cmd);
    let ex = capture(cmd, Capture::Pipes, BERTH_TIMEOUT);
    if ex.stderr.contains("not part of berth's Docker API") {
        eprintln!("docker-compose exec: berth serve has no exec endpoint yet; not checked");
    } else {
        assert!(
            ex.success() && ex.stdout.contains("written-by-writer"),
            "docker-compose exec app cat /shared/greeting:\n{ex}"
        );
    }
    // The engine's view: three containers, the networks and the volume of the project.
    let ids: Vec<String> =
        d.e.ps_all()
            .iter()
            .filter_map(|c| c["ID"].as_str().map(str::to_string))
            .collect();
    assert_eq!(ids.len(), 3, "berth ps -a: {ids:?}");
    let nets = d.e.berth(&["network", "ls"]);
    assert!(
        nets.ok().stdout.contains("demo_appnet") && nets.stdout.contains("demo_default"),
        "berth network ls: {nets}"
    );
    let vols = d.e.berth(&["volume", "ls", "-q"]);
    assert_eq!(vols.ok().stdout.trim(), "demo_shared", "berth volume ls");
    compose(&d, &dir, &["down", "-v"]);
    assert!(d.e.ps_all().is_empty(), "containers left after down -v");
    let nets = d.e.berth(&["network", "ls"]);
    assert!(
        !nets.ok().stdout.contains("demo_"),
        "networks left after down -v: {nets}"
    );
    let vols = d.e.berth(&["volume", "ls", "-q"]);
    assert_eq!(vols.ok().stdout.trim(), "", "volumes left after down -v");
    for id in &ids {
        let left = host_leftovers(&d.e, id);
        assert!(left.is_empty(), "container {id} left {left:?}");
    }
    let ps = compose(&d, &dir, &["ps", "-q"]);
    assert_eq!(ps.trim(), "", "docker-compose ps after down");
}
