//! Objects to a plan of the engine's objects, with no side effect (unit-tested): what
//! `kube play` creates and `kube down` removes.
//!
//! Naming (consistent for play and down): a Pod is the pod of its name; a Deployment of N
//! replicas gives pods `NAME-1` … `NAME-N`; a container is `POD-CONTAINER` (Podman's).
//! Per pod, the files of ConfigMap/Secret volumes and the directories of `emptyDir`
//! volumes live in `<root>/kube/POD/VOLUME/` (a `medium: Memory` one is a tmpfs mounted
//! at `<runroot>/kube/POD/VOLUME`), bound into the containers; a claim is the engine's
//! named volume of the claim's name.

use crate::parse::Object;
use crate::quantity;
use crate::Error;
use engine::probe::{Probe, ProbeAction, Probes};
use engine::types::RestartPolicy;
use engine::volumes::Mount;
use engine::ContainerSpec;
use k8s_openapi::api::core::v1 as k;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use net::ports::{PortMap, Proto};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The label every container and pod made by `kube play` carries (value: the pod).
pub const LABEL_POD: &str = "io.berth.kube.pod";
/// The label of an init container (`kube generate` puts it back in `initContainers`).
/// The engine leaves them out of the pod's readiness (engine::endpoints).
pub const LABEL_INIT: &str = engine::endpoints::KUBE_INIT_LABEL;

/// Where a plan puts its files.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `<root>/kube`: ConfigMap/Secret files and disk-backed emptyDir volumes.
    pub root: PathBuf,
    /// `<runroot>/kube`: the mount points of memory-backed emptyDir volumes.
    pub run: PathBuf,
}

impl Layout {
    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.root.join(pod)
    }
    pub fn pod_run_dir(&self, pod: &str) -> PathBuf {
        self.run.join(pod)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--allow-privileged`: `securityContext.privileged: true` is carried out (every
    /// capability, no seccomp filter) instead of refused.
    pub allow_privileged: bool,
}

/// `imagePullPolicy` (Kubernetes' default: Always for `:latest` or no tag, else
/// IfNotPresent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    Always,
    IfNotPresent,
    Never,
}

/// A file to write before the pod's containers are created.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A directory to make (a tmpfs of that size when `tmpfs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dir {
    pub path: PathBuf,
    pub tmpfs: bool,
    pub size: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct CtrPlan {
    /// `POD-CONTAINER`.
    pub name: String,
    /// The container's name in the YAML.
    pub short: String,
    pub spec: ContainerSpec,
    pub pull: Pull,
}

#[derive(Clone, Debug)]
pub struct PodPlan {
    pub name: String,
    /// `Pod`/`Deployment` and its name, for messages.
    pub from: String,
    pub labels: BTreeMap<String, String>,
    pub hostname: String,
    pub share_pid: bool,
    /// `hostPort`s of its containers (published at the pod level).
    pub ports: Vec<PortMap>,
    /// `containerPort`s by name (for a Service's named `targetPort`).
    pub named_ports: BTreeMap<String, u16>,
    pub restart: RestartPolicy,
    /// Run to completion, in order, before `containers` start.
    pub init: Vec<CtrPlan>,
    pub containers: Vec<CtrPlan>,
    pub dirs: Vec<Dir>,
    pub files: Vec<File>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SvcPort {
    pub name: Option<String>,
    pub proto: Proto,
    pub host_port: u16,
    pub target_port: u16,
}

#[derive(Clone, Debug)]
pub struct ServicePlan {
    pub name: String,
    pub ports: Vec<SvcPort>,
    /// The pods its selector picks (their infra containers are the backends).
    pub pods: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub pods: Vec<PodPlan>,
    pub services: Vec<ServicePlan>,
    /// Claims: the engine's named volumes.
    pub claims: Vec<String>,
    pub warnings: Vec<String>,
}

fn invalid(s: String) -> Error {
    Error::Invalid(s)
}

/// DNS-1123 subdomain (Kubernetes' object names), which is also a safe path component
/// and engine name.
pub fn check_name(what: &str, n: &str) -> Result<(), Error> {
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.as_bytes()[n.len() - 1].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {n:?}: not a valid name (lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit)"
        )))
    }
}

/// A key of a ConfigMap/Secret, or a relative `items[].path`: no `..`, not absolute.
fn check_rel(what: &str, p: &str) -> Result<(), Error> {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(invalid(format!(
            "{what} {p:?}: must be a relative path without '..'"
        )));
    }
    Ok(())
}

/// The data of the ConfigMaps and Secrets of the files, by name.
#[derive(Default)]
struct Data {
    config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Data {
    fn get(&self, secret: bool, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        if secret {
            self.secrets.get(name)
        } else {
            self.config_maps.get(name)
        }
    }
}

fn what(secret: bool) -> &'static str {
    if secret {
        "Secret"
    } else {
        "ConfigMap"
    }
}

/// Translates the objects of the files (in order) into a plan.
pub fn plan(objects: &[Object], layout: &Layout, opts: &Options) -> Result<Plan, Error> {
    let mut data = Data::default();
    for o in objects {
        match o {
            Object::ConfigMap(c) => {
                let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                for (k, v) in c.data.iter().flatten() {
                    m.insert(k.clone(), v.clone().into_bytes());
                }
                for (k, v) in c.binary_data.iter().flatten() {
                    m.insert(k.clone(), v.0.clone());
                }
                data.config_maps.insert(o.name().to_string(), m);
            }
            Object::Secret(s) => {
                let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                for (k, v) in s.data.iter().flatten() {
                    m.insert(k.clone(), v.0.clone());
                }
                for (k, v) in s.string_data.iter().flatten() {
                    m.insert(k.clone(), v.clone().into_bytes());
                }
                data.secrets.insert(o.name().to_string(), m);
            }
            _ => {}
        }
    }
    let mut p = Plan::default();
    for o in objects {
        match o {
            Object::Pod(pod) => {
                let name = o.name();
                check_name("Pod", name)?;
                let spec = pod
                    .spec
                    .as_ref()
                    .ok_or_else(|| invalid(format!("Pod {name:?}: no spec")))?;
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                p.pods.push(pod_plan(
                    name,
                    format!("Pod {name:?}"),
                    labels,
                    spec,
                    &data,
                    layout,
                    opts,
                    &mut p.warnings,
                )?);
            }
            Object::Deployment(d) => {
                let name = o.name();
                check_name("Deployment", name)?;
                let spec = d
                    .spec
                    .as_ref()
                    .ok_or_else(|| invalid(format!("Deployment {name:?}: no spec")))?;
                let replicas = spec.replicas.unwrap_or(1);
                if !(0..=1000).contains(&replicas) {
                    return Err(invalid(format!(
                        "Deployment {name:?}: spec.replicas {replicas}: expected 0 to 1000"
                    )));
                }
                let tmeta = spec.template.metadata.clone().unwrap_or_default();
                let labels = tmeta.labels.unwrap_or_default();
                // The selector must pick the template's pods (the API server's rule).
                for (k, v) in spec.selector.match_labels.iter().flatten() {
                    if labels.get(k) != Some(v) {
                        return Err(invalid(format!(
                            "Deployment {name:?}: spec.selector.matchLabels {k}={v} does not \
                             match spec.template.metadata.labels"
                        )));
                    }
                }
                let pspec = spec.template.spec.as_ref().ok_or_else(|| {
                    invalid(format!("Deployment {name:?}: no spec.template.spec"))
                })?;
                for i in 1..=replicas {
                    let pod = format!("{name}-{i}");
                    p.pods.push(pod_plan(
                        &pod,
                        format!("Deployment {name:?}"),
                        labels.clone(),
                        pspec,
                        &data,
                        layout,
                        opts,
                        &mut p.warnings,
                    )?);
                }
            }
            Object::Pvc(_) => {
                let name = o.name();
                engine_volume_name(name)?;
                p.claims.push(name.to_string());
            }
            _ => {}
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for pod in &p.pods {
        if !seen.insert(pod.name.clone()) {
            return Err(invalid(format!(
                "pod {:?} is made twice (by {})",
                pod.name, pod.from
            )));
        }
    }
    for o in objects {
        if let Object::Service(s) = o {
            let sp = service_plan(o.name(), s, &p.pods, &mut p.warnings)?;
            p.services.push(sp);
        }
    }
    Ok(p)
}

fn engine_volume_name(n: &str) -> Result<(), Error> {
    if engine::volumes::valid_name(n) {
        Ok(())
    } else {
        Err(invalid(format!(
            "PersistentVolumeClaim {n:?}: not a valid volume name"
        )))
    }
}

fn service_plan(
    name: &str,
    s: &k::Service,
    pods: &[PodPlan],
    warnings: &mut Vec<String>,
) -> Result<ServicePlan, Error> {
    check_name("Service", name)?;
    let spec = s.spec.clone().unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    let chosen: Vec<&PodPlan> = if selector.is_empty() {
        vec![]
    } else {
        pods.iter()
            .filter(|p| selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect()
    };
    if chosen.is_empty() {
        warnings.push(format!(
            "Service {name:?}: its selector picks no pod of these files: its ports reach nothing"
        ));
    }
    let mut ports = Vec::new();
    for (i, sp) in spec.ports.unwrap_or_default().iter().enumerate() {
        let at = format!("Service {name:?}: spec.ports[{i}]");
        let proto = match sp.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Proto::Tcp,
            "UDP" => Proto::Udp,
            other => {
                return Err(invalid(format!(
                    "{at}.protocol {other:?}: berth has TCP and UDP"
                )))
            }
        };
        let port16 = |what: &str, n: i32| {
            u16::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(format!("{at}.{what} {n}: not a port (1-65535)")))
        };
        let host_port = match sp.node_port {
            Some(n) => port16("nodePort", n)?,
            None => port16("port", sp.port)?,
        };
        let target_port = match &sp.target_port {
            None => port16("port", sp.port)?,
            Some(IntOrString::Int(n)) => port16("targetPort", *n)?,
            Some(IntOrString::String(n)) => {
                let found: Vec<u16> = chosen
                    .iter()
                    .filter_map(|p| p.named_ports.get(n).copied())
                    .collect();
                match found.first() {
                    Some(p) if found.iter().all(|q| q == p) => *p,
                    Some(_) => {
                        return Err(invalid(format!(
                            "{at}.targetPort {n:?}: the selected pods give that name different ports"
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "{at}.targetPort {n:?}: no container port of that name in the selected pods"
                        )))
                    }
                }
            }
        };
        ports.push(SvcPort {
            name: sp.name.clone(),
            proto,
            host_port,
            target_port,
        });
    }
    Ok(ServicePlan {
        name: name.to_string(),
        ports,
        pods: chosen.iter().map(|p| p.name.clone()).collect(),
    })
}

#[allow(clippy::too_many_arguments)]
fn pod_plan(
    name: &str,
    from: String,
    labels: BTreeMap<String, String>,
    spec: &k::PodSpec,
    data: &Data,
    layout: &Layout,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> Result<PodPlan, Error> {
    let restart = match spec.restart_policy.as_deref().unwrap_or("Always") {
        "Always" => RestartPolicy::Always,
        "OnFailure" => RestartPolicy::OnFailure(None),
        "Never" => RestartPolicy::No,
        other => {
            return Err(invalid(format!(
                "{from}: restartPolicy {other:?}: expected Always, OnFailure or Never"
            )))
        }
    };
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.to_string());
    let stop_timeout = spec
        .termination_grace_period_seconds
        .map(|s| u64::try_from(s).unwrap_or(0));
    let mut plan = PodPlan {
        name: name.to_string(),
        from: from.clone(),
        labels,
        hostname,
        share_pid: spec.share_process_namespace.unwrap_or(false),
        ports: Vec::new(),
        named_ports: BTreeMap::new(),
        restart,
        init: Vec::new(),
        containers: Vec::new(),
        dirs: Vec::new(),
        files: Vec::new(),
    };
    // Volumes: what each name mounts as.
    let mut vols: BTreeMap<String, VolSource> = BTreeMap::new();
    for v in spec.volumes.iter().flatten() {
        check_name(&format!("{from}: volume"), &v.name)?;
        let dir = layout.pod_dir(name).join(&v.name);
        let src = if let Some(c) = &v.config_map {
            let files = key_files(false, &c.name, c.items.as_deref(), c.optional, data, &from)?;
            push_files(&mut plan, &dir, files, 0o644);
            VolSource::Files(dir)
        } else if let Some(s) = &v.secret {
            let sname = s.secret_name.clone().unwrap_or_default();
            let files = key_files(true, &sname, s.items.as_deref(), s.optional, data, &from)?;
            push_files(&mut plan, &dir, files, 0o600);
            VolSource::Files(dir)
        } else if let Some(c) = &v.persistent_volume_claim {
            engine_volume_name(&c.claim_name)?;
            VolSource::Claim(c.claim_name.clone(), c.read_only.unwrap_or(false))
        } else if let Some(e) = &v.empty_dir {
            let size = match &e.size_limit {
                Some(q) => Some(quantity::bytes(&q.0).ok_or_else(|| {
                    invalid(format!(
                        "{from}: volume {:?}: bad sizeLimit {:?}",
                        v.name, q.0
                    ))
                })?),
                None => None,
            };
            let memory = match e.medium.as_deref().unwrap_or("") {
                "" => false,
                "Memory" => true,
                m => {
                    return Err(invalid(format!(
                        "{from}: volume {:?}: emptyDir medium {m:?}: expected \"\" or Memory",
                        v.name
                    )))
                }
            };
            let path = if memory {
                layout.pod_run_dir(name).join(&v.name)
            } else {
                dir
            };
            plan.dirs.push(Dir {
                path: path.clone(),
                tmpfs: memory,
                size,
            });
            VolSource::Dir(path)
        } else if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') || h.path.split('/').any(|c| c == "..") {
                return Err(invalid(format!(
                    "{from}: volume {:?}: hostPath {:?} must be absolute without '..'",
                    v.name, h.path
                )));
            }
            match h.type_.as_deref().unwrap_or("") {
                "" | "Directory" | "File" | "Socket" | "CharDevice" | "BlockDevice" => {}
                "DirectoryOrCreate" => plan.dirs.push(Dir {
                    path: PathBuf::from(&h.path),
                    tmpfs: false,
                    size: None,
                }),
                t => {
                    return Err(invalid(format!(
                        "{from}: volume {:?}: hostPath type {t:?} is not supported",
                        v.name
                    )))
                }
            }
            VolSource::Host(PathBuf::from(&h.path))
        } else {
            // Its type was named in the unsupported-field warnings.
            warnings.push(format!(
                "{from}: volume {:?} has no type berth supports: its mounts are skipped",
                v.name
            ));
            VolSource::Unsupported
        };
        vols.insert(v.name.clone(), src);
    }
    let pod_user = spec.security_context.as_ref().and_then(|s| s.run_as_user);
    let pod_group = spec.security_context.as_ref().and_then(|s| s.run_as_group);
    let mut names = std::collections::BTreeSet::new();
    for (init, list) in [
        (true, spec.init_containers.as_deref().unwrap_or_default()),
        (false, spec.containers.as_slice()),
    ] {
        for c in list {
            check_name(&format!("{from}: container"), &c.name)?;
            if !names.insert(c.name.clone()) {
                return Err(invalid(format!(
                    "{from}: container name {:?} is used twice",
                    c.name
                )));
            }
            let cp = ctr_plan(
                &mut plan,
                c,
                init,
                (pod_user, pod_group),
                stop_timeout,
                &vols,
                data,
                opts,
                warnings,
            )?;
            if init {
                plan.init.push(cp);
            } else {
                plan.containers.push(cp);
            }
        }
    }
    if plan.containers.is_empty() {
        return Err(invalid(format!("{from}: spec.containers is empty")));
    }
    Ok(plan)
}

enum VolSource {
    Files(PathBuf),
    Dir(PathBuf),
    Claim(String, bool),
    Host(PathBuf),
    Unsupported,
}

/// The (relative path, bytes) of a ConfigMap/Secret volume: every key, or its `items`.
fn key_files(
    secret: bool,
    name: &str,
    items: Option<&[k::KeyToPath]>,
    optional: Option<bool>,
    data: &Data,
    from: &str,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let kind = what(secret);
    let Some(m) = data.get(secret, name) else {
        if optional == Some(true) {
            return Ok(vec![]);
        }
        return Err(invalid(format!(
            "{from}: {kind} {name:?} is not in these files (define it before or after the pod)"
        )));
    };
    let mut out = Vec::new();
    match items {
        None => {
            for (k, v) in m {
                check_rel(&format!("{kind} {name:?}: key"), k)?;
                out.push((k.clone(), v.clone()));
            }
        }
        Some(items) => {
            for it in items {
                let v = m.get(&it.key).ok_or_else(|| {
                    invalid(format!("{from}: {kind} {name:?} has no key {:?}", it.key))
                })?;
                check_rel(&format!("{from}: {kind} {name:?}: items path"), &it.path)?;
                out.push((it.path.clone(), v.clone()));
            }
        }
    }
    Ok(out)
}

fn push_files(plan: &mut PodPlan, dir: &Path, files: Vec<(String, Vec<u8>)>, mode: u32) {
    plan.dirs.push(Dir {
        path: dir.to_path_buf(),
        tmpfs: false,
        size: None,
    });
    for (rel, data) in files {
        plan.files.push(File {
            path: dir.join(rel),
            data,
            mode,
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn ctr_plan(
    pod: &mut PodPlan,
    c: &k::Container,
    init: bool,
    (pod_user, pod_group): (Option<i64>, Option<i64>),
    stop_timeout: Option<u64>,
    vols: &BTreeMap<String, VolSource>,
    data: &Data,
    opts: &Options,
    warnings: &mut Vec<String>,
) -> Result<CtrPlan, Error> {
    let from = format!("{}: container {:?}", pod.from, c.name);
    let image = c
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| invalid(format!("{from}: no image")))?;
    let pull = match c.image_pull_policy.as_deref() {
        Some("Always") => Pull::Always,
        Some("IfNotPresent") => Pull::IfNotPresent,
        Some("Never") => Pull::Never,
        None => {
            let last = image.rsplit('/').next().unwrap_or(&image);
            if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
                Pull::IfNotPresent
            } else {
                Pull::Always
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "{from}: imagePullPolicy {other:?}: expected Always, IfNotPresent or Never"
            )))
        }
    };
    let mut spec = ContainerSpec {
        image,
        ..Default::default()
    };
    // command replaces the image's entrypoint (and so its cmd); args replace its cmd.
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    if let Some((first, rest)) = command.split_first() {
        spec.opts.entrypoint = Some(first.clone());
        spec.opts.cmd = rest.iter().chain(&args).cloned().collect();
    } else {
        spec.opts.cmd = args;
    }
    spec.opts.workdir = c.working_dir.clone();
    // Environment: envFrom first, env after (a later one wins, as the kubelet's).
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        let src = match (&ef.config_map_ref, &ef.secret_ref) {
            (Some(r), _) => Some((false, r.name.clone(), r.optional)),
            (_, Some(r)) => Some((true, r.name.clone(), r.optional)),
            _ => None,
        };
        let Some((secret, name, optional)) = src else {
            continue;
        };
        match data.get(secret, &name) {
            Some(m) => {
                for (k, v) in m {
                    let key = format!("{prefix}{k}");
                    if !valid_env_name(&key) {
                        warnings.push(format!(
                            "{from}: envFrom {} {name:?}: key {k:?} is not a valid variable name: skipped",
                            what(secret)
                        ));
                        continue;
                    }
                    set(key, String::from_utf8_lossy(v).into_owned());
                }
            }
            None if optional == Some(true) => {}
            None => {
                return Err(invalid(format!(
                    "{from}: envFrom: {} {name:?} is not in these files",
                    what(secret)
                )))
            }
        }
    }
    for e in c.env.iter().flatten() {
        if !valid_env_name(&e.name) {
            return Err(invalid(format!(
                "{from}: env {:?}: not a valid variable name",
                e.name
            )));
        }
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(vf)) => {
                let r = match (&vf.config_map_key_ref, &vf.secret_key_ref) {
                    (Some(r), _) => Some((false, &r.name, &r.key, r.optional)),
                    (_, Some(r)) => Some((true, &r.name, &r.key, r.optional)),
                    _ => None,
                };
                match r {
                    None => None,
                    Some((secret, name, key, optional)) => {
                        match data.get(secret, name).and_then(|m| m.get(key)) {
                            Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                            None if optional == Some(true) => None,
                            None => {
                                return Err(invalid(format!(
                                "{from}: env {:?}: {} {name:?} key {key:?} is not in these files",
                                e.name,
                                what(secret)
                            )))
                            }
                        }
                    }
                }
            }
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            set(e.name.clone(), v);
        }
    }
    spec.opts.env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Security context (the container's over the pod's).
    let sc = c.security_context.clone().unwrap_or_default();
    let uid = sc.run_as_user.or(pod_user);
    let gid = sc.run_as_group.or(pod_group);
    spec.opts.user = match (uid, gid) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => {
            warnings.push(format!(
                "{from}: runAsGroup {g} without runAsUser: berth runs the image's user with group {g} as user 0's: set runAsUser"
            ));
            Some(format!("0:{g}"))
        }
        (None, None) => None,
    };
    if let Some(u) = uid.filter(|u| *u < 0) {
        return Err(invalid(format!("{from}: runAsUser {u}: negative")));
    }
    spec.opts.read_only = sc.read_only_root_filesystem.unwrap_or(false);
    if let Some(caps) = &sc.capabilities {
        spec.opts.cap_add = caps.add.clone().unwrap_or_default();
        spec.opts.cap_drop = caps.drop.clone().unwrap_or_default();
    }
    if sc.privileged == Some(true) {
        if !opts.allow_privileged {
            return Err(invalid(format!(
                "{from}: securityContext.privileged is refused (pass --allow-privileged to run it)"
            )));
        }
        spec.opts.cap_add = vec!["ALL".into()];
        spec.opts.security_opt.push("seccomp=unconfined".into());
    }
    if sc.allow_privilege_escalation == Some(false) {
        spec.opts.security_opt.push("no-new-privileges".into());
    }
    // Resources: limits are the cgroup's (and what admission reserves).
    let res = c.resources.clone().unwrap_or_default();
    let limits = res.limits.unwrap_or_default();
    let requests = res.requests.unwrap_or_default();
    let mem = limits.get("memory").or_else(|| requests.get("memory"));
    if let Some(q) = mem {
        let b = quantity::bytes(&q.0).filter(|b| *b > 0).ok_or_else(|| {
            invalid(format!(
                "{from}: resources memory {:?}: not a quantity",
                q.0
            ))
        })?;
        spec.opts.memory = Some(b.to_string());
    }
    let cpu = limits.get("cpu").or_else(|| requests.get("cpu"));
    if let Some(q) = cpu {
        let n = quantity::value(&q.0)
            .filter(|n| *n > 0.0)
            .ok_or_else(|| invalid(format!("{from}: resources cpu {:?}: not a quantity", q.0)))?;
        spec.opts.cpus = Some(n);
    }
    if (!limits.contains_key("memory") && requests.contains_key("memory"))
        || (!limits.contains_key("cpu") && requests.contains_key("cpu"))
    {
        warnings.push(format!(
            "{from}: a request without a limit is applied as the limit (berth's admission reserves the limit)"
        ));
    }
    for (k, _) in limits.iter().chain(requests.iter()) {
        if k != "memory" && k != "cpu" {
            warnings.push(format!("{from}: resource {k:?} is not supported: ignored"));
        }
    }
    // Ports: hostPort is published on the pod; names are kept for Services.
    for p in c.ports.iter().flatten() {
        let port = u16::try_from(p.container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                invalid(format!(
                    "{from}: containerPort {}: not a port",
                    p.container_port
                ))
            })?;
        let proto = match p.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Proto::Tcp,
            "UDP" => Proto::Udp,
            other => return Err(invalid(format!("{from}: port protocol {other:?}"))),
        };
        if let Some(n) = &p.name {
            pod.named_ports.insert(n.clone(), port);
        }
        if let Some(hp) = p.host_port {
            let host_port = u16::try_from(hp)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(format!("{from}: hostPort {hp}: not a port")))?;
            pod.ports.push(PortMap {
                proto,
                host_ip: None,
                host_port,
                ctr_port: port,
            });
        }
    }
    for m in c.volume_mounts.iter().flatten() {
        let src = vols.get(&m.name).ok_or_else(|| {
            invalid(format!(
                "{from}: volumeMounts {:?}: no volume of that name in the pod",
                m.name
            ))
        })?;
        if !m.mount_path.starts_with('/') || m.mount_path.split('/').any(|c| c == "..") {
            return Err(invalid(format!(
                "{from}: mountPath {:?}: must be absolute without '..'",
                m.mount_path
            )));
        }
        let ro = m.read_only.unwrap_or(false);
        let target = m.mount_path.clone();
        spec.mounts.push(match src {
            VolSource::Files(dir) => Mount::Bind {
                source: dir.clone(),
                target,
                readonly: true,
            },
            VolSource::Dir(dir) | VolSource::Host(dir) => Mount::Bind {
                source: dir.clone(),
                target,
                readonly: ro,
            },
            VolSource::Claim(name, claim_ro) => Mount::Volume {
                source: name.clone(),
                target,
                readonly: ro || *claim_ro,
                anonymous: false,
                nocopy: false,
            },
            VolSource::Unsupported => continue,
        });
    }
    spec.opts.tty = c.tty.unwrap_or(false);
    spec.interactive = c.stdin.unwrap_or(false);
    spec.restart = if init { RestartPolicy::No } else { pod.restart };
    spec.stop_timeout = stop_timeout;
    spec.labels.insert(LABEL_POD.into(), pod.name.clone());
    if init {
        spec.labels.insert(LABEL_INIT.into(), "true".into());
    }
    let probe = |what: &str, p: &Option<k::Probe>| -> Result<Option<Probe>, Error> {
        p.as_ref()
            .map(|p| probe(&format!("{from}: {what}"), p, &pod.named_ports))
            .transpose()
    };
    spec.probes = Probes {
        liveness: probe("livenessProbe", &c.liveness_probe)?,
        readiness: probe("readinessProbe", &c.readiness_probe)?,
        startup: probe("startupProbe", &c.startup_probe)?,
        never_restart: pod.restart == RestartPolicy::No,
    };
    if init && !spec.probes.is_empty() {
        return Err(invalid(format!(
            "{from}: an init container cannot have probes"
        )));
    }
    Ok(CtrPlan {
        name: format!("{}-{}", pod.name, c.name),
        short: c.name.clone(),
        spec,
        pull,
    })
}

/// A Kubernetes probe as the engine's (k8s defaults: 0 s delay, 10 s period, 1 s timeout,
/// thresholds 1 and 3; a named port is one of the pod's container ports).
fn probe(from: &str, p: &k::Probe, named: &BTreeMap<String, u16>) -> Result<Probe, Error> {
    let port = |v: &IntOrString| -> Result<u16, Error> {
        match v {
            IntOrString::Int(n) => u16::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(format!("{from}: port {n}: not a port"))),
            IntOrString::String(s) => named.get(s).copied().ok_or_else(|| {
                invalid(format!(
                    "{from}: port {s:?}: no container port of that name"
                ))
            }),
        }
    };
    let action = match (&p.exec, &p.http_get, &p.tcp_socket) {
        (Some(e), _, _) => {
            let cmd = e.command.clone().unwrap_or_default();
            if cmd.is_empty() {
                return Err(invalid(format!("{from}: exec.command is empty")));
            }
            ProbeAction::Exec(cmd)
        }
        (_, Some(h), _) => ProbeAction::HttpGet {
            port: port(&h.port)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            host: h.host.clone(),
            scheme_https: h.scheme.as_deref() == Some("HTTPS"),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        },
        (_, _, Some(t)) => ProbeAction::TcpSocket {
            port: port(&t.port)?,
            host: t.host.clone(),
        },
        _ => {
            return Err(invalid(format!(
                "{from}: no exec, httpGet or tcpSocket (the probe types berth runs)"
            )))
        }
    };
    let secs = |what: &str, v: Option<i32>, default: u64, min: i32| -> Result<Duration, Error> {
        match v {
            None => Ok(Duration::from_secs(default)),
            Some(n) if n >= min => Ok(Duration::from_secs(n as u64)),
            Some(n) => Err(invalid(format!("{from}: {what} {n}: at least {min}"))),
        }
    };
    let count = |what: &str, v: Option<i32>, default: u32| -> Result<u32, Error> {
        match v {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n as u32),
            Some(n) => Err(invalid(format!("{from}: {what} {n}: at least 1"))),
        }
    };
    Ok(Probe {
        action,
        initial_delay: secs("initialDelaySeconds", p.initial_delay_seconds, 0, 0)?,
        period: secs("periodSeconds", p.period_seconds, 10, 1)?,
        timeout: secs("timeoutSeconds", p.timeout_seconds, 1, 1)?,
        success_threshold: count("successThreshold", p.success_threshold, 1)?,
        failure_threshold: count("failureThreshold", p.failure_threshold, 3)?,
    })
}

fn valid_env_name(n: &str) -> bool {
    !n.is_empty() && !n.contains('=') && !n.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn layout() -> Layout {
        Layout {
            root: PathBuf::from("/r/kube"),
            run: PathBuf::from("/run/x/kube"),
        }
    }

    fn plan_of(text: &str) -> Result<Plan, Error> {
        let p = parse("t.yaml", text)?;
        plan(&p.objects, &layout(), &Options::default())
    }

    const FULL: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {GREETING: hello, conf.txt: "a=1\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {PASSWORD: czNjcjN0}
---
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {app: x}}
spec:
  restartPolicy: OnFailure
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 3
  securityContext: {runAsUser: 1000}
  initContainers:
  - name: first
    image: busybox:1
    command: [sh, -c, "echo 1 >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c]
    args: ["sleep 1000"]
    workingDir: /tmp
    env:
    - {name: A, value: b}
    - name: G
      valueFrom: {configMapKeyRef: {name: cfg, key: GREETING}}
    - name: P
      valueFrom: {secretKeyRef: {name: sec, key: PASSWORD}}
    envFrom:
    - {configMapRef: {name: cfg}, prefix: CM_}
    ports:
    - {containerPort: 80, hostPort: 8080, name: http}
    securityContext:
      runAsGroup: 50
      readOnlyRootFilesystem: true
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
    resources:
      limits: {memory: 64Mi, cpu: 500m}
    volumeMounts:
    - {name: conf, mountPath: /etc/conf}
    - {name: secret, mountPath: /etc/secret}
    - {name: work, mountPath: /work}
    - {name: mem, mountPath: /mem}
    - {name: data, mountPath: /data, readOnly: true}
  volumes:
  - name: conf
    configMap: {name: cfg, items: [{key: conf.txt, path: sub/c.txt}]}
  - name: secret
    secret: {secretName: sec}
  - {name: work, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  - {name: data, persistentVolumeClaim: {claimName: claim}}
"#;

    #[test]
    fn pod_translation() {
        let p = plan_of(FULL).expect("plan");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.pods.len(), 1);
        let pod = &p.pods[0];
        assert_eq!(pod.name, "app");
        assert!(pod.share_pid);
        assert_eq!(pod.restart, RestartPolicy::OnFailure(None));
        assert_eq!(pod.init.len(), 1);
        assert_eq!(pod.init[0].name, "app-first");
        assert_eq!(pod.init[0].spec.restart, RestartPolicy::No);
        assert_eq!(pod.init[0].pull, Pull::IfNotPresent);
        let c = &pod.containers[0];
        assert_eq!(c.name, "app-main");
        assert_eq!(c.pull, Pull::Never);
        assert_eq!(c.spec.opts.entrypoint.as_deref(), Some("sh"));
        assert_eq!(c.spec.opts.cmd, ["-c", "sleep 1000"]);
        assert_eq!(c.spec.opts.workdir.as_deref(), Some("/tmp"));
        let env = &c.spec.opts.env;
        for e in [
            "A=b",
            "G=hello",
            "P=s3cr3t",
            "CM_GREETING=hello",
            "CM_conf.txt=a=1\n",
        ] {
            assert!(env.contains(&e.to_string()), "{e} in {env:?}");
        }
        assert_eq!(c.spec.opts.user.as_deref(), Some("1000:50"));
        assert!(c.spec.opts.read_only);
        assert_eq!(c.spec.opts.cap_add, ["NET_ADMIN"]);
        assert_eq!(c.spec.opts.cap_drop, ["ALL"]);
        assert_eq!(c.spec.opts.memory.as_deref(), Some("67108864"));
        assert_eq!(c.spec.opts.cpus, Some(0.5));
        assert_eq!(c.spec.stop_timeout, Some(3));
        assert_eq!(c.spec.restart, RestartPolicy::OnFailure(None));
        assert_eq!(
            c.spec.labels.get(LABEL_POD).map(String::as_str),
            Some("app")
        );
        assert_eq!(
            pod.ports,
            [PortMap {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                ctr_port: 80
            }]
        );
        assert_eq!(pod.named_ports.get("http"), Some(&80));
        let m = &c.spec.mounts;
        assert_eq!(
            m[0],
            Mount::Bind {
                source: "/r/kube/app/conf".into(),
                target: "/etc/conf".into(),
                readonly: true
            }
        );
        assert_eq!(
            m[3],
            Mount::Bind {
                source: "/run/x/kube/app/mem".into(),
                target: "/mem".into(),
                readonly: false
            }
        );
        assert!(matches!(&m[4], Mount::Volume { source, readonly: true, .. } if source == "claim"));
        assert!(pod.files.contains(&File {
            path: "/r/kube/app/conf/sub/c.txt".into(),
            data: b"a=1\n".to_vec(),
            mode: 0o644
        }));
        assert!(pod.files.contains(&File {
            path: "/r/kube/app/secret/PASSWORD".into(),
            data: b"s3cr3t".to_vec(),
            mode: 0o600
        }));
        assert!(pod.dirs.contains(&Dir {
            path: "/run/x/kube/app/mem".into(),
            tmpfs: true,
            size: Some(1 << 20)
        }));
        assert!(pod.dirs.contains(&Dir {
            path: "/r/kube/app/work".into(),
            tmpfs: false,
            size: None
        }));
    }

    const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: srv
        image: busybox
        args: [httpd, -f, -p, "8000"]
        ports: [{containerPort: 8000, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http, nodePort: 30080}
  - {port: 81, targetPort: 8000, protocol: UDP}
"#;

    #[test]
    fn deployment_and_service() {
        let p = plan_of(DEPLOY).expect("plan");
        let names: Vec<&str> = p.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web-1", "web-2", "web-3"]);
        assert_eq!(p.pods[2].containers[0].name, "web-3-srv");
        assert_eq!(p.pods[0].containers[0].spec.opts.entrypoint, None);
        assert_eq!(p.pods[0].containers[0].spec.opts.cmd[0], "httpd");
        assert_eq!(p.services.len(), 1);
        let s = &p.services[0];
        assert_eq!(s.pods, ["web-1", "web-2", "web-3"]);
        assert_eq!(
            s.ports,
            [
                SvcPort {
                    name: None,
                    proto: Proto::Tcp,
                    host_port: 30080,
                    target_port: 8000
                },
                SvcPort {
                    name: None,
                    proto: Proto::Udp,
                    host_port: 81,
                    target_port: 8000
                }
            ]
        );
    }

    #[test]
    fn probes() {
        let p = plan_of("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    ports: [{containerPort: 8080, name: web}]\n    livenessProbe: {httpGet: {port: web, path: /healthz}, periodSeconds: 2, failureThreshold: 1}\n    readinessProbe: {tcpSocket: {port: 8080}}\n    startupProbe: {exec: {command: [test, -f, /ok]}, initialDelaySeconds: 1}\n").expect("plan");
        let pr = &p.pods[0].containers[0].spec.probes;
        let l = pr.liveness.as_ref().expect("liveness");
        assert_eq!(
            l.action,
            ProbeAction::HttpGet {
                port: 8080,
                path: "/healthz".into(),
                host: None,
                scheme_https: false,
                headers: vec![]
            }
        );
        assert_eq!(l.period, Duration::from_secs(2));
        assert_eq!(l.failure_threshold, 1);
        assert_eq!(l.timeout, Duration::from_secs(1));
        let r = pr.readiness.as_ref().expect("readiness");
        assert_eq!(
            r.action,
            ProbeAction::TcpSocket {
                port: 8080,
                host: None
            }
        );
        assert_eq!(r.period, Duration::from_secs(10));
        let s = pr.startup.as_ref().expect("startup");
        assert_eq!(
            s.action,
            ProbeAction::Exec(vec!["test".into(), "-f".into(), "/ok".into()])
        );
        assert_eq!(s.initial_delay, Duration::from_secs(1));
        let e = plan_of("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    livenessProbe: {tcpSocket: {port: nope}}\n").expect_err("named").to_string();
        assert!(e.contains("livenessProbe") && e.contains("nope"), "{e}");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let e = |t: &str| plan_of(t).expect_err(t).to_string();
        let pod = |c: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n{c}")
        };
        let s = e(&pod("    securityContext: {privileged: true}\n"));
        assert!(
            s.contains("privileged") && s.contains("--allow-privileged"),
            "{s}"
        );
        let s = e(&pod(
            "    env: [{name: X, valueFrom: {configMapKeyRef: {name: nope, key: k}}}]\n",
        ));
        assert!(s.contains("ConfigMap \"nope\""), "{s}");
        let s = e(&pod("    volumeMounts: [{name: v, mountPath: /x}]\n"));
        assert!(s.contains("no volume of that name"), "{s}");
        let s = e("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: x}]}\n");
        assert!(s.contains("Bad_Name"), "{s}");
        let s = e(&pod("    resources: {limits: {memory: lots}}\n"));
        assert!(s.contains("lots"), "{s}");
        let s = e("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {../x: y}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x, volumeMounts: [{name: v, mountPath: /v}]}]\n  volumes: [{name: v, configMap: {name: c}}]\n");
        assert!(s.contains("../x"), "{s}");
        // Privileged allowed with the option.
        let parsed =
            parse("t.yaml", &pod("    securityContext: {privileged: true}\n")).expect("parse");
        let p = plan(
            &parsed.objects,
            &layout(),
            &Options {
                allow_privileged: true,
            },
        )
        .expect("privileged");
        assert_eq!(p.pods[0].containers[0].spec.opts.cap_add, ["ALL"]);
    }
}
