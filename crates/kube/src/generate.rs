//! `kube generate`: containers of the engine back into a v1 Pod (or an apps/v1
//! Deployment of one replica) that `kube play` accepts. What has no Kubernetes spelling
//! (a user name rather than a number, …) is a warning.

use engine::probe::{Probe, ProbeAction};
use engine::types::RestartPolicy;
use engine::volumes::Mount;
use engine::ContainerSpec;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as k;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use net::ports::{PortMap, Proto};
use std::collections::BTreeMap;

/// What a pod is made of.
#[derive(Clone, Debug, Default)]
pub struct Source {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub share_pid: bool,
    /// Ports published at the pod level (given to the first container as hostPorts).
    pub ports: Vec<PortMap>,
    /// (the container's name in the pod, its spec).
    pub containers: Vec<(String, ContainerSpec)>,
}

/// Kubernetes' name of a container: the pod's prefix taken off (`POD-NAME` → `NAME`),
/// lowercased, other characters made `-`.
pub fn short_name(pod: &str, name: &str) -> String {
    let n = name
        .strip_prefix(pod)
        .and_then(|r| r.strip_prefix('-'))
        .filter(|r| !r.is_empty())
        .unwrap_or(name);
    let s: String = n
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// The Pod's spec and the warnings.
fn pod_spec(src: &Source) -> (k::PodSpec, Vec<String>) {
    let mut warnings = Vec::new();
    let mut volumes: Vec<k::Volume> = Vec::new();
    let mut containers = Vec::new();
    let mut inits = Vec::new();
    let mut restart = None;
    let mut grace = None;
    // Pod-level ports go to the first container that is not an init container.
    let first = src
        .containers
        .iter()
        .position(|(_, s)| !s.labels.contains_key(crate::plan::LABEL_INIT))
        .unwrap_or(0);
    for (i, (name, spec)) in src.containers.iter().enumerate() {
        let from = format!("container {name:?}");
        let init = spec.labels.contains_key(crate::plan::LABEL_INIT);
        if !init {
            restart.get_or_insert(spec.restart);
        }
        if let Some(t) = spec.stop_timeout {
            grace.get_or_insert(t);
        }
        let o = &spec.opts;
        let (command, args) = match &o.entrypoint {
            Some(e) if !e.is_empty() => (Some(vec![e.clone()]), o.cmd.clone()),
            // An empty entrypoint: the whole command line in `command`.
            Some(_) => (Some(o.cmd.clone()), vec![]),
            None => (None, o.cmd.clone()),
        };
        let env: Vec<k::EnvVar> = o
            .env
            .iter()
            .map(|e| {
                let (n, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                k::EnvVar {
                    name: n.to_string(),
                    value: Some(v.to_string()),
                    ..Default::default()
                }
            })
            .collect();
        let mut ports: Vec<k::ContainerPort> = Vec::new();
        let own: Vec<&PortMap> = spec.network.publish.iter().collect();
        let pod_ports: Vec<&PortMap> = if i == first {
            src.ports.iter().collect()
        } else {
            vec![]
        };
        for p in own.into_iter().chain(pod_ports) {
            ports.push(k::ContainerPort {
                container_port: i32::from(p.ctr_port),
                host_port: Some(i32::from(p.host_port)),
                protocol: Some(match p.proto {
                    Proto::Tcp => "TCP".into(),
                    Proto::Udp => "UDP".into(),
                }),
                ..Default::default()
            });
        }
        let mut sc = k::SecurityContext::default();
        if let Some(u) = &o.user {
            let (uid, gid) = match u.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (u.as_str(), None),
            };
            match (uid.parse::<i64>(), gid.map(str::parse::<i64>)) {
                (Ok(u), None) => sc.run_as_user = Some(u),
                (Ok(u), Some(Ok(g))) => {
                    sc.run_as_user = Some(u);
                    sc.run_as_group = Some(g);
                }
                _ => warnings.push(format!(
                    "{from}: user {u:?} is not numeric: Kubernetes needs runAsUser numbers, left out"
                )),
            }
        }
        if o.read_only {
            sc.read_only_root_filesystem = Some(true);
        }
        if !o.cap_add.is_empty() || !o.cap_drop.is_empty() {
            sc.capabilities = Some(k::Capabilities {
                add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
                drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
            });
        }
        if o.security_opt.iter().any(|s| s == "no-new-privileges") {
            sc.allow_privilege_escalation = Some(false);
        }
        let mut limits = BTreeMap::new();
        if let Some(m) = &o.memory {
            match engine::spec::parse_bytes(m) {
                Ok(b) => {
                    limits.insert("memory".to_string(), Quantity(b.to_string()));
                }
                Err(_) => warnings.push(format!("{from}: memory {m:?} left out")),
            }
        }
        if let Some(c) = o.cpus {
            limits.insert(
                "cpu".to_string(),
                Quantity(format!("{}m", (c * 1000.0).round() as i64)),
            );
        }
        let mut mounts = Vec::new();
        let mut add_volume = |v: k::Volume, target: &str, ro: bool| {
            let name = match volumes.iter().find(|x| {
                x.host_path == v.host_path
                    && x.persistent_volume_claim == v.persistent_volume_claim
                    && v.empty_dir.is_none()
            }) {
                Some(x) => x.name.clone(),
                None => {
                    let name = format!("vol-{}", volumes.len() + 1);
                    volumes.push(k::Volume {
                        name: name.clone(),
                        ..v
                    });
                    name
                }
            };
            mounts.push(k::VolumeMount {
                name,
                mount_path: target.to_string(),
                read_only: ro.then_some(true),
                ..Default::default()
            });
        };
        let binds = o.volumes.iter().filter_map(|v| {
            let mut parts = v.splitn(3, ':');
            let host = parts.next()?;
            let target = parts.next()?;
            let ro = parts
                .next()
                .is_some_and(|o| o.split(',').any(|x| x == "ro"));
            Some(Mount::Bind {
                source: host.into(),
                target: target.to_string(),
                readonly: ro,
            })
        });
        for m in spec.mounts.iter().cloned().chain(binds) {
            match m {
                Mount::Bind {
                    source,
                    target,
                    readonly,
                } => add_volume(
                    k::Volume {
                        host_path: Some(k::HostPathVolumeSource {
                            path: source.to_string_lossy().into_owned(),
                            type_: None,
                        }),
                        ..Default::default()
                    },
                    &target,
                    readonly,
                ),
                Mount::Volume {
                    source,
                    target,
                    readonly,
                    anonymous,
                    ..
                } => {
                    let v = if anonymous {
                        k::Volume {
                            empty_dir: Some(Default::default()),
                            ..Default::default()
                        }
                    } else {
                        k::Volume {
                            persistent_volume_claim: Some(k::PersistentVolumeClaimVolumeSource {
                                claim_name: source,
                                read_only: None,
                            }),
                            ..Default::default()
                        }
                    };
                    add_volume(v, &target, readonly)
                }
                Mount::Tmpfs { target, size, .. } => add_volume(
                    k::Volume {
                        empty_dir: Some(k::EmptyDirVolumeSource {
                            medium: Some("Memory".into()),
                            size_limit: size.map(|s| Quantity(s.to_string())),
                        }),
                        ..Default::default()
                    },
                    &target,
                    false,
                ),
            }
        }
        let target = if init { &mut inits } else { &mut containers };
        target.push(k::Container {
            name: name.clone(),
            image: Some(spec.image.clone()),
            command,
            args: (!args.is_empty()).then_some(args),
            working_dir: o.workdir.clone(),
            env: (!env.is_empty()).then_some(env),
            ports: (!ports.is_empty()).then_some(ports),
            security_context: (sc != k::SecurityContext::default()).then_some(sc),
            resources: (!limits.is_empty()).then(|| k::ResourceRequirements {
                limits: Some(limits),
                ..Default::default()
            }),
            volume_mounts: (!mounts.is_empty()).then_some(mounts),
            tty: o.tty.then_some(true),
            stdin: spec.interactive.then_some(true),
            // The image is in berth's store: play must not look for it elsewhere.
            image_pull_policy: Some("IfNotPresent".into()),
            liveness_probe: spec.probes.liveness.as_ref().map(probe),
            readiness_probe: spec.probes.readiness.as_ref().map(probe),
            startup_probe: spec.probes.startup.as_ref().map(probe),
            ..Default::default()
        });
        if spec.healthcheck.is_some() {
            warnings.push(format!(
                "{from}: its Docker health check has no Kubernetes spelling: left out"
            ));
        }
    }
    let restart = match restart.unwrap_or_default() {
        RestartPolicy::No => "Never",
        RestartPolicy::OnFailure(_) => "OnFailure",
        RestartPolicy::Always | RestartPolicy::UnlessStopped => "Always",
    };
    let spec = k::PodSpec {
        containers,
        init_containers: (!inits.is_empty()).then_some(inits),
        restart_policy: Some(restart.into()),
        hostname: src.hostname.clone().filter(|h| *h != src.name),
        share_process_namespace: src.share_pid.then_some(true),
        termination_grace_period_seconds: grace.and_then(|g| i64::try_from(g).ok()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    };
    (spec, warnings)
}

/// The engine's probe in Kubernetes' spelling.
fn probe(p: &Probe) -> k::Probe {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let mut out = k::Probe {
        initial_delay_seconds: Some(p.initial_delay.as_secs() as i32),
        period_seconds: Some(p.period.as_secs().max(1) as i32),
        timeout_seconds: Some(p.timeout.as_secs().max(1) as i32),
        success_threshold: Some(p.success_threshold as i32),
        failure_threshold: Some(p.failure_threshold as i32),
        ..Default::default()
    };
    match &p.action {
        ProbeAction::Exec(cmd) => {
            out.exec = Some(k::ExecAction {
                command: Some(cmd.clone()),
            })
        }
        ProbeAction::HttpGet {
            port,
            path,
            host,
            scheme_https,
            headers,
        } => {
            out.http_get = Some(k::HTTPGetAction {
                port: IntOrString::Int(i32::from(*port)),
                path: Some(path.clone()),
                host: host.clone(),
                scheme: scheme_https.then(|| "HTTPS".to_string()),
                http_headers: (!headers.is_empty()).then(|| {
                    headers
                        .iter()
                        .map(|(n, v)| k::HTTPHeader {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect()
                }),
            })
        }
        ProbeAction::TcpSocket { port, host } => {
            out.tcp_socket = Some(k::TCPSocketAction {
                port: IntOrString::Int(i32::from(*port)),
                host: host.clone(),
            })
        }
    }
    out
}

fn labels(src: &Source) -> BTreeMap<String, String> {
    let mut l = src.labels.clone();
    l.retain(|k, _| k != crate::plan::LABEL_POD);
    l
}

/// A v1 Pod of the source.
pub fn pod(src: &Source) -> (k::Pod, Vec<String>) {
    let (spec, w) = pod_spec(src);
    let l = labels(src);
    let pod = k::Pod {
        metadata: ObjectMeta {
            name: Some(src.name.clone()),
            labels: (!l.is_empty()).then_some(l),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    (pod, w)
}

/// An apps/v1 Deployment of one replica of the source (selector: `app: NAME` unless
/// the pod has labels).
pub fn deployment(src: &Source) -> (apps::Deployment, Vec<String>) {
    let (spec, w) = pod_spec(src);
    let mut l = labels(src);
    if l.is_empty() {
        l.insert("app".into(), src.name.clone());
    }
    let d = apps::Deployment {
        metadata: ObjectMeta {
            name: Some(src.name.clone()),
            labels: Some(l.clone()),
            ..Default::default()
        },
        spec: Some(apps::DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(l.clone()),
                ..Default::default()
            },
            template: k::PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(l),
                    ..Default::default()
                }),
                spec: Some(spec),
            },
            ..Default::default()
        }),
        status: None,
    };
    (d, w)
}

/// Objects as one multi-document YAML text.
pub fn to_yaml<T: serde::Serialize>(objects: &[T]) -> Result<String, crate::Error> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(
            &serde_yaml::to_string(o)
                .map_err(|e| crate::Error::Invalid(format!("serialize to YAML: {e}")))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, Object};
    use crate::plan::{plan, Layout, Options};

    fn source() -> Source {
        let mut a = ContainerSpec {
            image: "localhost/busybox:1".into(),
            restart: RestartPolicy::Always,
            stop_timeout: Some(5),
            ..Default::default()
        };
        a.opts.entrypoint = Some("sh".into());
        a.opts.cmd = vec!["-c".into(), "sleep 100".into()];
        a.opts.env = vec!["A=b=c".into()];
        a.opts.workdir = Some("/tmp".into());
        a.opts.user = Some("1000:100".into());
        a.opts.read_only = true;
        a.opts.cap_drop = vec!["ALL".into()];
        a.opts.memory = Some("64m".into());
        a.opts.cpus = Some(0.25);
        a.mounts = vec![
            Mount::Volume {
                source: "data".into(),
                target: "/data".into(),
                readonly: false,
                anonymous: false,
                nocopy: false,
            },
            Mount::Tmpfs {
                target: "/scratch".into(),
                size: None,
                mode: None,
                options: vec![],
            },
        ];
        let mut b = ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        b.opts.cmd = vec!["httpd".into(), "-f".into()];
        b.opts.volumes = vec!["/srv:/www:ro".into()];
        b.probes.liveness = Some(Probe {
            failure_threshold: 2,
            ..Probe::new(ProbeAction::TcpSocket {
                port: 80,
                host: None,
            })
        });
        let mut i = ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        i.opts.cmd = vec!["true".into()];
        i.labels
            .insert(crate::plan::LABEL_INIT.into(), "true".into());
        Source {
            name: "app".into(),
            labels: BTreeMap::from([("tier".into(), "web".into())]),
            hostname: None,
            share_pid: true,
            ports: vec![PortMap {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                ctr_port: 80,
            }],
            containers: vec![("prep".into(), i), ("one".into(), a), ("two".into(), b)],
        }
    }

    #[test]
    fn round_trip_through_play() {
        let src = source();
        let (p, w) = pod(&src);
        assert!(w.is_empty(), "{w:?}");
        let text = to_yaml(&[p]).expect("yaml");
        // A valid Kubernetes object: k8s-openapi deserializes it (apiVersion, kind checked).
        let back: k::Pod = serde_yaml::from_str(&text).expect("a valid v1 Pod");
        assert_eq!(back.metadata.name.as_deref(), Some("app"));
        let parsed = parse("gen.yaml", &text).expect("parse");
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let layout = Layout {
            root: "/r".into(),
            run: "/run/r".into(),
        };
        let pl = plan(&parsed.objects, &layout, &Options::default()).expect("plan");
        let pp = &pl.pods[0];
        assert_eq!(pp.name, "app");
        assert!(pp.share_pid);
        assert_eq!(pp.ports, src.ports);
        assert_eq!(pp.labels.get("tier").map(String::as_str), Some("web"));
        let (a, b) = (&pp.containers[0].spec, &pp.containers[1].spec);
        let (oa, ob) = (&src.containers[1].1, &src.containers[2].1);
        assert_eq!(pp.containers[0].name, "app-one");
        assert_eq!(a.image, oa.image);
        assert_eq!(a.opts.entrypoint, oa.opts.entrypoint);
        assert_eq!(a.opts.cmd, oa.opts.cmd);
        assert_eq!(a.opts.env, oa.opts.env);
        assert_eq!(a.opts.workdir, oa.opts.workdir);
        assert_eq!(a.opts.user, oa.opts.user);
        assert_eq!(a.opts.read_only, oa.opts.read_only);
        assert_eq!(a.opts.cap_drop, oa.opts.cap_drop);
        assert_eq!(a.opts.memory.as_deref(), Some("67108864"));
        assert_eq!(a.opts.cpus, Some(0.25));
        assert_eq!(a.restart, RestartPolicy::Always);
        assert_eq!(a.stop_timeout, Some(5));
        assert!(
            matches!(&a.mounts[0], Mount::Volume { source, target, .. } if source == "data" && target == "/data")
        );
        assert!(matches!(&a.mounts[1], Mount::Bind { source, target, .. }
            if source == std::path::Path::new("/run/r/app/vol-2") && target == "/scratch"));
        assert_eq!(b.opts.cmd, ob.opts.cmd);
        assert_eq!(b.opts.entrypoint, None);
        assert!(
            matches!(&b.mounts[0], Mount::Bind { source, target, readonly: true }
            if source == std::path::Path::new("/srv") && target == "/www")
        );
    }

    #[test]
    fn deployment_round_trip() {
        let (d, _) = deployment(&source());
        let text = to_yaml(&[d]).expect("yaml");
        let _: apps::Deployment = serde_yaml::from_str(&text).expect("a valid Deployment");
        let parsed = parse("gen.yaml", &text).expect("parse");
        assert!(matches!(parsed.objects[0], Object::Deployment(_)));
        let pl = plan(
            &parsed.objects,
            &Layout {
                root: "/r".into(),
                run: "/r".into(),
            },
            &Options::default(),
        )
        .expect("plan");
        assert_eq!(pl.pods[0].name, "app-1");
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name("app", "app-web"), "web");
        assert_eq!(short_name("app", "Other_Ctr"), "other-ctr");
    }
}
