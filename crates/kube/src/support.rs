//! The fields berth acts on, per kind, as paths (`spec.containers[].env[].name`; `[]` is
//! any element of a list, a trailing `.*` any key under a map). [`unsupported`] walks a
//! document and names every field outside them, so nothing is dropped silently.

use std::collections::BTreeSet;

const META: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels.*",
    "metadata.annotations.*",
    "metadata.creationTimestamp",
    // What a cluster adds; read back from `kubectl get -o yaml` harmlessly.
    "status.*",
];

const CONTAINER: &[&str] = &[
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env[].name",
    "env[].value",
    "env[].valueFrom.configMapKeyRef.name",
    "env[].valueFrom.configMapKeyRef.key",
    "env[].valueFrom.configMapKeyRef.optional",
    "env[].valueFrom.secretKeyRef.name",
    "env[].valueFrom.secretKeyRef.key",
    "env[].valueFrom.secretKeyRef.optional",
    "envFrom[].prefix",
    "envFrom[].configMapRef.name",
    "envFrom[].configMapRef.optional",
    "envFrom[].secretRef.name",
    "envFrom[].secretRef.optional",
    "ports[].containerPort",
    "ports[].hostPort",
    "ports[].name",
    "ports[].protocol",
    "volumeMounts[].name",
    "volumeMounts[].mountPath",
    "volumeMounts[].readOnly",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.readOnlyRootFilesystem",
    "securityContext.privileged",
    "securityContext.allowPrivilegeEscalation",
    "securityContext.capabilities.add",
    "securityContext.capabilities.drop",
    "resources.limits.cpu",
    "resources.limits.memory",
    "resources.requests.cpu",
    "resources.requests.memory",
    "tty",
    "stdin",
];

const PROBE: &[&str] = &[
    "exec.command",
    "httpGet.port",
    "httpGet.path",
    "httpGet.host",
    "httpGet.scheme",
    "httpGet.httpHeaders[].name",
    "httpGet.httpHeaders[].value",
    "tcpSocket.port",
    "tcpSocket.host",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
];

const POD_SPEC: &[&str] = &[
    "restartPolicy",
    "shareProcessNamespace",
    "terminationGracePeriodSeconds",
    "hostname",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "volumes[].name",
    "volumes[].configMap.name",
    "volumes[].configMap.items[].key",
    "volumes[].configMap.items[].path",
    "volumes[].configMap.optional",
    "volumes[].secret.secretName",
    "volumes[].secret.items[].key",
    "volumes[].secret.items[].path",
    "volumes[].secret.optional",
    "volumes[].persistentVolumeClaim.claimName",
    "volumes[].persistentVolumeClaim.readOnly",
    "volumes[].emptyDir.medium",
    "volumes[].emptyDir.sizeLimit",
    "volumes[].hostPath.path",
    "volumes[].hostPath.type",
];

/// Every supported path of `kind` (empty for kinds berth does not read).
fn paths(kind: &str) -> Vec<String> {
    let mut v: Vec<String> = META.iter().map(|s| s.to_string()).collect();
    let pod_spec = |prefix: &str, v: &mut Vec<String>| {
        v.extend(POD_SPEC.iter().map(|p| format!("{prefix}{p}")));
        for list in ["containers", "initContainers"] {
            v.extend(CONTAINER.iter().map(|p| format!("{prefix}{list}[].{p}")));
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            v.extend(
                PROBE
                    .iter()
                    .map(|p| format!("{prefix}containers[].{probe}.{p}")),
            );
        }
    };
    match kind {
        "Pod" => pod_spec("spec.", &mut v),
        "Deployment" => {
            v.extend(
                [
                    "spec.replicas",
                    "spec.selector.matchLabels.*",
                    "spec.template.metadata.name",
                    "spec.template.metadata.labels.*",
                    "spec.template.metadata.annotations.*",
                    "spec.template.metadata.creationTimestamp",
                    // A single node has nothing to roll: accepted, no effect.
                    "spec.strategy.*",
                ]
                .map(str::to_string),
            );
            pod_spec("spec.template.spec.", &mut v);
        }
        "Service" => v.extend(
            [
                "spec.type",
                "spec.selector.*",
                "spec.ports[].name",
                "spec.ports[].protocol",
                "spec.ports[].port",
                "spec.ports[].targetPort",
                "spec.ports[].nodePort",
                "spec.clusterIP",
            ]
            .map(str::to_string),
        ),
        "ConfigMap" => v.extend(["data.*", "binaryData.*", "immutable"].map(str::to_string)),
        "Secret" => v.extend(["data.*", "stringData.*", "type", "immutable"].map(str::to_string)),
        "PersistentVolumeClaim" => v.extend(
            [
                "spec.accessModes",
                "spec.resources.requests.storage",
                "spec.storageClassName",
                "spec.volumeMode",
            ]
            .map(str::to_string),
        ),
        _ => {}
    }
    v
}

/// The fields of `doc` (an object of `kind`) outside the supported paths, each named by
/// its path (`spec.containers[].stdinOnce`), once.
pub fn unsupported(kind: &str, doc: &serde_yaml::Value) -> Vec<String> {
    let all = paths(kind);
    let mut leaves = BTreeSet::new();
    let mut maps = BTreeSet::new();
    let mut prefixes = BTreeSet::new();
    for p in &all {
        let p = match p.strip_suffix(".*") {
            Some(m) => {
                maps.insert(m.to_string());
                m
            }
            None => {
                leaves.insert(p.clone());
                p.as_str()
            }
        };
        // Every parent of a path is walked into.
        let mut cut = p;
        while let Some(i) = cut.rfind('.') {
            cut = &cut[..i];
            prefixes.insert(cut.to_string());
            if let Some(s) = cut.strip_suffix("[]") {
                prefixes.insert(s.to_string());
            }
        }
        if let Some(s) = p.strip_suffix("[]") {
            prefixes.insert(s.to_string());
        }
    }
    let mut out = Vec::new();
    walk(doc, "", &leaves, &maps, &prefixes, &mut out);
    let mut seen = BTreeSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

fn walk(
    v: &serde_yaml::Value,
    path: &str,
    leaves: &BTreeSet<String>,
    maps: &BTreeSet<String>,
    prefixes: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, child) in m {
                let key = match k.as_str() {
                    Some(k) => k.to_string(),
                    None => format!("{k:?}"),
                };
                let p = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                if leaves.contains(&p) || maps.contains(&p) {
                    continue;
                }
                if prefixes.contains(&p) {
                    walk(child, &p, leaves, maps, prefixes, out);
                } else {
                    out.push(p);
                }
            }
        }
        serde_yaml::Value::Sequence(s) => {
            let p = format!("{path}[]");
            for child in s {
                walk(child, &p, leaves, maps, prefixes, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_lists_and_maps() {
        let doc: serde_yaml::Value = serde_yaml::from_str(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, labels: {x: y}}\nspec:\n  replicas: 2\n  paused: true\n  template:\n    spec:\n      containers:\n      - name: a\n        env: [{name: A, value: b}]\n        livenessProbe: {grpc: {port: 1}, periodSeconds: 3}\n        lifecycle: {}\n      - name: b\n        lifecycle: {}\n",
        )
        .expect("yaml");
        let u = unsupported("Deployment", &doc);
        assert_eq!(
            u,
            [
                "spec.paused",
                "spec.template.spec.containers[].livenessProbe.grpc",
                "spec.template.spec.containers[].lifecycle",
            ]
        );
    }
}
