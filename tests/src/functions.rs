//! Helpers of the function tests (tests/functions.rs): a store with busybox and two
//! function images built by `berth build` (a shell stdio function and a busybox `httpd`
//! http function), a `berth serve --listen 127.0.0.1:PORT` gateway stopped (SIGTERM, then
//! SIGKILL) when the helper is dropped, HTTP calls and the instances' processes.

use crate::images::*;
use crate::oci::free_port;
use crate::*;
use std::collections::HashMap;
use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The stdio function's handler: echoes the watchdog variables and the body; `?exit=N`
/// exits N after writing to stderr; `?sleep=N` sleeps; `?write=S` stores S in /tmp and in
/// the root; `?read` prints what is stored (or `none`).
const HANDLER: &str = r#"#!/bin/sh
case "$Http_Query" in
  exit=*) echo "handler failing on purpose" >&2; exit "${Http_Query#exit=}" ;;
  sleep=*) sleep "${Http_Query#sleep=}"; echo slept; exit 0 ;;
  write=*) v="${Http_Query#write=}"; echo "$v" > /tmp/secret; echo "$v" > /secret; echo stored; exit 0 ;;
  read) echo "tmp=$(cat /tmp/secret 2>/dev/null || echo none) root=$(cat /secret 2>/dev/null || echo none) env=${SECRET:-none}"; exit 0 ;;
esac
echo "method=$Http_Method path=$Http_Path query=$Http_Query x=$Http_X_Test"
printf 'body='
cat
echo
"#;

/// The http function's CGI: the request as httpd gives it.
const CGI: &str = r#"#!/bin/sh
echo "Content-Type: text/plain"
echo "X-From: cgi"
echo
echo "method=$REQUEST_METHOD query=$QUERY_STRING x=$HTTP_X_TEST"
printf 'body='
cat
echo
"#;

/// A store with the function images, and (once [`FnEnv::serve`] ran) a gateway.
pub struct FnEnv {
    pub s: Store,
    pub port: u16,
    serve: Option<Child>,
}

impl FnEnv {
    /// A store with `busybox`, `fn-echo` (stdio: /handler.sh) and `fn-web` (http: httpd on
    /// 8080 serving /www with /www/cgi-bin/echo).
    pub fn new(name: &str) -> FnEnv {
        let s = Store::new(&format!("fn-{name}"));
        s.import_busybox("busybox");
        let ctx = s.dir.join("ctx-echo");
        fs::create_dir_all(&ctx).expect("mkdir ctx");
        write_exec(&ctx.join("handler.sh"), HANDLER);
        fs::write(
            ctx.join("Containerfile"),
            "FROM busybox\nCOPY handler.sh /handler.sh\nCMD [\"/handler.sh\"]\n",
        )
        .expect("write Containerfile");
        s.berth(&["build", "-t", "fn-echo", &ctx.to_string_lossy()])
            .ok();
        let ctx = s.dir.join("ctx-web");
        fs::create_dir_all(ctx.join("www/cgi-bin")).expect("mkdir ctx");
        fs::write(ctx.join("www/index.html"), "hello from httpd\n").expect("write index");
        write_exec(&ctx.join("www/cgi-bin/echo"), CGI);
        fs::write(
            ctx.join("Containerfile"),
            "FROM busybox\nCOPY www /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        )
        .expect("write Containerfile");
        s.berth(&["build", "-t", "fn-web", &ctx.to_string_lossy()])
            .ok();
        FnEnv {
            s,
            port: 0,
            serve: None,
        }
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.s.berth(args)
    }

    /// `fn deploy ARGS…`, which must succeed.
    pub fn deploy(&self, args: &[&str]) {
        let mut a = vec!["fn", "deploy"];
        a.extend_from_slice(args);
        self.berth(&a).ok();
    }

    /// Starts `berth serve --listen 127.0.0.1:PORT EXTRA…` with the static agent and waits
    /// for `/healthz`.
    pub fn serve(&mut self, extra: &[&str]) {
        self.port = free_port();
        let listen = format!("127.0.0.1:{}", self.port);
        let mut args = vec!["serve", "--listen", listen.as_str()];
        args.extend_from_slice(extra);
        let mut cmd = self.s.command(&args);
        cmd.env("BERTH_AGENT", crate::vm::agent_bin())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(self.s.dir.join("serve.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        self.serve = Some(cmd.spawn().expect("spawn berth serve"));
        let up = poll(Duration::from_secs(20), || {
            self.try_get("/healthz")
                .filter(|(code, _, _)| *code == 200)
                .map(|_| ())
        });
        assert!(
            up.is_some(),
            "the gateway never answered /healthz:\n{}",
            self.serve_log()
        );
    }

    pub fn serve_pid(&self) -> i32 {
        self.serve.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn serve_log(&self) -> String {
        fs::read_to_string(self.s.dir.join("serve.log")).unwrap_or_default()
    }

    /// SIGTERM to serve, then waits for it (SIGKILL after 20 s).
    pub fn stop_serve(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL to serve (nothing cleaned up by it).
    pub fn kill_serve(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn try_get(&self, path: &str) -> Option<(u16, HashMap<String, String>, String)> {
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let r = c.get(self.url(path)).send().ok()?;
        Some(response(r))
    }

    /// `method path` with `body` and `headers`: status, headers (lower-case names), body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>, String) {
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = c.request(m, self.url(path)).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.serve_log()));
        response(r)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        let (code, _, b) = self.call("POST", path, body.as_bytes(), &[]);
        (code, b)
    }

    /// The value of the metric line `name{labels}`, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, _, text) = self.call("GET", "/metrics", b"", &[]);
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    fn needle(&self, function: &str) -> String {
        format!("/berth-fn/fn-{function}-{}-", self.serve_pid())
    }

    /// Processes of this gateway's instances of `function` (their cgroup is
    /// `/berth-fn/fn-<function>-<serve pid>-<n>`).
    pub fn instance_pids(&self, function: &str) -> Vec<i32> {
        instance_pids(&self.needle(function))
    }

    /// The cgroups of `function`'s started instances: a zygote (a spare whose container is
    /// created, its init parked on the runtime's exec FIFO) is not an instance yet.
    pub fn started_cgroups(&self, function: &str) -> Vec<String> {
        let state = self.s.dir.join("run/runtime");
        instance_cgroups(&self.needle(function))
            .into_iter()
            .filter(|cg| {
                let id = cg.rsplit('/').next().unwrap_or("");
                !state.join(id).join("exec.fifo").exists()
            })
            .collect()
    }

    /// Polls until `function` has `n` started instances (distinct cgroups).
    #[track_caller]
    pub fn until_instances(&self, function: &str, n: usize, limit: Duration) {
        let got = poll(limit, || {
            (self.started_cgroups(function).len() == n).then_some(())
        });
        assert!(
            got.is_some(),
            "function {function}: expected {n} instances, found cgroups {:?}\n{}",
            instance_cgroups(&self.needle(function)),
            self.serve_log()
        );
    }
}

impl Drop for FnEnv {
    fn drop(&mut self) {
        self.stop_serve();
    }
}

fn response(r: reqwest::blocking::Response) -> (u16, HashMap<String, String>, String) {
    let code = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.text().unwrap_or_default();
    (code, headers, body)
}

fn write_exec(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Every process whose cgroup path (any hierarchy) contains `needle`, with that path.
fn procs_in_cgroups(needle: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cg) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        if let Some(line) = cg.lines().find(|l| l.contains(needle)) {
            let path = line.splitn(3, ':').nth(2).unwrap_or("").to_string();
            out.push((pid, path));
        }
    }
    out
}

pub fn instance_pids(needle: &str) -> Vec<i32> {
    procs_in_cgroups(needle)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// The distinct instance cgroups with a process in them.
pub fn instance_cgroups(needle: &str) -> Vec<String> {
    let mut v: Vec<String> = procs_in_cgroups(needle)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A callback server on 127.0.0.1 (a thread, stops after `limit`): every request's head
/// (lower-cased) and body, answered 200.
pub fn callbacks(limit: Duration) -> (u16, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    l.set_nonblocking(true).expect("nonblocking");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < limit {
            let Ok((s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s);
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&lower);
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx
                .send((head, String::from_utf8_lossy(&body).into_owned()))
                .is_err()
            {
                return;
            }
        }
    });
    (port, rx)
}
