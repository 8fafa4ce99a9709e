//! berth's Kubernetes YAML (`berth kube play/down/generate`).
//!
//! - parse.rs: multi-document YAML into k8s-openapi objects (Pod, Deployment, Service,
//!   ConfigMap, Secret, PersistentVolumeClaim); errors name the document and the field path;
//!   support.rs lists the fields berth acts on, every other one is a warning.
//! - plan.rs: the objects translated (purely) into a [`plan::Plan`]: pods with their
//!   containers as engine `ContainerSpec`s, the files of ConfigMap/Secret volumes, the
//!   named volumes of claims, the services. The `berth` binary carries it out.
//! - generate.rs: engine containers back into a v1 Pod (or Deployment) that `play` accepts.
#![forbid(unsafe_code)]

pub mod generate;
pub mod parse;
pub mod plan;
pub mod quantity;
mod support;

pub use parse::{parse, Object, Parsed};
pub use plan::{plan, Plan};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not YAML at all.
    #[error("{source_name}: document {index}: invalid YAML: {message}")]
    Yaml {
        source_name: String,
        index: usize,
        message: String,
    },
    /// YAML that is not a valid object of its kind.
    #[error("{document}: field {path}: {message}")]
    Schema {
        document: String,
        path: String,
        message: String,
    },
    /// A valid object berth cannot carry out (a missing ConfigMap, a bad name, privileged…).
    #[error("{0}")]
    Invalid(String),
}
