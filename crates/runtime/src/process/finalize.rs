//! The last steps of every container process (init and exec): environment, executable
//! lookup, rlimits, user and groups, the five capability sets, no_new_privs, seccomp, and
//! `execve`. The order matters and follows runc: the bounding set is dropped while we still
//! hold CAP_SETPCAP; seccomp is loaded last when no_new_privs allows it, else before the
//! capabilities go.

use super::seccomp;
use crate::error::{config_err, Context, Error, Result};
use caps::{CapSet, Capability, CapsHashSet};
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxSeccomp, Process};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything computed before the container reports "created", so that a missing
/// executable or a bad seccomp profile fails `create`, not `start`.
pub struct Prepared {
    exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    seccomp: Option<seccomp::Filter>,
    /// The seccomp agent to hand the notify descriptor to, if the profile has one.
    pub listener: Option<seccomp::Listener>,
}

fn cstr(s: &str, field: &str) -> Result<CString> {
    CString::new(s).map_err(|_| config_err(field, "contains a NUL byte"))
}

/// Finds `args[0]` like execvp, in the filesystem we see now (the container's).
pub fn lookup(prog: &str, env: &[String]) -> Result<PathBuf> {
    let ok = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        // runc's wording ("no such file or directory", "permission denied", "executable
        // file not found in $PATH"): podman maps these to exit codes 127 and 126.
        return match std::fs::metadata(&p) {
            _ if ok(&p) => Ok(p),
            Err(_) => Err(config_err(
                "process.args[0]",
                format!("exec: {prog:?}: no such file or directory in the container"),
            )),
            Ok(_) => Err(config_err(
                "process.args[0]",
                format!("exec: {prog:?}: permission denied (not an executable file)"),
            )),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(prog))
        .find(|p| ok(p))
        .ok_or_else(|| {
            config_err(
                "process.args[0]",
                format!(
                    "exec: {prog:?}: executable file not found in $PATH ({path}) of the container"
                ),
            )
        })
}

fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 7 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into())
}

/// Resolves the executable, builds argv/envp and readies seccomp: the program the runtime
/// made before `clone` (seccomp::program), else the profile compiled here.
pub fn prepare(
    p: &Process,
    sec: Option<&LinuxSeccomp>,
    program: Option<seccomp::Program>,
) -> Result<Prepared> {
    let args = p.args().as_deref().unwrap_or_default();
    let first = args
        .first()
        .ok_or_else(|| config_err("process.args", "must not be empty"))?;
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user().uid())));
    }
    let exe = lookup(first, &env)?;
    Ok(Prepared {
        exe: cstr(&exe.to_string_lossy(), "process.args[0]")?,
        argv: args
            .iter()
            .map(|a| cstr(a, "process.args"))
            .collect::<Result<_>>()?,
        envp: env
            .iter()
            .map(|e| cstr(e, "process.env"))
            .collect::<Result<_>>()?,
        seccomp: match (sec, program) {
            (Some(spec), Some(prog)) => Some(seccomp::Filter::Program {
                prog,
                spec: spec.clone(),
            }),
            (Some(spec), None) => Some(seccomp::Filter::Compiled(seccomp::compile(spec)?)),
            (None, _) => None,
        },
        listener: None,
    })
}

fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => return None,
    })
}

fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Applies `process.rlimits`.
pub fn set_rlimits(p: &Process) -> Result<()> {
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let name = serde_name(&r.typ());
        let res = resource(&name).ok_or_else(|| {
            config_err(
                format!("process.rlimits[{i}].type"),
                format!("unknown {name}"),
            )
        })?;
        setrlimit(res, r.soft(), r.hard()).ctx(|| {
            format!(
                "process.rlimits[{i}]: set {name} to {}/{}",
                r.soft(),
                r.hard()
            )
        })?;
    }
    Ok(())
}

fn capset(set: &Option<oci_spec::runtime::Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| Capability::from_str(&serde_name(c)).ok())
        .collect()
}

/// Logs a warning for every capability the process asks for that it cannot get: one this
/// kernel does not know, or one missing from our own bounding set (a nested container, a
/// host that dropped it). They are left out, not an error (runtime-spec config.md
/// "capabilities": a runtime that cannot grant one should warn; runc logs the same).
/// Called by the runtime before it clones, so the warning goes to its log, never to the
/// container's stderr.
pub fn warn_unavailable_caps(p: &Process) {
    let Some(c) = p.capabilities().as_ref() else {
        return;
    };
    let mut missing: Vec<String> = Vec::new();
    for set in [
        c.bounding(),
        c.effective(),
        c.permitted(),
        c.inheritable(),
        c.ambient(),
    ] {
        for cap in set.iter().flatten() {
            let name = serde_name(cap);
            let held = Capability::from_str(&name)
                .ok()
                .is_some_and(|k| caps::has_cap(None, CapSet::Bounding, k).unwrap_or(false));
            if !held && !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    if !missing.is_empty() {
        crate::log::warn(&format!(
            "process.capabilities: {} not in the bounding set of this host (or unknown to its \
             kernel); left out",
            missing.join(", ")
        ));
    }
}

/// A config set limited to `held`, the bounding set left after the config's was applied:
/// the process cannot gain a capability outside it, so asking for one this kernel does not
/// know (a profile for a newer kernel, "all capabilities") or one the host's own bounding
/// set lacks (a nested container) leaves it out instead of failing capset with EPERM.
fn capset_within(set: &Option<oci_spec::runtime::Capabilities>, held: &CapsHashSet) -> CapsHashSet {
    capset(set).intersection(held).copied().collect()
}

fn cpu_list(s: &str, field: &str) -> Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let bad = || config_err(field, format!("invalid cpu list {s:?}"));
        let (a, b): (usize, usize) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        for cpu in a..=b {
            set.set(cpu).map_err(|_| bad())?;
        }
    }
    Ok(set)
}

/// The process attributes that need no privilege change: I/O priority, scheduler, CPU
/// affinity (`execCPUAffinity.final`) and the execution domain (`linux.personality`).
pub fn set_attributes(
    p: &Process,
    personality: Option<&oci_spec::runtime::LinuxPersonality>,
) -> Result<()> {
    if let Some(io) = p.io_priority() {
        let class = match serde_name(&io.class()).as_str() {
            "IOPRIO_CLASS_RT" => 1,
            "IOPRIO_CLASS_BE" => 2,
            _ => 3,
        };
        sys::process::set_io_priority(class, io.priority() as u32)
            .ctx(|| "process.ioPriority: ioprio_set".into())?;
    }
    if let Some(s) = p.scheduler() {
        let policy = match serde_name(&s.policy()).as_str() {
            "SCHED_FIFO" => 1,
            "SCHED_RR" => 2,
            "SCHED_BATCH" => 3,
            "SCHED_ISO" => 4,
            "SCHED_IDLE" => 5,
            "SCHED_DEADLINE" => 6,
            _ => 0,
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            flags |= match serde_name(f).as_str() {
                "SCHED_RESET_ON_FORK" => 0x01,
                "SCHED_FLAG_RECLAIM" => 0x02,
                "SCHED_FLAG_DL_OVERRUN" => 0x04,
                "SCHED_FLAG_KEEP_POLICY" => 0x08,
                "SCHED_FLAG_KEEP_PARAMS" => 0x10,
                "SCHED_FLAG_UTIL_CLAMP_MIN" => 0x20,
                "SCHED_FLAG_UTIL_CLAMP_MAX" => 0x40,
                _ => 0,
            };
        }
        let attr = sys::process::SchedAttr {
            policy,
            flags,
            nice: s.nice().unwrap_or(0),
            priority: s.priority().unwrap_or(0).max(0) as u32,
            runtime: s.runtime().unwrap_or(0),
            deadline: s.deadline().unwrap_or(0),
            period: s.period().unwrap_or(0),
        };
        sys::process::set_scheduler(&attr).ctx(|| "process.scheduler: sched_setattr".into())?;
    }
    if let Some(cpus) = p
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().clone())
    {
        let set = cpu_list(&cpus, "process.execCPUAffinity.final")?;
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
            .ctx(|| "process.execCPUAffinity.final: sched_setaffinity".into())?;
    }
    if let Some(pers) = personality {
        if pers.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(config_err(
                "linux.personality.flags",
                "personality flags are not supported",
            ));
        }
        let v: u64 = if serde_name(&pers.domain()) == "LINUX32" {
            0x0008
        } else {
            0
        };
        sys::process::set_personality(v).ctx(|| "linux.personality: personality".into())?;
    }
    Ok(())
}

/// Switches user and capabilities, loads seccomp and executes the process. Returns only
/// on failure.
pub fn exec(p: &Process, prep: Prepared) -> Result<Infallible> {
    finish(p, prep)?.exec()
}

/// The process, ready for `execve`: user, capabilities and seccomp are in place.
pub struct Finished {
    exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Finished {
    /// Executes the process. Returns only on failure.
    pub fn exec(self) -> Result<Infallible> {
        nix::unistd::execve(&self.exe, &self.argv, &self.envp)
            .ctx(|| format!("exec {}", self.exe.to_string_lossy()))
    }
}

/// Everything before `execve`: switches user and capabilities and loads seccomp (handing
/// the notify descriptor to the seccomp agent, if any). The init does this before it
/// parks until `start`, as runc does, so an agent gets its descriptor during `create`.
pub fn finish(p: &Process, prep: Prepared) -> Result<Finished> {
    // Before seccomp, which may forbid rt_sigaction: the program gets SIGPIPE's default.
    sys::signal::default_sigpipe().ctx(|| "reset SIGPIPE".into())?;
    // `run` and `exec` block the signals they forward before the init is cloned, and a
    // blocked mask survives execve: the program starts with none blocked (a shell's `wait`
    // would sleep forever with SIGCHLD blocked).
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .ctx(|| "unblock signals".into())?;
    super::lsm::apply(
        p.apparmor_profile().as_deref(),
        p.selinux_label().as_deref(),
    )?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    let caps = p.capabilities().as_ref();
    if let Some(c) = caps {
        let keep = capset(c.bounding());
        for cap in caps::all() {
            if !keep.contains(&cap) {
                // Capabilities this kernel does not know fail with EINVAL: nothing to drop.
                let _ = caps::drop(None, CapSet::Bounding, cap);
            }
        }
    }
    if !nnp {
        if let Some(f) = &prep.seccomp {
            seccomp::load(f, prep.listener.as_ref())?;
        }
    }
    let user = p.user();
    if caps.is_some() {
        nix::sys::prctl::set_keepcaps(true).ctx(|| "keep capabilities across setuid".into())?;
    }
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        // Without CAP_SETGID or with setgroups denied, only an empty list is acceptable.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        r => r.ctx(|| "process.user.additionalGids: setgroups".into())?,
    }
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("process.user.gid: setresgid {gid}"))?;
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("process.user.uid: setresuid {uid}"))?;
    if let Some(c) = caps {
        let cap_err = |set: &'static str| {
            move |e: caps::errors::CapsError| {
                Error::Init(format!("process.capabilities.{set}: {e}"))
            }
        };
        // Effective must stay a subset of permitted at every step: shrink it first.
        // The bounding set now: the config's, less what this kernel or host lacks (probed
        // only for the capabilities the config keeps).
        let held: CapsHashSet = capset(c.bounding())
            .into_iter()
            .filter(|cap| caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false))
            .collect();
        caps::set(
            None,
            CapSet::Effective,
            &capset_within(c.effective(), &held),
        )
        .map_err(cap_err("effective"))?;
        caps::set(
            None,
            CapSet::Permitted,
            &capset_within(c.permitted(), &held),
        )
        .map_err(cap_err("permitted"))?;
        caps::set(
            None,
            CapSet::Inheritable,
            &capset_within(c.inheritable(), &held),
        )
        .map_err(cap_err("inheritable"))?;
        // An ambient capability needs to be permitted and inheritable; like runc, skip
        // the ones that are not rather than fail.
        let _ = caps::clear(None, CapSet::Ambient);
        for cap in capset_within(c.ambient(), &held) {
            let _ = caps::raise(None, CapSet::Ambient, cap);
        }
        let _ = nix::sys::prctl::set_keepcaps(false);
    }
    if nnp {
        nix::sys::prctl::set_no_new_privs().ctx(|| "set no_new_privs".into())?;
        if let Some(f) = &prep.seccomp {
            seccomp::load(f, prep.listener.as_ref())?;
        }
    }
    Ok(Finished {
        exe: prep.exe,
        argv: prep.argv,
        envp: prep.envp,
    })
}

/// Makes `cwd` (`process.cwd`) the working directory, resolved inside the container's root
/// (`openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`), so that neither a symlink in the
/// image nor a magic link such as `/proc/self/fd/N` to a leaked host descriptor can start
/// the process outside the container (CVE-2024-21626). With `create`, missing directories
/// are made inside the root, as runc does for the init.
pub fn enter_cwd(cwd: &Path, create: bool) -> Result<()> {
    use std::os::fd::AsFd;
    let root: std::os::fd::OwnedFd = std::fs::File::open("/")
        .ctx(|| "open / to resolve process.cwd".into())?
        .into();
    let dir = match super::rootfs::open_in(root.as_fd(), cwd) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) if create => super::rootfs::mkdir_all_in(root.as_fd(), cwd)?,
        Err(e) => {
            return Err(Error::Sys {
                what: format!("process.cwd: resolve {} in the container", cwd.display()),
                source: e,
            })
        }
    };
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .ctx(|| format!("process.cwd: chdir {}", cwd.display()))?;
    // Belt and braces: a working directory outside our root has no name from here
    // (getcwd fails with ENOENT, the kernel's "(unreachable)" path).
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(config_err(
            "process.cwd",
            format!("{} is outside the container's root", cwd.display()),
        )),
    }
}
