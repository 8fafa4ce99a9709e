//! berth-net against the kernel, inside a network namespace of the test's own (a thread
//! that unshared it; the commands it spawns inherit it): the nftables table as `nft` reads
//! it back, a bridge and a veth pair whose inner end is configured in a second namespace.
//! Needs root and the `nft` and `ip` tools (scripts/install-deps.sh).

use berth_net::ports::{PortMap, Proto};
use berth_net::{link, netns, nft, nl::Socket};
use std::net::Ipv4Addr;
use std::process::Command;

fn sh(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (install it: scripts/install-deps.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn table_bridge_and_veth_in_a_private_namespace() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    let dir = std::env::temp_dir().join(format!("berth-net-kernel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ctr_ns = dir.join("ctr");
    let t = std::thread::spawn({
        let ctr_ns = ctr_ns.clone();
        move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let mut s = Socket::netfilter().expect("socket");
            assert!(!nft::table_exists(&mut s).expect("look up"));
            assert!(nft::ensure_table(&mut s).expect("table"), "made now");
            assert!(!nft::ensure_table(&mut s).expect("table again"), "kept");
            let p = PortMap {
                proto: Proto::Tcp,
                host_ip: None,
                host_port: 8080,
                ctr_port: 80,
            };
            let q = PortMap {
                proto: Proto::Udp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 5353,
                ctr_port: 53,
            };
            let a = Ipv4Addr::new(10, 77, 0, 2);
            let mut elems = vec![nft::port_elem(&p, a), nft::port_elem(&q, a)];
            elems.extend(nft::bridge_elems("brtest0", false));
            assert!(!nft::has(&mut s, &elems[0]).expect("look up"));
            nft::add(&mut s, &elems).expect("elements");
            assert!(elems.iter().all(|e| nft::has(&mut s, e).expect("look up")));
            nft::ensure(&mut s, &elems).expect("ensure: all there already");
            // A key already there with other data is replaced.
            nft::add(&mut s, &[nft::port_elem(&p, Ipv4Addr::new(10, 77, 0, 3))]).expect("replace");
            let listed = sh(&["nft", "list", "table", "ip", "berth"]);
            for want in [
                "tcp . 8080 : 10.77.0.3 . 80",
                "127.0.0.1 . udp . 5353 : 10.77.0.2 . 53",
                "\"brtest0\" . \"brtest0\"",
                "fib daddr type local dnat ip to meta l4proto . th dport map @ports",
                "iifname @nat_bridges oifname != @bridges masquerade",
                "iifname @bridges oifname @bridges drop",
            ] {
                assert!(listed.contains(want), "no {want:?} in:\n{listed}");
            }
            nft::remove(&mut s, &elems).expect("remove");
            nft::remove(&mut s, &elems).expect("remove again (gone is fine)");
            let listed = sh(&["nft", "list", "table", "ip", "berth"]);
            assert!(
                !listed.contains("8080") && !listed.contains("brtest0"),
                "{listed}"
            );

            let mut r = Socket::route().expect("route socket");
            let gw = Ipv4Addr::new(10, 77, 0, 1);
            let br = link::ensure_bridge(&mut r, "brtest0", gw, 24).expect("bridge");
            assert_eq!(
                link::ensure_bridge(&mut r, "brtest0", gw, 24).expect("again"),
                br
            );
            assert!(netns::create(&ctr_ns).expect("netns"), "made now");
            assert!(!netns::create(&ctr_ns).expect("netns again"), "kept");
            let f = std::fs::File::open(&ctr_ns).expect("open netns");
            let mac = link::mac_for(a);
            link::add_veth(
                &mut r,
                "vethtest0",
                br,
                "eth0",
                mac,
                std::os::fd::AsFd::as_fd(&f),
            )
            .expect("veth");
            netns::run_in(&ctr_ns, move || {
                let mut s = Socket::route()?;
                link::configure_inner(&mut s, "eth0", a, 24, Some(gw))
            })
            .expect("inner");
            let links = sh(&["ip", "-o", "link", "show", "vethtest0"]);
            assert!(links.contains("master brtest0"), "{links}");
            let routes = link::routes_v4(&mut r).expect("routes");
            assert!(
                routes.contains(&(Ipv4Addr::new(10, 77, 0, 0), 24)),
                "{routes:?}"
            );
            let ping = Command::new("nsenter")
                .arg(format!("--net={}", ctr_ns.display()))
                .args(["busybox", "ping", "-c1", "-W2", "10.77.0.1"])
                .output()
                .expect("nsenter");
            assert!(ping.status.success(), "ping the gateway: {ping:?}");
            netns::remove(&ctr_ns);
            link::delete(&mut r, "vethtest0").expect("delete (gone with the namespace is fine)");
        }
    });
    let r = t.join();
    let _ = std::fs::remove_dir_all(&dir);
    r.expect("test thread");
}
