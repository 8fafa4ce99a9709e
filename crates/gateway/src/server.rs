//! The gateway's HTTP front (hyper, HTTP/1.1): `ANY /function/NAME[/path…]`, the OpenFaaS
//! `/system/functions` list/deploy/remove, `GET /healthz`, `GET /metrics`.
//!
//! One timeout per request, the function's `--timeout`, covers queueing, a cold start and
//! the call; past it the answer is 504 naming it.

use crate::def::{check_name, Function, Mode};
use crate::instance::{Conn, Host, NetConnector};
use crate::metrics::Metrics;
use crate::pool::{Instance, Lease, Pool, Refused};
use crate::queue::Queue;
use crate::store::Store;
use crate::{Error, Result};
use agent::proto::{self, Invoke, Invoked};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod async_calls;

type Resp = Response<Full<Bytes>>;

/// The gateway: pools by function name, kept in step with `functions.db`.
pub struct Gateway {
    host: Arc<Host>,
    body_limit: usize,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    store: Mutex<Store>,
    metrics: Arc<Metrics>,
    /// The persisted async calls (crate::queue).
    queue: Mutex<Queue>,
    async_cfg: AsyncConfig,
    /// Wakes the async worker when a call was queued.
    async_wake: tokio::sync::Notify,
}

/// How async calls are delivered.
#[derive(Clone, Debug)]
pub struct AsyncConfig {
    /// Hosts (or `host:port`) besides loopback addresses that `X-Callback-Url` may name.
    pub allow_callback_hosts: Vec<String>,
    /// Attempts of a call (its run and its callback) before it is dead.
    pub max_attempts: u32,
    /// Calls run at once.
    pub workers: usize,
}

impl Default for AsyncConfig {
    fn default() -> AsyncConfig {
        AsyncConfig {
            allow_callback_hosts: Vec::new(),
            max_attempts: 5,
            workers: 16,
        }
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> Resp {
    let mut body = msg.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_resp(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The request as forwarded to an instance.
struct Forward {
    method: Method,
    /// Path below `/function/NAME` (at least `/`) and query.
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Gateway {
    /// Opens the function database and removes what a killed gateway left behind.
    pub fn new(host: Host, body_limit: usize) -> Result<Arc<Gateway>> {
        Gateway::with_async(host, body_limit, AsyncConfig::default())
    }

    /// [`Gateway::new`] with the async queue's settings; calls a dead gateway left in
    /// flight are taken back.
    pub fn with_async(
        host: Host,
        body_limit: usize,
        async_cfg: AsyncConfig,
    ) -> Result<Arc<Gateway>> {
        let store = Store::open(&host.root)?;
        let mut queue = Queue::open(&host.root)?;
        let back = queue.recover()?;
        if back > 0 {
            tracing::info!(
                calls = back,
                "async calls left in flight by an earlier gateway are queued again"
            );
        }
        let left = crate::instance::clean_leftovers(&host);
        crate::pin::drop_stale(&host.root);
        if left > 0 {
            tracing::info!(
                instances = left,
                "removed instances left by an earlier gateway"
            );
        }
        let gw = Arc::new(Gateway {
            host: Arc::new(host),
            body_limit,
            pools: Mutex::new(HashMap::new()),
            store: Mutex::new(store),
            metrics: Arc::new(Metrics::default()),
            queue: Mutex::new(queue),
            async_cfg,
            async_wake: tokio::sync::Notify::new(),
        });
        Ok(gw)
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pool>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the pools in step with the database: new functions get a pool, removed ones
    /// are retired, a redeploy that changes what an instance is (image, environment, mode,
    /// port, resources) retires the old pool; other changes (limits) apply in place.
    pub fn sync(&self) -> Result<()> {
        let defs = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .list()?;
        let mut pools = self.pools();
        let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
        pools.retain(|name, pool| {
            let keep = names.contains(name);
            if !keep {
                pool.retire();
            }
            keep
        });
        for def in defs {
            match pools.get(&def.name) {
                Some(p) => {
                    let old = p.def();
                    if same_instance(&old, &def) {
                        if old != def {
                            p.set_limits(def);
                        }
                    } else {
                        p.retire();
                        let name = def.name.clone();
                        pools.insert(
                            name,
                            Pool::new(self.host.clone(), def, self.metrics.clone()),
                        );
                    }
                }
                None => {
                    let name = def.name.clone();
                    pools.insert(
                        name,
                        Pool::new(self.host.clone(), def, self.metrics.clone()),
                    );
                }
            }
        }
        Ok(())
    }

    /// The pool of `name`, reading the database once more when it is not known.
    fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        if let Some(p) = self.pools().get(name) {
            return Some(p.clone());
        }
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "read the function database");
        }
        self.pools().get(name).cloned()
    }

    /// The periodic pass: the database every second, the pools' idle timers, `--min` and
    /// `--schedule`.
    pub async fn ticker(self: Arc<Self>) {
        let mut n: u64 = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if n.is_multiple_of(5) {
                let gw = self.clone();
                match tokio::task::spawn_blocking(move || gw.sync()).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "read the function database"),
                    Err(e) => tracing::warn!(error = %e, "sync task"),
                    Ok(Ok(())) => {}
                }
            }
            n += 1;
            let pools: Vec<Arc<Pool>> = self.pools().values().cloned().collect();
            let now = std::time::SystemTime::now();
            for p in pools {
                p.tick();
                if p.cron_due(now) {
                    let gw = self.clone();
                    tokio::spawn(async move {
                        let mut headers = HeaderMap::new();
                        headers.insert("x-trigger", HeaderValue::from_static("cron"));
                        let fwd = Forward {
                            method: Method::POST,
                            path: "/".into(),
                            query: None,
                            headers,
                            body: Bytes::new(),
                        };
                        let name = p.name.clone();
                        let r = gw.dispatch(&name, p, &fwd).await;
                        tracing::info!(function = %name, status = r.status().as_u16(), "scheduled call");
                    });
                }
            }
        }
    }

    /// Accepts connections on `listener` until `shutdown` resolves, then stops every
    /// instance (no process is left).
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "read the function database");
        }
        let ticker = tokio::spawn(self.clone().ticker());
        let worker = tokio::spawn(self.clone().async_worker());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                acc = listener.accept() => {
                    let (sock, _) = match acc {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let _ = sock.set_nodelay(true);
                    let gw = self.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let gw = gw.clone();
                            async move { Ok::<_, std::convert::Infallible>(gw.handle(req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(sock), svc)
                            .await;
                    });
                }
            }
        }
        ticker.abort();
        // Calls still running stay in flight in the database: the next gateway takes them.
        worker.abort();
        let pools: Vec<Arc<Pool>> = self.pools().drain().map(|(_, p)| p).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for p in pools {
                p.stop_all_blocking();
            }
        })
        .await;
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        match path.as_str() {
            "/healthz" => return text(StatusCode::OK, "ok"),
            "/metrics" => {
                let gauges: Vec<_> = self.pools().values().map(|p| p.gauges()).collect();
                let mut body = self.metrics.render(&gauges);
                let gw = self.clone();
                match tokio::task::spawn_blocking(move || gw.queue().depth()).await {
                    Ok(Ok(d)) => body.push_str(&crate::metrics::render_async(&d)),
                    Ok(Err(e)) => tracing::warn!(error = %e, "read the async queue"),
                    Err(e) => tracing::warn!(error = %e, "read the async queue"),
                }
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                return r;
            }
            "/system/functions" => return self.system(req).await,
            _ => {}
        }
        if let Some(name) = path.strip_prefix("/system/async/") {
            return self.async_list(name.to_string()).await;
        }
        let (rest, is_async) = match (
            path.strip_prefix("/function/"),
            path.strip_prefix("/async-function/"),
        ) {
            (Some(r), _) => (r, false),
            (None, Some(r)) => (r, true),
            (None, None) => return text(StatusCode::NOT_FOUND, format!("no route for {path}")),
        };
        let (name, sub) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let name = name.to_string();
        let sub = sub.to_string();
        self.invoke(&name, &sub, req, is_async).await
    }

    async fn invoke(
        self: Arc<Self>,
        name: &str,
        sub: &str,
        req: Request<Incoming>,
        async_call: bool,
    ) -> Resp {
        if check_name(name).is_err() {
            return text(StatusCode::NOT_FOUND, format!("no such function: {name:?}"));
        }
        let Some(pool) = self.pool(name) else {
            return text(StatusCode::NOT_FOUND, format!("no such function: {name}"));
        };
        let (parts, body) = req.into_parts();
        let too_large = || {
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body over the gateway's limit of {} bytes",
                    self.body_limit
                ),
            )
        };
        if parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.body_limit as u64)
        {
            return too_large();
        }
        let body = match Limited::new(body, self.body_limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return too_large();
                }
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("read the request body: {e}"),
                );
            }
        };
        let mut headers = parts.headers;
        let hop: Vec<HeaderName> = headers.keys().filter(|n| hop_by_hop(n)).cloned().collect();
        for h in hop {
            headers.remove(h);
        }
        if async_call {
            drop(pool);
            return self
                .enqueue(name, sub, &parts.method, parts.uri.query(), headers, body)
                .await;
        }
        let fwd = Forward {
            method: parts.method,
            path: sub.to_string(),
            query: parts.uri.query().map(str::to_string),
            headers,
            body,
        };
        self.dispatch(name, pool, &fwd).await
    }

    /// Runs one invocation (an instance from the pool, the call, one timeout) and counts it.
    async fn dispatch(&self, name: &str, mut pool: Arc<Pool>, fwd: &Forward) -> Resp {
        let t0 = Instant::now();
        let mut resp = None;
        for _ in 0..3 {
            let def = pool.def();
            let timeout = def.timeout();
            let r = tokio::time::timeout(timeout, self.call(&pool, &def, fwd)).await;
            match r {
                Ok(Err(Refused::Gone)) => match self.pool(name) {
                    Some(p) if !Arc::ptr_eq(&p, &pool) => {
                        pool = p;
                        continue;
                    }
                    _ => {
                        resp = Some(text(
                            StatusCode::NOT_FOUND,
                            format!("no such function: {name}"),
                        ));
                        break;
                    }
                },
                Ok(Err(Refused::QueueFull { queue })) => {
                    resp = Some(text(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("function {name}: every instance is busy and the queue ({queue}) is full"),
                    ));
                    break;
                }
                Ok(Err(Refused::Start(msg))) => {
                    resp = Some(text(StatusCode::BAD_GATEWAY, msg));
                    break;
                }
                Ok(Ok(r)) => {
                    resp = Some(r);
                    break;
                }
                Err(_) => {
                    resp = Some(text(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "function {name}: no response within its timeout of {} (--timeout)",
                            show_duration(timeout)
                        ),
                    ));
                    break;
                }
            }
        }
        let resp = resp.unwrap_or_else(|| {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("function {name} is being redeployed"),
            )
        });
        self.metrics
            .invocation(name, resp.status().as_u16(), t0.elapsed());
        resp
    }

    /// Acquires an instance and runs the request on it.
    async fn call(
        &self,
        pool: &Arc<Pool>,
        def: &Function,
        fwd: &Forward,
    ) -> std::result::Result<Resp, Refused> {
        let lease = pool.acquire().await?;
        let res = match &lease.inst.conn {
            Conn::Http(net) => call_http(&lease.inst, net, fwd).await,
            Conn::Stdio { socket, argv } => {
                self.call_stdio(def, &lease, socket.clone(), argv.clone(), fwd)
                    .await
            }
        };
        Ok(match res {
            Ok(r) => r,
            Err(msg) => {
                // The instance's connection broke: it is not used again.
                pool.discard(&lease.inst);
                text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "function {}: instance {} failed during the request: {msg}",
                        def.name, lease.inst.id
                    ),
                )
            }
        })
    }

    async fn call_stdio(
        &self,
        def: &Function,
        lease: &Lease,
        socket: std::path::PathBuf,
        argv: Vec<String>,
        fwd: &Forward,
    ) -> std::result::Result<Resp, String> {
        let env = watchdog_env(fwd);
        let body = fwd.body.clone();
        let timeout_ms = def.timeout_ms;
        let log = self.host.log_path(&def.name);
        let name = def.name.clone();
        let inst = lease.inst.id.clone();
        let (res, out, err) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(Invoked, Vec<u8>, Vec<u8>)> {
                let mut s = std::os::unix::net::UnixStream::connect(&socket)?;
                s.set_read_timeout(Some(
                    Duration::from_millis(timeout_ms) + Duration::from_secs(15),
                ))?;
                proto::send(
                    &mut s,
                    &Invoke {
                        argv,
                        env,
                        timeout_ms,
                    },
                )?;
                proto::write_frame(&mut s, &body)?;
                let eof = || {
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the instance closed the connection (it died)",
                    )
                };
                let res: Invoked = proto::recv(&mut s)?.ok_or_else(eof)?;
                let out = proto::read_frame(&mut s)?.ok_or_else(eof)?;
                let err = proto::read_frame(&mut s)?.ok_or_else(eof)?;
                if !err.is_empty() {
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                    {
                        let _ = f.write_all(&err);
                        if !err.ends_with(b"\n") {
                            let _ = f.write_all(b"\n");
                        }
                    }
                }
                Ok((res, out, err))
            })
            .await
            .map_err(|e| format!("the call task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if let Some(e) = res.error {
            return Ok(text(
                StatusCode::BAD_GATEWAY,
                format!("function {name}: cannot run its command: {e}"),
            ));
        }
        if res.timed_out {
            return Ok(text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "function {name}: no response within its timeout of {} (--timeout)",
                    show_duration(def.timeout())
                ),
            ));
        }
        if res.exit_code != Some(0) {
            let how = match (res.exit_code, res.signal) {
                (Some(c), _) => format!("exited with code {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "failed".to_string(),
            };
            let tail = String::from_utf8_lossy(&err[err.len().saturating_sub(4096)..]).into_owned();
            tracing::info!(function = %name, instance = %inst, "{how}");
            return Ok(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("function {name} {how}\n{tail}"),
            ));
        }
        let mut r = Response::new(Full::new(Bytes::from(out)));
        let ct = fwd
            .headers
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("text/plain; charset=utf-8"));
        r.headers_mut().insert(CONTENT_TYPE, ct);
        Ok(r)
    }

    /// The OpenFaaS function list (GET), deploy (POST/PUT) and removal (DELETE).
    async fn system(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        let method = req.method().clone();
        if method == Method::GET {
            if let Err(e) = self.sync() {
                return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
            let list: Vec<serde_json::Value> = {
                let pools = self.pools();
                let mut names: Vec<&String> = pools.keys().collect();
                names.sort();
                names
                    .into_iter()
                    .filter_map(|n| pools.get(n))
                    .map(|p| {
                        let d = p.def();
                        let g = p.gauges();
                        serde_json::json!({
                            "name": d.name,
                            "image": d.image,
                            "replicas": g.instances,
                            "availableReplicas": g.instances,
                            "invocationCount": self.metrics.invocation_count(&d.name),
                            "labels": d.labels.iter().cloned().collect::<HashMap<_, _>>(),
                            "envVars": d.env.iter().filter_map(|e| e.split_once('=')).collect::<HashMap<_, _>>(),
                        })
                    })
                    .collect()
            };
            return json_resp(StatusCode::OK, &serde_json::Value::Array(list));
        }
        let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("read the request body: {e}"),
                )
            }
        };
        let v: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {e}"),
                )
            }
        };
        let root = self.host.root.clone();
        let result = match method {
            Method::POST | Method::PUT => {
                let def = match openfaas_def(&v) {
                    Ok(d) => d,
                    Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
                };
                tokio::task::spawn_blocking(move || crate::deploy(&root, def).map(|_| ()))
                    .await
                    .unwrap_or_else(|e| Err(Error::Io(e.to_string())))
                    .map(|()| StatusCode::ACCEPTED)
            }
            Method::DELETE => {
                let Some(name) = v
                    .get("functionName")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
                else {
                    return text(StatusCode::BAD_REQUEST, "expected {\"functionName\": NAME}");
                };
                tokio::task::spawn_blocking(move || crate::remove(&root, &name))
                    .await
                    .unwrap_or_else(|e| Err(Error::Io(e.to_string())))
                    .map(|()| StatusCode::ACCEPTED)
            }
            _ => {
                return text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{method} /system/functions: use GET, POST, PUT or DELETE"),
                )
            }
        };
        match result {
            Ok(code) => {
                if let Err(e) = self.sync() {
                    tracing::warn!(error = %e, "read the function database");
                }
                text(code, "")
            }
            Err(Error::NotFound(n)) => {
                text(StatusCode::NOT_FOUND, format!("no such function: {n}"))
            }
            Err(e @ Error::Invalid(_)) => text(StatusCode::BAD_REQUEST, e.to_string()),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// What an instance is made of; a change in any of these needs new instances.
fn same_instance(a: &Function, b: &Function) -> bool {
    a.image_id == b.image_id
        && a.env == b.env
        && a.mode == b.mode
        && a.port == b.port
        && a.memory == b.memory
        && a.cpus == b.cpus
        && a.created == b.created
}

/// A definition from an OpenFaaS deploy request (`service`, `image`, `envVars`, `labels`,
/// `envProcess`; berth's own limits under `labels` are not read).
fn openfaas_def(v: &serde_json::Value) -> Result<Function> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    let name = s("service")
        .ok_or_else(|| Error::Invalid("the deploy request has no \"service\"".into()))?;
    let image =
        s("image").ok_or_else(|| Error::Invalid("the deploy request has no \"image\"".into()))?;
    let mut f = Function::new(name, image);
    if let Some(env) = v.get("envVars").and_then(|e| e.as_object()) {
        for (k, val) in env {
            f.env
                .push(format!("{k}={}", val.as_str().unwrap_or_default()));
        }
    }
    if let Some(p) = s("envProcess").filter(|p| !p.is_empty()) {
        f.env.push(format!("fprocess={p}"));
        f.mode = Mode::Stdio;
    }
    if let Some(labels) = v.get("labels").and_then(|e| e.as_object()) {
        for (k, val) in labels {
            f.labels
                .push((k.clone(), val.as_str().unwrap_or_default().to_string()));
        }
    }
    Ok(f)
}

/// The watchdog's environment for one request (OpenFaaS classic watchdog): `Http_Method`,
/// `Http_Path`, `Http_Query`, and each header as `Http_` + its name in Title_Case with `_`
/// for `-` (`X-Custom` → `Http_X_Custom`).
fn watchdog_env(fwd: &Forward) -> Vec<String> {
    let mut env = vec![
        format!("Http_Method={}", fwd.method),
        format!("Http_Path={}", fwd.path),
    ];
    if let Some(q) = &fwd.query {
        env.push(format!("Http_Query={q}"));
    }
    env.push(format!("Http_ContentLength={}", fwd.body.len()));
    for (k, v) in &fwd.headers {
        let Ok(v) = v.to_str() else { continue };
        if v.contains('\0') {
            continue;
        }
        let key: String = k
            .as_str()
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("_");
        env.push(format!("Http_{key}={v}"));
    }
    env
}

/// The request to an http-mode instance, over a kept-alive connection when one is idle
/// (a stale one is retried once on a fresh connection).
async fn call_http(
    inst: &Instance,
    net: &NetConnector,
    fwd: &Forward,
) -> std::result::Result<Resp, String> {
    let uri = match &fwd.query {
        Some(q) => format!("{}?{q}", fwd.path),
        None => fwd.path.clone(),
    };
    for _ in 0..2 {
        let pooled = inst
            .idle_conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let was_pooled = pooled.is_some();
        let mut sender = match pooled {
            Some(s) => s,
            None => {
                let stream = net
                    .connect()
                    .await
                    .map_err(|e| format!("connect to the instance: {e}"))?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("connect to the instance: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        if sender.ready().await.is_err() {
            if was_pooled {
                continue;
            }
            return Err("the instance closed the connection".into());
        }
        let mut req = Request::new(Full::new(fwd.body.clone()));
        *req.method_mut() = fwd.method.clone();
        *req.uri_mut() = uri.parse().map_err(|e| format!("path {uri:?}: {e}"))?;
        *req.headers_mut() = fwd.headers.clone();
        match sender.send_request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| format!("read the response: {e}"))?
                    .to_bytes();
                if !sender.is_closed() {
                    inst.idle_conns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(sender);
                }
                let hop: Vec<HeaderName> = parts
                    .headers
                    .keys()
                    .filter(|n| hop_by_hop(n))
                    .cloned()
                    .collect();
                for h in hop {
                    parts.headers.remove(h);
                }
                parts.headers.remove(CONTENT_LENGTH);
                return Ok(Response::from_parts(parts, Full::new(bytes)));
            }
            Err(e)
                if was_pooled
                    && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) =>
            {
                continue
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the instance closed the connection".into())
}

/// A new call id for an async invocation (unique within this gateway: time and a counter).
fn call_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}-{:x}", N.fetch_add(1, Ordering::Relaxed))
}

/// `2s`, `1m30s`, `250ms`.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}
