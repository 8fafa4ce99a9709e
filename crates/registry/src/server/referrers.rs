//! `GET /v2/<name>/referrers/<digest>[?artifactType=…]` (spec.md "Listing Referrers"):
//! always 200 with an OCI image index of the descriptors of manifests whose `subject` is
//! `<digest>`, filtered by artifact type when asked (then `OCI-Filters-Applied`).

use super::error::ApiResult;
use super::{blocking, digest, Shared};
use crate::media;
use crate::reference::Name;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;

pub async fn list(
    st: &Shared,
    name: &Name,
    d: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let d = digest(d)?;
    let (st2, name2) = (st.clone(), name.clone());
    let raw = blocking(move || Ok(st2.store.referrers(&name2, &d)?)).await?;
    let filter = query.get("artifactType").filter(|a| !a.is_empty());
    let manifests: Vec<Value> = raw
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter(|v| match filter {
            Some(at) => v.get("artifactType").and_then(Value::as_str) == Some(at.as_str()),
            None => true,
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    })
    .to_string();
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, media::OCI_INDEX)],
        body,
    )
        .into_response();
    if filter.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            header::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
