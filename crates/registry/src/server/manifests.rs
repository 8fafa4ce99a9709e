//! Manifest endpoints (spec.md "Pulling manifests", "Pushing Manifests", "Deleting
//! Manifests"): `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>` for OCI image
//! manifests and indexes and Docker schema 2 manifests and manifest lists.
//!
//! A manifest is stored as a blob (so GC and the blob endpoint see it) plus a link in the
//! repository recording its media type; tags point at digests. Deleting a tag removes only
//! the tag; deleting by digest removes the manifest and the tags that named it.

use super::error::{ApiError, ApiResult, Code};
use super::storage::both;
use super::{blocking, header_str, read_body_capped, BodySlot, Shared, MAX_MANIFEST};
use crate::media;
use crate::reference::parse_digest;
use crate::reference::{Algorithm, Digest, Name, Reference};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::atomic::Ordering;

fn reference(s: &str) -> ApiResult<Reference> {
    Reference::parse(s).map_err(|e| match e {
        crate::reference::RefError::Tag(_) => {
            ApiError::new(Code::ManifestInvalid, e.to_string()).with_status(StatusCode::BAD_REQUEST)
        }
        _ => super::digest(s)
            .err()
            .unwrap_or_else(|| ApiError::new(Code::DigestInvalid, e.to_string())),
    })
}

/// The reference of a pull or delete. spec.md "Pulling manifests": a manifest that is not
/// in the repository is 404 Not Found — and a tag outside the tag grammar can never have
/// been pushed, so it names no manifest (only a malformed *digest* is a 400).
fn existing_reference(name: &Name, raw: &str) -> ApiResult<Reference> {
    match Reference::parse(raw) {
        Err(crate::reference::RefError::Tag(_)) => Err(unknown(name, raw)),
        _ => reference(raw),
    }
}

fn unknown(name: &Name, r: &str) -> ApiError {
    ApiError::new(
        Code::ManifestUnknown,
        format!("manifest {r} is unknown to {name}"),
    )
}

/// Resolves a reference to a digest and media type.
fn resolve(st: &Shared, name: &Name, r: &Reference, raw: &str) -> ApiResult<(Digest, String)> {
    let d = match r {
        Reference::Tag(t) => st
            .store
            .get_tag(name, t)?
            .ok_or_else(|| unknown(name, raw))?,
        Reference::Digest(d) => d.clone(),
    };
    let mt = st
        .store
        .manifest_media_type(name, &d)?
        .ok_or_else(|| unknown(name, raw))?;
    Ok((d, mt))
}

/// Whether an `Accept` header admits `media_type` (absent or wildcard: yes).
fn acceptable(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any = false;
    for v in headers.get_all(header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let t = item.split(';').next().unwrap_or("").trim();
            if t.is_empty() {
                continue;
            }
            any = true;
            if t == media_type || t == "*/*" || t == "application/*" {
                return true;
            }
        }
    }
    !any
}

pub async fn get(
    st: &Shared,
    name: &Name,
    raw: &str,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    let r = existing_reference(name, raw)?;
    // Three small reads (tag, link, manifest of at most 4 MiB, usually a few KB) served
    // from the page cache: done on the worker, as a hop to the blocking pool would cost
    // more than the reads and lengthens the latency tail under load.
    let (d, mt) = resolve(st, name, &r, raw)?;
    let bytes = std::fs::read(st.store.blob_path(&d)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            unknown(name, raw)
        } else {
            ApiError::internal(e)
        }
    })?;
    // spec.md: the client lists the types it accepts; a manifest of another type is
    // answered 404 (we do not convert between formats).
    if !acceptable(headers, &mt) {
        return Err(ApiError::new(
            Code::ManifestUnknown,
            format!("manifest {raw} is {mt}, which the Accept header does not allow"),
        ));
    }
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, mt)
        .header(header::CONTENT_LENGTH, len)
        .header("docker-content-digest", d.to_string())
        .header(header::ETAG, format!("\"{d}\""))
        .body(body)
        .map_err(ApiError::internal)
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::ManifestInvalid, detail)
}

/// A descriptor's digest, validated.
fn desc_digest(v: &Value, field: &str) -> ApiResult<Digest> {
    let s = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{field}.digest is missing")))?;
    parse_digest(s).map_err(|e| invalid(format!("{field}.digest: {e}")))
}

/// A descriptor's `size`, when it has one.
fn desc_size(v: &Value) -> Option<u64> {
    v.get("size").and_then(Value::as_u64)
}

/// What a manifest references: blobs (config, layers) and child manifests.
struct Refs {
    /// Digests and the sizes the descriptors claim.
    blobs: Vec<(Digest, Option<u64>)>,
    manifests: Vec<Digest>,
    subject: Option<Digest>,
}

fn references(mt: &str, v: &Value) -> ApiResult<Refs> {
    let mut refs = Refs {
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: None,
    };
    if let Some(s) = v.get("subject") {
        refs.subject = Some(desc_digest(s, "subject")?);
    }
    match mt {
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
            if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
                return Err(invalid("schemaVersion must be 2"));
            }
            let config = v
                .get("config")
                .ok_or_else(|| invalid("config is missing"))?;
            refs.blobs
                .push((desc_digest(config, "config")?, desc_size(config)));
            let layers = match v.get("layers") {
                Some(Value::Array(a)) => a.as_slice(),
                None if mt == media::OCI_MANIFEST => &[],
                _ => return Err(invalid("layers must be an array")),
            };
            for (i, l) in layers.iter().enumerate() {
                let d = desc_digest(l, &format!("layers[{i}]"))?;
                // Non-distributable (foreign) layers are fetched from their urls.
                let foreign = l
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    refs.blobs.push((d, desc_size(l)));
                }
            }
        }
        media::OCI_INDEX | media::DOCKER_LIST => {
            if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
                return Err(invalid("schemaVersion must be 2"));
            }
            let ms = v
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("manifests must be an array"))?;
            for (i, m) in ms.iter().enumerate() {
                refs.manifests
                    .push(desc_digest(m, &format!("manifests[{i}]"))?);
            }
        }
        _ => {}
    }
    Ok(refs)
}

/// The descriptor listed by the referrers API for a manifest (spec.md "Listing
/// Referrers": artifactType falls back to the config's media type).
fn referrer_descriptor(mt: &str, d: &Digest, size: usize, v: &Value) -> Value {
    let mut desc = serde_json::json!({
        "mediaType": mt,
        "digest": d.to_string(),
        "size": size,
    });
    let artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| v.pointer("/config/mediaType").and_then(Value::as_str));
    if let Some(at) = artifact_type {
        desc["artifactType"] = Value::from(at);
    }
    if let Some(a) = v.get("annotations").filter(|a| a.is_object()) {
        desc["annotations"] = a.clone();
    }
    desc
}

pub async fn put(
    st: &Shared,
    name: &Name,
    raw: &str,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    let r = reference(raw)?;
    // A declared size far past the cap is refused at once; a body just past it is read
    // and dropped by read_body_capped, so the client sees the 413 answer.
    if let Some(len) =
        header_str(headers, &header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok())
    {
        if len > 4 * MAX_MANIFEST {
            return Err(ApiError::new(
                Code::SizeInvalid,
                format!("manifest of {len} bytes is larger than the {MAX_MANIFEST}-byte limit"),
            )
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
    }
    let bytes = read_body_capped(body.take(), MAX_MANIFEST).await?;
    st.metrics
        .bytes_received
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    st.metrics
        .manifest_bytes_received
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("manifest is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("manifest is not a JSON object"));
    }
    let field_mt = v.get("mediaType").and_then(Value::as_str);
    let header_mt = header_str(headers, &header::CONTENT_TYPE)
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    let mt = match (header_mt, field_mt) {
        (Some(h), Some(f)) if h != f => {
            return Err(invalid(format!(
                "Content-Type {h} differs from the manifest's mediaType {f}"
            )))
        }
        (Some(h), _) => h.to_string(),
        (None, Some(f)) => f.to_string(),
        (None, None) => return Err(invalid("no Content-Type and no mediaType")),
    };
    let refs = references(&mt, &v)?;
    let alg = match &r {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let d = Digest::of(alg, &bytes);
    if let Reference::Digest(want) = &r {
        if *want != d {
            return Err(ApiError::new(
                Code::DigestInvalid,
                format!("manifest has digest {d}, not {want}"),
            ));
        }
    }
    let size = bytes.len();
    let desc = refs
        .subject
        .as_ref()
        .map(|_| referrer_descriptor(&mt, &d, size, &v).to_string());
    let subject = refs.subject.clone();
    let (st2, name2, d2, mt2) = (st.clone(), name.clone(), d.clone(), mt.clone());
    blocking(move || {
        for (b, claimed) in &refs.blobs {
            let Some(size) = st2.store.blob_in_repo(&name2, b)? else {
                return Err(ApiError::new(
                    Code::ManifestBlobUnknown,
                    format!("blob {b} is unknown to {name2}"),
                ));
            };
            // A descriptor must state its blob's size: clients trust it to bound reads.
            if let Some(claimed) = claimed.filter(|c| *c != size) {
                return Err(invalid(format!(
                    "descriptor of {b} says {claimed} bytes, the blob has {size}"
                )));
            }
            st2.store.touch_blob(b);
        }
        for m in &refs.manifests {
            if st2.store.manifest_media_type(&name2, m)?.is_none() {
                return Err(ApiError::new(
                    Code::ManifestBlobUnknown,
                    format!("manifest {m} is unknown to {name2}"),
                ));
            }
        }
        // The manifest's bytes and its link are independent durable writes (a link
        // whose blob is not there yet reads as unknown), so their fsyncs overlap; the
        // tag and the referrer entry name the manifest and come only after both.
        let store = &st2.store;
        both(
            || store.put_blob_bytes(&d2, &bytes),
            || store.put_manifest_link(&name2, &d2, &mt2),
        )?;
        both(
            || match (&refs.subject, &desc) {
                (Some(s), Some(desc)) => store.add_referrer(&name2, s, &d2, desc.as_bytes()),
                _ => Ok(()),
            },
            || match &r {
                Reference::Tag(t) => store.set_tag(&name2, t, &d2),
                Reference::Digest(_) => Ok(()),
            },
        )?;
        Ok(())
    })
    .await?;
    tracing::info!(repo = %name, reference = raw, digest = %d, media_type = %mt, "manifest pushed");
    let mut resp = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/manifests/{d}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                d.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response();
    if let Some(s) = subject {
        if let Ok(v) = s.to_string().parse() {
            resp.headers_mut().insert("oci-subject", v);
        }
    }
    Ok(resp)
}

pub async fn delete(st: &Shared, name: &Name, raw: &str) -> ApiResult<Response> {
    let r = existing_reference(name, raw)?;
    let (st2, name2, raw2) = (st.clone(), name.clone(), raw.to_string());
    blocking(move || {
        match r {
            Reference::Tag(t) => {
                // Only the tag goes; the manifest stays for its digest and other tags.
                if !st2.store.delete_tag(&name2, &t)? {
                    return Err(unknown(&name2, &raw2));
                }
            }
            Reference::Digest(d) => {
                if st2.store.manifest_media_type(&name2, &d)?.is_none() {
                    return Err(unknown(&name2, &raw2));
                }
                // Forget it as a referrer of its subject.
                if let Ok(bytes) = std::fs::read(st2.store.blob_path(&d)) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                        if let Some(s) = v
                            .get("subject")
                            .and_then(|s| desc_digest(s, "subject").ok())
                        {
                            st2.store.remove_referrer(&name2, &s, &d)?;
                        }
                    }
                }
                for t in st2.store.tags(&name2)?.unwrap_or_default() {
                    if st2.store.get_tag(&name2, &t)?.as_ref() == Some(&d) {
                        st2.store.delete_tag(&name2, &t)?;
                    }
                }
                st2.store.delete_manifest_link(&name2, &d)?;
            }
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert!(acceptable(&h, media::OCI_MANIFEST));
        h.insert(
            header::ACCEPT,
            "application/vnd.docker.distribution.manifest.v2+json"
                .parse()
                .expect("test value"),
        );
        assert!(!acceptable(&h, media::OCI_MANIFEST));
        h.append(
            header::ACCEPT,
            "application/vnd.oci.image.manifest.v1+json; q=0.5"
                .parse()
                .expect("test value"),
        );
        assert!(acceptable(&h, media::OCI_MANIFEST));
    }

    #[test]
    fn references_of_an_image_manifest() {
        let d = Digest::of(Algorithm::Sha256, b"x").to_string();
        let v = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "a", "digest": d, "size": 1},
            "layers": [{"digest": d, "size": 1}, {"digest": d, "size": 1, "urls": ["http://x"]}],
        });
        let r = references(media::OCI_MANIFEST, &v).expect("test value");
        assert_eq!(r.blobs.len(), 2);
        let bad = serde_json::json!({"schemaVersion": 2, "config": {"digest": "sha256:../x"}});
        assert!(references(media::OCI_MANIFEST, &bad).is_err());
    }
}
