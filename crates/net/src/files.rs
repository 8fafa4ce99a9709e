//! A container's `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` (written in its state
//! directory and bind-mounted over the image's, which stay untouched).

use crate::{Error, Result};
use std::net::Ipv4Addr;

/// Docker's hostname rule: an RFC 1123 label (letters, digits, `-`; at most 63; not
/// starting or ending with `-`), dots allowed between labels.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An `--add-host NAME:IP` entry; one clear error otherwise.
pub fn parse_add_host(s: &str) -> Result<(String, Ipv4Addr)> {
    let bad = |why: &str| Error::Invalid(format!("invalid --add-host {s:?}: {why}"));
    let (name, ip) = s
        .split_once(':')
        .or_else(|| s.split_once('='))
        .ok_or_else(|| bad("expected NAME:IP"))?;
    if !valid_hostname(name) {
        return Err(bad(&format!("{name:?} is not a host name")));
    }
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?;
    Ok((name.to_string(), ip))
}

/// `/etc/hosts`: localhost, the container's own names on its address, extra hosts.
pub fn hosts(own: Option<Ipv4Addr>, names: &[&str], extra: &[(String, Ipv4Addr)]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(a) = own {
        s.push_str(&format!("{a}\t{}\n", names.join(" ")));
    }
    for (n, a) in extra {
        s.push_str(&format!("{a}\t{n}\n"));
    }
    s
}

/// `/etc/resolv.conf`: `dns` when given, else the host's servers without loopback ones (a
/// container cannot reach the host's 127.0.0.53) — its `search` and `options` kept.
pub fn resolv_conf(host: &str, dns: &[Ipv4Addr]) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            let keep = dns.is_empty()
                && ns
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| !a.is_loopback());
            if keep {
                out.push_str(&format!("nameserver {ns}\n"));
                servers += 1;
            }
        } else if t.starts_with("search") || t.starts_with("options") {
            out.push_str(t);
            out.push('\n');
        }
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    if servers == 0 {
        tracing::debug!("no usable name server for the container's resolv.conf");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert!(valid_hostname("web-1.example"));
        for bad in ["", "-x", "a..b", "a b", "x/../y", "é"] {
            assert!(!valid_hostname(bad), "{bad}");
        }
        assert!(parse_add_host("db:10.0.0.9").is_ok());
        assert!(parse_add_host("db 10.0.0.9").is_err());
        let r = resolv_conf(
            "nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n",
            &[],
        );
        assert_eq!(r, "nameserver 192.0.2.1\nsearch lan\n");
        let r = resolv_conf("nameserver 192.0.2.1\n", &[Ipv4Addr::new(10, 1, 0, 1)]);
        assert_eq!(r, "nameserver 10.1.0.1\n");
        let h = hosts(Some(Ipv4Addr::new(10, 1, 0, 2)), &["web", "abc"], &[]);
        assert!(h.contains("10.1.0.2\tweb abc\n"));
    }
}
