//! Kubernetes YAML to k8s-openapi objects: every document of a (multi-document) file is
//! read as a YAML value, its `kind` picks the k8s-openapi type, and serde_path_to_error
//! names the field a schema error is at. Fields berth does not act on are found by
//! walking the value against the supported paths (support.rs) and reported as warnings.

use crate::support;
use crate::Error;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use serde::Deserialize;

/// One object of a file.
#[derive(Clone, Debug)]
pub enum Object {
    Pod(Box<Pod>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Pvc(Box<PersistentVolumeClaim>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Pvc(_) => "PersistentVolumeClaim",
        }
    }

    pub fn name(&self) -> &str {
        let m = match self {
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Pvc(o) => &o.metadata,
        };
        m.name.as_deref().unwrap_or("")
    }
}

/// What a file holds: its objects in order, and the warnings about what is ignored.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub objects: Vec<Object>,
    pub warnings: Vec<String>,
}

/// `source` (a file name) names the file in errors and warnings.
pub fn parse(source: &str, text: &str) -> Result<Parsed, Error> {
    let mut out = Parsed::default();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::Yaml {
            source_name: source.to_string(),
            index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue; // an empty document (`---` at the end)
        }
        let doc_name =
            |kind: &str, name: &str| format!("{source}: document {index} ({kind} {name:?})");
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if kind.is_empty() {
            return Err(Error::Schema {
                document: format!("{source}: document {index}"),
                path: "kind".into(),
                message: "missing: every object needs apiVersion and kind".into(),
            });
        }
        let doc = doc_name(&kind, &name);
        let obj = match kind.as_str() {
            "Pod" => Object::Pod(typed(&doc, &value)?),
            "Deployment" => Object::Deployment(typed(&doc, &value)?),
            "Service" => Object::Service(typed(&doc, &value)?),
            "ConfigMap" => Object::ConfigMap(typed(&doc, &value)?),
            "Secret" => Object::Secret(typed(&doc, &value)?),
            "PersistentVolumeClaim" => Object::Pvc(typed(&doc, &value)?),
            other => {
                out.warnings.push(format!(
                    "{doc}: kind {other} is not supported by berth: ignored"
                ));
                continue;
            }
        };
        if obj.name().is_empty() {
            return Err(Error::Schema {
                document: doc,
                path: "metadata.name".into(),
                message: "missing".into(),
            });
        }
        for path in support::unsupported(&kind, &value) {
            out.warnings.push(format!(
                "{doc}: field {path} is not supported by berth: ignored"
            ));
        }
        out.objects.push(obj);
    }
    Ok(out)
}

/// The value as a k8s-openapi type; a schema error names the field's path.
fn typed<T: serde::de::DeserializeOwned>(
    doc: &str,
    value: &serde_yaml::Value,
) -> Result<Box<T>, Error> {
    serde_path_to_error::deserialize(value.clone())
        .map(Box::new)
        .map_err(|e| {
            let path = e.path().to_string();
            Error::Schema {
                document: doc.to_string(),
                path: if path == "." { "(top)".into() } else { path },
                message: e.into_inner().to_string(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: srv
    image: busybox
    command: [httpd, -f]
    ports:
    - containerPort: 80
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
---
";

    #[test]
    fn multi_document() {
        let p = parse("f.yaml", POD).expect("parse");
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].kind(), "Pod");
        assert_eq!(p.objects[0].name(), "web");
        assert_eq!(p.objects[1].kind(), "ConfigMap");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let e = parse(
            "f.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\nkind: [Pod\n",
        )
        .expect_err("bad yaml")
        .to_string();
        assert!(e.contains("f.yaml") && e.contains("document 2"), "{e}");
    }

    #[test]
    fn schema_error_names_the_field() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: x\n    ports:\n    - containerPort: eighty\n";
        let e = parse("f.yaml", text).expect_err("schema").to_string();
        assert!(e.contains("document 1 (Pod \"p\")"), "{e}");
        assert!(
            e.contains("spec.containers[0].ports[0].containerPort"),
            "{e}"
        );
    }

    #[test]
    fn wrong_api_version_refused() {
        let e = parse("f.yaml", "apiVersion: v2\nkind: Pod\nmetadata: {name: p}\n")
            .expect_err("version")
            .to_string();
        assert!(e.contains("Pod \"p\""), "{e}");
    }

    #[test]
    fn unsupported_fields_and_kinds_warned() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeSelector: {a: b}\n  containers:\n  - name: a\n    image: x\n    stdinOnce: true\n  volumes:\n  - name: n\n    nfs: {server: s, path: /}\n---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n";
        let p = parse("f.yaml", text).expect("parse");
        let w = p.warnings.join("\n");
        assert!(w.contains("spec.nodeSelector"), "{w}");
        assert!(w.contains("spec.containers[].stdinOnce"), "{w}");
        assert!(w.contains("spec.volumes[].nfs"), "{w}");
        assert!(w.contains("kind Job"), "{w}");
        assert_eq!(p.objects.len(), 1);
    }

    #[test]
    fn missing_kind_and_name() {
        let e = parse("f.yaml", "apiVersion: v1\nmetadata: {name: p}\n")
            .expect_err("kind")
            .to_string();
        assert!(e.contains("kind"), "{e}");
        let e = parse(
            "f.yaml",
            "apiVersion: v1\nkind: Pod\nspec: {containers: []}\n",
        )
        .expect_err("name")
        .to_string();
        assert!(e.contains("metadata.name"), "{e}");
    }
}
