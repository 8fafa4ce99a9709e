//! Which backends of a service receive traffic: Kubernetes' endpoints rule, a pod behind a
//! Service gets connections only while it is *ready*
//! (https://kubernetes.io/docs/concepts/services-networking/service/ "EndpointSlices": only
//! ready pods are serving endpoints; a pod is ready when all its containers are:
//! https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-conditions).
//!
//! - A backend that is a plain container is ready while it runs and its readiness probe
//!   (if any) passes (probe.rs `ProbeStatus::ready`).
//! - A backend that is a pod's infra container (what `kube play` makes a Service's backends)
//!   is ready while the infra runs and the pod has at least one member, every member
//!   (init containers and members being removed aside) running and ready.
//!
//! service.rs builds a service's elements from its ready backends only. Whatever changes a
//! backend's readiness calls [`Engine::endpoints_changed`]: the monitor when its container
//! runs or exits, the probe thread when a readiness changes (probe.rs), `pause` and
//! `unpause` (a frozen container answers nothing), `rm` of a pod's member. When the container is nobody's backend that is one query; otherwise the affected
//! services' elements are replaced in one nftables batch each. Every element change of a
//! service runs under one lock (`<runroot>/services.lock`) and reads the rows inside it, so
//! two monitors that change at once leave the later state in the kernel.

use crate::container::{alive, Engine};
use crate::db::{Container, Db};
use crate::error::{io, Error, Result};
use crate::types::State;

/// The label `kube play` gives init containers (berth-kube's `plan::LABEL_INIT`): they
/// run to completion before the others and do not count for the pod's readiness.
pub const KUBE_INIT_LABEL: &str = "io.berth.kube.init";

/// Whether container `c` counts as ready: it runs (its process alive) and its readiness
/// (after its startup probe) passes as its monitor last recorded it (table `probes`).
fn container_ready(db: &mut Db, c: &Container) -> Result<bool> {
    if c.state != State::Running || !alive(c.pid, c.pid_start) {
        return Ok(false);
    }
    if c.spec.probes.readiness.is_none() && c.spec.probes.startup.is_none() {
        return Ok(true);
    }
    let ready: Option<bool> = db.read(|tx| {
        use rusqlite::OptionalExtension;
        tx.query_row("SELECT ready FROM probes WHERE id = ?1", [&c.id], |r| {
            r.get(0)
        })
        .optional()
    })?;
    Ok(ready.unwrap_or(false))
}

/// Whether backend `id` receives traffic (the module doc's rules), from the rows `rows`.
pub(crate) fn backend_ready(db: &mut Db, rows: &[Container], id: &str) -> Result<bool> {
    let Some(b) = rows.iter().find(|c| c.id == id) else {
        return Ok(false);
    };
    if !container_ready(db, b)? {
        return Ok(false);
    }
    if !b.spec.infra {
        return Ok(true);
    }
    let Some(pod) = b.spec.pod.as_deref() else {
        return Ok(true);
    };
    let members: Vec<&Container> = rows
        .iter()
        .filter(|c| {
            c.spec.pod.as_deref() == Some(pod)
                && !c.spec.infra
                && c.state != State::Removing
                && c.spec.labels.get(KUBE_INIT_LABEL).map(String::as_str) != Some("true")
        })
        .collect();
    if members.is_empty() {
        return Ok(false);
    }
    for m in members {
        if !container_ready(db, m)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The lock every change of services' elements holds (released when dropped).
pub(crate) struct ServicesLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl Engine {
    pub(crate) fn services_lock(&self) -> Result<ServicesLock> {
        std::fs::create_dir_all(&self.runroot)
            .map_err(io(format!("create {}", self.runroot.display())))?;
        let path = self.runroot.join("services.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("open {}", path.display())))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(ServicesLock)
            .map_err(|(_, e)| Error::Runtime(format!("lock {}: {e}", path.display())))
    }

    /// [`Engine::endpoints_changed`] for `c`, a failure only logged (the change of `c`
    /// itself stands).
    pub(crate) fn endpoints_follow(&self, c: &Container) {
        if let Err(e) = self.endpoints_changed(&c.id, c.spec.pod.as_deref()) {
            tracing::warn!(container = %c.id, error = %e, "services' backends");
        }
    }

    /// Container `id` (a member of pod `pod`, the pod's id, if any) ran, exited, was
    /// removed or its readiness changed: the services it (or its pod's infra) backs get
    /// elements for their ready backends. Nothing but one query when it backs none.
    pub fn endpoints_changed(&self, id: &str, pod: Option<&str>) -> Result<()> {
        let mut db = self.db()?;
        let services: Vec<String> = db.read(|tx| {
            let mut st = tx.prepare(
                "SELECT DISTINCT service FROM service_backends WHERE container = ?1 OR \
                 container IN (SELECT infra_id FROM pods WHERE id = ?2) ORDER BY service",
            )?;
            let rows = st.query_map(rusqlite::params![id, pod.unwrap_or("")], |r| r.get(0))?;
            rows.collect()
        })?;
        drop(db);
        if services.is_empty() {
            return Ok(());
        }
        let _held = self.services_lock()?;
        for name in services {
            // Read under the lock: a service unpublished meanwhile is skipped.
            let Ok(s) = self.service(&name) else { continue };
            tracing::debug!(service = %name, container = %id, "endpoints changed");
            self.kernel_service_locked(Some(&s), Some(&s))?;
        }
        Ok(())
    }
}
