//! `create`: set up a container and leave its init waiting on the exec FIFO
//! (runtime-spec runtime.md "Create"). One `clone` with every namespace flag, as crun does;
//! `clone3(CLONE_INTO_CGROUP)` on cgroup v2 hosts.

use crate::config;
use crate::container::host_mounts::{self, HostMount};
use crate::error::{config_err, Context, Error, Result};
use crate::process::init::{self, InitCtx};
use crate::process::sync::{self, Msg};
use crate::process::{ns_flag, JOIN_ORDER};
use crate::state::{self, State, Store};
use cgroups::{CgroupManager, CgroupMode};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// `run` in the foreground: a terminal may be inherited instead of a console socket.
    pub foreground: bool,
    /// `--systemd-cgroup`: `linux.cgroupsPath` must be `slice:prefix:name`; none means
    /// `system.slice:berth:ID`.
    pub systemd_cgroup: bool,
}

/// `--systemd-cgroup` (runc's): `linux.cgroupsPath` must be systemd's
/// `slice:prefix:name`; none becomes `system.slice:berth:ID`. The state keeps the result,
/// so the later verbs find the same cgroup whether or not they get the flag.
fn systemd_cgroups_path(spec: &mut oci_spec::runtime::Spec, id: &str) -> Result<()> {
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    match linux.cgroups_path() {
        None => {
            linux.set_cgroups_path(Some(PathBuf::from(format!("system.slice:berth:{id}"))));
        }
        Some(p) => {
            let s = p.to_string_lossy();
            if !cgroups::is_systemd_path(&s) {
                return Err(config_err(
                    "linux.cgroupsPath",
                    format!("with --systemd-cgroup it must be slice:prefix:name, not {s:?}"),
                ));
            }
            cgroups::systemd_path(&s)
                .map_err(|e| config_err("linux.cgroupsPath", e.to_string()))?;
        }
    }
    Ok(())
}

/// systemd socket activation, as runc supports it: when `LISTEN_PID` is our pid, the
/// `LISTEN_FDS` descriptors from 3 on go to the container ahead of `--preserve-fds`'s
/// (runc: "stdio + $LISTEN_FDS + N in total"), and its process gets `LISTEN_FDS=n`,
/// `LISTEN_PID=1` (sd_listen_fds(3)).
fn socket_activation_fds() -> i32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| (1..=4096).contains(n))
        .unwrap_or(0)
}

/// A created container.
#[derive(Debug)]
pub struct Created {
    pub state: State,
    pub pid: Pid,
}

/// Undoes a half-made container: no state dir, cgroup or process is left behind.
struct Cleanup<'a> {
    store: &'a Store,
    id: String,
    cgroup: Option<Box<dyn CgroupManager>>,
    child: Option<Pid>,
    /// Without a mount namespace: the rootfs and the mounts below it before the init ran.
    host_mounts: Option<(PathBuf, Vec<HostMount>)>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some((rootfs, before)) = &self.host_mounts {
            host_mounts::unmount(&host_mounts::added_since(rootfs, before));
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
        let _ = self.store.remove(&self.id);
    }
}

fn open_ns(path: &Path, field: &str) -> Result<OwnedFd> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| config_err(field, format!("{}: {e}", path.display())))
}

/// Writes a file the way `echo > f` does, naming it in the error.
fn write_file(path: &str, data: &str) -> Result<()> {
    std::fs::write(path, data).ctx(|| format!("write {path}"))
}

fn id_map(maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>) -> String {
    maps.iter()
        .flatten()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Creates the container. On error nothing is left behind.
pub fn create(store: &Store, o: &CreateOpts) -> Result<Created> {
    // The init is a fork of this process: whatever it execs through /proc/self/exe must not
    // be a writable runtime binary. Re-executes this process first when it is (exe_guard.rs).
    crate::exe_guard::ensure()?;
    crate::trace::stage("create");
    let listen = socket_activation_fds();
    let preserved = crate::process::PassedFds::snapshot(o.preserve_fds.saturating_add(listen));
    state::validate_id(&o.id)?;
    let bundle = o
        .bundle
        .canonicalize()
        .map_err(|e| Error::Usage(format!("bundle {}: {e}", o.bundle.display())))?;
    let mut spec = config::load(&bundle)?;
    if o.systemd_cgroup {
        systemd_cgroups_path(&mut spec, &o.id)?;
    }
    if listen > 0 {
        if let Some(p) = spec.process_mut() {
            let mut env = p.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
            env.push(format!("LISTEN_FDS={listen}"));
            env.push("LISTEN_PID=1".into());
            p.set_env(Some(env));
        }
    }
    crate::trace::stage("config parsed");
    let rootfs = config::rootfs_path(&spec, &bundle)?;
    let process = config::process(&spec)?;
    crate::process::finalize::warn_unavailable_caps(process);
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| config_err("linux", "missing"))?;
    if process.terminal().unwrap_or(false) && o.console_socket.is_none() && !o.foreground {
        return Err(Error::Usage(
            "process.terminal is true: --console-socket is required".into(),
        ));
    }
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    // Not listed: the container shares our mount namespace (config-linux.md).
    let shared_mnt = !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount);

    // Namespaces: what clone creates, what the child joins or unshares, what we join here.
    let user_joined = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    let (mut clone_flags, mut unshare) = (CloneFlags::empty(), CloneFlags::empty());
    let (mut join, mut parent_join) = (Vec::new(), Vec::new());
    let (mut new_time, mut new_cgroupns, mut new_userns) = (false, false, false);
    for t in JOIN_ORDER {
        let Some((i, ns)) = namespaces.iter().enumerate().find(|(_, n)| n.typ() == t) else {
            continue;
        };
        let flag = ns_flag(t);
        let field = format!("linux.namespaces[{i}].path");
        match (t, ns.path()) {
            (LinuxNamespaceType::Pid | LinuxNamespaceType::Time, Some(p)) => {
                parent_join.push((flag, open_ns(p, &field)?, field))
            }
            (_, Some(p)) => join.push((flag, open_ns(p, &field)?, field)),
            (LinuxNamespaceType::Cgroup, None) => new_cgroupns = true,
            (LinuxNamespaceType::Time, None) => new_time = true,
            // A pid namespace belongs to the user namespace of its creator: with a user
            // namespace joined by path, the child makes it after joining (and forks its
            // init into it), as runc's nsexec does.
            (LinuxNamespaceType::Pid, None) if user_joined => unshare |= flag,
            (LinuxNamespaceType::Pid, None) => clone_flags |= flag,
            (t, None) => {
                if t == LinuxNamespaceType::User {
                    new_userns = true;
                }
                if user_joined {
                    unshare |= flag;
                } else {
                    clone_flags |= flag;
                }
            }
        }
    }

    let dir = store.create_dir(&o.id)?;
    // Held until the container is created, so a concurrent delete waits for us.
    let lock = store.lock(&o.id)?;
    let mut guard = Cleanup {
        store,
        id: o.id.clone(),
        cgroup: None,
        child: None,
        host_mounts: shared_mnt.then(|| (rootfs.clone(), host_mounts::under(&rootfs))),
        armed: true,
    };
    crate::trace::stage("cgroup create");
    let cg = crate::container::manager_for_spec(&spec, &o.id)?;
    guard.cgroup = Some(cg);
    let cg = guard
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Init("cgroup".into()))?;
    cg.create()?;
    if let Some(r) = crate::container::effective_resources(&spec) {
        cg.apply_resources(&r)?;
    }
    let cgroup_paths = cg.paths();
    let unified = matches!(cg.mode(), CgroupMode::Unified);

    crate::trace::stage("exec fifo");
    let fifo_path = state::fifo_path(&dir);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .ctx(|| format!("mkfifo {}", fifo_path.display()))?;
    let fifo: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo_path)
        .ctx(|| format!("open {}", fifo_path.display()))?
        .into();
    // The init reports a failure after `start` here (close-on-exec: gone once it execs).
    let state_dir: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&dir)
        .ctx(|| format!("open {}", dir.display()))?
        .into();
    let console = match &o.console_socket {
        Some(p) if process.terminal().unwrap_or(false) => {
            Some(OwnedFd::from(UnixStream::connect(p).ctx(|| {
                format!("connect to console socket {}", p.display())
            })?))
        }
        _ => None,
    };

    // Pid and time namespaces apply to our next child: enter them here, leave right after.
    let restore = |name: &str| -> Result<OwnedFd> {
        open_ns(Path::new(&format!("/proc/self/ns/{name}")), name)
    };
    let mut restores = Vec::new();
    for (flag, fd, field) in &parent_join {
        restores.push((
            *flag,
            restore(if *flag == CloneFlags::CLONE_NEWPID {
                "pid"
            } else {
                "time"
            })?,
        ));
        nix::sched::setns(fd, *flag).ctx(|| format!("{field}: setns"))?;
    }
    if new_time {
        let tflag = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
        restores.push((tflag, restore("time")?));
        nix::sched::unshare(tflag).ctx(|| "unshare time namespace".into())?;
        let mut offsets = String::new();
        for (clock, off) in linux.time_offsets().iter().flatten() {
            offsets.push_str(&format!(
                "{clock} {} {}\n",
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0)
            ));
        }
        if !offsets.is_empty() {
            write_file("/proc/self/timens_offsets", &offsets)?;
        }
    }

    crate::trace::stage("seccomp program (cache or compile)");
    let seccomp_program = linux
        .seccomp()
        .as_ref()
        .map(|s| crate::process::seccomp::program(&store.root, s))
        .transpose()?;
    let seccomp_listener = match linux.seccomp() {
        Some(s) => crate::process::seccomp::connect_listener(s)?,
        None => None,
    };
    crate::trace::stage("clone");
    let (mut ch, child_ch) = sync::pair()?;
    // Born in its v2 cgroup (unified or hybrid host): one cgroup attach less.
    let cgroup_dir = cgroup_paths.get("").and_then(|p| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(p)
            .ok()
    });
    // Born in its v1 cgroups too: this thread joins them through `tasks` ("0", one thread:
    // no threadgroup lock, so no RCU grace period — writing the child's pid to
    // cgroup.procs waits for one, ≈10 ms here) and leaves right after the clone.
    let in_v1 = !unified && join_v1(cg.as_ref());
    let clone_in = |flags: i32| match sys::process::clone_process(
        flags,
        cgroup_dir.as_ref().map(|f| f.as_fd()),
    ) {
        Err(_) if cgroup_dir.is_some() => {
            sys::process::clone_process(flags, None).map(|r| (r, false))
        }
        r => r.map(|r| (r, cgroup_dir.is_some())),
    };
    let mut cloned = clone_in(clone_flags.bits());
    let mut in_v1 = in_v1;
    if in_v1 && cloned.is_err() {
        // A pids limit the runtime's thread counts against (pids.max 1): clone outside and
        // move the child in as before.
        cg.leave_thread()?;
        in_v1 = false;
        cloned = clone_in(clone_flags.bits());
    }
    // The runtime itself must not stay in the container's cgroups (checked once the child
    // is in the guard, so a failure still kills it).
    let left = if in_v1 && matches!(cloned, Ok((sys::process::CloneResult::Parent(_), _))) {
        cg.leave_thread()
    } else {
        Ok(())
    };
    let (into_cgroup, mut pid) = match cloned.ctx(|| "clone container process".into())? {
        (sys::process::CloneResult::Child, _) => {
            drop(ch);
            // The init must not keep the container locked while it waits for `start`.
            lock.close_in_child();
            let ctx = InitCtx {
                spec: &spec,
                rootfs: &rootfs,
                bundle: &bundle,
                id: &o.id,
                fifo,
                state_dir,
                console,
                join,
                unshare,
                new_userns,
                new_cgroupns,
                cgroup_paths,
                cgroup_unified: unified,
                no_pivot: o.no_pivot,
                shared_mnt,
                preserve_fds: preserved,
                no_new_keyring: o.no_new_keyring,
                seccomp_listener,
                seccomp_program,
            };
            init::run(ctx, child_ch)
        }
        (sys::process::CloneResult::Parent(pid), into) => (into, pid),
    };
    guard.child = Some(pid);
    left?;
    drop(child_ch);
    drop(fifo);
    drop(state_dir);
    drop(console);
    drop(seccomp_listener);
    for (flag, fd) in restores {
        let _ = nix::sched::setns(fd, flag);
    }

    if new_userns {
        write_file(
            &format!("/proc/{pid}/uid_map"),
            &id_map(linux.uid_mappings()),
        )
        .map_err(|e| config_err("linux.uidMappings", e.to_string()))?;
        write_file(
            &format!("/proc/{pid}/gid_map"),
            &id_map(linux.gid_mappings()),
        )
        .map_err(|e| config_err("linux.gidMappings", e.to_string()))?;
    }
    ch.send(&Msg::Go)?;
    crate::trace::stage("cgroup attach");
    // The child builds its rootfs meanwhile; it waits for `Joined` before anything that
    // depends on its cgroup (the cgroup namespace, hooks, exec).
    cg.add_task(pid.as_raw(), in_v1, into_cgroup)?;
    if let Some(adj) = process.oom_score_adj() {
        write_file(&format!("/proc/{pid}/oom_score_adj"), &adj.to_string())
            .map_err(|e| config_err("process.oomScoreAdj", e.to_string()))?;
    }
    ch.send(&Msg::Joined)?;
    crate::trace::stage("wait for init");

    let mut st = State {
        id: o.id.clone(),
        pid: pid.as_raw(),
        pid_start: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        config: Spec::default(),
        host_mounts: Vec::new(),
    };
    // Hooks see the config's annotations (state.md) from the first one on.
    st.config = spec;
    let spec = &st.config;
    loop {
        match ch.recv()? {
            Some(Msg::RunHooks) => {
                let s = st.oci(state::Status::Creating);
                let hooks = spec.hooks().as_ref();
                #[allow(deprecated)]
                crate::hooks::run_all("prestart", hooks.and_then(|h| h.prestart().as_ref()), &s)?;
                crate::hooks::run_all(
                    "createRuntime",
                    hooks.and_then(|h| h.create_runtime().as_ref()),
                    &s,
                )?;
                ch.send(&Msg::HooksDone)?;
            }
            Some(Msg::Ready) => break,
            Some(Msg::Pid(p)) => {
                // The child forked the init into its new pid namespace (as our child, with
                // CLONE_PARENT) and is done: from here on the init is the container.
                let _ = nix::sys::wait::waitpid(pid, None);
                pid = Pid::from_raw(p);
                guard.child = Some(pid);
                st.pid = p;
            }
            Some(Msg::Failed(e)) => return Err(Error::Init(e)),
            Some(m) => {
                return Err(Error::Init(format!(
                    "unexpected {m:?} from container process"
                )))
            }
            None => return Err(Error::Init("container process exited during setup".into())),
        }
    }
    if let Some((rootfs, before)) = &guard.host_mounts {
        st.host_mounts = host_mounts::added_since(rootfs, before);
    }
    crate::trace::stage("save state");
    st.pid_start = state::process_start_time(pid.as_raw())
        .ok_or_else(|| Error::Init("container process exited during setup".into()))?;
    store.save(&st)?;
    if let Some(pf) = &o.pid_file {
        write_pid_file(pf, pid.as_raw())?;
    }
    guard.armed = false;
    crate::trace::stage("created");
    Ok(Created { state: st, pid })
}

/// Moves this thread into the container's v1 cgroups, so its next child is born there;
/// false (and back where it was) if any hierarchy refused.
fn join_v1(cg: &dyn CgroupManager) -> bool {
    match cg.join_thread() {
        Ok(()) => true,
        Err(_) => {
            let _ = cg.leave_thread();
            false
        }
    }
}

/// Writes a pid file atomically (a reader never sees it half-written).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename {}", path.display()))
}
