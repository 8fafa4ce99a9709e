//! berth's Docker Engine API (a first slice of API v1.41): an axum router that translates
//! Docker's JSON into the engine's types and calls the same [`engine::Engine`] functions as
//! the CLI. It holds no state of its own: the engine's database is the truth.
//!
//! Paths are accepted with any `/vX.Y` prefix or none (Docker's API versioning); errors are
//! Docker's `{"message": …}` bodies with its status codes (400 bad parameter, 404 no such
//! container or image, 409 conflict, 500 otherwise).
//!
//! Endpoints: `_ping`, `version`, `info`, `containers/json`, `containers/create`,
//! `containers/{id}/{start,stop,restart,kill,pause,unpause,rename,wait,json,logs,top}`,
//! `DELETE containers/{id}`,
//! `images/json`, `images/{name}/json`; in streams.rs (a layer in front of the dispatch):
//! `containers/{id}/{attach,resize,exec,stats,archive}`, `exec/{id}/{start,resize,json}`,
//! `events`, `system/df`, `containers/prune`; in auth.rs (the outermost layer): `auth`,
//! `images/create` and `images/{name}/push` (with `X-Registry-Auth`); in changes.rs:
//! `containers/{id}/changes`. tls.rs serves the router over TLS.

mod archive;
mod auth;
mod events;
mod exec;
mod hijack;
mod stats;
mod streams;
mod system;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod build;
mod changes;
mod filters;
mod images;
mod networks;
mod pull;
mod routes;
pub mod tls;
mod volumes;

/// The API version this server speaks (Docker 20.10's).
pub const API_VERSION: &str = "1.41";
/// The oldest version clients may ask for.
pub const MIN_API_VERSION: &str = "1.24";

/// Errors of the API, each with Docker's status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl From<engine::error::Error> for ApiError {
    fn from(e: engine::error::Error) -> ApiError {
        use engine::error::Error as E;
        match e {
            E::NotFound(n) => ApiError::NotFound(format!("No such container: {n}")),
            E::NoSuchPod(n) => ApiError::NotFound(format!("no such pod: {n}")),
            E::Invalid(m) => ApiError::BadRequest(m),
            E::Conflict(m) => ApiError::Conflict(m),
            E::Image(i) => i.into(),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<image::Error> for ApiError {
    fn from(e: image::Error) -> ApiError {
        match e {
            image::Error::NotFound(n) => ApiError::NotFound(format!("No such image: {n}")),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "message": self.to_string() }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// A JSON body (`application/json`).
struct Json<T>(T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{{\"message\":\"serialize the response: {e}\"}}"),
            )
                .into_response(),
        }
    }
}

/// What the router serves.
#[derive(Clone, Debug)]
pub struct Api {
    pub engine: engine::Engine,
}

/// The router: one fallback that dispatches on the method and the (unversioned) path.
pub fn router(api: Api) -> axum::Router {
    let state = Arc::new(api);
    axum::Router::new()
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            streams::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::layer,
        ))
        // Build contexts and image archives are bodies of any size (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve_unix(
    api: Api,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `router` on a TCP `listener` until `shutdown` resolves.
pub async fn serve_tcp(
    api: Api,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `/v1.41/containers/json` → `/containers/json`: Docker's version prefix is optional.
fn unversioned(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            let v = &rest[..i];
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return &rest[i..];
            }
        }
    }
    path
}

/// Query parameters, percent-decoded.
fn query(uri: &Uri) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for kv in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        m.insert(decode(k), decode(v));
    }
    m
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Docker's booleans in queries: `1`, `true`, `True` (and absent or anything else false).
fn flag(q: &BTreeMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn dispatch(State(api): State<Arc<Api>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = unversioned(uri.path()).trim_end_matches('/').to_string();
    let q = query(&uri);
    tracing::debug!(method = %method, path = %path, "docker api request");
    let r = match routes::route(&api.engine, method.as_str(), &path, uri.query(), &q, &body).await {
        Some(r) => r,
        None => route(api, &method, &path, q, body).await,
    };
    finish(r)
}

/// An answer (or error) as a response with the headers every Docker API answer carries.
pub(crate) fn finish(r: ApiResult) -> Response {
    let mut resp = r.unwrap_or_else(IntoResponse::into_response);
    let h = resp.headers_mut();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(header::SERVER, HeaderValue::from_static("berth (linux)"));
    resp
}

async fn route(
    api: Arc<Api>,
    method: &Method,
    path: &str,
    q: BTreeMap<String, String>,
    body: Bytes,
) -> ApiResult {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let e = api.engine.clone();
    match (method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => Ok((
            [(header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")],
            "OK",
        )
            .into_response()),
        ("GET", ["version"]) => Ok(Json(version()).into_response()),
        ("GET", ["info"]) => blocking(move || info(&e)).await,
        ("GET", ["containers", "json"]) => {
            let all = flag(&q, "all");
            let filters = Filters::parse(q.get("filters").map(String::as_str))?;
            blocking(move || list(&e, all, &filters)).await
        }
        ("POST", ["containers", "create"]) => {
            let spec: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&body)
                    .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))?
            };
            let name = q.get("name").filter(|n| !n.is_empty()).cloned();
            blocking(move || create(&e, name, &spec)).await
        }
        ("GET", ["containers", id, "json"]) => {
            let id = id.to_string();
            blocking(move || Ok(Json(inspect(&e, &e.inspect(&id)?)).into_response())).await
        }
        ("POST", ["containers", id, "start"]) => {
            let id = id.to_string();
            blocking(move || {
                let c = e.inspect(&id)?;
                if c.state == engine::types::State::Running {
                    return Ok(StatusCode::NOT_MODIFIED.into_response());
                }
                e.start(&id)?;
                no_content()
            })
            .await
        }
        ("POST", ["containers", id, op @ ("stop" | "restart")]) => {
            let id = id.to_string();
            let op = op.to_string();
            let t = match q.get("t") {
                Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!("invalid t {t:?}: not a number of seconds"))
                })?)),
                None => None,
            };
            blocking(move || {
                if op == "stop" {
                    if !e.inspect(&id)?.state.is_active() {
                        return Ok(StatusCode::NOT_MODIFIED.into_response());
                    }
                    e.stop(&id, t)?;
                } else {
                    e.restart(&id, t)?;
                }
                no_content()
            })
            .await
        }
        ("POST", ["containers", id, "kill"]) => {
            let id = id.to_string();
            let sig = q
                .get("signal")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "KILL".into());
            blocking(move || {
                engine::types::parse_signal(&sig)?;
                e.kill(&id, &sig)?;
                no_content()
            })
            .await
        }
        ("POST", ["containers", id, op @ ("pause" | "unpause")]) => {
            let id = id.to_string();
            let pause = *op == "pause";
            blocking(move || {
                if pause {
                    e.pause(&id)?;
                } else {
                    e.unpause(&id)?;
                }
                no_content()
            })
            .await
        }
        ("POST", ["containers", id, "rename"]) => {
            let id = id.to_string();
            let name = q
                .get("name")
                .filter(|n| !n.is_empty())
                .cloned()
                .ok_or_else(|| {
                    ApiError::BadRequest("rename: the name parameter is missing".into())
                })?;
            blocking(move || {
                e.rename(&id, &name)?;
                no_content()
            })
            .await
        }
        ("GET", ["containers", id, "top"]) => {
            let id = id.to_string();
            let ps_args: Vec<String> = q
                .get("ps_args")
                .map(|a| a.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            blocking(move || Ok(Json(top_table(&e.top(&id, &ps_args)?)).into_response())).await
        }
        ("DELETE", ["containers", id]) => {
            let id = id.to_string();
            let force = flag(&q, "force");
            let volumes = flag(&q, "v");
            blocking(move || {
                let gone = e.remove(&id, force)?;
                if volumes {
                    e.remove_anonymous_volumes(&gone.spec)?;
                }
                no_content()
            })
            .await
        }
        ("GET", ["containers", id, "logs"]) => {
            let id = id.to_string();
            blocking(move || logs(&e, &id, &q)).await
        }
        ("GET", ["images", "json"]) => blocking(move || images(&e)).await,
        ("GET", ["images", rest @ .., "json"]) if !rest.is_empty() => {
            let name = rest.join("/");
            blocking(move || image_inspect(&e, &name)).await
        }
        _ => Err(ApiError::NotFound(format!(
            "page not found: {method} {path} is not part of berth's Docker API"
        ))),
    }
}

fn version() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {"ApiVersion": API_VERSION}}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": "",
    })
}

fn info(e: &engine::Engine) -> ApiResult {
    let cs = e.list(true)?;
    let running = cs.iter().filter(|c| c.state.is_active()).count();
    let images = image::ImageStore::open(&e.root)?.names()?.len();
    let uts = nix::sys::utsname::uname().map_err(|x| ApiError::Internal(format!("uname: {x}")))?;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Json(json!({
        "ID": "",
        "Containers": cs.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": cs.len() - running,
        "Images": images,
        "Driver": "overlay",
        "DockerRootDir": e.root,
        "OSType": "linux",
        "OperatingSystem": "berth",
        "Architecture": uts.machine().to_string_lossy(),
        "KernelVersion": uts.release().to_string_lossy(),
        "Name": uts.nodename().to_string_lossy(),
        "NCPU": ncpu,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "CgroupVersion": "1",
    }))
    .into_response())
}

/// Docker's `State` word for a container.
fn status_word(c: &engine::Container) -> &'static str {
    c.state.as_str()
}

/// RFC 3339 → seconds since the epoch (0 when empty or unparsable).
fn epoch_secs(t: &str) -> i64 {
    engine::logfiles::parse_time(t).map_or(0, |ns| (ns / 1_000_000_000) as i64)
}

/// The list's `filters` (`{"name": ["web"], "label": ["k=v"], …}`; the older
/// `{"name": {"web": true}}` too): a container matches when every key has a matching value.
#[derive(Debug, Default)]
struct Filters(filters::Filters);

impl Filters {
    fn parse(s: Option<&str>) -> Result<Filters, ApiError> {
        filters::parse(s, &["id", "name", "label", "status", "ancestor"]).map(Filters)
    }

    fn matches(&self, c: &engine::Container) -> bool {
        self.0.iter().all(|(k, vals)| {
            // Docker's label filters must all hold (compose lists a service's containers
            // with project, service and oneoff labels); other keys match any of their values.
            let any_or_all = |f: &dyn Fn(&String) -> bool| {
                if k == "label" {
                    vals.iter().all(f)
                } else {
                    vals.iter().any(f)
                }
            };
            any_or_all(&|v: &String| match k.as_str() {
                "id" => c.id.starts_with(v.as_str()),
                // Docker's name filter is a regular expression; a substring covers its usual use.
                "name" => c.name.contains(v.trim_start_matches('/')),
                "label" => filters::label_matches(&c.spec.labels, v),
                "status" => status_word(c) == v,
                "ancestor" => c.image == *v || c.image_id == *v,
                _ => false,
            })
        })
    }
}

fn list(e: &engine::Engine, all: bool, filters: &Filters) -> ApiResult {
    // A status filter looks at stopped containers too (as Docker's).
    let cs = e.list(all || filters.0.contains_key("status"))?;
    let out: Vec<Value> = cs
        .iter()
        // A pod's infra container only with all=1, as `berth ps` shows it only with -a:
        // Docker clients know nothing of pods (podman 4.3.1's compat API lists it always).
        .filter(|c| all || !c.spec.infra)
        .filter(|c| filters.matches(c))
        .map(|c| {
            let status = match c.state {
                s if s.is_active() => format!("Up since {}", c.started),
                _ => match c.exit_code {
                    Some(code) => format!("Exited ({code}) {}", c.finished),
                    None => "Created".into(),
                },
            };
            json!({
                "Id": c.id,
                "Names": [format!("/{}", c.name)],
                "Image": c.image,
                "ImageID": c.image_id,
                "Command": c.spec.args.join(" "),
                "Created": epoch_secs(&c.created),
                "State": status_word(c),
                "Status": status,
                "Ports": list_ports(e, c),
                "Labels": c.spec.labels,
                "HostConfig": {"NetworkMode": net_mode(c)},
                "Mounts": [],
            })
        })
        .collect();
    Ok(Json(out).into_response())
}

fn net_mode(c: &engine::Container) -> String {
    match c.spec.network.mode.as_str() {
        "" => "default".into(),
        m => m.into(),
    }
}

pub(crate) fn strs(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::BadRequest(format!("{what}: not a list of strings")))
            })
            .collect(),
        _ => Err(ApiError::BadRequest(format!(
            "{what}: not a list of strings"
        ))),
    }
}

pub(crate) fn opt_str(v: &Value, what: &str) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ApiError::BadRequest(format!("{what}: not a string"))),
    }
}

pub(crate) fn bool_of(v: &Value, what: &str) -> Result<bool, ApiError> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(ApiError::BadRequest(format!("{what}: not a boolean"))),
    }
}

fn int_of(v: &Value, what: &str) -> Result<i64, ApiError> {
    match v {
        Value::Null => Ok(0),
        _ => v
            .as_i64()
            .ok_or_else(|| ApiError::BadRequest(format!("{what}: not an integer"))),
    }
}

/// `ps` output → Docker's `{"Titles": […], "Processes": [[…]…]}`: columns split on
/// blanks, the last title (the command) taking the rest of its line.
fn top_table(ps: &str) -> Value {
    let mut lines = ps.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let n = titles.len().max(1);
    let rows: Vec<Vec<String>> = lines
        .map(|l| {
            let mut cols = Vec::with_capacity(n);
            let mut rest = l.trim_start();
            while cols.len() + 1 < n {
                match rest.split_once(char::is_whitespace) {
                    Some((c, r)) => {
                        cols.push(c.to_string());
                        rest = r.trim_start();
                    }
                    None => break,
                }
            }
            cols.push(rest.to_string());
            cols
        })
        .collect();
    json!({"Titles": titles, "Processes": rows})
}

/// `POST /containers/create`: Docker's `ContainerConfig` + `HostConfig` → a ContainerSpec.
fn create(e: &engine::Engine, name: Option<String>, b: &Value) -> ApiResult {
    if !b.is_object() {
        return Err(ApiError::BadRequest("the body is not a JSON object".into()));
    }
    let image = opt_str(&b["Image"], "Image")?.ok_or_else(|| {
        ApiError::BadRequest(
            "config cannot be empty in order to create a container: Image is missing".into(),
        )
    })?;
    let hc = &b["HostConfig"];
    let mut cmd = strs(&b["Cmd"], "Cmd")?;
    // Docker's Entrypoint is a list; the engine's is one program with the rest of the
    // list before the command.
    let entrypoint = match &b["Entrypoint"] {
        Value::Null => None,
        v => {
            let ep = strs(v, "Entrypoint")?;
            match ep.split_first() {
                None => Some(String::new()),
                Some((first, rest)) => {
                    cmd.splice(0..0, rest.iter().cloned());
                    Some(first.clone())
                }
            }
        }
    };
    let mut labels = BTreeMap::new();
    match &b["Labels"] {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                let v = v.as_str().ok_or_else(|| {
                    ApiError::BadRequest(format!("Labels: {k:?} is not a string"))
                })?;
                labels.insert(k.clone(), v.to_string());
            }
        }
        _ => return Err(ApiError::BadRequest("Labels: not an object".into())),
    }
    let restart: engine::RestartPolicy = match &hc["RestartPolicy"]["Name"] {
        Value::Null => engine::RestartPolicy::No,
        Value::String(s) if s.is_empty() => engine::RestartPolicy::No,
        Value::String(s) => {
            let n = int_of(
                &hc["RestartPolicy"]["MaximumRetryCount"],
                "RestartPolicy.MaximumRetryCount",
            )?;
            let word = if s == "on-failure" && n > 0 {
                format!("{s}:{n}")
            } else {
                s.clone()
            };
            word.parse()?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "RestartPolicy.Name: not a string".into(),
            ))
        }
    };
    let auto_remove = bool_of(&hc["AutoRemove"], "HostConfig.AutoRemove")?;
    if auto_remove && restart != engine::RestartPolicy::No {
        return Err(ApiError::Conflict(format!(
            "conflicting options: RestartPolicy {restart} and AutoRemove (a removed container cannot restart)"
        )));
    }
    let mut volumes = strs(&hc["Binds"], "HostConfig.Binds")?;
    let mounts = engine::volumes::parse_cli(
        &mut volumes,
        &volumes::mount_args(hc)?,
        &volumes::tmpfs_args(hc)?,
    )?;
    let memory = int_of(&hc["Memory"], "HostConfig.Memory")?;
    let nano = int_of(&hc["NanoCpus"], "HostConfig.NanoCpus")?;
    if memory < 0 || nano < 0 {
        return Err(ApiError::BadRequest(
            "HostConfig.Memory and NanoCpus must not be negative".into(),
        ));
    }
    let init = bool_of(&hc["Init"], "HostConfig.Init")?;
    if init {
        engine::spec::init_bin()?;
    }
    let opts = engine::spec::Opts {
        env: strs(&b["Env"], "Env")?,
        workdir: opt_str(&b["WorkingDir"], "WorkingDir")?,
        user: opt_str(&b["User"], "User")?,
        entrypoint,
        cmd,
        volumes,
        read_only: bool_of(&hc["ReadonlyRootfs"], "HostConfig.ReadonlyRootfs")?,
        memory: (memory > 0).then(|| memory.to_string()),
        cpus: (nano > 0).then(|| nano as f64 / 1e9),
        hostname: opt_str(&b["Hostname"], "Hostname")?.unwrap_or_default(),
        tty: bool_of(&b["Tty"], "Tty")?,
        init,
        ..Default::default()
    };
    let mut publish = Vec::new();
    match &hc["PortBindings"] {
        Value::Null => {}
        Value::Object(m) => {
            for (port, binds) in m {
                let binds = binds.as_array().cloned().unwrap_or_default();
                let binds = if binds.is_empty() {
                    vec![json!({})]
                } else {
                    binds
                };
                for bnd in binds {
                    let ip = bnd["HostIp"].as_str().unwrap_or("");
                    let hp = bnd["HostPort"].as_str().unwrap_or("");
                    let spec = match (ip, hp) {
                        ("", "") => port.clone(),
                        ("", hp) => format!("{hp}:{port}"),
                        (ip, hp) => format!("{ip}:{hp}:{port}"),
                    };
                    publish.extend(
                        net::ports::parse(&spec)
                            .map_err(|x| ApiError::BadRequest(x.to_string()))?,
                    );
                }
            }
        }
        _ => {
            return Err(ApiError::BadRequest(
                "HostConfig.PortBindings: not an object".into(),
            ))
        }
    }
    let mut network = engine::network::NetOpts {
        mode: opt_str(&hc["NetworkMode"], "HostConfig.NetworkMode")?.unwrap_or_default(),
        publish,
        ..Default::default()
    };
    networks::create_opts(b, &mut network)?;
    let spec = engine::ContainerSpec {
        image,
        opts,
        restart,
        labels,
        mounts,
        interactive: bool_of(&b["OpenStdin"], "OpenStdin")?,
        auto_remove,
        network,
        ..Default::default()
    };
    let c = e.create(name.as_deref(), spec)?;
    tracing::info!(id = %c.id, name = %c.name, "docker api: container created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": c.id, "Warnings": []})),
    )
        .into_response())
}

/// `GET /containers/{id}/json` with Docker's field names.
fn inspect(e: &engine::Engine, c: &engine::Container) -> Value {
    let s = &c.spec;
    let o = &s.opts;
    let active = c.state.is_active();
    let (path, args) = match s.args.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => (String::new(), vec![]),
    };
    let zero = "0001-01-01T00:00:00Z";
    let or_zero = |t: &str| {
        if t.is_empty() {
            zero.to_string()
        } else {
            t.to_string()
        }
    };
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": path,
        "Args": args,
        "State": {
            "Status": status_word(c),
            "Running": active,
            "Paused": c.state == engine::types::State::Paused,
            "Restarting": c.state == engine::types::State::Restarting,
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": if active { c.pid } else { 0 },
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.error,
            "StartedAt": or_zero(&c.started),
            "FinishedAt": or_zero(&c.finished),
        },
        "Image": c.image_id,
        "LogPath": e.log_path(c),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": o.volumes,
            "NetworkMode": net_mode(c),
            "RestartPolicy": {"Name": s.restart.name(), "MaximumRetryCount": s.restart.max_retries()},
            "AutoRemove": s.auto_remove,
            "ReadonlyRootfs": o.read_only,
            "Init": o.init,
            "Memory": o.memory.as_deref().and_then(|m| engine::spec::parse_bytes(m).ok()).unwrap_or(0),
            "NanoCpus": o.cpus.map_or(0, |c| (c * 1e9) as i64),
            "LogConfig": {"Type": "json-file", "Config": s.log_opts},
        },
        "Config": {
            "Hostname": o.hostname,
            "User": o.user.clone().unwrap_or_default(),
            "Tty": o.tty,
            "OpenStdin": s.interactive,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Env": o.env,
            "Cmd": o.cmd,
            "Entrypoint": o.entrypoint.as_ref().map(|e| vec![e.clone()]),
            "Image": c.image,
            "WorkingDir": o.workdir.clone().unwrap_or_default(),
            "Labels": s.labels,
            "StopSignal": s.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into()),
        },
        "NetworkSettings": network_settings(e, c),
        "Mounts": [],
    })
}

/// Inspect's `NetworkSettings`: the published ports as bound and the attachments.
fn network_settings(e: &engine::Engine, c: &engine::Container) -> Value {
    let mut ports = serde_json::Map::new();
    for p in e.published(&c.id).unwrap_or_default() {
        let key = format!("{}/{}", p.ctr_port, p.proto.as_str());
        let bind = json!({
            "HostIp": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string()),
            "HostPort": p.host_port.to_string(),
        });
        match ports.get_mut(&key).and_then(Value::as_array_mut) {
            Some(a) => a.push(bind),
            None => {
                ports.insert(key, json!([bind]));
            }
        }
    }
    let atts = e.attachments(&c.id).unwrap_or_default();
    let networks = networks::endpoints(c, &atts);
    let first = atts.first();
    json!({
        "Ports": ports,
        "Networks": networks,
        "IPAddress": first.map(|a| a.ip.to_string()).unwrap_or_default(),
        "MacAddress": first.map(|a| a.mac.clone()).unwrap_or_default(),
    })
}

/// The list's `Ports`.
fn list_ports(e: &engine::Engine, c: &engine::Container) -> Vec<Value> {
    e.published(&c.id)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            json!({
                "IP": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string()),
                "PrivatePort": p.ctr_port,
                "PublicPort": p.host_port,
                "Type": p.proto.as_str(),
            })
        })
        .collect()
}

/// Where the log goes: a buffer (the whole answer at once) or, with `follow`, a channel
/// to the streaming body.
#[derive(Clone)]
enum Sink {
    Buf(Arc<Mutex<Vec<u8>>>),
    Chan(tokio::sync::mpsc::Sender<Bytes>),
}

/// Frames written to one stream of Docker's multiplexed log body (or raw with a tty):
/// `[stream, 0, 0, 0, len (u32 big-endian)]` then the payload (the API's "Stream format"
/// of `/containers/{id}/attach`, which logs share).
struct Framer {
    sink: Sink,
    stream: u8,
    raw: bool,
}

impl std::io::Write for Framer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut frame = Vec::with_capacity(data.len() + 8);
        if !self.raw {
            frame.extend_from_slice(&[self.stream, 0, 0, 0]);
            frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        }
        frame.extend_from_slice(data);
        match &self.sink {
            Sink::Buf(b) => b
                .lock()
                .map_err(|_| std::io::Error::other("log buffer poisoned"))?
                .extend_from_slice(&frame),
            // The client went away: the error ends the reader.
            Sink::Chan(tx) => tx
                .blocking_send(Bytes::from(frame))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?,
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body of a followed log: what the reader thread sends.
struct LogStream(tokio::sync::mpsc::Receiver<Bytes>);

impl futures_core::Stream for LogStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// Docker's `since`/`until`: seconds since the epoch, maybe with a fraction (0: unset).
fn epoch_param(q: &BTreeMap<String, String>, k: &str) -> Result<Option<i128>, ApiError> {
    match q.get(k).map(String::as_str) {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => {
            let secs: f64 = v.parse().map_err(|_| {
                ApiError::BadRequest(format!("invalid {k} {v:?}: seconds since the epoch"))
            })?;
            if !secs.is_finite() || secs < 0.0 {
                return Err(ApiError::BadRequest(format!(
                    "invalid {k} {v:?}: seconds since the epoch"
                )));
            }
            Ok(Some((secs * 1e9) as i128))
        }
    }
}

fn logs(e: &engine::Engine, id: &str, q: &BTreeMap<String, String>) -> ApiResult {
    let c = e.inspect(id)?;
    let (want_out, want_err) = (flag(q, "stdout"), flag(q, "stderr"));
    if !want_out && !want_err {
        return Err(ApiError::BadRequest(
            "you must choose at least one stream (stdout or stderr)".into(),
        ));
    }
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("all") | Some("") => None,
        Some(t) => Some(t.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!("invalid tail {t:?}: a number of lines or \"all\""))
        })?),
    };
    let o = engine::logfiles::ReadOpts {
        tail,
        timestamps: flag(q, "timestamps"),
        follow: flag(q, "follow"),
        since: epoch_param(q, "since")?,
        until: epoch_param(q, "until")?,
    };
    let follow = o.follow;
    let raw = c.spec.opts.tty;
    let ctype = if raw {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let run = move |e: &engine::Engine, sink: Sink| -> Result<(), ApiError> {
        let mut out = Framer {
            sink: sink.clone(),
            stream: 1,
            raw,
        };
        let mut err = Framer {
            sink,
            stream: 2,
            raw,
        };
        let (mut s1, mut s2) = (std::io::sink(), std::io::sink());
        let out: &mut dyn std::io::Write = if want_out { &mut out } else { &mut s1 };
        let err: &mut dyn std::io::Write = if want_err { &mut err } else { &mut s2 };
        e.print_log(&c, &o, out, err)?;
        Ok(())
    };
    if follow {
        // The reader follows on a blocking thread of its own; it ends with the container
        // or at its first write after the client went away.
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let e = e.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = run(&e, Sink::Chan(tx)) {
                tracing::debug!(error = %err, "docker api: log follow ended");
            }
        });
        let body = axum::body::Body::from_stream(LogStream(rx));
        return Ok(([(header::CONTENT_TYPE, ctype)], body).into_response());
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    run(e, Sink::Buf(buf.clone()))?;
    let body = std::mem::take(
        &mut *buf
            .lock()
            .map_err(|_| ApiError::Internal("log buffer poisoned".into()))?,
    );
    Ok(([(header::CONTENT_TYPE, ctype)], body).into_response())
}

fn image_summary(name_tags: Vec<String>, img: &image::store::Image, tagged: u64) -> Value {
    let labels = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    json!({
        "Id": format!("sha256:{}", img.id()),
        "ParentId": "",
        "RepoTags": name_tags,
        "RepoDigests": [],
        "Created": tagged,
        "Size": img.size(),
        "SharedSize": -1,
        "VirtualSize": img.size(),
        "Labels": labels,
        "Containers": -1,
    })
}

fn images(e: &engine::Engine) -> ApiResult {
    let store = image::ImageStore::open(&e.root)?;
    // One entry per image (config digest) with all its names.
    let mut by_id: BTreeMap<String, (Vec<String>, image::store::Image, u64)> = BTreeMap::new();
    for (name, rec) in store.names()? {
        let img = store.image(&rec.manifest)?;
        let ent = by_id
            .entry(img.id().to_string())
            .or_insert_with(|| (vec![], img, rec.tagged));
        ent.0.push(name);
    }
    let out: Vec<Value> = by_id
        .into_values()
        .map(|(names, img, t)| image_summary(names, &img, t))
        .collect();
    Ok(Json(out).into_response())
}

fn image_inspect(e: &engine::Engine, name: &str) -> ApiResult {
    let store = image::ImageStore::open(&e.root)?;
    // Docker's image IDs are config digests (`sha256:…`); the store's lookup takes a bare
    // hex prefix of one (a full digest there names a manifest).
    let img = store.resolve(name.strip_prefix("sha256:").unwrap_or(name))?;
    let names: Vec<String> = store
        .names()?
        .into_iter()
        .filter(|(_, r)| r.manifest == img.manifest_digest)
        .map(|(n, _)| n)
        .collect();
    let raw: Value = serde_json::from_slice(&img.config_bytes).unwrap_or(Value::Null);
    Ok(Json(json!({
        "Id": format!("sha256:{}", img.id()),
        "RepoTags": names,
        "RepoDigests": [],
        "Created": raw["created"],
        "Architecture": raw["architecture"],
        "Os": raw["os"],
        "Size": img.size(),
        "VirtualSize": img.size(),
        "Config": raw["config"],
        "RootFS": raw["rootfs"],
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_optional() {
        assert_eq!(unversioned("/v1.41/containers/json"), "/containers/json");
        assert_eq!(unversioned("/v1.24/_ping"), "/_ping");
        assert_eq!(unversioned("/containers/json"), "/containers/json");
        assert_eq!(unversioned("/volumes/x"), "/volumes/x");
    }

    #[test]
    fn top_splits_columns_and_keeps_the_command_whole() {
        let t = top_table("UID PID CMD\nroot 12 sleep 100\n\nroot  13  sh -c x\n");
        assert_eq!(t["Titles"], json!(["UID", "PID", "CMD"]));
        assert_eq!(
            t["Processes"],
            json!([["root", "12", "sleep 100"], ["root", "13", "sh -c x"]])
        );
    }

    #[test]
    fn query_is_decoded() {
        let u: Uri = "/x?name=a%2Fb&all=1&tail=all".parse().expect("a valid URI");
        let q = query(&u);
        assert_eq!(q["name"], "a/b");
        assert!(flag(&q, "all"));
        assert_eq!(q["tail"], "all");
    }
}
