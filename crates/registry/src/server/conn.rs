//! The connection loop: accepts TCP (and TLS) connections and serves HTTP/1.1 on them,
//! with the limits a public server needs against slow or silent clients:
//!
//! - a cap on connections served at once, and one per client address (past them, new
//!   ones are closed with a warning, logged at most every few seconds);
//! - a header-read timeout (hyper's `header_read_timeout`; the TLS handshake gets the
//!   same time);
//! - an idle timeout: a connection on which no byte moved for that long is closed. This
//!   covers idle keep-alive connections, a request body that stopped arriving and a
//!   client that stopped reading its answer. It is a clock read and an atomic store per
//!   socket read or write (not per byte), so a push's throughput does not notice it;
//! - a minimum rate: a connection that moves some bytes, but fewer than
//!   [`MIN_BYTES_PER_SEC`] per second over a window of 30 s (or the idle timeout, if
//!   shorter), is closed — a trickle of one byte per idle timeout cannot hold a slot.
//!
//! Each request carries the client's address ([`Peer`]) for the per-client upload limit.

use super::ServeError;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client's address, a request extension.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The connection limits (from [`super::Config`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

impl From<&super::Config> for Limits {
    fn from(c: &super::Config) -> Limits {
        Limits {
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c.max_connections.max(1),
            max_connections_per_client: c.max_connections_per_client.max(1),
        }
    }
}

/// Milliseconds since `epoch` of the last byte read or written.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    /// Bytes read and written so far.
    bytes: AtomicU64,
}

impl Activity {
    fn touch(&self, n: usize) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records when bytes last moved.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len() - before;
        if matches!(r, Poll::Ready(Ok(()))) && got > 0 {
            self.activity.touch(got);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.activity.touch(n);
            }
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.activity.touch(n);
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as a hyper service that adds [`Peer`] to each request.
#[derive(Clone)]
struct WithPeer {
    app: TowerToHyperService<axum::Router>,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for WithPeer {
    type Response = <TowerToHyperService<axum::Router> as hyper::service::Service<
        hyper::Request<Incoming>,
    >>::Response;
    type Error = <TowerToHyperService<axum::Router> as hyper::service::Service<
        hyper::Request<Incoming>,
    >>::Error;
    type Future = <TowerToHyperService<axum::Router> as hyper::service::Service<
        hyper::Request<Incoming>,
    >>::Future;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(Peer(self.peer));
        self.app.call(req)
    }
}

/// Logs "connection limit reached" at most once per this interval.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(5);

/// The slowest a connection that moves bytes may be, averaged over [`RATE_WINDOW`].
pub const MIN_BYTES_PER_SEC: u64 = 1024;
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// Connections per client address; a [`PerClient`] guard gives its slot back.
#[derive(Default)]
struct Clients(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

struct PerClient {
    clients: Arc<Clients>,
    ip: std::net::IpAddr,
}

impl Clients {
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<PerClient> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PerClient {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for PerClient {
    fn drop(&mut self) {
        let mut m = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
) -> Result<(), ServeError> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let clients = Arc::new(Clients::default());
    let mut last_limit_log: Option<Instant> = None;
    let mut last_client_log: Option<Instant> = None;
    let mut refused = 0u64;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if last_limit_log.is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    %peer,
                    "connection limit reached: closing new connections (see --max-connections)"
                );
                last_limit_log = Some(Instant::now());
                refused = 0;
            }
            drop(tcp);
            continue;
        };
        let Some(per_client) = clients.enter(peer.ip(), limits.max_connections_per_client) else {
            if last_client_log.is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY) {
                tracing::warn!(
                    max_connections_per_client = limits.max_connections_per_client,
                    client = %peer.ip(),
                    "per-client connection limit reached: closing its new connections \
                     (see --max-connections-per-client)"
                );
                last_client_log = Some(Instant::now());
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = (permit, per_client);
            let activity = Arc::new(Activity {
                epoch: Instant::now(),
                last_ms: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            });
            let svc = WithPeer {
                app: TowerToHyperService::new(app),
                peer,
            };
            match tls {
                None => {
                    let io = Watched {
                        inner: tcp,
                        activity: activity.clone(),
                    };
                    serve_one(io, svc, activity, limits, peer).await;
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "tls handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "tls handshake timed out");
                                return;
                            }
                        };
                    let io = Watched {
                        inner: stream,
                        activity: activity.clone(),
                    };
                    serve_one(io, svc, activity, limits, peer).await;
                }
            }
        });
    }
}

/// Serves one connection until it ends or goes idle.
async fn serve_one<S>(
    io: Watched<S>,
    svc: WithPeer,
    activity: Arc<Activity>,
    limits: Limits,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout / 4).max(Duration::from_millis(100));
    let window = RATE_WINDOW.min(limits.idle_timeout);
    let min_bytes = MIN_BYTES_PER_SEC.saturating_mul(window.as_secs().max(1));
    let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            _ = tokio::time::sleep(tick) => {
                let idle = activity.idle();
                if idle >= limits.idle_timeout {
                    tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "idle connection closed");
                    return;
                }
                if window_start.elapsed() >= window {
                    let bytes = activity.bytes.load(Ordering::Relaxed);
                    let moved = bytes - window_bytes;
                    // Wholly idle connections are the idle timeout's; a trickle is ours.
                    if moved > 0 && moved < min_bytes {
                        tracing::debug!(%peer, moved, window_s = window.as_secs(), "connection too slow: closed");
                        return;
                    }
                    (window_start, window_bytes) = (Instant::now(), bytes);
                }
            }
        }
    }
}
