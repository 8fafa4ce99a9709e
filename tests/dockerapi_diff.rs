//! `docker diff` (GET /containers/{id}/changes, crates/dockerapi/src/changes.rs) and
//! attach with `logs=1` (hijack.rs) through `berth serve --docker-socket` inside the test's
//! network namespace. Root, real containers from a locally imported busybox image.

use berth_tests::docker::*;
use berth_tests::*;
use std::time::Duration;

#[test]
fn docker_diff_lists_added_modified_and_deleted_paths() {
    let d = Docker::new("diff");
    d.docker(&[
        "run",
        "--name",
        "c",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo new > /added && rm /etc/motd && mkdir /newdir && echo f > /newdir/f && chmod 700 /bin",
    ]);
    let out = d.docker(&["diff", "c"]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "A /added",
        "C /etc",
        "D /etc/motd",
        "A /newdir",
        "A /newdir/f",
        "C /bin",
    ] {
        assert!(
            lines.contains(&want),
            "{want:?} missing from docker diff:\n{out}"
        );
    }
    // Nothing the container did not touch: no file of the image under /bin is listed.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("C /bin/") || l.starts_with("A /bin/")),
        "untouched image files listed:\n{out}"
    );
    // The engine's mount points (/etc/hosts, /etc/resolv.conf) are no change of the
    // container's: one that changed nothing lists nothing.
    assert!(
        !out.contains("/etc/hosts") && !out.contains("/etc/resolv.conf"),
        "the engine's mount points listed:\n{out}"
    );
    d.docker(&[
        "run",
        "--name",
        "idle",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let out = d.docker(&["diff", "idle"]);
    assert_eq!(out, "", "docker diff of a container that changed nothing");
    let created = d.docker(&["create", "--network", "none", "busybox", "true"]);
    let out = d.docker(&["diff", created.trim()]);
    assert_eq!(out, "", "docker diff of a container never started");
    let r = d.docker_out(&["diff", "nosuch"]);
    assert!(!r.success(), "docker diff of a missing container: {r}");
}

#[test]
fn attach_with_logs_sends_what_was_printed_before() {
    let d = Docker::new("attachlogs");
    // "after" only once the test has attached (it creates /go).
    let script = "echo before; while [ ! -e /go ]; do sleep 0.05; done; echo after";
    let a = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let b = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let (a, b) = (a.trim(), b.trim());
    for id in [a, b] {
        let seen = poll(Duration::from_secs(20), || {
            d.docker(&["logs", id]).contains("before").then_some(())
        });
        assert!(seen.is_some(), "container {id} printed nothing");
    }
    // Both attached (the upgrade answered), then both told to go on.
    let out = d.py(&format!(
        "import threading\n\
         res = {{}}\n\
         ready = {{'{a}': threading.Event(), '{b}': threading.Event()}}\n\
         def att(id, logs):\n\
         \x20   s = c.api.attach(id, stdout=True, stderr=True, stream=True, logs=logs)\n\
         \x20   ready[id].set()\n\
         \x20   res[id] = b''.join(s)\n\
         ts = [threading.Thread(target=att, args=('{a}', True)), threading.Thread(target=att, args=('{b}', False))]\n\
         [t.start() for t in ts]\n\
         for id in ready:\n\
         \x20   assert ready[id].wait(60), 'attach ' + id\n\
         \x20   c.containers.get(id).exec_run(['touch', '/go'])\n\
         [t.join(60) for t in ts]\n\
         print(json.dumps({{'a': res['{a}'].decode(), 'b': res['{b}'].decode()}}))\n"
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    assert_eq!(v["a"], "before\nafter\n", "attach with logs=1: {v}");
    assert_eq!(v["b"], "after\n", "attach without logs: {v}");
}
