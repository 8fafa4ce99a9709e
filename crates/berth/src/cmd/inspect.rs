//! `berth inspect [--format json] IMAGE|CONTAINER…`: an image's manifest, config and names,
//! or (when no image has that name) a container's state with Docker's field names.

use crate::Globals;
use anyhow::Result;
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format (only `json`, the default).
    #[arg(long, default_value = "json", value_parser = ["json"])]
    format: String,
    /// Images or containers.
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let store = g.store()?;
    let names = store.names()?;
    let mut out = Vec::new();
    for r in &a.images {
        let img = match store.resolve(r) {
            Ok(img) => img,
            Err(image::Error::NotFound(_)) => match g.engine()?.inspect(r) {
                Ok(c) => {
                    let mut v = container(&c);
                    v["NetworkSettings"] = super::port::network_settings(&g.engine()?, &c)?;
                    if let Some(h) = g.engine()?.health(&c)? {
                        v["State"]["Health"] = serde_json::to_value(h)?;
                    }
                    if let Some(p) = g.engine()?.probe_status(&c)? {
                        v["State"]["Ready"] = p.ready.into();
                        v["State"]["Probes"] = serde_json::to_value(p)?;
                    }
                    out.push(v);
                    continue;
                }
                Err(engine::Error::NotFound(_)) => {
                    anyhow::bail!("no such image or container: {r}")
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        let config: Value = serde_json::from_slice(&img.config_bytes)?;
        let tags: Vec<&String> = names
            .iter()
            .filter(|(_, rec)| rec.manifest == img.manifest_digest)
            .map(|(n, _)| n)
            .collect();
        out.push(json!({
            "Id": img.id(),
            "Digest": img.manifest_digest.to_string(),
            "RepoTags": tags,
            "Created": config["created"],
            "Architecture": config["architecture"],
            "Os": config["os"],
            "Config": config["config"],
            "RootFS": config["rootfs"],
            "History": config["history"],
            "Size": img.size(),
            "Layers": img.layers()?.iter().map(|l| json!({
                "Digest": l.digest.to_string(), "DiffID": l.diff_id.to_string(),
                "MediaType": l.media_type, "Size": l.size,
            })).collect::<Vec<_>>(),
            "Manifest": serde_json::to_value(&img.manifest)?,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// A container as `docker inspect` shows one (the fields berth has).
pub fn container(c: &engine::Container) -> Value {
    let o = &c.spec.opts;
    let entrypoint = o.entrypoint.as_ref().map(|e| vec![e.clone()]);
    json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Created": c.created,
        "Image": c.image_id,
        "State": {
            "Status": c.state.as_str(),
            "Running": c.state == engine::State::Running,
            "Paused": c.state == engine::State::Paused,
            "Restarting": c.state == engine::State::Restarting,
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": c.pid,
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.error,
            "StartedAt": c.started,
            "FinishedAt": c.finished,
        },
        "RestartCount": c.restart_count,
        // Podman's: the pod it belongs to, and whether it is that pod's infra container.
        "Pod": c.spec.pod.clone().unwrap_or_default(),
        "IsInfra": c.spec.infra,
        "Config": {
            "Image": c.image,
            "Cmd": o.cmd,
            "Entrypoint": entrypoint,
            "Env": o.env,
            "WorkingDir": o.workdir.clone().unwrap_or_default(),
            "User": o.user.clone().unwrap_or_default(),
            "Hostname": o.hostname,
            "Labels": c.spec.labels,
            "StopSignal": c.spec.stop_signal,
            "Healthcheck": c.spec.healthcheck,
            "Tty": o.tty,
            "OpenStdin": c.spec.interactive,
        },
        "HostConfig": {
            "RestartPolicy": {
                "Name": c.spec.restart.name(),
                "MaximumRetryCount": c.spec.restart.max_retries(),
            },
            "Binds": o.volumes,
            "ReadonlyRootfs": o.read_only,
            "Init": o.init,
        },
    })
}
