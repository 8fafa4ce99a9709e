//! Services: host ports that DNAT round-robin to the addresses of a set of backend
//! containers (what `kube play` makes of a Kubernetes Service over a Deployment's pods).
//!
//! Rows first (tables `services`, `service_ports`, `service_backends`, one transaction
//! that also refuses a host port another service or an active container's `-p` holds),
//! then the kernel: berth-net's `nft::svc` maps (elements only, replaced in one batch).
//! A backend container's removal drops it from every service and rebuilds their elements
//! (network.rs `network_down`). Published like `-p`: on every address of the host,
//! 127.0.0.1 included, and from other containers (hairpin).

use crate::container::Engine;
use crate::error::{Error, Result};
use crate::invalid;
use net::nft::svc::{self, SvcPort};
use net::ports::Proto;
use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS service_ports (
    service TEXT NOT NULL,
    name TEXT,
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    target_port INTEGER NOT NULL,
    UNIQUE (proto, host_ip, host_port)
);
CREATE TABLE IF NOT EXISTS service_backends (
    service TEXT NOT NULL,
    container TEXT NOT NULL,
    PRIMARY KEY (service, container)
);
";

/// One published port of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub proto: Proto,
    /// The host address it answers on (None: every address of the host, 127.0.0.1 too).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// The backends' port.
    pub target_port: u16,
}

/// A service's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub ports: Vec<ServicePort>,
    /// Container ids.
    pub backends: Vec<String>,
}

fn host_ip_str(ip: Option<IpAddr>) -> String {
    ip.map(|a| a.to_string()).unwrap_or_default()
}

fn v4(p: &ServicePort) -> Result<Option<Ipv4Addr>> {
    match p.host_ip {
        None => Ok(None),
        Some(IpAddr::V4(a)) if a.is_unspecified() => Ok(None),
        Some(IpAddr::V4(a)) => Ok(Some(a)),
        Some(IpAddr::V6(a)) => Err(invalid!(
            "service port {}: IPv6 host address {a} is not supported",
            p.host_port
        )),
    }
}

fn svc_port(p: &ServicePort) -> Result<SvcPort> {
    Ok(SvcPort {
        proto: p.proto,
        host_ip: v4(p)?,
        host_port: p.host_port,
    })
}

/// Who holds host port (`proto`, `host_ip`, `port`) besides service `except`: a message
/// naming it, or None. Used by network.rs for `-p` too (`except` empty).
pub(crate) fn port_holder(
    tx: &Transaction<'_>,
    proto: Proto,
    host_ip: &str,
    port: u16,
    except: &str,
) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    tx.query_row(
        "SELECT service FROM service_ports WHERE proto = ?1 AND host_port = ?2 AND \
         (host_ip = ?3 OR host_ip = '' OR ?3 = '') AND service != ?4",
        params![proto.as_str(), port, host_ip, except],
        |r| r.get::<_, String>(0),
    )
    .optional()
}

fn load(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<Option<Service>> {
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM services WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?;
    if n == 0 {
        return Ok(None);
    }
    let mut st = tx.prepare(
        "SELECT name, proto, host_ip, host_port, target_port FROM service_ports \
         WHERE service = ?1 ORDER BY rowid",
    )?;
    let ports = st
        .query_map([name], |r| {
            let proto: String = r.get(1)?;
            let hip: String = r.get(2)?;
            Ok(ServicePort {
                name: r.get(0)?,
                proto: Proto::parse(&proto).unwrap_or(Proto::Tcp),
                host_ip: hip.parse().ok(),
                host_port: r.get(3)?,
                target_port: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut st =
        tx.prepare("SELECT container FROM service_backends WHERE service = ?1 ORDER BY container")?;
    let backends = st
        .query_map([name], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Some(Service {
        name: name.to_string(),
        ports,
        backends,
    }))
}

impl Engine {
    /// Publishes (or replaces) service `name`: its `ports` on the host, DNAT round-robin
    /// to the addresses of `backends` (container ids or names; a pod's infra container).
    /// A host port held by another service or an active container's `-p` is refused, and
    /// one something on the host listens on; nothing is changed then.
    pub fn publish_service(
        &self,
        name: &str,
        ports: &[ServicePort],
        backends: &[String],
    ) -> Result<()> {
        crate::network::check_name(name).map_err(|_| {
            invalid!("invalid service name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64)")
        })?;
        if ports.is_empty() {
            return Err(invalid!("service {name}: no ports"));
        }
        for (i, p) in ports.iter().enumerate() {
            if p.host_port == 0 || p.target_port == 0 {
                return Err(invalid!("service {name}: port 0"));
            }
            v4(p)?;
            if ports[..i]
                .iter()
                .any(|q| q.proto == p.proto && q.host_port == p.host_port)
            {
                return Err(invalid!(
                    "service {name}: host port {}/{} given twice",
                    p.host_port,
                    p.proto.as_str()
                ));
            }
        }
        let mut db = self.db()?;
        let mut ids = Vec::new();
        for b in backends {
            let c = db.find(b)?;
            if !ids.contains(&c.id) {
                ids.push(c.id);
            }
        }
        let old = db.write(|tx| load(tx, name))?;
        // Ports new to this service must be free on the host (as `-p`'s are).
        for p in ports {
            let had = old.as_ref().is_some_and(|o| {
                o.ports
                    .iter()
                    .any(|q| q.proto == p.proto && q.host_port == p.host_port)
            });
            if !had {
                host_port_free(p)?;
            }
        }
        let hips: Vec<String> = ports
            .iter()
            .map(|p| v4(p).map(|a| host_ip_str(a.map(IpAddr::V4))))
            .collect::<Result<_>>()?;
        let r = db.write(|tx| {
            for (p, hip) in ports.iter().zip(&hips) {
                let hip = hip.as_str();
                if let Some(s) = port_holder(tx, p.proto, hip, p.host_port, name)? {
                    return Ok(Err(Error::Conflict(format!(
                        "host port {}/{} is already published by service {s}",
                        p.host_port,
                        p.proto.as_str()
                    ))));
                }
                let mut st = tx.prepare(
                    "SELECT p.container, c.name, c.state FROM net_ports p LEFT JOIN containers c \
                     ON c.id = p.container WHERE p.proto = ?1 AND p.host_port = ?2 AND \
                     (p.host_ip = ?3 OR p.host_ip = '' OR ?3 = '')",
                )?;
                let holders: Vec<(String, Option<String>, Option<String>)> = st
                    .query_map(params![p.proto.as_str(), p.host_port, hip], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                for (id, cname, state) in holders {
                    if state
                        .and_then(|s| s.parse::<crate::State>().ok())
                        .is_some_and(|s| s.is_active())
                    {
                        return Ok(Err(Error::Conflict(format!(
                            "host port {}/{} is already published by container {}",
                            p.host_port,
                            p.proto.as_str(),
                            cname.unwrap_or(id)
                        ))));
                    }
                }
            }
            tx.execute(
                "INSERT OR IGNORE INTO services (name, created) VALUES (?1, ?2)",
                params![name, runtime::state::now_rfc3339()],
            )?;
            tx.execute("DELETE FROM service_ports WHERE service = ?1", [name])?;
            tx.execute("DELETE FROM service_backends WHERE service = ?1", [name])?;
            for (p, hip) in ports.iter().zip(&hips) {
                tx.execute(
                    "INSERT INTO service_ports (service, name, proto, host_ip, host_port, \
                     target_port) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        name,
                        p.name,
                        p.proto.as_str(),
                        hip,
                        p.host_port,
                        p.target_port
                    ],
                )?;
            }
            for id in &ids {
                tx.execute(
                    "INSERT INTO service_backends (service, container) VALUES (?1, ?2)",
                    params![name, id],
                )?;
            }
            Ok(Ok(()))
        })?;
        r?;
        drop(db);
        let new = self.service(name)?;
        self.kernel_service(old.as_ref(), Some(&new))
    }

    /// Removes service `name`: its kernel elements, then its rows.
    pub fn unpublish_service(&self, name: &str) -> Result<()> {
        let old = self
            .db()?
            .write(|tx| load(tx, name))?
            .ok_or_else(|| invalid!("no such service: {name}"))?;
        self.kernel_service(Some(&old), None)?;
        self.db()?.write(|tx| {
            tx.execute("DELETE FROM service_ports WHERE service = ?1", [name])?;
            tx.execute("DELETE FROM service_backends WHERE service = ?1", [name])?;
            tx.execute("DELETE FROM services WHERE name = ?1", [name])
                .map(|_| ())
        })
    }

    /// Every service.
    pub fn services(&self) -> Result<Vec<Service>> {
        self.db()?.write(|tx| {
            let names = tx
                .prepare("SELECT name FROM services ORDER BY name")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::new();
            for n in names {
                if let Some(s) = load(tx, &n)? {
                    out.push(s);
                }
            }
            Ok(out)
        })
    }

    /// Service `name`.
    pub fn service(&self, name: &str) -> Result<Service> {
        self.db()?
            .write(|tx| load(tx, name))?
            .ok_or_else(|| invalid!("no such service: {name}"))
    }

    /// Drops container `id` from every service and rebuilds their elements (its removal).
    pub(crate) fn drop_backend(&self, id: &str) -> Result<()> {
        let affected: Vec<Service> = self
            .services()?
            .into_iter()
            .filter(|s| s.backends.iter().any(|b| b == id))
            .collect();
        if affected.is_empty() {
            return Ok(());
        }
        self.db()?.write(|tx| {
            tx.execute("DELETE FROM service_backends WHERE container = ?1", [id])
                .map(|_| ())
        })?;
        for old in &affected {
            let new = self.service(&old.name)?;
            self.kernel_service(Some(old), Some(&new))?;
        }
        Ok(())
    }

    /// The ready backends' (address, port) for a target port (endpoints.rs: a backend
    /// that does not run or is not ready gets no traffic): each container's address on its
    /// first network (`eth0`); a container without one is left out.
    fn backend_addrs(&self, s: &Service, target: u16) -> Result<Vec<(Ipv4Addr, u16)>> {
        let mut out = Vec::new();
        let mut db = self.db()?;
        let rows = db.list()?;
        for b in &s.backends {
            if !crate::endpoints::backend_ready(&mut db, &rows, b)? {
                tracing::debug!(service = %s.name, container = %b, "backend not ready");
                continue;
            }
            let atts = self.attachments(b)?;
            match atts.iter().find(|a| a.ifname == "eth0").or(atts.first()) {
                Some(a) => out.push((a.ip, target)),
                None => tracing::warn!(service = %s.name, container = %b, "backend has no address"),
            }
        }
        Ok(out)
    }

    /// Makes the kernel's elements of `new` what `old`'s were (either may be None), under
    /// the services' lock (endpoints.rs).
    fn kernel_service(&self, old: Option<&Service>, new: Option<&Service>) -> Result<()> {
        let _held = self.services_lock()?;
        self.kernel_service_locked(old, new)
    }

    /// [`Engine::kernel_service`] with the services' lock held.
    pub(crate) fn kernel_service_locked(
        &self,
        old: Option<&Service>,
        new: Option<&Service>,
    ) -> Result<()> {
        let mut nf = net::nl::Socket::netfilter()?;
        svc::ensure(&mut nf)?;
        let mut del = Vec::new();
        if let Some(o) = old {
            for p in &o.ports {
                del.extend(svc::keys(&svc_port(p)?));
            }
        }
        let mut add = Vec::new();
        if let Some(n) = new {
            for p in &n.ports {
                let backends = self.backend_addrs(n, p.target_port)?;
                add.extend(svc::elems(&svc_port(p)?, &backends));
            }
        }
        // Only keys that are there can be deleted: an old service without backends had
        // none.
        if let Some(first) = del.first() {
            if !svc::has_elem(&mut nf, first)? {
                del.clear();
            }
        }
        net::sysctl("net.ipv4.ip_forward", "1")?;
        svc::replace(&mut nf, &del, &add)?;
        Ok(())
    }
}

/// Nothing on the host listens on `p` (checked by binding it).
fn host_port_free(p: &ServicePort) -> Result<()> {
    let ip = v4(p)?.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let addr = std::net::SocketAddrV4::new(ip, p.host_port);
    let r = match p.proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
        Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::Conflict(format!(
            "host port {}/{} is already in use on {ip}",
            p.host_port,
            p.proto.as_str()
        ))),
        Err(e) => Err(crate::error::io(format!("check host port {}", p.host_port))(e)),
    }
}
