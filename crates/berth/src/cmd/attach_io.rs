//! The client side of a monitor's attach socket (engine::attach): `attach`, `start -a`.
//! Our terminal in raw mode when the container has one; stdin forwarded (watching for the
//! detach keys, Docker's `ctrl-p,ctrl-q`), the container's output to our stdout/stderr,
//! SIGWINCH → the container's terminal size, and the container's exit code at the end.

use anyhow::{bail, Context, Result};
use engine::attach::{self as proto, encode, read_frame};
use nix::sys::signal::{SigSet, Signal};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Docker's default `--detach-keys`.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses Docker's `--detach-keys`: comma-separated keys, each a single character or
/// `ctrl-X` (X one of `a-z @ [ \ ] ^ _`). Empty: no detach keys.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|k| {
            if let Some(c) = k.strip_prefix("ctrl-") {
                let b = match c.as_bytes() {
                    [b] => b.to_ascii_lowercase(),
                    _ => bail!("--detach-keys {s:?}: bad key {k:?} (ctrl-a … ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_)"),
                };
                match b {
                    b'a'..=b'z' => Ok(b - b'a' + 1),
                    b'@' => Ok(0),
                    b'[' => Ok(27),
                    b'\\' => Ok(28),
                    b']' => Ok(29),
                    b'^' => Ok(30),
                    b'_' => Ok(31),
                    _ => bail!("--detach-keys {s:?}: bad key {k:?}"),
                }
            } else if k.len() == 1 && k.is_ascii() {
                Ok(k.as_bytes()[0])
            } else {
                bail!("--detach-keys {s:?}: bad key {k:?} (a character or ctrl-X)")
            }
        })
        .collect()
}

/// What a client says first: our terminal's size, when stdin is a terminal (applied to a
/// container's terminal before it starts).
pub fn hello() -> Vec<u8> {
    match super::run_tty::size() {
        Some((rows, cols)) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let mut b = rows.to_be_bytes().to_vec();
            b.extend_from_slice(&cols.to_be_bytes());
            encode(proto::IN_RESIZE, &b)
        }
        _ => Vec::new(),
    }
}

/// Docker's `--sig-proxy`: the signals berth receives go to the container `id` (those the
/// runtime forwards to a foreground container, but SIGCHLD and SIGWINCH, which are ours).
/// Blocks them on the calling thread first: call it before any other thread starts.
pub fn proxy_signals(e: &engine::Engine, id: &str) {
    let mut set = runtime::container::forwarded();
    set.remove(Signal::SIGCHLD);
    set.remove(Signal::SIGWINCH);
    let _ = set.thread_block();
    let (e, id) = (e.clone(), id.to_string());
    std::thread::spawn(move || {
        while let Ok(sig) = set.wait() {
            if let Err(err) = e.kill(&id, sig.as_str()) {
                tracing::debug!(error = %err, signal = sig.as_str(), "signal proxy");
            }
        }
    });
}

/// How an attach session ended.
#[derive(Debug, PartialEq)]
pub enum End {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach keys: the container runs on.
    Detached,
    /// The connection ended without an exit code (the monitor died or dropped us).
    Lost,
}

/// What the session forwards.
pub struct Session {
    /// The container has a terminal: ours goes raw and its size follows ours.
    pub tty: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// Close the container's stdin when ours ends (`run -i` in the foreground, Docker's
    /// StdinOnce); otherwise it stays open for the next client.
    pub close_stdin: bool,
    pub detach_keys: Vec<u8>,
}

impl Session {
    /// Runs the session over `sock` until the container exits, the user detaches or the
    /// connection ends.
    pub fn run(self, sock: UnixStream) -> Result<End> {
        let writer = Arc::new(Mutex::new(sock.try_clone().context("attach socket: dup")?));
        let send = {
            let w = writer.clone();
            move |kind: u8, body: &[u8]| -> bool {
                let f = encode(kind, body);
                w.lock()
                    .map(|mut s| s.write_all(&f).is_ok())
                    .unwrap_or(false)
            }
        };
        let our_tty = self.tty && std::io::IsTerminal::is_terminal(&std::io::stdin());
        let _raw = our_tty.then(super::run_tty::RawMode::enter).flatten();
        if our_tty {
            // SIGWINCH is waited for by a thread of its own: blocked before any thread starts.
            let mut set = SigSet::empty();
            set.add(Signal::SIGWINCH);
            let _ = set.thread_block();
            let resize = send.clone();
            let size = move || {
                if let Some((rows, cols)) = super::run_tty::size() {
                    let mut b = rows.to_be_bytes().to_vec();
                    b.extend_from_slice(&cols.to_be_bytes());
                    resize(proto::IN_RESIZE, &b);
                }
            };
            size();
            std::thread::spawn(move || {
                while set.wait().is_ok() {
                    size();
                }
            });
        }
        let detached = Arc::new(AtomicBool::new(false));
        if self.stdin {
            let detached = detached.clone();
            let sock = sock.try_clone().context("attach socket: dup")?;
            let keys = self.detach_keys;
            let close = self.close_stdin;
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 4096];
                // How much of the detach sequence the input has matched so far; bytes of a
                // partial match are held back until it fails.
                let mut matched = 0usize;
                loop {
                    let n = match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut out = Vec::with_capacity(n);
                    for &b in &buf[..n] {
                        if !keys.is_empty() && b == keys[matched] {
                            matched += 1;
                            if matched == keys.len() {
                                if !out.is_empty() {
                                    send(proto::IN_DATA, &out);
                                }
                                detached.store(true, Ordering::SeqCst);
                                let _ = sock.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            continue;
                        }
                        out.extend_from_slice(&keys[..matched]);
                        matched = 0;
                        if !keys.is_empty() && b == keys[0] {
                            matched = 1;
                        } else {
                            out.push(b);
                        }
                    }
                    if !out.is_empty() && !send(proto::IN_DATA, &out) {
                        return;
                    }
                }
                if close {
                    send(proto::IN_CLOSE, &[]);
                }
            });
        }
        let mut reader = std::io::BufReader::new(sock);
        let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
        loop {
            let frame = match read_frame(&mut reader) {
                Ok(f) => f,
                Err(_) if detached.load(Ordering::SeqCst) => return Ok(End::Detached),
                // A monitor that ended as we connected (its listener closed with us queued).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(End::Lost),
                Err(e) => return Err(e).context("read from the attach socket"),
            };
            match frame {
                None if detached.load(Ordering::SeqCst) => return Ok(End::Detached),
                None => return Ok(End::Lost),
                Some((proto::OUT_STDOUT, d)) => {
                    let _ = out.write_all(&d).and_then(|()| out.flush());
                }
                Some((proto::OUT_STDERR, d)) => {
                    let _ = err.write_all(&d).and_then(|()| err.flush());
                }
                Some((proto::OUT_EXIT, d)) if d.len() == 4 => {
                    return Ok(End::Exited(i32::from_be_bytes([d[0], d[1], d[2], d[3]])))
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").expect("ok"),
            vec![16, 17]
        );
        assert_eq!(parse_detach_keys("a,ctrl-@").expect("ok"), vec![b'a', 0]);
        assert!(parse_detach_keys("").expect("empty: none").is_empty());
        let e = parse_detach_keys("ctrl-1").expect_err("bad").to_string();
        assert!(e.contains("ctrl-1"), "{e}");
        assert!(parse_detach_keys("ab").is_err());
    }
}
