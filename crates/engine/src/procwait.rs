//! Waiting for processes that are not our children (a container's monitor, its init) to
//! end, without sleeping in steps: one `pidfd` per process (`pidfd_open(2)`), polled until
//! each reports its exit; then the short wait until its parent (the monitor, or the
//! subreaper or init it was reparented to) has reaped it, since a zombie still holds its
//! pid and `alive` sees it. Kernels without pidfds (before 5.3) fall back to polling.

use crate::container::alive;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// Waits up to `limit` until every `(pid, start time)` of `procs` is gone; whether they all
/// went.
pub fn wait_gone(procs: &[(i32, u64)], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for &(pid, start) in procs {
        if !alive(pid, start) {
            continue;
        }
        // The descriptor pins the process: if it is still the one that started at `start`
        // once the descriptor is open, the pid cannot have been reused under us.
        if let Ok(fd) = sys::process::pidfd_open(pid) {
            if alive(pid, start) {
                fds.push(fd);
            }
        }
    }
    while !fds.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut pfds: Vec<PollFd<'_>> = fds
            .iter()
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        match nix::poll::poll(
            &mut pfds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // A pidfd that cannot be polled: the reaping wait below polls instead.
            Err(_) => break,
        }
        let done: Vec<bool> = pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(pfds);
        let mut i = 0;
        fds.retain(|_| {
            i += 1;
            !done[i - 1]
        });
    }
    // Exited; until reaped `alive` still sees them (a zombie keeps its /proc entry). Reaping
    // is a fraction of a millisecond away: poll finely.
    let mut pause = Duration::from_micros(50);
    while procs.iter().any(|&(p, s)| alive(p, s)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_of(pid: i32) -> u64 {
        runtime::state::process_start_time(pid).unwrap_or(0)
    }

    #[test]
    fn a_killed_process_is_gone_and_a_live_one_times_out() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let start = start_of(pid);
        assert!(alive(pid, start));
        let t = Instant::now();
        assert!(!wait_gone(&[(pid, start)], Duration::from_millis(100)));
        assert!(t.elapsed() >= Duration::from_millis(100));
        let _ = child.kill();
        // Not reaped yet: a zombie has ended.
        assert!(wait_gone(&[(pid, start)], Duration::from_secs(5)));
        let _ = child.wait();
        // A pid whose start time does not match is not waited for.
        assert!(wait_gone(
            &[(std::process::id() as i32, start + 1)],
            Duration::ZERO
        ));
    }
}
