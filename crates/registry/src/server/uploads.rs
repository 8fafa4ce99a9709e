//! Blob uploads (spec.md "Pushing blobs"): `POST` to start (monolithic with `?digest=`,
//! or a cross-repository `?mount=&from=`), `PATCH` chunks with `Content-Range` (416 out
//! of order), `PUT ?digest=` to finish, `GET` status, `DELETE` to cancel.
//!
//! An upload is a file under `uploads/<uuid>/`, hashed (sha256) while it streams in. It
//! becomes a blob only when `PUT` verifies the digest; then it is fsynced and
//! renamed into `blobs/` with `RENAME_NOREPLACE` (never over an existing blob). One request at a time writes an
//! upload. A crash mid-upload leaves only the upload directory, which the client can
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// Chunks are written to disk in pieces of this size.
const WRITE_BUF: usize = 1024 * 1024;

/// The state of one upload. Only the holder of its slot's lock touches the data file:
/// one writer per upload, so the hash and size here describe exactly the bytes on disk.
pub struct Upload {
    repo: Name,
    size: u64,
    sha256: Sha256,
    dir: PathBuf,
    /// The upload ended (committed, cancelled, expired) or its state could not be
    /// rebuilt: requests that still hold the slot answer BLOB_UPLOAD_UNKNOWN.
    gone: bool,
    /// `size` and `sha256` may not describe the file: set before a request starts to
    /// change either and cleared when it finishes. A request whose future is dropped
    /// midway (its connection timed out or closed) leaves it set, and the next writer
    /// rebuilds the state from the file ([`writable`]) instead of trusting it.
    dirty: bool,
}

/// An upload in the table: its state behind a lock, and what answers without the lock.
pub struct Slot {
    /// The repository the upload belongs to (a request naming another is answered
    /// BLOB_UPLOAD_UNKNOWN, even while the state is locked).
    repo: Name,
    /// The upload's directory (`uploads/<id>`).
    dir: PathBuf,
    state: Arc<tokio::sync::Mutex<Upload>>,
    /// The size after the last finished request, for status answers and 416s while a
    /// writer holds the lock.
    size: AtomicU64,
    /// Whether `size` is known (false while the state is being rebuilt from disk).
    loaded: AtomicBool,
}

impl Slot {
    fn new(up: Upload, loaded: bool) -> Arc<Slot> {
        Arc::new(Slot {
            repo: up.repo.clone(),
            dir: up.dir.clone(),
            size: AtomicU64::new(up.size),
            state: Arc::new(tokio::sync::Mutex::new(up)),
            loaded: AtomicBool::new(loaded),
        })
    }

    /// The lock, or 416 when another request is writing (spec.md "Pushing a blob in
    /// chunks": a chunk that cannot be placed is 416 with the current `Range`). Waiting
    /// would let two writers queue up on one upload and let a slow one hold the rest.
    fn writer(
        self: &Arc<Slot>,
        name: &Name,
        id: &Uuid,
    ) -> ApiResult<tokio::sync::OwnedMutexGuard<Upload>> {
        self.state.clone().try_lock_owned().map_err(|_| {
            let size = self.size.load(Ordering::Acquire);
            tracing::debug!(upload = %id, "concurrent request on an upload refused");
            ApiError::new(
                Code::BlobUploadInvalid,
                format!("another request is writing to upload {id}; ask its status and resume"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_header(header::LOCATION, &format!("/v2/{name}/blobs/uploads/{id}"))
            .with_header(header::RANGE, &range_value(size))
        })
    }
}

/// Uploads taken out of the table because they expired.
type Expired = Vec<(Uuid, Arc<Slot>)>;

/// Where an ending upload's directory goes before it is removed: a name that is not an
/// upload id, so no lookup finds it (and `stale_uploads` collects it after a crash).
fn tombstone(dir: &std::path::Path, id: &Uuid) -> PathBuf {
    dir.with_file_name(format!(".expired-{id}"))
}

struct Entry {
    slot: Arc<Slot>,
    /// Who opened the upload (see [`Owner`]), for the per-client limit.
    owner: Arc<str>,
    last_used: Instant,
}

#[derive(Default)]
struct Table {
    map: HashMap<Uuid, Entry>,
    per_owner: HashMap<Arc<str>, usize>,
}

impl Table {
    fn remove(&mut self, id: &Uuid) -> Option<Entry> {
        let e = self.map.remove(id)?;
        if let Some(n) = self.per_owner.get_mut(&e.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&e.owner);
            }
        }
        Some(e)
    }

    fn insert(&mut self, id: Uuid, slot: Arc<Slot>, owner: Arc<str>) {
        *self.per_owner.entry(owner.clone()).or_default() += 1;
        self.map.insert(
            id,
            Entry {
                slot,
                owner,
                last_used: Instant::now(),
            },
        );
    }

    /// Takes out the uploads idle for longer than `ttl` (not in use by a request). Their
    /// directories are renamed to tombstones before the table lock is released, so a
    /// request arriving meanwhile cannot rebuild an expiring upload from its files.
    fn expire(&mut self, ttl: Duration) -> Expired {
        let now = Instant::now();
        let idle: Vec<Uuid> = self
            .map
            .iter()
            .filter(|(_, e)| {
                now.duration_since(e.last_used) > ttl && e.slot.state.try_lock().is_ok()
            })
            .map(|(id, _)| *id)
            .collect();
        idle.into_iter()
            .filter_map(|id| self.remove(&id).map(|e| (id, e.slot)))
            .inspect(|(id, slot)| {
                let _ = std::fs::rename(&slot.dir, tombstone(&slot.dir, id));
            })
            .collect()
    }
}

impl Uploads {
    /// Moves a stale upload's directory to its tombstone unless a request has the upload
    /// in the table (checked and renamed under the table lock, so a lookup either finds
    /// the upload's files or does not); returns the tombstone to remove.
    fn retire_untouched(&self, id: &Uuid, dir: &std::path::Path) -> Option<PathBuf> {
        let t = self.table();
        if t.map.contains_key(id) {
            return None;
        }
        let tomb = tombstone(dir, id);
        std::fs::rename(dir, &tomb).ok().map(|()| tomb)
    }
}

/// Uploads in progress, by id, with the limits on how many are open: globally and per
/// client (an authenticated user, or the client's address when anonymous). Counting
/// and inserting happen under one lock, so the limits are exact.
pub struct Uploads {
    table: Mutex<Table>,
    max: usize,
    max_per_client: usize,
    idle: Duration,
}

impl Uploads {
    pub fn new(max: usize, max_per_client: usize, idle: Duration) -> Uploads {
        Uploads {
            table: Mutex::new(Table::default()),
            max,
            max_per_client,
            idle,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock leaves a consistent table (every update is a
        // single map operation), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self, id: &Uuid) {
        self.table().remove(id);
    }

    /// Marks an upload as used now: when a request on it ends (a single PATCH may stream
    /// for longer than the idle timeout).
    fn touch(&self, id: &Uuid) {
        if let Some(e) = self.table().map.get_mut(id) {
            e.last_used = Instant::now();
        }
    }

    /// The slot of an upload in the table, marked as used now.
    fn get(&self, id: &Uuid) -> Option<Arc<Slot>> {
        let mut t = self.table();
        let e = t.map.get_mut(id)?;
        e.last_used = Instant::now();
        Some(e.slot.clone())
    }

    /// Inserts the slot of an upload found on disk unless a concurrent request did
    /// first; returns the slot in the table.
    fn insert_found(&self, id: Uuid, slot: Arc<Slot>, owner: Arc<str>) -> Arc<Slot> {
        let mut t = self.table();
        if let Some(e) = t.map.get_mut(&id) {
            e.last_used = Instant::now();
            return e.slot.clone();
        }
        t.insert(id, slot.clone(), owner);
        slot
    }

    /// Inserts a new upload if the limits allow; idle uploads expire first. Returns the
    /// uploads that expired (the caller removes their files).
    fn insert_new(
        &self,
        id: Uuid,
        slot: Arc<Slot>,
        owner: Arc<str>,
    ) -> (Result<(), String>, Expired) {
        let mut t = self.table();
        let mut expired = Vec::new();
        let over = |t: &Table| {
            let mine = t.per_owner.get(&owner).copied().unwrap_or(0);
            if t.map.len() >= self.max {
                Some(format!("{} uploads are open on this registry", self.max))
            } else if mine >= self.max_per_client {
                Some(format!("{mine} uploads are open for {owner}"))
            } else {
                None
            }
        };
        if over(&t).is_some() {
            expired = t.expire(self.idle);
        }
        if let Some(why) = over(&t) {
            return (Err(why), expired);
        }
        t.insert(id, slot, owner);
        (Ok(()), expired)
    }
}

/// Who an upload counts against: `user:NAME` when authenticated, `addr:IP` otherwise.
pub struct Owner(pub Arc<str>);

impl Owner {
    pub fn new(user: Option<&str>, peer: Option<std::net::IpAddr>) -> Owner {
        Owner(match (user, peer) {
            (Some(u), _) => format!("user {u}").into(),
            (None, Some(ip)) => format!("address {ip}").into(),
            (None, None) => "anonymous".into(),
        })
    }
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(Code::BlobUploadUnknown, format!("upload {id:?} is unknown"))
}

/// Finds an upload by id, rebuilding its state from disk after a restart. The rebuild
/// is single-flight: the first request puts a locked slot in the table before reading
/// the file, so a concurrent request finds that slot (busy) instead of building a
/// second state over the same file.
async fn lookup(st: &Shared, name: &Name, id: &str, owner: &Owner) -> ApiResult<(Uuid, Arc<Slot>)> {
    let uuid = Uuid::parse_str(id).map_err(|_| upload_unknown(id))?;
    if let Some(slot) = st.uploads.get(&uuid) {
        if slot.repo != *name {
            return Err(upload_unknown(id));
        }
        return Ok((uuid, slot));
    }
    let dir = st.store.uploads_dir().join(uuid.to_string());
    if !tokio::fs::try_exists(dir.join("repo"))
        .await
        .unwrap_or(false)
    {
        return Err(upload_unknown(id));
    }
    let placeholder = Upload {
        repo: name.clone(),
        size: 0,
        sha256: Sha256::new(),
        dir: dir.clone(),
        gone: false,
        // Until the rebuild below completes (it may be cancelled with its request).
        dirty: true,
    };
    let mine = Slot::new(placeholder, false);
    let mut guard = mine
        .state
        .clone()
        .try_lock_owned()
        .map_err(ApiError::internal)?;
    let slot = st.uploads.insert_found(uuid, mine.clone(), owner.0.clone());
    if !Arc::ptr_eq(&slot, &mine) {
        if slot.repo != *name {
            return Err(upload_unknown(id));
        }
        return Ok((uuid, slot));
    }
    let (name2, id2) = (name.clone(), id.to_string());
    let rebuilt = blocking(move || {
        let repo = std::fs::read_to_string(dir.join("repo")).map_err(|_| upload_unknown(&id2))?;
        if repo != name2.as_str() {
            return Err(upload_unknown(&id2));
        }
        rehash(&dir.join("data")).map_err(|_| upload_unknown(&id2))
    })
    .await;
    match rebuilt {
        Ok((sha256, size)) => {
            guard.sha256 = sha256;
            guard.size = size;
            guard.dirty = false;
            mine.size.store(size, Ordering::Release);
            mine.loaded.store(true, Ordering::Release);
            Ok((uuid, slot))
        }
        Err(e) => {
            guard.gone = true;
            st.uploads.remove(&uuid);
            Err(e)
        }
    }
}

/// The upload's state for a writer: refused while another request writes, unknown when
/// the upload ended or belongs to another repository, rebuilt from the file when a
/// cancelled request left it [`Upload::dirty`].
async fn writable(
    slot: &Arc<Slot>,
    name: &Name,
    uuid: &Uuid,
    id: &str,
) -> ApiResult<tokio::sync::OwnedMutexGuard<Upload>> {
    let mut guard = slot.writer(name, uuid)?;
    if guard.gone || guard.repo != *name {
        return Err(upload_unknown(id));
    }
    if guard.dirty {
        tracing::debug!(upload = %uuid, "state left by a cancelled request: rebuilt from the file");
        let path = guard.dir.join("data");
        let (h, size) = blocking(move || Ok(rehash(&path)?))
            .await
            .map_err(|_| upload_unknown(id))?;
        guard.sha256 = h;
        guard.size = size;
        guard.dirty = false;
        slot.size.store(size, Ordering::Release);
        slot.loaded.store(true, Ordering::Release);
    }
    Ok(guard)
}

/// Opens a new upload for `owner`, or 429 when the limits say no.
async fn create(st: &Shared, name: &Name, owner: &Owner) -> ApiResult<(Uuid, Arc<Slot>)> {
    let id = Uuid::new_v4();
    let dir = st.store.uploads_dir().join(id.to_string());
    let slot = Slot::new(
        Upload {
            repo: name.clone(),
            size: 0,
            sha256: Sha256::new(),
            dir: dir.clone(),
            gone: false,
            dirty: false,
        },
        true,
    );
    // Counted before the files exist, so that concurrent requests see each other.
    let (res, expired) = st.uploads.insert_new(id, slot.clone(), owner.0.clone());
    remove_expired(expired).await;
    if let Err(why) = res {
        tracing::debug!(owner = %owner.0, repo = %name, reason = %why, "upload refused: too many open");
        return Err(ApiError::new(
            Code::TooManyRequests,
            format!("{why}; finish or cancel some, or retry later"),
        )
        .with_header(header::RETRY_AFTER, "5"));
    }
    let (d2, n2) = (dir, name.as_str().to_string());
    let made = blocking(move || {
        std::fs::create_dir_all(&d2)?;
        std::fs::write(d2.join("repo"), n2)?;
        std::fs::File::create(d2.join("data"))?;
        Ok(())
    })
    .await;
    if let Err(e) = made {
        st.uploads.remove(&id);
        return Err(e);
    }
    Ok((id, slot))
}

/// Ends uploads that expired: marks them gone and removes their files.
async fn remove_expired(expired: Expired) {
    for (id, slot) in expired {
        slot.state.lock().await.gone = true;
        tracing::info!(upload = %id, "idle upload expired");
        let _ = tokio::fs::remove_dir_all(tombstone(&slot.dir, &id)).await;
    }
}

/// Streams `body` onto the end of the upload's data file. The async side only receives;
/// a blocking writer hashes and writes the frames (no extra copy), and past
/// [`SYNC_EVERY`] bytes a helper thread starts the file's writeback, so the fsync at
/// commit has little left to do. Frames go to the writer in batches of at least
/// [`BATCH`] bytes, one `writev` each: a hand-off per frame (a frame is whatever one
/// socket read gave, often 16–128 KiB) cost a thread wake-up and a context switch each,
/// a quarter of the server's CPU during a push. The state counts exactly the bytes
/// written, even when the connection drops mid-body. With `limit`, a body longer than
/// that is cut there and refused (SIZE_INVALID).
async fn append(st: &Shared, up: &mut Upload, body: Body, limit: Option<u64>) -> ApiResult<u64> {
    use http_body_util::BodyExt;
    let path = up.dir.join("data");
    let p2 = path.clone();
    let file = blocking(move || Ok(std::fs::OpenOptions::new().append(true).open(&p2)?)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(16);
    // From here until the state is put back, a cancelled request leaves it dirty.
    up.dirty = true;
    let hasher = std::mem::take(&mut up.sha256);
    let writer = tokio::task::spawn_blocking(move || write_loop(file, hasher, rx));
    let mut body = body;
    let mut failure = None;
    let mut batch = Vec::new();
    let mut batched = 0usize;
    let mut received = 0u64;
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
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let n = data.len() as u64;
                    st.metrics.bytes_received.fetch_add(n, Ordering::Relaxed);
                    st.metrics
                        .blob_bytes_received
                        .fetch_add(n, Ordering::Relaxed);
                    received += n;
                    if let Some(l) = limit.filter(|l| received > *l) {
                        failure = Some(ApiError::new(
                            Code::SizeInvalid,
                            format!("chunk carried more than the {l} bytes of its Content-Range"),
                        ));
                        true
                    } else {
                        batched += data.len();
                        batch.push(data);
                        false
                    }
                }
                Err(_) => false,
            },
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
        up.dirty = false;
        return Err(ApiError::internal(e));
    }
    up.sha256 = out.hasher;
    up.size += out.written;
    up.dirty = false;
    match failure {
        Some(e) => Err(e),
        None => Ok(out.written),
    }
}

/// Appends one chunk that must carry exactly `want` bytes when given (its
/// `Content-Range`). A chunk refused for its length leaves the upload as it was: the
/// file is cut back to the old size and the old hash state comes back.
async fn append_chunk(
    st: &Shared,
    up: &mut Upload,
    body: Body,
    want: Option<u64>,
) -> ApiResult<u64> {
    let Some(want) = want else {
        return append(st, up, body, None).await;
    };
    let (old_size, old_hash) = (up.size, up.sha256.clone());
    let res = append(st, up, body, Some(want)).await;
    let refusal = match res {
        Ok(n) if n == want => return Ok(n),
        Ok(n) => ApiError::new(
            Code::SizeInvalid,
            format!("chunk carried {n} bytes, its Content-Range says {want}"),
        ),
        Err(e) if e.code == Code::SizeInvalid => e,
        // A dropped connection keeps what arrived, so the client can resume.
        Err(e) => return Err(e),
    };
    let path = up.dir.join("data");
    up.dirty = true;
    blocking(move || {
        let f = std::fs::OpenOptions::new().write(true).open(&path)?;
        f.set_len(old_size)?;
        Ok(())
    })
    .await?;
    up.size = old_size;
    up.sha256 = old_hash;
    up.dirty = false;
    Err(refusal.with_header(header::RANGE, &range_value(old_size)))
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
    owner: &Owner,
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
        let (id, slot) = create(st, name, owner).await?;
        let mut guard = writable(&slot, name, &id, &id.to_string()).await?;
        let res = append(st, &mut guard, body.take(), None).await;
        let res = match res {
            Ok(_) => commit(st, &mut guard, &d).await,
            Err(e) => Err(e),
        };
        discard(st, &id, &mut guard).await;
        res?;
        return Ok(created(name, &d));
    }
    let (id, slot) = create(st, name, owner).await?;
    let mut guard = writable(&slot, name, &id, &id.to_string()).await?;
    let res = append(st, &mut guard, body.take(), None).await;
    slot.size.store(guard.size, Ordering::Release);
    st.uploads.touch(&id);
    res?;
    Ok(session_response(
        StatusCode::ACCEPTED,
        name,
        &id,
        guard.size,
    ))
}

/// Ends an upload: out of the table, its files removed, and any request still holding
/// its slot finds it gone.
async fn discard(st: &Shared, id: &Uuid, up: &mut Upload) {
    up.gone = true;
    st.uploads.remove(id);
    let _ = tokio::fs::remove_dir_all(&up.dir).await;
}

/// Verifies the upload against `d` and makes it a blob linked into the repository.
///
/// What is verified is the file on disk. For sha256 the hash kept while the bytes
/// streamed in is used without reading the file again: only the holder of the upload's
/// lock writes the file (one writer per upload, [`lookup`] rebuilds a state once), the
/// state is rebuilt from the file itself after a restart, a failed write rehashes the
/// file and a refused chunk cuts it back, so that hash covers exactly the file's bytes.
/// The file's size is checked against the state as a cheap guard; should it ever differ,
/// the file is hashed again rather than trusted. (Re-hashing every commit would double
/// the CPU of a push.)
async fn commit(st: &Shared, up: &mut Upload, d: &Digest) -> ApiResult<()> {
    let data = up.dir.join("data");
    let on_disk = tokio::fs::metadata(&data)
        .await
        .map_err(ApiError::internal)?
        .len();
    let actual = match d.algorithm() {
        Algorithm::Sha256 if on_disk == up.size => {
            // Taken: a commit cancelled from here on must not leave an empty hash that
            // the next request would trust.
            up.dirty = true;
            let h = std::mem::take(&mut up.sha256);
            let hex = crate::reference::hex(&h.finalize());
            parse_digest(&format!("sha256:{hex}")).map_err(ApiError::internal)?
        }
        alg => {
            if on_disk != up.size {
                tracing::warn!(
                    size = up.size,
                    on_disk,
                    "upload file differs from its state; hashing it again"
                );
            }
            let data = data.clone();
            blocking(move || hash_file(&data, alg)).await?
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

/// The digest of a file.
fn hash_file(path: &std::path::Path, alg: Algorithm) -> ApiResult<Digest> {
    fn run<H: sha2::Digest>(mut h: H, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; WRITE_BUF];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().to_vec())
    }
    let sum = match alg {
        Algorithm::Sha256 => run(Sha256::new(), path)?,
        Algorithm::Sha512 => run(Sha512::new(), path)?,
    };
    let hex = crate::reference::hex(&sum);
    parse_digest(&format!("{}:{hex}", alg.name())).map_err(ApiError::internal)
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
    let want = (b - a).checked_add(1).ok_or_else(out_of_order)?;
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
    owner: &Owner,
    id: &str,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    let (uuid, slot) = lookup(st, name, id, owner).await?;
    let mut guard = writable(&slot, name, &uuid, id).await?;
    let want = check_range(headers, name, &uuid, guard.size)?;
    let res = append_chunk(st, &mut guard, body.take(), want).await;
    slot.size.store(guard.size, Ordering::Release);
    st.uploads.touch(&uuid);
    res?;
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
    owner: &Owner,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    let (uuid, slot) = lookup(st, name, id, owner).await?;
    let d = match query.get("digest") {
        Some(d) => digest(d)?,
        None => {
            return Err(ApiError::new(
                Code::DigestInvalid,
                "PUT to finish an upload needs ?digest=",
            ))
        }
    };
    let mut guard = writable(&slot, name, &uuid, id).await?;
    let want = check_range(headers, name, &uuid, guard.size)?;
    let res = append_chunk(st, &mut guard, body.take(), want).await;
    slot.size.store(guard.size, Ordering::Release);
    res?;
    let res = commit(st, &mut guard, &d).await;
    // Verified or not, the upload is over: on a digest mismatch nothing is stored.
    discard(st, &uuid, &mut guard).await;
    res?;
    Ok(created(name, &d))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: 204 with the `Range` received so far (while a
/// chunk streams in, the size before it).
pub async fn status(st: &Shared, name: &Name, owner: &Owner, id: &str) -> ApiResult<Response> {
    let (uuid, slot) = lookup(st, name, id, owner).await?;
    let size = if slot.loaded.load(Ordering::Acquire) {
        if slot.state.try_lock().is_ok_and(|g| g.gone) {
            return Err(upload_unknown(id));
        }
        slot.size.load(Ordering::Acquire)
    } else {
        let g = slot.state.lock().await;
        if g.gone || g.repo != *name {
            return Err(upload_unknown(id));
        }
        g.size
    };
    Ok(session_response(StatusCode::NO_CONTENT, name, &uuid, size))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel (204).
pub async fn cancel(st: &Shared, name: &Name, owner: &Owner, id: &str) -> ApiResult<Response> {
    let (uuid, slot) = lookup(st, name, id, owner).await?;
    let mut guard = writable(&slot, name, &uuid, id).await?;
    discard(st, &uuid, &mut guard).await;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// Expires uploads idle for longer than the configured time: those in the table, and
/// those left on disk by an earlier run (by the age of their data).
pub fn spawn_reaper(st: Shared) {
    let ttl = st.uploads.idle;
    let every = (ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let expired = st.uploads.table().expire(ttl);
            remove_expired(expired).await;
            let st2 = st.clone();
            let stale =
                tokio::task::spawn_blocking(move || stale_uploads(&st2.store.uploads_dir(), ttl))
                    .await
                    .unwrap_or_default();
            for (id, dir) in stale {
                // Only what nobody has touched since the restart (the table's entries
                // have their own clock); a tombstone left by a crash goes as it is.
                let doomed = if dir
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".expired-"))
                {
                    Some(dir)
                } else {
                    st.uploads.retire_untouched(&id, &dir)
                };
                if let Some(d) = doomed {
                    let _ = tokio::fs::remove_dir_all(d).await;
                }
            }
        }
    });
}

/// Upload directories whose data is older than `ttl`.
pub fn stale_uploads(dir: &std::path::Path, ttl: Duration) -> Vec<(Uuid, PathBuf)> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for n in super::storage::read_dir_names(dir).unwrap_or_default() {
        if let Some(id) = n
            .strip_prefix(".expired-")
            .and_then(|i| Uuid::parse_str(i).ok())
        {
            out.push((id, dir.join(&n)));
            continue;
        }
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

    mod prop {
        use super::super::parse_content_range;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn content_ranges_never_panic(s in prop_oneof![
                "(bytes[ =])?[0-9 ]{0,25}-[0-9 ]{0,25}(/[0-9*]{0,5})?",
                any::<String>(),
            ]) {
                if let Some((a, b)) = parse_content_range(&s) {
                    prop_assert!(a <= b);
                }
            }

            #[test]
            fn content_ranges_of_the_form_parse(a in any::<u64>(), len in 0u64..1 << 40) {
                let b = a.saturating_add(len);
                prop_assert_eq!(parse_content_range(&format!("{a}-{b}")), Some((a, b)));
                prop_assert_eq!(parse_content_range(&format!("bytes {a}-{b}/*")), Some((a, b)));
                if len > 0 {
                    prop_assert_eq!(parse_content_range(&format!("{b}-{a}")), None);
                }
            }
        }
    }
}
