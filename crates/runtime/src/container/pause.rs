//! `pause` and `resume`: the freezer of the container's cgroup.

use crate::error::{Error, Result};
use crate::state::{self, Store};
use cgroups::FreezerState;

pub fn pause(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    let status = state::status(store, &st);
    if !status.can_pause() {
        return Err(Error::BadState {
            verb: "pause",
            id: id.into(),
            status: status.to_string(),
        });
    }
    Ok(super::cgroup_of(&st)?.freeze(FreezerState::Frozen)?)
}

pub fn resume(store: &Store, id: &str) -> Result<()> {
    let _lock = store.lock(id)?;
    let st = store.load(id)?;
    let status = state::status(store, &st);
    if !status.can_resume() {
        return Err(Error::BadState {
            verb: "resume",
            id: id.into(),
            status: status.to_string(),
        });
    }
    Ok(super::cgroup_of(&st)?.freeze(FreezerState::Thawed)?)
}
