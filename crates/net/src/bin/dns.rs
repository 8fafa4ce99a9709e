//! `berth-dns --listen GATEWAY --records FILE [--resolv-conf FILE] [--internal]`: the DNS responder of one user
//! network (see berth-net's dns.rs), started by the engine when a container joins the
//! network. It detaches (a session of its own), reports `ok` (or `error: …`) on its stdout
//! once it listens, and exits when its records file is removed.
#![forbid(unsafe_code)]

use berth_net::dns;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

fn main() {
    let mut listen: Option<Ipv4Addr> = None;
    let mut records: Option<PathBuf> = None;
    let mut internal = false;
    let mut resolv_conf = PathBuf::from("/etc/resolv.conf");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = it.next().and_then(|v| v.parse().ok()),
            "--records" => records = it.next().map(PathBuf::from),
            "--internal" => internal = true,
            "--resolv-conf" => {
                if let Some(p) = it.next() {
                    resolv_conf = PathBuf::from(p);
                }
            }
            _ => {
                println!("error: unexpected argument {a:?}");
                std::process::exit(2);
            }
        }
    }
    let (Some(listen), Some(records)) = (listen, records) else {
        println!("error: --listen ADDRESS and --records FILE are required");
        std::process::exit(2);
    };
    if let Err(e) = dns::check_path(&records) {
        println!("error: {e}");
        std::process::exit(2);
    }
    let _ = nix::unistd::setsid();
    let resolv = std::fs::read_to_string(&resolv_conf).unwrap_or_default();
    let ups = dns::upstreams(&resolv, listen);
    let r = match dns::Responder::bind(listen, &records, ups, !internal) {
        Ok(r) => r,
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    };
    let pid_file = records.with_file_name("pid");
    let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));
    {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ok");
        let _ = out.flush();
    }
    // Let go of the caller's pipe.
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1);
    }
    let code = match r.serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-dns: {e}");
            1
        }
    };
    let _ = std::fs::remove_file(&pid_file);
    std::process::exit(code);
}
