//! Container networks in the engine (berth-net does the kernel work): networks, attachments
//! and published ports are rows of the engine's database, written before the kernel objects
//! they describe, so whatever a killed command half made is found and removed by the next.
//!
//! - A network is a row (subnet, gateway, bridge, internal). The default network `berth`
//!   (bridge `berth0`) is made on first use in a private /16 that no route of this network
//!   namespace and no other network overlaps.
//! - A container's network mode (`--network`): `bridge` (the default network), a network's
//!   name, `none` (an empty namespace of the runtime's), `host` (no network namespace), or
//!   `container:CTR` (the namespace of a running container).
//! - At start (before the monitor): the attachment row (its address allocated in one
//!   transaction with the UNIQUE (network, ip) constraint) and the published ports' rows
//!   (a port held by another active container, or in use on the host, is refused), then the
//!   kernel objects: the bridge, berth's nftables table and the bridge's set elements, the
//!   container's namespace (a bind-mounted nsfs file `<runroot>/netns/<id>`), the veth pair,
//!   the port map elements; and `hosts`, `resolv.conf`, `hostname` in the container's
//!   directory, bind-mounted over the image's by the monitor ([`apply_spec`]).
//! - At removal: the map elements, the namespace (the veth goes with it) and the host end,
//!   then the rows.

use crate::container::Engine;
use crate::db::Container;
use crate::error::{io, Error, Result};
use crate::invalid;
use net::ipam::Subnet;
use net::ports::{PortMap, Proto};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The default network's name and bridge.
pub const DEFAULT_NETWORK: &str = "berth";
pub const DEFAULT_BRIDGE: &str = "berth0";

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    ip_range TEXT NOT NULL DEFAULT '',
    bridge TEXT NOT NULL UNIQUE,
    internal INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_attachments (
    container TEXT NOT NULL,
    network TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (container, network),
    UNIQUE (network, ip)
);
CREATE TABLE IF NOT EXISTS net_ports (
    container TEXT NOT NULL,
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    ctr_port INTEGER NOT NULL,
    ip TEXT NOT NULL,
    UNIQUE (proto, host_ip, host_port)
);
";

pub fn init(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// What the command line asks of a container's network (stored in its spec).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetOpts {
    /// `--network` as given ("" is the default network).
    pub mode: String,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    pub dns: Vec<Ipv4Addr>,
    pub add_hosts: Vec<(String, Ipv4Addr)>,
    pub publish: Vec<PortMap>,
    /// `-P`: the image's EXPOSE ports on ephemeral host ports (added at create).
    pub publish_all: bool,
}

/// A container's network mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Network(String),
    None,
    Host,
    Container(String),
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "" | "bridge" | "default" => Mode::Network(DEFAULT_NETWORK.into()),
            "none" => Mode::None,
            "host" => Mode::Host,
            _ => match s.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Mode::Container(c.to_string()),
                Some(_) => return Err(invalid!("--network container: needs a container name")),
                None => {
                    check_name(s)?;
                    Mode::Network(s.to_string())
                }
            },
        })
    }
}

/// Network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 characters.
pub fn check_name(n: &str) -> Result<()> {
    if crate::container::valid_name(n) && n.len() <= 64 {
        Ok(())
    } else {
        Err(invalid!(
            "invalid network name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 64) are allowed"
        ))
    }
}

/// A network's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Subnet>,
    pub bridge: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub created: String,
}

const NET_COLUMNS: &str = "name, id, subnet, gateway, ip_range, bridge, internal, labels, created";

fn net_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Network> {
    let bad = |i: usize, msg: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(std::io::Error::other(msg)),
        )
    };
    let subnet: String = r.get(2)?;
    let gateway: String = r.get(3)?;
    let range: String = r.get(4)?;
    let labels: String = r.get(7)?;
    Ok(Network {
        name: r.get(0)?,
        id: r.get(1)?,
        subnet: subnet
            .parse()
            .map_err(|e: net::Error| bad(2, e.to_string()))?,
        gateway: gateway.parse().map_err(|_| bad(3, gateway.clone()))?,
        ip_range: if range.is_empty() {
            None
        } else {
            Some(
                range
                    .parse()
                    .map_err(|e: net::Error| bad(4, e.to_string()))?,
            )
        },
        bridge: r.get(5)?,
        internal: r.get(6)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        created: r.get(8)?,
    })
}

/// A container's attachment to a network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attachment {
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub aliases: Vec<String>,
}

/// What `network create` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateOpts {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut b = vec![0u8; n.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io("read /dev/urandom"))?;
    let s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(s[..n].to_string())
}

/// The IPv4 routes of this network namespace (to choose subnets that clash with none).
fn host_routes() -> Result<Vec<Subnet>> {
    let mut s = net::nl::Socket::route()?;
    Ok(net::link::routes_v4(&mut s)?
        .into_iter()
        .filter(|(_, len)| *len > 0)
        .map(|(addr, prefix)| Subnet { addr, prefix })
        .collect())
}

fn write_file(path: &std::path::Path, body: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("rename {}", path.display())))
}

impl Engine {
    /// `<runroot>/netns/<id>`: a container's network namespace file.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.runroot.join("netns").join(id)
    }

    /// Every network, by name.
    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut db = self.db()?;
        db.write(|tx| {
            let mut st =
                tx.prepare(&format!("SELECT {NET_COLUMNS} FROM networks ORDER BY name"))?;
            let rows = st.query_map([], net_row)?;
            rows.collect()
        })
    }

    /// The network called `name` (or whose id starts with it).
    pub fn network(&self, name: &str) -> Result<Network> {
        let n = name.to_string();
        let found = self.db()?.write(|tx| {
            tx.query_row(
                &format!(
                    "SELECT {NET_COLUMNS} FROM networks WHERE name = ?1 OR \
                     (length(?1) >= 3 AND substr(id, 1, length(?1)) = ?1) LIMIT 1"
                ),
                [&n],
                net_row,
            )
            .optional()
        })?;
        match found {
            Some(n) => Ok(n),
            // The default network is made on first use (by one of concurrent commands).
            None if name == DEFAULT_NETWORK => self
                .create_network(name, &CreateOpts::default())
                .or_else(|_| self.network_row(name)),
            None => Err(Error::NotFound(format!("network {name}"))),
        }
    }

    fn network_row(&self, name: &str) -> Result<Network> {
        let n = name.to_string();
        self.db()?
            .write(|tx| {
                tx.query_row(
                    &format!("SELECT {NET_COLUMNS} FROM networks WHERE name = ?1"),
                    [&n],
                    net_row,
                )
                .optional()
            })?
            .ok_or_else(|| Error::NotFound(format!("network {name}")))
    }

    /// Creates a network (the row; its bridge is made when a container first joins).
    pub fn create_network(&self, name: &str, o: &CreateOpts) -> Result<Network> {
        check_name(name)?;
        if o.labels.keys().any(String::is_empty) {
            return Err(invalid!("invalid label: an empty key"));
        }
        let subnet: Option<Subnet> = o.subnet.as_deref().map(str::parse).transpose()?;
        let range: Option<Subnet> = o.ip_range.as_deref().map(str::parse).transpose()?;
        let gateway: Option<Ipv4Addr> = o
            .gateway
            .as_deref()
            .map(|g| {
                g.parse()
                    .map_err(|_| invalid!("invalid gateway {g:?}: not an IPv4 address"))
            })
            .transpose()?;
        if subnet.is_none() && (gateway.is_some() || range.is_some()) {
            return Err(invalid!("--gateway and --ip-range need --subnet"));
        }
        if let (Some(s), Some(g)) = (subnet, gateway) {
            let (lo, hi) = s.hosts();
            if !(lo..=hi).contains(&u32::from(g)) {
                return Err(invalid!("gateway {g} is not a host address of subnet {s}"));
            }
        }
        if let (Some(s), Some(r)) = (subnet, range) {
            if !(s.contains(r.addr) && r.prefix >= s.prefix) {
                return Err(invalid!("ip range {r} is not inside subnet {s}"));
            }
        }
        let routes = host_routes()?;
        let id = random_hex(64)?;
        let bridge = if name == DEFAULT_NETWORK {
            DEFAULT_BRIDGE.to_string()
        } else {
            format!("br-{}", &id[..12])
        };
        let labels = serde_json::to_string(&o.labels).map_err(|e| invalid!("{e}"))?;
        let name_s = name.to_string();
        let created = runtime::state::now_rfc3339();
        let r = self.db()?.write(|tx| {
            let exists: Option<String> = tx
                .query_row(
                    "SELECT name FROM networks WHERE name = ?1",
                    [&name_s],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Ok(Err(Error::Conflict(format!(
                    "network {name_s} already exists"
                ))));
            }
            let mut st = tx.prepare("SELECT name, subnet FROM networks")?;
            let taken: Vec<(String, String)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let taken: Vec<(String, Subnet)> = taken
                .into_iter()
                .filter_map(|(n, s)| s.parse().ok().map(|s| (n, s)))
                .collect();
            let subnet = match subnet {
                Some(s) => {
                    if let Some((other, os)) = taken.iter().find(|(_, t)| t.overlaps(s)) {
                        return Ok(Err(Error::Conflict(format!(
                            "subnet {s} overlaps subnet {os} of network {other}"
                        ))));
                    }
                    s
                }
                None => {
                    // Private /16s from 10.210 on, then 172.16–31 as /16s: the first that
                    // overlaps no network and no route here.
                    let cands = (210u8..=254)
                        .map(|b| Subnet {
                            addr: Ipv4Addr::new(10, b, 0, 0),
                            prefix: 16,
                        })
                        .chain((16u8..=31).map(|b| Subnet {
                            addr: Ipv4Addr::new(172, b, 0, 0),
                            prefix: 16,
                        }));
                    let mut found = None;
                    for c in cands {
                        if !taken.iter().any(|(_, t)| t.overlaps(c))
                            && !routes.iter().any(|r| r.overlaps(c))
                        {
                            found = Some(c);
                            break;
                        }
                    }
                    match found {
                        Some(c) => c,
                        None => {
                            return Ok(Err(Error::Conflict(
                                "no free private /16 for the network: give one with --subnet"
                                    .into(),
                            )))
                        }
                    }
                }
            };
            let gw = gateway.unwrap_or_else(|| subnet.first_host());
            tx.execute(
                "INSERT INTO networks (name, id, subnet, gateway, ip_range, bridge, internal, \
                 labels, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    name_s,
                    id,
                    subnet.to_string(),
                    gw.to_string(),
                    range.map(|r| r.to_string()).unwrap_or_default(),
                    bridge,
                    o.internal,
                    labels,
                    created
                ],
            )?;
            Ok(Ok(Network {
                name: name_s.clone(),
                id: id.clone(),
                subnet,
                gateway: gw,
                ip_range: range,
                bridge: bridge.clone(),
                internal: o.internal,
                labels: o.labels.clone(),
                created: created.clone(),
            }))
        })??;
        tracing::debug!(network = %r.name, subnet = %r.subnet, bridge = %r.bridge, "network created");
        Ok(r)
    }

    /// Removes a network (refused while a container is attached): its bridge, its set
    /// elements, its row.
    pub fn remove_network(&self, name: &str) -> Result<Network> {
        let n = self.network(name)?;
        if n.name == DEFAULT_NETWORK {
            return Err(Error::Conflict(format!(
                "network {DEFAULT_NETWORK} is the default network and cannot be removed"
            )));
        }
        let users = self.network_users(&n.name)?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "network {} is in use by container(s) {}: remove them or disconnect them first",
                n.name,
                users.join(", ")
            )));
        }
        let mut nf = net::nl::Socket::netfilter()?;
        net::nft::remove(&mut nf, &net::nft::bridge_elems(&n.bridge, n.internal))?;
        let mut rt = net::nl::Socket::route()?;
        net::link::delete(&mut rt, &n.bridge)?;
        let nm = n.name.clone();
        self.db()?.write(|tx| {
            tx.execute("DELETE FROM networks WHERE name = ?1", [&nm])
                .map(|_| ())
        })?;
        tracing::debug!(network = %n.name, "network removed");
        Ok(n)
    }

    /// The names of the containers attached to a network.
    pub fn network_users(&self, network: &str) -> Result<Vec<String>> {
        let n = network.to_string();
        self.db()?.write(|tx| {
            let mut st = tx.prepare(
                "SELECT c.name FROM net_attachments a JOIN containers c ON c.id = a.container \
                 WHERE a.network = ?1 ORDER BY c.name",
            )?;
            let rows = st.query_map([&n], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// A container's attachments.
    pub fn attachments(&self, id: &str) -> Result<Vec<Attachment>> {
        let i = id.to_string();
        let rows: Vec<(String, String, String, String)> = self.db()?.write(|tx| {
            let mut st = tx.prepare(
                "SELECT network, ip, mac, aliases FROM net_attachments WHERE container = ?1 \
                 ORDER BY network",
            )?;
            let rows = st.query_map([&i], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(network, ip, mac, aliases)| {
                Some(Attachment {
                    network,
                    ip: ip.parse().ok()?,
                    mac,
                    aliases: serde_json::from_str(&aliases).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// A container's published ports as they are bound (ephemeral ports resolved).
    pub fn published(&self, id: &str) -> Result<Vec<PortMap>> {
        let i = id.to_string();
        let rows: Vec<(String, String, u16, u16)> = self.db()?.write(|tx| {
            let mut st = tx.prepare(
                "SELECT proto, host_ip, host_port, ctr_port FROM net_ports WHERE container = ?1 \
                 ORDER BY ctr_port, proto",
            )?;
            let rows = st.query_map([&i], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(proto, hip, hp, cp)| {
                Some(PortMap {
                    proto: Proto::parse(&proto)?,
                    host_ip: if hip.is_empty() {
                        None
                    } else {
                        hip.parse().ok()
                    },
                    host_port: hp,
                    ctr_port: cp,
                })
            })
            .collect())
    }

    /// Checks a container's network options at create; `-P` becomes the image's EXPOSE
    /// ports.
    pub(crate) fn network_at_create(
        &self,
        image: &oci_spec::image::ImageConfiguration,
        n: &mut NetOpts,
        hostname: &str,
    ) -> Result<()> {
        let mode = Mode::parse(&n.mode)?;
        if !hostname.is_empty() && !net::files::valid_hostname(hostname) {
            return Err(invalid!("invalid hostname {hostname:?}"));
        }
        if let Some(m) = &n.mac {
            net::link::parse_mac(m)?;
        }
        for a in &n.aliases {
            check_name(a)?;
        }
        match &mode {
            Mode::Network(name) => {
                let net = self.network(name)?;
                if let Some(ip) = n.ip {
                    if !net.subnet.contains(ip) || ip == net.gateway {
                        return Err(invalid!(
                            "--ip {ip} is not a free host address of network {} ({})",
                            net.name,
                            net.subnet
                        ));
                    }
                }
                if net.name == DEFAULT_NETWORK && !n.aliases.is_empty() {
                    return Err(invalid!(
                        "--network-alias needs a user network (berth network create)"
                    ));
                }
            }
            _ => {
                if n.ip.is_some() || n.mac.is_some() || !n.aliases.is_empty() {
                    return Err(invalid!(
                        "--ip, --mac-address and --network-alias need a bridge network"
                    ));
                }
                if !n.publish.is_empty() || n.publish_all {
                    if mode != Mode::Host {
                        return Err(invalid!(
                            "published ports need a bridge network (--network {})",
                            n.mode
                        ));
                    }
                    // As Docker: with the host's network, the ports are the host's already.
                    n.publish.clear();
                    n.publish_all = false;
                }
            }
        }
        if n.publish_all {
            let exposed = image
                .config()
                .as_ref()
                .and_then(|c| c.exposed_ports().clone())
                .unwrap_or_default();
            for key in exposed {
                n.publish.extend(net::ports::parse_exposed(&key)?);
            }
            n.publish_all = false;
        }
        Ok(())
    }

    /// Sets up a container's network before its monitor starts it (see the module doc).
    pub(crate) fn network_up(&self, c: &Container) -> Result<()> {
        let n = &c.spec.network;
        let dir = self.dir(&c.id);
        let hostname = if c.spec.opts.hostname.is_empty() {
            c.id.chars().take(12).collect::<String>()
        } else {
            c.spec.opts.hostname.clone()
        };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        match Mode::parse(&n.mode)? {
            Mode::Host => return Ok(()),
            Mode::Container(other) => {
                let o = self.inspect(&other)?;
                if !o.state.is_active() {
                    return Err(Error::Conflict(format!(
                        "container {} (whose network --network container: joins) is not running",
                        o.name
                    )));
                }
                return Ok(());
            }
            Mode::None => {
                write_file(
                    &dir.join("hosts"),
                    &net::files::hosts(None, &[], &n.add_hosts),
                )?;
                write_file(&dir.join("hostname"), &format!("{hostname}\n"))?;
                write_file(
                    &dir.join("resolv.conf"),
                    &net::files::resolv_conf(&host_resolv, &n.dns),
                )?;
                return Ok(());
            }
            Mode::Network(name) => {
                let net = self.network(&name)?;
                let att = self.attach(c, &net)?;
                let ports = self.reserve_ports(c, att.ip)?;
                self.kernel_up(c, &net, &att, &ports)?;
                let mut names: Vec<&str> = vec![hostname.as_str()];
                if c.name != hostname {
                    names.push(&c.name);
                }
                names.extend(att.aliases.iter().map(String::as_str));
                write_file(
                    &dir.join("hosts"),
                    &net::files::hosts(Some(att.ip), &names, &n.add_hosts),
                )?;
                write_file(&dir.join("hostname"), &format!("{hostname}\n"))?;
                write_file(
                    &dir.join("resolv.conf"),
                    &net::files::resolv_conf(&host_resolv, &n.dns),
                )?;
            }
        }
        Ok(())
    }

    /// The attachment row of `c` to `net` (made, with a free address, if it has none).
    fn attach(&self, c: &Container, net: &Network) -> Result<Attachment> {
        if let Some(a) = self
            .attachments(&c.id)?
            .into_iter()
            .find(|a| a.network == net.name)
        {
            return Ok(a);
        }
        let want = c.spec.network.ip;
        let mac_opt = c.spec.network.mac.clone();
        let aliases =
            serde_json::to_string(&c.spec.network.aliases).map_err(|e| invalid!("{e}"))?;
        let (id, nname) = (c.id.clone(), net.name.clone());
        let r = self.db()?.write(|tx| {
            let mut st = tx.prepare("SELECT ip FROM net_attachments WHERE network = ?1")?;
            let used: Vec<String> = st
                .query_map([&nname], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut used: Vec<Ipv4Addr> = used.iter().filter_map(|s| s.parse().ok()).collect();
            used.push(net.gateway);
            let ip = match want {
                Some(ip) if used.contains(&ip) => {
                    return Ok(Err(Error::Conflict(format!(
                        "address {ip} is already in use on network {nname}"
                    ))))
                }
                Some(ip) => ip,
                None => match net::ipam::pick(net.subnet, net.ip_range, &used) {
                    Some(ip) => ip,
                    None => {
                        return Ok(Err(Error::Conflict(format!(
                            "network {nname} has no free address left"
                        ))))
                    }
                },
            };
            let mac = mac_opt
                .clone()
                .unwrap_or_else(|| net::link::format_mac(net::link::mac_for(ip)));
            tx.execute(
                "INSERT INTO net_attachments (container, network, ip, mac, aliases) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, nname, ip.to_string(), mac, aliases],
            )?;
            Ok(Ok(Attachment {
                network: nname.clone(),
                ip,
                mac,
                aliases: c.spec.network.aliases.clone(),
            }))
        })??;
        tracing::debug!(container = %c.id, network = %net.name, ip = %r.ip, "address allocated");
        Ok(r)
    }

    /// Reserves `c`'s published ports (rows): a port another active container holds, or
    /// that something on the host listens on, is refused before anything starts.
    fn reserve_ports(&self, c: &Container, ip: Ipv4Addr) -> Result<Vec<PortMap>> {
        let mut maps = Vec::new();
        let already = self.published(&c.id)?;
        for p in &c.spec.network.publish {
            if let Some(done) = already.iter().find(|d| {
                d.proto == p.proto
                    && d.ctr_port == p.ctr_port
                    && d.host_ip == p.host_ip
                    && (p.host_port == 0 || p.host_port == d.host_port)
            }) {
                maps.push(*done);
                continue;
            }
            let mut p = *p;
            p.host_port = host_port_free(&p)?;
            maps.push(p);
        }
        let id = c.id.clone();
        let r = self.db()?.write(|tx| {
            for p in &maps {
                let mut st = tx.prepare(
                    "SELECT p.container, c.name, c.state FROM net_ports p LEFT JOIN containers c \
                     ON c.id = p.container WHERE p.proto = ?1 AND p.host_port = ?2 AND \
                     (p.host_ip = ?3 OR p.host_ip = '' OR ?3 = '') AND p.container != ?4",
                )?;
                let hip = p.host_ip.map(|a| a.to_string()).unwrap_or_default();
                let holders: Vec<(String, Option<String>, Option<String>)> = st
                    .query_map(
                        params![p.proto.as_str(), p.host_port, hip, id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                for (hid, hname, hstate) in holders {
                    let active = hstate
                        .as_deref()
                        .and_then(|s| s.parse::<crate::State>().ok())
                        .is_some_and(|s| s.is_active());
                    if active {
                        return Ok(Err(Error::Conflict(format!(
                            "host port {}/{} is already published by container {}",
                            p.host_port,
                            p.proto.as_str(),
                            hname.unwrap_or(hid)
                        ))));
                    }
                    // An exited container's reservation goes to the one that starts.
                    tx.execute(
                        "DELETE FROM net_ports WHERE container = ?1 AND proto = ?2 AND host_port = ?3",
                        params![hid, p.proto.as_str(), p.host_port],
                    )?;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO net_ports (container, proto, host_ip, host_port, \
                     ctr_port, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, p.proto.as_str(), hip, p.host_port, p.ctr_port, ip.to_string()],
                )?;
            }
            Ok(Ok(()))
        })?;
        r?;
        Ok(maps)
    }

    fn kernel_up(
        &self,
        c: &Container,
        netw: &Network,
        att: &Attachment,
        ports: &[PortMap],
    ) -> Result<()> {
        let mut nf = net::nl::Socket::netfilter()?;
        net::nft::ensure_table(&mut nf)?;
        let mut rt = net::nl::Socket::route()?;
        let br = net::link::ensure_bridge(&mut rt, &netw.bridge, netw.gateway, netw.subnet.prefix)?;
        net::nft::add(
            &mut nf,
            &net::nft::bridge_elems(&netw.bridge, netw.internal),
        )?;
        net::sysctl("net.ipv4.ip_forward", "1")?;
        net::sysctl(
            &format!("net.ipv4.conf.{}.route_localnet", netw.bridge),
            "1",
        )?;
        let path = self.netns_path(&c.id);
        net::netns::create(&path)?;
        let has_eth0 = net::netns::run_in(&path, || Ok(net::link::exists("eth0")))?;
        if !has_eth0 {
            let host = veth_name(&c.id);
            net::link::delete(&mut rt, &host)?;
            let mac = net::link::parse_mac(&att.mac)?;
            let ns = std::fs::File::open(&path).map_err(io(format!("open {}", path.display())))?;
            net::link::add_veth(
                &mut rt,
                &host,
                br,
                "eth0",
                mac,
                std::os::fd::AsFd::as_fd(&ns),
            )?;
            let (ip, prefix) = (att.ip, netw.subnet.prefix);
            let gw = (!netw.internal).then_some(netw.gateway);
            net::netns::run_in(&path, move || {
                let mut s = net::nl::Socket::route()?;
                net::link::configure_inner(&mut s, "eth0", ip, prefix, gw)
            })?;
        }
        let elems: Vec<_> = ports
            .iter()
            .map(|p| net::nft::port_elem(p, att.ip))
            .collect();
        net::nft::add(&mut nf, &elems)?;
        tracing::debug!(container = %c.id, network = %netw.name, ip = %att.ip, ports = ports.len(), "network up");
        Ok(())
    }

    /// Removes what a container's network left: map elements, namespace, host veth, rows.
    /// Idempotent; runs even when the monitor died.
    pub(crate) fn network_down(&self, c: &Container) -> Result<()> {
        let atts = self.attachments(&c.id)?;
        let ports = self.published(&c.id)?;
        if let Some(a) = atts.first() {
            let elems: Vec<_> = ports.iter().map(|p| net::nft::port_elem(p, a.ip)).collect();
            if !elems.is_empty() {
                let mut nf = net::nl::Socket::netfilter()?;
                net::nft::remove(&mut nf, &elems)?;
            }
        }
        let path = self.netns_path(&c.id);
        net::netns::remove(&path);
        if !atts.is_empty() {
            let mut rt = net::nl::Socket::route()?;
            net::link::delete(&mut rt, &veth_name(&c.id))?;
        }
        let id = c.id.clone();
        self.db()?.write(|tx| {
            tx.execute("DELETE FROM net_ports WHERE container = ?1", [&id])?;
            tx.execute("DELETE FROM net_attachments WHERE container = ?1", [&id])
                .map(|_| ())
        })
    }

    /// The network part of `system reset`: every network's bridge, berth's nftables table
    /// and the rows (containers are removed first).
    pub fn reset_networks(&self) -> Result<Vec<String>> {
        let nets = self.networks()?;
        let mut rt = net::nl::Socket::route()?;
        for n in &nets {
            net::link::delete(&mut rt, &n.bridge)?;
        }
        let mut nf = net::nl::Socket::netfilter()?;
        net::nft::delete_table(&mut nf)?;
        self.db()?.write(|tx| {
            tx.execute_batch(
                "DELETE FROM net_ports; DELETE FROM net_attachments; DELETE FROM networks;",
            )
        })?;
        Ok(nets.into_iter().map(|n| n.name).collect())
    }
}

/// The host end of a container's veth: `veth` + 11 hex digits of its id (IFNAMSIZ).
pub fn veth_name(id: &str) -> String {
    format!("veth{}", &id[..11.min(id.len())])
}

/// The host port for `p`: its own, checked free on the host (nothing listens on it), or an
/// ephemeral one the kernel hands out.
fn host_port_free(p: &PortMap) -> Result<u16> {
    let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let addr = std::net::SocketAddrV4::new(ip, p.host_port);
    let r = match p.proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => std::net::UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    };
    match r {
        Ok(a) => Ok(a.port()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::Conflict(format!(
            "host port {}/{} is already in use on {ip}",
            p.host_port,
            p.proto.as_str()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(invalid!(
            "host address {ip} of port {}/{} is not an address of this host",
            p.host_port,
            p.proto.as_str()
        )),
        Err(e) => Err(io(format!("check host port {}", p.host_port))(e)),
    }
}

/// The monitor's part: config.json joins the container's network (runtime-spec
/// `config-linux.md` "Namespaces": a `path` joins an existing namespace; no `network` entry
/// shares the runtime's, the host's) and gets its hosts, hostname and resolv.conf.
pub fn apply_spec(e: &Engine, c: &Container, spec: &mut Value) -> Result<()> {
    let mode = Mode::parse(&c.spec.network.mode)?;
    let path = match &mode {
        Mode::Network(_) => Some(e.netns_path(&c.id)),
        Mode::Container(other) => {
            let o = e.inspect(other)?;
            let p = e.netns_path(&o.id);
            if net::netns::is_mounted(&p) {
                Some(p)
            } else if o.pid > 0 {
                Some(PathBuf::from(format!("/proc/{}/ns/net", o.pid)))
            } else {
                return Err(Error::Conflict(format!(
                    "container {} is not running",
                    o.name
                )));
            }
        }
        Mode::None | Mode::Host => None,
    };
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        if mode == Mode::Host {
            ns.retain(|n| n["type"] != "network");
        } else if let Some(p) = &path {
            for n in ns.iter_mut() {
                if n["type"] == "network" {
                    n["path"] = json!(p);
                }
            }
        }
    }
    let dir = e.dir(&c.id);
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for f in ["hosts", "hostname", "resolv.conf"] {
            let src = dir.join(f);
            if src.is_file() {
                mounts.push(json!({
                    "destination": format!("/etc/{f}"),
                    "type": "bind",
                    "source": src,
                    "options": ["rbind", "rprivate"]
                }));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(
            Mode::parse("").ok(),
            Some(Mode::Network(DEFAULT_NETWORK.into()))
        );
        assert_eq!(Mode::parse("host").ok(), Some(Mode::Host));
        assert_eq!(
            Mode::parse("container:web").ok(),
            Some(Mode::Container("web".into()))
        );
        assert!(Mode::parse("container:").is_err());
        assert!(Mode::parse("../x").is_err());
        assert_eq!(veth_name("0123456789abcdef"), "veth0123456789a");
    }
}
