//! The endpoints of images (beyond list and inspect), build, pull and push, networks and
//! volumes (pull and push: auth.rs, for their X-Registry-Auth): tried before the container and system routes of lib.rs.

use super::ApiResult;
use axum::body::Bytes;
use std::collections::BTreeMap;

/// `None` when the request is none of these modules'.
pub(crate) async fn route(
    e: &engine::Engine,
    method: &str,
    path: &str,
    raw_query: Option<&str>,
    q: &BTreeMap<String, String>,
    body: &Bytes,
) -> Option<ApiResult> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["build"]) => {
            let (e, q, body) = (e.clone(), q.clone(), body.clone());
            let raw = raw_query.map(str::to_string);
            return Some(
                super::blocking(move || super::build::build(&e, &q, raw.as_deref(), &body)).await,
            );
        }
        ("GET", ["containers", id, "changes"]) => {
            let (e, id) = (e.clone(), id.to_string());
            return Some(super::blocking(move || super::changes::get(&e, &id)).await);
        }
        _ => {}
    }
    if let Some(r) = super::images::route(e, method, &segs, q, body).await {
        return Some(r);
    }
    if let Some(r) = super::networks::route(e, method, &segs, q, body).await {
        return Some(r);
    }
    super::volumes::route(e, method, &segs, q, body).await
}
