//! `berth run -t`: berth receives the container's pty master over a console socket
//! (runtime-spec `process.terminal`; runc's `--console-socket` protocol), puts its own
//! terminal in raw mode and relays bytes both ways; a SIGWINCH resizes the pty.

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The listening console socket, before the runtime connects.
pub struct Console {
    listener: UnixListener,
    pub path: PathBuf,
}

/// Our terminal's size, when stdin is one: `(rows, cols)`.
pub fn size() -> Option<(u16, u16)> {
    sys::process::window_size(std::io::stdin().as_fd()).ok()
}

impl Console {
    pub fn listen(dir: &Path) -> Result<Console> {
        let path = dir.join("console.sock");
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        Ok(Console { listener, path })
    }

    /// Accepts the runtime's connection and relays in the background.
    pub fn serve(self) -> Relay {
        let master: Arc<OnceLock<OwnedFd>> = Arc::new(OnceLock::new());
        let m = master.clone();
        let out = std::thread::spawn(move || {
            let Ok((stream, _)) = self.listener.accept() else {
                return;
            };
            let Ok(fd) = sys::fd::recv_fd(stream.as_fd()) else {
                return;
            };
            let (Ok(input), Ok(output)) = (fd.try_clone(), fd.try_clone()) else {
                return;
            };
            let _ = m.set(fd);
            std::thread::spawn(move || {
                let mut to = File::from(input);
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
            });
            let mut from = File::from(output);
            let mut stdout = std::io::stdout().lock();
            let mut buf = [0u8; 8192];
            // EIO once the container's side of the pty is closed.
            while let Ok(n) = from.read(&mut buf) {
                if n == 0
                    || stdout
                        .write_all(&buf[..n])
                        .and_then(|()| stdout.flush())
                        .is_err()
                {
                    break;
                }
            }
        });
        Relay {
            master,
            out,
            _raw: RawMode::enter(),
        }
    }
}

/// The running relay; dropping it restores the terminal.
pub struct Relay {
    master: Arc<OnceLock<OwnedFd>>,
    out: JoinHandle<()>,
    _raw: Option<RawMode>,
}

impl Relay {
    fn resize(&self) {
        if let (Some(m), Some((rows, cols))) = (self.master.get(), size()) {
            let _ = sys::process::set_window_size(m.as_fd(), rows, cols);
        }
    }

    /// Waits for our child `pid` (the runtime), forwarding signals to it and resizing the
    /// pty on SIGWINCH; then lets the output drain. Signals must be blocked.
    pub fn wait(self, pid: Pid) -> Result<i32> {
        let set = runtime::container::forwarded();
        let code = 'outer: loop {
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => break 'outer code,
                    Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                        break 'outer 128 + sig as i32
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
            match set.wait().context("wait for signals")? {
                Signal::SIGCHLD => {}
                Signal::SIGWINCH => self.resize(),
                sig => {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
            }
        };
        if self.master.get().is_some() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !self.out.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(code)
    }
}

/// Our terminal in raw mode (restored on drop), when stdin is a terminal.
pub(crate) struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub(crate) fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
