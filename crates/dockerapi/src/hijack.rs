//! The connection hijack of Docker's attach and exec (API "Hijacking"): the client sends
//! `Connection: Upgrade` and `Upgrade: tcp`; we answer `101 UPGRADED` with the stream's
//! content type (`application/vnd.docker.raw-stream` on a terminal,
//! `application/vnd.docker.multiplexed-stream` otherwise) and the socket then carries the
//! container's input one way and its output the other. A client that asks for no upgrade
//! (older ones) gets `200` and the output as the response body (no input).
//!
//! `POST /containers/{id}/attach` rides on the monitor's attach socket (engine::attach, as
//! `berth attach`). Attaching to a container that has not started yet (`docker run`
//! attaches, then starts) leaves a pending attach: the start request that follows starts
//! the container with the attach connection already made (`Engine::start_attached`), so
//! none of its output is missed.

use crate::{flag, ApiError, ApiResult};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::attach as wire;
use engine::logfiles::ReadOpts;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The raw connection once hijacked.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

pub const RAW: &str = "application/vnd.docker.raw-stream";
pub const MUX: &str = "application/vnd.docker.multiplexed-stream";

/// One frame of Docker's multiplexed stream: `[stream, 0, 0, 0, len (u32 BE)]` + payload
/// (stream 0 stdin, 1 stdout, 2 stderr); the payload alone on a terminal.
pub fn frame(stream: u8, data: &[u8], raw: bool) -> Vec<u8> {
    if raw {
        return data.to_vec();
    }
    let mut f = Vec::with_capacity(data.len() + 8);
    f.extend_from_slice(&[stream, 0, 0, 0]);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// Answers `req` for a hijacked stream and runs `run` on the connection once it is ours.
pub fn hijack<F, Fut>(mut req: Request, raw: bool, run: F) -> Response
where
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ctype = if raw { RAW } else { MUX };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if upgrade {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on.await {
                Ok(up) => run(Box::new(hyper_util::rt::TokioIo::new(up))).await,
                Err(e) => tracing::debug!(error = %e, "docker api: the upgrade failed"),
            }
        });
        let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        return r;
    }
    // No upgrade: the output is the body; the client's side of the pipe sends nothing.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (rd, wr) = tokio::io::split(theirs);
    drop(wr);
    tokio::spawn(run(Box::new(ours)));
    let body = Body::from_stream(ReadStream(rd));
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

/// An [`AsyncRead`] as a body stream.
struct ReadStream<R>(R);

impl<R: AsyncRead + Unpin> futures_core::Stream for ReadStream<R> {
    type Item = std::io::Result<bytes::Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let mut buf = [0u8; 16 * 1024];
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        match std::pin::Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Ok(())) => {
                std::task::Poll::Ready(Some(Ok(bytes::Bytes::copy_from_slice(rb.filled()))))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// Attaches waiting for their container's start: container ID → where the start sends
/// the attach socket's connection.
type Pending = HashMap<String, tokio::sync::oneshot::Sender<std::os::unix::net::UnixStream>>;
static PENDING: LazyLock<Mutex<Pending>> = LazyLock::new(Default::default);

fn pending() -> std::sync::MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the client asked of an attach.
#[derive(Clone, Copy)]
struct Want {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    raw: bool,
    detach: Option<[u8; 2]>,
}

/// Docker's `detachKeys` (`ctrl-p,ctrl-q` by default): two control keys; anything else
/// refused. An empty value keeps the default.
fn detach_keys(v: Option<&String>) -> Result<Option<[u8; 2]>, ApiError> {
    let v = match v.map(String::as_str) {
        None | Some("") => "ctrl-p,ctrl-q",
        Some(v) => v,
    };
    let key = |k: &str| -> Option<u8> {
        let c = k.strip_prefix("ctrl-")?;
        match c.as_bytes() {
            [b] if b.is_ascii_alphabetic() => Some(b.to_ascii_lowercase() - b'a' + 1),
            [b'@'] => Some(0),
            [b'['] => Some(27),
            [b'\\'] => Some(28),
            [b']'] => Some(29),
            [b'^'] => Some(30),
            [b'_'] => Some(31),
            _ => None,
        }
    };
    let ks: Vec<Option<u8>> = v.split(',').map(key).collect();
    match ks.as_slice() {
        [Some(a), Some(b)] => Ok(Some([*a, *b])),
        _ => Err(ApiError::BadRequest(format!(
            "invalid detachKeys {v:?} (two keys such as ctrl-p,ctrl-q)"
        ))),
    }
}

/// `POST /containers/{id}/attach?stream&stdin&stdout&stderr&logs&detachKeys`.
pub async fn attach(
    e: engine::Engine,
    id: String,
    q: BTreeMap<String, String>,
    req: Request,
) -> ApiResult {
    let c = crate::blocking({
        let e = e.clone();
        move || Ok(e.inspect(&id)?)
    })
    .await?;
    let raw = c.spec.opts.tty;
    let want = Want {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        raw,
        detach: detach_keys(q.get("detachKeys"))?,
    };
    if !flag(&q, "stream") {
        // Logs only (`logs=1`, no stream): what the container printed, then the end.
        let logs = flag(&q, "logs");
        return Ok(hijack(req, raw, move |mut conn| async move {
            if logs {
                let _ = send_log(&e, &c, want, &mut conn, ReadOpts::default()).await;
            }
            let _ = conn.shutdown().await;
        }));
    }
    // `logs=1` with the stream (as dockerd): the log so far, then the live output.
    let logs = flag(&q, "logs");
    let started = c.state.is_active();
    let rx = if started {
        None
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel();
        pending().insert(c.id.clone(), tx);
        Some(rx)
    };
    tracing::debug!(container = %c.id, pending = rx.is_some(), "docker api: attach");
    Ok(hijack(req, raw, move |mut conn| async move {
        // The log up to now (for a running container: once the attach connection is made,
        // so nothing printed in between is missed; a line printed in that instant may come
        // twice).
        let upto = || ReadOpts {
            until: Some(engine::logfiles::now_nanos()),
            ..Default::default()
        };
        let sock = match rx {
            Some(rx) => {
                if logs && send_log(&e, &c, want, &mut conn, upto()).await.is_err() {
                    pending().remove(&c.id);
                    return;
                }
                wait_start(&e, &c.id, rx).await
            }
            None => {
                let s = crate::blocking({
                    let (e, c) = (e.clone(), c.clone());
                    move || Ok(e.attach(&c)?)
                })
                .await
                .ok();
                if logs && s.is_some() && send_log(&e, &c, want, &mut conn, upto()).await.is_err() {
                    return;
                }
                s
            }
        };
        match sock {
            Some(s) => bridge(s, conn, want).await,
            None => {
                // berth-pump serves no attach socket: follow the log from now on.
                let mut conn = conn;
                if let Ok(c) = crate::blocking({
                    let (e, id) = (e.clone(), c.id.clone());
                    move || Ok(e.inspect(&id)?)
                })
                .await
                {
                    let o = ReadOpts {
                        follow: true,
                        since: (!logs).then(engine::logfiles::now_nanos),
                        ..Default::default()
                    };
                    let _ = send_log(&e, &c, want, &mut conn, o).await;
                }
                let _ = conn.shutdown().await;
            }
        }
    }))
}

/// Waits for the start of a container attached before it ran: the connection the start
/// made for us, or ours if it was started elsewhere (`berth start`).
async fn wait_start(
    e: &engine::Engine,
    id: &str,
    mut rx: tokio::sync::oneshot::Receiver<std::os::unix::net::UnixStream>,
) -> Option<std::os::unix::net::UnixStream> {
    loop {
        tokio::select! {
            r = &mut rx => return r.ok(),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let (e2, id2) = (e.clone(), id.to_string());
        let now = crate::blocking(move || Ok(e2.inspect(&id2)?)).await;
        match now {
            Ok(c) if c.state.is_active() => {
                pending().remove(id);
                // The start may have taken our sender just now.
                if let Ok(s) = rx.try_recv() {
                    return Some(s);
                }
                let e2 = e.clone();
                return crate::blocking(move || Ok(e2.attach(&c)?)).await.ok();
            }
            Ok(_) => {}
            Err(_) => {
                pending().remove(id);
                return None;
            }
        }
    }
}

/// `POST /containers/{id}/start` when an attach waits for it: starts the container with
/// the attach connection made first and hands it over. None when no attach waits.
pub async fn start_pending(e: &engine::Engine, id: &str) -> Option<ApiResult> {
    if pending().is_empty() {
        return None;
    }
    let (e2, id2) = (e.clone(), id.to_string());
    let c = crate::blocking(move || Ok(e2.inspect(&id2)?)).await.ok()?;
    let tx = pending().remove(&c.id)?;
    let e2 = e.clone();
    let cid = c.id.clone();
    let r = crate::blocking(move || Ok(e2.start_attached(&cid, b"")?)).await;
    Some(match r {
        Ok((_, s)) => {
            let _ = tx.send(s);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(err) => {
            // As Docker's daemon: a container to remove on exit is removed when it cannot
            // start (`docker run --rm` waits for that).
            if c.spec.auto_remove {
                let (e2, cid) = (e.clone(), c.id.clone());
                let _ = crate::blocking(move || Ok(e2.remove(&cid, true)?)).await;
            }
            Err(err)
        }
    })
}

/// The client's connection and the monitor's attach socket, joined: the monitor's
/// output frames become Docker's, the client's bytes the container's input.
async fn bridge(sock: std::os::unix::net::UnixStream, conn: Conn, want: Want) {
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(sock) = tokio::net::UnixStream::from_std(sock) else {
        return;
    };
    let (mut srd, mut swr) = sock.into_split();
    let (mut crd, mut cwr) = tokio::io::split(conn);
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut prev_key = false;
        loop {
            let n = match crd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !want.stdin {
                continue;
            }
            let mut data = &buf[..n];
            let mut detach = false;
            if let Some([k1, k2]) = want.detach.filter(|_| want.raw) {
                // The detach sequence ends the attach; the container runs on.
                for (i, &b) in data.iter().enumerate() {
                    if prev_key && b == k2 {
                        data = &data[..i.saturating_sub(1)];
                        detach = true;
                        break;
                    }
                    prev_key = b == k1;
                }
            }
            if !data.is_empty()
                && swr
                    .write_all(&wire::encode(wire::IN_DATA, data))
                    .await
                    .is_err()
            {
                return;
            }
            if detach {
                let _ = detached_tx.send(());
                return;
            }
        }
        if want.stdin {
            let _ = swr.write_all(&wire::encode(wire::IN_CLOSE, b"")).await;
        }
        // Keep the socket's write side open: a closed one would end the monitor's client.
        std::future::pending::<()>().await;
    });
    loop {
        let mut head = [0u8; 5];
        let r = tokio::select! {
            r = srd.read_exact(&mut head) => r,
            _ = &mut detached_rx => break,
        };
        if r.is_err() {
            break;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > wire::MAX_FRAME {
            break;
        }
        let mut body = vec![0u8; len];
        if srd.read_exact(&mut body).await.is_err() {
            break;
        }
        let out = match head[0] {
            wire::OUT_STDOUT if want.stdout => frame(1, &body, want.raw),
            wire::OUT_STDERR if want.stderr => frame(2, &body, want.raw),
            wire::OUT_EXIT => break,
            _ => continue,
        };
        if cwr.write_all(&out).await.is_err() {
            break;
        }
    }
    input.abort();
    let _ = cwr.shutdown().await;
}

/// The container's log to the client, as `o` selects it.
async fn send_log(
    e: &engine::Engine,
    c: &engine::Container,
    want: Want,
    conn: &mut Conn,
    o: ReadOpts,
) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let (e, c) = (e.clone(), c.clone());
    tokio::task::spawn_blocking(move || {
        let mut out = ChanWriter(tx.clone(), 1, want.raw, want.stdout);
        let mut err = ChanWriter(tx, 2, want.raw, want.stderr);
        let _ = e.print_log(&c, &o, &mut out, &mut err);
    });
    while let Some(f) = rx.recv().await {
        conn.write_all(&f).await?;
    }
    Ok(())
}

/// Writes frames of one stream to a channel (nothing when `.3` is false).
struct ChanWriter(tokio::sync::mpsc::Sender<Vec<u8>>, u8, bool, bool);

impl std::io::Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.3 {
            self.0
                .blocking_send(frame(self.1, data, self.2))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `h` and `w` of a resize request.
pub fn size(q: &BTreeMap<String, String>) -> Result<(u16, u16), ApiError> {
    let n = |k: &str| -> Result<u16, ApiError> {
        let v = q.get(k).map(String::as_str).unwrap_or("");
        v.parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid {k} {v:?}: a number of cells")))
    };
    Ok((n("h")?, n("w")?))
}

/// `POST /containers/{id}/resize?h&w`: the terminal's new size, through the attach socket.
pub async fn resize(e: engine::Engine, id: String, q: BTreeMap<String, String>) -> ApiResult {
    let (h, w) = size(&q)?;
    crate::blocking(move || {
        let c = e.inspect(&id)?;
        if !c.state.is_active() {
            return Err(ApiError::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        if c.spec.opts.tty {
            let mut s = e.attach(&c)?;
            let mut size = [0u8; 4];
            size[..2].copy_from_slice(&h.to_be_bytes());
            size[2..].copy_from_slice(&w.to_be_bytes());
            std::io::Write::write_all(&mut s, &wire::encode(wire::IN_RESIZE, &size))
                .map_err(|x| ApiError::Internal(format!("resize: {x}")))?;
        }
        Ok(StatusCode::OK.into_response())
    })
    .await
}

/// Shared with exec.rs: frames sent to a hijacked connection by a single writer.
pub fn writer(
    conn_wr: tokio::io::WriteHalf<Conn>,
) -> (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let mut wr = conn_wr;
    let h = tokio::spawn(async move {
        let mut ok = true;
        while let Some(f) = rx.recv().await {
            if ok && wr.write_all(&f).await.is_err() {
                ok = false;
            }
        }
        let _ = wr.shutdown().await;
    });
    (tx, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_detach_keys() {
        assert_eq!(
            frame(2, b"hi", false),
            vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(frame(1, b"hi", true), b"hi".to_vec());
        assert_eq!(detach_keys(None).expect("default"), Some([16, 17]));
        assert_eq!(
            detach_keys(Some(&"ctrl-a,ctrl-\\".to_string())).expect("valid"),
            Some([1, 28])
        );
        assert!(detach_keys(Some(&"x".to_string())).is_err());
    }
}
