//! Manifest endpoints (spec.md "Pulling manifests", "Pushing Manifests", "Deleting
//! Manifests"): `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>` for OCI image
//! manifests and indexes and Docker schema 2 manifests and manifest lists.
//!
//! A manifest is stored as a blob (so GC and the blob endpoint see it) plus a link in the
//! repository recording its media type; tags point at digests. Deleting a tag removes only
//! the tag; deleting by digest removes the manifest and the tags that named it.

use super::error::{ApiError, ApiResult, Code};
use super::storage::both;
use super::{blocking, header_str, read_body_capped, schema, BodySlot, Shared, MAX_MANIFEST};
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

/// The `?tag=` parameters of a push by digest (distribution-spec spec.md "Pushing
/// Manifests with Tags"; the parameter may repeat), validated.
fn tag_params(raw_query: Option<&str>, r: &Reference) -> ApiResult<Vec<String>> {
    let mut tags = Vec::new();
    for pair in raw_query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if super::percent_decode(k, true) != "tag" {
            continue;
        }
        let t = super::percent_decode(v, true);
        if !crate::reference::valid_tag(&t) {
            return Err(invalid(format!(
                "tag parameter {t:?} does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"
            )));
        }
        if !tags.contains(&t) {
            tags.push(t);
        }
        // Inside the loop: a query of thousands of tags must not cost a quadratic scan.
        if tags.len() > MAX_TAG_PARAMS {
            return Err(invalid(format!(
                "more than {MAX_TAG_PARAMS} tag parameters"
            )));
        }
    }
    if !tags.is_empty() && matches!(r, Reference::Tag(_)) {
        return Err(invalid(
            "tag parameters go with a manifest pushed by digest",
        ));
    }
    Ok(tags)
}

/// At most this many `?tag=` parameters on one push.
const MAX_TAG_PARAMS: usize = 64;

pub async fn put(
    st: &Shared,
    name: &Name,
    raw: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: &BodySlot,
) -> ApiResult<Response> {
    let r = reference(raw)?;
    let tag_params = tag_params(raw_query, &r)?;
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
    let header_mt = header_str(headers, &header::CONTENT_TYPE)
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    let mt = schema::media_type(header_mt, &v).map_err(|e| invalid(e.0))?;
    let refs = schema::validate(&mt, &v).map_err(|e| invalid(e.0))?;
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
    let tags2 = tag_params.clone();
    blocking(move || {
        for (b, claimed) in &refs.blobs {
            let Some(size) = st2.store.blob_in_repo(&name2, b)? else {
                return Err(ApiError::new(
                    Code::ManifestBlobUnknown,
                    format!("blob {b} is unknown to {name2}"),
                ));
            };
            // A descriptor must state its blob's size: clients trust it to bound reads.
            if *claimed != size {
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
            || {
                if let Reference::Tag(t) = &r {
                    store.set_tag(&name2, t, &d2)?;
                }
                for t in &tags2 {
                    store.set_tag(&name2, t, &d2)?;
                }
                Ok(())
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
    // spec.md "Pushing Manifests with Tags": one OCI-Tag header per tag applied.
    for t in &tag_params {
        if let Ok(v) = t.parse() {
            resp.headers_mut().append("oci-tag", v);
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
    use crate::media;

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
}
