//! The agent's state and its answers to requests, over any byte stream.

use crate::config::GuestConfig;
use crate::exec::{run_script, Proc, Waiter, DEFAULT_SCRIPT_TIMEOUT};
use crate::proto::{self, Request, Response};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What the caller does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the next request.
    Continue,
    /// Sync and power off (the response is already sent).
    Shutdown,
}

/// The agent.
pub struct Agent {
    /// The image configuration, or why it could not be read.
    pub config: Result<GuestConfig, String>,
    /// The shell that runs scripts (`/bin/sh`).
    pub shell: PathBuf,
    /// The root whose `/etc/passwd` resolves the workload's user (`/`).
    pub root: PathBuf,
    pub waiter: Waiter,
    workload: Option<Proc>,
}

impl Agent {
    pub fn new(config: Result<GuestConfig, String>, waiter: Waiter) -> Agent {
        Agent {
            config,
            shell: PathBuf::from("/bin/sh"),
            root: PathBuf::from("/"),
            waiter,
            workload: None,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        match &self.config {
            Ok(c) => c.env_pairs(),
            Err(_) => GuestConfig::default().env_pairs(),
        }
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> (Response, Action) {
        let error = |message: String| (Response::Error { message }, Action::Continue);
        match req {
            Request::Ping => (
                Response::Pong {
                    version: proto::VERSION,
                    hostname: nix::unistd::gethostname()
                        .map(|h| h.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                },
                Action::Continue,
            ),
            Request::RunScript {
                script,
                timeout_secs,
            } => {
                let timeout = timeout_secs.map_or(DEFAULT_SCRIPT_TIMEOUT, Duration::from_secs);
                match run_script(&self.waiter, &self.shell, &script, &self.env(), timeout) {
                    Ok(r) => (
                        Response::Script {
                            exit_code: r.exit.code,
                            signal: r.exit.signal,
                            output: String::from_utf8_lossy(&r.output).into_owned(),
                            truncated: r.truncated,
                            timed_out: r.timed_out,
                        },
                        Action::Continue,
                    ),
                    Err(e) => error(format!("run the script: {e}")),
                }
            }
            Request::Start => match self.start() {
                Ok(pid) => (Response::Started { pid }, Action::Continue),
                Err(e) => error(e),
            },
            Request::Status => {
                let (started, running, pid, exit) = match &mut self.workload {
                    None => (false, false, None, None),
                    Some(p) => {
                        let exit = self.waiter.try_wait(p).ok().flatten();
                        (true, exit.is_none(), Some(p.pid()), exit)
                    }
                };
                (
                    Response::Status {
                        started,
                        running,
                        pid,
                        exit_code: exit.and_then(|e| e.code),
                        signal: exit.and_then(|e| e.signal),
                    },
                    Action::Continue,
                )
            }
            Request::Shutdown => (Response::ShuttingDown, Action::Shutdown),
        }
    }

    /// Starts the image's entrypoint and command; returns its pid.
    fn start(&mut self) -> Result<u32, String> {
        if let Some(p) = &mut self.workload {
            if self.waiter.try_wait(p).ok().flatten().is_none() {
                return Err(format!("the workload already runs (pid {})", p.pid()));
            }
        }
        let config = self
            .config
            .as_ref()
            .map_err(|e| format!("no workload configuration: {e}"))?;
        let argv = config.argv();
        let Some((prog, args)) = argv.split_first() else {
            return Err("the image has neither an entrypoint nor a cmd".into());
        };
        // Resolved now, in the guest's own /etc/passwd and /etc/group: a configuration
        // script may have added the user.
        let image::user::User { uid, gid, .. } =
            image::user::resolve(&self.root, &config.user).map_err(|e| e.to_string())?;
        let workdir = if config.workdir.is_empty() {
            "/"
        } else {
            &config.workdir
        };
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .env_clear()
            .envs(config.env_pairs())
            .current_dir(workdir)
            .stdin(Stdio::null());
        if uid != 0 || gid != 0 {
            cmd.uid(uid).gid(gid);
        }
        let p = self
            .waiter
            .spawn(&mut cmd)
            .map_err(|e| format!("start {prog:?} (in {workdir}): {e}"))?;
        let pid = p.pid();
        self.workload = Some(p);
        Ok(pid)
    }
}

/// Serves requests from `stream` until it ends or a shutdown is asked. A request that is
/// not valid JSON of a known operation gets an error response and the connection goes on;
/// a broken frame ends it.
pub fn serve<S: Read + Write>(agent: &mut Agent, stream: &mut S) -> io::Result<Action> {
    loop {
        let Some(body) = proto::read_frame(stream)? else {
            return Ok(Action::Continue);
        };
        let (resp, action) = match serde_json::from_slice::<Request>(&body) {
            Ok(req) => agent.handle(req),
            Err(e) => (
                Response::Error {
                    message: format!("bad request: {e}"),
                },
                Action::Continue,
            ),
        };
        proto::send(stream, &resp)?;
        if action == Action::Shutdown {
            return Ok(action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    fn agent(config: GuestConfig) -> Agent {
        Agent::new(Ok(config), Waiter::Direct)
    }

    /// An agent serving one end of a socketpair on a thread; the test gets the other end.
    fn served(mut a: Agent) -> (UnixStream, std::thread::JoinHandle<io::Result<Action>>) {
        let (host, mut guest) = UnixStream::pair().expect("socketpair");
        let t = std::thread::spawn(move || serve(&mut a, &mut guest));
        (host, t)
    }

    fn script(host: &mut UnixStream, script: &str, timeout_secs: Option<u64>) -> Response {
        proto::call(
            host,
            &Request::RunScript {
                script: script.into(),
                timeout_secs,
            },
        )
        .expect("call")
    }

    #[test]
    fn a_script_runs_and_its_output_and_status_come_back() {
        let (mut host, t) = served(agent(GuestConfig {
            env: vec!["GREETING=hello".into()],
            ..Default::default()
        }));
        let r = script(
            &mut host,
            "echo \"$GREETING from $(pwd)\"\necho oops >&2\nexit 3\n",
            None,
        );
        assert_eq!(
            r,
            Response::Script {
                exit_code: Some(3),
                signal: None,
                output: "hello from /\noops\n".into(),
                truncated: false,
                timed_out: false,
            }
        );
        // The connection goes on: a second script, then a ping.
        let r = script(&mut host, "kill -9 $$", None);
        assert!(
            matches!(
                r,
                Response::Script {
                    exit_code: None,
                    signal: Some(9),
                    ..
                }
            ),
            "{r:?}"
        );
        let r = proto::call(&mut host, &Request::Ping).expect("ping");
        assert!(matches!(r, Response::Pong { version: 1, .. }), "{r:?}");
        drop(host);
        assert_eq!(t.join().expect("thread").expect("serve"), Action::Continue);
    }

    #[test]
    fn a_script_past_its_timeout_is_killed_and_large_output_is_capped() {
        let (mut host, _t) = served(agent(GuestConfig::default()));
        let start = Instant::now();
        let r = script(&mut host, "echo before\nsleep 30\necho after\n", Some(1));
        assert!(start.elapsed() < Duration::from_secs(10));
        match r {
            Response::Script {
                signal,
                output,
                timed_out,
                ..
            } => {
                assert!(timed_out);
                assert_eq!(signal, Some(9));
                assert_eq!(output, "before\n");
            }
            other => panic!("{other:?}"),
        }
        let r = script(&mut host, "head -c 3000000 /dev/zero | tr '\\0' x", None);
        match r {
            Response::Script {
                exit_code,
                output,
                truncated,
                ..
            } => {
                assert_eq!(exit_code, Some(0));
                assert!(truncated);
                assert_eq!(output.len(), crate::exec::MAX_OUTPUT);
            }
            other => panic!("{other:?}"),
        }
        // A background process holding the output pipe does not hold the answer.
        let start = Instant::now();
        let r = script(&mut host, "sleep 20 &\necho started\n", None);
        assert!(start.elapsed() < Duration::from_secs(10), "{r:?}");
        assert!(
            matches!(&r, Response::Script { exit_code: Some(0), output, .. } if output == "started\n"),
            "{r:?}"
        );
    }

    #[test]
    fn bad_requests_get_clear_errors_and_the_connection_survives() {
        let (mut host, t) = served(agent(GuestConfig::default()));
        for (body, needle) in [
            (&b"not json"[..], "bad request"),
            (br#"{"op":"format_disk"}"#, "unknown variant"),
            (br#"{"op":"run_script"}"#, "missing field `script`"),
            (
                br#"{"op":"run_script","script":"x","bogus":1}"#,
                "unknown field",
            ),
        ] {
            proto::write_frame(&mut host, body).expect("write");
            let r: Response = proto::recv(&mut host).expect("recv").expect("answer");
            match r {
                Response::Error { message } => {
                    assert!(message.contains(needle), "{message}");
                    assert!(message.starts_with("bad request"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        // No entrypoint or cmd: start is refused, clearly.
        let r = proto::call(&mut host, &Request::Start).expect("start");
        assert_eq!(
            r,
            Response::Error {
                message: "the image has neither an entrypoint nor a cmd".into()
            }
        );
        // A frame claiming more than the limit ends the connection.
        use std::io::Write as _;
        host.write_all(&u32::MAX.to_be_bytes()).expect("write");
        let err = t.join().expect("thread").expect_err("broken frame");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn start_runs_the_workload_with_its_config_and_status_reports_it() {
        let dir = std::env::temp_dir().join(format!("berth-agent-start-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let out = dir.join("out");
        let (mut host, _t) = served(agent(GuestConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec![format!(
                "echo \"$MSG in $(pwd)\" > {}; exit 7",
                out.display()
            )],
            env: vec!["MSG=workload".into()],
            workdir: dir.display().to_string(),
            ..Default::default()
        }));
        let r = proto::call(&mut host, &Request::Status).expect("status");
        assert!(
            matches!(r, Response::Status { started: false, .. }),
            "{r:?}"
        );
        let r = proto::call(&mut host, &Request::Start).expect("start");
        let Response::Started { pid } = r else {
            panic!("{r:?}")
        };
        let status = crate::proto::Response::Status {
            started: true,
            running: false,
            pid: Some(pid),
            exit_code: Some(7),
            signal: None,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = proto::call(&mut host, &Request::Status).expect("status");
            if r == status {
                break;
            }
            assert!(Instant::now() < deadline, "{r:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&out).expect("the workload's output");
        assert_eq!(text, format!("workload in {}\n", dir.display()));
        let r = proto::call(&mut host, &Request::Shutdown).expect("shutdown");
        assert_eq!(r, Response::ShuttingDown);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_configuration_still_runs_scripts_but_refuses_start() {
        let mut a = Agent::new(Err("/.berth/config.json: not found".into()), Waiter::Direct);
        let (r, _) = a.handle(Request::RunScript {
            script: "echo ok".into(),
            timeout_secs: None,
        });
        assert!(
            matches!(&r, Response::Script { exit_code: Some(0), output, .. } if output == "ok\n"),
            "{r:?}"
        );
        let (r, _) = a.handle(Request::Start);
        assert_eq!(
            r,
            Response::Error {
                message: "no workload configuration: /.berth/config.json: not found".into()
            }
        );
    }
}
