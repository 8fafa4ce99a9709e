//! The connection loop: accepts TCP (and TLS) connections and serves HTTP/1.1 on them,
//! with the limits a public server needs against slow or silent clients:
//!
//! - a cap on connections served at once (past it, new ones are closed with a warning,
//!   logged at most every few seconds);
//! - a header-read timeout (hyper's `header_read_timeout`; the TLS handshake gets the
//!   same time);
//! - an idle timeout: a connection on which no byte moved for that long is closed. This
//!   covers idle keep-alive connections, a request body that stopped arriving and a
//!   client that stopped reading its answer. It is a clock read and an atomic store per
//!   socket read or write (not per byte), so a push's throughput does not notice it.
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
}

impl From<&super::Config> for Limits {
    fn from(c: &super::Config) -> Limits {
        Limits {
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c.max_connections.max(1),
        }
    }
}

/// Milliseconds since `epoch` of the last byte read or written.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
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
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
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
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
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

/// Accepts connections until the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
) -> Result<(), ServeError> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut last_limit_log: Option<Instant> = None;
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
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let activity = Arc::new(Activity {
                epoch: Instant::now(),
                last_ms: AtomicU64::new(0),
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
            }
        }
    }
}
