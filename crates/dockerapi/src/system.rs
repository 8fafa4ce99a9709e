//! `GET /system/df` and `POST /containers/prune`.

use crate::{ApiResult, Json};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes used under `dir` (allocated blocks; one file system, symlinks not followed).
pub fn du(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = top.dev();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if md.dev() != dev {
            continue;
        }
        total += md.blocks() * 512;
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(rd.filter_map(|x| x.ok().map(|x| x.path())));
            }
        }
    }
    total
}

/// `GET /system/df`.
pub fn df(e: &engine::Engine) -> ApiResult {
    let cs = e.list(true)?;
    let store = image::ImageStore::open(&e.root)?;
    let mut by_id: BTreeMap<String, (Vec<String>, image::store::Image, u64, String)> =
        BTreeMap::new();
    for (name, rec) in store.names()? {
        let img = store.image(&rec.manifest)?;
        let ent = by_id
            .entry(img.id().to_string())
            .or_insert_with(|| (vec![], img, rec.tagged, rec.manifest.to_string()));
        ent.0.push(name);
    }
    let mut layers = 0u64;
    let images: Vec<Value> = by_id
        .into_values()
        .map(|(names, img, t, manifest)| {
            layers += img.size();
            let mut v = crate::image_summary(names, &img, t);
            let users = cs.iter().filter(|c| c.image_id == manifest).count();
            v["Containers"] = json!(users);
            v
        })
        .collect();
    let containers: Vec<Value> = cs
        .iter()
        .map(|c| {
            json!({
                "Id": c.id,
                "Names": [format!("/{}", c.name)],
                "Image": c.image,
                "ImageID": c.image_id,
                "Command": c.spec.args.join(" "),
                "Created": crate::epoch_secs(&c.created),
                "State": crate::status_word(c),
                "Status": crate::status_word(c),
                "SizeRw": du(&e.dir(&c.id)),
                "SizeRootFs": 0,
                "Labels": c.spec.labels,
                "Mounts": [],
            })
        })
        .collect();
    let volumes: Vec<Value> = e
        .volume_list()?
        .iter()
        .map(|v| {
            let refs = cs
                .iter()
                .filter(|c| {
                    c.spec
                        .opts
                        .volumes
                        .iter()
                        .any(|m| m.split(':').next() == Some(v.name.as_str()))
                })
                .count();
            json!({
                "Name": v.name,
                "Driver": v.driver,
                "Mountpoint": v.mountpoint,
                "Labels": v.labels,
                "Scope": v.scope,
                "CreatedAt": v.created_at,
                "Options": v.options,
                "UsageData": {"Size": du(&v.mountpoint), "RefCount": refs},
            })
        })
        .collect();
    Ok(Json(json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    }))
    .into_response())
}

/// `POST /containers/prune?filters={"until": [...], "label": [...]}`: removes the stopped
/// containers (`label!=` excludes).
pub fn prune(e: &engine::Engine, filters: Option<&str>) -> ApiResult {
    let f = crate::filters::parse(filters, &["until", "label", "label!"])?;
    let now = engine::logfiles::now_nanos();
    let mut until: Option<i128> = None;
    for v in f.get("until").into_iter().flatten() {
        until = Some(engine::logfiles::parse_since(v, now)?);
    }
    let label_ok = crate::filters::label_matches;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for c in e.list(true)? {
        if c.state.is_active() || c.state == engine::types::State::Removing {
            continue;
        }
        let labels: BTreeMap<String, String> = c.spec.labels.clone().into_iter().collect();
        if let Some(u) = until {
            if engine::logfiles::parse_time(&c.created).is_none_or(|t| t >= u) {
                continue;
            }
        }
        if !f
            .get("label")
            .is_none_or(|vs| vs.iter().all(|v| label_ok(&labels, v)))
        {
            continue;
        }
        if f.get("label!")
            .is_some_and(|vs| vs.iter().any(|v| label_ok(&labels, v)))
        {
            continue;
        }
        let size = du(&e.dir(&c.id));
        match e.remove(&c.id, false) {
            Ok(_) => {
                deleted.push(c.id.clone());
                reclaimed += size;
            }
            // Started meanwhile, or removed by someone else: not ours to prune.
            Err(err) => tracing::debug!(container = %c.id, error = %err, "prune: skipped"),
        }
    }
    Ok(Json(json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed})).into_response())
}
