//! Pods: containers placed together that share namespaces (network, IPC and UTS by default;
//! the PID namespace with `--share pid`), managed as one unit, as Podman's pods.
//!
//! - A pod is a row of the `pods` table (its spec as JSON, like a container's) and an
//!   **infra** container: a container of the engine (`ContainerSpec::infra`) whose process
//!   is `berth-init --pause` bound read-only at /dev/init into an empty root filesystem (no
//!   image; `--infra-image IMG` runs that image's entrypoint instead). The infra holds the
//!   pod's namespaces for its whole life, so members can come and go; it owns the pod's
//!   network (address, published ports, hosts, resolv.conf, hostname).
//! - A member is a container whose `ContainerSpec::pod` is the pod's id. Its network mode is
//!   `container:<infra>`, and the monitor joins the infra's IPC, UTS (and PID) namespaces by
//!   path (runtime-spec `config-linux.md` "Namespaces": a `path` joins that namespace) and
//!   binds the infra's hosts, hostname and resolv.conf ([`apply_spec`]); it keeps its own
//!   mount namespace and writable layer. Starting a member starts the infra first.
//! - The pod row is written before its infra container exists and removed last, so a killed
//!   `pod create` or `pod rm` leaves a row the next `pod rm` finishes.
//! - A pod's status comes from its members (Podman's rules; the infra's own state when the
//!   pod has none).

use crate::container::{alive, valid_name, Engine};
use crate::db::Container;
use crate::error::{Error, Result};
use crate::invalid;
use crate::types::{ContainerSpec, RestartPolicy, State};
use net::ports::PortMap;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pods (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    infra_id TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
";

pub fn init(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// The infra's process when the pod has no infra image: berth-init bound at this path.
pub const INFRA_PATH: &str = "/dev/init";

/// Which namespaces the pod's members share (`--share net,ipc,uts,pid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Share {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub pid: bool,
}

impl Default for Share {
    /// Podman's default: net, ipc and uts.
    fn default() -> Share {
        Share {
            net: true,
            ipc: true,
            uts: true,
            pid: false,
        }
    }
}

impl Share {
    /// `--share net,ipc,uts,pid` (Podman's spelling; `none` or "" shares nothing). Podman
    /// also knows `cgroup`, which berth does not share: it is refused by name.
    pub fn parse(s: &str) -> Result<Share> {
        let mut out = Share {
            net: false,
            ipc: false,
            uts: false,
            pid: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "net" => out.net = true,
                "ipc" => out.ipc = true,
                "uts" => out.uts = true,
                "pid" => out.pid = true,
                "none" => {}
                other => {
                    return Err(invalid!(
                        "--share {s:?}: unknown namespace {other:?} (net, ipc, uts or pid)"
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The namespaces shared, comma-separated (`net,ipc,uts`).
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, n) in [
            (self.net, "net"),
            (self.ipc, "ipc"),
            (self.uts, "uts"),
            (self.pid, "pid"),
        ] {
            if on {
                v.push(n);
            }
        }
        v
    }
}

/// What a front end asks for when it creates a pod (stored as JSON in the database).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodSpec {
    /// The pod's hostname (its members' with a shared UTS namespace); default its name.
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `--network`, `-p`, `--dns`, `--add-host`… of the pod (held by the infra).
    pub network: crate::network::NetOpts,
    pub share: Share,
    /// None: berth's own infra process, no image.
    pub infra_image: Option<String>,
    /// The infra image's command instead of its entrypoint and cmd (`--infra-command`).
    pub infra_command: Vec<String>,
    /// The restart policy of members created without one.
    pub restart: Option<RestartPolicy>,
}

/// A pod's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pod {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    pub spec: PodSpec,
    /// The infra container's id ("" while a create is half done).
    pub infra_id: String,
    /// RFC 3339 (UTC).
    pub created: String,
    pub labels: BTreeMap<String, String>,
}

impl Pod {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// A pod's status, from its members (Podman's `libpod` pod status rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodStatus {
    Created,
    Running,
    Degraded,
    Exited,
    Paused,
}

impl PodStatus {
    /// Podman's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PodStatus::Created => "Created",
            PodStatus::Running => "Running",
            PodStatus::Degraded => "Degraded",
            PodStatus::Exited => "Exited",
            PodStatus::Paused => "Paused",
        }
    }

    /// From the members' states: all running → Running, all paused → Paused, all exited →
    /// Exited, all created (or none) → Created, any other mix → Degraded.
    pub fn from_states(states: &[State]) -> PodStatus {
        let n = states.len();
        let count = |f: fn(&State) -> bool| states.iter().filter(|s| f(s)).count();
        let running = count(|s| matches!(s, State::Running | State::Restarting));
        let paused = count(|s| *s == State::Paused);
        let exited = count(|s| matches!(s, State::Exited | State::Removing));
        let created = count(|s| *s == State::Created);
        if n == 0 || created == n {
            PodStatus::Created
        } else if running == n {
            PodStatus::Running
        } else if paused == n {
            PodStatus::Paused
        } else if exited == n {
            PodStatus::Exited
        } else {
            PodStatus::Degraded
        }
    }
}

impl std::fmt::Display for PodStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const POD_COLUMNS: &str = "id, name, spec, infra_id, created";

fn pod_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pod> {
    let spec: String = r.get(2)?;
    let spec: PodSpec = serde_json::from_str(&spec).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            Box::new(std::io::Error::other(format!("pod spec: {e}"))),
        )
    })?;
    Ok(Pod {
        id: r.get(0)?,
        name: r.get(1)?,
        labels: spec.labels.clone(),
        spec,
        infra_id: r.get(3)?,
        created: r.get(4)?,
    })
}

fn random_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(crate::error::io("read /dev/urandom"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The error of a pod that is not there.
fn no_pod(reference: &str) -> Error {
    Error::NoSuchPod(reference.to_string())
}

/// How a pod verb goes through the members it acts on.
#[derive(Clone, Copy)]
enum Members {
    /// One after the other, oldest first.
    OneByOne,
    /// Each on a thread of its own (stop, rm: each waits on its container).
    Together,
}
use Members::{OneByOne, Together};

impl Engine {
    /// Creates a pod: its row, then its infra container (created, not started).
    pub fn pod_create(&self, name: Option<&str>, mut spec: PodSpec) -> Result<Pod> {
        if let Some(n) = name {
            if !valid_name(n) {
                return Err(invalid!(
                    "invalid pod name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed"
                ));
            }
        }
        if let Some(h) = &spec.hostname {
            if !net::files::valid_hostname(h) {
                return Err(invalid!("invalid hostname {h:?}"));
            }
        }
        if spec.labels.keys().any(String::is_empty) {
            return Err(invalid!("invalid label: an empty key"));
        }
        if !spec.share.net && (!spec.network.publish.is_empty() || !spec.network.mode.is_empty()) {
            return Err(invalid!(
                "--network and -p need the pod to share its network namespace (--share net)"
            ));
        }
        if matches!(
            crate::network::Mode::parse(&spec.network.mode)?,
            crate::network::Mode::Container(_)
        ) {
            return Err(invalid!("a pod cannot join another container's network"));
        }
        let id = random_id()?;
        let name = name.map_or_else(|| format!("pod-{}", &id[..12]), str::to_string);
        if spec.hostname.is_none() {
            spec.hostname = Some(name.clone());
        }
        let created = runtime::state::now_rfc3339();
        let body = serde_json::to_string(&spec).map_err(|e| invalid!("{e}"))?;
        let (pid, pname) = (id.clone(), name.clone());
        let holder = self.db()?.write(|tx| {
            let h: Option<String> = tx
                .query_row("SELECT id FROM pods WHERE name = ?1", [&pname], |r| {
                    r.get(0)
                })
                .optional()?;
            if h.is_some() {
                return Ok(h);
            }
            tx.execute(
                "INSERT INTO pods (id, name, spec, infra_id, created) VALUES (?1, ?2, ?3, '', ?4)",
                params![pid, pname, body, created],
            )?;
            Ok(None)
        })?;
        if let Some(h) = holder {
            return Err(Error::Conflict(format!(
                "the pod name {name:?} is already in use by pod {}: remove that pod or choose \
                 another name",
                &h[..12.min(h.len())]
            )));
        }
        if !spec.infra_command.is_empty() && spec.infra_image.is_none() {
            return Err(invalid!("--infra-command needs --infra-image"));
        }
        crate::fault::point("pod-create:inserted");
        let infra = ContainerSpec {
            image: spec.infra_image.clone().unwrap_or_default(),
            opts: crate::spec::Opts {
                entrypoint: spec.infra_command.first().cloned(),
                cmd: spec.infra_command.iter().skip(1).cloned().collect(),
                hostname: if spec.share.uts {
                    spec.hostname.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                ..Default::default()
            },
            network: if spec.share.net {
                spec.network.clone()
            } else {
                crate::network::NetOpts {
                    mode: "none".into(),
                    ..Default::default()
                }
            },
            labels: spec.labels.clone(),
            pod: Some(id.clone()),
            infra: true,
            ..Default::default()
        };
        let c = match self.create(Some(&format!("{}-infra", &id[..12])), infra) {
            Ok(c) => c,
            Err(e) => {
                let _ = self.delete_pod_row(&id);
                return Err(e);
            }
        };
        crate::fault::point("pod-create:infra");
        let (pid, cid) = (id.clone(), c.id.clone());
        self.db()?.write(|tx| {
            tx.execute(
                "UPDATE pods SET infra_id = ?2 WHERE id = ?1",
                params![pid, cid],
            )
            .map(|_| ())
        })?;
        tracing::debug!(pod = %id, name = %name, infra = %c.id, "pod created");
        self.pod(&id)
    }

    fn delete_pod_row(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.db()?.write(|tx| {
            tx.execute("DELETE FROM pods WHERE id = ?1", [&id])
                .map(|_| ())
        })
    }

    /// The pod called `reference`: its name, its id or a unique prefix of its id.
    pub fn pod(&self, reference: &str) -> Result<Pod> {
        let r = reference.to_string();
        let found: Vec<Pod> = self.db()?.read(|tx| {
            let mut st = tx.prepare(&format!(
                "SELECT {POD_COLUMNS} FROM pods WHERE name = ?1 OR id = ?1 \
                 OR (length(?1) >= 1 AND substr(id, 1, length(?1)) = ?1) \
                 ORDER BY (name = ?1) DESC, (id = ?1) DESC LIMIT 3"
            ))?;
            let rows = st.query_map([&r], pod_row)?;
            rows.collect()
        })?;
        match found.as_slice() {
            [] => Err(no_pod(reference)),
            [one, ..] if one.name == reference || one.id == reference => Ok(one.clone()),
            [one] => Ok(one.clone()),
            _ => Err(invalid!(
                "pod id prefix {reference:?} is ambiguous: give more of the id or the name"
            )),
        }
    }

    /// Every pod, oldest first.
    pub fn pods(&self) -> Result<Vec<Pod>> {
        self.db()?.write(|tx| {
            let mut st = tx.prepare(&format!(
                "SELECT {POD_COLUMNS} FROM pods ORDER BY created, id"
            ))?;
            let rows = st.query_map([], pod_row)?;
            rows.collect()
        })
    }

    /// The pod's containers, the infra excluded (reconciled), oldest first.
    pub fn pod_members(&self, reference: &str) -> Result<Vec<Container>> {
        let p = self.pod(reference)?;
        self.members_of(&p)
    }

    fn members_of(&self, p: &Pod) -> Result<Vec<Container>> {
        Ok(self
            .list(true)?
            .into_iter()
            .filter(|c| c.spec.pod.as_deref() == Some(p.id.as_str()) && !c.spec.infra)
            .collect())
    }

    /// The pod's infra container (reconciled).
    pub fn pod_infra(&self, p: &Pod) -> Result<Container> {
        if p.infra_id.is_empty() {
            return Err(Error::Conflict(format!(
                "pod {} has no infra container (a create was interrupted): remove it with \
                 `berth pod rm -f {}`",
                p.name, p.name
            )));
        }
        self.inspect(&p.infra_id)
    }

    /// The pod's status from its members (the infra's state when it has none).
    pub fn pod_status(&self, pod: &Pod) -> Result<PodStatus> {
        let members = self.members_of(pod)?;
        if members.is_empty() {
            let infra = self.pod_infra(pod).map(|c| c.state).ok();
            return Ok(PodStatus::from_states(
                &infra.into_iter().collect::<Vec<_>>(),
            ));
        }
        let states: Vec<State> = members.iter().map(|c| c.state).collect();
        Ok(PodStatus::from_states(&states))
    }

    /// Checks and completes a member's spec at create (`create --pod`): its network is the
    /// infra's, its ports the pod's, its restart policy the pod's when it was given none.
    pub(crate) fn pod_member_at_create(&self, spec: &mut ContainerSpec) -> Result<()> {
        let Some(reference) = spec.pod.clone() else {
            return Ok(());
        };
        if spec.infra {
            return Ok(());
        }
        let p = self.pod(&reference)?;
        if p.infra_id.is_empty() {
            return Err(Error::Conflict(format!(
                "pod {} has no infra container",
                p.name
            )));
        }
        spec.pod = Some(p.id.clone());
        if p.spec.share.net {
            let n = &spec.network;
            if !n.publish.is_empty() || n.publish_all {
                return Err(invalid!(
                    "invalid config provided: published or exposed ports must be defined when \
                     the pod is created: the ports of pod {} are published by the pod (berth \
                     pod create -p, or berth pod update -p)",
                    p.name
                ));
            }
            if !n.mode.is_empty() || n.ip.is_some() || n.mac.is_some() || !n.aliases.is_empty() {
                return Err(invalid!(
                    "invalid config provided: the network of a container of pod {} is the \
                     pod's (--network, --ip, --mac-address and --network-alias are the pod's)",
                    p.name
                ));
            }
            spec.network.mode = format!("container:{}", p.infra_id);
        }
        if p.spec.share.uts && !spec.opts.hostname.is_empty() {
            return Err(invalid!(
                "--hostname: the containers of pod {} share its hostname ({})",
                p.name,
                p.spec.hostname.as_deref().unwrap_or_default()
            ));
        }
        // The pod's policy unless the container was given one (`--restart no` too), or is
        // removed when it exits (`--rm`: it could not restart).
        if spec.restart_default && !spec.auto_remove {
            if let Some(r) = p.spec.restart {
                spec.restart = r;
            }
        }
        Ok(())
    }

    /// Before a member starts: its pod's infra runs (started now if it does not).
    pub(crate) fn pod_before_start(&self, c: &Container) -> Result<()> {
        let Some(pid) = c.spec.pod.as_deref() else {
            return Ok(());
        };
        if c.spec.infra {
            return Ok(());
        }
        let p = self.pod(pid)?;
        let infra = self.pod_infra(&p)?;
        if !(infra.state == State::Running && alive(infra.pid, infra.pid_start)) {
            self.start(&infra.id)?;
        }
        Ok(())
    }

    /// Whether `c` is an infra container whose pod still exists (plain `rm` refuses it).
    pub(crate) fn refuse_infra_removal(&self, c: &Container) -> Result<()> {
        if !c.spec.infra {
            return Ok(());
        }
        if let Some(p) = c.spec.pod.as_deref() {
            if let Ok(p) = self.pod(p) {
                return Err(Error::Conflict(format!(
                    "container {} is the infra container of pod {}: remove the pod \
                     (berth pod rm)",
                    c.name, p.name
                )));
            }
        }
        Ok(())
    }

    /// Starts the pod: the infra first, then every member that does not run, together
    /// (podstart.rs).
    pub fn pod_start(&self, reference: &str) -> Result<Pod> {
        let p = self.pod(reference)?;
        self.pod_start_infra(&p)?;
        let stopped: Vec<Container> = self
            .members_of(&p)?
            .into_iter()
            .filter(|m| !m.state.is_active())
            .collect();
        let ids: Vec<String> = stopped.iter().map(|m| m.id.clone()).collect();
        let mut failed = Vec::new();
        for (m, r) in stopped.iter().zip(self.start_together(&ids)) {
            if let Err(e) = r {
                failed.push(format!("{}: {e}", m.name));
            }
        }
        if !failed.is_empty() {
            return Err(Error::Runtime(format!(
                "pod {}: some containers did not start: {}",
                p.name,
                failed.join("; ")
            )));
        }
        Ok(p)
    }

    /// Stops the pod: its members (each with its stop signal and `timeout`), then the infra.
    pub fn pod_stop(&self, reference: &str, timeout: Option<Duration>) -> Result<Pod> {
        let p = self.pod(reference)?;
        let active: Vec<Container> = self
            .members_of(&p)?
            .into_iter()
            .filter(|m| m.state.is_active())
            .collect();
        // Together: a pod of N members stops in one timeout, not N.
        self.on_members(&p, "stop", &active, Together, |m| self.stop(&m.id, timeout))?;
        if let Ok(infra) = self.pod_infra(&p) {
            self.stop(&infra.id, timeout)?;
        }
        Ok(p)
    }

    /// Stops and starts the pod.
    pub fn pod_restart(&self, reference: &str, timeout: Option<Duration>) -> Result<Pod> {
        let p = self.pod_stop(reference, timeout)?;
        self.pod_start(&p.id)
    }

    /// Sends `signal` to every running container of the pod, its members then its infra,
    /// as `podman pod kill` does (podman 4.3.1 measured here: the infra exits with 137
    /// after `podman pod kill`; its man page: "the main process of each container inside
    /// the pods"). A member started later starts the infra again ([`Engine::start`]).
    pub fn pod_kill(&self, reference: &str, signal: &str) -> Result<Pod> {
        crate::types::parse_signal(signal)?;
        let p = self.pod(reference)?;
        let live = |s: State| matches!(s, State::Running | State::Paused);
        // Members first, then the infra (podman's `pod kill` reaches it too).
        let mut running: Vec<Container> = self
            .members_of(&p)?
            .into_iter()
            .filter(|m| live(m.state))
            .collect();
        if let Ok(infra) = self.pod_infra(&p) {
            if live(infra.state) {
                running.push(infra);
            }
        }
        if running.is_empty() {
            return Err(Error::Conflict(format!(
                "pod {} has no running container",
                p.name
            )));
        }
        self.on_members(&p, "kill", &running, OneByOne, |m| self.kill(&m.id, signal))?;
        Ok(p)
    }

    /// Freezes every running member.
    pub fn pod_pause(&self, reference: &str) -> Result<Pod> {
        let p = self.pod(reference)?;
        let running = self.members_in(&p, "running", |s| s == State::Running)?;
        self.on_members(&p, "pause", &running, OneByOne, |m| self.pause(&m.id))?;
        Ok(p)
    }

    /// Thaws every paused member.
    pub fn pod_unpause(&self, reference: &str) -> Result<Pod> {
        let p = self.pod(reference)?;
        let paused = self.members_in(&p, "paused", |s| s == State::Paused)?;
        self.on_members(&p, "unpause", &paused, OneByOne, |m| self.unpause(&m.id))?;
        Ok(p)
    }

    /// The pod's members whose state `keep` takes; a conflict ("pod P has no `what`
    /// container") when there is none.
    fn members_in(
        &self,
        p: &Pod,
        what: &str,
        keep: impl Fn(State) -> bool,
    ) -> Result<Vec<Container>> {
        let ms: Vec<Container> = self
            .members_of(p)?
            .into_iter()
            .filter(|m| keep(m.state))
            .collect();
        if ms.is_empty() {
            return Err(Error::Conflict(format!(
                "pod {} has no {what} container",
                p.name
            )));
        }
        Ok(ms)
    }

    /// Runs `act` on each of `members`, [`OneByOne`] or [`Together`] (each on a thread of
    /// its own), and gathers the failures into one error: "pod P: `what`: member: error; …".
    fn on_members<T: Send, F>(
        &self,
        p: &Pod,
        what: &str,
        members: &[Container],
        how: Members,
        act: F,
    ) -> Result<()>
    where
        F: Fn(&Container) -> Result<T> + Sync,
    {
        let failed = |m: &Container, r: Result<T>| r.err().map(|e| format!("{}: {e}", m.name));
        let errs: Vec<String> = match how {
            OneByOne => members.iter().filter_map(|m| failed(m, act(m))).collect(),
            Together => std::thread::scope(|s| {
                let act = &act;
                let hs: Vec<_> = members
                    .iter()
                    .map(|m| (m, s.spawn(move || act(m))))
                    .collect();
                hs.into_iter()
                    .filter_map(|(m, h)| match h.join() {
                        Ok(r) => failed(m, r),
                        Err(_) => Some(format!("{}: the thread acting on it panicked", m.name)),
                    })
                    .collect()
            }),
        };
        if errs.is_empty() {
            return Ok(());
        }
        Err(Error::Runtime(format!(
            "pod {}: {what}: {}",
            p.name,
            errs.join("; ")
        )))
    }

    /// Removes the pod: its members (refused while one runs, naming them, unless `force`),
    /// its infra (with its network: namespace, veth, port elements, DNS records), its row.
    pub fn pod_remove(&self, reference: &str, force: bool) -> Result<Pod> {
        let p = self.pod(reference)?;
        let members = self.members_of(&p)?;
        let running: Vec<&str> = members
            .iter()
            .filter(|m| m.state.is_active() || alive(m.pid, m.pid_start))
            .map(|m| m.name.as_str())
            .collect();
        if !running.is_empty() && !force {
            return Err(Error::Conflict(format!(
                "pod {} has running containers ({}): stop the pod first, or remove it with \
                 pod rm -f",
                p.name,
                running.join(", ")
            )));
        }
        // Together: each removal is a SIGKILL and a wait.
        self.on_members(&p, "rm", &members, Together, |m| self.remove(&m.id, true))?;
        // Its infra, and one a `pod create` killed before it recorded the infra's id made.
        let infras: Vec<String> = self
            .list(true)?
            .into_iter()
            .filter(|c| c.spec.infra && c.spec.pod.as_deref() == Some(p.id.as_str()))
            .map(|c| c.id)
            .collect();
        for id in infras {
            match self.remove_infra(&id) {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.delete_pod_row(&p.id)?;
        tracing::debug!(pod = %p.id, "pod removed");
        Ok(p)
    }

    /// Removes every pod with no running member; their names.
    pub fn pod_prune(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for p in self.pods()? {
            let st = self.pod_status(&p)?;
            if matches!(st, PodStatus::Exited | PodStatus::Created) {
                let members = self.members_of(&p)?;
                if members.iter().all(|m| !m.state.is_active()) {
                    self.pod_remove(&p.id, true)?;
                    out.push(p.name);
                }
            }
        }
        Ok(out)
    }

    /// Replaces the pod's published ports, at once if its infra runs: the new ports are
    /// reserved (refused if another container holds one), the old ones released; the
    /// members are not touched. A stopped pod gets them at its next start.
    pub fn pod_update_ports(&self, reference: &str, ports: Vec<PortMap>) -> Result<Pod> {
        let p = self.pod(reference)?;
        if !p.spec.share.net {
            return Err(invalid!(
                "pod {} does not share its network namespace: it has no ports",
                p.name
            ));
        }
        let infra = self.pod_infra(&p)?;
        if !matches!(
            crate::network::Mode::parse(&infra.spec.network.mode)?,
            crate::network::Mode::Network(_)
        ) {
            return Err(invalid!(
                "pod {} has --network {}: published ports need a bridge network",
                p.name,
                infra.spec.network.mode
            ));
        }
        let mut spec = p.spec.clone();
        spec.network.publish = ports.clone();
        let mut cspec = infra.spec.clone();
        cspec.network.publish = ports;
        // Once the infra has its network (started once), its rows and port elements are
        // swapped now, running or not (a stopped container keeps both until removed).
        if self
            .attachments(&infra.id)?
            .iter()
            .any(|a| a.ifname == "eth0")
        {
            self.replace_ports(&infra, &cspec)?;
        }
        let body = serde_json::to_string(&spec).map_err(|e| invalid!("{e}"))?;
        let cbody = serde_json::to_string(&cspec).map_err(|e| invalid!("{e}"))?;
        let (pid, cid) = (p.id.clone(), infra.id.clone());
        self.db()?.write(|tx| {
            tx.execute(
                "UPDATE pods SET spec = ?2 WHERE id = ?1",
                params![pid, body],
            )?;
            tx.execute(
                "UPDATE containers SET spec = ?2 WHERE id = ?1",
                params![cid, cbody],
            )
            .map(|_| ())
        })?;
        tracing::debug!(pod = %p.id, "ports updated");
        self.pod(&p.id)
    }

    /// Logs of the pod's members: (container, its log path).
    pub fn pod_log_paths(&self, reference: &str) -> Result<Vec<(Container, PathBuf)>> {
        Ok(self
            .pod_members(reference)?
            .into_iter()
            .map(|c| {
                let path = self.log_path(&c);
                (c, path)
            })
            .collect())
    }
}

/// The monitor's part for a pod's container: a member joins the infra's IPC, UTS and PID
/// namespaces (as the pod shares them) by path and gets the pod's hosts, hostname and
/// resolv.conf; the infra without an image runs berth-init's pause mode.
pub fn apply_spec(e: &Engine, c: &Container, spec: &mut Value) -> Result<()> {
    let Some(pod_id) = c.spec.pod.as_deref() else {
        return Ok(());
    };
    if c.spec.infra {
        if c.spec.image.is_empty() {
            let bin = crate::spec::init_bin()?;
            spec["process"]["args"] = json!([INFRA_PATH, "--pause"]);
            spec["mounts"]
                .as_array_mut()
                .ok_or_else(|| invalid!("the infra's config has no mounts"))?
                .push(json!({
                    "destination": INFRA_PATH,
                    "type": "bind",
                    "source": bin,
                    "options": ["bind", "ro", "nosuid", "nodev"],
                }));
        }
        return Ok(());
    }
    let p = e.pod(pod_id)?;
    let infra = e.pod_infra(&p)?;
    if !(infra.state.is_active() && alive(infra.pid, infra.pid_start)) {
        return Err(Error::Conflict(format!(
            "the infra container of pod {} is not running",
            p.name
        )));
    }
    let share = p.spec.share;
    // runtime-spec config-linux.md "Namespaces": an entry with a `path` joins it.
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        for (on, kind, proc_name) in [
            (share.ipc, "ipc", "ipc"),
            (share.uts, "uts", "uts"),
            (share.pid, "pid", "pid"),
        ] {
            if !on {
                continue;
            }
            let path = format!("/proc/{}/ns/{proc_name}", infra.pid);
            match ns.iter_mut().find(|n| n["type"] == kind) {
                Some(n) => n["path"] = json!(path),
                None => ns.push(json!({"type": kind, "path": path})),
            }
        }
    }
    if share.uts {
        // The hostname is the infra's, set in the namespace joined (config.md "Hostname").
        spec["hostname"] = json!("");
    }
    if share.net {
        crate::network::bind_etc_files(&e.dir(&infra.id), spec, true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_parsing() {
        assert_eq!(Share::parse("net,ipc,uts").ok(), Some(Share::default()));
        let s = Share::parse("pid,net").expect("pid,net");
        assert!(s.pid && s.net && !s.ipc && !s.uts);
        assert_eq!(s.names(), vec!["net", "pid"]);
        let e = Share::parse("net,cgroupz")
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("cgroupz"), "{e}");
    }

    #[test]
    fn status_rules() {
        use State::*;
        assert_eq!(PodStatus::from_states(&[]), PodStatus::Created);
        assert_eq!(
            PodStatus::from_states(&[Created, Created]),
            PodStatus::Created
        );
        assert_eq!(
            PodStatus::from_states(&[Running, Running]),
            PodStatus::Running
        );
        assert_eq!(
            PodStatus::from_states(&[Running, Exited]),
            PodStatus::Degraded
        );
        assert_eq!(PodStatus::from_states(&[Exited, Exited]), PodStatus::Exited);
        assert_eq!(PodStatus::from_states(&[Paused]), PodStatus::Paused);
        assert_eq!(
            PodStatus::from_states(&[Created, Running]),
            PodStatus::Degraded
        );
    }
}
