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
    // What the parked init runs now (our binary, or the sealed copy `create` re-executed
    // from): `start` is done when that changes.
    let parked = exe_id(st.pid);
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
    if let Some(w) = &watch {
        wait_for_hangup(w);
    }
    drop(watch);
    if !wait_for_exec(st.pid, st.pid_start, parked) {
        if let Ok(msg) = std::fs::read_to_string(store.dir(id).join(state::START_ERROR)) {
            // runtime.md: a failing startContainer hook fails `start`, the container stops
            // and poststart hooks do not run.
            return Err(Error::Init(msg.trim().to_string()));
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

/// Blocks until every writer of the FIFO `w` is gone (the init exec'd or died). The byte
/// `start` wrote shows as POLLIN until the init takes it; then only POLLHUP ends the wait.
/// Bounded: after a few seconds the caller's /proc check takes over (a slow hook).
fn wait_for_hangup(w: &std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(_) => {
                let r = fds[0].revents().unwrap_or(PollFlags::empty());
                if r.contains(PollFlags::POLLHUP) {
                    return;
                }
                if r.contains(PollFlags::POLLIN) {
                    // The init has not taken the byte yet: let it run.
                    std::thread::yield_now();
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

fn exe_id(pid: i32) -> Option<(u64, u64)> {
    use std::os::linux::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| (m.st_dev(), m.st_ino()))
}

/// Waits until the init has executed the container's program (its /proc/PID/exe is no
/// longer `parked`) or has died: poststart hooks run, and `start` returns, only after
/// the user's process runs (runtime.md "Lifecycle" step 7), i.e. after startContainer hooks.
/// True if it exec'd, false if it is gone (it failed, or its program already ended).
fn wait_for_exec(pid: i32, start: u64, parked: Option<(u64, u64)>) -> bool {
    let Some(parked) = parked else {
        return state::process_start_time(pid) == Some(start);
    };
    let mut pause = std::time::Duration::from_micros(50);
    let mut n = 0u32;
    loop {
        if state::process_start_time(pid) != Some(start) {
            return false;
        }
        match exe_id(pid) {
            Some(cur) if cur != parked => return true,
            None => return false,
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
}
