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
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}
