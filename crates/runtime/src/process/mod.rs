//! The processes the runtime starts: the container's init (one file per stage) and the
//! pieces shared with `exec`.

pub mod devices;
pub mod finalize;
pub mod init;
pub mod lsm;
pub mod rootfs;
pub mod seccomp;
pub mod sync;
pub mod tty;

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;

/// The clone/setns flag of a namespace type.
pub fn ns_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns/ file name of a namespace type.
pub fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// setns order when joining: the user namespace first (it grants the rights for the rest),
/// the mount namespace last among those that change what paths mean.
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];
