//! `POST /images/create?fromImage=&tag=` (pull) and `POST /images/{name}/push?tag=`: a child
//! `berth pull`/`berth push` (the CLI's registry client, its credentials from `berth login`,
//! or the client's `X-Registry-Auth` in an auth file of its own: auth.rs),
//! its lines as Docker's progress stream (`{"status": …}`), then the final status or
//! `{"errorDetail": …}`. A registry on loopback is spoken to over plain HTTP, as the CLI's
//! `--tls-verify=false` allows.

use super::auth::{file_for, RegistryAuth};
use super::build::{berth, error_message, stream_child, Report};
use super::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::BTreeMap;

type Query = BTreeMap<String, String>;

/// The registry host of a reference (`HOST[:PORT]/…`; none for a Docker Hub name).
pub(crate) fn registry_host(r: &str) -> Option<&str> {
    let (first, rest) = r.split_once('/')?;
    (!rest.is_empty() && (first.contains(['.', ':']) || first == "localhost")).then_some(first)
}

/// Whether the reference's registry is on this machine's loopback.
pub(crate) fn loopback(r: &str) -> bool {
    registry_host(r).is_some_and(|h| {
        let host = h.rsplit_once(':').map_or(h, |(a, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                a
            } else {
                h
            }
        });
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    })
}

/// `NAME` + `tag` (a tag or a digest) → one reference.
pub(crate) fn join_ref(name: &str, tag: Option<&str>) -> String {
    match tag.filter(|t| !t.is_empty()) {
        Some(t) if t.contains(':') => format!("{name}@{t}"),
        Some(t) => format!("{name}:{t}"),
        None => {
            let last = name.rsplit('/').next().unwrap_or(name);
            if last.contains([':', '@']) {
                name.to_string()
            } else {
                format!("{name}:latest")
            }
        }
    }
}

struct Progress {
    what: &'static str,
    reference: String,
}

impl Report for Progress {
    fn line(&mut self, line: &str, _stderr: bool) -> Option<Value> {
        let l = line.trim();
        (!l.is_empty() && !l.starts_with("berth: ")).then(|| json!({"status": l}))
    }

    fn end(&mut self, ok: bool, err: &str) -> Vec<Value> {
        if !ok {
            return vec![error_message(err, self.what)];
        }
        let s = if self.what == "pull" {
            format!("Status: Downloaded newer image for {}", self.reference)
        } else {
            format!("Pushed {}", self.reference)
        };
        vec![json!({"status": s})]
    }
}

/// The reference a name must be to go to a registry: `HOST[:PORT]/NAME`.
fn check_ref(r: &str) -> Result<(), ApiError> {
    if r.is_empty() || r.len() > 512 || r.starts_with('-') || r.contains(char::is_whitespace) {
        return Err(ApiError::BadRequest(format!("invalid reference {r:?}")));
    }
    Ok(())
}

/// `POST /images/create`.
pub(crate) fn pull(e: &engine::Engine, q: &Query, auth: Option<&RegistryAuth>) -> ApiResult {
    if q.get("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::BadRequest(
            "images/create: fromSrc (import) is not supported: use berth import".into(),
        ));
    }
    let name = q
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadRequest("images/create: fromImage is missing".into()))?;
    let reference = join_ref(name, q.get("tag").map(String::as_str));
    check_ref(&reference)?;
    let creds = file_for(e, &reference, auth)?;
    let mut cmd = berth(e)?;
    if let Some(f) = &creds {
        cmd.env("BERTH_AUTH_FILE", f.path());
    }
    cmd.arg("pull");
    if loopback(&reference) {
        cmd.arg("--tls-verify=false");
    }
    cmd.arg("--").arg(&reference);
    tracing::info!(image = %reference, "docker api: pull");
    stream_child(
        cmd,
        Progress {
            what: "pull",
            reference,
        },
        move || drop(creds),
    )
}

/// `POST /images/{name}/push?tag=`.
pub(crate) fn push(
    e: &engine::Engine,
    name: &str,
    q: &Query,
    auth: Option<&RegistryAuth>,
) -> ApiResult {
    let reference = join_ref(name, q.get("tag").map(String::as_str));
    check_ref(&reference)?;
    let store = image::ImageStore::open(&e.root)?;
    store.lookup(&reference)?;
    let creds = file_for(e, &reference, auth)?;
    let mut cmd = berth(e)?;
    if let Some(f) = &creds {
        cmd.env("BERTH_AUTH_FILE", f.path());
    }
    cmd.arg("push");
    if loopback(&reference) {
        cmd.arg("--tls-verify=false");
    }
    cmd.arg("--").arg(&reference);
    tracing::info!(image = %reference, "docker api: push");
    stream_child(
        cmd,
        Progress {
            what: "push",
            reference,
        },
        move || drop(creds),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            join_ref("127.0.0.1:5000/a", Some("1")),
            "127.0.0.1:5000/a:1"
        );
        assert_eq!(join_ref("a", None), "a:latest");
        assert_eq!(join_ref("h:5000/a", None), "h:5000/a:latest");
        assert_eq!(join_ref("a", Some("sha256:ab")), "a@sha256:ab");
        assert!(loopback("127.0.0.1:5000/a:1"));
        assert!(loopback("localhost:5000/a"));
        assert!(!loopback("example.com/a"));
        assert!(!loopback("busybox"));
    }
}
