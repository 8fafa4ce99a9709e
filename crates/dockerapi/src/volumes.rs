//! The volume endpoints (list, inspect, create, remove, prune) over the engine's volumes,
//! and container create's `HostConfig.Mounts` and `HostConfig.Tmpfs` as the engine's
//! `--mount`/`--tmpfs` words (parsed and checked by the same code as the CLI's).

use super::filters::{self, is_true, labels_match};
use super::networks::{body_json, string_map};
use super::{blocking, no_content, ApiError, ApiResult, Json};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::BTreeMap;

type Query = BTreeMap<String, String>;

/// The volume routes; `None` when the request is not one of them.
pub(crate) async fn route(
    e: &engine::Engine,
    method: &str,
    segs: &[&str],
    q: &Query,
    body: &Bytes,
) -> Option<ApiResult> {
    let e = e.clone();
    let q = q.clone();
    let name = segs.get(1).map(|s| s.to_string()).unwrap_or_default();
    Some(match (method, segs) {
        ("GET", ["volumes"]) => blocking(move || list(&e, &q)).await,
        ("POST", ["volumes", "create"]) => match body_json(body) {
            Ok(b) => blocking(move || create(&e, &b)).await,
            Err(x) => Err(x),
        },
        ("POST", ["volumes", "prune"]) => blocking(move || prune(&e, &q)).await,
        ("GET", ["volumes", _]) => {
            blocking(move || Ok(Json(inspect(&e, &name)?).into_response())).await
        }
        ("DELETE", ["volumes", _]) => {
            let force = super::flag(&q, "force");
            blocking(move || {
                e.volume_remove(&name, force).map_err(vol_err)?;
                tracing::info!(volume = %name, "docker api: volume removed");
                no_content()
            })
            .await
        }
        _ => return None,
    })
}

/// The engine's "no such volume" is Docker's 404.
fn vol_err(x: engine::error::Error) -> ApiError {
    match x {
        engine::error::Error::Invalid(m) if m.starts_with("no such volume") => {
            ApiError::NotFound(m)
        }
        x => x.into(),
    }
}

fn inspect(e: &engine::Engine, name: &str) -> Result<engine::volumes::Volume, ApiError> {
    e.volume_inspect(name).map_err(vol_err)
}

/// The volumes some container's spec uses (for `dangling`).
fn used(e: &engine::Engine) -> Result<Vec<String>, ApiError> {
    let mut u = Vec::new();
    for c in e.list(true)? {
        for m in &c.spec.mounts {
            if let engine::volumes::Mount::Volume { source, .. } = m {
                u.push(source.clone());
            }
        }
    }
    Ok(u)
}

fn list(e: &engine::Engine, q: &Query) -> ApiResult {
    let f = filters::of_query(q, &["name", "label", "dangling", "driver"])?;
    let used = if f.contains_key("dangling") {
        used(e)?
    } else {
        vec![]
    };
    let vols: Vec<engine::volumes::Volume> = e
        .volume_list()?
        .into_iter()
        .filter(|v| {
            f.iter().all(|(k, vals)| match k.as_str() {
                "label" => labels_match(&v.labels, vals),
                _ => vals.iter().any(|x| match k.as_str() {
                    "name" => v.name.contains(x.as_str()),
                    "driver" => *x == v.driver,
                    "dangling" => is_true(x) != used.contains(&v.name),
                    _ => false,
                }),
            })
        })
        .collect();
    Ok(Json(json!({"Volumes": vols, "Warnings": []})).into_response())
}

/// `POST /volumes/create`: the local driver only; an existing volume is answered as it is.
fn create(e: &engine::Engine, b: &Value) -> ApiResult {
    match &b["Driver"] {
        Value::Null => {}
        Value::String(d) if d.is_empty() || d == "local" => {}
        d => {
            return Err(ApiError::BadRequest(format!(
                "volume driver {d} is not supported (local)"
            )))
        }
    }
    let name = match &b["Name"] {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(ApiError::BadRequest("Name: not a string".into())),
    };
    let v = e.volume_create(
        name.as_deref(),
        string_map(&b["Labels"], "Labels")?,
        string_map(&b["DriverOpts"], "DriverOpts")?,
    )?;
    tracing::info!(volume = %v.name, "docker api: volume created");
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `POST /volumes/prune`: API 1.41's rule (docker 20.10): every volume no container uses;
/// the filter `all=false` keeps the named ones (API 1.42's default).
fn prune(e: &engine::Engine, q: &Query) -> ApiResult {
    let f = filters::of_query(q, &["all", "label"])?;
    let all = f.get("all").is_none_or(|v| v.iter().any(|x| is_true(x)));
    let labels = f.get("label").cloned().unwrap_or_default();
    let mut gone = Vec::new();
    if labels.is_empty() {
        gone = e.volume_prune(all)?;
    } else {
        for v in e.volume_list()? {
            if (all || v.anonymous) && labels_match(&v.labels, &labels) {
                match e.volume_remove(&v.name, true) {
                    Ok(true) => gone.push(v.name),
                    Ok(false) | Err(engine::error::Error::Conflict(_)) => {}
                    Err(x) => return Err(x.into()),
                }
            }
        }
    }
    Ok(Json(json!({"VolumesDeleted": gone, "SpaceReclaimed": 0})).into_response())
}

/// A value of a `--mount` word: a comma would split it, so it is refused.
fn word(v: &str, what: &str) -> Result<String, ApiError> {
    if v.contains(',') {
        return Err(ApiError::BadRequest(format!(
            "{what} {v:?}: a comma in a mount path is not supported"
        )));
    }
    Ok(v.to_string())
}

/// `HostConfig.Mounts` as `--mount` words (`type=…,source=…,target=…,readonly`).
pub(crate) fn mount_args(hc: &Value) -> Result<Vec<String>, ApiError> {
    let list = match &hc["Mounts"] {
        Value::Null => return Ok(vec![]),
        Value::Array(a) => a,
        _ => return Err(ApiError::BadRequest("HostConfig.Mounts: not a list".into())),
    };
    let mut out = Vec::new();
    for m in list {
        let ty = m["Type"].as_str().unwrap_or("volume");
        if !matches!(ty, "bind" | "volume" | "tmpfs") {
            return Err(ApiError::BadRequest(format!(
                "HostConfig.Mounts: type {ty:?} is not supported (bind, volume, tmpfs)"
            )));
        }
        let target = m["Target"].as_str().unwrap_or("");
        let mut w = format!("type={ty},target={}", word(target, "Mounts.Target")?);
        if let Some(s) = m["Source"].as_str().filter(|s| !s.is_empty()) {
            w.push_str(&format!(",source={}", word(s, "Mounts.Source")?));
        }
        if m["ReadOnly"].as_bool() == Some(true) {
            w.push_str(",readonly");
        }
        if m["VolumeOptions"]["NoCopy"].as_bool() == Some(true) {
            w.push_str(",volume-nocopy");
        }
        if let Some(n) = m["TmpfsOptions"]["SizeBytes"].as_i64().filter(|n| *n > 0) {
            w.push_str(&format!(",tmpfs-size={n}"));
        }
        if let Some(n) = m["TmpfsOptions"]["Mode"].as_u64().filter(|n| *n > 0) {
            w.push_str(&format!(",tmpfs-mode={:o}", n & 0o7777));
        }
        if m["BindOptions"]["Propagation"]
            .as_str()
            .is_some_and(|p| !p.is_empty() && p != "rprivate")
        {
            return Err(ApiError::BadRequest(
                "HostConfig.Mounts: bind propagation other than rprivate is not supported".into(),
            ));
        }
        out.push(w);
    }
    Ok(out)
}

/// `HostConfig.Tmpfs` (`{"/path": "size=…,mode=…"}`) as `--tmpfs` words.
pub(crate) fn tmpfs_args(hc: &Value) -> Result<Vec<String>, ApiError> {
    Ok(string_map(&hc["Tmpfs"], "HostConfig.Tmpfs")?
        .into_iter()
        .map(|(p, o)| if o.is_empty() { p } else { format!("{p}:{o}") })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_become_mount_words() {
        let hc = json!({"Mounts": [
            {"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": true},
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 448}},
        ], "Tmpfs": {"/run": "size=64k"}});
        assert_eq!(
            mount_args(&hc).expect("valid mounts"),
            vec![
                "type=volume,target=/data,source=data,readonly".to_string(),
                "type=tmpfs,target=/t,tmpfs-size=1024,tmpfs-mode=700".to_string(),
            ]
        );
        assert_eq!(tmpfs_args(&hc).expect("valid"), vec!["/run:size=64k"]);
        let bad = json!({"Mounts": [{"Type": "npipe", "Target": "/x"}]});
        assert!(mount_args(&bad).is_err());
        let comma = json!({"Mounts": [{"Type": "bind", "Source": "/a,b", "Target": "/x"}]});
        assert!(mount_args(&comma).is_err());
    }
}
