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
    wait_for_exec(st.pid, st.pid_start);
    let hooks = st.config.hooks().as_ref();
    // runtime.md: a failing poststart hook is logged, the container keeps running.
    crate::hooks::run_all_warn(
        "poststart",
        hooks.and_then(|h| h.poststart().as_ref()),
        &st.oci(Status::Running),
    );
    Ok(())
}

/// Waits until the init has executed the container's program (its /proc/PID/exe is no
/// longer this binary) or has died: poststart hooks run, and `start` returns, only after
/// the user's process runs (runtime.md "Lifecycle" step 7), i.e. after startContainer hooks.
fn wait_for_exec(pid: i32, start: u64) {
    use std::os::linux::fs::MetadataExt;
    let id = |m: std::fs::Metadata| (m.st_dev(), m.st_ino());
    let Ok(me) = std::fs::metadata("/proc/self/exe").map(id) else {
        return;
    };
    let exe = format!("/proc/{pid}/exe");
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        if state::process_start_time(pid) != Some(start) {
            return;
        }
        match std::fs::metadata(&exe).map(id) {
            Ok(cur) if cur != me => return,
            Err(_) => return,
            Ok(_) => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}
