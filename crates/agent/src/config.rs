//! The image configuration a disk carries at [`crate::CONFIG_PATH`], written by
//! `berth vm image` from the OCI image config.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the agent starts, and how.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConfig {
    /// The image reference the disk was made from (informational).
    #[serde(default)]
    pub image: String,
    /// The guest's hostname.
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    /// The workload's working directory (default `/`).
    #[serde(default)]
    pub workdir: String,
    /// `user`, `uid`, `user:group` or `uid:gid` (default root).
    #[serde(default)]
    pub user: String,
}

/// The PATH a workload gets when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The hostname when the config names none.
pub const DEFAULT_HOSTNAME: &str = "berth-vm";

impl GuestConfig {
    /// Reads and parses `path`; errors name the file.
    pub fn load(path: &Path) -> Result<GuestConfig, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The workload's argv: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The environment as pairs, with a default PATH when the image has none.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect();
        if !out.iter().any(|(k, _)| k == "PATH") {
            out.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        out
    }

    /// The hostname to set.
    pub fn hostname(&self) -> &str {
        if self.hostname.is_empty() {
            DEFAULT_HOSTNAME
        } else {
            &self.hostname
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_and_env() {
        let c = GuestConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo hi".into()],
            env: vec!["A=1".into(), "B".into()],
            ..Default::default()
        };
        assert_eq!(c.argv(), ["/bin/sh", "-c", "echo hi"]);
        let env = c.env_pairs();
        assert!(env.contains(&("A".into(), "1".into())));
        assert!(env.contains(&("B".into(), String::new())));
        assert!(env.iter().any(|(k, v)| k == "PATH" && v == DEFAULT_PATH));
        assert_eq!(c.hostname(), DEFAULT_HOSTNAME);
    }
}
