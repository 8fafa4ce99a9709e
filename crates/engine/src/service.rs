//! Services: host ports that DNAT round-robin to the addresses of a set of backend
//! containers (what `kube play` makes of a Kubernetes Service over a Deployment's pods).

use crate::container::Engine;
use crate::error::{Error, Result};
use net::ports::Proto;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One published port of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub proto: Proto,
    /// The host address it answers on (None: every address of the host, 127.0.0.1 too).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// The backends' port.
    pub target_port: u16,
}

/// A service's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub ports: Vec<ServicePort>,
    /// Container ids.
    pub backends: Vec<String>,
}

impl Engine {
    /// Publishes (or replaces) service `name`: its `ports` on the host, DNAT round-robin
    /// to the addresses of `backends` (container ids; a pod's infra container).
    pub fn publish_service(
        &self,
        name: &str,
        ports: &[ServicePort],
        backends: &[String],
    ) -> Result<()> {
        let _ = (name, ports, backends);
        Err(Error::Invalid("not yet".into()))
    }

    /// Removes service `name`: its kernel rules, then its rows.
    pub fn unpublish_service(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(Error::Invalid("not yet".into()))
    }

    /// Every service.
    pub fn services(&self) -> Result<Vec<Service>> {
        Err(Error::Invalid("not yet".into()))
    }
}
