//! Kubernetes container probes (liveness, readiness, startup) run by a container's monitor.
//!
//! Semantics (https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/,
//! k8s-openapi `api::core::v1::Probe`): each probe runs every `period` after `initial_delay`,
//! each attempt bounded by `timeout`; `failure_threshold` consecutive failures make a probe
//! fail, `success_threshold` consecutive successes make it succeed. The startup probe runs
//! first and the others wait for its success; its failure, or the liveness probe's, kills
//! the container, which the monitor then restarts.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a probe checks the container (k8s `ExecAction`, `HTTPGetAction`, `TCPSocketAction`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeAction {
    /// A command run in the container; exit 0 is a success.
    Exec(Vec<String>),
    /// An HTTP/1.1 GET; a status 200–399 is a success.
    HttpGet {
        port: u16,
        path: String,
        /// The address to connect to (default: the container's own, 127.0.0.1 in its
        /// network namespace).
        host: Option<String>,
        scheme_https: bool,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens is a success.
    TcpSocket { port: u16, host: Option<String> },
}

/// One probe with its timing (k8s defaults: 0 s delay, 10 s period, 1 s timeout, success
/// threshold 1, failure threshold 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Probe {
    /// A probe with Kubernetes' default timing.
    pub fn new(action: ProbeAction) -> Probe {
        Probe {
            action,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

/// A container's probes (`ContainerSpec::probes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Probes {
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
}

impl Probes {
    pub fn is_empty(&self) -> bool {
        self.liveness.is_none() && self.readiness.is_none() && self.startup.is_none()
    }
}

/// Podman's `--health-on-failure`: what happens when the health check turns `unhealthy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    None,
    /// SIGKILL the container (its restart policy then applies).
    Kill,
    /// Restart it (whatever its restart policy).
    Restart,
    /// Stop it (as `berth stop`: no restart).
    Stop,
}

impl std::str::FromStr for OnFailure {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<OnFailure> {
        Ok(match s {
            "none" => OnFailure::None,
            "kill" => OnFailure::Kill,
            "restart" => OnFailure::Restart,
            "stop" => OnFailure::Stop,
            _ => {
                return Err(crate::invalid!(
                    "invalid --health-on-failure {s:?}: expected none, kill, restart or stop"
                ))
            }
        })
    }
}
