//! The Docker API over TLS (dockerd's `--tlscert/--tlskey/--tlscacert/--tlsverify`):
//! `berth serve --docker-listen ADDR --tls-cert FILE --tls-key FILE [--tls-ca FILE]`.
//!
//! rustls with the ring provider (no OpenSSL), PEM files read through rustls-pki-types.
//! With a CA, every client must present a certificate that chains to it (dockerd's
//! `--tlsverify`: the API gives root, the certificate is the only authentication); without
//! one, any client that speaks TLS is served (the caller decides whether that is allowed).
//!
//! The connections are served by hyper directly (not `axum::serve`) so that each runs over
//! its TLS stream, with upgrades on: attach and exec hijack the TLS stream as they do a
//! plain socket (hijack.rs).

use crate::{router, Api};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the TLS configuration could not be made; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("--tls-key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("--tls-ca {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("--tls-cert {cert} and --tls-key {key}: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The PEM files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate signed by this CA.
    pub ca: Option<PathBuf>,
}

/// The certificates of a PEM file (at least one).
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let v = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    if v.is_empty() {
        return Err("no certificate (PEM \"CERTIFICATE\" block) in it".into());
    }
    Ok(v)
}

/// The rustls server configuration of `f`.
pub fn server_config(f: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&f.cert).map_err(|reason| TlsError::Cert {
        path: f.cert.clone(),
        reason,
    })?;
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| TlsError::Key {
        path: f.key.clone(),
        reason: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Cert {
            path: f.cert.clone(),
            reason: e.to_string(),
        })?;
    let builder = match &f.ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let cerr = |reason: String| TlsError::Ca {
                path: ca.clone(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca).map_err(cerr)? {
                roots.add(c).map_err(|e| cerr(e.to_string()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| cerr(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Pair {
            cert: f.cert.clone(),
            key: f.key.clone(),
            reason: e.to_string(),
        })?;
    // Docker clients speak HTTP/1.1 (the hijack is an HTTP/1.1 upgrade).
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The acceptor of `f` (errors name the file at fault).
pub fn acceptor(f: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server_config(f)?)))
}

/// Serves the API over TLS on `listener` until `shutdown` resolves (connections still open
/// then are left to the runtime's end).
pub async fn serve_tls(
    api: Api,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(api);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!(error = %e, "docker api (tls): accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(peer = %peer, error = %e, "docker api (tls): handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(peer = %peer, "docker api (tls): handshake timed out");
                    return;
                }
            };
            let svc = TowerToHyperService::new(app);
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // A client that sends no complete request head in time is dropped (the
            // listener may face a network).
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let r = b
                .http1_only()
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await;
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "docker api (tls): connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("berth-dockerapi-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a pem file\n").expect("write");
        let f = TlsFiles {
            cert: junk.clone(),
            key: dir.join("missing.pem"),
            ca: None,
        };
        let e = server_config(&f).expect_err("junk cert").to_string();
        assert!(
            e.starts_with("--tls-cert ") && e.contains("junk.pem"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
