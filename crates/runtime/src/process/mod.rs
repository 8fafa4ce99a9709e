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

/// The descriptors a caller passed with `--preserve-fds N`: of 3 … 3+N−1, those open and
/// inheritable (not close-on-exec) when the verb began. Descriptors the runtime opens
/// itself may take free numbers in that range (the exec FIFO, the state directory, the
/// cgroup directory, …); they are never the caller's and never reach the container.
#[derive(Debug, Clone, Default)]
pub struct PassedFds(Vec<std::os::fd::RawFd>);

impl PassedFds {
    /// Records the caller's descriptors; call before the verb opens anything.
    pub fn snapshot(preserve_fds: i32) -> Self {
        if preserve_fds <= 0 {
            return Self::default();
        }
        let end = 3i32.saturating_add(preserve_fds);
        // Listing /proc/self/fd visits only open descriptors, however large N is.
        let mut fds: Vec<std::os::fd::RawFd> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| (3..end).contains(fd))
            .filter(|fd| {
                nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_GETFD).is_ok_and(|f| {
                    !nix::fcntl::FdFlag::from_bits_truncate(f)
                        .contains(nix::fcntl::FdFlag::FD_CLOEXEC)
                })
            })
            .collect();
        fds.sort_unstable();
        Self(fds)
    }

    /// Right before `execve`: every descriptor above stdio is close-on-exec except the
    /// caller's (CVE-2024-21626: nothing of the runtime may reach the container).
    pub fn keep_only_these(&self) -> crate::error::Result<()> {
        use crate::error::Context;
        sys::fd::cloexec_from(3).ctx(|| "mark descriptors close-on-exec".into())?;
        for fd in &self.0 {
            nix::fcntl::fcntl(
                *fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .ctx(|| format!("keep preserved descriptor {fd}"))?;
        }
        Ok(())
    }
}
