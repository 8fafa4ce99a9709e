//! Signal dispositions of the container's first process.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Restores SIGPIPE to its default action. Rust's runtime ignores SIGPIPE in every Rust
/// program, and an ignored signal stays ignored across `execve`: without this, the
/// container's program would inherit it (`yes | head -1` would never end).
pub fn default_sigpipe() -> nix::Result<()> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing the default disposition runs no code of ours in signal context.
    unsafe { sigaction(Signal::SIGPIPE, &dfl) }.map(drop)
}

extern "C" fn exit_with_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and takes a plain integer.
    unsafe { libc::_exit(128 + sig) }
}

/// Makes the termination signals end this process, as they end an ordinary program. The
/// init of a new pid namespace is immune to signals it has no handler for, so a container
/// parked before `start` would otherwise survive `kill ID` (SIGTERM). `execve` resets
/// caught signals to their default, so the container's program is not affected.
pub fn exit_on_termination_signals() -> nix::Result<()> {
    let act = SigAction::new(
        SigHandler::Handler(exit_with_signal),
        SaFlags::empty(),
        SigSet::all(),
    );
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ] {
        // SAFETY: the handler only calls `_exit`, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }?;
    }
    Ok(())
}
