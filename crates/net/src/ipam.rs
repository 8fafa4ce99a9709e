//! Subnets and address allocation. The allocation itself is one transaction of the
//! engine's database (network.rs): it reads the addresses in use and inserts the one
//! [`pick`] chooses under a UNIQUE (network, address) constraint, so two concurrent starts
//! never get the same address.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet `a.b.c.d/len` (its address is the network's: host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr)
    }

    /// Whether the two share an address.
    pub fn overlaps(self, o: Subnet) -> bool {
        let m = self.mask() & o.mask();
        u32::from(self.addr) & m == u32::from(o.addr) & m
    }

    /// The first and last usable host addresses (network and broadcast excluded).
    pub fn hosts(self) -> (u32, u32) {
        let net = u32::from(self.addr);
        let last = net | !self.mask();
        if self.prefix >= 31 {
            (net, last)
        } else {
            (net + 1, last - 1)
        }
    }

    /// The conventional gateway: the first host address.
    pub fn first_host(self) -> Ipv4Addr {
        Ipv4Addr::from(self.hosts().0)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Subnet> {
        let bad = |why: &str| Error::Invalid(format!("invalid subnet {s:?}: {why}"));
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected an IPv4 CIDR such as 10.90.0.0/16"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| bad("the prefix length must be 8 to 30"))?;
        let sn = Subnet { addr, prefix };
        if u32::from(addr) & !sn.mask() != 0 {
            return Err(bad(&format!(
                "host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & sn.mask())
            )));
        }
        Ok(sn)
    }
}

impl TryFrom<String> for Subnet {
    type Error = Error;
    fn try_from(s: String) -> Result<Subnet> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// The lowest free address of `range` (within `subnet`), skipping `used` (which includes
/// the gateway). None when the range is full.
pub fn pick(subnet: Subnet, range: Option<Subnet>, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let (lo, hi) = subnet.hosts();
    let (lo, hi) = match range {
        Some(r) => {
            let (rl, rh) = r.hosts();
            (lo.max(rl), hi.min(rh))
        }
        None => (lo, hi),
    };
    let mut taken: Vec<u32> = used.iter().map(|a| u32::from(*a)).collect();
    taken.sort_unstable();
    let mut cand = lo;
    for t in taken {
        if t < cand {
            continue;
        }
        if t > cand {
            break;
        }
        cand = cand.checked_add(1)?;
    }
    (cand <= hi).then(|| Ipv4Addr::from(cand))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s: Subnet = "10.90.0.0/16".parse().expect("valid");
        assert!(s.contains(Ipv4Addr::new(10, 90, 255, 1)));
        assert!(!s.contains(Ipv4Addr::new(10, 91, 0, 1)));
        assert!(s.overlaps("10.90.3.0/24".parse().expect("valid")));
        assert!(!s.overlaps("10.91.0.0/16".parse().expect("valid")));
        for bad in [
            "10.90.0.1/16",
            "10.90.0.0",
            "10.90.0.0/33",
            "x/16",
            "10.0.0.0/4",
        ] {
            let e = bad.parse::<Subnet>().expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn picks_the_lowest_free() {
        let s: Subnet = "10.90.0.0/30".parse().expect("valid");
        let gw = s.first_host();
        assert_eq!(pick(s, None, &[gw]), Some(Ipv4Addr::new(10, 90, 0, 2)));
        assert_eq!(pick(s, None, &[gw, Ipv4Addr::new(10, 90, 0, 2)]), None);
        let s: Subnet = "10.90.0.0/24".parse().expect("valid");
        let r: Subnet = "10.90.0.128/25".parse().expect("valid");
        assert_eq!(pick(s, Some(r), &[gw]), Some(Ipv4Addr::new(10, 90, 0, 129)));
    }
}
