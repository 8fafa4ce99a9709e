//! A function's definition (what `berth fn deploy` and `POST /system/functions` set) and the
//! parsing of its flags' values.

use crate::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How an instance serves requests (OpenFaaS watchdog modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The image's server listens on `port`; requests are proxied to it.
    Http,
    /// One process per request: body on stdin, response on stdout (the classic watchdog).
    Stdio,
}

impl std::str::FromStr for Mode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "http" => Ok(Mode::Http),
            "stdio" => Ok(Mode::Stdio),
            _ => Err(invalid!("--mode {s:?}: expected http or stdio")),
        }
    }
}

/// One deployed function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    /// The reference given at deploy.
    pub image: String,
    /// The manifest digest it resolved to (instances use exactly that image).
    pub image_id: String,
    pub env: Vec<String>,
    pub mode: Mode,
    pub port: u16,
    pub min: u32,
    pub max: u32,
    pub concurrency: u32,
    pub timeout_ms: u64,
    pub idle_ttl_ms: u64,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub queue: u32,
    pub labels: Vec<(String, String)>,
    /// RFC 3339, set at deploy.
    pub created: String,
    /// Invoked by the clock too (crate::cron).
    #[serde(default)]
    pub schedule: Option<String>,
}

impl Function {
    /// A definition with the defaults of `berth fn deploy`.
    pub fn new(name: &str, image: &str) -> Function {
        Function {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            env: Vec::new(),
            mode: Mode::Http,
            port: 8080,
            min: 0,
            max: 4,
            concurrency: 8,
            timeout_ms: 30_000,
            idle_ttl_ms: 300_000,
            memory: None,
            cpus: None,
            queue: 100,
            labels: Vec::new(),
            created: String::new(),
            schedule: None,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn idle_ttl(&self) -> Duration {
        Duration::from_millis(self.idle_ttl_ms)
    }

    /// Checks the limits against each other and the name and environment.
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        if self.max == 0 {
            return Err(invalid!("--max 0: a function needs at least one instance"));
        }
        if self.min > self.max {
            return Err(invalid!(
                "--min {} is more than --max {}",
                self.min,
                self.max
            ));
        }
        if self.concurrency == 0 {
            return Err(invalid!("--concurrency 0: must be at least 1"));
        }
        if self.timeout_ms == 0 {
            return Err(invalid!("--timeout 0: must be more than zero"));
        }
        if self.port == 0 {
            return Err(invalid!("--port 0: must be 1 to 65535"));
        }
        for e in &self.env {
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() && !k.contains('\0') => {}
                _ => return Err(invalid!("--env {e:?}: expected NAME=VALUE")),
            }
        }
        if let Some(m) = &self.memory {
            engine::spec::parse_bytes(m).map_err(|e| invalid!("--memory {m:?}: {e}"))?;
        }
        if let Some(s) = &self.schedule {
            crate::cron::Schedule::parse(s)?;
        }
        if let Some(c) = self.cpus {
            if !(c > 0.0 && c <= 1024.0) {
                return Err(invalid!("--cpus {c}: must be between 0 and 1024"));
            }
        }
        Ok(())
    }
}

/// A function name: a DNS label (as OpenFaaS and Kubernetes name services), 1 to 63 of
/// `a-z 0-9 -`, starting with a letter or digit. It becomes a path segment and part of
/// instance ids, so nothing else is let through.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid!(
            "function name {name:?}: expected 1 to 63 of a-z, 0-9 and '-' (not at either end)"
        ))
    }
}

/// `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(flag: &str, s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| invalid!("{flag} {s:?}: expected a duration such as 500ms, 30s, 5m or 1h"))?;
    let mult = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(invalid!(
                "{flag} {s:?}: unknown unit {unit:?} (ms, s, m or h)"
            ))
        }
    };
    let secs = n * mult;
    if !secs.is_finite() || secs > 365.0 * 86400.0 {
        return Err(invalid!("{flag} {s:?}: too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_names_parse_or_fail_clearly() {
        assert_eq!(
            parse_duration("--timeout", "250ms").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("--timeout", "5m").ok(),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_duration("--timeout", "2").ok(),
            Some(Duration::from_secs(2))
        );
        let e = parse_duration("--idle-ttl", "5 parsecs")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("--idle-ttl")));
        assert!(check_name("echo-1").is_ok());
        for bad in ["", "-a", "a-", "Echo", "a/b", "..", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        let mut f = Function::new("f", "img");
        f.min = 5;
        f.max = 2;
        assert!(f.validate().is_err());
    }
}
