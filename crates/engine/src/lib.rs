//! berth's engine: containers as a managed service, daemonless (as Podman).
//!
//! Every front end (the CLI now; the Docker API and kube play later) calls [`Engine`]
//! (container.rs); none touches the database or the runtime directly.
//!
//! Invariants:
//! - **The database is the truth** (`<root>/engine.db`, SQLite in WAL mode, db.rs): every
//!   state change is one transaction, retried with back-off while another command holds
//!   the write lock. Containers' bulk data (writable layer, log) is in
//!   `<root>/containers/<id>/`; a row is written before its directory is made and a
//!   removal marks the row `removing` before anything goes, so a killed command leaves
//!   something the next one repairs.
//! - **One monitor per running container** (`berth-monitor`, src/bin/monitor.rs): the
//!   container's parent after the CLI exits (a child subreaper), its overlay rootfs
//!   mounted in the monitor's private mount namespace (never in the host's mount table),
//!   holder of its stdout/stderr (its terminal with `-t`, its stdin with `-i`) and writer
//!   of its log, server of its attach socket (attach.rs; clients learn the exit code only
//!   once it is in the database), recorder of its exit and applier of its restart policy
//!   (or of `--rm`). While a container without a health check, terminal, open stdin or
//!   attached client runs, the monitor's process is `berth-pump` (src/bin/pump.rs): the
//!   same pid re-executed into a small program that only writes the log, executing the
//!   monitor again at the exit. Killing it loses nothing: the next command's reconcile shows the
//!   container's true state.
//! - The OCI config of a container is built by spec.rs for the engine and for the
//!   foreground `berth run` alike.
//! - A volume is removed only in the transaction that saw no container using it; copies
//!   into volumes and `cp` go through descriptors (confined.rs) and never follow a symlink
//!   out of a container's root. Admission's check and reservation are one transaction.
//! - A container's network rows (attachment, published ports) are written before the
//!   kernel objects they describe (network.rs); its network namespace is a file under the
//!   run root made before its monitor starts, and `rm` removes elements, namespace, veth and
//!   rows whether or not the monitor lives. A port held by an active container is refused
//!   in the transaction that would reserve it.
//! - A pod's row is written before its infra container and removed after it; a pod's infra
//!   container is removed only with its pod (pod.rs).
//! - A container pins its image: `rmi` refuses an image a container uses (naming it), and
//!   the container's `chains.json` keeps its snapshots from gc.
#![forbid(unsafe_code)]

pub mod admission;
pub mod attach;
pub mod confined;
pub mod container;
pub mod cp;
pub mod db;
pub mod endpoints;
pub mod error;
pub mod fault;
pub mod health;
pub mod logfiles;
pub mod logs;
pub mod manage;
pub mod network;
pub mod pod;
pub mod podstart;
pub mod probe;
pub mod procwait;
pub mod pump;
pub mod revive;
pub mod service;
pub mod spec;
pub mod stats;
pub mod trace;
pub mod types;
pub mod volumes;

pub use container::{Engine, ExecOpts};
pub use db::Container;
pub use error::{Error, Result};
pub use pod::{Pod, PodSpec, PodStatus, Share};
pub use types::{ContainerSpec, RestartPolicy, State};
