//! `delete`: stop what is left, run poststop hooks, remove the cgroup and the state
//! (runtime-spec runtime.md "Delete").

use crate::error::{Error, Result};
use crate::state::{self, Status, Store};
use nix::sys::signal::Signal;
use std::time::Duration;

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    crate::trace::stage("delete");
    let _lock = match store.lock(id) {
        Ok(l) => l,
        // Like runc, `delete --force` of a container that is gone is not an error.
        Err(Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = match store.load(id) {
        Ok(st) => st,
        Err(Error::NotFound(_)) if force => {
            // A state dir without state.json (a create that was killed): clear it.
            state::validate_id(id)?;
            return store.remove(id);
        }
        Err(e) => return Err(e),
    };
    let status = state::status(store, &st);
    if !status.can_delete() && !force {
        return Err(Error::BadState {
            verb: "delete",
            id: id.into(),
            status: format!("{status} (use --force)"),
        });
    }
    let cg = super::cgroup_of(&st)?;
    if status != Status::Stopped {
        if status == Status::Paused {
            let _ = cg.freeze(cgroups::FreezerState::Thawed);
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), Signal::SIGKILL);
        if !super::wait_gone(st.pid, st.pid_start, Duration::from_secs(5)) {
            return Err(Error::Init(format!(
                "delete {id}: process {} did not exit after SIGKILL",
                st.pid
            )));
        }
    }
    // Whatever else lives in the cgroup (processes of exec, or children of a
    // shared pid namespace) goes too.
    if cg.pids().is_ok_and(|p| !p.is_empty()) {
        let _ = cg.kill_all(libc::SIGKILL);
    }
    crate::trace::stage("delete: hooks");
    super::host_mounts::unmount(&st.host_mounts);
    let hooks = st.config.hooks().as_ref();
    crate::hooks::run_all_warn(
        "poststop",
        hooks.and_then(|h| h.poststop().as_ref()),
        &st.oci(Status::Stopped),
    );
    crate::trace::stage("delete: cgroup destroy");
    cg.destroy()?;
    crate::trace::stage("delete: state remove");
    let r = store.remove(id);
    crate::trace::stage("deleted");
    r
}
