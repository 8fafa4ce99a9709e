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
    ifname TEXT NOT NULL DEFAULT 'eth0',
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
    /// The link's name in the container (`eth0` for its own network, `eth1`… for the
    /// networks connected later).
    pub ifname: String,
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
    /// Runs `f` with a connection to the engine's database: this thread's pooled one
    /// (db.rs), shared with the rest of the command's work.
    fn with_db<T>(&self, f: impl FnOnce(&mut crate::db::Db) -> Result<T>) -> Result<T> {
        f(&mut self.db()?)
    }

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
        let found = self.with_db(|db| {
            db.write(|tx| {
                tx.query_row(
                    &format!(
                        "SELECT {NET_COLUMNS} FROM networks WHERE name = ?1 OR \
                     (length(?1) >= 3 AND substr(id, 1, length(?1)) = ?1) LIMIT 1"
                    ),
                    [&n],
                    net_row,
                )
                .optional()
            })
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
        self.with_db(|db| {
            db.write(|tx| {
                tx.query_row(
                    &format!("SELECT {NET_COLUMNS} FROM networks WHERE name = ?1"),
                    [&n],
                    net_row,
                )
                .optional()
            })
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
        let r = self.with_db(|db| {
            db.write(|tx| {
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
                let subnet =
                    match subnet {
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
                                None => return Ok(Err(Error::Conflict(
                                    "no free private /16 for the network: give one with --subnet"
                                        .into(),
                                ))),
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
            })
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
        let _ = std::fs::remove_dir_all(self.dns_dir(&n.name));
        let nm = n.name.clone();
        self.with_db(|db| {
            db.write(|tx| {
                tx.execute("DELETE FROM networks WHERE name = ?1", [&nm])
                    .map(|_| ())
            })
        })?;
        tracing::debug!(network = %n.name, "network removed");
        Ok(n)
    }

    /// The names of the containers attached to a network.
    pub fn network_users(&self, network: &str) -> Result<Vec<String>> {
        let n = network.to_string();
        self.with_db(|db| {
            db.write(|tx| {
                let mut st = tx.prepare(
                    "SELECT c.name FROM net_attachments a JOIN containers c ON c.id = a.container \
                 WHERE a.network = ?1 ORDER BY c.name",
                )?;
                let rows = st.query_map([&n], |r| r.get(0))?;
                rows.collect()
            })
        })
    }

    /// A container's attachments.
    pub fn attachments(&self, id: &str) -> Result<Vec<Attachment>> {
        let i = id.to_string();
        type Row = (String, String, String, String, String);
        let rows: Vec<Row> = self.with_db(|db| {
            db.write(|tx| {
                let mut st = tx.prepare(
                    "SELECT network, ip, mac, aliases, ifname FROM net_attachments \
                 WHERE container = ?1 ORDER BY ifname",
                )?;
                let rows = st.query_map([&i], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect()
            })
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(network, ip, mac, aliases, ifname)| {
                Some(Attachment {
                    network,
                    ip: ip.parse().ok()?,
                    mac,
                    aliases: serde_json::from_str(&aliases).unwrap_or_default(),
                    ifname,
                })
            })
            .collect())
    }

    /// A container's published ports as they are bound (ephemeral ports resolved).
    pub fn published(&self, id: &str) -> Result<Vec<PortMap>> {
        let i = id.to_string();
        let rows: Vec<(String, String, u16, u16)> = self.with_db(|db| {
            db.write(|tx| {
                let mut st = tx.prepare(
                "SELECT proto, host_ip, host_port, ctr_port FROM net_ports WHERE container = ?1 \
                 ORDER BY ctr_port, proto",
            )?;
                let rows =
                    st.query_map([&i], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                rows.collect()
            })
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
        // Without --network: `$BERTH_DEFAULT_NETWORK` (none, bridge or a network's name),
        // as Podman's containers.conf `default_network`; else the default bridge. Kept in
        // the container's spec, so its later starts agree.
        if n.mode.is_empty() {
            if let Some(d) = std::env::var("BERTH_DEFAULT_NETWORK")
                .ok()
                .filter(|d| !d.is_empty())
            {
                n.mode = d;
            }
        }
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
        let t0 = std::time::Instant::now();
        let r = self.network_up_inner(c);
        // bench/network.sh reads this line (BERTH_LOG=berth_engine::network=debug).
        tracing::debug!(
            container = %c.id,
            elapsed_us = t0.elapsed().as_micros() as u64,
            ok = r.is_ok(),
            "network setup"
        );
        r
    }

    fn network_up_inner(&self, c: &Container) -> Result<()> {
        let n = &c.spec.network;
        let dir = self.dir(&c.id);
        let hostname = if c.spec.opts.hostname.is_empty() {
            c.id.chars().take(12).collect::<String>()
        } else {
            c.spec.opts.hostname.clone()
        };
        let host_resolv = std::fs::read_to_string(host_resolv_conf()).unwrap_or_default();
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
                let t_rows = std::time::Instant::now();
                let net = self.network(&name)?;
                let att = self.attach_network(
                    c,
                    &net,
                    &AttachReq {
                        ip: n.ip,
                        mac: n.mac.clone(),
                        aliases: n.aliases.clone(),
                        primary: true,
                    },
                )?;
                let ports = self.reserve_ports(c, att.ip)?;
                tracing::debug!(rows_us = t_rows.elapsed().as_micros() as u64, "rows");
                self.kernel_attach(c, &net, &att)?;
                let mut nf = net::nl::Socket::netfilter()?;
                let elems: Vec<_> = ports
                    .iter()
                    .map(|p| net::nft::port_elem(p, att.ip))
                    .collect();
                net::nft::add(&mut nf, &elems)?;
                // Networks connected while it was stopped.
                for other in self.attachments(&c.id)? {
                    if other.network != net.name {
                        let on = self.network(&other.network)?;
                        self.kernel_attach(c, &on, &other)?;
                        self.update_dns(&on)?;
                    }
                }
                self.update_dns(&net)?;
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
                // A user network's names are answered by its responder on the gateway.
                let dns: Vec<Ipv4Addr> = if n.dns.is_empty() && net.name != DEFAULT_NETWORK {
                    vec![net.gateway]
                } else {
                    n.dns.clone()
                };
                write_file(
                    &dir.join("resolv.conf"),
                    &net::files::resolv_conf(&host_resolv, &dns),
                )?;
            }
        }
        Ok(())
    }

    /// The attachment row of `c` to `net` (made, with a free address, if it has none): one
    /// transaction that also refuses an alias another container on the network answers to.
    fn attach_network(&self, c: &Container, net: &Network, req: &AttachReq) -> Result<Attachment> {
        let existing = self.attachments(&c.id)?;
        if let Some(a) = existing.iter().find(|a| a.network == net.name) {
            return Ok(a.clone());
        }
        let aliases = serde_json::to_string(&req.aliases).map_err(|e| invalid!("{e}"))?;
        let ifname = if req.primary {
            "eth0".to_string()
        } else {
            match (1..10)
                .map(|i| format!("eth{i}"))
                .find(|n| !existing.iter().any(|a| &a.ifname == n))
            {
                Some(n) => n,
                None => {
                    return Err(Error::Conflict(format!(
                        "container {} is connected to 10 networks already",
                        c.name
                    )))
                }
            }
        };
        let (id, nname) = (c.id.clone(), net.name.clone());
        let r = self.with_db(|db| {
            db.write(|tx| {
                let mut st = tx.prepare(
                    "SELECT a.ip, a.aliases, c.name FROM net_attachments a \
                 LEFT JOIN containers c ON c.id = a.container WHERE a.network = ?1",
                )?;
                let rows: Vec<(String, String, Option<String>)> = st
                    .query_map([&nname], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut used: Vec<Ipv4Addr> =
                    rows.iter().filter_map(|r| r.0.parse().ok()).collect();
                used.push(net.gateway);
                // Names the network's responder answers for: no two containers share one.
                for (_, other_aliases, other_name) in &rows {
                    let other_aliases: Vec<String> =
                        serde_json::from_str(other_aliases).unwrap_or_default();
                    let other = other_name.clone().unwrap_or_default();
                    let mut taken: Vec<&str> = other_aliases.iter().map(String::as_str).collect();
                    taken.push(&other);
                    let mine = req
                        .aliases
                        .iter()
                        .map(String::as_str)
                        .chain([c.name.as_str()]);
                    for m in mine {
                        if taken.contains(&m) {
                            return Ok(Err(Error::Conflict(format!(
                            "the name {m:?} is already used on network {nname} by container {other}"
                        ))));
                        }
                    }
                }
                let ip = match req.ip {
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
                let mac = req
                    .mac
                    .clone()
                    .unwrap_or_else(|| net::link::format_mac(net::link::mac_for(ip)));
                tx.execute(
                    "INSERT INTO net_attachments (container, network, ip, mac, aliases, ifname) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, nname, ip.to_string(), mac, aliases, ifname],
                )?;
                Ok(Ok(Attachment {
                    network: nname.clone(),
                    ip,
                    mac,
                    aliases: req.aliases.clone(),
                    ifname: ifname.clone(),
                }))
            })
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
        let r = self.with_db(|db| db.write(|tx| {
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
                if let Some(svc) =
                    crate::service::port_holder(tx, p.proto, &hip, p.host_port, "")?
                {
                    return Ok(Err(Error::Conflict(format!(
                        "host port {}/{} is already published by service {svc}",
                        p.host_port,
                        p.proto.as_str()
                    ))));
                }
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
        }))?;
        r?;
        Ok(maps)
    }

    /// Replaces a running container's published ports with those of `spec` (`pod update
    /// -p`): the new ones reserved first (a port held elsewhere refuses the whole change,
    /// nothing altered), then the port map's elements swapped and the old rows dropped.
    pub(crate) fn replace_ports(&self, c: &Container, spec: &crate::ContainerSpec) -> Result<()> {
        let Some(att) = self
            .attachments(&c.id)?
            .into_iter()
            .find(|a| a.ifname == "eth0")
        else {
            return Err(Error::Conflict(format!(
                "container {} has no network of its own to publish ports on",
                c.name
            )));
        };
        let old = self.published(&c.id)?;
        let mut next = c.clone();
        next.spec = spec.clone();
        let new = self.reserve_ports(&next, att.ip)?;
        let key = |p: &PortMap| (p.proto, p.host_ip, p.host_port);
        let gone: Vec<PortMap> = old.iter().filter(|o| !new.contains(o)).copied().collect();
        let added: Vec<PortMap> = new.iter().filter(|n| !old.contains(n)).copied().collect();
        let mut nf = net::nl::Socket::netfilter()?;
        let elems = |v: &[PortMap]| -> Vec<_> {
            v.iter().map(|p| net::nft::port_elem(p, att.ip)).collect()
        };
        if !gone.is_empty() {
            net::nft::remove(&mut nf, &elems(&gone))?;
        }
        if !added.is_empty() {
            net::nft::add(&mut nf, &elems(&added))?;
        }
        let drop_rows: Vec<PortMap> = gone
            .into_iter()
            .filter(|g| !new.iter().any(|n| key(n) == key(g)))
            .collect();
        let id = c.id.clone();
        self.with_db(|db| {
            db.write(|tx| {
                for p in &drop_rows {
                    tx.execute(
                        "DELETE FROM net_ports WHERE container = ?1 AND proto = ?2 AND \
                         host_port = ?3 AND host_ip = ?4",
                        params![
                            id,
                            p.proto.as_str(),
                            p.host_port,
                            p.host_ip.map(|a| a.to_string()).unwrap_or_default()
                        ],
                    )?;
                }
                Ok(())
            })
        })?;
        tracing::debug!(container = %c.id, ports = new.len(), "published ports replaced");
        Ok(())
    }

    /// The kernel objects of one attachment: the bridge (and its set elements, berth's
    /// table), the container's namespace and the veth pair into it.
    fn kernel_attach(&self, c: &Container, netw: &Network, att: &Attachment) -> Result<()> {
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
        let t0 = std::time::Instant::now();
        let path = self.netns_path(&c.id);
        let made = net::netns::create(&path)?;
        let t_netns = t0.elapsed();
        let inner = att.ifname.clone();
        // A namespace made now has no link yet; in one kept from before (a restart, a kill
        // -9 halfway), the link may be there already, or only its host end.
        let has = !made && {
            let inner = inner.clone();
            net::netns::run_in(&path, move || Ok(net::link::exists(&inner)))?
        };
        if !has {
            let host = veth_name(&c.id, &att.ifname);
            if !made {
                net::link::delete(&mut rt, &host)?;
            }
            let mac = net::link::parse_mac(&att.mac)?;
            let ns = std::fs::File::open(&path).map_err(io(format!("open {}", path.display())))?;
            net::link::add_veth(
                &mut rt,
                &host,
                br,
                &inner,
                mac,
                std::os::fd::AsFd::as_fd(&ns),
            )?;
            let t_veth = t0.elapsed();
            tracing::debug!(
                netns_us = t_netns.as_micros() as u64,
                veth_us = (t_veth - t_netns).as_micros() as u64,
                "netns and veth"
            );
            let (ip, prefix) = (att.ip, netw.subnet.prefix);
            let gw = (!netw.internal && inner == "eth0").then_some(netw.gateway);
            net::netns::run_in(&path, move || {
                let mut s = net::nl::Socket::route()?;
                net::link::configure_inner(&mut s, &inner, ip, prefix, gw)
            })?;
        }
        tracing::debug!(
            container = %c.id,
            network = %netw.name,
            ip = %att.ip,
            elapsed_us = t0.elapsed().as_micros() as u64,
            "attached (namespace, veth, inside)"
        );
        Ok(())
    }

    /// `<runroot>/dns/<network>/`: its responder's records file, pid file and lock.
    fn dns_dir(&self, network: &str) -> PathBuf {
        self.runroot.join("dns").join(network)
    }

    /// Rewrites a user network's records (from the rows, under the directory's lock, so the
    /// last writer wrote the latest rows) and starts its responder if it does not run; with
    /// no container left, removes the records, and the responder exits.
    pub(crate) fn update_dns(&self, netw: &Network) -> Result<()> {
        if netw.name == DEFAULT_NETWORK {
            return Ok(());
        }
        let dir = self.dns_dir(&netw.name);
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let lock = std::fs::File::create(dir.join("lock"))
            .map_err(io(format!("create {}", dir.join("lock").display())))?;
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::Runtime(format!("lock {}: {e}", dir.display())))?;
        let nname = netw.name.clone();
        let rows: Vec<(String, String, String, String)> = self.with_db(|db| {
            db.write(|tx| {
                let mut st = tx.prepare(
                    "SELECT c.name, c.id, a.ip, a.aliases FROM net_attachments a \
                 JOIN containers c ON c.id = a.container WHERE a.network = ?1",
                )?;
                let rows = st.query_map([&nname], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                rows.collect()
            })
        })?;
        let mut recs = Vec::new();
        for (name, id, ip, aliases) in rows {
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                continue;
            };
            recs.push((name, ip));
            recs.push((id[..12.min(id.len())].to_string(), ip));
            let aliases: Vec<String> = serde_json::from_str(&aliases).unwrap_or_default();
            recs.extend(aliases.into_iter().map(|a| (a, ip)));
        }
        let file = dir.join("records");
        if recs.is_empty() {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("remove {}", file.display()))(e))
                }
                _ => {}
            }
            return Ok(());
        }
        write_file(&file, &net::dns::format_records(&recs))?;
        if self.dns_alive(&dir) {
            return Ok(());
        }
        let bin = self.monitor.with_file_name("berth-dns");
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg("--listen")
            .arg(netw.gateway.to_string())
            .arg("--records")
            .arg(&file)
            .arg("--resolv-conf")
            .arg(host_resolv_conf());
        if netw.internal {
            cmd.arg("--internal");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .map_err(io(format!("open {}", dir.join("log").display())))?;
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io(format!("run {}", bin.display())))?;
        let mut report = String::new();
        if let Some(out) = child.stdout.take() {
            use std::io::BufRead;
            let _ = std::io::BufReader::new(out).read_line(&mut report);
        }
        // It keeps running, detached; it is reaped by whoever adopts it once we exit.
        drop(child);
        match report.trim() {
            "ok" => Ok(()),
            r => Err(Error::Runtime(format!(
                "start the DNS responder of network {}: {}",
                netw.name,
                r.strip_prefix("error: ")
                    .unwrap_or("it ended without a report")
            ))),
        }
    }

    /// Whether the responder whose pid file is in `dir` runs.
    fn dns_alive(&self, dir: &std::path::Path) -> bool {
        let Some(pid) = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return false;
        };
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("berth-dns"))
    }

    /// Removes what a container's network left: map elements, namespace, host veths, rows,
    /// its DNS records. Idempotent; runs even when the monitor died.
    pub(crate) fn network_down(&self, c: &Container) -> Result<()> {
        self.drop_backend(&c.id)?;
        let atts = self.attachments(&c.id)?;
        let ports = self.published(&c.id)?;
        if let Some(a) = atts.iter().find(|a| a.ifname == "eth0") {
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
            for a in &atts {
                net::link::delete(&mut rt, &veth_name(&c.id, &a.ifname))?;
            }
        }
        let id = c.id.clone();
        self.with_db(|db| {
            db.write(|tx| {
                tx.execute("DELETE FROM net_ports WHERE container = ?1", [&id])?;
                tx.execute("DELETE FROM net_attachments WHERE container = ?1", [&id])
                    .map(|_| ())
            })
        })?;
        for a in &atts {
            if let Ok(n) = self.network(&a.network) {
                self.update_dns(&n)?;
            }
        }
        Ok(())
    }

    /// `network connect [--alias A] NET CTR`: another network for a container of a bridge
    /// network (`eth1`…), made at once if it runs, else at its next start.
    pub fn connect(
        &self,
        network: &str,
        reference: &str,
        aliases: &[String],
    ) -> Result<Attachment> {
        self.connect_ip(network, reference, aliases, None)
    }

    /// [`connect`](Self::connect) with the address asked for (`network connect --ip`, the
    /// Docker API's `IPAMConfig.IPv4Address`), allocated like `run --ip`'s.
    pub fn connect_ip(
        &self,
        network: &str,
        reference: &str,
        aliases: &[String],
        ip: Option<Ipv4Addr>,
    ) -> Result<Attachment> {
        for a in aliases {
            check_name(a)?;
        }
        let netw = self.network(network)?;
        let c = self.inspect(reference)?;
        if !matches!(Mode::parse(&c.spec.network.mode)?, Mode::Network(_)) {
            return Err(Error::Conflict(format!(
                "container {} has --network {}: only a container of a bridge network can be connected",
                c.name, c.spec.network.mode
            )));
        }
        if self
            .attachments(&c.id)?
            .iter()
            .any(|a| a.network == netw.name)
        {
            return Err(Error::Conflict(format!(
                "container {} is already connected to network {}",
                c.name, netw.name
            )));
        }
        if netw.name == DEFAULT_NETWORK && !aliases.is_empty() {
            return Err(invalid!("--alias needs a user network"));
        }
        let att = self.attach_network(
            &c,
            &netw,
            &AttachReq {
                ip,
                mac: None,
                aliases: aliases.to_vec(),
                primary: false,
            },
        )?;
        if c.state.is_active() && crate::container::alive(c.pid, c.pid_start) {
            self.kernel_attach(&c, &netw, &att)?;
        }
        self.update_dns(&netw)?;
        Ok(att)
    }

    /// `network disconnect NET CTR`: a network connected with `connect` (a container's own
    /// network stays).
    pub fn disconnect(&self, network: &str, reference: &str) -> Result<()> {
        let netw = self.network(network)?;
        let c = self.inspect(reference)?;
        let Some(att) = self
            .attachments(&c.id)?
            .into_iter()
            .find(|a| a.network == netw.name)
        else {
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                c.name, netw.name
            )));
        };
        if att.ifname == "eth0" {
            return Err(Error::Conflict(format!(
                "network {} is container {}'s own (--network): remove the container instead",
                netw.name, c.name
            )));
        }
        let mut rt = net::nl::Socket::route()?;
        net::link::delete(&mut rt, &veth_name(&c.id, &att.ifname))?;
        let (id, nname) = (c.id.clone(), netw.name.clone());
        self.with_db(|db| {
            db.write(|tx| {
                tx.execute(
                    "DELETE FROM net_attachments WHERE container = ?1 AND network = ?2",
                    [&id, &nname],
                )
                .map(|_| ())
            })
        })?;
        self.update_dns(&netw)
    }

    /// The network part of `system reset`: every network's bridge, berth's nftables table
    /// (services' elements with it) and the rows, services' too (containers are removed
    /// first).
    pub fn reset_networks(&self) -> Result<Vec<String>> {
        let nets = self.networks()?;
        let mut rt = net::nl::Socket::route()?;
        for n in &nets {
            net::link::delete(&mut rt, &n.bridge)?;
        }
        let mut nf = net::nl::Socket::netfilter()?;
        net::nft::delete_table(&mut nf)?;
        // The responders exit once their records are gone.
        match std::fs::remove_dir_all(self.runroot.join("dns")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove the DNS records")(e))
            }
            _ => {}
        }
        self.with_db(|db| {
            db.write(|tx| {
                tx.execute_batch(
                    "DELETE FROM net_ports; DELETE FROM net_attachments; DELETE FROM networks; \
                     DELETE FROM service_ports; DELETE FROM service_backends; DELETE FROM services;",
                )
            })
        })?;
        Ok(nets.into_iter().map(|n| n.name).collect())
    }
}

/// The host's resolver configuration: `$BERTH_RESOLV_CONF`, else `/etc/resolv.conf` (the
/// name servers containers get, and those a network's responder forwards to).
pub fn host_resolv_conf() -> PathBuf {
    std::env::var_os("BERTH_RESOLV_CONF")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/etc/resolv.conf"), PathBuf::from)
}

/// The host end of a container's veth (at most 15 bytes, IFNAMSIZ): `veth` + 11 hex digits
/// of its id for `eth0`, `vn` + 11 + the digit N for `ethN`.
pub fn veth_name(id: &str, ifname: &str) -> String {
    let short = &id[..11.min(id.len())];
    match ifname.strip_prefix("eth") {
        Some("0") | None => format!("veth{short}"),
        Some(n) => format!("vn{short}{n}"),
    }
}

/// What an attachment asks for.
#[derive(Clone, Debug, Default)]
struct AttachReq {
    ip: Option<Ipv4Addr>,
    mac: Option<String>,
    aliases: Vec<String>,
    /// The container's own network (`eth0`, its default route and published ports).
    primary: bool,
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
    bind_etc_files(&e.dir(&c.id), spec, false);
    Ok(())
}

/// Binds `dir`'s `hosts`, `hostname` and `resolv.conf` (those that exist) over the
/// container's `/etc` ones in config.json's mounts; with `keep_existing`, not where a mount
/// of that destination is already listed.
pub(crate) fn bind_etc_files(dir: &std::path::Path, spec: &mut Value, keep_existing: bool) {
    let Some(mounts) = spec["mounts"].as_array_mut() else {
        return;
    };
    for f in ["hosts", "hostname", "resolv.conf"] {
        let src = dir.join(f);
        let dst = format!("/etc/{f}");
        let listed = || mounts.iter().any(|m| m["destination"] == dst.as_str());
        if src.is_file() && !(keep_existing && listed()) {
            mounts.push(json!({
                "destination": dst,
                "type": "bind",
                "source": src,
                "options": ["rbind", "rprivate"]
            }));
        }
    }
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
        assert_eq!(veth_name("0123456789abcdef", "eth0"), "veth0123456789a");
        assert_eq!(veth_name("0123456789abcdef", "eth3"), "vn0123456789a3");
    }
}
