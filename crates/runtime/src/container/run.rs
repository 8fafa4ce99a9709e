//! `run`: create + start, and in the foreground wait for the container, forward signals to
//! it, delete it, and pass its exit status through.

use super::create::{create, CreateOpts};
use crate::error::Result;
use crate::state::Store;

pub fn run(store: &Store, o: &CreateOpts, detach: bool, keep: bool) -> Result<i32> {
    let opts = CreateOpts {
        foreground: !detach,
        ..o.clone()
    };
    let created = create(store, &opts)?;
    if detach {
        if let Err(e) = super::start::start(store, &o.id) {
            let _ = super::delete::delete(store, &o.id, true);
            return Err(e);
        }
        return Ok(0);
    }
    super::block_signals()?;
    let code = match super::start::start(store, &o.id) {
        Ok(()) => super::wait_forwarding(created.pid),
        Err(e) => Err(e),
    };
    crate::trace::stage("run: exited");
    if keep {
        return code;
    }
    let del = super::delete::delete(store, &o.id, true);
    let code = code?;
    del?;
    Ok(code)
}
