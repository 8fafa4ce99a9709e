//! Registry credentials from Docker clients: the `X-Registry-Auth` header of
//! `POST /images/create` (pull) and `POST /images/{name}/push`, and `POST /auth`
//! (`docker login`). Docker API "Authentication": the header is base64url of a JSON
//! `{"username", "password", "serveraddress", "identitytoken"}`; `/auth` takes the same
//! JSON as its body and answers `{"Status": "Login Succeeded"}`.
//!
//! The child `berth pull`/`push`/`login` gets the credentials in an auth.json of its own
//! (`BERTH_AUTH_FILE`; mode 0600 in a 0700 directory of the run root, removed when the
//! child ends, left-overs of a killed server removed by the next one) — never on a command
//! line, where every user of the machine could read them. Identity tokens (OAuth refresh
//! tokens) are refused with a clear message: berth's registry client speaks basic and
//! bearer auth from a user and password.
//!
//! A layer in front of the router's dispatch, as streams.rs: it serves these three
//! requests (it needs the request's headers) and passes the others on.

use crate::build::{berth, clean_stale};
use crate::pull::{loopback, registry_host};
use crate::{Api, ApiError, ApiResult};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The largest `X-Registry-Auth` header or `/auth` body taken.
const MAX_AUTH: usize = 64 * 1024;

/// Docker's `AuthConfig` (the fields berth uses; `auth` and `email` are legacy).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct RegistryAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub serveraddress: String,
    #[serde(default)]
    pub identitytoken: String,
    /// base64("user:password"), as some clients send instead of the two fields.
    #[serde(default)]
    pub auth: String,
}

impl RegistryAuth {
    /// The user and password, `None` for an empty config (`{}`: anonymous).
    fn user_password(&self) -> Result<Option<(String, String)>, ApiError> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Ok(Some((self.username.clone(), self.password.clone())));
        }
        if !self.auth.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(self.auth.trim())
                .map_err(|_| bad("its \"auth\" field is not base64"))?;
            let raw = String::from_utf8(raw).map_err(|_| bad("its \"auth\" is not UTF-8"))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| bad("its \"auth\" field is not user:password"))?;
            return Ok(Some((u.to_string(), p.to_string())));
        }
        if !self.identitytoken.is_empty() {
            return Err(ApiError::BadRequest(
                "X-Registry-Auth: identity tokens are not supported by berth; log in with a \
                 user and password"
                    .into(),
            ));
        }
        Ok(None)
    }
}

fn bad(why: &str) -> ApiError {
    ApiError::BadRequest(format!("X-Registry-Auth: {why}"))
}

/// Decodes an `X-Registry-Auth` value: base64url (with or without padding; standard
/// base64 also taken) of the JSON config.
pub(crate) fn decode_header(v: &[u8]) -> Result<RegistryAuth, ApiError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    if v.len() > MAX_AUTH {
        return Err(bad("too long"));
    }
    let v = v.trim_ascii();
    let json = URL_SAFE
        .decode(v)
        .or_else(|_| URL_SAFE_NO_PAD.decode(v))
        .or_else(|_| STANDARD.decode(v))
        .map_err(|_| bad("not base64url"))?;
    serde_json::from_slice(&json).map_err(|e| bad(&format!("not a JSON auth config: {e}")))
}

/// A private auth.json for one child, removed on drop.
pub(crate) struct AuthFile {
    path: PathBuf,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl AuthFile {
    /// Writes `{"auths": {HOST: {"auth": base64(user:password)}}}` (mode 0600, created new).
    pub(crate) fn new(
        e: &engine::Engine,
        host: &str,
        user: &str,
        password: &str,
    ) -> Result<AuthFile, ApiError> {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        AuthFile::create(e, &serde_json::json!({"auths": {host: {"auth": auth}}}))
    }

    /// An auth file with no credentials (for `berth login` to write).
    fn empty(e: &engine::Engine) -> Result<AuthFile, ApiError> {
        AuthFile::create(e, &serde_json::json!({"auths": {}}))
    }

    fn create(e: &engine::Engine, body: &serde_json::Value) -> Result<AuthFile, ApiError> {
        let dir = e.runroot.join("dockerapi-auth");
        let ierr = |what: &str, x: std::io::Error| {
            ApiError::Internal(format!(
                "registry credentials: {what} {}: {x}",
                dir.display()
            ))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|x| ierr("create", x))?;
        clean_stale(&dir, "auth");
        let path = dir.join(format!(
            "auth-{}-{}.json",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let f = AuthFile { path };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&f.path)
            .map_err(|x| ierr("write in", x))?;
        file.write_all(body.to_string().as_bytes())
            .map_err(|x| ierr("write in", x))?;
        Ok(f)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AuthFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The auth file for a child working on `reference` with the credentials of `auth`
/// (none: anonymous, or no registry host in the reference).
pub(crate) fn file_for(
    e: &engine::Engine,
    reference: &str,
    auth: Option<&RegistryAuth>,
) -> Result<Option<AuthFile>, ApiError> {
    let (Some(auth), Some(host)) = (auth, registry_host(reference)) else {
        return Ok(None);
    };
    match auth.user_password()? {
        Some((u, p)) => Ok(Some(AuthFile::new(e, host, &u, &p)?)),
        None => Ok(None),
    }
}

/// `serveraddress` → `HOST[:PORT]` (Docker clients send `https://HOST/v1/` for the Hub).
fn server_host(s: &str) -> &str {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or(s)
}

/// `POST /auth`: checks the credentials against the registry (a child `berth login` with
/// its own auth file, the password on its stdin) and stores nothing.
async fn login(e: engine::Engine, body: axum::body::Bytes) -> ApiResult {
    let a: RegistryAuth = serde_json::from_slice(&body)
        .map_err(|x| ApiError::BadRequest(format!("auth: not a JSON auth config: {x}")))?;
    let host = server_host(&a.serveraddress).to_string();
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "auth: invalid serveraddress {:?}",
            a.serveraddress
        )));
    }
    let Some((user, password)) = a.user_password()? else {
        return Err(ApiError::BadRequest("auth: no username".into()));
    };
    if user.is_empty() || user.starts_with('-') {
        return Err(ApiError::BadRequest(format!(
            "auth: invalid username {user:?}"
        )));
    }
    let out = crate::blocking(move || {
        // The child's auth file: `berth login` writes the checked credentials there; it is
        // removed with the guard.
        let guard = AuthFile::empty(&e)?;
        let mut cmd = berth(&e)?;
        cmd.env("BERTH_AUTH_FILE", guard.path())
            .stdin(std::process::Stdio::piped())
            .arg("login");
        if loopback(&format!("{host}/x")) {
            cmd.arg("--tls-verify=false");
        }
        cmd.args(["--username", &user, "--password-stdin", "--", &host]);
        let mut child = cmd
            .spawn()
            .map_err(|x| ApiError::Internal(format!("start berth login: {x}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(password.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|x| ApiError::Internal(format!("berth login: {x}")))?;
        drop(guard);
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    })
    .await?;
    match out {
        (true, _) => {
            tracing::info!("docker api: login succeeded");
            Ok(
                crate::Json(serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}))
                    .into_response(),
            )
        }
        (false, err) => {
            let msg = err
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.trim_start_matches("berth: ").trim())
                .collect::<Vec<_>>()
                .join(": ");
            tracing::info!(error = %msg, "docker api: login failed");
            Ok((
                StatusCode::UNAUTHORIZED,
                crate::Json(serde_json::json!({ "message": msg })),
            )
                .into_response())
        }
    }
}

pub(crate) async fn layer(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let path = crate::unversioned(req.uri().path())
        .trim_end_matches('/')
        .to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let pull = matches!(segs.as_slice(), ["images", "create"]);
    let push = matches!(segs.as_slice(), ["images", rest @ .., "push"] if !rest.is_empty());
    let is_auth = segs.as_slice() == ["auth"];
    if req.method() != axum::http::Method::POST || !(pull || push || is_auth) {
        return next.run(req).await;
    }
    let e = api.engine.clone();
    let q = crate::query(req.uri());
    let r = if is_auth {
        match axum::body::to_bytes(req.into_body(), MAX_AUTH).await {
            Ok(b) => login(e, b).await,
            Err(x) => Err(ApiError::BadRequest(format!("read the request body: {x}"))),
        }
    } else {
        let auth = match req.headers().get("x-registry-auth") {
            Some(v) => decode_header(v.as_bytes()).map(Some),
            None => Ok(None),
        };
        match auth {
            Err(x) => Err(x),
            Ok(auth) if pull => {
                crate::blocking(move || crate::pull::pull(&e, &q, auth.as_ref())).await
            }
            Ok(auth) => {
                let name = segs[1..segs.len() - 1].join("/");
                crate::blocking(move || crate::pull::push(&e, &name, &q, auth.as_ref())).await
            }
        }
    };
    crate::finish(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode() {
        use base64::engine::general_purpose::URL_SAFE;
        let j = r#"{"username":"u","password":"p+/?","serveraddress":"127.0.0.1:5000"}"#;
        let a = decode_header(URL_SAFE.encode(j).as_bytes()).expect("url-safe");
        assert_eq!(
            a.user_password().expect("ok"),
            Some(("u".into(), "p+/?".into()))
        );
        let a = decode_header(b"e30=").expect("{}");
        assert_eq!(a.user_password().expect("ok"), None);
        let t = URL_SAFE.encode(r#"{"identitytoken":"tok"}"#);
        assert!(decode_header(t.as_bytes())
            .expect("json")
            .user_password()
            .is_err());
        assert!(decode_header(b"!!!").is_err());
        assert_eq!(
            server_host("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(server_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
