//! The remaining container commands: pause/unpause (the cgroup freezer, through
//! `berth-runtime pause`/`resume`), rename, top (`berth-runtime ps`) and the engine's part
//! of `system reset` (every container force-removed).

use crate::container::{alive, valid_name, Engine};
use crate::db::Container;
use crate::error::{io, Error, Result};
use crate::types::State;
use rusqlite::OptionalExtension;
use std::process::{Command, Stdio};

impl Engine {
    /// `berth-runtime --root RUNROOT/runtime ARGS…`; its stdout, or its last stderr line as
    /// the error.
    fn runtime_output(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.runtime)
            .arg("--root")
            .arg(self.runroot.join("runtime"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("run {}", self.runtime.display())))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            let last = msg.trim().lines().last().unwrap_or("").to_string();
            return Err(Error::Runtime(if last.is_empty() {
                format!("berth-runtime {} failed", args.first().unwrap_or(&""))
            } else {
                last
            }));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Freezes every process of a running container (state `paused`).
    pub fn pause(&self, reference: &str) -> Result<Container> {
        let c = self.inspect(reference)?;
        match c.state {
            State::Paused => {
                return Err(Error::Conflict(format!(
                    "container {} is already paused",
                    c.name
                )))
            }
            State::Running if alive(c.pid, c.pid_start) => {}
            _ => {
                return Err(Error::Conflict(format!(
                    "container {} is not running",
                    c.name
                )))
            }
        }
        self.runtime_output(&["pause", &c.id])?;
        let mut db = self.db()?;
        let row = db.update(&c.id, |row| {
            if row.state == State::Running {
                row.state = State::Paused;
            }
            Ok(row.clone())
        })?;
        drop(db);
        tracing::debug!(container = %c.id, "paused");
        // A frozen backend answers nothing: the services it backs follow (endpoints.rs).
        self.endpoints_follow(&c);
        row.ok_or_else(|| Error::NotFound(c.id.clone()))
    }

    /// Thaws a paused container (state `running` again).
    pub fn unpause(&self, reference: &str) -> Result<Container> {
        let c = self.inspect(reference)?;
        if c.state != State::Paused {
            return Err(Error::Conflict(format!(
                "container {} is not paused",
                c.name
            )));
        }
        self.runtime_output(&["resume", &c.id])?;
        let mut db = self.db()?;
        let row = db.update(&c.id, |row| {
            if row.state == State::Paused {
                row.state = State::Running;
            }
            Ok(row.clone())
        })?;
        drop(db);
        tracing::debug!(container = %c.id, "unpaused");
        // A frozen backend answers nothing: the services it backs follow (endpoints.rs).
        self.endpoints_follow(&c);
        row.ok_or_else(|| Error::NotFound(c.id.clone()))
    }

    /// Thaws `c` if it is paused, so a signal (stop, rm -f) reaches it; quietly.
    pub(crate) fn thaw_if_paused(&self, c: &Container) {
        if c.state == State::Paused {
            let _ = self.unpause(&c.id);
        }
    }

    /// Gives a container another name; a name in use is a conflict naming its holder.
    pub fn rename(&self, reference: &str, new: &str) -> Result<Container> {
        if !valid_name(new) {
            return Err(Error::Invalid(format!(
                "invalid container name {new:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed"
            )));
        }
        self.refuse_foreground_name(new)?;
        let c = self.inspect(reference)?;
        if c.name == new {
            return Err(Error::Conflict(format!(
                "container {} is already called {new:?}",
                c.short_id()
            )));
        }
        let mut db = self.db()?;
        let holder = db.write(|tx| {
            let holder: Option<String> = tx
                .query_row("SELECT id FROM containers WHERE name = ?1", [new], |r| {
                    r.get(0)
                })
                .optional()?;
            if holder.is_none() {
                tx.execute(
                    "UPDATE containers SET name = ?2 WHERE id = ?1",
                    [c.id.as_str(), new],
                )?;
            }
            Ok(holder)
        })?;
        if let Some(h) = holder {
            return Err(Error::Conflict(format!(
                "the container name {new:?} is already in use by container {}: remove or \
                 rename that container, or choose another name",
                &h[..12.min(h.len())]
            )));
        }
        tracing::debug!(container = %c.id, old = %c.name, new, "renamed");
        self.inspect(&c.id)
    }

    /// The processes of a running container as `ps` shows them (`ps_args`, default `-ef`),
    /// header first.
    pub fn top(&self, reference: &str, ps_args: &[String]) -> Result<String> {
        let c = self.inspect(reference)?;
        if !matches!(c.state, State::Running | State::Paused) || !alive(c.pid, c.pid_start) {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                c.name
            )));
        }
        let mut args = vec!["ps", c.id.as_str()];
        if !ps_args.is_empty() {
            // The runtime's options end here (runc's `ps ID -- PS_OPTIONS`).
            args.push("--");
            args.extend(ps_args.iter().map(String::as_str));
        }
        self.runtime_output(&args)
    }

    /// Force-removes every container the engine knows; their names.
    pub fn remove_all(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        // Pods' members before their infra containers, then the pods' rows.
        let mut all = self.db()?.list()?;
        all.sort_by_key(|c| c.spec.infra);
        for c in all {
            self.remove_infra(&c.id)?;
            out.push(c.name);
        }
        for p in self.pods()? {
            self.pod_remove(&p.id, true)?;
        }
        Ok(out)
    }
}
