//! Services in berth's table: host ports that DNAT round-robin over a set of backends.
//!
//! Two maps and one rule per nat chain, added to the table the first time a service is
//! published (a table made before services existed is completed then); after that a
//! service is only map elements, like a published port:
//!
//! ```text
//! map svc  { inet_proto . inet_service . mark : ipv4_addr . inet_service }
//! map hsvc { ipv4_addr . inet_proto . inet_service . mark : ipv4_addr . inet_service }
//! chain prerouting / output:
//!     fib daddr type local dnat ip to ip daddr . meta l4proto . th dport . numgen inc mod 840 map @hsvc
//!     fib daddr type local dnat ip to meta l4proto . th dport . numgen inc mod 840 map @svc
//! ```
//!
//! The counter (`numgen inc`, nft's `NFT_NG_INCREMENTAL`: one step per new connection, the
//! nat chains see only a connection's first packet) runs modulo [`SLOTS`] = 840, the least
//! common multiple of 1…8: a port of a service with N backends has 840 elements, slot i
//! leading to backend i mod N, so successive connections go round the backends in turn
//! (exactly for N dividing 840, within 1/840 of even for any other N).

use super::*;

/// Slots of a service port (see the module doc).
pub const SLOTS: u32 = 840;

const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFT_NG_INCREMENTAL: u32 = 0;
const NFT_MSG_GETSET: u16 = 10;
const REG32_00: u32 = 8;
/// nft's `mark` (a 32-bit integer in host order): the slot's type, one of a fixed size so
/// that `nft list` can split the concatenation (its `integer` has none).
const TYPE_MARK: u32 = 19;

/// Set ids in the batch that makes them (distinct from the table's).
const SVC_ID: u32 = 101;
const HSVC_ID: u32 = 102;

/// One port of a service: where it answers and which backends (address, port) it reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcPort {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
}

impl Rule {
    /// `numgen inc mod SLOTS => reg`.
    fn numgen(self, dreg: u32) -> Rule {
        self.expr("numgen", |m| {
            m.be32(NFTA_NG_DREG, dreg)
                .be32(NFTA_NG_MODULUS, SLOTS)
                .be32(NFTA_NG_TYPE, NFT_NG_INCREMENTAL);
        })
    }

    /// `lookup` in a map made in the same batch (by its id).
    fn lookup_new(self, set: &str, id: u32, sreg: u32, dreg: u32) -> Rule {
        self.expr("lookup", |m| {
            m.str(1, set).be32(2, sreg).be32(3, dreg).be32(4, id);
        })
    }
}

fn set_exists(s: &mut Socket, name: &str) -> Result<bool> {
    let mut m = nfgen(NFT_MSG_GETSET, NLM_F_REQUEST | NLM_F_ACK, 0);
    m.str(NFTA_SET_TABLE, TABLE).str(NFTA_SET_NAME, name);
    match s.transact(&mut [m], &|_| format!("look up nftables set {name}")) {
        Ok(_) => Ok(true),
        Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Adds the service maps and rules to berth's table (made first if missing) unless they
/// are there.
pub fn ensure(s: &mut Socket) -> Result<()> {
    ensure_table(s)?;
    if set_exists(s, "svc")? {
        return Ok(());
    }
    let mut v = Vec::new();
    for (name, id, ktype, klen) in [
        (
            "svc",
            SVC_ID,
            concat(concat(TYPE_INET_PROTOCOL, TYPE_INET_SERVICE), TYPE_MARK),
            12,
        ),
        (
            "hsvc",
            HSVC_ID,
            concat(
                concat(concat(TYPE_IPADDR, TYPE_INET_PROTOCOL), TYPE_INET_SERVICE),
                TYPE_MARK,
            ),
            16,
        ),
    ] {
        let mut m = nfgen(NFT_MSG_NEWSET, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 0);
        m.str(NFTA_SET_TABLE, TABLE).str(NFTA_SET_NAME, name);
        m.be32(NFTA_SET_FLAGS, NFT_SET_MAP)
            .be32(NFTA_SET_KEY_TYPE, ktype)
            .be32(NFTA_SET_KEY_LEN, klen)
            .be32(NFTA_SET_DATA_TYPE, concat(TYPE_IPADDR, TYPE_INET_SERVICE))
            .be32(NFTA_SET_DATA_LEN, 8)
            .be32(NFTA_SET_ID, id);
        v.push(m);
    }
    for chain in ["prerouting", "output"] {
        v.push(
            Rule::new(chain)
                .daddr_local()
                .payload(BASE_NETWORK, 16, 4, REG32_00)
                .meta(META_L4PROTO, REG32_01)
                .payload(BASE_TRANSPORT, 2, 2, REG32_02)
                .numgen(REG32_03)
                .lookup_new("hsvc", HSVC_ID, REG32_00, REG_1)
                .dnat()
                .done(),
        );
        v.push(
            Rule::new(chain)
                .daddr_local()
                .meta(META_L4PROTO, REG32_00)
                .payload(BASE_TRANSPORT, 2, 2, REG32_01)
                .numgen(REG32_02)
                .lookup_new("svc", SVC_ID, REG32_00, REG_1)
                .dnat()
                .done(),
        );
    }
    let mut msgs = batch(v);
    match s.transact(&mut msgs, &|i| {
        format!("add the service maps to nftables table ip {TABLE} (message {i})")
    }) {
        Err(e) if nl::errno(&e) == Some(Errno::EEXIST) => Ok(()),
        r => r.map(|_| ()),
    }
}

fn key(p: &SvcPort, slot: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(16);
    if let Some(ip) = p.host_ip {
        k.extend_from_slice(&ip.octets());
    }
    k.extend_from_slice(&[Proto::number(p.proto), 0, 0, 0]);
    k.extend_from_slice(&port_slot(p.host_port));
    // numgen stores the number in host order (a u32 register).
    k.extend_from_slice(&slot.to_ne_bytes());
    k
}

fn set_of(p: &SvcPort) -> &'static str {
    if p.host_ip.is_some() {
        "hsvc"
    } else {
        "svc"
    }
}

/// The elements of port `p` leading to `backends` (address, port), round-robin.
pub fn elems(p: &SvcPort, backends: &[(Ipv4Addr, u16)]) -> Vec<Elem> {
    if backends.is_empty() {
        return Vec::new();
    }
    (0..SLOTS)
        .map(|i| {
            let (ip, port) = backends[i as usize % backends.len()];
            let mut data = ip.octets().to_vec();
            data.extend_from_slice(&port_slot(port));
            Elem {
                set: set_of(p),
                key: key(p, i),
                data: Some(data),
            }
        })
        .collect()
}

/// The keys of port `p` (for removal).
pub fn keys(p: &SvcPort) -> Vec<Elem> {
    (0..SLOTS)
        .map(|i| Elem {
            set: set_of(p),
            key: key(p, i),
            data: None,
        })
        .collect()
}

/// Messages of many elements of one set each (fewer messages and acks than one each).
fn many(kind: u16, flags: u16, elems: &[Elem]) -> Vec<Msg> {
    let mut out = Vec::new();
    for set in ["svc", "hsvc"] {
        let of: Vec<&Elem> = elems.iter().filter(|e| e.set == set).collect();
        for chunk in of.chunks(128) {
            let mut m = nfgen(kind, flags, 0);
            m.str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
                .str(NFTA_SET_ELEM_LIST_SET, set);
            m.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            for e in chunk {
                m.nest(NFTA_LIST_ELEM);
                m.nest(NFTA_SET_ELEM_KEY)
                    .attr(NFTA_DATA_VALUE, &e.key)
                    .end();
                if let Some(d) = &e.data {
                    m.nest(NFTA_SET_ELEM_DATA).attr(NFTA_DATA_VALUE, d).end();
                }
                m.end();
            }
            m.end();
            out.push(m);
        }
    }
    out
}

/// Replaces the elements `old` (keys) by `new` in one batch (one kernel transaction: no
/// moment without either). When some of `old` are gone already (the batch fails as a
/// whole), they are removed a message at a time, element by element where a message
/// fails, then `new` is added.
pub fn replace(s: &mut Socket, old: &[Elem], new: &[Elem]) -> Result<()> {
    let what = |_: usize| "replace the elements of a service in nftables".to_string();
    let del = |es: &[Elem]| many(NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, es);
    let add = many(
        NFT_MSG_NEWSETELEM,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        new,
    );
    let mut v = del(old);
    v.extend(add.iter().cloned());
    if v.is_empty() {
        return Ok(());
    }
    match s.transact(&mut batch(v), &what) {
        Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => {
            for chunk in old.chunks(128) {
                match s.transact(&mut batch(del(chunk)), &what) {
                    Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => {
                        for one in chunk {
                            match s.transact(&mut batch(del(std::slice::from_ref(one))), &what) {
                                Err(e) if nl::errno(&e) == Some(Errno::ENOENT) => {}
                                r => {
                                    r?;
                                }
                            }
                        }
                    }
                    r => {
                        r?;
                    }
                }
            }
            if add.is_empty() {
                return Ok(());
            }
            s.transact(&mut batch(add), &what).map(|_| ())
        }
        r => r.map(|_| ()),
    }
}

/// Whether element `e` (a key) is in its map.
pub fn has_elem(s: &mut Socket, e: &Elem) -> Result<bool> {
    has(s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_go_round_the_backends() {
        let p = SvcPort {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
        };
        let b = [
            (Ipv4Addr::new(10, 0, 0, 2), 80),
            (Ipv4Addr::new(10, 0, 0, 3), 80),
            (Ipv4Addr::new(10, 0, 0, 4), 80),
        ];
        let es = elems(&p, &b);
        assert_eq!(es.len(), SLOTS as usize);
        // tcp . 8080 . slot 4 (host order) : 10.0.0.3 . 80
        let mut k = vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0];
        k.extend_from_slice(&4u32.to_ne_bytes());
        assert_eq!(es[4].key, k);
        assert_eq!(es[4].data, Some(vec![10, 0, 0, 3, 0, 80, 0, 0]));
        for (i, e) in es.iter().enumerate() {
            assert_eq!(e.data.as_ref().map(|d| d[3]), Some(2 + (i % 3) as u8));
        }
        assert!(elems(&p, &[]).is_empty());
        let h = SvcPort {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            ..p
        };
        assert_eq!(
            (
                keys(&h)[0].set,
                keys(&h)[0].key.len(),
                keys(&p)[0].key.len()
            ),
            ("hsvc", 16, 12)
        );
    }
}
