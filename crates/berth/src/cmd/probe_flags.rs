//! The probe flags of `run`/`create`: Podman's `--health-on-failure`, and Kubernetes probes
//! without a YAML file (`--liveness-probe-*`, `--readiness-probe-*`, `--startup-probe-*`
//! with `--probe-*` timing, or a whole `--probes FILE` in the engine's JSON: probe.rs).

use anyhow::{bail, Context, Result};
use engine::probe::{OnFailure, Probe, ProbeAction, Probes};
use std::time::Duration;

#[derive(clap::Args, Debug, Default)]
pub struct ProbeFlags {
    /// What to do when the health check turns unhealthy: none, kill, restart, stop.
    #[arg(long, default_value = "none")]
    pub health_on_failure: String,
    /// Liveness probe: a command run by `/bin/sh -c` in the container.
    #[arg(long, hide = true)]
    pub liveness_probe_cmd: Option<String>,
    /// Liveness probe: HTTP GET `PORT[/PATH]` on the container's 127.0.0.1.
    #[arg(long, hide = true)]
    pub liveness_probe_http: Option<String>,
    /// Liveness probe: a TCP connection to `PORT`.
    #[arg(long, hide = true)]
    pub liveness_probe_tcp: Option<u16>,
    #[arg(long, hide = true)]
    pub readiness_probe_cmd: Option<String>,
    #[arg(long, hide = true)]
    pub readiness_probe_http: Option<String>,
    #[arg(long, hide = true)]
    pub readiness_probe_tcp: Option<u16>,
    #[arg(long, hide = true)]
    pub startup_probe_cmd: Option<String>,
    #[arg(long, hide = true)]
    pub startup_probe_http: Option<String>,
    #[arg(long, hide = true)]
    pub startup_probe_tcp: Option<u16>,
    /// The probes' period (`10s`, `500ms`).
    #[arg(long, hide = true)]
    pub probe_period: Option<String>,
    /// The probes' timeout per attempt.
    #[arg(long, hide = true)]
    pub probe_timeout: Option<String>,
    /// The probes' initial delay.
    #[arg(long, hide = true)]
    pub probe_initial_delay: Option<String>,
    #[arg(long, hide = true)]
    pub probe_failure_threshold: Option<u32>,
    #[arg(long, hide = true)]
    pub probe_success_threshold: Option<u32>,
    /// The probes as JSON (the engine's `Probes`); the other probe flags add to it.
    #[arg(long, hide = true, value_name = "FILE")]
    pub probes: Option<std::path::PathBuf>,
}

impl ProbeFlags {
    pub fn on_failure(&self) -> Result<OnFailure> {
        Ok(self.health_on_failure.parse()?)
    }

    pub fn probes(&self) -> Result<Probes> {
        let mut p: Probes = match &self.probes {
            Some(f) => {
                let body = std::fs::read(f).with_context(|| format!("--probes {}", f.display()))?;
                serde_json::from_slice(&body)
                    .with_context(|| format!("--probes {}", f.display()))?
            }
            None => Probes::default(),
        };
        let dur = |flag: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_deref()
                .map(|v| engine::health::parse_duration(v).with_context(|| format!("--{flag}")))
                .transpose()
        };
        let period = dur("probe-period", &self.probe_period)?;
        let timeout = dur("probe-timeout", &self.probe_timeout)?;
        let delay = dur("probe-initial-delay", &self.probe_initial_delay)?;
        let make = |kind: &str,
                    cmd: &Option<String>,
                    http: &Option<String>,
                    tcp: &Option<u16>|
         -> Result<Option<Probe>> {
            let mut actions = Vec::new();
            if let Some(c) = cmd {
                actions.push(ProbeAction::Exec(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    c.clone(),
                ]));
            }
            if let Some(h) = http {
                let (port, path) = match h.find('/') {
                    Some(i) => (&h[..i], h[i..].to_string()),
                    None => (h.as_str(), "/".to_string()),
                };
                let port: u16 =
                    port.parse().ok().filter(|p| *p != 0).with_context(|| {
                        format!("--{kind}-probe-http {h:?}: expected PORT[/PATH]")
                    })?;
                actions.push(ProbeAction::HttpGet {
                    port,
                    path,
                    host: None,
                    scheme_https: false,
                    headers: Vec::new(),
                });
            }
            if let Some(port) = tcp {
                actions.push(ProbeAction::TcpSocket {
                    port: *port,
                    host: None,
                });
            }
            if actions.len() > 1 {
                bail!("--{kind}-probe-cmd, -http and -tcp: give one of them");
            }
            let Some(action) = actions.pop() else {
                return Ok(None);
            };
            let mut p = Probe::new(action);
            if let Some(d) = period {
                p.period = d;
            }
            if let Some(d) = timeout {
                p.timeout = d;
            }
            if let Some(d) = delay {
                p.initial_delay = d;
            }
            if let Some(n) = self.probe_failure_threshold {
                p.failure_threshold = n;
            }
            if let Some(n) = self.probe_success_threshold.filter(|_| kind == "readiness") {
                p.success_threshold = n;
            }
            Ok(Some(p))
        };
        if let Some(l) = make(
            "liveness",
            &self.liveness_probe_cmd,
            &self.liveness_probe_http,
            &self.liveness_probe_tcp,
        )? {
            p.liveness = Some(l);
        }
        if let Some(r) = make(
            "readiness",
            &self.readiness_probe_cmd,
            &self.readiness_probe_http,
            &self.readiness_probe_tcp,
        )? {
            p.readiness = Some(r);
        }
        if let Some(s) = make(
            "startup",
            &self.startup_probe_cmd,
            &self.startup_probe_http,
            &self.startup_probe_tcp,
        )? {
            p.startup = Some(s);
        }
        p.validate()?;
        Ok(p)
    }
}
