//! `berth-agent`: PID 1 of a berth microVM image (see the library's docs), or, with
//! `--unix PATH [--config FILE]`, the same agent on a unix socket of the host (for tests and
//! debugging: nothing is mounted and nothing powers off), or, with `--fn SOCKET`, the init of
//! a stdio-mode function instance (berth_agent::fnmode).
#![forbid(unsafe_code)]

use berth_agent::config::GuestConfig;
use berth_agent::exec::{Reaper, Waiter};
use berth_agent::server::{serve, Action, Agent};
use berth_agent::{CONFIG_PATH, PORT};
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr,
};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// `VMADDR_CID_ANY`.
const CID_ANY: u32 = u32::MAX;

/// A line on the console (PID 1 must not panic when stdout is gone, as `println!` would).
fn log(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "berth-agent: {msg}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--unix") {
        std::process::exit(match unix_mode(&args[1..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth-agent: {e}");
                1
            }
        });
    }
    if args.first().map(String::as_str) == Some("--fn") {
        let Some(socket) = args.get(1) else {
            eprintln!("berth-agent: --fn needs a socket path");
            std::process::exit(2);
        };
        if let Err(e) = berth_agent::fnmode::serve(Path::new(socket)) {
            eprintln!("berth-agent: {e}");
        }
        std::process::exit(1);
    }
    if std::process::id() != 1 {
        eprintln!(
            "berth-agent: not PID 1: it is the init of a berth VM image (or use --unix PATH [--config FILE])"
        );
        std::process::exit(2);
    }
    init();
}

/// Serves connections on a unix socket, one after the other, until a shutdown request.
fn unix_mode(args: &[String]) -> Result<(), String> {
    let path = args.first().ok_or("--unix needs a socket path")?;
    let config = match args.get(1).map(String::as_str) {
        Some("--config") => {
            let file = args.get(2).ok_or("--config needs a file")?;
            GuestConfig::load(Path::new(file))
        }
        Some(other) => return Err(format!("unexpected argument {other:?}")),
        None => Ok(GuestConfig::default()),
    };
    let listener = UnixListener::bind(path).map_err(|e| format!("{path}: {e}"))?;
    let mut agent = Agent::new(config, Waiter::Direct);
    for conn in listener.incoming() {
        let mut conn: UnixStream = conn.map_err(|e| format!("accept: {e}"))?;
        match serve(&mut agent, &mut conn) {
            Ok(Action::Shutdown) => return Ok(()),
            Ok(Action::Continue) => {}
            Err(e) => log(&format!("connection: {e}")),
        }
    }
    Ok(())
}

/// Mounts `fstype` on `target` (created if missing); an already mounted target is fine.
fn mount_fs(fstype: &str, target: &str, flags: MsFlags, data: Option<&str>) {
    let _ = std::fs::create_dir_all(target);
    match mount(Some(fstype), target, Some(fstype), flags, data) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
        Err(e) => log(&format!("mount {fstype} on {target}: {e}")),
    }
}

fn init() -> ! {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", nodev, None);
    mount_fs("sysfs", "/sys", nodev, None);
    mount_fs("devtmpfs", "/dev", MsFlags::MS_NOSUID, Some("mode=0755"));
    mount_fs(
        "tmpfs",
        "/tmp",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    );
    mount_fs(
        "tmpfs",
        "/run",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    );
    let config = GuestConfig::load(Path::new(CONFIG_PATH));
    let hostname = match &config {
        Ok(c) => c.hostname().to_string(),
        Err(e) => {
            log(e);
            berth_agent::config::DEFAULT_HOSTNAME.to_string()
        }
    };
    if let Err(e) = nix::unistd::sethostname(&hostname) {
        log(&format!("sethostname {hostname}: {e}"));
    }
    if let Err(e) = sys::guest::link_up("lo") {
        log(&format!("bring up lo: {e}"));
    }
    let mut agent = Agent::new(config, Waiter::Reaper(Reaper::start()));
    agent.shell = PathBuf::from("/bin/sh");
    match listen_vsock() {
        Ok(listener) => {
            log(&format!("listening on vsock port {PORT}"));
            loop {
                let conn = match sys::guest::accept(listener.as_fd()) {
                    Ok(c) => c,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        log(&format!("accept: {e}"));
                        break;
                    }
                };
                let mut stream = UnixStream::from(conn);
                match serve(&mut agent, &mut stream) {
                    Ok(Action::Shutdown) => break,
                    Ok(Action::Continue) => {}
                    Err(e) => log(&format!("connection: {e}")),
                }
            }
        }
        Err(e) => log(&format!("vsock port {PORT}: {e}")),
    }
    power_off()
}

fn listen_vsock() -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &VsockAddr::new(CID_ANY, PORT),
    )?;
    listen(&fd, Backlog::new(4)?)?;
    Ok(fd)
}

fn power_off() -> ! {
    log("powering off");
    nix::unistd::sync();
    let e = sys::guest::power_off();
    log(&format!("power off: {e}"));
    // PID 1 must not exit (the kernel would panic); wait for someone to stop the VM.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
