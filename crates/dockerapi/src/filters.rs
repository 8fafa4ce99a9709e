//! Docker's `filters` query parameter, as the lists of containers, networks and volumes and
//! the prunes of images and volumes take it: a JSON object of lists (`{"name": ["x"]}`) or,
//! from older clients, of maps (`{"name": {"x": true}}`). Keys outside a route's own are
//! refused with 400, naming the filter and those the route knows.

use super::ApiError;
use serde_json::Value;
use std::collections::BTreeMap;

/// The filters of a request, key → values.
pub(crate) type Filters = BTreeMap<String, Vec<String>>;

/// Parses `filters` (absent or empty: none), refusing a key outside `allowed`.
pub(crate) fn parse(s: Option<&str>, allowed: &[&str]) -> Result<Filters, ApiError> {
    let mut m = BTreeMap::new();
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(m);
    };
    let bad = |why: String| ApiError::BadRequest(format!("invalid filters {s:?}: {why}"));
    let v: Value = serde_json::from_str(s).map_err(|x| bad(x.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    for (k, vals) in obj {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(format!(
                "the filter {k:?} is not supported ({})",
                allowed.join(", ")
            )));
        }
        let vals: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => return Err(bad(format!("{k}: not a list"))),
        };
        m.insert(k.clone(), vals);
    }
    Ok(m)
}

/// The `filters` parameter of a request's query.
pub(crate) fn of_query(
    q: &BTreeMap<String, String>,
    allowed: &[&str],
) -> Result<Filters, ApiError> {
    parse(q.get("filters").map(String::as_str), allowed)
}

/// Whether `labels` has the label `k` (any value) or `k=v`.
pub(crate) fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

/// Whether `labels` has every `k` / `k=v` of `want` (Docker's label filters must all hold).
pub(crate) fn labels_match(labels: &BTreeMap<String, String>, want: &[String]) -> bool {
    want.iter().all(|w| label_matches(labels, w))
}

/// A boolean filter's value as Docker reads it (`dangling`, `all`): `true` or `1`.
pub(crate) fn is_true(v: &str) -> bool {
    matches!(v, "true" | "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_maps_and_unknown_keys() {
        let f = parse(
            Some(r#"{"name":["a","b"],"label":{"k=v":true}}"#),
            &["name", "label"],
        )
        .expect("parses");
        assert_eq!(f["name"], ["a", "b"]);
        assert_eq!(f["label"], ["k=v"]);
        assert!(parse(None, &[]).expect("none").is_empty());
        assert!(parse(Some(""), &[]).expect("empty").is_empty());
        let e = parse(Some(r#"{"volume":["x"]}"#), &["name"]).expect_err("unknown key");
        assert!(
            matches!(&e, ApiError::BadRequest(m) if m.contains("\"volume\"") && m.contains("(name)")),
            "{e:?}"
        );
        assert!(parse(Some("[1]"), &["name"]).is_err());
        assert!(parse(Some(r#"{"name":3}"#), &["name"]).is_err());
    }

    #[test]
    fn label_filters() {
        let l: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert!(labels_match(&l, &["a".into()]));
        assert!(labels_match(&l, &["a=1".into()]));
        assert!(!labels_match(&l, &["a=2".into()]));
        assert!(!labels_match(&l, &["a".into(), "b".into()]));
        assert!(is_true("1") && is_true("true") && !is_true("false"));
    }
}
