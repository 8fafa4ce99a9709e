//! Helpers of the network tests (tests/network.rs): every berth command runs inside a
//! network namespace the test made (`ip netns add`, entered with `nsenter --net`, which
//! leaves the mount namespace alone so berth's netns files stay visible), so the bridges,
//! nftables table and NAT live there; a second namespace, routed to it over a veth pair,
//! plays an outside host. Nothing touches the host's own network.

use crate::images::*;
use crate::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
}

fn run(cmd: &[&str]) -> Output {
    let mut c = Command::new(cmd[0]);
    c.args(&cmd[1..]);
    capture(c, Capture::Pipes, BERTH_TIMEOUT)
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        let name = format!(
            "bt-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]).ok();
        let ns = NetNs { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]).ok();
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command inside the namespace.
    pub fn command(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).args(cmd);
        c
    }

    pub fn exec(&self, cmd: &[&str]) -> Output {
        capture(self.command(cmd), Capture::Pipes, BERTH_TIMEOUT)
    }

    /// The names of its links.
    pub fn links(&self) -> Vec<String> {
        let out = self.exec(&["ip", "-o", "link", "show"]);
        out.ok();
        out.stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// `nft list table ip berth` (empty when there is none).
    pub fn nft(&self) -> String {
        self.exec(&["nft", "list", "table", "ip", "berth"]).stdout
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// A berth store whose commands run inside a namespace of the test's; its containers and
/// networks are removed when the test ends.
pub struct NetEng {
    pub s: Store,
    pub ns: NetNs,
}

impl NetEng {
    pub fn new(name: &str) -> NetEng {
        let s = Store::new(&format!("net-{name}"));
        s.import_busybox("busybox");
        NetEng {
            s,
            ns: NetNs::new(name),
        }
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_env(args, &[])
    }

    /// A berth command with extra environment variables.
    pub fn berth_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.ns.command(&[]);
        c.envs(env.iter().copied());
        c.arg(berth_bin())
            .arg("--root")
            .arg(self.s.root())
            .arg("--runroot")
            .arg(self.s.dir.join("run"))
            .env("BERTH_RUNTIME", runtime_bin())
            .args(args);
        capture(c, Capture::Pipes, BERTH_TIMEOUT)
    }

    /// `run -d ARGS…`: the container's id.
    #[track_caller]
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        let out = self.berth(&a);
        out.ok();
        out.stdout.trim().to_string()
    }

    pub fn inspect(&self, c: &str) -> Value {
        let out = self.berth(&["inspect", c]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).expect("inspect prints JSON");
        v[0].clone()
    }

    /// The container's address on `network`.
    pub fn ip(&self, c: &str, network: &str) -> String {
        let v = self.inspect(c);
        v["NetworkSettings"]["Networks"][network]["IPAddress"]
            .as_str()
            .unwrap_or_else(|| panic!("no address of {c} on {network}: {v:#}"))
            .to_string()
    }

    /// Polls the container's log until it holds `needle`.
    #[track_caller]
    pub fn log_until(&self, c: &str, needle: &str) -> String {
        let mut last = String::new();
        let got = poll(std::time::Duration::from_secs(15), || {
            let o = self.berth(&["logs", c]);
            last = format!("{}{}", o.stdout, o.stderr);
            last.contains(needle).then(|| last.clone())
        });
        got.unwrap_or_else(|| panic!("the log of {c} never showed {needle:?}:\n{last}"))
    }

    /// An "outside host": a namespace joined to this one by a veth pair (192.0.2.0/30
    /// between them, TEST-NET-1, routed only inside the test's namespaces).
    pub fn outside(&self) -> NetNs {
        let o = NetNs::new("out");
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (format!("bto{n}a"), format!("bto{n}b"));
        self.ns
            .exec(&[
                "ip", "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &o.name,
            ])
            .ok();
        self.ns
            .exec(&["ip", "addr", "add", "192.0.2.1/30", "dev", &a])
            .ok();
        self.ns.exec(&["ip", "link", "set", &a, "up"]).ok();
        o.exec(&["ip", "addr", "add", "192.0.2.2/30", "dev", &b])
            .ok();
        o.exec(&["ip", "link", "set", &b, "up"]).ok();
        o.exec(&["ip", "route", "add", "default", "via", "192.0.2.1"])
            .ok();
        o
    }
}

impl Drop for NetEng {
    fn drop(&mut self) {
        let pods = self.berth(&["pod", "ls", "-q", "--no-trunc"]);
        for id in pods.stdout.split_whitespace() {
            let _ = self.berth(&["pod", "rm", "-f", id]);
        }
        let out = self.berth(&["ps", "-a", "-q"]);
        for id in out.stdout.split_whitespace() {
            let _ = self.berth(&["rm", "-f", id]);
        }
    }
}

/// An HTTP/1.0 GET with curl (from the namespace it runs in): the body, or None.
pub fn http_get(ns: &NetNs, url: &str) -> Option<String> {
    let o = ns.exec(&["curl", "-s", "-m", "5", url]);
    o.success().then_some(o.stdout)
}

/// A DNS server for the tests' outside host: on `192.0.2.2:53` inside `ns` (a thread that
/// joined it), it answers every A query with `answer` until dropped.
pub struct FakeUpstream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn start(ns: &NetNs, answer: std::net::Ipv4Addr) -> FakeUpstream {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let path = ns.path();
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = std::net::UdpSocket::bind("192.0.2.2:53").expect("bind 192.0.2.2:53");
            sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
                .expect("timeout");
            tx.send(()).expect("ready");
            let mut buf = [0u8; 1500];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // Header, the question (labels up to the root, type, class), one A record.
                let mut end = 12;
                while end < n && buf[end] != 0 {
                    end += 1 + buf[end] as usize;
                }
                end += 5;
                if end > n {
                    continue;
                }
                let mut r = buf[..end].to_vec();
                r[2] |= 0x80;
                r[3] = 0x80;
                r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
                r.extend_from_slice(&answer.octets());
                let _ = sock.send_to(&r, peer);
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the fake upstream never listened");
        FakeUpstream {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
