//! The image endpoints beyond list and inspect: `history`, `tag`, `DELETE`, `prune`,
//! `search` (always `[]`: berth has no index to search), `load` (a docker-archive or OCI
//! archive body), `get` (a docker-archive of one or more images, `docker save`).
//!
//! The same store calls as berth's CLI (`berth history`, `tag`, `rmi`, `load`, `save`):
//! an image a container or a function uses is refused (409) naming it.

use super::{blocking, filters, flag, ApiError, ApiResult, Json, LogStream};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;

type Query = BTreeMap<String, String>;

/// Numbers the temporary files of concurrent saves.
static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The image routes; `None` when the request is not one of them.
pub(crate) async fn route(
    e: &engine::Engine,
    method: &str,
    segs: &[&str],
    q: &Query,
    body: &Bytes,
) -> Option<ApiResult> {
    let e = e.clone();
    let q = q.clone();
    Some(match (method, segs) {
        ("GET", ["images", "search"]) => Ok(Json(json!([])).into_response()),
        ("POST", ["images", "prune"]) => blocking(move || prune(&e, &q)).await,
        ("POST", ["images", "load"]) => {
            let body = body.clone();
            blocking(move || load(&e, &body)).await
        }
        ("GET", ["images", "get"]) => {
            let names: Vec<String> = q
                .get("names")
                .map(|n| n.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            save(e, names).await
        }
        ("GET", ["images", rest @ .., "get"]) if !rest.is_empty() => {
            save(e, vec![rest.join("/")]).await
        }
        ("GET", ["images", rest @ .., "history"]) if !rest.is_empty() => {
            let name = rest.join("/");
            blocking(move || history(&e, &name)).await
        }
        ("POST", ["images", rest @ .., "tag"]) if !rest.is_empty() => {
            let name = rest.join("/");
            blocking(move || tag(&e, &name, &q)).await
        }
        ("DELETE", ["images", rest @ ..]) if !rest.is_empty() => {
            let name = rest.join("/");
            blocking(move || remove(&e, &name, &q)).await
        }
        _ => return None,
    })
}

fn store(e: &engine::Engine) -> Result<image::ImageStore, ApiError> {
    Ok(image::ImageStore::open(&e.root)?)
}

/// Docker's image IDs are config digests (`sha256:…`); the store's lookup takes a bare hex
/// prefix of one (a full digest there names a manifest).
fn reference(name: &str) -> &str {
    name.strip_prefix("sha256:").unwrap_or(name)
}

/// `GET /images/{name}/history`: newest first, the image's ID on the top entry only.
fn history(e: &engine::Engine, name: &str) -> ApiResult {
    let store = store(e)?;
    let img = store.resolve(reference(name))?;
    let layers = img.layers()?;
    let mut sizes = layers.iter().map(|l| l.size);
    let tags: Vec<String> = store
        .names()?
        .into_iter()
        .filter(|(_, r)| r.manifest == img.manifest_digest)
        .map(|(n, _)| n)
        .collect();
    let mut rows = Vec::new();
    for h in img.config.history().iter().flatten() {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            sizes.next().unwrap_or(0)
        };
        let created = h.created().as_deref().map_or(0, super::epoch_secs);
        rows.push(json!({
            "Id": "<missing>",
            "Created": created,
            "CreatedBy": h.created_by().clone().unwrap_or_default(),
            "Tags": Value::Null,
            "Size": size,
            "Comment": h.comment().clone().unwrap_or_default(),
        }));
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["Id"] = json!(format!("sha256:{}", img.id()));
        top["Tags"] = json!(tags);
    }
    Ok(Json(rows).into_response())
}

/// `POST /images/{name}/tag?repo=R&tag=T` (the tag defaults to `latest`).
fn tag(e: &engine::Engine, name: &str, q: &Query) -> ApiResult {
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::BadRequest("tag: the repo parameter is missing".into()))?;
    let t = q
        .get("tag")
        .filter(|t| !t.is_empty())
        .map_or("latest", |t| t);
    let dst = format!("{repo}:{t}");
    let store = store(e)?;
    store.tag(reference(name), &dst).map_err(|err| match err {
        image::Error::NotFound(n) => ApiError::NotFound(format!("No such image: {n}")),
        err => ApiError::BadRequest(format!("tag {name} as {dst}: {err}")),
    })?;
    tracing::info!(image = %name, name = %dst, "docker api: image tagged");
    Ok(StatusCode::CREATED.into_response())
}

/// The containers and functions that use the image `manifest`: an image in use is never
/// removed (berth rmi's rule).
fn users(e: &engine::Engine, manifest: &content::Digest) -> Result<Vec<String>, ApiError> {
    let d = manifest.to_string();
    let mut u: Vec<String> = e
        .users_of_image(&d)?
        .into_iter()
        .map(|c| format!("container {c}"))
        .collect();
    u.extend(
        gateway::users_of_image(&e.root, &d)
            .map_err(|x| ApiError::Internal(format!("read the functions: {x}")))?
            .into_iter()
            .map(|f| format!("function {f}")),
    );
    Ok(u)
}

/// Collects what no name references any more: the `Deleted` entries and the bytes freed.
fn collect(store: &image::ImageStore, out: &mut Vec<Value>) -> Result<u64, ApiError> {
    let report = store.gc()?;
    for b in &report.blobs {
        out.push(json!({"Deleted": b.to_string()}));
    }
    Ok(report.bytes)
}

/// `DELETE /images/{name}?force&noprune`: removes the name (an ID: every name, which needs
/// `force` when there are several, as Docker's), then collects the unreferenced blobs
/// unless `noprune`.
fn remove(e: &engine::Engine, name: &str, q: &Query) -> ApiResult {
    let store = store(e)?;
    let r = reference(name);
    let manifest = store.lookup(r)?;
    let u = users(e, &manifest)?;
    if !u.is_empty() {
        return Err(ApiError::Conflict(format!(
            "conflict: unable to remove image {name}: it is in use by {}",
            u.join(", ")
        )));
    }
    let by_name = store.names()?.iter().any(|(n, _)| name_matches(n, r));
    if !by_name && !flag(q, "force") {
        let n = store
            .names()?
            .iter()
            .filter(|(_, rec)| rec.manifest == manifest)
            .count();
        if n > 1 {
            return Err(ApiError::Conflict(format!(
                "conflict: unable to delete {name} (must be forced): the image has {n} names"
            )));
        }
    }
    let mut out: Vec<Value> = store
        .untag(r)?
        .into_iter()
        .map(|n| json!({"Untagged": n}))
        .collect();
    if !flag(q, "noprune") {
        collect(&store, &mut out)?;
    }
    tracing::info!(image = %name, "docker api: image removed");
    Ok(Json(out).into_response())
}

/// Whether the store's name `n` is what a user's `r` names (`busybox` is
/// `busybox:latest`, `localhost/busybox:latest`, `docker.io/library/busybox:latest`).
fn name_matches(n: &str, r: &str) -> bool {
    let Ok(norm) = image::store::normalize_name(r) else {
        return false;
    };
    n == norm || n == format!("localhost/{norm}") || n == format!("docker.io/library/{norm}")
}

/// `POST /images/prune?filters=`: berth's store keeps no unnamed image, so the default
/// (`dangling=true`) collects what no name references; `dangling=false` (`prune -a`) also
/// removes every name of the images no container or function uses.
fn prune(e: &engine::Engine, q: &Query) -> ApiResult {
    // `dangling=false` (or 0) asks for every unused image.
    let all = filters::of_query(q, &["dangling"])?
        .get("dangling")
        .is_some_and(|v| v.iter().any(|v| matches!(v.as_str(), "false" | "0")));
    let store = store(e)?;
    let mut out = Vec::new();
    if all {
        let mut seen = Vec::new();
        for (_, rec) in store.names()? {
            if seen.contains(&rec.manifest) {
                continue;
            }
            seen.push(rec.manifest.clone());
            if users(e, &rec.manifest)?.is_empty() {
                for n in store.untag(&rec.manifest.to_string())? {
                    out.push(json!({"Untagged": n}));
                }
            }
        }
    }
    let bytes = collect(&store, &mut out)?;
    Ok(Json(json!({"ImagesDeleted": out, "SpaceReclaimed": bytes})).into_response())
}

/// `POST /images/load`: the body is a docker-archive or an OCI archive (maybe compressed);
/// the answer Docker's JSON message stream, one `Loaded image: NAME` per image.
fn load(e: &engine::Engine, body: &Bytes) -> ApiResult {
    let store = store(e)?;
    let loaded = image::archive::load_stream(&store, &body[..])
        .map_err(|x| ApiError::BadRequest(format!("load the archive: {x}")))?;
    let mut out = Vec::new();
    for (name, _) in &loaded {
        tracing::info!(image = %name, "docker api: image loaded");
        // `quiet` only turns progress bars off in Docker: the names are always told (the
        // docker CLI asks for quiet whenever its output is not a terminal).
        let line = json!({"stream": format!("Loaded image: {name}\n")});
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /images/{name}/get`, `GET /images/get?names=`: a docker-archive written to a
/// temporary file of the store's (unlinked once open) and streamed from there.
async fn save(e: engine::Engine, names: Vec<String>) -> ApiResult {
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err(ApiError::BadRequest(
            "save: no image named (names=IMAGE,…)".into(),
        ));
    }
    let file = blocking(move || {
        let store = store(&e)?;
        for n in &names {
            store.lookup(reference(n))?;
        }
        let refs: Vec<String> = names.iter().map(|n| reference(n).to_string()).collect();
        let dir = e.root.join("tmp");
        super::build::clean_stale(&dir, "docker-save");
        std::fs::create_dir_all(&dir)
            .map_err(|x| ApiError::Internal(format!("create {}: {x}", dir.display())))?;
        let path = dir.join(format!(
            "docker-save-{}-{}.tar",
            std::process::id(),
            SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let r = image::archive::save(&store, &refs, image::archive::Format::DockerArchive, &path);
        let f = r.map_err(ApiError::from).and_then(|()| {
            std::fs::File::open(&path)
                .map_err(|x| ApiError::Internal(format!("open {}: {x}", path.display())))
        });
        let _ = std::fs::remove_file(&path);
        f
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let mut f = file;
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Bytes::from(buf)).is_err() {
                        break;
                    }
                }
                Err(x) => {
                    tracing::warn!(error = %x, "docker api: read the saved archive");
                    break;
                }
            }
        }
    });
    let body = axum::body::Body::from_stream(LogStream(rx));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_match_the_stores() {
        assert!(name_matches("localhost/web:latest", "web"));
        assert!(name_matches("docker.io/library/busybox:1", "busybox:1"));
        assert!(!name_matches("localhost/web:1", "web"));
        assert!(!name_matches("localhost/web:latest", "0123abcd"));
    }
}
