//! Compiling `linux.seccomp` (runtime-spec config-linux.md "Seccomp") into a libseccomp
//! filter. The filter is compiled before the container reports "created" (so a bad profile
//! fails `create`) and loaded as the last step before `execve`.
//!
//! Compiling a large profile (Docker's default: ~350 rules) costs tens of milliseconds, so
//! the runtime compiles each distinct profile once, before `clone`, and caches the exported
//! classic-BPF program under `<root>/.seccomp-cache/<sha256>.bpf`; the init then only
//! loads the program (`seccomp(SECCOMP_SET_MODE_FILTER)`, berth-sys) at the same point as
//! before. The key covers the profile, the architecture, libseccomp's version and
//! [`CODE_VERSION`]; a file is used only when it is a regular file of ours that nobody
//! else may write, and its digest matches (else it is compiled and replaced).

use crate::error::{config_err, Error, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Bump whenever [`compile`] or [`flags_of`] changes what a profile compiles to: old cache
/// entries then stop matching.
pub const CODE_VERSION: &str = "berth-seccomp-1";
/// The cache directory, under the runtime's `--root`.
pub const CACHE_DIR: &str = ".seccomp-cache";
/// A cache file: this magic, the SHA-256 of the program, the program.
const MAGIC: &[u8; 8] = b"BSECBPF1";
const HEADER: usize = MAGIC.len() + 32;

const EPERM: i32 = 1;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno.map_or(EPERM, |e| e as i32)),
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.map_or(EPERM as u16, |e| e as u16))
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

/// The libseccomp comparison and the datum it compares against.
fn compare(a: &LinuxSeccompArg) -> (ScmpCompareOp, u64) {
    // config-linux.md: for SCMP_CMP_MASKED_EQ, `value` is the mask and `valueTwo` the datum
    // (`(arg & value) == valueTwo`); libseccomp carries the mask in the operator.
    match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(a.value()),
            a.value_two().unwrap_or(0),
        ),
        o => (op(o), a.value()),
    }
}

fn op(o: LinuxSeccompOperator) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(0),
    }
}

fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Builds the filter. Unknown syscall names are skipped (as runc does: profiles list
/// syscalls of newer kernels); everything else that is wrong names its field.
pub fn compile(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let lib = |e: libseccomp::error::SeccompError| Error::Seccomp(e.to_string());
    if uses_notify(s) && s.listener_path().is_none() {
        return Err(config_err(
            "linux.seccomp.listenerPath",
            "required by SCMP_ACT_NOTIFY",
        ));
    }
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new_filter(default).map_err(lib)?;
    // The process's noNewPrivileges decides NNP, not libseccomp.
    ctx.set_ctl_nnp(false).map_err(lib)?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = serde_name(a);
        let arch = ScmpArch::from_str(&name).map_err(|_| {
            config_err(
                format!("linux.seccomp.architectures[{i}]"),
                format!("unknown {name}"),
            )
        })?;
        ctx.add_arch(arch).map_err(lib)?;
    }
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map_err(lib)?,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                ctx.set_ctl_tsync(true).map_err(lib)?
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true).map_err(lib)?
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        let mut conds = Vec::new();
        for (j, a) in rule.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(config_err(
                    format!("{field}.args[{j}].index"),
                    "must be 0..5",
                ));
            }
            let (cmp, datum) = compare(a);
            conds.push(ScmpArgCompare::new(a.index() as u32, cmp, datum));
        }
        // libseccomp cannot AND two comparisons of one argument: such rules become one rule
        // per comparison, as runc does.
        let mut idx: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
        idx.sort_unstable();
        let same_arg_twice = idx.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let res = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else if same_arg_twice {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]))
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            res.map_err(|e| config_err(format!("{field}.names"), format!("{name}: {e}")))?;
        }
    }
    Ok(ctx)
}

/// The seccomp agent of `linux.seccomp.listenerPath`: its connected socket and the
/// containerProcessState document to send with the notify descriptor.
pub struct Listener {
    pub socket: std::os::fd::OwnedFd,
    pub state: serde_json::Value,
}

/// A filter ready to load: a program (cached or freshly exported), with the profile to
/// compile again should the kernel refuse the program; or a libseccomp context.
pub enum Filter {
    Program { prog: Program, spec: LinuxSeccomp },
    Compiled(ScmpFilterContext),
}

/// An exported classic-BPF program and the seccomp(2) flags the profile asks for.
#[derive(Clone, Debug)]
pub struct Program {
    pub bpf: Vec<u8>,
    pub flags: u32,
}

/// Loads a filter into the calling thread; with a listener, sends it the notify descriptor
/// (SCM_RIGHTS) and the containerProcessState (config-linux.md "Seccomp").
pub fn load(f: &Filter, listener: Option<&Listener>) -> Result<()> {
    let (prog, spec) = match f {
        Filter::Compiled(ctx) => return load_compiled(ctx, listener),
        Filter::Program { prog, spec } => (prog, spec),
    };
    match sys::seccomp::set_filter(prog.flags, &prog.bpf) {
        Ok(fd) => match (fd, listener) {
            (Some(fd), Some(l)) => send_notify_fd(l, std::os::fd::AsRawFd::as_raw_fd(&fd)),
            _ => Ok(()),
        },
        Err(errno) => {
            // Nothing was installed (the call is all or nothing): compile afresh.
            crate::log::warn(&format!(
                "seccomp program refused ({errno}, flags {:#x}): compiling the profile again",
                prog.flags
            ));
            load_compiled(&compile(spec)?, listener)
        }
    }
}

fn load_compiled(ctx: &ScmpFilterContext, listener: Option<&Listener>) -> Result<()> {
    ctx.load()
        .map_err(|e| Error::Seccomp(format!("load filter: {e}")))?;
    let Some(l) = listener else { return Ok(()) };
    let fd = ctx
        .get_notify_fd()
        .map_err(|e| Error::Seccomp(format!("notify fd: {e}")))?;
    let sent = send_notify_fd(l, fd);
    let _ = nix::unistd::close(fd);
    sent
}

fn send_notify_fd(l: &Listener, fd: std::os::fd::RawFd) -> Result<()> {
    let body = serde_json::to_vec(&l.state).unwrap_or_default();
    let fds = [fd];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&body)];
    let sent = nix::sys::socket::sendmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&l.socket),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    );
    sent.map(drop)
        .map_err(|e| Error::Seccomp(format!("send notify fd to listenerPath: {e}")))
}

/// Connects to `linux.seccomp.listenerPath` (before pivot_root, while the path resolves).
pub fn connect_listener(s: &LinuxSeccomp) -> Result<Option<std::os::fd::OwnedFd>> {
    let Some(p) = s.listener_path() else {
        return Ok(None);
    };
    let sock = std::os::unix::net::UnixStream::connect(p).map_err(|e| {
        config_err(
            "linux.seccomp.listenerPath",
            format!("{}: {e}", p.display()),
        )
    })?;
    Ok(Some(sock.into()))
}

/// The containerProcessState document sent to a seccomp agent.
pub fn process_state(s: &LinuxSeccomp, pid: i32, state: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": s.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    })
}

/// The seccomp(2) flags libseccomp's `seccomp_load` would pass for this profile.
pub fn flags_of(s: &LinuxSeccomp) -> u32 {
    use sys::seccomp::*;
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            #[allow(unreachable_patterns)]
            _ => 0,
        };
    }
    if uses_notify(s) {
        flags |= FLAG_NEW_LISTENER;
        // The kernel refuses TSYNC with NEW_LISTENER unless a failed sync reports ESRCH
        // (seccomp(2)); libseccomp adds the same flag.
        if flags & FLAG_TSYNC != 0 {
            flags |= FLAG_TSYNC_ESRCH;
        }
    }
    flags
}

fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// The cache key: the profile, the architecture, libseccomp's version, our code's version.
pub fn cache_key(s: &LinuxSeccomp) -> Result<String> {
    let mut h = Sha256::new();
    h.update(CODE_VERSION.as_bytes());
    h.update(b"\0");
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(b"\0");
    let v = libseccomp::ScmpVersion::current()
        .map_err(|e| Error::Seccomp(format!("libseccomp version: {e}")))?;
    h.update(format!("{}.{}.{}", v.major, v.minor, v.micro).as_bytes());
    h.update(b"\0");
    let body = serde_json::to_vec(s)
        .map_err(|e| Error::Seccomp(format!("serialize linux.seccomp: {e}")))?;
    h.update(&body);
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The profile's program: from the cache under `root` when a sound entry exists, else
/// compiled (a bad profile fails here, before `clone`) and stored. A cache that cannot be
/// written only costs the next container a compilation.
pub fn program(root: &Path, s: &LinuxSeccomp) -> Result<Program> {
    let flags = flags_of(s);
    let key = cache_key(s)?;
    let dir = root.join(CACHE_DIR);
    let file = dir.join(format!("{key}.bpf"));
    match read_cached(&dir, &file) {
        Ok(bpf) => {
            crate::log::debug(&format!("seccomp program {key} from the cache"));
            return Ok(Program { bpf, flags });
        }
        Err(Miss::Absent) => {}
        Err(Miss::Bad(why)) => {
            crate::log::warn(&format!(
                "seccomp cache entry {} ignored ({why}): compiling again",
                file.display()
            ));
        }
    }
    let ctx = compile(s)?;
    let bpf = export(&ctx)?;
    if let Err(e) = store(&dir, &file, &bpf) {
        crate::log::warn(&format!(
            "seccomp cache {} not written: {e}",
            file.display()
        ));
    }
    Ok(Program { bpf, flags })
}

enum Miss {
    Absent,
    Bad(String),
}

/// Ours (our uid) and not writable by group or others.
fn trusted(m: &std::fs::Metadata) -> bool {
    m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0
}

fn read_cached(dir: &Path, file: &Path) -> std::result::Result<Vec<u8>, Miss> {
    match std::fs::symlink_metadata(dir) {
        Err(_) => return Err(Miss::Absent),
        Ok(m) if !m.is_dir() || !trusted(&m) => {
            return Err(Miss::Bad(format!(
                "{} is not a directory of ours closed to others",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    // O_NOFOLLOW: a symlink is refused; O_NONBLOCK: a FIFO planted here cannot hang us.
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
        Err(e) => return Err(Miss::Bad(format!("open: {e}"))),
    };
    let m = f.metadata().map_err(|e| Miss::Bad(format!("stat: {e}")))?;
    if !m.is_file() || !trusted(&m) {
        return Err(Miss::Bad(
            "not a regular file of ours closed to others".into(),
        ));
    }
    let size = m.len() as usize;
    let max = HEADER + sys::seccomp::MAX_INSNS * sys::seccomp::INSN_SIZE;
    if size <= HEADER || size > max || !(size - HEADER).is_multiple_of(sys::seccomp::INSN_SIZE) {
        return Err(Miss::Bad(format!("size {size} is not a program's")));
    }
    let mut buf = Vec::with_capacity(size);
    f.read_to_end(&mut buf)
        .map_err(|e| Miss::Bad(format!("read: {e}")))?;
    if buf.len() != size || &buf[..MAGIC.len()] != MAGIC {
        return Err(Miss::Bad("bad header".into()));
    }
    let bpf = buf.split_off(HEADER);
    if Sha256::digest(&bpf)[..] != buf[MAGIC.len()..] {
        return Err(Miss::Bad("digest mismatch".into()));
    }
    Ok(bpf)
}

/// libseccomp's program, exported through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    let io = |what: &str, e: &dyn std::fmt::Display| Error::Seccomp(format!("export: {what}: {e}"));
    let fd = nix::sys::memfd::memfd_create(
        c"berth-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| io("memfd_create", &e))?;
    let mut f = std::fs::File::from(fd);
    ctx.export_bpf(&mut f)
        .map_err(|e| io("seccomp_export_bpf", &e))?;
    f.rewind().map_err(|e| io("seek", &e))?;
    let mut bpf = Vec::new();
    f.read_to_end(&mut bpf).map_err(|e| io("read", &e))?;
    if bpf.is_empty() || !bpf.len().is_multiple_of(sys::seccomp::INSN_SIZE) {
        return Err(Error::Seccomp(format!(
            "export: libseccomp produced {} bytes, not a program",
            bpf.len()
        )));
    }
    Ok(bpf)
}

/// Writes the entry: temp file (0600) + fsync + rename, in a 0700 directory of ours.
fn store(dir: &Path, file: &Path, bpf: &[u8]) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let m = std::fs::symlink_metadata(dir)?;
    if !m.is_dir() || !trusted(&m) {
        return Err(std::io::Error::other(
            "cache directory is not ours or open to others",
        ));
    }
    let tmp: PathBuf = dir.join(format!(".tmp-{}-{}", std::process::id(), rand_suffix()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        let mut body = Vec::with_capacity(HEADER + bpf.len());
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&Sha256::digest(bpf));
        body.extend_from_slice(bpf);
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("profile")
    }

    #[test]
    fn flags_follow_the_profile_like_libseccomp() {
        use sys::seccomp::*;
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        }));
        assert_eq!(flags_of(&p), FLAG_LOG | FLAG_SPEC_ALLOW);
        // NEW_LISTENER with TSYNC needs TSYNC_ESRCH, or the kernel says EINVAL.
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert_eq!(
            flags_of(&p),
            FLAG_TSYNC | FLAG_NEW_LISTENER | FLAG_TSYNC_ESRCH
        );
    }

    #[test]
    fn the_key_changes_with_the_profile_only() {
        let a = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
        let b = profile(serde_json::json!({"defaultAction": "SCMP_ACT_LOG"}));
        let ka = cache_key(&a).expect("key");
        assert_eq!(ka.len(), 64);
        assert_eq!(ka, cache_key(&a.clone()).expect("key"));
        assert_ne!(ka, cache_key(&b).expect("key"));
    }

    #[test]
    fn a_bad_entry_is_a_miss_and_store_replaces_it() {
        let root = std::env::temp_dir().join(format!("berth-sc-unit-{}", std::process::id()));
        let dir = root.join(CACHE_DIR);
        let file = dir.join("k.bpf");
        let prog = [0x06u8, 0, 0, 0, 0, 0, 0xff, 0x7f];
        std::fs::create_dir_all(&root).expect("mkdir root");
        assert!(matches!(read_cached(&dir, &file), Err(Miss::Absent)));
        store(&dir, &file, &prog).expect("store");
        assert_eq!(read_cached(&dir, &file).ok(), Some(prog.to_vec()));
        let mut body = std::fs::read(&file).expect("read");
        let n = body.len();
        body[n - 1] ^= 1;
        std::fs::write(&file, &body).expect("write");
        assert!(matches!(read_cached(&dir, &file), Err(Miss::Bad(_))));
        std::fs::write(&file, &body[..n - 1]).expect("write");
        assert!(matches!(read_cached(&dir, &file), Err(Miss::Bad(_))));
        store(&dir, &file, &prog).expect("store again");
        assert_eq!(read_cached(&dir, &file).ok(), Some(prog.to_vec()));
        let _ = std::fs::remove_dir_all(&root);
    }
}
