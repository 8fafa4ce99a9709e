//! The DNS responder of a user network (`berth-dns`, src/bin/dns.rs): on the network's
//! gateway address, port 53 (UDP), it answers A queries for the names of the network's
//! containers (name, aliases, short id) from a records file the engine rewrites whenever a
//! container joins or leaves, and forwards every other query to the host's resolvers (not
//! for an internal network: those answer NXDOMAIN). It exits once its records file is gone
//! (the network's last container left, the network was removed): started on demand, no
//! daemon. Messages are parsed and built with `hickory-proto` (RFC 1035 §4).

use crate::{io, Error, Result};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, DNSClass, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long answers may be cached: containers come and go.
const TTL: u32 = 10;

/// The records file's text: `NAME ADDRESS` lines.
pub fn format_records(recs: &[(String, Ipv4Addr)]) -> String {
    recs.iter().map(|(n, a)| format!("{n} {a}\n")).collect()
}

/// Parses a records file (bad lines skipped); names lower-cased.
pub fn parse_records(text: &str) -> HashMap<String, Ipv4Addr> {
    text.lines()
        .filter_map(|l| {
            let (n, a) = l.trim().split_once(' ')?;
            Some((n.to_ascii_lowercase(), a.trim().parse().ok()?))
        })
        .collect()
}

/// What to do with a query.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Forward the query as it is.
    Forward,
    /// Not a DNS query: drop it.
    Drop,
}

/// Answers `query` from `records` when it names one of them.
pub fn answer(query: &[u8], records: &HashMap<String, Ipv4Addr>, forward: bool) -> Reply {
    let Ok(req) = Message::from_vec(query) else {
        return Reply::Drop;
    };
    if req.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    let Some(q) = req.queries.first() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return resp.to_vec().map_or(Reply::Drop, Reply::Answer);
    };
    resp.add_query(q.clone());
    if req.metadata.op_code != OpCode::Query {
        resp.metadata.response_code = ResponseCode::NotImp;
        return resp.to_vec().map_or(Reply::Drop, Reply::Answer);
    }
    let name = q.name().to_ascii().to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    match records.get(name) {
        Some(addr) if q.query_class() == DNSClass::IN => {
            resp.metadata.authoritative = true;
            if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::A(A(*addr)),
                ));
            }
            // Other types of a known name: NOERROR, no records (no IPv6 addresses).
            resp.to_vec().map_or(Reply::Drop, Reply::Answer)
        }
        _ if forward => Reply::Forward,
        _ => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            resp.to_vec().map_or(Reply::Drop, Reply::Answer)
        }
    }
}

/// The name servers of a resolv.conf (port 53), without `except`.
pub fn upstreams(resolv_conf: &str, except: Ipv4Addr) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .filter(|a| *a != std::net::IpAddr::V4(except))
        .map(|a| SocketAddr::new(a, 53))
        .collect()
}

/// A responder bound on `listen:53`.
#[derive(Debug)]
pub struct Responder {
    sock: UdpSocket,
    records_file: PathBuf,
    upstreams: Vec<SocketAddr>,
    forward: bool,
}

impl Responder {
    pub fn bind(
        listen: Ipv4Addr,
        records_file: &Path,
        upstreams: Vec<SocketAddr>,
        forward: bool,
    ) -> Result<Responder> {
        let sock = UdpSocket::bind((listen, 53)).map_err(io(format!("bind {listen}:53/udp")))?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(io("set the socket's timeout"))?;
        Ok(Responder {
            sock,
            records_file: records_file.to_path_buf(),
            upstreams,
            forward,
        })
    }

    /// Serves until the records file is gone.
    pub fn serve(&self) -> Result<()> {
        let mut records = HashMap::new();
        let mut seen: Option<SystemTime> = None;
        let mut buf = [0u8; 4096];
        loop {
            let m = std::fs::metadata(&self.records_file).and_then(|m| m.modified());
            match m {
                Err(_) => {
                    tracing::info!(file = %self.records_file.display(), "records gone: exiting");
                    return Ok(());
                }
                Ok(t) if Some(t) != seen => {
                    let text = std::fs::read_to_string(&self.records_file).unwrap_or_default();
                    records = parse_records(&text);
                    seen = Some(t);
                }
                Ok(_) => {}
            }
            let (n, peer) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(io("receive a query")(e)),
            };
            // Re-read a file changed within its mtime's granularity.
            if let Ok(text) = std::fs::read_to_string(&self.records_file) {
                records = parse_records(&text);
            }
            let q = &buf[..n];
            match answer(q, &records, self.forward && !self.upstreams.is_empty()) {
                Reply::Answer(b) => {
                    let _ = self.sock.send_to(&b, peer);
                }
                Reply::Forward => {
                    let sock = self.sock.try_clone().map_err(io("clone the socket"))?;
                    let ups = self.upstreams.clone();
                    let q = q.to_vec();
                    std::thread::spawn(move || forward(&sock, peer, &q, &ups));
                }
                Reply::Drop => {}
            }
        }
    }
}

/// Relays one query to the first upstream that answers within 2 s.
fn forward(sock: &UdpSocket, peer: SocketAddr, q: &[u8], ups: &[SocketAddr]) {
    let mut buf = [0u8; 4096];
    for up in ups {
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(s) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.send_to(q, up).is_err() {
            continue;
        }
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            if from == *up {
                let _ = sock.send_to(&buf[..n], peer);
                return;
            }
        }
    }
}

/// A records-file path's check: the responder's arguments come from the engine, but a
/// path is still refused if it is not absolute.
pub fn check_path(p: &Path) -> Result<()> {
    if p.is_absolute() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the records file {} is not an absolute path",
            p.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_str(name).expect("name"), t));
        m.to_vec().expect("encode")
    }

    #[test]
    fn answers_known_names_and_forwards_the_rest() {
        let recs = parse_records("web 10.1.0.2\nDB 10.1.0.3\nbad line\n");
        match answer(&query("Web.", RecordType::A), &recs, true) {
            Reply::Answer(b) => {
                let m = Message::from_vec(&b).expect("decode");
                assert_eq!(m.metadata.response_code, ResponseCode::NoError);
                assert_eq!(m.answers.len(), 1);
                assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(10, 1, 0, 2))));
            }
            r => panic!("{r:?}"),
        }
        match answer(&query("db", RecordType::AAAA), &recs, true) {
            Reply::Answer(b) => assert!(Message::from_vec(&b).expect("decode").answers.is_empty()),
            r => panic!("{r:?}"),
        }
        assert_eq!(
            answer(&query("example.org.", RecordType::A), &recs, true),
            Reply::Forward
        );
        match answer(&query("example.org.", RecordType::A), &recs, false) {
            Reply::Answer(b) => assert_eq!(
                Message::from_vec(&b)
                    .expect("decode")
                    .metadata
                    .response_code,
                ResponseCode::NXDomain
            ),
            r => panic!("{r:?}"),
        }
        assert_eq!(answer(b"junk", &recs, true), Reply::Drop);
        assert_eq!(
            upstreams(
                "nameserver 10.1.0.1\nnameserver 127.0.0.53\n",
                Ipv4Addr::new(10, 1, 0, 1)
            ),
            vec!["127.0.0.53:53".parse::<SocketAddr>().expect("addr")]
        );
    }
}
