//! The engine's own types: what a front end asks for ([`ContainerSpec`]), a container's
//! state, restart policies.

use crate::error::{Error, Result};
use crate::spec::Opts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A container's state (Docker's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Removing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Removing => "removing",
        }
    }

    /// Whether a monitor is (supposed to be) looking after it.
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Paused | State::Restarting)
    }
}

impl FromStr for State {
    type Err = Error;
    fn from_str(s: &str) -> Result<State> {
        Ok(match s {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "exited" => State::Exited,
            "removing" => State::Removing,
            _ => return Err(Error::Invalid(format!("unknown container state {s:?}"))),
        })
    }
}

/// Docker's restart policies (`docker run --restart`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most N times (unlimited when None).
    OnFailure(Option<u32>),
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// Docker's `HostConfig.RestartPolicy.MaximumRetryCount`.
    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure(Some(n)) => n,
            _ => 0,
        }
    }

    /// Whether a container that exited with `code`, restarted `count` times so far, is
    /// restarted. A user's stop is final for every policy.
    pub fn should_restart(self, code: i32, count: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure(max) => code != 0 && max.is_none_or(|m| count < m),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
            p => f.write_str(p.name()),
        }
    }
}

impl FromStr for RestartPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<RestartPolicy> {
        let bad = || {
            Error::Invalid(format!(
                "invalid restart policy {s:?}: expected no, on-failure[:N], always or unless-stopped"
            ))
        };
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (s, None),
        };
        Ok(match (name, max) {
            ("no" | "", None) => RestartPolicy::No,
            ("always", None) => RestartPolicy::Always,
            ("unless-stopped", None) => RestartPolicy::UnlessStopped,
            ("on-failure", None) => RestartPolicy::OnFailure(None),
            ("on-failure", Some(m)) => {
                RestartPolicy::OnFailure(Some(m.parse::<u32>().map_err(|_| bad())?))
            }
            _ => return Err(bad()),
        })
    }
}

impl Serialize for RestartPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RestartPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a front end asks for when it creates a container: the engine's record of the
/// create options (stored as JSON in the database).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// The image as the user named it.
    pub image: String,
    /// The process and its confinement (config.json; env files already read).
    pub opts: Opts,
    pub restart: RestartPolicy,
    pub labels: BTreeMap<String, String>,
    /// The signal `stop` sends first (default SIGTERM).
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    pub stop_timeout: Option<u64>,
    /// The health check (the `--health-*` flags merged with the image's; health.rs).
    #[serde(default)]
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// Volumes, `--mount` and `--tmpfs` mounts (volumes.rs); `-v HOST:PATH` binds stay in
    /// `opts.volumes`.
    #[serde(default)]
    pub mounts: Vec<crate::volumes::Mount>,
    /// The json-file log's options (`--log-opt max-size=…,max-file=…`; logfiles.rs).
    #[serde(default)]
    pub log_opts: BTreeMap<String, String>,
    /// The command the container runs (the image's entrypoint and cmd as the options
    /// change them), resolved at create: what `ps` and `inspect` show.
    #[serde(default)]
    pub args: Vec<String>,
    /// Keep the container's stdin open (`-i`): the monitor holds its write end and
    /// attached clients feed it (attach.rs). With `opts.tty` the terminal is the input.
    #[serde(default)]
    pub interactive: bool,
    /// `--rm` of a detached container (Docker's AutoRemove): its monitor removes it, and
    /// its anonymous volumes, once it has exited.
    #[serde(default)]
    pub auto_remove: bool,
    /// The network options (`--network`, `-p`, `--ip`, `--dns`…; network.rs).
    #[serde(default)]
    pub network: crate::network::NetOpts,
    /// The id of the pod the container belongs to (`--pod`; pod.rs): it joins the pod's
    /// shared namespaces instead of having its own.
    #[serde(default)]
    pub pod: Option<String>,
    /// The pod's infra container (holder of its namespaces; hidden from `ps` without -a).
    #[serde(default)]
    pub infra: bool,
    /// Kubernetes probes (probe.rs), run by the monitor.
    #[serde(default)]
    pub probes: crate::probe::Probes,
    /// What the monitor does when the health check turns unhealthy (Podman's
    /// `--health-on-failure`).
    #[serde(default)]
    pub health_on_failure: crate::probe::OnFailure,
    /// `restart` is a default, not asked for (`--restart` not given): a pod's member then
    /// takes the pod's restart policy (pod.rs; an explicit `--restart no` wins, as
    /// Podman's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_default: bool,
}

/// A signal by name (`TERM`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    let bad = || {
        Error::Invalid(format!(
            "invalid signal {s:?} (a name like TERM or a number)"
        ))
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&full).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        for s in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            let p: RestartPolicy = s.parse().expect(s);
            assert_eq!(p.to_string(), s);
        }
        for s in ["sometimes", "on-failure:x", "always:3", "on-failure:-1"] {
            let e = s.parse::<RestartPolicy>().expect_err(s).to_string();
            assert!(e.contains(s), "{e}");
        }
        let p = RestartPolicy::OnFailure(Some(3));
        assert!(p.should_restart(1, 2, false));
        assert!(!p.should_restart(1, 3, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(RestartPolicy::UnlessStopped.should_restart(0, 9, false));
    }

    #[test]
    fn signals() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("TERM").ok(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigkill").ok(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("9").ok(), Some(Signal::SIGKILL));
        assert!(parse_signal("NOPE").is_err());
    }
}
