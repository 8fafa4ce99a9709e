//! PID 1's reaper, in a test binary of its own: it reaps every child of its process, which
//! would disturb the library's other tests (they wait for their children directly).

use berth_agent::exec::{run_script, Reaper, Waiter};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_reaper_reports_exits_and_a_failed_exec_is_an_error() {
    let waiter = Waiter::Reaper(Reaper::start());
    // std waits inside `spawn` for a child whose exec failed: the reaper must not take it
    // (std would panic on ECHILD: PID 1 would die).
    // (A uid makes std fork and exec itself rather than use posix_spawn, as the agent's
    // `start` does for an image's user.)
    let uid = nix::unistd::getuid().as_raw();
    for _ in 0..50 {
        let err = waiter
            .spawn(Command::new("/nonexistent/berth-agent-test").uid(uid))
            .err()
            .expect("spawning a missing program fails");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
    let r = run_script(
        &waiter,
        Path::new("/bin/sh"),
        "echo through the reaper\nexit 3\n",
        &[("PATH".into(), "/usr/bin:/bin".into())],
        Duration::from_secs(30),
    )
    .expect("run the script");
    assert_eq!(r.exit.code, Some(3));
    assert_eq!(r.output, b"through the reaper\n");
    let mut p = waiter
        .spawn(Command::new("/bin/sh").args(["-c", "kill -9 $$"]))
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(e) = waiter.try_wait(&mut p).expect("try_wait") {
            break e;
        }
        assert!(Instant::now() < deadline, "no exit reported");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!((exit.code, exit.signal), (None, Some(9)));
    // The exit stays known.
    assert_eq!(waiter.try_wait(&mut p).expect("again"), Some(exit));
}
