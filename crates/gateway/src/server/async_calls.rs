//! The gateway's side of async invocations: `POST /async-function/NAME` persists the call
//! (crate::queue) before answering 202, a worker task takes due calls from the database,
//! runs them through the same dispatch as synchronous calls and delivers the result to
//! `X-Callback-Url`; `GET /system/async/NAME` lists a function's queued, in-flight and
//! dead calls.

use super::{call_id, json_resp, text, Forward, Gateway, Resp};
use crate::queue::{check_callback, Call, NewCall, Queue};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// How long a callback may take.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Statuses that say the call did not run (queue full, instance lost, redeploy): it is
/// attempted again rather than delivered, until its last attempt.
fn not_run(status: u16) -> bool {
    matches!(status, 429 | 502 | 503)
}

impl Gateway {
    pub(super) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists an async call and answers 202 with its id in `X-Call-Id`.
    pub(super) async fn enqueue(
        self: Arc<Self>,
        name: &str,
        sub: &str,
        method: &Method,
        query: Option<&str>,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Resp {
        let callback = match headers.remove("x-callback-url") {
            None => None,
            Some(v) => {
                let Ok(url) = v.to_str() else {
                    return text(StatusCode::BAD_REQUEST, "X-Callback-Url: not text");
                };
                match check_callback(url, &self.async_cfg.allow_callback_hosts) {
                    Ok(_) => Some(url.to_string()),
                    Err(e) => return text(StatusCode::BAD_REQUEST, e),
                }
            }
        };
        let call = NewCall {
            id: call_id(),
            function: name.to_string(),
            method: method.to_string(),
            path: sub.to_string(),
            query: query.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                .collect(),
            callback,
        };
        let id = call.id.clone();
        let gw = self.clone();
        let r = tokio::task::spawn_blocking(move || gw.queue().enqueue(&call, &body)).await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(function = %name, error = %e, "queue an async call");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("function {name}: the call could not be queued: {e}"),
                );
            }
            Err(e) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("function {name}: the call could not be queued: {e}"),
                )
            }
        }
        tracing::debug!(function = %name, call = %id, "async call queued");
        self.async_wake.notify_one();
        let mut r = text(StatusCode::ACCEPTED, "");
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert("x-call-id", v);
        }
        r
    }

    /// `GET /system/async/NAME`: the function's calls still in the queue (JSON).
    pub(super) async fn async_list(self: Arc<Self>, name: String) -> Resp {
        if crate::def::check_name(&name).is_err() {
            return text(StatusCode::NOT_FOUND, format!("no such function: {name:?}"));
        }
        let gw = self.clone();
        let n = name.clone();
        let r = tokio::task::spawn_blocking(move || gw.queue().list(Some(&n))).await;
        match r {
            Ok(Ok(calls)) => {
                if calls.is_empty() && self.pool(&name).is_none() {
                    return text(StatusCode::NOT_FOUND, format!("no such function: {name}"));
                }
                json_resp(
                    StatusCode::OK,
                    &serde_json::to_value(calls).unwrap_or_default(),
                )
            }
            Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    /// Takes due calls from the database (woken by a new call, else every 250 ms) and runs
    /// up to `workers` at once.
    pub(super) async fn async_worker(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.async_cfg.workers.max(1)));
        loop {
            tokio::select! {
                _ = self.async_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            let free = slots.available_permits();
            if free == 0 {
                continue;
            }
            // A call is leased for its function's timeout plus its callback's, with margin.
            let leases: HashMap<String, Duration> = self
                .pools()
                .iter()
                .map(|(n, p)| (n.clone(), p.def().timeout()))
                .collect();
            let gw = self.clone();
            let taken = tokio::task::spawn_blocking(move || {
                gw.queue().claim(free, |f| {
                    leases.get(f).copied().unwrap_or(Duration::from_secs(30))
                        + CALLBACK_TIMEOUT
                        + Duration::from_secs(30)
                })
            })
            .await;
            let calls = match taken {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "take async calls");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "take async calls");
                    continue;
                }
            };
            for call in calls {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let gw = self.clone();
                tokio::spawn(async move {
                    gw.run_async(call).await;
                    drop(permit);
                });
            }
        }
    }

    /// One attempt of a call: run it (unless an earlier attempt did), deliver the result,
    /// then forget the call, or record the failure (back-off, or dead).
    async fn run_async(self: Arc<Self>, c: Call) {
        let id = c.call.id.clone();
        let name = c.call.function.clone();
        let max = self.async_cfg.max_attempts.max(1);
        let (status, body, ran) = match c.result {
            Some((s, b)) => (s, Bytes::from(b), false),
            None => {
                let resp = match self.pool(&name) {
                    Some(pool) => self.dispatch(&name, pool, &forward_of(&c)).await,
                    None => text(StatusCode::NOT_FOUND, format!("no such function: {name}")),
                };
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                (status, body, true)
            }
        };
        if ran && not_run(status) && c.attempt < max {
            let err = format!(
                "the call was answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
            self.record_failure(&id, &name, c.attempt, max, err).await;
            return;
        }
        tracing::info!(function = %name, call = %id, status, attempt = c.attempt, "async call ran");
        let delivered = match &c.call.callback {
            None => Ok(()),
            Some(url) => match check_callback(url, &self.async_cfg.allow_callback_hosts) {
                Ok(u) => post_callback(&u, &name, &id, status, body.clone()).await,
                Err(e) => Err(e),
            },
        };
        match delivered {
            Ok(()) => {
                let gw = self.clone();
                let i = id.clone();
                match tokio::task::spawn_blocking(move || gw.queue().done(&i)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(call = %id, error = %e, "forget a delivered async call")
                    }
                    Err(e) => {
                        tracing::warn!(call = %id, error = %e, "forget a delivered async call")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(function = %name, call = %id, error = %e, "callback failed");
                if ran {
                    let gw = self.clone();
                    let i = id.clone();
                    let b = body.clone();
                    let kept =
                        tokio::task::spawn_blocking(move || gw.queue().keep_result(&i, status, &b))
                            .await;
                    if !matches!(kept, Ok(Ok(()))) {
                        tracing::warn!(call = %id, "keep an async call's result: it will run again");
                    }
                }
                self.record_failure(&id, &name, c.attempt, max, format!("callback: {e}"))
                    .await;
            }
        }
    }

    async fn record_failure(
        self: &Arc<Self>,
        id: &str,
        name: &str,
        attempt: u32,
        max: u32,
        err: String,
    ) {
        let gw = self.clone();
        let (i, e2) = (id.to_string(), err.clone());
        let r = tokio::task::spawn_blocking(move || gw.queue().failed(&i, attempt, max, &e2))
            .await
            .unwrap_or_else(|e| Err(crate::Error::Io(e.to_string())));
        match r {
            Ok(true) => {
                tracing::warn!(function = %name, call = %id, attempts = attempt, error = %err, "async call dead")
            }
            Ok(false) => {
                tracing::info!(function = %name, call = %id, attempt, error = %err, "async call will be attempted again")
            }
            Err(e) => tracing::warn!(call = %id, error = %e, "record an async call's failure"),
        }
    }
}

/// The request a queued call replays.
fn forward_of(c: &Call) -> Forward {
    let mut headers = HeaderMap::new();
    for (k, v) in &c.call.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            headers.append(k, v);
        }
    }
    Forward {
        method: Method::from_bytes(c.call.method.as_bytes()).unwrap_or(Method::POST),
        path: c.call.path.clone(),
        query: c.call.query.clone(),
        headers,
        body: Bytes::from(c.body.clone()),
    }
}

/// POSTs an async invocation's result to its `X-Callback-Url` (OpenFaaS: the body, with
/// `X-Call-Id`, `X-Function-Name` and `X-Function-Status`); delivered means a 2xx answer
/// within [`CALLBACK_TIMEOUT`].
async fn post_callback(
    url: &hyper::Uri,
    name: &str,
    call: &str,
    status: u16,
    body: Bytes,
) -> std::result::Result<(), String> {
    let host = url
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_u16().unwrap_or(80);
    let work = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let req = Request::post(path)
            .header(
                hyper::header::HOST,
                url.authority().map(|a| a.as_str()).unwrap_or(""),
            )
            .header("x-call-id", call)
            .header("x-function-name", name)
            .header("x-function-status", status.to_string())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let r = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let code = r.status();
        let _ = r.into_body().collect().await;
        if !code.is_success() {
            return Err(format!("the callback answered {code}"));
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(CALLBACK_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {}s", CALLBACK_TIMEOUT.as_secs()))?
}
