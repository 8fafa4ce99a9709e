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
    let hooks = st.config.hooks().as_ref();
    // runtime.md: a failing poststart hook is logged, the container keeps running.
    crate::hooks::run_all_warn(
        "poststart",
        hooks.and_then(|h| h.poststart().as_ref()),
        &st.oci(Status::Running),
    );
    Ok(())
}
