//! The seccomp profile of a container process (`berth run`, the builder's RUN steps): the
//! default allow-list, equivalent to Docker's and Podman's default profile, and profiles in
//! Docker's JSON format (`--security-opt seccomp=PROFILE.json`: `defaultAction`,
//! `architectures`/`archMap`, `syscalls[{names, action, errnoRet, args, includes,
//! excludes}]`), both turned into config.json's `linux.seccomp` (runtime-spec
//! config-linux.md "Seccomp") for a given capability set: a rule that `includes` a
//! capability applies only when the process has it, one that `excludes` it only when it
//! does not, so `--cap-add SYS_ADMIN` widens the profile as it does with Docker.
//!
//! The default profile is built from the tables below, not parsed from JSON at every start.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// What is wrong with a seccomp profile; `field` is its JSON path in the profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {path}: {msg}")]
    Read { path: String, msg: String },
    #[error("seccomp profile: {field}: {msg}")]
    Invalid { field: String, msg: String },
}

fn invalid(field: impl Into<String>, msg: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// A profile in Docker's format (moby `profiles/seccomp/default.json`; the same shape as
/// containers/common `seccomp.json`). Unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    pub syscalls: Option<Vec<Rule>>,
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
}

/// `archMap[]`: a native architecture and the ones its kernel also runs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// `syscalls[]`: a rule for some system calls, under conditions.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// The old single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

/// A condition on one argument (`MASKED_EQ`: `value` is the mask, `valueTwo` the datum).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// `includes` / `excludes`: capabilities, architectures (Go's names: amd64, x86, …), and
/// (includes only) the lowest kernel version.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

#[rustfmt::skip]
const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
];

/// Go's architecture names, as `includes.arches`/`excludes.arches` spell them.
#[rustfmt::skip]
const GO_ARCHES: &[&str] = &[
    "amd64", "x86", "386", "x32", "arm", "arm64", "ppc", "ppc64", "ppc64le", "s390", "s390x",
    "mips", "mipsle", "mips64", "mips64le", "mips64n32", "mipsel64n32", "riscv64", "loong64",
    "parisc", "parisc64",
];

#[cfg(target_arch = "x86_64")]
const NATIVE_SCMP: &str = "SCMP_ARCH_X86_64";
#[cfg(target_arch = "x86_64")]
const NATIVE_GO: &str = "amd64";
#[cfg(target_arch = "aarch64")]
const NATIVE_SCMP: &str = "SCMP_ARCH_AARCH64";
#[cfg(target_arch = "aarch64")]
const NATIVE_GO: &str = "arm64";

/// `capability(7)` names (with the `CAP_` prefix).
#[rustfmt::skip]
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability name in its `CAP_` form (`sys_admin`, `SYS_ADMIN` and `CAP_SYS_ADMIN` are
/// one), if it is one.
pub fn cap_name(s: &str) -> Option<&'static str> {
    let up = s.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    ALL_CAPS.iter().copied().find(|c| *c == full)
}

/// System calls every container may make (the kernel's x86-64 and i386 names; names
/// another architecture or an older kernel lacks are skipped by the runtime).
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // files and directories
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod",
    "mknodat", "name_to_handle_at", "newfstatat", "open", "openat", "openat2", "pread64",
    "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "removexattr", "rename", "renameat", "renameat2", "rmdir",
    "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64", "statfs", "statfs64",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
    "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
    "utimes", "vmsplice", "write", "writev", "fanotify_mark", "cachestat",
    // memory
    "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock",
    "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    "map_shadow_stack",
    // processes, threads, signals
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork",
    "futex", "futex_time64", "futex_waitv", "futex_wait", "futex_wake", "futex_requeue",
    "get_robust_list", "get_thread_area", "getcpu", "getegid", "getegid32", "geteuid",
    "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getpgid", "getpgrp",
    "getpid", "getppid", "getpriority", "getresgid", "getresgid32", "getresuid", "getresuid32",
    "getrlimit", "getrusage", "getsid", "gettid", "getuid", "getuid32", "ioprio_get",
    "ioprio_set", "kill", "modify_ldt", "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64",
    "process_mrelease", "restart_syscall", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid",
    "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setuid", "setuid32",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "tgkill", "tkill",
    "ugetrlimit", "vfork", "wait4", "waitid", "waitpid", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self",
    // time
    "alarm", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "getitimer", "gettimeofday", "nanosleep", "setitimer", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "adjtimex",
    // events, I/O multiplexing, asynchronous I/O
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "io_cancel",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "ioctl", "pause",
    "pipe", "pipe2", "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select",
    "_newselect",
    // sockets (socket itself is conditional, below)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg",
    "sendmsg", "sendto", "setsockopt", "shutdown", "socketpair",
    // System V and POSIX IPC (in the container's ipc namespace)
    "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
    "shmget",
    // system information
    "getrandom", "sysinfo", "uname",
];

/// Capability-conditioned groups: allowed only when the process holds the capability.
#[rustfmt::skip]
const BY_CAP: &[(&str, &[&str])] = &[
    // Mounts, namespaces, the new mount API, quotas, host and domain names, the kernel log.
    ("CAP_SYS_ADMIN", &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
        "umount2", "unshare",
    ]),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYS_BOOT", &["reboot", "kexec_load", "kexec_file_load"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &[
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
    ]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The namespace flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
/// NEWPID | NEWNET. Without CAP_SYS_ADMIN, clone is allowed only with none of them.
const CLONE_NS_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// personality(2) personas allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
/// and 0xffffffff (a query).
const PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

const AF_VSOCK: u64 = 40;
const ENOSYS: u32 = 38;
const EPERM: u32 = 1;

fn names(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| s.to_string()).collect())
}

fn allow(list: &[&str]) -> Rule {
    Rule {
        names: names(list),
        action: "SCMP_ACT_ALLOW".into(),
        ..Rule::default()
    }
}

fn caps_filter(caps: &[&str]) -> Option<Filter> {
    Some(Filter {
        caps: names(caps),
        ..Filter::default()
    })
}

fn arg(index: u32, op: &str, value: u64) -> Arg {
    Arg {
        index,
        value,
        value_two: 0,
        op: op.into(),
    }
}

/// The default profile: everything not allowed fails with EPERM.
pub fn default_profile() -> Profile {
    let mut rules = vec![allow(ALLOWED)];
    // Before 4.8 a tracer could change a traced call after seccomp had checked it.
    rules.push(Rule {
        includes: Some(Filter {
            min_kernel: Some("4.8".into()),
            ..Filter::default()
        }),
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    rules.push(Rule {
        args: Some(vec![arg(0, "SCMP_CMP_NE", AF_VSOCK)]),
        comment: Some("no vsock: a way to the host outside the network namespace".into()),
        ..allow(&["socket"])
    });
    for p in PERSONAS {
        rules.push(Rule {
            args: Some(vec![arg(0, "SCMP_CMP_EQ", *p)]),
            ..allow(&["personality"])
        });
    }
    for (cap, list) in BY_CAP {
        rules.push(Rule {
            includes: caps_filter(&[cap]),
            ..allow(list)
        });
    }
    rules.push(Rule {
        args: Some(vec![Arg {
            index: 0,
            value: CLONE_NS_FLAGS,
            value_two: 0,
            op: "SCMP_CMP_MASKED_EQ".into(),
        }]),
        excludes: caps_filter(&["CAP_SYS_ADMIN"]),
        comment: Some("threads and processes, but no new namespaces".into()),
        ..allow(&["clone"])
    });
    rules.push(Rule {
        names: names(&["clone3"]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        excludes: caps_filter(&["CAP_SYS_ADMIN"]),
        comment: Some(
            "its flags are behind a pointer: ENOSYS makes libc fall back to clone".into(),
        ),
        ..Rule::default()
    });
    rules.push(Rule {
        names: names(&["io_uring_setup", "io_uring_enter", "io_uring_register"]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        comment: Some(
            "io_uring runs system calls past seccomp and has been a way out of containers \
             (Docker 25 and containerd dropped it from their defaults): ENOSYS makes \
             libraries fall back to epoll"
                .into(),
        ),
        ..Rule::default()
    });
    rules.push(Rule {
        names: names(&["socketcall"]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        comment: Some(
            "32-bit socket multiplexer: its arguments are behind a pointer, so the vsock \
             filter on socket() could not apply; ENOSYS makes libc use the direct calls \
             (Linux 4.3 and later)"
                .into(),
        ),
        ..Rule::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(EPERM),
        arch_map: Some(vec![
            ArchMap {
                architecture: "SCMP_ARCH_X86_64".into(),
                sub_architectures: names(&["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            },
            ArchMap {
                architecture: "SCMP_ARCH_AARCH64".into(),
                sub_architectures: names(&["SCMP_ARCH_ARM"]),
            },
        ]),
        syscalls: Some(rules),
        ..Profile::default()
    }
}

/// Reads a Docker-format profile file (at most 4 MiB).
pub fn read_profile(path: &Path) -> Result<Profile, SeccompError> {
    use std::io::Read;
    let err = |msg: String| SeccompError::Read {
        path: path.display().to_string(),
        msg,
    };
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(4 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    parse_profile(&bytes).map_err(|e| match e {
        SeccompError::Invalid { field, msg } => err(format!("{field}: {msg}")),
        other => other,
    })
}

/// Parses a Docker-format profile; a field of the wrong type or an unknown one is named.
pub fn parse_profile(bytes: &[u8]) -> Result<Profile, SeccompError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let p = e.path().to_string();
        invalid(
            if p == "." { "(document)".into() } else { p },
            e.into_inner().to_string(),
        )
    })
}

fn check_action(field: String, a: &str) -> Result<(), SeccompError> {
    if ACTIONS.contains(&a) {
        Ok(())
    } else {
        Err(invalid(field, format!("unknown action {a:?}")))
    }
}

fn check_arch(field: String, a: &str) -> Result<(), SeccompError> {
    if SCMP_ARCHES.contains(&a) {
        Ok(())
    } else {
        Err(invalid(field, format!("unknown architecture {a:?}")))
    }
}

/// "5.8" → (5, 8).
fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

fn running_kernel() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| kernel_version(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

impl Profile {
    /// config.json's `linux.seccomp` for a process with capabilities `caps` (`CAP_` names)
    /// on this machine. Rules for other architectures, kernels or capability sets are left
    /// out; everything unknown is refused, naming its field.
    pub fn to_linux_seccomp(&self, caps: &[&str]) -> Result<Value, SeccompError> {
        self.to_linux_seccomp_for(caps, running_kernel())
    }

    fn to_linux_seccomp_for(
        &self,
        caps: &[&str],
        kernel: (u32, u32),
    ) -> Result<Value, SeccompError> {
        check_action("defaultAction".into(), &self.default_action)?;
        let mut arches: Vec<String> = Vec::new();
        for (i, a) in self.architectures.iter().flatten().enumerate() {
            check_arch(format!("architectures[{i}]"), a)?;
            arches.push(a.clone());
        }
        for (i, m) in self.arch_map.iter().flatten().enumerate() {
            check_arch(format!("archMap[{i}].architecture"), &m.architecture)?;
            for (j, s) in m.sub_architectures.iter().flatten().enumerate() {
                check_arch(format!("archMap[{i}].subArchitectures[{j}]"), s)?;
            }
            if m.architecture == NATIVE_SCMP {
                arches.push(m.architecture.clone());
                arches.extend(m.sub_architectures.iter().flatten().cloned());
            }
        }
        arches.dedup();
        let mut flags = Vec::new();
        for (i, f) in self.flags.iter().flatten().enumerate() {
            if !FLAGS.contains(&f.as_str()) {
                return Err(invalid(
                    format!("flags[{i}]"),
                    format!("unknown flag {f:?}"),
                ));
            }
            flags.push(f.clone());
        }
        let has_cap = |field: String, c: &str| -> Result<bool, SeccompError> {
            let name =
                cap_name(c).ok_or_else(|| invalid(field, format!("unknown capability {c:?}")))?;
            Ok(caps.contains(&name))
        };
        let mut out = Vec::new();
        for (i, r) in self.syscalls.iter().flatten().enumerate() {
            let field = format!("syscalls[{i}]");
            check_action(format!("{field}.action"), &r.action)?;
            let mut list: Vec<String> = r.names.iter().flatten().cloned().collect();
            list.extend(r.name.iter().cloned());
            if list.is_empty() {
                return Err(invalid(format!("{field}.names"), "no system call named"));
            }
            if let Some(n) = list.iter().find(|n| {
                n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                return Err(invalid(
                    format!("{field}.names"),
                    format!("{n:?} is not a system call name"),
                ));
            }
            let mut args = Vec::new();
            for (j, a) in r.args.iter().flatten().enumerate() {
                if a.index > 5 {
                    return Err(invalid(
                        format!("{field}.args[{j}].index"),
                        format!("{} is not an argument index (0 to 5)", a.index),
                    ));
                }
                if !OPS.contains(&a.op.as_str()) {
                    return Err(invalid(
                        format!("{field}.args[{j}].op"),
                        format!("unknown operator {:?}", a.op),
                    ));
                }
                let mut v = json!({"index": a.index, "value": a.value, "op": a.op});
                if a.value_two != 0 {
                    v["valueTwo"] = json!(a.value_two);
                }
                args.push(v);
            }
            // Does the rule apply here? (moby: every included cap held, no excluded one;
            // the native arch among included arches, not among excluded ones.)
            let mut applies = true;
            for (what, filter, include) in [
                ("includes", &r.includes, true),
                ("excludes", &r.excludes, false),
            ] {
                let Some(f) = filter else { continue };
                for (j, c) in f.caps.iter().flatten().enumerate() {
                    let held = has_cap(format!("{field}.{what}.caps[{j}]"), c)?;
                    applies &= if include { held } else { !held };
                }
                let mut native = false;
                for (j, a) in f.arches.iter().flatten().enumerate() {
                    if !GO_ARCHES.contains(&a.as_str()) {
                        return Err(invalid(
                            format!("{field}.{what}.arches[{j}]"),
                            format!("unknown architecture {a:?}"),
                        ));
                    }
                    native |= a == NATIVE_GO;
                }
                if f.arches.as_ref().is_some_and(|a| !a.is_empty()) {
                    applies &= if include { native } else { !native };
                }
                if let Some(k) = &f.min_kernel {
                    let min = kernel_version(k).ok_or_else(|| {
                        invalid(
                            format!("{field}.{what}.minKernel"),
                            format!("{k:?} is not a kernel version (like 5.8)"),
                        )
                    })?;
                    if include {
                        applies &= kernel >= min;
                    } else {
                        return Err(invalid(
                            format!("{field}.{what}.minKernel"),
                            "is only meaningful in includes",
                        ));
                    }
                }
            }
            if !applies {
                continue;
            }
            let mut v = json!({"names": list, "action": r.action});
            if let Some(e) = r.errno_ret {
                v["errnoRet"] = json!(e);
            }
            if !args.is_empty() {
                v["args"] = json!(args);
            }
            out.push(v);
        }
        let mut s = json!({"defaultAction": self.default_action, "syscalls": out});
        if let Some(e) = self.default_errno_ret {
            s["defaultErrnoRet"] = json!(e);
        }
        if !arches.is_empty() {
            s["architectures"] = json!(arches);
        }
        if !flags.is_empty() {
            s["flags"] = json!(flags);
        }
        if let Some(p) = &self.listener_path {
            s["listenerPath"] = json!(p);
        }
        if let Some(m) = &self.listener_metadata {
            s["listenerMetadata"] = json!(m);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_for<'a>(s: &'a Value, name: &str) -> Vec<&'a Value> {
        s["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|n| n == name)
            })
            .collect()
    }

    #[test]
    fn default_profile_follows_the_capabilities() {
        let p = default_profile();
        let plain = p
            .to_linux_seccomp_for(crate::user::DEFAULT_CAPS, (6, 1))
            .expect("default");
        assert_eq!(plain["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(plain["defaultErrnoRet"], 1);
        assert_eq!(
            plain["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        for denied in [
            "mount", "unshare", "setns", "keyctl", "add_key", "bpf", "reboot",
        ] {
            assert!(rules_for(&plain, denied).is_empty(), "{denied} allowed");
        }
        // chroot: CAP_SYS_CHROOT is a default capability.
        assert_eq!(rules_for(&plain, "chroot").len(), 1);
        let clone = rules_for(&plain, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone[0]["args"][0]["value"], 0x7E02_0000u64);
        assert_eq!(rules_for(&plain, "clone3")[0]["errnoRet"], 38);
        for enosys in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "socketcall",
        ] {
            let r = rules_for(&plain, enosys);
            assert_eq!(r.len(), 1, "{enosys}");
            assert_eq!(r[0]["action"], "SCMP_ACT_ERRNO", "{enosys}");
            assert_eq!(r[0]["errnoRet"], 38, "{enosys}");
        }
        assert_eq!(rules_for(&plain, "personality").len(), 5);
        assert_eq!(rules_for(&plain, "socket")[0]["args"][0]["value"], 40);
        assert_eq!(rules_for(&plain, "ptrace").len(), 1);
        let old = p
            .to_linux_seccomp_for(crate::user::DEFAULT_CAPS, (4, 4))
            .expect("old kernel");
        assert!(rules_for(&old, "ptrace").is_empty());

        let mut caps = crate::user::DEFAULT_CAPS.to_vec();
        caps.push("CAP_SYS_ADMIN");
        let admin = p.to_linux_seccomp_for(&caps, (6, 1)).expect("admin");
        for allowed in ["mount", "unshare", "setns", "clone3"] {
            let r = rules_for(&admin, allowed);
            assert!(
                r.iter()
                    .any(|r| r["action"] == "SCMP_ACT_ALLOW" && r["args"].is_null()),
                "{allowed}: {r:?}"
            );
        }
        assert!(rules_for(&admin, "clone3")
            .iter()
            .all(|r| r["action"] == "SCMP_ACT_ALLOW"));
    }

    #[test]
    fn docker_profiles_are_read_and_checked() {
        let ok = br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"name": "mount", "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["s390x"]}},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.0"}}
        ]}"#;
        let s = parse_profile(ok)
            .and_then(|p| p.to_linux_seccomp_for(&["CAP_CHOWN"], (6, 1)))
            .expect("valid");
        assert_eq!(rules_for(&s, "keyctl")[0]["errnoRet"], 13);
        assert_eq!(rules_for(&s, "mount").len(), 1);
        assert!(rules_for(&s, "ptrace").is_empty());
        assert!(rules_for(&s, "chmod").is_empty());

        let field_of = |text: &str| match parse_profile(text.as_bytes())
            .and_then(|p| p.to_linux_seccomp_for(&[], (6, 1)))
        {
            Err(SeccompError::Invalid { field, .. }) => field,
            other => format!("{other:?}"),
        };
        assert_eq!(
            field_of(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
            "defaultAction"
        );
        assert_eq!(
            field_of(r#"{"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}"#),
            "bogus"
        );
        assert_eq!(
            field_of(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "whatever": 1}]}"#
            ),
            "syscalls[0].whatever"
        );
        assert_eq!(
            field_of(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_MAYBE"}]}"#
            ),
            "syscalls[0].action"
        );
        assert_eq!(
            field_of(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#
            ),
            "syscalls[0].args[0].index"
        );
        assert_eq!(
            field_of(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_WISHFUL"]}}]}"#
            ),
            "syscalls[0].includes.caps[0]"
        );
        assert_eq!(
            field_of(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#),
            "architectures[0]"
        );
        assert_eq!(
            field_of(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#
            ),
            "syscalls[0].names"
        );
    }

    #[test]
    fn cap_names() {
        assert_eq!(cap_name("sys_admin"), Some("CAP_SYS_ADMIN"));
        assert_eq!(cap_name("CAP_NET_RAW"), Some("CAP_NET_RAW"));
        assert_eq!(cap_name("FLY"), None);
    }
}
