//! Async function calls at least once (issue 14): `POST /async-function/NAME` is persisted
//! before its 202, survives a `kill -9` of the gateway, is delivered to `X-Callback-Url`
//! (loopback or `--allow-callback-hosts` only), and after its attempts is dead and listed by
//! `GET /system/async/NAME`. And the image a deployed function pins: gc keeps it whatever
//! its names; the zygote spare of a function in use, gone at scale to zero. Root, real containers; every server here is on 127.0.0.1.

use berth_tests::functions::{callbacks, FnEnv};
use berth_tests::*;
use std::time::Duration;

/// `GET /system/async/NAME` as JSON.
fn calls(e: &FnEnv, name: &str) -> serde_json::Value {
    let (code, _, body) = e.call("GET", &format!("/system/async/{name}"), b"", &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON list of calls")
}

fn metrics(e: &FnEnv) -> String {
    e.call("GET", "/metrics", b"", &[]).2
}

#[test]
fn an_async_call_in_flight_when_the_gateway_is_killed_runs_after_the_restart() {
    let mut e = FnEnv::new("async-crash");
    e.deploy(&["echo", "--image", "fn-echo", "--mode", "stdio"]);
    e.serve(&[]);
    let (port, rx) = callbacks(Duration::from_secs(90));
    let cb = format!("http://127.0.0.1:{port}/done");
    let (code, headers, body) = e.call(
        "POST",
        "/async-function/echo/p?sleep=3",
        b"payload",
        &[("X-Callback-Url", cb.as_str()), ("X-Extra", "kept")],
    );
    assert_eq!(code, 202, "{body}");
    let id = headers.get("x-call-id").cloned().expect("X-Call-Id");
    // The worker took it (the handler sleeps 3 s): kill the gateway mid-call.
    let inflight = poll(Duration::from_secs(10), || {
        let v = calls(&e, "echo");
        (v[0]["state"] == "inflight").then_some(v)
    });
    assert!(
        inflight.is_some(),
        "the call never went in flight: {}\n{}",
        calls(&e, "echo"),
        e.serve_log()
    );
    assert!(
        metrics(&e).contains("berth_function_async_calls{function=\"echo\",state=\"inflight\"} 1"),
        "{}",
        metrics(&e)
    );
    e.kill_serve();
    assert!(
        rx.recv_timeout(Duration::from_secs(4)).is_err(),
        "a callback came from a gateway killed mid-call"
    );
    e.serve(&[]);
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no callback after the restart\n{}", e.serve_log()));
    assert!(head.starts_with("post /done "), "{head}");
    assert!(head.contains(&format!("x-call-id: {id}")), "{head}");
    assert!(head.contains("x-function-status: 200"), "{head}");
    assert_eq!(body, "slept\n");
    // Delivered: the queue forgets it (row and body file).
    let empty = poll(Duration::from_secs(5), || {
        (calls(&e, "echo") == serde_json::json!([])).then_some(())
    });
    assert!(empty.is_some(), "{}", calls(&e, "echo"));
    let left: Vec<_> = std::fs::read_dir(e.s.dir.join("root/functions/async"))
        .map(|rd| rd.flatten().map(|d| d.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_callback_that_never_answers_makes_the_call_dead_and_callbacks_are_loopback_only() {
    let mut e = FnEnv::new("async-dead");
    e.deploy(&["echo", "--image", "fn-echo", "--mode", "stdio"]);
    e.serve(&[
        "--async-attempts",
        "2",
        "--allow-callback-hosts",
        "localhost",
    ]);

    // SSRF guard: not loopback and not listed.
    for url in ["http://10.1.2.3:80/x", "http://example.com/x"] {
        let (code, _, body) = e.call(
            "POST",
            "/async-function/echo",
            b"",
            &[("X-Callback-Url", url)],
        );
        assert_eq!(code, 400, "{url}: {body}");
        assert!(
            body.contains("not a loopback address") && body.contains("--allow-callback-hosts"),
            "{body}"
        );
    }
    let (code, _, body) = e.call(
        "POST",
        "/async-function/echo",
        b"",
        &[("X-Callback-Url", "ftp://127.0.0.1/")],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("http://"), "{body}");
    assert_eq!(e.post("/async-function/ghost", "").0, 404);
    assert_eq!(e.call("GET", "/system/async/ghost", b"", &[]).0, 404);

    // A listed name is allowed (it resolves to this machine).
    let (port, rx) = callbacks(Duration::from_secs(60));
    let cb = format!("http://localhost:{port}/ok");
    let (code, _, body) = e.call(
        "POST",
        "/async-function/echo",
        b"to a name",
        &[("X-Callback-Url", cb.as_str())],
    );
    assert_eq!(code, 202, "{body}");
    let (_, got) = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no callback to localhost\n{}", e.serve_log()));
    assert!(got.contains("body=to a name"), "{got}");

    // Nobody listens on this port: two attempts, then dead.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cb = format!("http://127.0.0.1:{closed}/");
    let (code, headers, body) = e.call(
        "POST",
        "/async-function/echo",
        b"",
        &[("X-Callback-Url", cb.as_str())],
    );
    assert_eq!(code, 202, "{body}");
    let id = headers.get("x-call-id").cloned().expect("X-Call-Id");
    let dead = poll(Duration::from_secs(20), || {
        let v = calls(&e, "echo");
        (v[0]["state"] == "dead").then_some(v)
    });
    let v = dead.unwrap_or_else(|| panic!("never dead: {}\n{}", calls(&e, "echo"), e.serve_log()));
    assert_eq!(v[0]["id"], id.as_str(), "{v}");
    assert_eq!(v[0]["attempts"], 2, "{v}");
    assert_eq!(v[0]["result_status"], 200, "{v}");
    assert!(
        v[0]["last_error"]
            .as_str()
            .is_some_and(|m| m.contains("callback") && m.contains(&closed.to_string())),
        "{v}"
    );
    assert!(
        metrics(&e).contains("berth_function_async_calls{function=\"echo\",state=\"dead\"} 1"),
        "{}",
        metrics(&e)
    );
}

#[test]
fn a_deployed_function_keeps_its_image_through_a_retag_and_prune() {
    let mut e = FnEnv::new("pin");
    e.deploy(&["echo", "--image", "fn-echo", "--mode", "stdio"]);
    let v: serde_json::Value =
        serde_json::from_str(&e.berth(&["fn", "inspect", "echo"]).stdout).expect("JSON");
    let manifest = v[0]["image_id"].as_str().expect("image_id").to_string();
    // The name now points at another image: nothing names the function's any more.
    e.berth(&["tag", "busybox", "fn-echo"]).ok();
    let prune = e.berth(&["image", "prune"]);
    prune.ok();
    assert!(!prune.stdout.contains(&manifest), "{prune}");
    e.serve(&[]);
    let (code, body) = e.post("/function/echo?sleep=0", "");
    assert_eq!(code, 200, "{body}\n{}", e.serve_log());
    assert_eq!(body, "slept\n");
    // Removed, the function pins nothing: once its pool is gone a prune takes the image.
    e.berth(&["fn", "rm", "echo"]).ok();
    let gone = poll(Duration::from_secs(15), || {
        let p = e.berth(&["image", "prune"]);
        p.stdout.contains(&manifest).then_some(())
    });
    assert!(
        gone.is_some(),
        "the image of a removed function stayed pinned"
    );
}

#[test]
fn a_function_in_use_starts_its_next_instance_from_a_parked_zygote_removed_at_scale_to_zero() {
    let mut e = FnEnv::new("zygote");
    e.deploy(&[
        "z",
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--concurrency",
        "1",
        "--idle-ttl",
        "2s",
    ]);
    e.serve(&[]);
    assert_eq!(e.post("/function/z", "one").0, 200);
    // The spare of a function with instances has a process: its container is created.
    let needle = format!("/berth-fn/fn-z-{}-", e.serve_pid());
    let zygotes = || -> Vec<String> {
        let started = e.started_cgroups("z");
        functions::instance_cgroups(&needle)
            .into_iter()
            .filter(|c| !started.contains(c))
            .collect()
    };
    let parked = poll(Duration::from_secs(10), || {
        let z = zygotes();
        (z.len() == 1).then_some(z)
    })
    .unwrap_or_else(|| panic!("no zygote: {:?}\n{}", zygotes(), e.serve_log()));
    assert_eq!(e.started_cgroups("z").len(), 1);
    // Its process exists before the pool holds it as the spare: wait for the gauge.
    poll(Duration::from_secs(10), || {
        (e.metric("berth_function_spare_ready{function=\"z\"}") == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("the zygote is never the spare\n{}", e.serve_log()));
    // Two calls at once at --concurrency 1: the second instance is the zygote, started.
    std::thread::scope(|sc| {
        let a = sc.spawn(|| e.post("/function/z?sleep=1", ""));
        let b = sc.spawn(|| e.post("/function/z?sleep=1", ""));
        for h in [a, b] {
            let (code, body) = h.join().expect("request thread");
            assert_eq!((code, body.as_str()), (200, "slept\n"));
        }
    });
    let started = e.started_cgroups("z");
    assert!(
        started.contains(&parked[0]),
        "the zygote {parked:?} was not started: {started:?}"
    );
    assert_eq!(
        e.metric("berth_function_cold_starts_total{function=\"z\"}"),
        Some(2.0)
    );
    // Scaled to zero: no process of the function is left, a zygote's included.
    e.until_instances("z", 0, Duration::from_secs(10));
    let gone = poll(Duration::from_secs(5), || {
        e.instance_pids("z").is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "processes left after scale to zero: {:?}",
        functions::instance_cgroups(&needle)
    );
}
