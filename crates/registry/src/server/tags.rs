//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both paginated with `n` and `last`
//! and a `Link: <…>; rel="next"` header (spec.md "Listing Tags").

use super::error::{ApiError, ApiResult, Code};
use super::{blocking, Access, Shared};
use crate::reference::Name;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use std::collections::HashMap;

/// Applies `last` (exclusive lower bound) and `n` (page size) to a sorted list; returns the
/// page and whether more follow.
fn paginate(
    all: Vec<String>,
    query: &HashMap<String, String>,
) -> ApiResult<(Vec<String>, Option<usize>)> {
    let n = match query.get("n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(Code::Unsupported, format!("n={v:?} is not a count"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    let mut items: Vec<String> = match query.get("last") {
        Some(last) => all
            .into_iter()
            .filter(|t| t.as_str() > last.as_str())
            .collect(),
        None => all,
    };
    let more = matches!(n, Some(n) if items.len() > n);
    if let Some(n) = n {
        items.truncate(n);
    }
    Ok((items, if more { n } else { None }))
}

fn respond(
    key: &str,
    name: Option<&Name>,
    items: Vec<String>,
    next: Option<usize>,
    path: &str,
    head: bool,
) -> ApiResult<Response> {
    let mut body = serde_json::Map::new();
    if let Some(n) = name {
        body.insert("name".into(), n.as_str().into());
    }
    let link = match (next, items.last()) {
        (Some(n), Some(last)) => Some(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    };
    body.insert(key.into(), items.into());
    let bytes = serde_json::Value::Object(body).to_string();
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, bytes.len());
    if let Some(l) = link {
        b = b.header(header::LINK, l);
    }
    b.body(if head {
        Body::empty()
    } else {
        Body::from(bytes)
    })
    .map_err(ApiError::internal)
}

pub async fn list(
    st: &Shared,
    name: &Name,
    query: &HashMap<String, String>,
    head: bool,
) -> ApiResult<Response> {
    let (st2, name2) = (st.clone(), name.clone());
    let tags = blocking(move || Ok(st2.store.tags(&name2)?))
        .await?
        .ok_or_else(|| ApiError::new(Code::NameUnknown, format!("repository {name} is unknown")))?;
    let (page, next) = paginate(tags, query)?;
    respond(
        "tags",
        Some(name),
        page,
        next,
        &format!("/v2/{name}/tags/list"),
        head,
    )
}

/// `GET /v2/_catalog`: the repositories the caller may pull.
pub async fn catalog(
    st: &Shared,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let st2 = st.clone();
    let repos = blocking(move || Ok(st2.store.repositories()?)).await?;
    let all = repos
        .into_iter()
        .filter(|n| st.auth.check(headers, n, Access::Pull).is_ok())
        .map(|n| n.as_str().to_string())
        .collect();
    let (page, next) = paginate(all, query)?;
    respond("repositories", None, page, next, "/v2/_catalog", false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "2")])).expect("test value"),
            (vec!["a".into(), "b".into()], Some(2))
        );
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "2"), ("last", "b")])).expect("test value"),
            (vec!["c".into(), "d".into()], None)
        );
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "0")]))
                .expect("test value")
                .0
                .len(),
            0
        );
        assert!(paginate(all, &q(&[("n", "x")])).is_err());
    }
}
