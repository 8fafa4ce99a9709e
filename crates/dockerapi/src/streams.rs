//! The endpoints that need the request itself (the connection hijack of attach and exec,
//! request bodies of any size, streamed answers) and the ones around them: a layer in
//! front of the router's dispatch. What it does not serve goes on to the dispatch.
//!
//! - `POST /containers/{id}/attach`, `POST /containers/{id}/resize` (hijack.rs);
//! - `POST /containers/{id}/start` when an attach waits for it (hijack.rs), and
//!   `POST /containers/{id}/wait?condition=next-exit` on a container not started yet
//!   (waits for its start first: `docker run` asks before it starts);
//! - `POST /containers/{id}/exec`, `POST /exec/{id}/{start,resize}`, `GET /exec/{id}/json`
//!   (exec.rs);
//! - `GET /events` (events.rs), `GET /containers/{id}/stats` (stats.rs);
//! - `HEAD`/`GET`/`PUT /containers/{id}/archive` (archive.rs);
//! - `GET /system/df`, `POST /containers/prune` (system.rs).

use crate::{archive, events, exec, hijack, stats, system, Api, ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The largest tar `PUT /containers/{id}/archive` takes (it is held in memory).
const MAX_ARCHIVE: usize = 1 << 30;
/// The largest JSON body of an exec request.
const MAX_JSON: usize = 1 << 20;

async fn body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| ApiError::BadRequest(format!("read the request body: {e}")))
}

pub async fn layer(State(api): State<Arc<Api>>, mut req: Request, next: Next) -> Response {
    let path = crate::unversioned(req.uri().path())
        .trim_end_matches('/')
        .to_string();
    let q = crate::query(req.uri());
    let method = req.method().as_str().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let e = api.engine.clone();
    let own = |s: &str| s.to_string();
    // Ok: served here; Err: the request goes on to the dispatch.
    let action = match (method.as_str(), segs.as_slice()) {
        ("POST", ["containers", id, a @ ("stop" | "kill")]) => Some((own(id), a.to_string())),
        _ => None,
    };
    let signal = q.get("signal").cloned();
    let r: Result<ApiResult, Request> = match (method.as_str(), segs.as_slice()) {
        ("POST", ["containers", id, "attach"]) => Ok(hijack::attach(e, own(id), q, req).await),
        ("POST", ["containers", id, "resize"]) => Ok(hijack::resize(e, own(id), q).await),
        ("POST", ["containers", id, "start"]) => match hijack::start_pending(&e, id).await {
            Some(r) => Ok(r),
            None => Err(req),
        },
        ("POST", ["containers", id, "wait"]) => Ok(wait(e, own(id), &q).await),
        ("POST", ["containers", id, "exec"]) => {
            let id = own(id);
            Ok(match body(req, MAX_JSON).await {
                Ok(b) => exec::create(e, id, b).await,
                Err(err) => Err(err),
            })
        }
        ("POST", ["exec", id, "start"]) => {
            let id = own(id);
            // The body is read before the upgrade; the request keeps its extensions.
            let (parts, b) = req.into_parts();
            let b = axum::body::to_bytes(b, MAX_JSON).await;
            req = Request::from_parts(parts, axum::body::Body::empty());
            Ok(match b {
                Ok(b) => exec::start(e, id, b, req).await,
                Err(err) => Err(ApiError::BadRequest(format!(
                    "read the request body: {err}"
                ))),
            })
        }
        ("POST", ["exec", id, "resize"]) => Ok(exec::resize(id, &q)),
        ("GET", ["exec", id, "json"]) => Ok(exec::inspect(id)),
        ("GET", ["events"]) => Ok(events::get(e, q).await),
        ("GET", ["containers", id, "stats"]) => Ok(stats::get(e, own(id), q).await),
        ("HEAD", ["containers", id, "archive"]) => Ok(archive::head(e, own(id), q).await),
        ("GET", ["containers", id, "archive"]) => Ok(archive::get(e, own(id), q).await),
        ("PUT", ["containers", id, "archive"]) => {
            let id = own(id);
            Ok(match body(req, MAX_ARCHIVE).await {
                Ok(b) => archive::put(e, id, q, b).await,
                Err(err) => Err(err),
            })
        }
        ("GET", ["system", "df"]) => Ok(crate::blocking(move || system::df(&e)).await),
        ("POST", ["containers", "prune"]) => {
            let f = q.get("filters").cloned();
            Ok(crate::blocking(move || system::prune(&e, f.as_deref())).await)
        }
        _ => Err(req),
    };
    let r = match r {
        Ok(r) => r,
        Err(req) => return pass(&api, req, next, action, signal).await,
    };
    crate::finish(r)
}

/// The dispatch serves it; a stop or kill that worked is an event of its own.
async fn pass(
    api: &Api,
    req: Request,
    next: Next,
    action: Option<(String, String)>,
    signal: Option<String>,
) -> Response {
    let resp = next.run(req).await;
    if let Some((id, a)) = action {
        if resp.status() == StatusCode::NO_CONTENT {
            if let Ok(c) = inspect(&api.engine, &id).await {
                let sig = signal.unwrap_or_else(|| "SIGKILL".into());
                let extra: &[(&str, &str)] = if a == "kill" {
                    &[("signal", &sig)]
                } else {
                    &[]
                };
                events::container(&c, &a, extra);
            }
        }
    }
    resp
}

async fn inspect(e: &engine::Engine, id: &str) -> Result<engine::Container, ApiError> {
    let (e, id) = (e.clone(), id.to_string());
    crate::blocking(move || Ok(e.inspect(&id)?)).await
}

/// `POST /containers/{id}/wait?condition=`: the status line is sent at once, the body
/// when the wait is over (as Docker's daemon: `docker run` sends the start only once the
/// wait has been answered).
async fn wait(
    e: engine::Engine,
    id: String,
    q: &std::collections::BTreeMap<String, String>,
) -> ApiResult {
    // `next-exit` on a created container waits for its start first; on a running one it is
    // served as `not-running`.
    let (removed, next) = match q.get("condition").map(String::as_str) {
        None | Some("") | Some("not-running") => (false, false),
        Some("next-exit") => (false, true),
        Some("removed") => (true, false),
        Some(x) => {
            return Err(ApiError::BadRequest(format!(
                "invalid condition {x:?} (not-running, next-exit, removed)"
            )))
        }
    };
    let c = inspect(&e, &id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        if next {
            wait_started(&e, &c.id).await;
        }
        let cid = c.id.clone();
        let r = crate::blocking(move || {
            if removed {
                Ok(e.wait_removed(&cid)?)
            } else {
                Ok(e.wait(&cid)?)
            }
        })
        .await;
        let v = match r {
            Ok(code) => serde_json::json!({"StatusCode": code, "Error": null}),
            Err(err) => {
                serde_json::json!({"StatusCode": -1, "Error": {"Message": err.to_string()}})
            }
        };
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        let _ = tx.send(Bytes::from(b)).await;
    });
    let body = axum::body::Body::from_stream(crate::LogStream(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `wait?condition=next-exit` on a created container: its next exit is that of the start
/// to come, so wait for the start (then the dispatch waits for the exit).
async fn wait_started(e: &engine::Engine, id: &str) {
    loop {
        match inspect(e, id).await {
            Ok(c) if c.state == engine::types::State::Created && c.started.is_empty() => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            _ => return,
        }
    }
}
