//! Published ports: `-p [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|/udp]` with ranges (Docker's
//! `--publish` syntax; `nat.ParsePortSpec` in docker/go-connections), and `-P`'s EXPOSE
//! entries (image-spec `config.md`: `ExposedPorts` keys `port/tcp`, `port/udp`, `port`).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One published port. `host_port` 0 asks for an ephemeral port (chosen at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub proto: Proto,
    /// The host address it answers on (None: every local address).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub ctr_port: u16,
}

impl fmt::Display for PortMap {
    /// `80/tcp -> 0.0.0.0:8080` (`docker port`'s lines).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.ctr_port,
            self.proto.as_str(),
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port
        )
    }
}

fn port_range(s: &str, what: &str, spec: &str) -> Result<(u16, u16)> {
    let bad = |why: &str| Error::Invalid(format!("invalid port mapping {spec:?}: {what} {why}"));
    let one = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(&format!("{p:?} is not a port (1-65535)")))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(bad(&format!("range {s:?} ends before it starts")));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

/// One `-p` value, ranges expanded.
pub fn parse(spec: &str) -> Result<Vec<PortMap>> {
    let bad = |why: &str| Error::Invalid(format!("invalid port mapping {spec:?}: {why}"));
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (
            r,
            Proto::parse(p).ok_or_else(|| bad(&format!("unknown protocol {p:?} (tcp or udp)")))?,
        ),
        None => (spec, Proto::Tcp),
    };
    if rest.starts_with('[') {
        return Err(bad("IPv6 host addresses are not supported"));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
        _ => return Err(bad("expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]")),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(a) => {
            let a: Ipv4Addr = a
                .parse()
                .map_err(|_| bad(&format!("{a:?} is not an IPv4 address")))?;
            (!a.is_unspecified()).then_some(a)
        }
    };
    let (c0, c1) = port_range(ctr, "container port", spec)?;
    let n = c1 - c0;
    let (h0, h1) = match host {
        None => (0, 0),
        Some(h) => port_range(h, "host port", spec)?,
    };
    if host.is_some() && h1 - h0 != n {
        return Err(bad("the host and container port ranges differ in length"));
    }
    Ok((0..=n)
        .map(|i| PortMap {
            proto,
            host_ip,
            host_port: if host.is_some() { h0 + i } else { 0 },
            ctr_port: c0 + i,
        })
        .collect())
}

/// One `ExposedPorts` key of an image (`80/tcp`, `53/udp`, `8080`), as an ephemeral
/// mapping; a bad key is an error naming it.
pub fn parse_exposed(key: &str) -> Result<Vec<PortMap>> {
    let (p, proto) = match key.split_once('/') {
        Some((p, proto)) => (
            p,
            Proto::parse(proto).ok_or_else(|| {
                Error::Invalid(format!("the image exposes {key:?}: unknown protocol"))
            })?,
        ),
        None => (key, Proto::Tcp),
    };
    let (a, b) = port_range(p, "exposed port", key)?;
    Ok((a..=b)
        .map(|ctr_port| PortMap {
            proto,
            host_ip: None,
            host_port: 0,
            ctr_port,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let p = parse("127.0.0.1:8080:80/udp").expect("valid");
        assert_eq!(
            p,
            vec![PortMap {
                proto: Proto::Udp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                ctr_port: 80
            }]
        );
        assert_eq!(parse("80").expect("valid")[0].host_port, 0);
        assert_eq!(parse("127.0.0.1::80").expect("valid")[0].host_port, 0);
        let r = parse("8000-8002:90-92").expect("valid");
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].ctr_port), (8002, 92));
        for bad in [
            "0:80",
            "70000:80",
            "8000-8001:80",
            "a:b:c:d",
            "80/sctp",
            "x.y:80:80",
            "[::1]:80:80",
            "90-80:90-80",
        ] {
            let e = parse(bad).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn exposed() {
        assert_eq!(parse_exposed("53/udp").expect("valid")[0].proto, Proto::Udp);
        assert_eq!(parse_exposed("8080").expect("valid")[0].ctr_port, 8080);
        assert!(parse_exposed("80/icmp").is_err());
    }
}
