//! The VMM: a [`Vm`] with its state directory, API socket and event loop. The main thread
//! runs the loop (API requests, block-device queue notifications, terminal input, the vCPUs'
//! stop signal); each vCPU runs on its own thread.

use crate::api::{ApiResponse, ApiServer, VmInfo, VmmAction, VmmData};
use crate::config::{ConfigError, VmConfig};
use crate::devices::serial::event_handler::SerialInput;
use crate::devices::serial::SerialOut;
use crate::snapshot::{self, SnapshotError};
use crate::state::{StateError, VmDir, VmRecord};
use crate::vm::{DeviceState, ExitReason, Vm, VmError};
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

/// Where the serial console goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Console {
    /// The VMM's stdout (and terminal input from stdin).
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// How a VMM's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest stopped (or failed).
    Guest(ExitReason),
    /// A `Stop` request.
    Stopped,
}

/// Starting or running a VMM failed.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// {0}
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// {0}
    #[error(transparent)]
    State(#[from] StateError),
    /// {0}
    #[error(transparent)]
    Vm(#[from] VmError),
    /// {0}
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// {0}
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// console {path}: {source}
    #[error("console {path}: {source}")]
    Console {
        path: PathBuf,
        source: std::io::Error,
    },
    /// event loop: {0}
    #[error("event loop: {0}")]
    EventLoop(String),
    /// {0}
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// Drains the vCPUs' stop eventfd so the loop wakes once per stop.
struct StopWatcher(Arc<EventFd>);

impl MutEventSubscriber for StopWatcher {
    fn process(&mut self, _: Events, _: &mut EventOps) {
        let _ = self.0.read();
    }
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(self.0.as_ref(), EventSet::IN));
    }
}

/// How a monitor's cgroup goes away when its VM ends (see [`Vmm::remove_cgroup_at_exit`]).
pub struct CgroupExit {
    /// Moves the main thread out of the cgroup; runs once the vCPU threads have ended.
    pub leave: Box<dyn FnOnce()>,
    /// The cgroup's directories, removed by the teardown child once the VM is destroyed.
    pub dirs: Vec<PathBuf>,
}

/// A VM with everything around it.
pub struct Vmm {
    vm: Vm,
    em: EventManager<Subscriber>,
    api: Arc<Mutex<ApiServer>>,
    dir: VmDir,
    cgroup: Option<CgroupExit>,
}

fn open_console(console: &Console) -> Result<SerialOut, VmmError> {
    match console {
        Console::Stdout => Ok(Box::new(std::io::stdout())),
        Console::File(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| Box::new(f) as SerialOut)
            .map_err(|source| VmmError::Console {
                path: path.clone(),
                source,
            }),
    }
}

impl Vmm {
    /// Validates `config`, claims its name under `root`, boots the VM and opens its API.
    /// On error nothing is left behind (no state directory, socket or thread).
    pub fn boot(config: VmConfig, root: &Path, console: Console) -> Result<Vmm, VmmError> {
        config.validate()?;
        let dir = VmDir::create(root, &config.name)?;
        let out = open_console(&console)?;
        let vm = Vm::boot(config, out, &dir.path)?;
        Vmm::assemble(vm, dir, console)
    }

    /// Restores the snapshot at `path` as a VM named `name` (default: the snapshot's name).
    pub fn restore(
        path: &Path,
        name: Option<String>,
        root: &Path,
        console: Console,
        paused: bool,
    ) -> Result<Vmm, VmmError> {
        let loaded = snapshot::load(path)?;
        let header = loaded.header;
        let mut config = header.config.clone();
        if let Some(n) = name {
            config.name = n;
        }
        config.validate_shape()?;
        let dir = VmDir::create(root, &config.name)?;
        let out = open_console(&console)?;
        let vm = Vm::restore(
            config,
            &dir.path,
            loaded.mem,
            out,
            &header.vm,
            DeviceState {
                serial: &header.serial,
                disks: &header.disks,
                nets: &header.nets,
                rng: header.rng.as_ref(),
                vsock: header.vsock.as_ref(),
            },
            header.vcpus,
            paused,
        )?;
        Vmm::assemble(vm, dir, console)
    }

    fn assemble(vm: Vm, dir: VmDir, console: Console) -> Result<Vmm, VmmError> {
        let api = Arc::new(Mutex::new(ApiServer::bind(&dir.socket())?));
        dir.write_record(&VmRecord {
            config: vm.config.clone(),
            pid: std::process::id(),
            console: match &console {
                Console::File(p) => Some(p.clone()),
                Console::Stdout => None,
            },
        })?;
        let mut em: EventManager<Subscriber> =
            EventManager::new().map_err(|e| VmmError::EventLoop(format!("{e:?}")))?;
        em.add_subscriber(api.clone());
        em.add_subscriber(Arc::new(Mutex::new(StopWatcher(vm.ctx.stop_evt.clone()))));
        for d in &vm.disks {
            em.add_subscriber(d.block.clone());
        }
        for n in &vm.nets {
            em.add_subscriber(n.net.clone());
        }
        if let Some(r) = &vm.rng {
            em.add_subscriber(r.rng.clone());
        }
        if let Some(v) = &vm.vsock {
            em.add_subscriber(v.vsock.clone());
        }
        if console == Console::Stdout && std::io::stdin().is_terminal() {
            em.add_subscriber(Arc::new(Mutex::new(SerialInput {
                serial: vm.serial.clone(),
            })));
        }
        Ok(Vmm {
            vm,
            em,
            api,
            dir,
            cgroup: None,
        })
    }

    /// The VM's configuration.
    pub fn config(&self) -> &VmConfig {
        &self.vm.config
    }

    /// Removes the monitor's cgroup when the VM ends: once the vCPU threads have ended the
    /// main thread leaves it (so the teardown child is born outside), and the teardown
    /// child removes its directories once the monitor has exited and the VM is destroyed
    /// (KVM's per-VM worker thread stays in the cgroup until then).
    pub fn remove_cgroup_at_exit(&mut self, cgroup: CgroupExit) {
        self.cgroup = Some(cgroup);
    }

    fn stopped(&mut self) {
        self.vm.shutdown();
        let dirs = match self.cgroup.take() {
            Some(c) => {
                (c.leave)();
                c.dirs
            }
            None => Vec::new(),
        };
        self.vm.defer_teardown(&dirs);
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.socket()
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.vm.config.name
    }

    /// Runs the event loop until the guest stops or a `Stop` request arrives; then stops the
    /// vCPUs and removes the socket and state directory.
    pub fn run(mut self) -> Result<Outcome, VmmError> {
        let outcome = self.run_loop();
        self.stopped();
        outcome
    }

    /// [`run`](Self::run), also measuring the process's memory just before the VM stops.
    pub fn run_with_stats(mut self) -> Result<(Outcome, MemoryStats), VmmError> {
        let outcome = self.run_loop();
        let stats = MemoryStats::measure(&self.vm);
        self.stopped();
        Ok((outcome?, stats))
    }

    fn run_loop(&mut self) -> Result<Outcome, VmmError> {
        // Setup is done: from here the main thread only serves the event loop.
        crate::seccomp::apply(&crate::seccomp::vmm_filter()?)?;
        let outcome = loop {
            if let Some(r) = self.vm.stop_reason() {
                break Outcome::Guest(r);
            }
            self.em
                .run()
                .map_err(|e| VmmError::EventLoop(format!("{e:?}")))?;
            let pending =
                std::mem::take(&mut self.api.lock().unwrap_or_else(|p| p.into_inner()).pending);
            let mut stop = false;
            for p in pending {
                let response = match &p.action {
                    Ok(VmmAction::Stop) => {
                        stop = true;
                        ApiResponse::Ok(VmmData::Empty)
                    }
                    Ok(action) => match self.handle(action) {
                        Ok(d) => ApiResponse::Ok(d),
                        Err(e) => ApiResponse::Err(e.to_string()),
                    },
                    Err(e) => ApiResponse::Err(e.clone()),
                };
                p.answer(response);
            }
            if stop {
                break Outcome::Stopped;
            }
        };
        Ok(outcome)
    }

    fn handle(&mut self, action: &VmmAction) -> Result<VmmData, VmmError> {
        match action {
            VmmAction::Describe => Ok(VmmData::Info(VmInfo {
                name: self.vm.config.name.clone(),
                state: if self.vm.paused() {
                    "paused"
                } else {
                    "running"
                }
                .into(),
                cpus: self.vm.config.cpus,
                memory_mib: self.vm.config.memory_mib,
                pid: std::process::id(),
            })),
            VmmAction::Pause => {
                self.vm.pause()?;
                Ok(VmmData::Empty)
            }
            VmmAction::Resume => {
                self.vm.resume()?;
                Ok(VmmData::Empty)
            }
            VmmAction::CreateSnapshot { path } => {
                let was_running = !self.vm.paused();
                if was_running {
                    self.vm.pause()?;
                }
                let result = snapshot::save(&self.vm, path);
                if was_running {
                    self.vm.resume()?;
                }
                result?;
                Ok(VmmData::Empty)
            }
            VmmAction::Stop => Ok(VmmData::Empty),
        }
    }
}

impl Drop for Vmm {
    /// A monitor dropped without running (its start failed after the boot) still hands its
    /// cgroup to a teardown child, which removes it.
    fn drop(&mut self) {
        if self.cgroup.is_some() {
            self.stopped();
        }
    }
}

/// The VMM process's memory: its peak resident set and the guest pages resident in it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryStats {
    /// VmHWM of the process, KiB.
    pub peak_rss_kib: u64,
    /// Resident guest memory (pages the guest or the loader touched), KiB.
    pub guest_rss_kib: u64,
}

impl MemoryStats {
    fn measure(vm: &Vm) -> MemoryStats {
        use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
        let ranges: Vec<(u64, u64)> = vm
            .mem
            .iter()
            .filter_map(|r| {
                let host = vm.mem.get_host_address(r.start_addr()).ok()? as u64;
                Some((host, host + r.len()))
            })
            .collect();
        let mut stats = MemoryStats::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            stats.peak_rss_kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
        }
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return stats;
        };
        let mut in_guest = false;
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                if in_guest {
                    stats.guest_rss_kib += rss
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
            } else if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, _)) = range.split_once('-') {
                    if let Ok(start) = u64::from_str_radix(a, 16) {
                        in_guest = ranges.iter().any(|(s, e)| start >= *s && start < *e);
                    }
                }
            }
        }
        stats
    }
}
