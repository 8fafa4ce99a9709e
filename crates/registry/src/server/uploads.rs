//! Blob uploads (spec.md "Pushing blobs"): `POST` to start (monolithic with `?digest=`,
//! or a cross-repository `?mount=&from=`), `PATCH` chunks with `Content-Range` (416 out
//! of order), `PUT ?digest=` to finish, `GET` status, `DELETE` to cancel.
//!
//! An upload is a file under `uploads/<uuid>/`, hashed (sha256) while it streams in. It
//! becomes a blob only when `PUT` verifies the digest; then it is fsynced and renamed into
//! `blobs/`. A crash mid-upload leaves only the upload directory, which the client can
//! resume (its state is rebuilt from the file) or which expires.

use super::error::{ApiError, ApiResult, Code};
use super::{blocking, digest, header_str, Access, BodySlot, Shared};
use crate::reference::parse_digest;
use crate::reference::{Algorithm, Digest, Name};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256, Sha512};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// Uploads untouched for this long are removed.
const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// Chunks are written to disk in pieces of this size.
const WRITE_BUF: usize = 1024 * 1024;

pub struct Upload {
    repo: Name,
    size: u64,
    sha256: Sha256,
    dir: PathBuf,
}

/// Uploads in progress, by id.
#[derive(Default)]
pub struct Uploads {
    map: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Upload>>>>,
}

impl Uploads {
    fn insert(&self, id: Uuid, up: Upload) -> Arc<tokio::sync::Mutex<Upload>> {
        let up = Arc::new(tokio::sync::Mutex::new(up));
        if let Ok(mut m) = self.map.lock() {
            m.insert(id, up.clone());
        }
        up
    }

    fn remove(&self, id: &Uuid) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(id);
        }
    }

    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn get(&self, id: &Uuid) -> Option<Arc<tokio::sync::Mutex<Upload>>> {
        self.map.lock().ok().and_then(|m| m.get(id).cloned())
    }
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(Code::BlobUploadUnknown, format!("upload {id:?} is unknown"))
}

/// Finds an upload by id, rebuilding its state from disk after a restart.
async fn lookup(
    st: &Shared,
    name: &Name,
    id: &str,
) -> ApiResult<(Uuid, Arc<tokio::sync::Mutex<Upload>>)> {
    let uuid = Uuid::parse_str(id).map_err(|_| upload_unknown(id))?;
    if let Some(up) = st.uploads.get(&uuid) {
        if up.lock().await.repo != *name {
            return Err(upload_unknown(id));
        }
        return Ok((uuid, up));
    }
    let dir = st.store.uploads_dir().join(uuid.to_string());
    let name2 = name.clone();
    let id2 = id.to_string();
    let up = blocking(move || {
        let repo = std::fs::read_to_string(dir.join("repo")).map_err(|_| upload_unknown(&id2))?;
        if repo != name2.as_str() {
            return Err(upload_unknown(&id2));
        }
        let (sha256, size) = rehash(&dir.join("data")).map_err(|_| upload_unknown(&id2))?;
        Ok(Upload {
            repo: name2,
            size,
            sha256,
            dir,
        })
    })
    .await?;
    Ok((uuid, st.uploads.insert(uuid, up)))
}

async fn create(st: &Shared, name: &Name) -> ApiResult<(Uuid, Arc<tokio::sync::Mutex<Upload>>)> {
    let max = st.cfg.max_uploads;
    if st.uploads.len() >= max {
        return Err(ApiError::new(
            Code::TooManyRequests,
            format!("{max} uploads are in progress; retry later"),
        )
        .with_header(header::RETRY_AFTER, "5"));
    }
    let id = Uuid::new_v4();
    let dir = st.store.uploads_dir().join(id.to_string());
    let (d2, n2) = (dir.clone(), name.as_str().to_string());
    blocking(move || {
        std::fs::create_dir_all(&d2)?;
        std::fs::write(d2.join("repo"), n2)?;
        std::fs::File::create(d2.join("data"))?;
        Ok(())
    })
    .await?;
    let up = Upload {
        repo: name.clone(),
        size: 0,
        sha256: Sha256::new(),
        dir,
    };
    Ok((id, st.uploads.insert(id, up)))
}

/// Streams `body` onto the end of the upload's data file. The async side only receives;
/// a blocking writer hashes and writes the frames (no extra copy), and past
/// [`SYNC_EVERY`] bytes a helper thread starts the file's writeback, so the fsync at
/// commit has little left to do. Frames go to the writer in batches of at least
/// [`BATCH`] bytes, one `writev` each: a hand-off per frame (a frame is whatever one
/// socket read gave, often 16–128 KiB) cost a thread wake-up and a context switch each,
/// a quarter of the server's CPU during a push. The state counts exactly the bytes
/// written, even when the connection drops mid-body.
async fn append(st: &Shared, up: &mut Upload, body: Body) -> ApiResult<u64> {
    use http_body_util::BodyExt;
    let path = up.dir.join("data");
    let p2 = path.clone();
    let file = blocking(move || Ok(std::fs::OpenOptions::new().append(true).open(&p2)?)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(16);
    let hasher = std::mem::take(&mut up.sha256);
    let writer = tokio::task::spawn_blocking(move || write_loop(file, hasher, rx));
    let mut body = body;
    let mut failure = None;
    let mut batch = Vec::new();
    let mut batched = 0usize;
    loop {
        let frame = body.frame().await;
        let end = match frame {
            None => true,
            Some(Err(e)) => {
                failure = Some(ApiError::new(
                    Code::BlobUploadInvalid,
                    format!("reading request body: {e}"),
                ));
                true
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let n = data.len() as u64;
                    st.metrics.bytes_received.fetch_add(n, Ordering::Relaxed);
                    st.metrics
                        .blob_bytes_received
                        .fetch_add(n, Ordering::Relaxed);
                    batched += data.len();
                    batch.push(data);
                }
                false
            }
        };
        if (end || batched >= BATCH) && !batch.is_empty() {
            batched = 0;
            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        if end {
            break;
        }
    }
    drop(tx);
    let out = writer.await.map_err(ApiError::internal)?;
    if let Some(e) = out.error {
        // A failed write may have left part of a batch on disk: rebuild the state from
        // the file so size and hash agree with it.
        let (h, size) = blocking(move || Ok(rehash(&path)?)).await?;
        up.sha256 = h;
        up.size = size;
        return Err(ApiError::internal(e));
    }
    up.sha256 = out.hasher;
    up.size += out.written;
    match failure {
        Some(e) => Err(e),
        None => Ok(out.written),
    }
}

/// Start the writeback of an upload's data after this many new bytes.
const SYNC_EVERY: u64 = 16 * 1024 * 1024;
/// Received frames are handed to the writer in batches of at least this many bytes.
const BATCH: usize = 1024 * 1024;

struct WriteOut {
    hasher: Sha256,
    written: u64,
    error: Option<std::io::Error>,
}

/// Writes all of `bufs` with as few `writev` calls as the kernel allows.
fn write_all_vectored(f: &mut std::fs::File, bufs: &[bytes::Bytes]) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The blocking half of [`append`].
fn write_loop(
    mut f: std::fs::File,
    mut hasher: Sha256,
    mut rx: tokio::sync::mpsc::Receiver<Vec<bytes::Bytes>>,
) -> WriteOut {
    let mut written = 0u64;
    let mut since_sync = 0u64;
    let mut syncer: Option<(std::sync::mpsc::SyncSender<()>, std::thread::JoinHandle<()>)> = None;
    let mut error = None;
    while let Some(batch) = rx.blocking_recv() {
        if let Err(e) = write_all_vectored(&mut f, &batch) {
            error = Some(e);
            break;
        }
        let n: u64 = batch.iter().map(|b| b.len() as u64).sum();
        for b in &batch {
            hasher.update(b);
        }
        written += n;
        since_sync += n;
        if since_sync >= SYNC_EVERY {
            since_sync = 0;
            if syncer.is_none() {
                if let Ok(clone) = f.try_clone() {
                    let (stx, srx) = std::sync::mpsc::sync_channel::<()>(1);
                    let h = std::thread::spawn(move || {
                        for () in srx {
                            let _ = clone.sync_data();
                        }
                    });
                    syncer = Some((stx, h));
                }
            }
            if let Some((stx, _)) = &syncer {
                let _ = stx.try_send(()); // busy: the next round catches up
            }
        }
    }
    if let Some((stx, h)) = syncer {
        drop(stx);
        let _ = h.join();
    }
    WriteOut {
        hasher,
        written,
        error,
    }
}

/// The sha256 state and size of an upload's data file.
fn rehash(path: &std::path::Path) -> std::io::Result<(Sha256, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut sha256 = Sha256::new();
    let mut buf = vec![0u8; WRITE_BUF];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        size += n as u64;
    }
    Ok((sha256, size))
}

fn range_value(size: u64) -> String {
    // spec.md: `Range: 0-<offset>` where offset is the last byte received (inclusive).
    format!("0-{}", size.saturating_sub(1))
}

fn session_response(status: StatusCode, name: &Name, id: &Uuid, size: u64) -> Response {
    (
        status,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
            (header::RANGE, range_value(size)),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_string(),
            ),
            (
                header::HeaderName::from_static("blob-upload-session-id"),
                id.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

fn created(name: &Name, d: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                d.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

/// `POST /v2/<name>/blobs/uploads/`.
pub async fn start(
    st: &Shared,
    name: &Name,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    if let Some(m) = query.get("mount") {
        let d = digest(m)?;
        // spec.md "Mounting a blob from another repository": mount if `from` holds it and
        // the caller may pull from there; otherwise fall back to an upload session (202).
        let from = query.get("from").and_then(|f| Name::parse(f).ok());
        let source_ok = match &from {
            Some(from) => {
                st.auth.check(headers, from, Access::Pull).is_ok()
                    && st.store.blob_in_repo(from, &d)?.is_some()
            }
            // Without `from` the registry MAY mount a blob it has; only an open registry
            // does, so that private content cannot be probed.
            None => !st.auth.enabled() && st.store.blob_size(&d)?.is_some(),
        };
        if source_ok {
            st.store.touch_blob(&d);
            let (st2, name2, d2) = (st.clone(), name.clone(), d.clone());
            blocking(move || Ok(st2.store.link_blob(&name2, &d2)?)).await?;
            return Ok(created(name, &d));
        }
    }
    if let Some(dg) = query.get("digest") {
        // Monolithic upload: the body is the whole blob.
        let d = digest(dg)?;
        let (id, up) = create(st, name).await?;
        let mut guard = up.lock().await;
        let res = append(st, &mut guard, body.take()).await;
        let res = match res {
            Ok(_) => commit(st, &mut guard, &d).await,
            Err(e) => Err(e),
        };
        discard(st, &id, &guard.dir).await;
        res?;
        return Ok(created(name, &d));
    }
    let (id, up) = create(st, name).await?;
    let mut guard = up.lock().await;
    append(st, &mut guard, body.take()).await?;
    Ok(session_response(
        StatusCode::ACCEPTED,
        name,
        &id,
        guard.size,
    ))
}

async fn discard(st: &Shared, id: &Uuid, dir: &std::path::Path) {
    st.uploads.remove(id);
    let _ = tokio::fs::remove_dir_all(dir).await;
}

/// Verifies the upload against `d` and makes it a blob linked into the repository.
async fn commit(st: &Shared, up: &mut Upload, d: &Digest) -> ApiResult<()> {
    let data = up.dir.join("data");
    let actual = match d.algorithm() {
        Algorithm::Sha256 => {
            let h = std::mem::take(&mut up.sha256);
            let hex = crate::reference::hex(&h.finalize());
            parse_digest(&format!("sha256:{hex}")).map_err(ApiError::internal)?
        }
        Algorithm::Sha512 => {
            let data = data.clone();
            blocking(move || {
                let mut f = std::fs::File::open(&data)?;
                let mut h = Sha512::new();
                let mut buf = vec![0u8; WRITE_BUF];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                let hex = crate::reference::hex(&h.finalize());
                parse_digest(&format!("sha512:{hex}")).map_err(ApiError::internal)
            })
            .await?
        }
    };
    if actual != *d {
        return Err(ApiError::new(
            Code::DigestInvalid,
            format!("upload has digest {actual}, not {d}"),
        ));
    }
    let (st2, repo, d2) = (st.clone(), up.repo.clone(), d.clone());
    blocking(move || {
        st2.store.commit_blob(&data, &d2, &repo)?;
        Ok(())
    })
    .await
}

/// Parses a `Content-Range` of a chunk: `START-END`, optionally prefixed with `bytes `
/// or `bytes=` and suffixed with `/TOTAL`.
fn parse_content_range(s: &str) -> Option<(u64, u64)> {
    let s = s.trim();
    let s = s
        .strip_prefix("bytes=")
        .or_else(|| s.strip_prefix("bytes "))
        .unwrap_or(s);
    let s = s.split('/').next()?;
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b >= a).then_some((a, b))
}

/// Checks a chunk's `Content-Range` against the upload's offset (416 when out of order).
fn check_range(headers: &HeaderMap, name: &Name, id: &Uuid, size: u64) -> ApiResult<Option<u64>> {
    let Some(cr) = header_str(headers, &header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let out_of_order = || {
        ApiError::new(
            Code::BlobUploadInvalid,
            format!("chunk range {cr:?} does not start at offset {size}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header(header::LOCATION, &format!("/v2/{name}/blobs/uploads/{id}"))
        .with_header(header::RANGE, &range_value(size))
        .with_header(
            header::HeaderName::from_static("blob-upload-session-id"),
            &id.to_string(),
        )
    };
    let (a, b) = parse_content_range(cr).ok_or_else(out_of_order)?;
    if a != size {
        return Err(out_of_order());
    }
    let want = b - a + 1;
    if let Some(len) =
        header_str(headers, &header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok())
    {
        if len != want {
            return Err(out_of_order());
        }
    }
    Ok(Some(want))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: one chunk.
pub async fn patch(
    st: &Shared,
    name: &Name,
    id: &str,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    let (uuid, up) = lookup(st, name, id).await?;
    let mut guard = up.lock().await;
    let want = check_range(headers, name, &uuid, guard.size)?;
    let written = append(st, &mut guard, body.take()).await?;
    if let Some(want) = want {
        if written != want {
            return Err(ApiError::new(
                Code::SizeInvalid,
                format!("chunk carried {written} bytes, its Content-Range says {want}"),
            )
            .with_header(header::RANGE, &range_value(guard.size)));
        }
    }
    Ok(session_response(
        StatusCode::ACCEPTED,
        name,
        &uuid,
        guard.size,
    ))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=…`: the last chunk (optional) and commit.
pub async fn finish(
    st: &Shared,
    name: &Name,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    let (uuid, up) = lookup(st, name, id).await?;
    let d = match query.get("digest") {
        Some(d) => digest(d)?,
        None => {
            return Err(ApiError::new(
                Code::DigestInvalid,
                "PUT to finish an upload needs ?digest=",
            ))
        }
    };
    let mut guard = up.lock().await;
    check_range(headers, name, &uuid, guard.size)?;
    append(st, &mut guard, body.take()).await?;
    let res = commit(st, &mut guard, &d).await;
    // Verified or not, the upload is over: on a digest mismatch nothing is stored.
    discard(st, &uuid, &guard.dir).await;
    res?;
    Ok(created(name, &d))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: 204 with the `Range` received so far.
pub async fn status(st: &Shared, name: &Name, id: &str) -> ApiResult<Response> {
    let (uuid, up) = lookup(st, name, id).await?;
    let size = up.lock().await.size;
    Ok(session_response(StatusCode::NO_CONTENT, name, &uuid, size))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel (204).
pub async fn cancel(st: &Shared, name: &Name, id: &str) -> ApiResult<Response> {
    let (uuid, up) = lookup(st, name, id).await?;
    let guard = up.lock().await;
    discard(st, &uuid, &guard.dir).await;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// Removes uploads whose data has not changed for [`UPLOAD_TTL`], every ten minutes.
pub fn spawn_reaper(st: Shared) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(600)).await;
            let st2 = st.clone();
            let stale = tokio::task::spawn_blocking(move || {
                stale_uploads(&st2.store.uploads_dir(), UPLOAD_TTL)
            })
            .await
            .unwrap_or_default();
            for (id, dir) in stale {
                st.uploads.remove(&id);
                let _ = tokio::fs::remove_dir_all(dir).await;
            }
        }
    });
}

/// Upload directories whose data is older than `ttl`.
pub fn stale_uploads(dir: &std::path::Path, ttl: Duration) -> Vec<(Uuid, PathBuf)> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for n in super::storage::read_dir_names(dir).unwrap_or_default() {
        let Ok(id) = Uuid::parse_str(&n) else {
            continue;
        };
        let p = dir.join(&n);
        let age = std::fs::metadata(p.join("data"))
            .or_else(|_| std::fs::metadata(&p))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        if age.is_some_and(|a| a > ttl) {
            out.push((id, p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-9"), Some((0, 9)));
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, 19)));
        assert_eq!(parse_content_range("bytes=10-19"), Some((10, 19)));
        assert_eq!(parse_content_range("9-0"), None);
        assert_eq!(parse_content_range("x"), None);
    }
}
