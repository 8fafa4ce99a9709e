//! Functions end to end (issue 14): `berth fn` and the gateway of `berth serve --listen`
//! over HTTP on 127.0.0.1, with function images built by `berth build` from busybox: a
//! shell stdio function (the OpenFaaS classic watchdog contract through `berth-agent --fn`)
//! and a busybox `httpd` http function (reached inside the instance's network namespace).
//! Root, real containers.

use berth_tests::functions::{callbacks, FnEnv};
use berth_tests::*;
use std::time::{Duration, Instant};

#[test]
fn deploy_ls_inspect_scale_rm_and_their_bad_input() {
    let e = FnEnv::new("cli");
    e.berth(&["fn", "deploy", "ghost", "--image", "no-such-image"])
        .failed_mentioning(&["no-such-image", "not in the store"]);
    e.berth(&["fn", "deploy", "Bad/Name", "--image", "fn-echo"])
        .failed_mentioning(&["Bad/Name", "function name"]);
    e.berth(&[
        "fn", "deploy", "lim", "--image", "fn-echo", "--min", "3", "--max", "2",
    ])
    .failed_mentioning(&["--min 3", "--max 2"]);
    e.berth(&[
        "fn",
        "deploy",
        "lim",
        "--image",
        "fn-echo",
        "--timeout",
        "soon",
    ])
    .failed_mentioning(&["--timeout", "soon"]);
    e.berth(&[
        "fn", "deploy", "lim", "--image", "fn-echo", "--mode", "grpc",
    ])
    .failed_mentioning(&["--mode", "grpc"]);

    e.deploy(&[
        "echo", "--image", "fn-echo", "--mode", "stdio", "--env", "A=1", "--label", "team=x",
    ]);
    e.deploy(&["web", "--image", "fn-web", "--max", "2", "--timeout", "5s"]);
    let ls = e.berth(&["fn", "ls"]);
    ls.ok();
    assert!(
        ls.stdout.contains("echo")
            && ls.stdout.contains("fn-web")
            && ls.stdout.contains("http:8080"),
        "{ls}"
    );
    let q = e.berth(&["fn", "ls", "-q"]);
    assert_eq!(q.stdout.lines().collect::<Vec<_>>(), ["echo", "web"], "{q}");
    let out = e.berth(&["fn", "inspect", "echo"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect prints JSON");
    assert_eq!(v[0]["mode"], "stdio");
    assert_eq!(v[0]["env"][0], "A=1");
    assert!(
        v[0]["image_id"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{v}"
    );

    e.berth(&["fn", "scale", "web", "--min", "1", "--max", "3"])
        .ok();
    let v: serde_json::Value =
        serde_json::from_str(&e.berth(&["fn", "inspect", "web"]).stdout).expect("JSON");
    assert_eq!(
        (v[0]["min"].as_u64(), v[0]["max"].as_u64()),
        (Some(1), Some(3))
    );
    e.berth(&["fn", "scale", "web", "--min", "5"])
        .failed_mentioning(&["--min 5", "--max 3"]);
    e.berth(&["fn", "scale", "nobody", "--max", "1"])
        .failed_mentioning(&["no such function: nobody"]);

    e.berth(&["fn", "rm", "echo"]).ok();
    e.berth(&["fn", "rm", "echo"])
        .failed_mentioning(&["no such function: echo"]);
    e.berth(&["fn", "inspect", "echo"])
        .failed_mentioning(&["no such function: echo"]);
    assert_eq!(e.berth(&["fn", "ls", "-q"]).stdout.trim(), "web");
    // A deployed function pins its image; a removed one does not.
    e.berth(&["rmi", "fn-web"])
        .failed_mentioning(&["in use by function web", "berth fn rm"]);
    e.berth(&["rmi", "fn-echo"]).ok();
}

#[test]
fn stdio_function_gets_the_watchdog_contract_through_the_gateway() {
    let mut e = FnEnv::new("stdio");
    e.deploy(&["echo", "--image", "fn-echo", "--mode", "stdio"]);
    e.serve(&["--body-limit", "1k"]);

    let (code, headers, body) = e.call(
        "POST",
        "/function/echo/some/path?a=1&b=2",
        b"hello body",
        &[("X-Test", "yes"), ("Content-Type", "text/x-test")],
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("method=POST path=/some/path query=a=1&b=2 x=yes"),
        "{body}"
    );
    assert!(body.contains("body=hello body"), "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/x-test")
    );
    let (code, _, body) = e.call("GET", "/function/echo", b"", &[]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("method=GET path=/ query= "), "{body}");

    // A non-zero exit is a 500; its stderr is in the function's log.
    let (code, body) = e.post("/function/echo?exit=3", "");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("exited with code 3"), "{body}");
    let logs = e.berth(&["fn", "logs", "echo"]);
    assert!(logs.stdout.contains("handler failing on purpose"), "{logs}");

    // Unknown function, a body over the limit, the health check.
    let (code, body) = e.post("/function/nosuch", "");
    assert_eq!(code, 404);
    assert!(body.contains("no such function: nosuch"), "{body}");
    let (code, body) = e.post("/function/echo", &"x".repeat(2000));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("1024 bytes"), "{body}");
    assert_eq!(e.call("GET", "/healthz", b"", &[]).0, 200);

    // `fn invoke` goes through the gateway.
    let gw = e.url("");
    let out = e.berth(&[
        "fn",
        "invoke",
        "echo",
        "--gateway",
        &gw,
        "--data",
        "cli body",
        "--header",
        "X-Test: cli",
        "--path",
        "/p?q=9",
    ]);
    out.ok();
    assert!(out.stdout.contains("path=/p query=q=9 x=cli"), "{out}");
    assert!(out.stdout.contains("body=cli body"), "{out}");
    e.berth(&[
        "fn",
        "invoke",
        "echo",
        "--gateway",
        &gw,
        "--path",
        "?exit=4",
    ])
    .failed_mentioning(&["500", "exited with code 4"]);

    // Metrics count what happened.
    assert!(
        e.metric("berth_function_invocations_total{function=\"echo\",code=\"200\"}") >= Some(3.0)
    );
    assert_eq!(
        e.metric("berth_function_invocations_total{function=\"echo\",code=\"500\"}"),
        Some(2.0)
    );
    assert!(e.metric("berth_function_cold_starts_total{function=\"echo\"}") >= Some(1.0));
}

#[test]
fn http_function_gets_method_path_query_headers_and_body() {
    let mut e = FnEnv::new("http");
    e.deploy(&["web", "--image", "fn-web"]);
    e.deploy(&["deaf", "--image", "fn-web", "--port", "9999"]);
    e.serve(&["--start-timeout", "2s"]);
    let (code, _, body) = e.call("GET", "/function/web/", b"", &[]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "hello from httpd\n");
    let (code, headers, body) = e.call(
        "PUT",
        "/function/web/cgi-bin/echo?k=v",
        b"payload",
        &[("X-Test", "hdr")],
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("method=PUT query=k=v x=hdr"), "{body}");
    assert!(body.contains("body=payload"), "{body}");
    assert_eq!(headers.get("x-from").map(String::as_str), Some("cgi"));
    let (code, _, _) = e.call("GET", "/function/web/missing.html", b"", &[]);
    assert_eq!(code, 404);
    // One instance served all of it (kept warm, reached again).
    e.until_instances("web", 1, Duration::from_secs(2));
    assert_eq!(
        e.metric("berth_function_cold_starts_total{function=\"web\"}"),
        Some(1.0)
    );

    // A function whose server never listens on its port: a clear error after the start
    // timeout, and no instance is left.
    let t = Instant::now();
    let (code, body) = e.post("/function/deaf", "");
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("nothing listens on port 9999"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    e.until_instances("deaf", 0, Duration::from_secs(5));
}

#[test]
fn idle_instances_scale_to_zero_and_min_keeps_them_warm() {
    let mut e = FnEnv::new("idle");
    e.deploy(&[
        "brief",
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--idle-ttl",
        "1s",
    ]);
    e.deploy(&[
        "warm",
        "--image",
        "fn-web",
        "--min",
        "1",
        "--idle-ttl",
        "1s",
    ]);
    e.serve(&[]);
    // --min 1: an instance without any request, and it stays past the idle TTL.
    e.until_instances("warm", 1, Duration::from_secs(10));
    assert_eq!(e.post("/function/brief", "x").0, 200);
    assert!(!e.instance_pids("brief").is_empty());
    // Past the TTL: no process of it left, nothing mounted, the gauges say zero.
    e.until_instances("brief", 0, Duration::from_secs(6));
    let left = pids_with_cmdline("berth-agent --fn");
    assert!(
        left.iter()
            .all(|(p, _)| !e.instance_pids("brief").contains(p)),
        "{left:?}"
    );
    assert!(
        host_mounts()
            .iter()
            .all(|m| !m.mount_point.contains("/functions/fn-brief-")),
        "an instance's root is mounted on the host"
    );
    assert_eq!(
        e.metric("berth_function_instances{function=\"brief\"}"),
        Some(0.0)
    );
    std::thread::sleep(Duration::from_millis(1500));
    e.until_instances("warm", 1, Duration::from_secs(1));
    // The next request starts a new instance (a second cold start).
    assert_eq!(e.post("/function/brief", "x").0, 200);
    assert_eq!(
        e.metric("berth_function_cold_starts_total{function=\"brief\"}"),
        Some(2.0)
    );
    // SIGTERM: every instance stops with the gateway.
    let warm = e.instance_pids("warm");
    assert!(!warm.is_empty());
    e.stop_serve();
    for p in warm {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "instance process {p} outlived serve"
        );
    }
    // Nor any instance directory (spares included).
    let dirs: Vec<String> = std::fs::read_dir(e.s.dir.join("run/functions"))
        .map(|rd| {
            rd.flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("fn-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(dirs.is_empty(), "left after SIGTERM: {dirs:?}");
}

#[test]
fn a_secret_written_by_one_instance_is_seen_by_no_other() {
    let mut e = FnEnv::new("secret");
    let common = [
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--max",
        "1",
        "--idle-ttl",
        "1s",
    ];
    let mut a = vec!["vault"];
    a.extend_from_slice(&common);
    e.deploy(&a);
    let mut b = vec!["other"];
    b.extend_from_slice(&common);
    e.deploy(&b);
    e.serve(&[]);
    assert_eq!(
        e.post("/function/vault?write=s3cr3t", ""),
        (200, "stored\n".into())
    );
    // The same warm instance sees it (the probe works)...
    let (_, seen) = e.post("/function/vault?read", "");
    assert_eq!(seen.trim(), "tmp=s3cr3t root=s3cr3t env=none");
    // ...another function never does...
    let (_, other) = e.post("/function/other?read", "");
    assert_eq!(other.trim(), "tmp=none root=none env=none");
    // ...nor the next instance of the same function.
    e.until_instances("vault", 0, Duration::from_secs(6));
    let (_, next) = e.post("/function/vault?read", "");
    assert_eq!(next.trim(), "tmp=none root=none env=none");
}

#[test]
fn queue_full_is_429_timeout_is_504_and_a_dead_instance_is_502_then_replaced() {
    let mut e = FnEnv::new("limits");
    e.deploy(&[
        "slow",
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--max",
        "1",
        "--concurrency",
        "1",
        "--queue",
        "0",
        "--timeout",
        "2s",
    ]);
    e.serve(&[]);
    assert_eq!(e.post("/function/slow", "warm").0, 200);
    std::thread::scope(|s| {
        let busy = s.spawn(|| e.post("/function/slow?sleep=1", ""));
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let (code, body) = e.post("/function/slow", "");
        assert_eq!(code, 429, "{body}");
        assert!(body.contains("queue (0) is full"), "{body}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "429 took {:?}",
            t.elapsed()
        );
        assert_eq!(busy.join().expect("join"), (200, "slept\n".into()));
    });
    let t = Instant::now();
    let (code, body) = e.post("/function/slow?sleep=10", "");
    assert_eq!(code, 504, "{body}");
    assert!(body.contains("timeout of 2s (--timeout)"), "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "504 took {:?}",
        t.elapsed()
    );

    // The instance is killed mid-request: 502, and the next request gets a new instance.
    std::thread::sleep(Duration::from_millis(500));
    e.until_instances("slow", 1, Duration::from_secs(3));
    let victims = e.instance_pids("slow");
    std::thread::scope(|s| {
        let call = s.spawn(|| e.post("/function/slow?sleep=1.5", ""));
        std::thread::sleep(Duration::from_millis(400));
        for p in &victims {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let (code, body) = call.join().expect("join");
        assert_eq!(code, 502, "{body}");
        assert!(body.contains("failed during the request"), "{body}");
    });
    let (code, body) = e.post("/function/slow", "again");
    assert_eq!(code, 200, "{body}");
    assert!(e.instance_pids("slow").iter().all(|p| !victims.contains(p)));
}

#[test]
fn after_kill_9_of_serve_a_restart_serves_again_and_leaves_no_orphan() {
    let mut e = FnEnv::new("crash");
    e.deploy(&["echo", "--image", "fn-echo", "--mode", "stdio"]);
    e.serve(&[]);
    assert_eq!(e.post("/function/echo", "one").0, 200);
    let orphans = e.instance_pids("echo");
    assert!(!orphans.is_empty());
    let old = format!("fn-echo-{}-", e.serve_pid());
    e.kill_serve();
    e.serve(&[]);
    // The restarted gateway removed the killed one's instance and serves the function.
    let gone = poll(Duration::from_secs(5), || {
        orphans
            .iter()
            .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "instance processes {orphans:?} survived the restart"
    );
    let (code, body) = e.post("/function/echo", "two");
    assert_eq!(code, 200, "{body}");
    let dirs: Vec<String> = std::fs::read_dir(e.s.dir.join("run/functions"))
        .map(|rd| {
            rd.flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    // Nor any cgroup of the killed gateway's instances.
    for mp in cgroup_mount_points() {
        let left: Vec<String> = std::fs::read_dir(mp.join("berth-fn"))
            .map(|rd| {
                rd.flatten()
                    .map(|d| d.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&old))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "cgroups left in {}: {left:?}",
            mp.display()
        );
    }
    // The killed gateway's instance directories are gone (this one has its instance and
    // maybe a spare).
    assert!(dirs.iter().all(|d| !d.starts_with(&old)), "{dirs:?}");
    assert!(dirs.iter().any(|d| d.starts_with("fn-echo-")), "{dirs:?}");
}

#[test]
fn openfaas_system_functions_lists_deploys_and_removes() {
    let mut e = FnEnv::new("openfaas");
    e.serve(&[]);
    let deploy = r#"{"service":"of-echo","image":"fn-echo","envProcess":"/handler.sh","envVars":{"SECRET":"from-env"},"labels":{"team":"x"}}"#;
    let (code, _, body) = e.call("POST", "/system/functions", deploy.as_bytes(), &[]);
    assert_eq!(code, 202, "{body}");
    let (code, _, list) = e.call("GET", "/system/functions", b"", &[]);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&list).expect("JSON list");
    assert_eq!(v[0]["name"], "of-echo", "{v}");
    assert_eq!(v[0]["labels"]["team"], "x", "{v}");
    assert_eq!(v[0]["envVars"]["SECRET"], "from-env", "{v}");
    // envProcess makes it a stdio function; its environment reaches the handler.
    let (code, body) = e.post("/function/of-echo?read", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("env=from-env"), "{body}");
    assert_eq!(e.berth(&["fn", "ls", "-q"]).stdout.trim(), "of-echo");

    let (code, _, body) = e.call(
        "POST",
        "/system/functions",
        br#"{"service":"x","image":"nope"}"#,
        &[],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"nope\" is not in the store"), "{body}");
    let (code, _, body) = e.call("POST", "/system/functions", b"{not json", &[]);
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = e.call(
        "DELETE",
        "/system/functions",
        br#"{"functionName":"ghost"}"#,
        &[],
    );
    assert_eq!(code, 404, "{body}");
    let (code, _, body) = e.call(
        "DELETE",
        "/system/functions",
        br#"{"functionName":"of-echo"}"#,
        &[],
    );
    assert_eq!(code, 202, "{body}");
    let (code, body) = e.post("/function/of-echo", "");
    assert_eq!(code, 404, "{body}");
    e.until_instances("of-echo", 0, Duration::from_secs(5));
    assert_eq!(e.call("GET", "/system/functions", b"", &[]).2.trim(), "[]");
}

#[test]
fn async_invocation_answers_202_and_posts_the_result_to_the_callback() {
    let mut e = FnEnv::new("async");
    e.deploy(&["echo", "--image", "fn-echo", "--mode", "stdio"]);
    e.serve(&[]);
    let (port, rx) = callbacks(Duration::from_secs(30));
    let cb = format!("http://127.0.0.1:{port}/done?x=1");
    let t = Instant::now();
    let (code, headers, body) = e.call(
        "POST",
        "/async-function/echo/p?sleep=1",
        b"",
        &[("X-Callback-Url", cb.as_str())],
    );
    assert_eq!(code, 202, "{body}");
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "202 took {:?}",
        t.elapsed()
    );
    let id = headers.get("x-call-id").cloned().expect("X-Call-Id");
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no callback\n{}", e.serve_log()));
    assert!(head.starts_with("post /done?x=1 "), "{head}");
    assert!(head.contains(&format!("x-call-id: {id}")), "{head}");
    assert!(head.contains("x-function-name: echo"), "{head}");
    assert!(head.contains("x-function-status: 200"), "{head}");
    assert_eq!(body, "slept\n");
    // Bad input: an unknown function, a callback that is not http://.
    assert_eq!(e.post("/async-function/ghost", "").0, 404);
    let (code, _, body) = e.call(
        "POST",
        "/async-function/echo",
        b"",
        &[("X-Callback-Url", "ftp://x/")],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("X-Callback-Url"), "{body}");
}

#[test]
fn a_burst_far_above_capacity_gets_200_or_429_for_every_request() {
    let mut e = FnEnv::new("burst");
    e.deploy(&[
        "many",
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--max",
        "2",
        "--concurrency",
        "2",
        "--queue",
        "10",
        "--timeout",
        "30s",
    ]);
    e.serve(&[]);
    let codes: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..60)
            .map(|_| s.spawn(|| e.post("/function/many?sleep=0.3", "").0))
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    let ok = codes.iter().filter(|c| **c == 200).count();
    let busy = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(ok + busy, 60, "{codes:?}");
    // At least the capacity (2 × 2) plus the queue (10) got through.
    assert!(ok >= 14, "{ok} answered 200: {codes:?}");
    assert!(busy >= 1, "{codes:?}");
    assert!(e.metric("berth_function_instances{function=\"many\"}") <= Some(2.0));
}

#[test]
fn a_schedule_invokes_the_function_without_requests() {
    let mut e = FnEnv::new("cron");
    e.berth(&[
        "fn",
        "deploy",
        "x",
        "--image",
        "fn-echo",
        "--schedule",
        "61 * * * *",
    ])
    .failed_mentioning(&["--schedule", "minute"]);
    e.berth(&[
        "fn",
        "deploy",
        "x",
        "--image",
        "fn-echo",
        "--schedule",
        "@every 5ms",
    ])
    .failed_mentioning(&["--schedule", "once a second"]);
    e.deploy(&[
        "tick",
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--schedule",
        "@every 1s",
    ]);
    e.deploy(&[
        "idle",
        "--image",
        "fn-echo",
        "--mode",
        "stdio",
        "--schedule",
        "0 0 1 1 *",
    ]);
    e.serve(&[]);
    let series = "berth_function_invocations_total{function=\"tick\",code=\"200\"}";
    let got = poll(Duration::from_secs(10), || {
        (e.metric(series) >= Some(2.0)).then_some(())
    });
    assert!(
        got.is_some(),
        "no scheduled calls: {:?}\n{}",
        e.metric(series),
        e.serve_log()
    );
    // A schedule that is not due now runs nothing.
    assert_eq!(
        e.metric("berth_function_invocations_total{function=\"idle\",code=\"200\"}"),
        None
    );
    // Removing the function stops its schedule.
    e.berth(&["fn", "rm", "tick"]).ok();
    std::thread::sleep(Duration::from_millis(1500));
    let after = e.metric(series);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(e.metric(series), after);
}

#[test]
fn a_stdio_function_of_a_non_root_image_runs_as_its_user() {
    let mut e = FnEnv::new("user");
    let ctx = e.s.dir.join("ctx-nobody");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM fn-echo\nUSER 65534:65534\n",
    )
    .expect("write");
    e.berth(&["build", "-t", "fn-nobody", &ctx.to_string_lossy()])
        .ok();
    e.deploy(&[
        "nobody",
        "--image",
        "fn-nobody",
        "--mode",
        "stdio",
        "--env",
        "fprocess=id -u",
    ]);
    e.serve(&[]);
    let (code, body) = e.post("/function/nobody", "");
    assert_eq!(code, 200, "{body}\n{}", e.serve_log());
    assert_eq!(body.trim(), "65534");
}
