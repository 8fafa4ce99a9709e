//! The runtime's verbs, one file each (youki's layout). Each loads the state, checks the
//! status machine in [`crate::state::Status`], and acts.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod host_mounts;
pub mod kill;
pub mod list;
pub mod pause;
pub mod run;
pub mod start;
pub mod update;

use crate::error::{Context, Result};
use crate::state::State;
use cgroups::CgroupManager;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};
use std::time::{Duration, Instant};

/// The cgroup manager of a container.
pub fn cgroup_of(st: &State) -> Result<Box<dyn CgroupManager>> {
    manager_for_spec(&st.config, &st.id)
}

pub fn manager_for_spec(spec: &Spec, id: &str) -> Result<Box<dyn CgroupManager>> {
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    Ok(cgroups::manager_for(path.as_deref(), id)?)
}

/// The config's resources with the device cgroup every container gets, as runc builds it:
/// deny everything, then the config's own rules, then the devices every container needs
/// (runc's AllowedDevices: mknod of any device, the default devices, ptys, /dev/net/tun)
/// and the devices `linux.devices` asks to create. A config without
/// `linux.resources.devices` is therefore confined too.
pub fn effective_resources(spec: &Spec) -> Option<LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut r = linux.resources().clone().unwrap_or_default();
    let rule = |allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(allow);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some("rwm".into()));
        d
    };
    let mut devs = vec![rule(false, LinuxDeviceType::A, None, None)];
    devs.extend(r.devices().clone().unwrap_or_default());
    for typ in [LinuxDeviceType::C, LinuxDeviceType::B] {
        let mut mknod = rule(true, typ, None, None);
        mknod.set_access(Some("m".into()));
        devs.push(mknod);
    }
    for (ma, mi) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        devs.push(rule(true, LinuxDeviceType::C, Some(ma), mi));
    }
    for d in linux.devices().iter().flatten() {
        // A fifo needs no device rule (and devices.allow refuses `p`); `u` is a character
        // device.
        let typ = match d.typ() {
            LinuxDeviceType::P => continue,
            LinuxDeviceType::U => LinuxDeviceType::C,
            t => t,
        };
        devs.push(rule(true, typ, Some(d.major()), Some(d.minor())));
    }
    r.set_devices(Some(devs));
    Some(r)
}

/// Polls until `pid` (with start time `start`) is gone; true if it went.
pub fn wait_gone(pid: i32, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(100);
    loop {
        if crate::state::process_start_time(pid) != Some(start) {
            return true;
        }
        // It may be our own child (run, exec): reap it.
        let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The signals passed on to a foreground container's process from whoever started it:
/// `berth-runtime run` (with [`forwarded`]) and `berth run` through the engine
/// (crates/berth/src/cmd/run_fg.rs, which kills the container with each).
pub const PROXIED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// [`PROXIED`] as a set.
pub fn proxied() -> SigSet {
    let mut s = SigSet::empty();
    for sig in PROXIED {
        s.add(sig);
    }
    s
}

/// The signals a foreground `run` waits for: [`PROXIED`], `SIGCHLD` (its child's exit) and
/// `SIGWINCH` (the terminal's size).
pub fn forwarded() -> SigSet {
    let mut s = proxied();
    s.add(Signal::SIGCHLD);
    s.add(Signal::SIGWINCH);
    s
}

/// Blocks the forwarded signals; call before the child can exit.
pub fn block_signals() -> Result<()> {
    forwarded().thread_block().ctx(|| "block signals".into())
}

/// Waits for our child `pid`, forwarding signals to it; returns its exit code
/// (128 + signal when killed, as a shell reports it). Signals must be blocked.
pub fn wait_forwarding(pid: Pid) -> Result<i32> {
    let set = forwarded();
    loop {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let sig = set.wait().ctx(|| "wait for signals".into())?;
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }
}
