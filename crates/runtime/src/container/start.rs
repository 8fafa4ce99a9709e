//! `start`: release the init blocked on the exec FIFO, then run poststart hooks
//! (runtime-spec runtime.md "Start").

use crate::error::{Error, Result};
use crate::state::{self, Status, Store};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub fn start(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    let status = state::status(store, &st);
    if !status.can_start() {
        return Err(Error::BadState {
            verb: "start",
            id: id.into(),
            status: status.to_string(),
        });
    }
    // What the parked init runs now (the protected copy of our binary `create` re-executed
    // from): without a hangup to wait for, `start` is done when that changes.
    let parked = exe_id(st.pid);
    let timeout = start_timeout(&st.config);
    let deadline = std::time::Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| std::time::Instant::now() + std::time::Duration::from_secs(86_400));
    let fifo = state::fifo_path(&store.dir(id));
    // A reader of our own, opened before our writer: the init holds the FIFO open
    // (close-on-exec) until it execs or dies, and then this reader sees POLLHUP (the kernel
    // reports it to readers that saw a writer come after them). No polling of /proc.
    let watch = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .ok();
    // Non-blocking: if the init died there is no reader and this fails with ENXIO instead
    // of hanging.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| Error::Init(format!("start container {id}: init is not waiting: {e}")))?;
    f.write_all(b"0")
        .map_err(|e| Error::Init(format!("start container {id}: {e}")))?;
    drop(f);
    let _ = std::fs::remove_file(&fifo);
    let outcome = match &watch {
        Some(w) => wait_for_hangup(w, deadline).then(|| exec_or_exit(st.pid, st.pid_start)),
        None => wait_for_exec(st.pid, st.pid_start, parked, deadline),
    };
    drop(watch);
    match outcome {
        Some(true) => {}
        Some(false) => {
            // The init creates the file empty before `start` and writes it only on failure.
            if let Some(msg) = std::fs::read_to_string(store.dir(id).join(state::START_ERROR))
                .ok()
                .filter(|m| !m.trim().is_empty())
            {
                // runtime.md: a failing startContainer hook fails `start`, the container
                // stops and poststart hooks do not run.
                return Err(Error::Init(msg.trim().to_string()));
            }
        }
        None => {
            // The start byte is already in the FIFO: left alone, the init could still run
            // the process later, after `start` reported failure. Stop it for good.
            if state::process_start_time(st.pid) == Some(st.pid_start) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(st.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return Err(Error::Init(format!(
                "start container {id}: its init did not execute the container's process within \
                 {}s (blocked before exec: a stopped init, a slow startContainer hook, …); it \
                 was killed and the container is stopped: `delete {id}` removes it",
                timeout.as_secs()
            )));
        }
    }
    let hooks = st.config.hooks().as_ref();
    // runtime.md: a failing poststart hook is logged, the container keeps running.
    crate::hooks::run_all_warn(
        "poststart",
        hooks.and_then(|h| h.poststart().as_ref()),
        &st.oci(Status::Running),
    );
    Ok(())
}

/// How long `start` waits for the init to execute the container's process:
/// `$BERTH_START_TIMEOUT` seconds (default 10) plus the startContainer hooks' timeouts
/// (30 s for a hook without one), which the init runs before it execs.
fn start_timeout(spec: &oci_spec::runtime::Spec) -> std::time::Duration {
    let base: u64 = std::env::var("BERTH_START_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let hooks: u64 = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
        .iter()
        .flat_map(|v| v.iter())
        .map(|h| h.timeout().filter(|t| *t > 0).unwrap_or(30) as u64)
        .fold(0u64, u64::saturating_add);
    // At most a day: an absurd value must not overflow the deadline.
    std::time::Duration::from_secs(base.saturating_add(hooks).min(86_400))
}

/// Blocks until every writer of the FIFO `w` is gone (the init exec'd or died); false if
/// that did not happen by `deadline`. The byte `start` wrote shows as POLLIN until the init
/// takes it; then only POLLHUP ends the wait.
fn wait_for_hangup(w: &std::fs::File, deadline: std::time::Instant) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    while std::time::Instant::now() < deadline {
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(_) => {
                let r = fds[0].revents().unwrap_or(PollFlags::empty());
                if r.contains(PollFlags::POLLHUP) {
                    return true;
                }
                if r.contains(PollFlags::POLLIN) {
                    // The init has not taken the byte yet: let it run.
                    std::thread::yield_now();
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    false
}

/// After the hangup: true if the init exec'd (it lives and has an address space — whatever
/// it executes, even our own binary again through `#!/proc/self/exe`), false if it died (a
/// dying process loses its memory map, and with it /proc/PID/exe, before its files).
fn exec_or_exit(pid: i32, start: u64) -> bool {
    exe_id(pid).is_some() && state::process_start_time(pid) == Some(start)
}

fn exe_id(pid: i32) -> Option<(u64, u64)> {
    use std::os::linux::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| (m.st_dev(), m.st_ino()))
}

/// Without a FIFO reader of our own: waits until the init has executed the container's
/// program (its /proc/PID/exe is no longer `parked`) or has died. Some(true) if it exec'd,
/// Some(false) if it is gone (it failed, or its program already ended), None at `deadline`.
fn wait_for_exec(
    pid: i32,
    start: u64,
    parked: Option<(u64, u64)>,
    deadline: std::time::Instant,
) -> Option<bool> {
    let Some(parked) = parked else {
        return Some(state::process_start_time(pid) == Some(start));
    };
    let mut pause = std::time::Duration::from_micros(50);
    let mut n = 0u32;
    while std::time::Instant::now() < deadline {
        if state::process_start_time(pid) != Some(start) {
            return Some(false);
        }
        match exe_id(pid) {
            Some(cur) if cur != parked => return Some(true),
            None => return Some(false),
            Some(_) => {}
        }
        std::thread::sleep(pause);
        // The exec is usually a fraction of a millisecond away: poll finely at first.
        pause = (pause * 2).min(std::time::Duration::from_micros(if n < 40 {
            100
        } else {
            5000
        }));
        n += 1;
    }
    None
}
