//! `update`: change the resources of a running container, from `--resources FILE|-` and
//! runc's flags. The new resources are kept in the state, so a later `update` starts from
//! them.

use crate::error::{Error, Result};
use crate::state::{self, Store};
use oci_spec::runtime::LinuxResources;

pub fn update(store: &Store, id: &str, r: &LinuxResources) -> Result<()> {
    let _lock = store.lock(id)?;
    let mut st = store.load(id)?;
    let status = state::status(store, &st);
    if status == state::Status::Stopped {
        return Err(Error::BadState {
            verb: "update",
            id: id.into(),
            status: status.to_string(),
        });
    }
    super::cgroup_of(&st)?.apply_resources(r)?;
    if let Some(linux) = st.config.linux_mut() {
        linux.set_resources(Some(r.clone()));
    }
    store.save(&st)
}
