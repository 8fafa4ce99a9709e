//! Credentials in `~/.config/berth/auth.json` (mode 0600), in the containers auth.json
//! format: `{"auths": {"HOST[:PORT]": {"auth": base64("user:password")}}}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an auth.json file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no HOME to find ~/.config/berth/auth.json")]
    NoHome,
}

/// The default auth file: `$BERTH_AUTH_FILE`, else `$XDG_CONFIG_HOME/berth/auth.json`,
/// else `~/.config/berth/auth.json`.
pub fn default_path() -> Result<PathBuf, AuthFileError> {
    if let Some(p) = std::env::var_os("BERTH_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("berth/auth.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .ok_or(AuthFileError::NoHome)?;
    Ok(PathBuf::from(home).join(".config/berth/auth.json"))
}

fn load(path: &Path) -> Result<Value, AuthFileError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| AuthFileError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"auths": {}})),
        Err(source) => Err(AuthFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn store(path: &Path, v: &Value) -> Result<(), AuthFileError> {
    let werr = |source| AuthFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(werr)?;
    f.write_all(
        serde_json::to_string_pretty(v)
            .unwrap_or_default()
            .as_bytes(),
    )
    .and_then(|_| f.sync_all())
    .map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(werr)
}

/// The stored user and password for `registry`.
pub fn get(path: &Path, registry: &str) -> Result<Option<(String, String)>, AuthFileError> {
    let v = load(path)?;
    let Some(auth) = v
        .pointer(&format!(
            "/auths/{}",
            registry.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(|e| e.get("auth"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let Ok(raw) = STANDARD.decode(auth) else {
        return Ok(None);
    };
    let raw = String::from_utf8_lossy(&raw).into_owned();
    Ok(raw
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string())))
}

/// Stores credentials for `registry` (the file is created mode 0600).
pub fn set(path: &Path, registry: &str, user: &str, password: &str) -> Result<(), AuthFileError> {
    let mut v = load(path)?;
    if !v.get("auths").is_some_and(Value::is_object) {
        v["auths"] = json!({});
    }
    v["auths"][registry] = json!({"auth": STANDARD.encode(format!("{user}:{password}"))});
    store(path, &v)
}

/// Removes credentials for `registry`; whether there were any.
pub fn remove(path: &Path, registry: &str) -> Result<bool, AuthFileError> {
    let mut v = load(path)?;
    let removed = v
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove(registry))
        .is_some();
    if removed {
        store(path, &v)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn roundtrip_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("berth-auth-{}", std::process::id()));
        let path = dir.join("auth.json");
        set(&path, "127.0.0.1:5000", "alice", "pa:ss").expect("set");
        assert_eq!(
            get(&path, "127.0.0.1:5000").expect("get"),
            Some(("alice".into(), "pa:ss".into()))
        );
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(remove(&path, "127.0.0.1:5000").expect("remove"));
        assert_eq!(get(&path, "127.0.0.1:5000").expect("get"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
