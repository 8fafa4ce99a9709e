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

/// Resolves an OCI `user` string against `root`'s `/etc/passwd` and `/etc/group`:
/// `(uid, gid)`. A numeric user without a group gets its passwd group, or 0.
pub fn resolve_user(user: &str, root: &Path) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    // name:x:uid:gid:…
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let (uid, pw_gid) = match u.parse::<u32>() {
        Ok(uid) => {
            let gid = entries
                .iter()
                .find(|f| f[2].parse() == Ok(uid))
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => {
            let f = entries
                .iter()
                .find(|f| f[0] == u)
                .ok_or_else(|| format!("user {u:?}: not in the image's /etc/passwd"))?;
            let uid = f[2]
                .parse()
                .map_err(|_| format!("user {u:?}: bad uid in /etc/passwd"))?;
            let gid = f[3]
                .parse()
                .map_err(|_| format!("user {u:?}: bad gid in /etc/passwd"))?;
            (uid, gid)
        }
    };
    let gid = match g {
        None => pw_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
                group
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 3 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| format!("group {g:?}: not in the image's /etc/group"))?
            }
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_against_the_image() {
        let dir = std::env::temp_dir().join(format!("berth-agent-user-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).expect("mkdir");
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(dir.join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        assert_eq!(resolve_user("", &dir), Ok((0, 0)));
        assert_eq!(resolve_user("www", &dir), Ok((33, 34)));
        assert_eq!(resolve_user("33", &dir), Ok((33, 34)));
        assert_eq!(resolve_user("1000", &dir), Ok((1000, 0)));
        assert_eq!(resolve_user("www:staff", &dir), Ok((33, 50)));
        assert_eq!(resolve_user("1000:7", &dir), Ok((1000, 7)));
        let e = resolve_user("nobody", &dir).expect_err("unknown user");
        assert!(e.contains("nobody") && e.contains("passwd"), "{e}");
        let e = resolve_user("www:nogroup", &dir).expect_err("unknown group");
        assert!(e.contains("nogroup"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
