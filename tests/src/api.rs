//! HTTP helpers for the registry suites (blocking reqwest against a [`Registry`]).

use crate::oci::{error_code, noise, sha256, Registry};
use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::time::Duration;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A client that does not follow redirects.
pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A response header as a string (empty when absent).
pub fn hdr(r: &HeaderMap, name: &str) -> String {
    r.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Status and error code of a response.
pub fn status_code(r: Response) -> (u16, String) {
    let s = r.status().as_u16();
    (s, error_code(&r.text().unwrap_or_default()))
}

/// Sends `req` and asserts the response's status and distribution-spec error code.
#[track_caller]
pub fn expect_error(req: reqwest::blocking::RequestBuilder, status: u16, code: &str) {
    let (s, c) = status_code(req.send().expect("send request"));
    assert_eq!((s, c.as_str()), (status, code));
}

/// Pushes a blob monolithically (`POST ?digest=`), asserting 201.
pub fn push_blob(c: &Client, reg: &Registry, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = c
        .post(reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .expect("POST blob");
    assert_eq!(
        r.status().as_u16(),
        201,
        "monolithic push of {d}: {:?}",
        r.text()
    );
    d
}

/// An image manifest over `config` and `layers` (already pushed).
pub fn manifest(config: &(String, usize), layers: &[(String, usize)], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&m).expect("json")
}

/// `PUT /v2/<repo>/manifests/<reference>` with a Content-Type.
pub fn put_manifest(
    c: &Client,
    reg: &Registry,
    repo: &str,
    reference: &str,
    mt: &str,
    body: &[u8],
) -> Response {
    c.put(reg.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", mt)
        .body(body.to_vec())
        .send()
        .expect("PUT manifest")
}

/// Pushes a config and one layer and a manifest tagged `tag`; returns the manifest digest.
pub fn push_image(c: &Client, reg: &Registry, repo: &str, tag: &str, seed: u64) -> String {
    let cfg = format!("{{\"seed\":{seed}}}").into_bytes();
    let layer = noise(seed, 4096);
    let cd = push_blob(c, reg, repo, &cfg);
    let ld = push_blob(c, reg, repo, &layer);
    let m = manifest(&(cd, cfg.len()), &[(ld, layer.len())], json!({}));
    let r = put_manifest(c, reg, repo, tag, OCI_MANIFEST, &m);
    assert_eq!(r.status().as_u16(), 201, "PUT manifest: {:?}", r.text());
    sha256(&m)
}

/// Every file under `dir`.
pub fn walk_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
