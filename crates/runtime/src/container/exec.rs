//! `exec`: run a new process inside a running container: join its cgroup and every one of
//! its namespaces, then the same finalization as the init (user, capabilities, seccomp).

use crate::config::{parse_json, validate_process};
use crate::error::{Context, Error, Result};
use crate::process::sync::{self, Msg};
use crate::process::{finalize, ns_file, ns_flag, JOIN_ORDER};
use crate::state::{self, Store};
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process, User};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::linux::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub id: String,
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: i32,
    /// `--apparmor`: the AppArmor profile of the new process.
    pub apparmor: Option<String>,
    /// `--process-label`: its SELinux label.
    pub process_label: Option<String>,
    /// `--ignore-paused`: exec into a paused container (the process starts frozen).
    pub ignore_paused: bool,
    /// `--cgroup [CONTROLLER[,CONTROLLER]:]SUBPATH`: run in an existing sub-cgroup of the
    /// container's (runc's option), for all controllers or the ones named.
    pub cgroups: Vec<String>,
}

/// The cgroup.procs files the exec'd process joins: the container's cgroup, or the
/// `--cgroup` sub-cgroups of it (which must exist; runc's rule).
fn exec_procs(st: &state::State, specs: &[String]) -> Result<Vec<PathBuf>> {
    let m = super::cgroup_of(st)?;
    if specs.is_empty() {
        return Ok(m.procs_files());
    }
    let paths = m.paths();
    let mut default: Option<&str> = None;
    let mut named: std::collections::BTreeMap<&str, &str> = Default::default();
    for spec in specs {
        let bad = |why: &str| Error::Usage(format!("--cgroup {spec:?}: {why}"));
        let (ctrls, sub) = match spec.split_once(':') {
            Some((c, s)) => (Some(c), s),
            None => (None, spec.as_str()),
        };
        let sub_path = std::path::Path::new(sub);
        if sub.is_empty()
            || sub_path.is_absolute()
            || sub_path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(
                "the sub-cgroup must be a relative path without . or .. components",
            ));
        }
        match ctrls {
            None => default = Some(sub),
            Some(list) => {
                for c in list.split(',') {
                    if c.is_empty() || c == "unified" || !paths.contains_key(c) {
                        return Err(bad(&format!(
                            "unknown cgroup controller {c:?} (this host has: {})",
                            paths
                                .keys()
                                .filter(|k| !k.is_empty())
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    named.insert(c, sub);
                }
            }
        }
    }
    // Controllers co-mounted in one v1 hierarchy (cpu,cpuacct) share a directory: naming
    // one of them moves the process in that whole hierarchy.
    let mut chosen: Vec<(PathBuf, Option<&str>)> = Vec::new();
    for (key, dir) in &paths {
        let sub = named.get(key.as_str()).copied().or(default);
        match chosen.iter_mut().find(|(d, _)| d == dir) {
            Some(entry) => entry.1 = entry.1.or(sub),
            None => chosen.push((dir.clone(), sub)),
        }
    }
    let mut files = Vec::new();
    for (dir, sub) in chosen {
        let dir = match sub {
            Some(sub) => {
                let d = dir.join(sub);
                if !d.is_dir() {
                    return Err(Error::Usage(format!(
                        "--cgroup: sub-cgroup {} does not exist",
                        d.display()
                    )));
                }
                d
            }
            None => dir,
        };
        files.push(dir.join("cgroup.procs"));
    }
    Ok(files)
}

fn build_process(st: &state::State, o: &ExecOpts) -> Result<Process> {
    if let Some(f) = &o.process_file {
        let bytes = std::fs::read(f).ctx(|| format!("read {}", f.display()))?;
        let name = f.display().to_string();
        let p: Process = parse_json(&name, &bytes)?;
        validate_process(&p, "process").map_err(|e| e.in_file(&name))?;
        return Ok(p);
    }
    let mut p = st.config.process().clone().unwrap_or_default();
    if o.args.is_empty() {
        return Err(Error::Usage("exec: give a command, or --process".into()));
    }
    p.set_args(Some(o.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::Usage(format!("--user {u}: want UID[:GID] numbers")))
        };
        let mut user = User::default();
        user.set_uid(parse(uid)?);
        user.set_gid(parse(gid)?);
        p.set_user(user);
    }
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(user);
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let extra: Vec<oci_spec::runtime::Capability> = o
            .caps
            .iter()
            .map(|c| {
                serde_json::from_value(serde_json::Value::String(c.to_ascii_uppercase()))
                    .map_err(|_| Error::Usage(format!("--cap {c}: unknown capability")))
            })
            .collect::<Result<_>>()?;
        let add = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.extend(extra.iter().copied());
            Some(s)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        p.set_capabilities(Some(caps));
    }
    if let Some(a) = &o.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &o.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    p.set_terminal(Some(o.tty));
    validate_process(&p, "process").map_err(|e| e.in_file("exec"))?;
    Ok(p)
}

/// Runs the process; returns its exit code, or 0 with `--detach`.
pub fn exec(store: &Store, o: &ExecOpts) -> Result<i32> {
    let preserved = crate::process::PassedFds::snapshot(o.preserve_fds);
    let st = store.load(&o.id)?;
    let status = state::status(store, &st);
    let paused_ok = o.ignore_paused && status == state::Status::Paused;
    if !status.can_exec() && !paused_ok {
        return Err(Error::BadState {
            verb: "exec in",
            id: o.id.clone(),
            // Refused before `start` on purpose: the parked init still runs our binary.
            status: match status {
                state::Status::Created => format!("{status} (start it first)"),
                state::Status::Paused => format!("{status} (use --ignore-paused to override)"),
                _ => status.to_string(),
            },
        });
    }
    let p = build_process(&st, o)?;
    finalize::warn_unavailable_caps(&p);
    let terminal = p.terminal().unwrap_or(false);
    if terminal && o.console_socket.is_none() && o.detach {
        return Err(Error::Usage(
            "--tty with --detach needs --console-socket".into(),
        ));
    }
    let console = match (&o.console_socket, terminal) {
        (Some(path), true) => {
            Some(OwnedFd::from(UnixStream::connect(path).ctx(|| {
                format!("connect to console socket {}", path.display())
            })?))
        }
        _ => None,
    };
    // Every namespace of the container's init that is not already ours.
    let mut join: Vec<(CloneFlags, OwnedFd, LinuxNamespaceType)> = Vec::new();
    let types: Vec<LinuxNamespaceType> = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .map(|n| n.typ())
        .collect();
    for t in JOIN_ORDER.into_iter().filter(|t| types.contains(t)) {
        let theirs = format!("/proc/{}/ns/{}", st.pid, ns_file(t));
        let ours = format!("/proc/self/ns/{}", ns_file(t));
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.st_ino() == b.st_ino() && a.st_dev() == b.st_dev(),
            _ => false,
        };
        if !same {
            join.push((
                ns_flag(t),
                File::open(&theirs).ctx(|| format!("open {theirs}"))?.into(),
                t,
            ));
        }
    }
    // A container in our mount namespace has only its chroot to enter.
    let root = if types.contains(&LinuxNamespaceType::Mount) {
        None
    } else {
        let path = format!("/proc/{}/root", st.pid);
        Some(OwnedFd::from(
            std::os::unix::fs::OpenOptionsExt::custom_flags(
                std::fs::OpenOptions::new().read(true),
                libc::O_PATH | libc::O_DIRECTORY,
            )
            .open(&path)
            .ctx(|| format!("open {path}"))?,
        ))
    };
    let procs = exec_procs(&st, &o.cgroups)?;
    let seccomp = st.config.linux().as_ref().and_then(|l| l.seccomp().clone());
    let personality = st
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.personality().clone());

    // pid and time namespaces apply to our children: enter them here, leave after clone.
    let mut restores = Vec::new();
    for (flag, fd, t) in &join {
        if matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            let name = ns_file(*t);
            restores.push((
                *flag,
                OwnedFd::from(
                    File::open(format!("/proc/self/ns/{name}"))
                        .ctx(|| format!("open own {name} namespace"))?,
                ),
            ));
            nix::sched::setns(fd, *flag).ctx(|| format!("join {name} namespace of {}", st.pid))?;
        }
    }
    let seccomp_program = seccomp
        .as_ref()
        .map(|s| crate::process::seccomp::program(&store.root, s))
        .transpose()?;
    let listener = match &seccomp {
        Some(s) => crate::process::seccomp::connect_listener(s)?,
        None => None,
    };
    let state_doc = st.oci(status);
    let (mut ch, child_ch) = sync::pair()?;
    let cloned = sys::process::clone_process(0, None).ctx(|| "fork exec process".into());
    // Only the parent goes back to its own namespaces: the child must stay in the
    // container's time namespace (a setns back there would leave it in the host's; its
    // pid namespace cannot change any more).
    if !matches!(cloned, Ok(sys::process::CloneResult::Child)) {
        for (flag, fd) in restores {
            let _ = nix::sched::setns(fd, flag);
        }
    }
    let pid = match cloned? {
        sys::process::CloneResult::Child => {
            drop(ch);
            let mut child_ch = child_ch;
            let Err(err) = child(ChildCtx {
                p: &p,
                procs: &procs,
                join: &join,
                console,
                seccomp: seccomp.as_ref(),
                seccomp_program,
                personality: personality.as_ref(),
                preserve_fds: &preserved,
                listener: listener.map(|l| (l, state_doc)),
                root: root.as_ref(),
            });
            let _ = child_ch.send(&Msg::Failed(err.to_string()));
            std::process::exit(127);
        }
        sys::process::CloneResult::Parent(pid) => pid,
    };
    drop(child_ch);
    if !o.detach {
        super::block_signals()?;
    }
    // End-of-file means the exec succeeded (the channel is close-on-exec).
    match ch.recv()? {
        None => {}
        Some(Msg::Failed(e)) => {
            let _ = nix::sys::wait::waitpid(pid, None);
            return Err(Error::Init(e));
        }
        Some(m) => return Err(Error::Init(format!("unexpected {m:?} from exec process"))),
    }
    if let Some(pf) = &o.pid_file {
        super::create::write_pid_file(pf, pid.as_raw())?;
    }
    if o.detach {
        return Ok(0);
    }
    super::wait_forwarding(Pid::from_raw(pid.as_raw()))
}

/// What the exec'd process needs, prepared before the fork.
struct ChildCtx<'a> {
    p: &'a Process,
    procs: &'a [PathBuf],
    join: &'a [(CloneFlags, OwnedFd, LinuxNamespaceType)],
    console: Option<OwnedFd>,
    seccomp: Option<&'a oci_spec::runtime::LinuxSeccomp>,
    seccomp_program: Option<crate::process::seccomp::Program>,
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    preserve_fds: &'a crate::process::PassedFds,
    /// The seccomp agent's socket and the container state to send it.
    listener: Option<(OwnedFd, serde_json::Value)>,
    /// The container's root, when it shares our mount namespace.
    root: Option<&'a OwnedFd>,
}

fn child(c: ChildCtx<'_>) -> Result<std::convert::Infallible> {
    let ChildCtx {
        p,
        procs,
        join,
        console,
        seccomp,
        seccomp_program,
        personality,
        preserve_fds,
        listener,
        root,
    } = c;
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)".into())?;
    // Our pid as the host sees it, while /proc is still the host's.
    let host_pid: i32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0);
    for f in procs {
        std::fs::write(f, "0").ctx(|| format!("join cgroup {}", f.display()))?;
    }
    for (flag, fd, t) in join {
        if !matches!(t, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
            nix::sched::setns(fd, *flag).ctx(|| format!("join {} namespace", ns_file(*t)))?;
        }
    }
    if let Some(root) = root {
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(root))
            .ctx(|| "chdir to the container's root".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot to the container's root".into())?;
    }
    finalize::enter_cwd(p.cwd(), false)?;
    if let Some(sock) = &console {
        let size = p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::process::tty::setup(sock, size)?;
    }
    drop(console);
    finalize::set_rlimits(p)?;
    finalize::set_attributes(p, personality)?;
    if let Some(mask) = p.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            mask as libc::mode_t,
        ));
    }
    if let Some(adj) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| "process.oomScoreAdj".into())?;
    }
    let mut prepared = finalize::prepare(p, seccomp, seccomp_program)?;
    if let (Some((socket, state)), Some(sec)) = (listener, seccomp) {
        let state = crate::process::seccomp::process_state(sec, host_pid, state);
        prepared.listener = Some(crate::process::seccomp::Listener { socket, state });
    }
    preserve_fds.keep_only_these()?;
    finalize::exec(p, prepared)
}
