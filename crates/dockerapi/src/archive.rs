//! `docker cp` both ways: `HEAD`/`GET /containers/{id}/archive?path=` (a tar of the path,
//! its stat in `X-Docker-Container-Path-Stat`: base64 of `{name, size, mode, mtime,
//! linkTarget}`, mode as Go's `os.FileMode`) and `PUT /containers/{id}/archive?path=`
//! (a tar extracted into a directory of the container).
//!
//! Both go through the engine's confined copy (engine::cp, `berth cp`): every path in the
//! container is resolved inside its root, nothing is followed out of it. A tar coming in
//! is first unpacked into a private directory of the host (the tar crate's `unpack_in`,
//! which refuses entries and links that lead outside it; an entry naming `..` refuses the
//! whole archive), then copied in. Each request runs on a thread of its own: a stopped
//! container's root is mounted in a private mount namespace of that thread, which goes
//! with it.

use crate::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use runtime::state::rfc3339;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Runs `f` on a thread of its own (see the module doc).
async fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("docker-archive".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::Internal(format!("spawn a thread: {e}")))?;
    rx.await
        .map_err(|_| ApiError::Internal("the archive thread failed".into()))?
}

/// Go's `os.FileMode` of a `st_mode` (what the Docker client decodes).
fn go_mode(m: u32) -> u32 {
    let mut g = m & 0o777;
    if m & 0o4000 != 0 {
        g |= 1 << 23;
    }
    if m & 0o2000 != 0 {
        g |= 1 << 22;
    }
    if m & 0o1000 != 0 {
        g |= 1 << 20;
    }
    g | match m & nix::libc::S_IFMT {
        nix::libc::S_IFDIR => 1 << 31,
        nix::libc::S_IFLNK => 1 << 27,
        nix::libc::S_IFIFO => 1 << 25,
        nix::libc::S_IFSOCK => 1 << 24,
        nix::libc::S_IFBLK => 1 << 26,
        nix::libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    }
}

fn path_param(q: &BTreeMap<String, String>) -> Result<PathBuf, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(ApiError::BadRequest(
            "archive: the path parameter is missing".into(),
        )),
    }
}

/// The stat header, or 404 when the path does not exist.
fn stat(e: &engine::Engine, id: &str, path: &Path) -> Result<String, ApiError> {
    let Some((st, link)) = e.stat_in(id, path)? else {
        return Err(ApiError::NotFound(format!(
            "Could not find the file {} in container {id}",
            path.display()
        )));
    };
    let name = path
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    let v = json!({
        "name": name,
        "size": st.st_size,
        "mode": go_mode(st.st_mode),
        "mtime": rfc3339(st.st_mtime, st.st_mtime_nsec),
        "linkTarget": link.map(|l| l.to_string_lossy().into_owned()).unwrap_or_default(),
    });
    Ok(base64::engine::general_purpose::STANDARD.encode(v.to_string()))
}

/// A private scratch directory under the engine's root, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(e: &engine::Engine) -> Result<Scratch, ApiError> {
        let mut r = [0u8; 8];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom")
                .map_err(|x| ApiError::Internal(format!("open /dev/urandom: {x}")))?,
            &mut r,
        )
        .map_err(|x| ApiError::Internal(format!("read /dev/urandom: {x}")))?;
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let dir = e.root.join("tmp").join(format!("docker-archive-{hex}"));
        std::fs::create_dir_all(&dir)
            .map_err(|x| ApiError::Internal(format!("create {}: {x}", dir.display())))?;
        let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `HEAD /containers/{id}/archive?path=`.
pub async fn head(e: engine::Engine, id: String, q: BTreeMap<String, String>) -> ApiResult {
    let path = path_param(&q)?;
    let st = on_thread(move || stat(&e, &id, &path)).await?;
    Ok((
        StatusCode::OK,
        [
            ("X-Docker-Container-Path-Stat", st),
            (header::CONTENT_TYPE.as_str(), "application/x-tar".into()),
        ],
    )
        .into_response())
}

/// `GET /containers/{id}/archive?path=`.
pub async fn get(e: engine::Engine, id: String, q: BTreeMap<String, String>) -> ApiResult {
    let path = path_param(&q)?;
    let (st, tar) = on_thread(move || {
        let st = stat(&e, &id, &path)?;
        let scratch = Scratch::new(&e)?;
        e.copy_from(&id, &path, &scratch.0)?;
        let name = path
            .file_name()
            .map_or_else(|| std::ffi::OsString::from("."), |n| n.to_os_string());
        let src = scratch.0.join(&name);
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        let meta = std::fs::symlink_metadata(&src)
            .map_err(|x| ApiError::Internal(format!("stat {}: {x}", src.display())))?;
        let r = if meta.is_dir() {
            b.append_dir_all(&name, &src)
        } else {
            b.append_path_with_name(&src, &name)
        };
        r.and_then(|()| b.into_inner())
            .map(|t| (st, t))
            .map_err(|x| ApiError::Internal(format!("tar {}: {x}", path.display())))
    })
    .await?;
    Ok((
        StatusCode::OK,
        [
            ("X-Docker-Container-Path-Stat", st),
            (header::CONTENT_TYPE.as_str(), "application/x-tar".into()),
        ],
        tar,
    )
        .into_response())
}

/// Unpacks `tar` into `dir`; an entry naming `..` refuses the archive.
fn unpack(tar: &[u8], dir: &Path) -> Result<Vec<std::ffi::OsString>, ApiError> {
    let bad = |x: std::io::Error| ApiError::BadRequest(format!("invalid tar archive: {x}"));
    let mut a = tar::Archive::new(tar);
    a.set_preserve_permissions(true);
    a.set_overwrite(true);
    for entry in a.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let p = entry.path().map_err(bad)?.into_owned();
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(ApiError::BadRequest(format!(
                "invalid tar archive: the entry {} leads outside the destination",
                p.display()
            )));
        }
        if !entry.unpack_in(dir).map_err(|x| {
            ApiError::BadRequest(format!("invalid tar archive: {}: {x}", p.display()))
        })? {
            return Err(ApiError::BadRequest(format!(
                "invalid tar archive: the entry {} leads outside the destination",
                p.display()
            )));
        }
    }
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(|x| ApiError::Internal(format!("read {}: {x}", dir.display())))?
        .filter_map(|d| d.ok().map(|d| d.file_name()))
        .collect();
    names.sort();
    Ok(names)
}

/// `PUT /containers/{id}/archive?path=` (a tar body).
pub async fn put(
    e: engine::Engine,
    id: String,
    q: BTreeMap<String, String>,
    body: Bytes,
) -> ApiResult {
    let path = path_param(&q)?;
    on_thread(move || {
        if !e.is_dir_in(&id, &path)? {
            return Err(ApiError::NotFound(format!(
                "Could not find the directory {} in container {id}",
                path.display()
            )));
        }
        let scratch = Scratch::new(&e)?;
        let stage = scratch.0.join("x");
        std::fs::create_dir(&stage)
            .map_err(|x| ApiError::Internal(format!("create {}: {x}", stage.display())))?;
        for name in unpack(&body, &stage)? {
            e.copy_to(&stage.join(&name), &id, &path)?;
        }
        tracing::debug!(container = %id, path = %path.display(), "docker api: archive extracted");
        Ok(StatusCode::OK.into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_times_as_go_has_them() {
        assert_eq!(go_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_mode(0o100644), 0o644);
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn a_tar_with_dotdot_is_refused() {
        let dir = std::env::temp_dir().join(format!("berth-archive-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`: write the name bytes directly.
        let name = b"../escape";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"hi"[..]).expect("append");
        let t = b.into_inner().expect("tar");
        assert!(unpack(&t, &dir).is_err());
        assert!(!dir.parent().expect("parent").join("escape").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
