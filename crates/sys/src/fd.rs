//! File-descriptor hygiene: nothing of the runtime may leak into a container.

use nix::errno::Errno;

/// Marks every descriptor `>= first` close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`), so
/// the next `execve` cannot leak runtime descriptors (CVE-2024-21626). Falls back to walking
/// `/proc/self/fd` on kernels older than 5.11.
pub fn cloexec_from(first: i32) -> nix::Result<()> {
    // SAFETY: close_range takes plain integers; CLOSE_RANGE_CLOEXEC only sets flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            4u32,
        )
    };
    if Errno::result(r).is_ok() {
        return Ok(());
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::EBADF)?;
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first) {
        // SAFETY: F_SETFD on a descriptor number only changes its flags; a descriptor that
        // was closed meanwhile (the read_dir one) just yields EBADF, which we ignore.
        let _ = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
