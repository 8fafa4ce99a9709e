//! The container's init process, from `clone` to `execve`, in stages:
//! 1. wait for the runtime to map ids and place us in the cgroup;
//! 2. join namespaces given by path, unshare the cgroup namespace;
//! 3. build the rootfs (mounts, devices), let the runtime run its hooks, run createContainer
//!    hooks, pivot_root;
//! 4. finish the container (propagation, sysctl, hostname, masked and read-only paths,
//!    terminal), resolve the executable, report "created";
//! 5. block on the exec FIFO until `start`, run startContainer hooks, become the process.

use super::sync::{Channel, Msg};
use super::{devices, finalize, rootfs};
use crate::error::{Context, Result};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Everything the init needs, prepared by the runtime before `clone`.
pub struct InitCtx<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub id: &'a str,
    /// The exec FIFO, opened read-write so opening never blocks.
    pub fifo: OwnedFd,
    /// The container's state directory, where a failure after `start` is reported.
    pub state_dir: OwnedFd,
    /// Connected `--console-socket`, when process.terminal is set.
    pub console: Option<OwnedFd>,
    /// Namespaces to join by path (user first), opened by the runtime.
    pub join: Vec<(CloneFlags, OwnedFd, String)>,
    /// Namespaces to unshare after joining (when the user namespace was joined by path).
    pub unshare: CloneFlags,
    pub new_userns: bool,
    pub new_cgroupns: bool,
    pub cgroup_paths: BTreeMap<String, PathBuf>,
    pub cgroup_unified: bool,
    pub no_pivot: bool,
    /// No mount namespace of its own: mount in the runtime's and chroot (host_mounts.rs).
    pub shared_mnt: bool,
    /// The caller's `--preserve-fds` descriptors, recorded when `create` began.
    pub preserve_fds: super::PassedFds,
    pub no_new_keyring: bool,
    /// Connected `linux.seccomp.listenerPath`, when the profile notifies an agent.
    pub seccomp_listener: Option<OwnedFd>,
    /// `linux.seccomp` compiled (or found in the cache) by the runtime before `clone`.
    pub seccomp_program: Option<super::seccomp::Program>,
}

/// Runs the init; never returns. Failures before "created" go to the runtime over the
/// channel, later ones to the container's stderr.
pub fn run(ctx: InitCtx<'_>, mut ch: Channel) -> ! {
    let prepared = match setup(&ctx, &mut ch) {
        Ok(p) => p,
        Err(e) => {
            ch.fail(e.to_string(), std::time::Duration::from_secs(2));
            std::process::exit(1);
        }
    };
    drop(ch);
    let mut prepared = prepared;
    let start_err = prepared.start_err.take();
    let Err(err) = wait_and_exec(&ctx, prepared);
    let msg = format!("container {}: {err}", ctx.id);
    eprintln!("berth-runtime: error: {msg}");
    // For `start`, which waits for us to exec and reports this instead (runtime.md: a
    // failing startContainer hook fails `start` and stops the container).
    if let Some(f) = start_err {
        let _ = std::io::Write::write_all(&mut std::fs::File::from(f), msg.as_bytes());
    }
    std::process::exit(127);
}

fn hook_state(ctx: &InitCtx<'_>, pid: i32, status: &str) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "id": ctx.id,
        "status": status,
        "pid": pid,
        "bundle": ctx.bundle,
        "annotations": ctx.spec.annotations().clone().unwrap_or_default(),
    })
}

struct Ready {
    finished: finalize::Finished,
    /// `start.err` in the state dir, opened while we are still root: after `start` we may
    /// run as the container's user, who cannot create files there.
    start_err: Option<OwnedFd>,
    start_state: serde_json::Value,
}

/// Waits until the runtime has placed us in our cgroup, then enters a new cgroup
/// namespace if asked (its root is the cgroup we are in when unsharing).
fn join_cgroup(ctx: &InitCtx<'_>, ch: &mut Channel) -> Result<()> {
    ch.expect(Msg::Joined)?;
    if ctx.new_cgroupns {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .ctx(|| "unshare cgroup namespace".into())?;
    }
    Ok(())
}

fn setup(ctx: &InitCtx<'_>, ch: &mut Channel) -> Result<Ready> {
    // Until it execs the container's program this process *is* the runtime binary: make
    // it non-dumpable, so /proc/<pid>/exe, mem, fd, … are closed to every process without
    // CAP_SYS_PTRACE in the host's user namespace (execve resets it). See exe_guard.rs.
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)".into())?;
    ch.expect(Msg::Go)?;
    crate::trace::stage("init: namespaces");
    let spec = ctx.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| crate::error::config_err("linux", "missing"))?;
    let process = crate::config::process(spec)?;
    let become_root = || -> Result<()> {
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "become root in the user namespace (gid)".into())?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "become root in the user namespace (uid)".into())
    };
    if ctx.new_userns {
        become_root()?;
    }
    for (flag, fd, field) in &ctx.join {
        nix::sched::setns(fd, *flag).ctx(|| format!("{field}: setns"))?;
        // Our host ids mean nothing in a joined user namespace: what we create (tmpfs
        // entries, device nodes) must belong to its root.
        if *flag == CloneFlags::CLONE_NEWUSER {
            become_root()?;
        }
    }
    if !ctx.unshare.is_empty() {
        nix::sched::unshare(ctx.unshare).ctx(|| "unshare namespaces".into())?;
    }
    // A session keyring of its own, in its user namespace (runc's default); kernels
    // without keyrings have nothing to share.
    if !ctx.no_new_keyring {
        match sys::process::join_new_session_keyring(&format!("_ses.{}", ctx.id)) {
            Ok(()) | Err(nix::errno::Errno::ENOSYS) => {}
            Err(e) => {
                return Err(crate::error::Error::Sys {
                    what: "join a new session keyring".into(),
                    source: e,
                })
            }
        }
    }
    // A cgroup2 mount in a new cgroup namespace needs the namespace first; otherwise the
    // cgroup attach overlaps with building the rootfs.
    let mut joined = false;
    if ctx.new_cgroupns && ctx.cgroup_unified {
        join_cgroup(ctx, ch)?;
        joined = true;
    }
    if ctx.unshare.contains(CloneFlags::CLONE_NEWPID) {
        // unshare(CLONE_NEWPID) applies to our children: fork the init into the new pid
        // namespace, in our cgroup (so join it first), as the runtime's child.
        if !joined {
            join_cgroup(ctx, ch)?;
            joined = true;
        }
        match sys::process::clone_process(libc::CLONE_PARENT, None)
            .ctx(|| "fork the init into its pid namespace".into())?
        {
            sys::process::CloneResult::Child => {}
            sys::process::CloneResult::Parent(child) => {
                let _ = ch.send(&Msg::Pid(child.as_raw()));
                std::process::exit(0);
            }
        }
    }
    // runtime.md "State": hooks in the container namespace see the pid as the container
    // sees it; the seccomp agent (in the runtime's) gets the host's.
    let own_pid = nix::unistd::getpid().as_raw();
    // Our pid as the host sees it: /proc is still the host's here.
    let host_pid: i32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0);

    // Stage 3: the rootfs.
    crate::trace::stage("init: rootfs mounts");
    let rootfs = ctx.rootfs;
    rootfs::prepare_root(
        rootfs,
        linux.rootfs_propagation().as_deref(),
        ctx.shared_mnt,
    )?;
    let root: OwnedFd = std::fs::File::open(rootfs)
        .ctx(|| format!("open rootfs {}", rootfs.display()))?
        .into();
    let mctx = rootfs::MountCtx {
        rootfs,
        root: root.as_fd(),
        bundle: ctx.bundle,
        cgroup_paths: &ctx.cgroup_paths,
        cgroup_unified: ctx.cgroup_unified,
        new_cgroupns: ctx.new_cgroupns,
    };
    let mounts = spec.mounts().clone().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        rootfs::mount_entry(&mctx, m, i)?;
    }
    // The default devices and /dev links, unless /dev is a bind mount (runc's rule): in the
    // config's own /dev mount, or else in the image's /dev directory.
    let own_dev = !mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && rootfs::parse_options(m.options().as_deref().unwrap_or_default()).bind
    });
    let userns = ctx.new_userns
        || linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User);
    crate::trace::stage("init: devices");
    let mut nodes = if own_dev {
        devices::default_nodes()
    } else {
        Vec::new()
    };
    nodes.extend(linux.devices().iter().flatten().map(devices::node_of));
    for n in &nodes {
        devices::create(root.as_fd(), n, userns)?;
    }
    if own_dev {
        devices::links(root.as_fd())?;
    }
    if !joined {
        join_cgroup(ctx, ch)?;
    }
    crate::trace::stage("init: cgroup joined");
    let hooks = spec.hooks().as_ref();
    #[allow(deprecated)]
    let needs_runtime_hooks =
        hooks.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some());
    if needs_runtime_hooks {
        ch.send(&Msg::RunHooks)?;
        ch.expect(Msg::HooksDone)?;
    }
    crate::hooks::run_all(
        "createContainer",
        hooks.and_then(|h| h.create_container().as_ref()),
        &hook_state(ctx, own_pid, "creating"),
    )?;
    drop(root);
    crate::trace::stage("init: pivot_root");
    rootfs::pivot(rootfs, ctx.no_pivot, ctx.shared_mnt)?;

    // Stage 4: finish the container from the inside.
    crate::trace::stage("init: masked paths, sysctl, hostname");
    if let Some(p) = linux.rootfs_propagation() {
        rootfs::set_root_propagation(p)?;
    }
    for (k, v) in linux.sysctl().iter().flatten() {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v).ctx(|| format!("linux.sysctl.{k}: write {path}"))?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| "hostname: sethostname".into())?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::process::set_domainname(d).ctx(|| "domainname: setdomainname".into())?;
    }
    let newroot: OwnedFd = std::fs::File::open("/").ctx(|| "open /".into())?.into();
    for p in linux.masked_paths().iter().flatten() {
        rootfs::mask_path(newroot.as_fd(), p)?;
    }
    for p in linux.readonly_paths().iter().flatten() {
        rootfs::readonly_path(newroot.as_fd(), p)?;
    }
    if let Some(sock) = &ctx.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        let slave = super::tty::setup(sock, size)?;
        if own_dev {
            let fd = rootfs::mkfile_in(newroot.as_fd(), Path::new("/dev/console"))?;
            nix::mount::mount(
                Some(slave.as_str()),
                &rootfs::fd_path(fd.as_fd()),
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| "bind /dev/console".into())?;
        }
    } else {
        // A session of its own; `run` in the foreground with process.terminal keeps the
        // caller's terminal as the controlling one.
        let _ = nix::unistd::setsid();
        if process.terminal().unwrap_or(false) && nix::unistd::isatty(0).unwrap_or(false) {
            let _ = sys::process::set_controlling_terminal(std::io::stdin().as_fd());
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::readonly_root()?;
    }
    drop(newroot);
    finalize::set_rlimits(process)?;
    finalize::set_attributes(process, linux.personality().as_ref())?;
    if let Some(mask) = process.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            mask as libc::mode_t,
        ));
    }
    finalize::enter_cwd(process.cwd(), true)?;
    crate::trace::stage("init: exe lookup");
    let mut prepared = finalize::prepare(
        process,
        linux.seccomp().as_ref(),
        ctx.seccomp_program.clone(),
    )?;
    if let (Some(sock), Some(sec)) = (&ctx.seccomp_listener, linux.seccomp()) {
        prepared.listener = Some(super::seccomp::Listener {
            socket: sock.try_clone().ctx(|| "dup seccomp listener".into())?,
            state: super::seccomp::process_state(
                sec,
                host_pid,
                hook_state(ctx, host_pid, "creating"),
            ),
        });
    }
    let start_err = sys::resolve::open_in_root(
        ctx.state_dir.as_fd(),
        Path::new(crate::state::START_ERROR),
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        0o600,
    )
    .ok();
    // Nothing of the runtime may reach the container: every descriptor but stdio and the
    // caller's preserved ones is close-on-exec from here on (CVE-2024-21626).
    ctx.preserve_fds.keep_only_these()?;
    let start_state = hook_state(ctx, own_pid, "created");
    // Parked, we are the pid namespace's init: without handlers, `kill ID` (SIGTERM) of a
    // created container would do nothing. Installed before we report "created".
    sys::signal::exit_on_termination_signals().ctx(|| "signal handlers".into())?;
    // User, capabilities and seccomp now, as runc does: a seccomp agent receives its notify
    // descriptor during `create`, and a failure here is a create-time error. What remains
    // after `start` (reading the FIFO, startContainer hooks, execve) runs confined.
    crate::trace::stage("init: user, caps, seccomp load");
    let finished = finalize::finish(process, prepared)?;
    ch.send(&Msg::Ready)?;
    crate::trace::stage("init: parked on exec fifo");
    Ok(Ready {
        finished,
        start_err,
        start_state,
    })
}

fn wait_and_exec(ctx: &InitCtx<'_>, r: Ready) -> Result<std::convert::Infallible> {
    // Stage 5: `start` writes one byte to the FIFO.
    let mut fifo = std::fs::File::from(ctx.fifo.try_clone().ctx(|| "dup exec fifo".into())?);
    let mut b = [0u8; 1];
    loop {
        match fifo.read(&mut b) {
            Ok(1) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(_) => {
                return Err(crate::error::Error::Init(
                    "exec fifo closed before start".into(),
                ))
            }
            Err(e) => {
                return Err(crate::error::Error::Io {
                    what: "read exec fifo".into(),
                    source: e,
                })
            }
        }
    }
    crate::trace::stage("init: started");
    drop(fifo);
    let hooks = ctx.spec.hooks().as_ref();
    // runc runs startContainer hooks from its init, whose environment is the process's:
    // a hook without `env` sees that environment.
    let env = crate::config::process(ctx.spec)?
        .env()
        .clone()
        .unwrap_or_default();
    crate::hooks::run_all_with_env(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        &r.start_state,
        &env,
    )?;
    crate::trace::stage("init: execve");
    r.finished.exec()
}
