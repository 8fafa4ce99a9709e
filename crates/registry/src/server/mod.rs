//! The OCI Distribution server (distribution-spec v1.1, spec.md): routing, shared state
//! and the listener. One module per API area.

mod auth;
mod blobs;
mod conn;
pub mod error;
pub mod gc;
mod manifests;
mod referrers;
pub mod schema;
pub mod storage;
mod tags;
mod tls;
mod uploads;

use crate::reference::parse_digest;
pub use auth::{Access, Htpasswd};
use error::{ApiError, ApiResult, Code};
use storage::Storage;

use crate::reference::{Digest, Name, RefError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest manifest the server accepts (spec.md: registries SHOULD accept at least 4 MiB).
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// How the server is configured (`berth registry serve` flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub htpasswd: Option<PathBuf>,
    /// When set, clients are challenged with `Bearer realm=…` and fetch tokens there
    /// (the registry serves `/token` itself).
    pub token_realm: Option<String>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub read_only: bool,
    /// Repository patterns anyone may pull (`*`, `name`, or `prefix/*`).
    pub anonymous_pull: Vec<String>,
    /// Uploads open at once; past this, new ones are answered 429 TOOMANYREQUESTS.
    pub max_uploads: usize,
    /// Uploads one client (an authenticated user, or an address when anonymous) may
    /// have open at once.
    pub max_uploads_per_client: usize,
    /// An upload no request touched for this long expires.
    pub upload_idle_timeout: Duration,
    /// A client must send a request's headers within this time.
    pub header_timeout: Duration,
    /// A connection on which no byte moves for this long is closed (idle keep-alive,
    /// a stalled request body, a client that stopped reading).
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed at once (with a log line).
    pub max_connections: usize,
    /// Connections one client address may hold at once (so one client cannot take all
    /// of `max_connections`).
    pub max_connections_per_client: usize,
}

impl Config {
    /// A configuration with the defaults of `berth registry serve`.
    pub fn new(listen: SocketAddr, root: PathBuf) -> Config {
        Config {
            listen,
            root,
            htpasswd: None,
            token_realm: None,
            tls: None,
            read_only: false,
            anonymous_pull: Vec::new(),
            max_uploads: 4096,
            max_uploads_per_client: 128,
            upload_idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_client: 128,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("open storage root {path}")]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read htpasswd file {path}")]
    Htpasswd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("serve")]
    Io(#[from] std::io::Error),
}

/// Counters exposed at `GET /metrics` (Prometheus text format).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Request body bytes the server read (blob chunks and manifests).
    pub bytes_received: AtomicU64,
    pub blob_bytes_received: AtomicU64,
    pub manifest_bytes_received: AtomicU64,
    pub requests: AtomicU64,
}

pub struct AppState {
    pub cfg: Config,
    pub store: Storage,
    pub auth: auth::Auth,
    pub uploads: uploads::Uploads,
    pub metrics: Metrics,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(cfg: Config) -> Result<Shared, ServeError> {
        let mut cfg = cfg;
        // A realm given as a path ("/token") is this server's own endpoint.
        if let Some(r) = cfg.token_realm.as_mut().filter(|r| r.starts_with('/')) {
            let scheme = if cfg.tls.is_some() { "https" } else { "http" };
            *r = format!("{scheme}://{}{r}", cfg.listen);
        }
        let store = Storage::open(&cfg.root).map_err(|source| ServeError::Storage {
            path: cfg.root.clone(),
            source,
        })?;
        let auth = auth::Auth::new(&cfg, &store)?;
        let uploads = uploads::Uploads::new(
            cfg.max_uploads,
            cfg.max_uploads_per_client,
            cfg.upload_idle_timeout,
        );
        Ok(Arc::new(AppState {
            cfg,
            store,
            auth,
            uploads,
            metrics: Metrics::default(),
        }))
    }
}

/// Builds the router: every route goes through [`dispatch`], because repository names
/// contain slashes.
pub fn router(state: Shared) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(state)
}

/// Runs the server until ctrl-c / SIGTERM. `ready` receives the bound address.
pub async fn serve(
    cfg: Config,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let mut cfg = cfg;
    cfg.listen = addr;
    let state = AppState::new(cfg.clone())?;
    uploads::spawn_reaper(state.clone());
    tracing::info!(%addr, root = %cfg.root.display(), tls = cfg.tls.is_some(), "registry listening");
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    let app = router(state);
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    tokio::select! {
        r = conn::serve(listener, app, tls, conn::Limits::from(&cfg)) => r,
        _ = shutdown_signal() => Ok(()),
    }
}

async fn shutdown_signal() {
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// The parsed request path.
#[derive(Debug)]
enum Route {
    Base,
    Catalog,
    Token,
    Metrics,
    Blob(Name, String),
    UploadStart(Name),
    Upload(Name, String),
    Manifest(Name, String),
    Tags(Name),
    Referrers(Name, String),
}

/// Decodes `%XX` escapes (and, for query strings, `+` as space).
pub fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters (the last value of each key wins).
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(percent_decode(k, true), percent_decode(v, true));
    }
    m
}

fn name(s: &str) -> ApiResult<Name> {
    Name::parse(s).map_err(|e| ApiError::new(Code::NameInvalid, e.to_string()))
}

fn route(path: &str) -> ApiResult<Route> {
    match path {
        "/v2" | "/v2/" => return Ok(Route::Base),
        "/v2/_catalog" => return Ok(Route::Catalog),
        "/token" | "/v2/token" => return Ok(Route::Token),
        "/metrics" => return Ok(Route::Metrics),
        _ => {}
    }
    let not_found =
        || ApiError::new(Code::NameUnknown, "no such endpoint").with_status(StatusCode::NOT_FOUND);
    let rest = path.strip_prefix("/v2/").ok_or_else(not_found)?;
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags(name(n)?));
    }
    if let Some(n) = rest
        .strip_suffix("/blobs/uploads/")
        .or(rest.strip_suffix("/blobs/uploads"))
    {
        return Ok(Route::UploadStart(name(n)?));
    }
    let (head, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
    let last = percent_decode(last, false);
    if let Some(n) = head.strip_suffix("/blobs/uploads") {
        return Ok(Route::Upload(name(n)?, last));
    }
    if let Some(n) = head.strip_suffix("/blobs") {
        return Ok(Route::Blob(name(n)?, last));
    }
    if let Some(n) = head.strip_suffix("/manifests") {
        return Ok(Route::Manifest(name(n)?, last));
    }
    if let Some(n) = head.strip_suffix("/referrers") {
        return Ok(Route::Referrers(name(n)?, last));
    }
    Err(not_found())
}

/// Parses a digest from a path or query; a well-formed but unimplemented algorithm is
/// UNSUPPORTED, anything else DIGEST_INVALID.
pub fn digest(s: &str) -> ApiResult<Digest> {
    parse_digest(s).map_err(|e| match e {
        RefError::Algorithm(_) => {
            ApiError::new(Code::Unsupported, e.to_string()).with_status(StatusCode::BAD_REQUEST)
        }
        _ => ApiError::new(Code::DigestInvalid, e.to_string()),
    })
}

/// Runs blocking filesystem work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn dispatch(State(st): State<Shared>, req: Request) -> Response {
    st.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let mut resp = match handle(st, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code.as_str(), detail = %e.detail, "request refused");
            e.into_response()
        }
    };
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    // No answer is to be sniffed into another type (a manifest or blob as HTML).
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp
}

fn write_guard(st: &AppState) -> ApiResult<()> {
    if st.cfg.read_only {
        return Err(ApiError::new(Code::Unsupported, "registry is read-only")
            .with_status(StatusCode::METHOD_NOT_ALLOWED));
    }
    Ok(())
}

/// A request body that a handler takes when it starts reading. What is left when the
/// handler fails early (auth, a bad range, an unknown upload) is drained before the error
/// goes out, so the client reads the answer instead of a reset connection.
pub struct BodySlot(std::sync::Mutex<Option<Body>>);

/// At most this much of a refused request's body is read and dropped.
const DRAIN_MAX: usize = 8 * 1024 * 1024;

impl BodySlot {
    fn new(b: Body) -> BodySlot {
        BodySlot(std::sync::Mutex::new(Some(b)))
    }

    /// The body (empty if already taken).
    pub fn take(&self) -> Body {
        self.0
            .lock()
            .ok()
            .and_then(|mut b| b.take())
            .unwrap_or_else(Body::empty)
    }

    async fn drain(&self) {
        use http_body_util::BodyExt;
        let Some(mut b) = self.0.lock().ok().and_then(|mut b| b.take()) else {
            return;
        };
        let mut seen = 0;
        while let Some(Ok(frame)) = b.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_MAX {
                break;
            }
        }
    }
}

async fn handle(st: Shared, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let body = BodySlot::new(body);
    let res = handle_parts(st, &parts, &body).await;
    if res.is_err() {
        body.drain().await;
    }
    res
}

async fn handle_parts(
    st: Shared,
    req: &axum::http::request::Parts,
    body: &BodySlot,
) -> ApiResult<Response> {
    let r = route(req.uri.path())?;
    let method = req.method.clone();
    let query = parse_query(req.uri.query());
    let headers = &req.headers;
    let is_read = method == Method::GET || method == Method::HEAD;
    let access = if is_read { Access::Pull } else { Access::Push };
    match r {
        Route::Base => {
            st.auth.check_base(headers)?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{}",
            )
                .into_response())
        }
        Route::Token => st.auth.token_endpoint(headers, &query),
        Route::Metrics => Ok(metrics(&st)),
        Route::Catalog => {
            st.auth.check_base(headers)?;
            tags::catalog(&st, headers, &query).await
        }
        Route::Tags(n) => {
            st.auth.check(headers, &n, Access::Pull)?;
            if !is_read {
                return Err(method_not_allowed());
            }
            tags::list(&st, &n, &query, method == Method::HEAD).await
        }
        Route::Referrers(n, d) => {
            st.auth.check(headers, &n, Access::Pull)?;
            if !is_read {
                return Err(method_not_allowed());
            }
            referrers::list(&st, &n, &d, &query).await
        }
        Route::Blob(n, d) => {
            st.auth.check(headers, &n, access)?;
            match method {
                Method::GET | Method::HEAD => {
                    blobs::get(&st, &n, &d, headers, method == Method::HEAD).await
                }
                Method::DELETE => {
                    write_guard(&st)?;
                    blobs::delete(&st, &n, &d).await
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::UploadStart(n) => {
            if method != Method::POST {
                return Err(method_not_allowed());
            }
            let user = st.auth.check(headers, &n, Access::Push)?;
            write_guard(&st)?;
            let owner = uploads::Owner::new(user.as_deref(), peer(req));
            uploads::start(&st, &n, &owner, &query, headers, body).await
        }
        Route::Upload(n, id) => {
            // Every upload request, even a status GET, is part of a push.
            let user = st.auth.check(headers, &n, Access::Push)?;
            let owner = uploads::Owner::new(user.as_deref(), peer(req));
            match method {
                Method::GET => uploads::status(&st, &n, &owner, &id).await,
                Method::PATCH => {
                    write_guard(&st)?;
                    uploads::patch(&st, &n, &owner, &id, headers, body).await
                }
                Method::PUT => {
                    write_guard(&st)?;
                    uploads::finish(&st, &n, &owner, &id, &query, headers, body).await
                }
                Method::DELETE => uploads::cancel(&st, &n, &owner, &id).await,
                _ => Err(method_not_allowed()),
            }
        }
        Route::Manifest(n, reference) => {
            st.auth.check(headers, &n, access)?;
            match method {
                Method::GET | Method::HEAD => {
                    manifests::get(&st, &n, &reference, headers, method == Method::HEAD).await
                }
                Method::PUT => {
                    write_guard(&st)?;
                    manifests::put(&st, &n, &reference, req.uri.query(), headers, body).await
                }
                Method::DELETE => {
                    write_guard(&st)?;
                    manifests::delete(&st, &n, &reference).await
                }
                _ => Err(method_not_allowed()),
            }
        }
    }
}

/// The client's address, as the connection loop recorded it ([`conn::Peer`]).
fn peer(req: &axum::http::request::Parts) -> Option<std::net::IpAddr> {
    req.extensions.get::<conn::Peer>().map(|p| p.0.ip())
}

fn method_not_allowed() -> ApiError {
    ApiError::new(Code::Unsupported, "method not allowed on this endpoint")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

fn metrics(st: &AppState) -> Response {
    let m = &st.metrics;
    let body = format!(
        "# TYPE berth_registry_bytes_received_total counter\n\
         berth_registry_bytes_received_total {}\n\
         berth_registry_blob_bytes_received_total {}\n\
         berth_registry_manifest_bytes_received_total {}\n\
         # TYPE berth_registry_requests_total counter\n\
         berth_registry_requests_total {}\n",
        m.bytes_received.load(Ordering::Relaxed),
        m.blob_bytes_received.load(Ordering::Relaxed),
        m.manifest_bytes_received.load(Ordering::Relaxed),
        m.requests.load(Ordering::Relaxed),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

/// Reads a whole (small) body, refusing more than `cap` bytes.
pub async fn read_body_capped(body: Body, cap: usize) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                Code::BlobUploadInvalid,
                format!("reading request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > cap {
                // Keep reading (and dropping) a while so the client sees the answer
                // rather than a reset connection; give up on bodies far past the cap.
                if seen > 4 * cap {
                    break;
                }
                out = Vec::new();
                continue;
            }
            out.extend_from_slice(&data);
        }
    }
    if seen > cap {
        return Err(ApiError::new(
            Code::SizeInvalid,
            format!("body of {seen}+ bytes is larger than {cap}"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Request paths and queries are outside input: routing and decoding never panic,
        /// and a routed name passed its grammar.
        #[test]
        fn routes_and_queries_never_panic(
            path in prop_oneof!["/v2/[a-z0-9/%._-]{0,60}", any::<String>()],
            query in prop_oneof!["[a-z=&%+0-9]{0,40}", any::<String>()],
        ) {
            let _ = parse_query(Some(&query));
            let _ = percent_decode(&path, false);
            match route(&path) {
                Ok(Route::Blob(n, _)) | Ok(Route::Manifest(n, _)) | Ok(Route::Upload(n, _))
                | Ok(Route::UploadStart(n)) | Ok(Route::Tags(n)) | Ok(Route::Referrers(n, _)) => {
                    prop_assert!(Name::parse(n.as_str()).is_ok());
                }
                Ok(_) => {}
                Err(e) => prop_assert!(!e.detail.is_empty()),
            }
        }
    }
}
