//! Links, addresses and routes over rtnetlink (rtnetlink(7); `linux/if_link.h`,
//! `linux/rtnetlink.h`): the bridge of a network, a container's veth pair (its inner end
//! made directly in the container's namespace, given by file descriptor), the inner end's
//! address, `lo` and default route.

use crate::nl::{
    self, Msg, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use crate::{Error, Result};
use nix::errno::Errno;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// `struct ifinfomsg`.
fn ifinfo(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = AF_UNSPEC;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// A link's index by name, in this thread's network namespace.
pub fn index(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(crate::kernel(format!("find link {name}")))
}

/// Whether a link of that name exists in this thread's network namespace.
pub fn exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

fn ok_if_exists(r: Result<Vec<nl::Reply>>) -> Result<()> {
    match r {
        Err(e) if nl::errno(&e) == Some(Errno::EEXIST) => Ok(()),
        r => r.map(|_| ()),
    }
}

fn addr_msg(index: u32, addr: Ipv4Addr, prefix: u8) -> Msg {
    let mut m = Msg::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    let mut h = [0u8; 8];
    h[0] = AF_INET;
    h[1] = prefix;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    m.raw(&h);
    m.attr(IFA_LOCAL, &addr.octets());
    m.attr(IFA_ADDRESS, &addr.octets());
    if prefix < 31 {
        let host_bits = 32 - u32::from(prefix);
        let bcast = u32::from(addr) | ((1u64 << host_bits) - 1) as u32;
        m.attr(IFA_BROADCAST, &Ipv4Addr::from(bcast).octets());
    }
    m
}

fn up_msg(index: u32) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
    m.raw(&ifinfo(index, IFF_UP, IFF_UP));
    m
}

/// Makes the bridge `name` with `gateway/prefix` on it, up; what exists already is kept.
/// Its index.
pub fn ensure_bridge(s: &mut Socket, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<u32> {
    if !exists(name) {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        m.raw(&ifinfo(0, IFF_UP, IFF_UP));
        m.str(IFLA_IFNAME, name);
        m.nest(IFLA_LINKINFO).str(IFLA_INFO_KIND, "bridge").end();
        ok_if_exists(s.transact(&mut [m], &|_| format!("create bridge {name}")))?;
    }
    let idx = index(name)?;
    ok_if_exists(s.transact(&mut [addr_msg(idx, gateway, prefix)], &|_| {
        format!("add {gateway}/{prefix} to bridge {name}")
    }))?;
    s.transact(&mut [up_msg(idx)], &|_| format!("set bridge {name} up"))?;
    Ok(idx)
}

/// Deletes the link `name`; one that is not there is not an error.
pub fn delete(s: &mut Socket, name: &str) -> Result<()> {
    let mut m = Msg::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
    m.raw(&ifinfo(0, 0, 0));
    m.str(IFLA_IFNAME, name);
    match s.transact(&mut [m], &|_| format!("delete link {name}")) {
        Err(e) if matches!(nl::errno(&e), Some(Errno::ENODEV) | Some(Errno::ENOENT)) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// A veth pair: `host` (up, a port of the bridge `master`) here, and its peer `inner`
/// (MAC `mac`) made directly in the network namespace `ns`.
pub fn add_veth(
    s: &mut Socket,
    host: &str,
    master: u32,
    inner: &str,
    mac: [u8; 6],
    ns: BorrowedFd<'_>,
) -> Result<()> {
    let mut m = Msg::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    m.raw(&ifinfo(0, IFF_UP, IFF_UP));
    m.str(IFLA_IFNAME, host);
    m.u32(IFLA_MASTER, master);
    m.nest(IFLA_LINKINFO);
    m.str(IFLA_INFO_KIND, "veth");
    m.nest(IFLA_INFO_DATA).nest(VETH_INFO_PEER);
    m.raw(&ifinfo(0, 0, 0));
    m.str(IFLA_IFNAME, inner);
    m.attr(IFLA_ADDRESS, &mac);
    m.u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
    m.end().end().end();
    s.transact(&mut [m], &|_| format!("create veth pair {host}/{inner}"))
        .map(|_| ())
}

/// Inside a container's namespace (a socket made there): `lo` up, `ifname` with
/// `addr/prefix`, up, and the default route via `gateway` (none for an internal network).
pub fn configure_inner(
    s: &mut Socket,
    ifname: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<()> {
    let lo = index("lo")?;
    let idx = index(ifname)?;
    let mut msgs = vec![up_msg(lo), addr_msg(idx, addr, prefix), up_msg(idx)];
    if let Some(gw) = gateway {
        let mut m = Msg::new(
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        m.raw(&[
            AF_INET,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_STATIC,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ]);
        m.attr(RTA_GATEWAY, &gw.octets());
        m.u32(RTA_OIF, idx);
        msgs.push(m);
    }
    let what = |i: usize| match i {
        0 => "set lo up".to_string(),
        1 => format!("add {addr}/{prefix} to {ifname}"),
        2 => format!("set {ifname} up"),
        _ => format!("add the default route via {}", gateway.unwrap_or(addr)),
    };
    s.transact(&mut msgs, &what).map(|_| ())
}

/// Sets `lo` up (a new namespace's only link is down).
pub fn lo_up(s: &mut Socket) -> Result<()> {
    let lo = index("lo")?;
    s.transact(&mut [up_msg(lo)], &|_| "set lo up".into())
        .map(|_| ())
}

/// The IPv4 destinations (address, prefix length) of this namespace's routes, every table.
pub fn routes_v4(s: &mut Socket) -> Result<Vec<(Ipv4Addr, u8)>> {
    let mut m = Msg::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP);
    m.raw(&[AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let replies = s.transact(&mut [m], &|_| "list routes".into())?;
    let mut out = Vec::new();
    for r in replies {
        if r.payload.len() < 12 || r.payload[0] != AF_INET {
            continue;
        }
        let dst_len = r.payload[1];
        let mut dst = Ipv4Addr::UNSPECIFIED;
        for (k, v) in nl::attrs(&r.payload, 12) {
            if k == RTA_DST && v.len() == 4 {
                dst = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
            }
        }
        out.push((dst, dst_len));
    }
    Ok(out)
}

/// A locally administered MAC from an address (Docker's `02:42:` + the IPv4 address).
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`, unicast; one clear error otherwise.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || Error::Invalid(format!("invalid MAC address {s:?} (aa:bb:cc:dd:ee:ff)"));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *m = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 {
        return Err(Error::Invalid(format!(
            "invalid MAC address {s:?}: a multicast address cannot be a container's"
        )));
    }
    Ok(mac)
}

pub fn format_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:0a:00:00:02").ok(),
            Some([2, 0x42, 10, 0, 0, 2])
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("zz:00:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert_eq!(
            format_mac(mac_for(Ipv4Addr::new(10, 1, 2, 3))),
            "02:42:0a:01:02:03"
        );
    }
}
