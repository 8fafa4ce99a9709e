//! berth's nftables table `ip berth`, spoken over netlink (NETLINK_NETFILTER, subsystem
//! NFNL_SUBSYS_NFTABLES; the message and attribute layout of `linux/netfilter/nf_tables.h`),
//! in batches (NFNL_MSG_BATCH_BEGIN … END: one atomic transaction of the kernel).
//!
//! The table is made once, whole, in one batch; after that everything a network or a
//! container adds is a set element, never a rule:
//!
//! ```text
//! map ports  { inet_proto . inet_service : ipv4_addr . inet_service }   -p HOSTPORT:CTRPORT
//! map hports { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service } -p IP:…
//! set bridges, nat_bridges, internal { ifname }    set same { ifname . ifname }
//! chain prerouting (nat, dstnat) / output (nat, dstnat):
//!     fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @hports
//!     fib daddr type local dnat ip to meta l4proto . th dport map @ports
//! chain postrouting (nat, srcnat):
//!     ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade   (127.0.0.1 publishing)
//!     ct status dnat iifname @bridges oifname @bridges masquerade       (hairpin)
//!     iifname @nat_bridges oifname != @bridges masquerade               (outbound)
//! chain forward (filter):
//!     iifname . oifname @same accept; iifname @internal drop; oifname @internal drop
//!     ct status dnat accept; iifname @bridges oifname @bridges drop   (isolation)
//! ```
//!
//! Why hand-made messages: the Rust bindings are either GPL (`rustables`, which berth's
//! Apache-2.0 binaries cannot link) or wrap the C libnftnl (`nftnl`, an extra shared
//! library on every host); the handful of message kinds berth needs is small, and speaking
//! netlink directly keeps a container's start free of any process or C library.

use crate::nl::{self, Msg, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use crate::ports::{PortMap, Proto};
use crate::Result;
use nix::errno::Errno;
use std::net::Ipv4Addr;

pub const TABLE: &str = "berth";

pub mod svc;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLM_F_APPEND: u16 = 0x800;

const NFPROTO_IPV4: u8 = 2;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFT_SET_MAP: u32 = 0x8;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

// Registers: NFT_REG_1 is 16 bytes, the same storage as NFT_REG32_00..03.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
const REG32_01: u32 = 9;
const REG32_02: u32 = 10;
const REG32_03: u32 = 11;

const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

// Hooks (`linux/netfilter.h` nf_inet_hooks).
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;

// nft's datatype ids (for `nft list` to print elements readably; the kernel ignores them),
// concatenations as nft composes them (each type shifted by 6 bits).
const TYPE_IPADDR: u32 = 7;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
const fn concat(a: u32, b: u32) -> u32 {
    (a << 6) | b
}

/// The sets of the table: (name, id in the creating batch, key type, key length, data
/// type and length for maps).
/// (name, id, key type, key length, (data type, data length) of a map).
type SetDef = (&'static str, u32, u32, u32, Option<(u32, u32)>);

const SETS: &[SetDef] = &[
    (
        "ports",
        1,
        concat(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE),
        8,
        Some((concat(TYPE_IPADDR, TYPE_INET_SERVICE), 8)),
    ),
    (
        "hports",
        2,
        concat(concat(TYPE_IPADDR, TYPE_INET_PROTOCOL), TYPE_INET_SERVICE),
        12,
        Some((concat(TYPE_IPADDR, TYPE_INET_SERVICE), 8)),
    ),
    ("bridges", 3, TYPE_IFNAME, 16, None),
    ("nat_bridges", 4, TYPE_IFNAME, 16, None),
    ("internal", 5, TYPE_IFNAME, 16, None),
    ("same", 6, concat(TYPE_IFNAME, TYPE_IFNAME), 32, None),
];

fn set_id(name: &str) -> u32 {
    SETS.iter().find(|s| s.0 == name).map_or(0, |s| s.1)
}

fn nfgen(kind: u16, flags: u16, res_id: u16) -> Msg {
    let mut m = Msg::new((NFNL_SUBSYS_NFTABLES << 8) | kind, flags);
    let mut h = [0u8; 4];
    h[0] = NFPROTO_IPV4;
    h[2..4].copy_from_slice(&res_id.to_be_bytes());
    m.raw(&h);
    m
}

/// A batch: BEGIN, the messages, END.
fn batch(inner: Vec<Msg>) -> Vec<Msg> {
    let mut v = Vec::with_capacity(inner.len() + 2);
    let mut b = Msg::new(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST);
    b.raw(&[0, 0, 0, NFNL_SUBSYS_NFTABLES as u8]);
    v.push(b);
    v.extend(inner);
    let mut e = Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST);
    e.raw(&[0, 0, 0, NFNL_SUBSYS_NFTABLES as u8]);
    v.push(e);
    v
}

/// Builds one rule's expressions.
struct Rule {
    m: Msg,
}

impl Rule {
    fn new(chain: &str) -> Rule {
        let mut m = nfgen(
            NFT_MSG_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
            0,
        );
        m.str(NFTA_RULE_TABLE, TABLE).str(NFTA_RULE_CHAIN, chain);
        m.nest(NFTA_RULE_EXPRESSIONS);
        Rule { m }
    }

    fn expr(mut self, name: &str, f: impl FnOnce(&mut Msg)) -> Rule {
        self.m
            .nest(NFTA_LIST_ELEM)
            .str(NFTA_EXPR_NAME, name)
            .nest(NFTA_EXPR_DATA);
        f(&mut self.m);
        self.m.end().end();
        self
    }

    fn data(m: &mut Msg, kind: u16, v: &[u8]) {
        m.nest(kind).attr(NFTA_DATA_VALUE, v).end();
    }

    /// `meta KEY => reg`.
    fn meta(self, key: u32, dreg: u32) -> Rule {
        self.expr("meta", |m| {
            m.be32(1, dreg).be32(2, key);
        })
    }

    /// `payload load LEN @ BASE + OFFSET => reg`.
    fn payload(self, base: u32, offset: u32, len: u32, dreg: u32) -> Rule {
        self.expr("payload", |m| {
            m.be32(1, dreg).be32(2, base).be32(3, offset).be32(4, len);
        })
    }

    /// `cmp OP reg DATA` (op 0 eq, 1 neq).
    fn cmp(self, sreg: u32, op: u32, v: &[u8]) -> Rule {
        self.expr("cmp", |m| {
            m.be32(1, sreg).be32(2, op);
            Rule::data(m, 3, v);
        })
    }

    /// `bitwise reg = (reg & mask) ^ 0`.
    fn and(self, reg: u32, mask: &[u8]) -> Rule {
        let zero = vec![0u8; mask.len()];
        self.expr("bitwise", |m| {
            m.be32(1, reg).be32(2, reg).be32(3, mask.len() as u32);
            Rule::data(m, 4, mask);
            Rule::data(m, 5, &zero);
        })
    }

    /// `lookup reg @set [dreg]`, inverted with `inv`.
    fn lookup(self, set: &str, sreg: u32, dreg: Option<u32>, inv: bool) -> Rule {
        self.expr("lookup", |m| {
            m.str(1, set).be32(2, sreg).be32(4, set_id(set));
            if let Some(d) = dreg {
                m.be32(3, d);
            }
            if inv {
                m.be32(5, 1);
            }
        })
    }

    /// `fib daddr type => reg; cmp eq reg local`.
    fn daddr_local(self) -> Rule {
        const NFTA_FIB_F_DADDR: u32 = 2;
        const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
        const RTN_LOCAL: u32 = 2;
        self.expr("fib", |m| {
            m.be32(1, REG_1)
                .be32(2, NFT_FIB_RESULT_ADDRTYPE)
                .be32(3, NFTA_FIB_F_DADDR);
        })
        .cmp(REG_1, 0, &RTN_LOCAL.to_ne_bytes())
    }

    /// `ct status & dnat != 0`.
    fn ct_dnat(self) -> Rule {
        const NFT_CT_STATUS: u32 = 2;
        const IPS_DST_NAT: u32 = 0x20;
        self.expr("ct", |m| {
            m.be32(1, REG_1).be32(2, NFT_CT_STATUS);
        })
        .and(REG_1, &IPS_DST_NAT.to_ne_bytes())
        .cmp(REG_1, 1, &0u32.to_ne_bytes())
    }

    fn verdict(self, code: u32) -> Rule {
        self.expr("immediate", |m| {
            m.be32(1, REG_VERDICT)
                .nest(2)
                .nest(NFTA_DATA_VERDICT)
                .be32(NFTA_VERDICT_CODE, code)
                .end()
                .end();
        })
    }

    /// `dnat ip to` the address in REG_1 and the port in REG32_01.
    fn dnat(self) -> Rule {
        const NFT_NAT_DNAT: u32 = 1;
        self.expr("nat", |m| {
            m.be32(1, NFT_NAT_DNAT)
                .be32(2, u32::from(NFPROTO_IPV4))
                .be32(3, REG_1)
                .be32(5, REG32_01);
        })
    }

    fn masquerade(mut self) -> Rule {
        self.m
            .nest(NFTA_LIST_ELEM)
            .str(NFTA_EXPR_NAME, "masq")
            .end();
        self
    }

    fn done(mut self) -> Msg {
        self.m.end();
        self.m
    }
}

const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_L4PROTO: u32 = 16;
const BASE_NETWORK: u32 = 1;
const BASE_TRANSPORT: u32 = 2;

fn table_batch() -> Vec<Msg> {
    let mut v = Vec::new();
    let mut t = nfgen(
        NFT_MSG_NEWTABLE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        0,
    );
    t.str(NFTA_TABLE_NAME, TABLE);
    v.push(t);
    for (name, kind, hook, prio, policy) in [
        ("prerouting", "nat", NF_INET_PRE_ROUTING, -100i32, None),
        ("output", "nat", NF_INET_LOCAL_OUT, -100, None),
        ("postrouting", "nat", NF_INET_POST_ROUTING, 100, None),
        ("forward", "filter", NF_INET_FORWARD, 0, Some(NF_ACCEPT)),
    ] {
        let mut c = nfgen(
            NFT_MSG_NEWCHAIN,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            0,
        );
        c.str(NFTA_CHAIN_TABLE, TABLE).str(NFTA_CHAIN_NAME, name);
        c.nest(NFTA_CHAIN_HOOK)
            .be32(NFTA_HOOK_HOOKNUM, hook)
            .attr(NFTA_HOOK_PRIORITY, &prio.to_be_bytes())
            .end();
        if let Some(p) = policy {
            c.be32(NFTA_CHAIN_POLICY, p);
        }
        c.str(NFTA_CHAIN_TYPE, kind);
        v.push(c);
    }
    for (name, id, ktype, klen, data) in SETS {
        let mut s = nfgen(NFT_MSG_NEWSET, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 0);
        s.str(NFTA_SET_TABLE, TABLE).str(NFTA_SET_NAME, name);
        s.be32(NFTA_SET_FLAGS, if data.is_some() { NFT_SET_MAP } else { 0 });
        s.be32(NFTA_SET_KEY_TYPE, *ktype)
            .be32(NFTA_SET_KEY_LEN, *klen);
        if let Some((dtype, dlen)) = data {
            s.be32(NFTA_SET_DATA_TYPE, *dtype)
                .be32(NFTA_SET_DATA_LEN, *dlen);
        }
        s.be32(NFTA_SET_ID, *id);
        v.push(s);
    }
    for chain in ["prerouting", "output"] {
        v.push(
            Rule::new(chain)
                .daddr_local()
                .payload(BASE_NETWORK, 16, 4, REG32_01)
                .meta(META_L4PROTO, REG32_02)
                .payload(BASE_TRANSPORT, 2, 2, REG32_03)
                .lookup("hports", REG32_01, Some(REG_1), false)
                .dnat()
                .done(),
        );
        v.push(
            Rule::new(chain)
                .daddr_local()
                .meta(META_L4PROTO, REG_1)
                .payload(BASE_TRANSPORT, 2, 2, REG32_01)
                .lookup("ports", REG_1, Some(REG_1), false)
                .dnat()
                .done(),
        );
    }
    v.push(
        Rule::new("postrouting")
            .ct_dnat()
            .payload(BASE_NETWORK, 12, 4, REG_1)
            .and(REG_1, &[255, 0, 0, 0])
            .cmp(REG_1, 0, &[127, 0, 0, 0])
            .meta(META_OIFNAME, REG_1)
            .lookup("bridges", REG_1, None, false)
            .masquerade()
            .done(),
    );
    v.push(
        Rule::new("postrouting")
            .ct_dnat()
            .meta(META_IIFNAME, REG_1)
            .lookup("bridges", REG_1, None, false)
            .meta(META_OIFNAME, REG_1)
            .lookup("bridges", REG_1, None, false)
            .masquerade()
            .done(),
    );
    v.push(
        Rule::new("postrouting")
            .meta(META_IIFNAME, REG_1)
            .lookup("nat_bridges", REG_1, None, false)
            .meta(META_OIFNAME, REG_1)
            .lookup("bridges", REG_1, None, true)
            .masquerade()
            .done(),
    );
    v.push(
        Rule::new("forward")
            .meta(META_IIFNAME, REG_1)
            .meta(META_OIFNAME, REG_2)
            .lookup("same", REG_1, None, false)
            .verdict(NF_ACCEPT)
            .done(),
    );
    for key in [META_IIFNAME, META_OIFNAME] {
        v.push(
            Rule::new("forward")
                .meta(key, REG_1)
                .lookup("internal", REG_1, None, false)
                .verdict(NF_DROP)
                .done(),
        );
    }
    v.push(Rule::new("forward").ct_dnat().verdict(NF_ACCEPT).done());
    v.push(
        Rule::new("forward")
            .meta(META_IIFNAME, REG_1)
            .lookup("bridges", REG_1, None, false)
            .meta(META_OIFNAME, REG_1)
            .lookup("bridges", REG_1, None, false)
            .verdict(NF_DROP)
            .done(),
    );
    v
}

/// Whether berth's table exists (a read: no transaction).
pub fn table_exists(s: &mut Socket) -> Result<bool> {
    let mut t = nfgen(NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, 0);
    t.str(NFTA_TABLE_NAME, TABLE);
    match s.transact(&mut [t], &|_| format!("look up nftables table ip {TABLE}")) {
        Ok(_) => Ok(true),
        Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether an element is in its set (a read: no transaction).
pub fn has(s: &mut Socket, e: &Elem) -> Result<bool> {
    let mut m = elem_msg(
        NFT_MSG_GETSETELEM,
        NLM_F_REQUEST | NLM_F_ACK,
        &Elem {
            data: None,
            ..e.clone()
        },
    );
    match s.transact(std::slice::from_mut(&mut m), &|_| {
        format!("look up an element of nftables set {}", e.set)
    }) {
        Ok(_) => Ok(true),
        Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes berth's table (whole, in one batch) unless it exists; whether it was made now.
/// The look-up first: a batch that fails still costs the kernel a transaction.
pub fn ensure_table(s: &mut Socket) -> Result<bool> {
    if table_exists(s)? {
        return Ok(false);
    }
    let mut msgs = batch(table_batch());
    let n = msgs.len();
    let what = |i: usize| match i {
        1 => format!("create nftables table ip {TABLE}"),
        i if i + 1 < n => format!("create nftables table ip {TABLE} (message {i})"),
        _ => "nftables batch".to_string(),
    };
    match s.transact(&mut msgs, &what) {
        Err(e) if nl::errno(&e) == Some(Errno::EEXIST) => Ok(false),
        r => r.map(|_| true),
    }
}

/// Adds those of `elems` that are missing (looked up first; adding is a transaction).
pub fn ensure(s: &mut Socket, elems: &[Elem]) -> Result<()> {
    let mut missing = Vec::new();
    for e in elems {
        if !has(s, e)? {
            missing.push(e.clone());
        }
    }
    add(s, &missing)
}

/// Deletes berth's table (`system reset`); a missing one is fine.
pub fn delete_table(s: &mut Socket) -> Result<()> {
    let mut t = nfgen(NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK, 0);
    t.str(NFTA_TABLE_NAME, TABLE);
    match s.transact(&mut batch(vec![t]), &|_| {
        format!("delete nftables table ip {TABLE}")
    }) {
        Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// One element of a set or map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elem {
    pub set: &'static str,
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
}

fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = vec![0u8; 16];
    let b = name.as_bytes();
    k[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
    k
}

/// A 2-byte port in a 4-byte register slot (network order, zero padded).
fn port_slot(p: u16) -> [u8; 4] {
    let b = p.to_be_bytes();
    [b[0], b[1], 0, 0]
}

/// The elements of a published port that leads to `addr`.
pub fn port_elem(p: &PortMap, addr: Ipv4Addr) -> Elem {
    let mut data = addr.octets().to_vec();
    data.extend_from_slice(&port_slot(p.ctr_port));
    let mut key = Vec::with_capacity(12);
    if let Some(ip) = p.host_ip {
        key.extend_from_slice(&ip.octets());
    }
    key.extend_from_slice(&[Proto::number(p.proto), 0, 0, 0]);
    key.extend_from_slice(&port_slot(p.host_port));
    Elem {
        set: if p.host_ip.is_some() {
            "hports"
        } else {
            "ports"
        },
        key,
        data: Some(data),
    }
}

/// The elements of a network's bridge.
pub fn bridge_elems(bridge: &str, internal: bool) -> Vec<Elem> {
    let k = ifname_key(bridge);
    let mut pair = k.clone();
    pair.extend_from_slice(&k);
    vec![
        Elem {
            set: "bridges",
            key: k.clone(),
            data: None,
        },
        Elem {
            set: "same",
            key: pair,
            data: None,
        },
        Elem {
            set: if internal { "internal" } else { "nat_bridges" },
            key: k,
            data: None,
        },
    ]
}

fn elem_msg(kind: u16, flags: u16, e: &Elem) -> Msg {
    let mut m = nfgen(kind, flags, 0);
    m.str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
        .str(NFTA_SET_ELEM_LIST_SET, e.set);
    m.nest(NFTA_SET_ELEM_LIST_ELEMENTS).nest(NFTA_LIST_ELEM);
    m.nest(NFTA_SET_ELEM_KEY)
        .attr(NFTA_DATA_VALUE, &e.key)
        .end();
    if let Some(d) = &e.data {
        m.nest(NFTA_SET_ELEM_DATA).attr(NFTA_DATA_VALUE, d).end();
    }
    m.end().end();
    m
}

/// Adds elements in one batch; an element whose key is there with other data (left by a
/// container that is gone) is replaced.
pub fn add(s: &mut Socket, elems: &[Elem]) -> Result<()> {
    if elems.is_empty() {
        return Ok(());
    }
    let msgs = |_: ()| {
        batch(
            elems
                .iter()
                .map(|e| {
                    elem_msg(
                        NFT_MSG_NEWSETELEM,
                        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
                        e,
                    )
                })
                .collect(),
        )
    };
    let what = |i: usize| match elems.get(i.wrapping_sub(1)) {
        Some(e) => format!("add an element to nftables set {}", e.set),
        None => "nftables batch".into(),
    };
    match s.transact(&mut msgs(()), &what) {
        Err(e) if matches!(nl::errno(&e), Some(Errno::EEXIST) | Some(Errno::EBUSY)) => {
            remove(s, elems)?;
            s.transact(&mut msgs(()), &what).map(|_| ())
        }
        r => r.map(|_| ()),
    }
}

/// Removes elements; those not there are fine.
pub fn remove(s: &mut Socket, elems: &[Elem]) -> Result<()> {
    if elems.is_empty() {
        return Ok(());
    }
    let one = |s: &mut Socket, es: &[Elem]| {
        let mut msgs = batch(
            es.iter()
                .map(|e| elem_msg(NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, e))
                .collect(),
        );
        s.transact(&mut msgs, &|_| "remove an nftables set element".into())
    };
    match one(s, elems) {
        Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => {
            // Some were gone already: the rest one by one.
            for e in elems {
                match one(s, std::slice::from_ref(e)) {
                    Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => {}
                    r => {
                        r?;
                    }
                }
            }
            Ok(())
        }
        r => r.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_elements() {
        let p = PortMap {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 80,
            ctr_port: 8080,
        };
        // As `nft --debug=netlink` shows `tcp . 80 : 10.1.1.1 . 8080`.
        let e = port_elem(&p, Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(e.key, [6, 0, 0, 0, 0, 0x50, 0, 0]);
        assert_eq!(e.data, Some(vec![10, 1, 1, 1, 0x1f, 0x90, 0, 0]));
        let e = port_elem(
            &PortMap {
                host_ip: Some(Ipv4Addr::LOCALHOST),
                ..p
            },
            Ipv4Addr::new(10, 1, 1, 1),
        );
        assert_eq!((e.set, e.key.len()), ("hports", 12));
    }
}
