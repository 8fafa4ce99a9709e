//! Running commands with a timeout and capturing their output.

use super::*;

/// What a command did: exit status and everything it printed.
pub struct Output {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// With [`Capture::Files`]: the stdout and stderr files (which a container left
    /// running may still write to).
    pub files: Option<(PathBuf, PathBuf)>,
}

impl Output {
    /// The stdout file's content now (for output captured through files), else `stdout`.
    pub fn stdout_now(&self) -> String {
        match &self.files {
            Some((o, _)) => fs::read_to_string(o).unwrap_or_default(),
            None => self.stdout.clone(),
        }
    }

    /// The stderr file's content now (for output captured through files), else `stderr`.
    pub fn stderr_now(&self) -> String {
        match &self.files {
            Some((_, e)) => fs::read_to_string(e).unwrap_or_default(),
            None => self.stderr.clone(),
        }
    }

    /// The exit code (None if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (showing everything) unless the command succeeded.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics (showing everything) if the command succeeded.
    #[track_caller]
    pub fn failed(&self) -> &Self {
        assert!(!self.success(), "command unexpectedly succeeded:\n{self}");
        self
    }

    /// Panics unless the command failed with a non-empty stderr mentioning every one of
    /// `needles` (case-insensitive).
    #[track_caller]
    pub fn failed_mentioning(&self, needles: &[&str]) -> &Self {
        self.failed();
        let err = self.stderr.to_lowercase();
        assert!(
            !err.trim().is_empty(),
            "failed without an error message:\n{self}"
        );
        for n in needles {
            assert!(
                err.contains(&n.to_lowercase()),
                "error message does not mention {n:?}:\n{self}"
            );
        }
        self
    }

    /// Panics unless the exit code is `code`.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// Panics unless the command succeeded and printed exactly `expected` on stdout.
    #[track_caller]
    pub fn prints(&self, expected: &str) -> &Self {
        self.ok();
        assert_eq!(self.stdout, expected, "unexpected stdout:\n{self}");
        self
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => format!("{:?}", self.status),
        };
        write!(
            f,
            "  command: {}\n  status:  {status}\n  stdout:  {:?}\n  stderr:  {:?}",
            self.cmd, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a command's stdout/stderr go.
#[derive(Debug, Clone)]
pub enum Capture {
    /// Pipes, read until the command exits (plus a short grace for late writers).
    Pipes,
    /// Files in this directory: for commands that leave a container running with the
    /// runtime's stdio (`run --detach`, `exec --detach`), which would hold pipes open.
    Files(PathBuf),
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn reader(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let acc = Arc::new(Mutex::new(Vec::new()));
    let acc2 = Arc::clone(&acc);
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => acc2
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
    });
    (acc, h)
}

fn take(acc: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&acc.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Runs `cmd` with stdin null, capturing its output, failing the test if it runs longer
/// than `timeout` (the command is killed then).
pub fn capture(mut cmd: Command, capture: Capture, timeout: Duration) -> Output {
    let desc = describe(&cmd);
    cmd.stdin(Stdio::null());
    let files = match &capture {
        Capture::Pipes => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        }
        Capture::Files(dir) => {
            fs::create_dir_all(dir).expect("create output dir");
            let n = unique_suffix();
            let out = dir.join(format!("stdout-{n}"));
            let err = dir.join(format!("stderr-{n}"));
            cmd.stdout(fs::File::create(&out).expect("create stdout file"))
                .stderr(fs::File::create(&err).expect("create stderr file"));
            Some((out, err))
        }
    };
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
    let readers = match (child.stdout.take(), child.stderr.take()) {
        (Some(o), Some(e)) => Some((reader(o), reader(e))),
        _ => None,
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let (so, se) = match &readers {
                    Some(((o, _), (e, _))) => (take(o), take(e)),
                    None => Default::default(),
                };
                panic!(
                    "{desc} did not finish within {timeout:?}\n  stdout: {so:?}\n  stderr: {se:?}"
                );
            }
            Err(e) => panic!("wait for {desc}: {e}"),
        }
    };
    let (stdout, stderr) = match (readers, files.clone()) {
        (Some(((o, oh), (e, eh))), _) => {
            // Whatever still holds the pipes (a container left running) gets a short grace.
            let grace = Instant::now() + Duration::from_secs(2);
            while !(oh.is_finished() && eh.is_finished()) && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(2));
            }
            (take(&o), take(&e))
        }
        (None, Some((out, err))) => (
            fs::read_to_string(out).unwrap_or_default(),
            fs::read_to_string(err).unwrap_or_default(),
        ),
        (None, None) => Default::default(),
    };
    Output {
        cmd: desc,
        status,
        stdout,
        stderr,
        files,
    }
}

/// Polls `f` every few milliseconds until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
