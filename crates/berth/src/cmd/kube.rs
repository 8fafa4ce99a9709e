//! `berth kube play|down|generate`: Kubernetes YAML (crates/kube) carried out by the
//! engine. `play` makes what the plan says, in this order: claims' volumes, each pod (its
//! files and emptyDir directories, the pod, its init containers then its containers),
//! starts each pod (init containers one at a time to completion, then the others), then
//! the Services. `down` removes the same objects by the same names (the plan of the same
//! files), and the files play wrote; the claims' volumes only with `--force` (Podman's).

use crate::Globals;
use anyhow::{anyhow, bail, Context, Result};
use kube::plan::{Dir, Layout, Plan, PodPlan, Pull};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Create pods, containers, volumes and services from Kubernetes YAML files.
    Play(PlayArgs),
    /// Remove what `kube play` of these files made.
    Down(DownArgs),
    /// Write a pod or container as Kubernetes YAML (a v1 Pod or an apps/v1 Deployment).
    Generate(GenerateArgs),
}

#[derive(clap::Args, Debug)]
struct PlayArgs {
    /// YAML files (`-` reads stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Remove what an earlier play of these files made first.
    #[arg(long)]
    replace: bool,
    /// The pods' network (a network's name, bridge, none, host).
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// `--start=false`: create everything, start nothing.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    start: bool,
    /// Carry out `securityContext.privileged: true` (refused otherwise).
    #[arg(long)]
    allow_privileged: bool,
    /// `false`: pull images over plain HTTP (a registry on loopback).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
}

#[derive(clap::Args, Debug)]
struct DownArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also remove the volumes of the PersistentVolumeClaims.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Pods or containers (names or IDs).
    #[arg(required = true)]
    names: Vec<String>,
    /// pod (default) or deployment.
    #[arg(long = "type", default_value = "pod")]
    kind: String,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    filename: Option<PathBuf>,
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    match a.cmd {
        Sub::Play(a) => play(g, a),
        Sub::Down(a) => down(g, a),
        Sub::Generate(a) => generate(g, a),
    }
}

fn layout(g: &Globals) -> Layout {
    Layout {
        root: g.root.join("kube"),
        run: g.runroot.join("kube"),
    }
}

/// The plan of the files (warnings printed to stderr).
fn plan_files(g: &Globals, files: &[PathBuf], allow_privileged: bool) -> Result<Plan> {
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        let (name, text) = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("read the YAML from stdin")?;
            ("(stdin)".to_string(), s)
        } else {
            let s = std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?;
            (f.display().to_string(), s)
        };
        let p = kube::parse(&name, &text)?;
        objects.extend(p.objects);
        warnings.extend(p.warnings);
    }
    let mut p = kube::plan(
        &objects,
        &layout(g),
        &kube::plan::Options { allow_privileged },
    )?;
    warnings.append(&mut p.warnings);
    for w in &warnings {
        eprintln!("berth: warning: {w}");
    }
    Ok(p)
}

fn play(g: &Globals, a: PlayArgs) -> Result<()> {
    engine::trace::stage("kube:plan");
    let plan = plan_files(g, &a.files, a.allow_privileged)?;
    engine::trace::stage("kube:planned");
    let eng = g.engine()?;
    if a.replace {
        remove(g, &eng, &plan, false)?;
    }
    // Refused before anything is made: a pod of that name.
    for p in &plan.pods {
        if eng.pod(&p.name).is_ok() {
            bail!(
                "pod {:?} already exists: `berth kube down` the file first, or play --replace",
                p.name
            );
        }
    }
    engine::trace::stage("kube:images");
    images(g, &plan, a.tls_verify)?;
    for c in &plan.claims {
        let labels = [("io.berth.kube".to_string(), "true".to_string())].into();
        eng.volume_create(Some(c), labels, Default::default())
            .with_context(|| format!("PersistentVolumeClaim {c:?}"))?;
    }
    engine::trace::stage("kube:create");
    let mut made = Vec::new();
    for p in &plan.pods {
        match create_pod(g, &eng, p, a.network.as_deref(), a.start) {
            Ok(ids) => made.push(ids),
            Err(e) => {
                // Nothing half made stays: this pod and the ones before it go.
                for q in plan.pods.iter().take(made.len() + 1) {
                    let _ = remove_pod(g, &eng, q);
                }
                return Err(e);
            }
        }
    }
    if a.start {
        engine::trace::stage("kube:start");
        for p in &plan.pods {
            start_pod(&eng, p)?;
        }
    }
    engine::trace::stage("kube:services");
    for s in &plan.services {
        let mut backends = Vec::new();
        for pod in &s.pods {
            backends.push(eng.pod(pod)?.infra_id);
        }
        let ports: Vec<engine::service::ServicePort> = s
            .ports
            .iter()
            .map(|p| engine::service::ServicePort {
                name: p.name.clone(),
                proto: p.proto,
                host_ip: None,
                host_port: p.host_port,
                target_port: p.target_port,
            })
            .collect();
        eng.publish_service(&s.name, &ports, &backends)
            .with_context(|| format!("Service {:?}", s.name))?;
    }
    let mut out = std::io::stdout().lock();
    for (pod, ctrs) in made {
        writeln!(out, "Pod:\n{pod}\nContainers:")?;
        for c in ctrs {
            writeln!(out, "{c}")?;
        }
        writeln!(out)?;
    }
    for s in &plan.services {
        writeln!(out, "Service:\n{}\n", s.name)?;
    }
    engine::trace::stage("kube:done");
    Ok(())
}

/// Pulls what the pull policies ask for (`berth login` credentials apply).
fn images(g: &Globals, plan: &Plan, tls_verify: bool) -> Result<()> {
    let store = g.store()?;
    let mut done = std::collections::BTreeSet::new();
    for p in &plan.pods {
        for c in p.init.iter().chain(&p.containers) {
            let image = &c.spec.image;
            if !done.insert(image.clone()) {
                continue;
            }
            let present = store.resolve(image).is_ok();
            let pull = match c.pull {
                Pull::Always => true,
                Pull::IfNotPresent => !present,
                Pull::Never if present => false,
                Pull::Never => bail!(
                    "{}: image {image:?} is not in the store and imagePullPolicy is Never",
                    c.name
                ),
            };
            // A local image (built or loaded) under the name `:latest` is used as it is
            // when it has no registry to come from.
            if pull && (!present || image_has_registry(image)) {
                pull_image(g, image, tls_verify)
                    .with_context(|| format!("{}: pull {image}", c.name))?;
            }
        }
    }
    Ok(())
}

/// Whether the reference names a registry host (`host:port/…`, `a.b/…`, `localhost/…`).
fn image_has_registry(image: &str) -> bool {
    match image.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// `berth pull IMAGE` (its arguments parsed as the command's own).
fn pull_image(g: &Globals, image: &str, tls_verify: bool) -> Result<()> {
    #[derive(clap::Parser, Debug)]
    struct Pull {
        #[command(flatten)]
        a: super::transfer::PullArgs,
    }
    let tls = format!("--tls-verify={tls_verify}");
    let p = <Pull as clap::Parser>::try_parse_from(["pull", image, tls.as_str()])
        .map_err(|e| anyhow!("{e}"))?;
    super::transfer::pull(g, p.a)
}

/// The pod, its files and its containers; (pod id, container ids). With `start`, the
/// pod's infra starts (its network, its monitor) while its containers are created: every
/// member's start waits for it, and a create does not need it.
fn create_pod(
    g: &Globals,
    eng: &engine::Engine,
    p: &PodPlan,
    network: Option<&str>,
    start: bool,
) -> Result<(String, Vec<String>)> {
    let from = &p.from;
    for d in &p.dirs {
        make_dir(d).with_context(|| format!("{from}: make {}", d.path.display()))?;
    }
    for f in &p.files {
        write_file(&f.path, &f.data, f.mode)
            .with_context(|| format!("{from}: write {}", f.path.display()))?;
    }
    let _ = g;
    let spec = engine::pod::PodSpec {
        hostname: Some(p.hostname.clone()),
        labels: p.labels.clone(),
        network: engine::network::NetOpts {
            mode: network.unwrap_or_default().to_string(),
            publish: p.ports.clone(),
            ..Default::default()
        },
        share: engine::pod::Share {
            pid: p.share_pid,
            ..Default::default()
        },
        infra_image: None,
        // Each container has its policy (init containers none).
        restart: None,
        ..Default::default()
    };
    let pod = eng
        .pod_create(Some(&p.name), spec)
        .with_context(|| format!("{from}: create pod {}", p.name))?;
    let create = || -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for c in p.init.iter().chain(&p.containers) {
            let mut spec = c.spec.clone();
            spec.pod = Some(pod.id.clone());
            let ctr = eng
                .create(Some(&c.name), spec)
                .with_context(|| format!("{from}: create container {}", c.name))?;
            ids.push(ctr.id);
        }
        Ok(ids)
    };
    let ids = if start {
        std::thread::scope(|s| {
            let infra = s.spawn(|| eng.pod_start_infra(&pod));
            let ids = create();
            // Joined before any error returns: the caller removes the pod after one.
            let infra = infra
                .join()
                .map_err(|_| anyhow!("{from}: the thread starting the pod's infra panicked"))?;
            let ids = ids?;
            infra
                .with_context(|| format!("{from}: start the infra container of pod {}", p.name))?;
            Ok::<_, anyhow::Error>(ids)
        })?
    } else {
        create()?
    };
    Ok((pod.id, ids))
}

/// Init containers one after the other, each to a zero exit, then the others together.
fn start_pod(eng: &engine::Engine, p: &PodPlan) -> Result<()> {
    for c in &p.init {
        eng.start(&c.name)
            .with_context(|| format!("pod {}: start init container {}", p.name, c.name))?;
        let code = eng.wait(&c.name)?;
        if code != 0 {
            bail!(
                "pod {}: init container {} exited with code {code}: the pod's containers were not started (berth logs {})",
                p.name,
                c.name,
                c.name
            );
        }
    }
    // Together, once the infra runs (engine podstart.rs); every failure named.
    let pod = eng.pod(&p.name)?;
    let names: Vec<String> = p.containers.iter().map(|c| c.name.clone()).collect();
    let failed: Vec<String> = names
        .iter()
        .zip(eng.pod_start_members(&pod, &names))
        .filter_map(|(n, r)| {
            r.err().map(|e| match e.to_string() {
                m if m.contains(n.as_str()) => m,
                m => format!("start container {n}: {m}"),
            })
        })
        .collect();
    if !failed.is_empty() {
        bail!("pod {}: {}", p.name, failed.join("; "));
    }
    Ok(())
}

fn make_dir(d: &Dir) -> Result<()> {
    std::fs::create_dir_all(&d.path)?;
    if d.tmpfs && !is_mountpoint(&d.path) {
        let data = match d.size {
            Some(s) => format!("mode=0777,size={s}"),
            None => "mode=0777".to_string(),
        };
        nix::mount::mount(
            Some("tmpfs"),
            &d.path,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .with_context(|| format!("mount a tmpfs on {}", d.path.display()))?;
    } else if !d.tmpfs {
        use std::os::unix::fs::PermissionsExt;
        // An emptyDir is writable by the pod's users, as the kubelet makes it.
        let _ = std::fs::set_permissions(&d.path, std::fs::Permissions::from_mode(0o777));
    }
    Ok(())
}

fn is_mountpoint(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Temp file, fsync, rename: a reader never sees half a file.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", path.display()))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn down(g: &Globals, a: DownArgs) -> Result<()> {
    let plan = plan_files(g, &a.files, true)?;
    let eng = g.engine()?;
    let removed = remove(g, &eng, &plan, a.force)?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Pods stopped:")?;
        for id in &removed {
            writeln!(out, "{id}")?;
        }
        writeln!(out, "Pods removed:")?;
        for id in &removed {
            writeln!(out, "{id}")?;
        }
    }
    Ok(())
}

/// Services, pods (with their files), and with `volumes` the claims' volumes; the ids of
/// the pods removed. What is not there is skipped.
fn remove(g: &Globals, eng: &engine::Engine, plan: &Plan, volumes: bool) -> Result<Vec<String>> {
    for s in &plan.services {
        if eng.services()?.iter().any(|x| x.name == s.name) {
            eng.unpublish_service(&s.name)
                .with_context(|| format!("Service {:?}", s.name))?;
        }
    }
    let mut removed = Vec::new();
    for p in &plan.pods {
        if let Some(id) = remove_pod(g, eng, p)? {
            removed.push(id);
        }
    }
    if volumes {
        for c in &plan.claims {
            match eng.volume_remove(c, false) {
                Ok(_) | Err(engine::Error::NotFound(_)) => {}
                Err(e) => return Err(e).with_context(|| format!("PersistentVolumeClaim {c:?}")),
            }
        }
    }
    Ok(removed)
}

/// The pod (forced: its running containers are stopped) and the files play made for it.
fn remove_pod(g: &Globals, eng: &engine::Engine, p: &PodPlan) -> Result<Option<String>> {
    let id = match eng.pod(&p.name) {
        Ok(pod) => {
            eng.pod_remove(&pod.id, true)
                .with_context(|| format!("remove pod {}", p.name))?;
            Some(pod.id)
        }
        Err(engine::Error::NoSuchPod(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let l = layout(g);
    let run = l.pod_run_dir(&p.name);
    for d in p.dirs.iter().filter(|d| d.tmpfs) {
        if is_mountpoint(&d.path) {
            nix::mount::umount2(&d.path, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("unmount {}", d.path.display()))?;
        }
    }
    for dir in [l.pod_dir(&p.name), run] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", dir.display())),
        }
    }
    Ok(id)
}

fn generate(g: &Globals, a: GenerateArgs) -> Result<()> {
    let eng = g.engine()?;
    let deployment = match a.kind.as_str() {
        "pod" => false,
        "deployment" => true,
        other => bail!("--type {other:?}: expected pod or deployment"),
    };
    let mut docs = Vec::new();
    for n in &a.names {
        let src = match eng.pod(n) {
            Ok(pod) => {
                let members = eng.pod_members(&pod.id)?;
                let mut labels = pod.spec.labels.clone();
                labels.extend(pod.labels.clone());
                kube::generate::Source {
                    name: pod.name.clone(),
                    labels,
                    hostname: pod.spec.hostname.clone(),
                    share_pid: pod.spec.share.pid,
                    ports: pod.spec.network.publish.clone(),
                    containers: members
                        .into_iter()
                        .map(|c| (kube::generate::short_name(&pod.name, &c.name), c.spec))
                        .collect(),
                }
            }
            Err(engine::Error::NoSuchPod(_)) => {
                let c = eng
                    .inspect(n)
                    .with_context(|| format!("{n:?} is neither a pod nor a container"))?;
                let name = kube::generate::short_name("", &c.name);
                kube::generate::Source {
                    name: format!("{name}-pod"),
                    ports: c.spec.network.publish.clone(),
                    containers: vec![(name, c.spec)],
                    ..Default::default()
                }
            }
            Err(e) => return Err(e.into()),
        };
        kube::plan::check_name("the pod's name", &src.name)
            .context("kube generate: Kubernetes names are lowercase")?;
        let (doc, warnings) = if deployment {
            let (d, w) = kube::generate::deployment(&src);
            (serde_yaml_doc(&d)?, w)
        } else {
            let (p, w) = kube::generate::pod(&src);
            (serde_yaml_doc(&p)?, w)
        };
        for w in warnings {
            eprintln!("berth: warning: {}: {w}", src.name);
        }
        docs.push(doc);
    }
    let text = docs.join("---\n");
    match &a.filename {
        Some(f) => write_file(f, text.as_bytes(), 0o644)
            .with_context(|| format!("write {}", f.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

fn serde_yaml_doc<T: serde::Serialize>(o: &T) -> Result<String> {
    Ok(kube::generate::to_yaml(std::slice::from_ref(o))?)
}
