//! Starting a pod's members together (`pod start`, `kube play`).
//!
//! Once the pod's infra runs and holds the shared namespaces, each member's start is
//! independent of the others': its own monitor, its own runtime create and start, joining
//! the infra's namespaces by path (pod.rs). So the members start at the same time, one
//! thread each, and the pod runs after the slowest member's start instead of after the sum
//! of them. Every start still either runs its container or fails with the container's
//! error (container.rs `start`); a failure does not stop the others, as `pod start` did one
//! after the other, and every failure is reported by the container's name.

use crate::container::Engine;
use crate::db::Container;
use crate::error::Result;
use crate::pod::Pod;

impl Engine {
    /// Starts the pod's infra (when it does not run), then the containers `refs` (names or
    /// ids of the pod's members) at the same time. Each result is in the order of `refs`;
    /// the error of the infra's start is every container's (none was started).
    pub fn pod_start_members(&self, pod: &Pod, refs: &[String]) -> Vec<Result<Container>> {
        if let Err(e) = self.pod_start_infra(pod) {
            let msg = e.to_string();
            return refs
                .iter()
                .map(|_| {
                    Err(crate::error::Error::Runtime(format!(
                        "pod {}: start its infra container: {msg}",
                        pod.name
                    )))
                })
                .collect();
        }
        self.start_together(refs)
    }

    /// The pod's infra runs (started now when it does not).
    pub fn pod_start_infra(&self, pod: &Pod) -> Result<Container> {
        let infra = self.pod_infra(pod)?;
        if infra.state.is_active() && crate::container::alive(infra.pid, infra.pid_start) {
            return Ok(infra);
        }
        self.start(&infra.id)
    }

    /// Starts the containers `refs` at the same time, one thread each (one start runs in
    /// this thread); each result in the order of `refs`. Containers of one pod need its
    /// infra running first ([`Engine::pod_start_infra`]): two members would otherwise both
    /// try to start it.
    pub fn start_together(&self, refs: &[String]) -> Vec<Result<Container>> {
        match refs {
            [] => Vec::new(),
            [one] => vec![self.start(one)],
            [first, rest @ ..] => std::thread::scope(|s| {
                let hs: Vec<_> = rest
                    .iter()
                    .map(|r| {
                        std::thread::Builder::new()
                            .name("start".into())
                            .spawn_scoped(s, move || self.start(r))
                    })
                    .collect();
                let mut out = vec![self.start(first)];
                for (h, r) in hs.into_iter().zip(rest) {
                    out.push(match h {
                        Ok(h) => h.join().unwrap_or_else(|_| {
                            Err(crate::error::Error::Runtime(format!(
                                "start container {r}: its thread panicked"
                            )))
                        }),
                        // No thread: started here, after the others.
                        Err(_) => self.start(r),
                    });
                }
                out
            }),
        }
    }
}
