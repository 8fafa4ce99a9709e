//! Confining a VM's monitor, as Firecracker's jailer does around its VMM: no descriptor it
//! did not open itself, no environment (`berth` execs it with none), and a cgroup of
//! its own, `/berth-vm/<name>.<pid>` in the memory, cpu and pids hierarchies (the unified
//! one on a v2 host), with limits from the VM's size. The monitor joins it before it creates
//! any thread, so its vCPU threads (and KVM's worker thread of the VM) are born there; when
//! the VM ends it leaves, and its teardown child removes the cgroup once the VM is destroyed
//! ([`crate::Vmm::remove_cgroup_at_exit`]); `vm kill` and `vm rm` remove that of a monitor that
//! died. Its seccomp filters are the monitor's own ([`crate::seccomp`]).

use cgroups::CgroupManager;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};
use std::path::PathBuf;

/// A confinement step that failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JailError(String);

type Result<T> = std::result::Result<T, JailError>;

/// `.with_context(…)` for this module's results.
trait Context<T> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| JailError(format!("{}: {e}", f())))
    }
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| JailError(format!("{what}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.ok_or_else(|| JailError(f()))
    }
    fn context(self, what: &str) -> Result<T> {
        self.ok_or_else(|| JailError(what.to_string()))
    }
}

/// What the monitor itself may use on top of guest memory (its own pages, device buffers,
/// page cache of kernel, disk and snapshot files): measured overhead is about 3 MiB.
pub const VMM_MEMORY_ALLOWANCE_MIB: u64 = 64;
/// The CFS period of the cpu limit; the quota is one period per vCPU.
pub const CPU_PERIOD_US: u64 = 100_000;
/// Tasks beyond the vCPU threads: the main thread, the teardown child, and slack.
pub const EXTRA_PIDS: i64 = 4;
/// The hierarchies a monitor's cgroup is made in (v1).
const CONTROLLERS: &[&str] = &["memory", "cpu", "pids"];

/// Closes every descriptor above stderr that this process inherited. Runs first in a
/// monitor, before it opens anything.
pub fn close_inherited_fds() -> Result<()> {
    sys::fd::close_from(3).context("close inherited descriptors")
}

/// The cgroup path of the monitor of VM `name` with process id `pid`.
pub fn cgroup_path(name: &str, pid: u32) -> PathBuf {
    PathBuf::from(format!("/berth-vm/{name}.{pid}"))
}

/// The monitor's cgroup: removed on drop (a monitor that failed before it ran), or handed
/// to the running monitor by [`VmCgroup::at_exit`].
pub struct VmCgroup {
    mgr: Option<Box<dyn CgroupManager>>,
    path: PathBuf,
}

impl VmCgroup {
    /// Creates this process's cgroup for VM `name`, sets its limits (memory: guest memory
    /// plus [`VMM_MEMORY_ALLOWANCE_MIB`]; cpu: `cpus` periods per period; pids: `cpus` +
    /// [`EXTRA_PIDS`]) and moves this process, which must have one thread, into it.
    ///
    /// Where no cgroup hierarchy is mounted at all (`ip netns exec` mounts a fresh /sys
    /// without /sys/fs/cgroup) there is none to join: that is said on stderr and the
    /// monitor runs without one (None).
    pub fn enter(name: &str, cpus: u8, memory_mib: u64) -> Result<Option<VmCgroup>> {
        let path = cgroup_path(name, std::process::id());
        let mgr = match cgroups::process_manager(&path, CONTROLLERS) {
            Ok(m) => m,
            Err(e @ cgroups::CgroupError::NotMounted(_)) => {
                eprintln!("berth: vm {name}: {e}: the monitor runs without cgroup limits");
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("cgroup {}", path.display())),
        };
        let limits = resources(cpus, memory_mib)?;
        // From here on, a failure drops `cg`, which removes what was made.
        let cg = VmCgroup {
            mgr: Some(mgr),
            path,
        };
        let mgr = cg.mgr.as_ref().context("cgroup manager")?;
        mgr.create()
            .with_context(|| format!("create cgroup {}", cg.path.display()))?;
        mgr.apply_resources(&limits)
            .with_context(|| format!("cgroup {}: set limits", cg.path.display()))?;
        mgr.join_thread()
            .with_context(|| format!("cgroup {}: join", cg.path.display()))?;
        Ok(Some(cg))
    }

    /// Hands the cgroup to the monitor: its main thread leaves it when the vCPUs have
    /// stopped, its teardown child removes the directories when the VM is destroyed.
    pub fn at_exit(mut self) -> crate::vmm::CgroupExit {
        let path = self.path.clone();
        let Some(mgr) = self.mgr.take() else {
            return crate::vmm::CgroupExit {
                leave: Box::new(|| {}),
                dirs: Vec::new(),
            };
        };
        let mut dirs: Vec<PathBuf> = mgr.paths().into_values().collect();
        dirs.sort();
        dirs.dedup();
        crate::vmm::CgroupExit {
            leave: Box::new(move || {
                if let Err(e) = mgr.leave_thread() {
                    eprintln!("berth: cgroup {}: leave: {e}", path.display());
                }
            }),
            dirs,
        }
    }
}

impl Drop for VmCgroup {
    /// Leaves and removes the cgroup of a monitor that did not run (its vCPU threads, if
    /// any, have ended).
    fn drop(&mut self) {
        let Some(mgr) = self.mgr.take() else {
            return;
        };
        if let Err(e) = mgr.leave_thread() {
            eprintln!("berth: cgroup {}: leave: {e}", self.path.display());
        }
        if let Err(e) = mgr.destroy() {
            eprintln!("berth: cgroup {}: remove: {e}", self.path.display());
        }
    }
}

/// The limits of a monitor's cgroup.
fn resources(cpus: u8, memory_mib: u64) -> Result<oci_spec::runtime::LinuxResources> {
    let bytes = memory_mib
        .checked_add(VMM_MEMORY_ALLOWANCE_MIB)
        .and_then(|m| m.checked_mul(1 << 20))
        .and_then(|b| i64::try_from(b).ok())
        .with_context(|| format!("--memory {memory_mib} MiB: too large"))?;
    let cpu = LinuxCpuBuilder::default()
        .period(CPU_PERIOD_US)
        .quota(i64::from(cpus) * CPU_PERIOD_US as i64)
        .build()
        .context("cgroup limits")?;
    let memory = LinuxMemoryBuilder::default()
        .limit(bytes)
        .build()
        .context("cgroup limits")?;
    let pids = LinuxPidsBuilder::default()
        .limit(i64::from(cpus) + EXTRA_PIDS)
        .build()
        .context("cgroup limits")?;
    LinuxResourcesBuilder::default()
        .cpu(cpu)
        .memory(memory)
        .pids(pids)
        .build()
        .context("cgroup limits")
}

/// Removes the cgroup of a monitor that is gone (`vm kill`, `vm rm`); one that is not
/// there is fine.
pub fn remove_stale(name: &str, pid: u32) -> Result<()> {
    let path = cgroup_path(name, pid);
    let mgr = match cgroups::process_manager(&path, CONTROLLERS) {
        Ok(m) => m,
        Err(cgroups::CgroupError::NotMounted(_)) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cgroup {}", path.display())),
    };
    mgr.destroy()
        .with_context(|| format!("remove cgroup {}", path.display()))
}
