//! The registry client: one [`Registry`] per host, speaking the distribution API with
//! basic or bearer-token auth (the `WWW-Authenticate` challenge decides), retries with
//! exponential backoff, chunked uploads that resume from the server's `Range` after a
//! dropped connection, and downloads that resume with `Range` requests. [`transfer`]
//! pushes and pulls OCI image layouts with it.

pub mod auth;
pub mod layout;
pub mod transfer;

use crate::media;
use crate::reference::parse_digest;
use crate::reference::{Algorithm, Digest, Name, Reference};
use layout::Descriptor;
use reqwest::header::{
    HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sha2::{Digest as _, Sha256, Sha512};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {url}")]
    Http {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{url} sent {actual}, expected {expected}")]
    DigestMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error("image reference {0:?} is not HOST[:PORT]/NAME[:TAG|@DIGEST]")]
    BadReference(String),
    #[error("token from {realm}: {detail}")]
    Token { realm: String, detail: String },
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error(transparent)]
    AuthFile(#[from] auth::AuthFileError),
    #[error(
        "upload of {digest} stopped at byte {offset} of {size} after {attempts} failed attempts"
    )]
    Upload {
        digest: String,
        offset: u64,
        size: u64,
        attempts: u32,
        #[source]
        source: Box<ClientError>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_path_buf();
    move |source| ClientError::Io { path, source }
}

/// `HOST[:PORT]/NAME[:TAG][@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub name: Name,
    pub reference: Reference,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, ClientError> {
        let bad = || ClientError::BadReference(s.to_string());
        let (registry, rest) = s.split_once('/').ok_or_else(bad)?;
        if registry.is_empty()
            || !(registry.contains('.') || registry.contains(':') || registry == "localhost")
        {
            return Err(bad());
        }
        let (path, reference) = if let Some((p, d)) = rest.split_once('@') {
            (p, Reference::Digest(parse_digest(d).map_err(|_| bad())?))
        } else {
            match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') => (p, Reference::parse(t).map_err(|_| bad())?),
                _ => (rest, Reference::Tag("latest".into())),
            }
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            name: Name::parse(path).map_err(|_| bad())?,
            reference,
        })
    }

    pub fn reference_str(&self) -> String {
        match &self.reference {
            Reference::Tag(t) => t.clone(),
            Reference::Digest(d) => d.to_string(),
        }
    }
}

/// How a [`Registry`] connects.
#[derive(Debug, Clone)]
pub struct Options {
    /// `false`: plain HTTP (meant for registries on loopback), like podman's
    /// `--tls-verify=false`.
    pub tls_verify: bool,
    pub credentials: Option<(String, String)>,
    /// Retries of a failed request (connection errors, 5xx, 429).
    pub retries: u32,
    /// Size of one upload chunk (`PATCH`).
    pub chunk_size: u64,
    /// Blobs transferred at once.
    pub parallel: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls_verify: true,
            credentials: None,
            retries: 4,
            chunk_size: 16 * 1024 * 1024,
            parallel: 4,
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest;
    while let Some((k, after)) = s.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k, v.to_string());
        s = tail;
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

/// A connection to one registry.
pub struct Registry {
    http: reqwest::Client,
    pub host: String,
    base: String,
    opts: Options,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, String>>,
}

/// The scope string for `name` and actions.
pub fn scope(name: &Name, push: bool) -> String {
    format!(
        "repository:{name}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6)))
}

impl Registry {
    pub fn new(host: &str, opts: Options) -> Result<Registry, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Http {
                method: Method::GET,
                url: host.to_string(),
                source,
            })?;
        let scheme = if opts.tls_verify { "https" } else { "http" };
        Ok(Registry {
            http,
            host: host.to_string(),
            base: format!("{scheme}://{host}"),
            opts,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// An absolute URL for a path or a `Location` header (absolute or relative).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn authorize(&self, rb: RequestBuilder, scope: &str) -> RequestBuilder {
        let challenge = self.challenge.lock().ok().and_then(|c| c.clone());
        match challenge {
            Some(Challenge::Bearer { .. }) => {
                match self.tokens.lock().ok().and_then(|t| t.get(scope).cloned()) {
                    Some(t) => rb.bearer_auth(t),
                    None => rb,
                }
            }
            Some(Challenge::Basic) => match &self.opts.credentials {
                Some((u, p)) => rb.basic_auth(u, Some(p)),
                None => rb,
            },
            None => rb,
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(), ClientError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            q.push(("service", s));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            q.push(("scope", s));
        }
        let mut rb = self.http.get(realm).query(&q);
        if let Some((u, p)) = &self.opts.credentials {
            rb = rb.basic_auth(u, Some(p));
        }
        let terr = |detail: String| ClientError::Token {
            realm: realm.to_string(),
            detail,
        };
        let resp = rb.send().await.map_err(|e| terr(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(terr(format!("status {}", resp.status())));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| terr(e.to_string()))?;
        let tok = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| terr("no token in the answer".into()))?;
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(scope.to_string(), tok.to_string());
        }
        Ok(())
    }

    /// Sends a request built by `mk`, answering one auth challenge and retrying connection
    /// errors, 5xx and 429 with backoff (`retry` false: one attempt, for non-idempotent
    /// chunk uploads whose recovery asks the server where it stands).
    async fn send(
        &self,
        scope: &str,
        retry: bool,
        mk: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Sync),
    ) -> Result<Response, ClientError> {
        let mut attempt = 0;
        let mut authed = false;
        loop {
            let rb = self.authorize(mk(&self.http), scope);
            let req = rb.build().map_err(|source| ClientError::Http {
                method: Method::GET,
                url: self.base.clone(),
                source,
            })?;
            let (method, url) = (req.method().clone(), req.url().to_string());
            match self.http.execute(req).await {
                Err(source) => {
                    if retry && attempt < self.opts.retries {
                        tracing::debug!(%method, %url, error = %source, attempt, "retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(ClientError::Http {
                        method,
                        url,
                        source,
                    });
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authed => {
                    authed = true;
                    let ch = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    match ch {
                        Some(Challenge::Bearer { realm, service }) => {
                            self.fetch_token(&realm, service.as_deref(), scope).await?;
                            if let Ok(mut c) = self.challenge.lock() {
                                *c = Some(Challenge::Bearer { realm, service });
                            }
                        }
                        Some(Challenge::Basic) if self.opts.credentials.is_some() => {
                            if let Ok(mut c) = self.challenge.lock() {
                                *c = Some(Challenge::Basic);
                            }
                        }
                        _ => return Ok(resp),
                    }
                }
                Ok(resp)
                    if retry
                        && (resp.status().is_server_error()
                            || resp.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < self.opts.retries =>
                {
                    tracing::debug!(%method, %url, status = %resp.status(), attempt, "retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    async fn expect(resp: Response, ok: &[StatusCode]) -> Result<Response, ClientError> {
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        let (url, status) = (resp.url().to_string(), resp.status());
        let body = resp.text().await.unwrap_or_default();
        Err(ClientError::Status {
            url,
            status,
            body: body.chars().take(400).collect(),
        })
    }

    /// `GET /v2/`: checks reachability and credentials.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let url = self.url("/v2/");
        let resp = self.send("", true, &|c| c.get(&url)).await?;
        Self::expect(resp, &[StatusCode::OK]).await.map(|_| ())
    }

    /// `HEAD` a blob: whether the repository has it.
    pub async fn blob_exists(&self, name: &Name, d: &Digest) -> Result<bool, ClientError> {
        let url = self.url(&format!("/v2/{name}/blobs/{d}"));
        let resp = self
            .send(&scope(name, true), true, &|c| c.head(&url))
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Self::expect(resp, &[]).await.map(|_| false),
        }
    }

    /// Cross-repository mount of `d` from `from`; `false` if the registry declined.
    pub async fn mount(&self, name: &Name, d: &Digest, from: &Name) -> Result<bool, ClientError> {
        let url = self.url(&format!("/v2/{name}/blobs/uploads/?mount={d}&from={from}"));
        let sc = format!("{} {}", scope(name, true), scope(from, false));
        let resp = self
            .send(&sc, true, &|c| c.post(&url).header(CONTENT_LENGTH, "0"))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload instead: cancel it.
                if let Some(loc) = location(resp.headers()) {
                    let u = self.url(&loc);
                    let _ = self.send(&sc, false, &|c| c.delete(&u)).await;
                }
                Ok(false)
            }
            _ => Self::expect(resp, &[]).await.map(|_| false),
        }
    }

    /// Uploads the file at `path` as blob `desc`, in chunks; after a failed chunk it asks
    /// the server for the upload's `Range` and resumes from there. `sent` is called with
    /// the bytes of each chunk acknowledged.
    pub async fn upload(
        &self,
        name: &Name,
        desc: &Descriptor,
        path: &Path,
        sent: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ClientError> {
        let sc = scope(name, true);
        let start_url = self.url(&format!("/v2/{name}/blobs/uploads/"));
        let d = desc.digest.to_string();
        // Small blobs: one monolithic POST.
        if desc.size <= self.opts.chunk_size.min(1024 * 1024) {
            let data = tokio::fs::read(path).await.map_err(io_err(path))?;
            let url = format!("{start_url}?digest={d}");
            let resp = self
                .send(&sc, true, &|c| {
                    c.post(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .body(data.clone())
                })
                .await?;
            let resp = Self::expect(resp, &[StatusCode::CREATED, StatusCode::ACCEPTED]).await?;
            if resp.status() == StatusCode::ACCEPTED {
                // The registry does not take monolithic POSTs (spec.md allows that): PUT
                // the bytes to the session it opened.
                let loc = location(resp.headers()).ok_or_else(|| ClientError::Status {
                    url: url.clone(),
                    status: resp.status(),
                    body: "no Location header".into(),
                })?;
                let u = self.url(&loc);
                let sep = if u.contains('?') { '&' } else { '?' };
                let put_url = format!("{u}{sep}digest={d}");
                let resp = self
                    .send(&sc, false, &|c| {
                        c.put(&put_url)
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .body(data.clone())
                    })
                    .await?;
                Self::expect(resp, &[StatusCode::CREATED]).await?;
            }
            sent(desc.size);
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path).await.map_err(io_err(path))?;
        let (mut loc, min_chunk) = self.start_session(&sc, &start_url).await?;
        // spec.md "Pushing a blob in chunks": a registry may ask for chunks of at least
        // OCI-Chunk-Min-Length bytes (all but the last).
        let chunk_size = self.opts.chunk_size.max(min_chunk).max(1);
        let mut offset = 0u64;
        let mut failures = 0u32;
        while offset < desc.size {
            let len = chunk_size.min(desc.size - offset);
            let mut buf = vec![0u8; len as usize];
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(io_err(path))?;
            file.read_exact(&mut buf).await.map_err(io_err(path))?;
            let url = self.url(&loc);
            let range = format!("{}-{}", offset, offset + len - 1);
            let res = self
                .send(&sc, false, &|c| {
                    c.patch(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, &range)
                        .body(buf.clone())
                })
                .await;
            let failed: Result<(), ClientError> = match res {
                Ok(r) if r.status() == StatusCode::ACCEPTED => {
                    if let Some(l) = location(r.headers()) {
                        loc = l;
                    }
                    // After a chunk the server holds at least one byte, so `0-0` is not
                    // ambiguous here; a Range outside what was sent is not trusted.
                    let acked = match range_end(r.headers()) {
                        Some(RangeEnd::Next(n)) => n.min(offset + len),
                        Some(RangeEnd::EmptyOrOne) => 1,
                        None => offset + len,
                    };
                    if acked > offset {
                        sent(acked - offset);
                        offset = acked;
                        failures = 0;
                        continue;
                    }
                    Err(ClientError::Status {
                        url: url.clone(),
                        status: r.status(),
                        body: format!("the chunk {range} was accepted but the upload did not grow"),
                    })
                }
                Ok(r) => {
                    Err(Self::expect(r, &[])
                        .await
                        .err()
                        .unwrap_or_else(|| ClientError::Status {
                            url: url.clone(),
                            status: StatusCode::OK,
                            body: "unexpected answer".into(),
                        }))
                }
                Err(e) => Err(e),
            };
            let Err(cause) = failed else { continue };
            failures += 1;
            if failures > self.opts.retries {
                return Err(ClientError::Upload {
                    digest: d.clone(),
                    offset,
                    size: desc.size,
                    attempts: failures,
                    source: Box::new(cause),
                });
            }
            // Ask the server how much it has, then resume from there.
            tracing::debug!(digest = %d, offset, error = %cause, "chunk failed; asking the upload's status");
            tokio::time::sleep(backoff(failures)).await;
            let r = self.send(&sc, true, &|c| c.get(&url)).await?;
            let r = Self::expect(r, &[StatusCode::NO_CONTENT, StatusCode::OK]).await?;
            if let Some(l) = location(r.headers()) {
                loc = l;
            }
            match range_end(r.headers()) {
                Some(RangeEnd::Next(have)) if have <= desc.size => {
                    if have > offset {
                        sent(have - offset);
                    }
                    offset = have;
                }
                // `Range: 0-0` (or none) is what a server holding no byte or one byte
                // says: which one cannot be known, so the upload starts over in a new
                // session (at most one byte is lost).
                _ => {
                    tracing::debug!(digest = %d, "upload status is ambiguous; starting a new session");
                    let old = self.url(&loc);
                    let _ = self.send(&sc, false, &|c| c.delete(&old)).await;
                    let (l, _) = self.start_session(&sc, &start_url).await?;
                    loc = l;
                    offset = 0;
                }
            }
        }
        let url = self.url(&loc);
        let sep = if url.contains('?') { '&' } else { '?' };
        let put_url = format!("{url}{sep}digest={d}");
        let resp = self
            .send(&sc, true, &|c| c.put(&put_url).header(CONTENT_LENGTH, "0"))
            .await?;
        Self::expect(resp, &[StatusCode::CREATED]).await?;
        Ok(())
    }

    /// `POST` of a new upload session: its location and the server's minimum chunk
    /// length (`OCI-Chunk-Min-Length`, 0 when absent).
    async fn start_session(&self, sc: &str, start_url: &str) -> Result<(String, u64), ClientError> {
        let resp = self
            .send(sc, true, &|c| c.post(start_url).header(CONTENT_LENGTH, "0"))
            .await?;
        let resp = Self::expect(resp, &[StatusCode::ACCEPTED]).await?;
        let loc = location(resp.headers()).ok_or_else(|| ClientError::Status {
            url: start_url.to_string(),
            status: resp.status(),
            body: "no Location header".into(),
        })?;
        let min = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        // A chunk is held in memory while it is sent: a server must not be able to make
        // us buffer a whole (possibly huge) blob.
        const MAX_MIN_CHUNK: u64 = 64 << 20;
        if min > MAX_MIN_CHUNK {
            return Err(ClientError::Status {
                url: start_url.to_string(),
                status: resp.status(),
                body: format!(
                    "OCI-Chunk-Min-Length {min} is above the {MAX_MIN_CHUNK} bytes a chunk may hold"
                ),
            });
        }
        Ok((loc, min))
    }

    /// Downloads blob `desc` to `dest` (through a `.partial` file), verifying its digest;
    /// a dropped connection resumes with a `Range` request.
    pub async fn download(
        &self,
        name: &Name,
        desc: &Descriptor,
        dest: &Path,
        got: &(dyn Fn(u64) + Sync),
    ) -> Result<(), ClientError> {
        let url = self.url(&format!("/v2/{name}/blobs/{}", desc.digest));
        // A temp name of this download's own: two pulls of one blob into one store must
        // never write into the same file (each verifies what it received, not the file).
        // It is locked (flock) while this download runs, so that another process's
        // `image prune` or pull collects it only once we are gone (content::create_partial).
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
        }
        let (tmp, f) = content::create_partial(|| {
            dest.with_extension(format!("partial-{}", uuid::Uuid::new_v4()))
        })
        .map_err(io_err(dest))?;
        let mut f = tokio::fs::File::from_std(f);
        let mut h256 = Sha256::new();
        let mut h512 = Sha512::new();
        let mut have = 0u64;
        let mut failures = 0;
        let sc = scope(name, false);
        loop {
            let from = have;
            let resp = self
                .send(&sc, true, &|c| {
                    let rb = c.get(&url);
                    if from > 0 {
                        rb.header(RANGE, format!("bytes={from}-"))
                    } else {
                        rb
                    }
                })
                .await?;
            let mut resp =
                Self::expect(resp, &[StatusCode::OK, StatusCode::PARTIAL_CONTENT]).await?;
            if from > 0 && resp.status() == StatusCode::OK {
                // The server ignored the Range: start over.
                f.set_len(0).await.map_err(io_err(&tmp))?;
                f.seek(std::io::SeekFrom::Start(0))
                    .await
                    .map_err(io_err(&tmp))?;
                h256 = Sha256::new();
                h512 = Sha512::new();
                have = 0;
            }
            let mut broke = false;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        // A registry that sends more than the descriptor's size is
                        // refused before it can fill the disk.
                        if have + c.len() as u64 > desc.size {
                            let _ = tokio::fs::remove_file(&tmp).await;
                            return Err(ClientError::TooLarge {
                                url: url.clone(),
                                limit: desc.size,
                            });
                        }
                        f.write_all(&c).await.map_err(io_err(&tmp))?;
                        match desc.digest.algorithm() {
                            Algorithm::Sha256 => h256.update(&c),
                            Algorithm::Sha512 => h512.update(&c),
                        }
                        have += c.len() as u64;
                        got(c.len() as u64);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failures += 1;
                        if failures > self.opts.retries {
                            return Err(ClientError::Http {
                                method: Method::GET,
                                url: url.clone(),
                                source: e,
                            });
                        }
                        broke = true;
                        break;
                    }
                }
            }
            if !broke {
                break;
            }
            tokio::time::sleep(backoff(failures)).await;
        }
        f.flush().await.map_err(io_err(&tmp))?;
        f.sync_all().await.map_err(io_err(&tmp))?;
        let hex = match desc.digest.algorithm() {
            Algorithm::Sha256 => crate::reference::hex(&h256.finalize()),
            Algorithm::Sha512 => crate::reference::hex(&h512.finalize()),
        };
        let actual = parse_digest(&format!("{}:{hex}", desc.digest.algorithm().name()))
            .map_err(|_| ClientError::BadReference(hex.clone()))?;
        if actual != desc.digest {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ClientError::DigestMismatch {
                url,
                expected: desc.digest.clone(),
                actual,
            });
        }
        tokio::fs::rename(&tmp, dest).await.map_err(io_err(dest))
    }

    /// `GET` a manifest: (bytes, media type, digest), digest verified when the reference
    /// is one.
    pub async fn get_manifest(
        &self,
        name: &Name,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest), ClientError> {
        let url = self.url(&format!("/v2/{name}/manifests/{reference}"));
        let accept = media::ALL_MANIFESTS.join(", ");
        let resp = self
            .send(&scope(name, false), true, &|c| {
                c.get(&url).header("accept", &accept)
            })
            .await?;
        let resp = Self::expect(resp, &[StatusCode::OK]).await?;
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|source| ClientError::Http {
            method: Method::GET,
            url: url.clone(),
            source,
        })? {
            if bytes.len() + c.len() > crate::server::MAX_MANIFEST {
                return Err(ClientError::TooLarge {
                    url,
                    limit: crate::server::MAX_MANIFEST as u64,
                });
            }
            bytes.extend_from_slice(&c);
        }
        let (alg, want) = match Reference::parse(reference) {
            Ok(Reference::Digest(d)) => (d.algorithm(), Some(d)),
            _ => (Algorithm::Sha256, None),
        };
        let actual = Digest::of(alg, &bytes);
        if let Some(want) = want {
            if want != actual {
                return Err(ClientError::DigestMismatch {
                    url,
                    expected: want,
                    actual,
                });
            }
        }
        let mt = ct
            .filter(|c| !c.is_empty() && c != "application/json")
            .unwrap_or_else(|| layout::manifest_media_type(&bytes));
        Ok((bytes, mt, actual))
    }

    /// `PUT` a manifest.
    pub async fn put_manifest(
        &self,
        name: &Name,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        let url = self.url(&format!("/v2/{name}/manifests/{reference}"));
        let resp = self
            .send(&scope(name, true), true, &|c| {
                c.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec())
            })
            .await?;
        Self::expect(resp, &[StatusCode::CREATED, StatusCode::OK])
            .await
            .map(|_| ())
    }
}

fn location(h: &HeaderMap) -> Option<String> {
    h.get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What an upload's `Range: 0-END` header says the server holds.
#[derive(Debug, PartialEq, Eq)]
enum RangeEnd {
    /// END+1 bytes: the next offset.
    Next(u64),
    /// `0-0`: spec.md writes the last byte's offset, so an empty upload and a one-byte
    /// upload look alike.
    EmptyOrOne,
}

fn parse_range_end(r: &str) -> Option<RangeEnd> {
    let r = r.trim();
    let r = r.strip_prefix("bytes=").unwrap_or(r);
    let (start, end) = r.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let end: u64 = end.trim().parse().ok()?;
    Some(match end {
        0 => RangeEnd::EmptyOrOne,
        e => RangeEnd::Next(e.checked_add(1)?),
    })
}

fn range_end(h: &HeaderMap) -> Option<RangeEnd> {
    parse_range_end(h.get(RANGE)?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ranges() {
        assert_eq!(parse_range_end("0-0"), Some(RangeEnd::EmptyOrOne));
        assert_eq!(parse_range_end("0-9"), Some(RangeEnd::Next(10)));
        assert_eq!(parse_range_end("bytes=0-9"), Some(RangeEnd::Next(10)));
        assert_eq!(parse_range_end("5-9"), None);
        assert_eq!(parse_range_end("0-x"), None);
        assert_eq!(parse_range_end(&format!("0-{}", u64::MAX)), None);
    }

    #[test]
    fn image_refs() {
        let r = ImageRef::parse("127.0.0.1:5000/a/b:v1").expect("parse");
        assert_eq!(
            (
                r.registry.as_str(),
                r.name.as_str(),
                r.reference_str().as_str()
            ),
            ("127.0.0.1:5000", "a/b", "v1")
        );
        let r = ImageRef::parse("localhost/x").expect("parse");
        assert_eq!(r.reference_str(), "latest");
        let d = Digest::of(Algorithm::Sha256, b"");
        let r = ImageRef::parse(&format!("reg.example:1/x@{d}")).expect("parse");
        assert_eq!(r.reference, Reference::Digest(d));
        assert!(ImageRef::parse("busybox").is_err());
        assert!(ImageRef::parse("h.io/UPPER").is_err());
    }

    #[test]
    fn challenges() {
        assert!(matches!(
            parse_challenge("Basic realm=\"x\""),
            Some(Challenge::Basic)
        ));
        match parse_challenge(
            "Bearer realm=\"http://h/token\",service=\"s\",scope=\"repository:a:pull\"",
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "http://h/token");
                assert_eq!(service.as_deref(), Some("s"));
            }
            other => panic!("{other:?}"),
        }
    }

    mod prop {
        use super::super::{parse_range_end, RangeEnd};
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn upload_ranges_never_panic(s in prop_oneof![
                "(bytes=)?[0-9]{0,22}-[0-9]{0,22}",
                any::<String>(),
            ]) {
                if let Some(RangeEnd::Next(n)) = parse_range_end(&s) {
                    prop_assert!(n >= 2);
                }
            }

            #[test]
            fn upload_ranges_give_the_next_offset(end in 1u64..u64::MAX) {
                prop_assert_eq!(parse_range_end(&format!("0-{end}")), Some(RangeEnd::Next(end + 1)));
            }
        }
    }
}
