//! Compiling `linux.seccomp` (runtime-spec config-linux.md "Seccomp") into a libseccomp
//! filter. The filter is compiled before the container reports "created" (so a bad profile
//! fails `create`) and loaded as the last step before `execve`.

use crate::error::{config_err, Error, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::str::FromStr;

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
    let notify = s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    if notify && s.listener_path().is_none() {
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

/// Loads a compiled filter into the calling thread; with a listener, sends it the notify
/// descriptor (SCM_RIGHTS) and the containerProcessState (config-linux.md "Seccomp").
pub fn load(ctx: &ScmpFilterContext, listener: Option<&Listener>) -> Result<()> {
    ctx.load()
        .map_err(|e| Error::Seccomp(format!("load filter: {e}")))?;
    let Some(l) = listener else { return Ok(()) };
    let fd = ctx
        .get_notify_fd()
        .map_err(|e| Error::Seccomp(format!("notify fd: {e}")))?;
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
    let _ = nix::unistd::close(fd);
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
