//! Helpers of the Docker API tests (tests/dockerapi_*.rs): `berth serve --docker-socket`
//! inside the test's network namespace on a store with a busybox image, driven by Debian's
//! docker CLI and python3-docker over the unix socket in the test's directory.

use crate::engine::Eng;
use crate::images::BERTH_TIMEOUT;
use crate::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's docker.io client (scripts/install-deps.sh), not another one on PATH.
pub const DOCKER: &str = "/usr/bin/docker";
/// Debian's python3 with python3-docker.
pub const PY: &str = "/usr/bin/python3";

/// A store with a busybox image and `berth serve --docker-socket` on it (stopped on drop).
pub struct Docker {
    pub e: Eng,
    /// berth serve (a test that stops it itself takes it).
    pub serve: Option<Child>,
    pub sock: PathBuf,
}

impl Docker {
    pub fn new(name: &str) -> Docker {
        Docker::with(name, &[])
    }

    /// `berth serve --docker-socket DIR/docker.sock EXTRA…` (its log, with the Docker API's
    /// debug lines, in DIR/serve.log).
    pub fn with(name: &str, extra: &[&str]) -> Docker {
        let e = Eng::new(&format!("docker-{name}"));
        let sock = e.s.dir.join("docker.sock");
        let sock_s = sock.to_string_lossy().into_owned();
        let mut args = vec!["serve", "--docker-socket", &sock_s];
        args.extend_from_slice(extra);
        let mut cmd = e.s.command(&args);
        cmd.env("BERTH_LOG", "info,berth_dockerapi=debug");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(
            std::fs::File::create(e.s.dir.join("serve.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        );
        let serve = Some(cmd.spawn().expect("spawn berth serve"));
        let d = Docker { e, serve, sock };
        let up = poll(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&d.sock).ok()
        });
        assert!(
            up.is_some(),
            "berth serve never listened on {}:\n{}",
            d.sock.display(),
            d.serve_log()
        );
        d
    }

    pub fn serve_log(&self) -> String {
        std::fs::read_to_string(self.e.s.dir.join("serve.log")).unwrap_or_default()
    }

    /// The environment of a Docker client on this server.
    pub fn client_env(&self, cmd: &mut Command) {
        cmd.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.e.s.dir.join("docker-config"))
            .env("DOCKER_BUILDKIT", "0");
    }

    /// The docker CLI `bin` on this server, whatever its outcome; killed after 60 s, so that
    /// a hung client ends with the serve log shown rather than the test's timeout.
    pub fn cli(&self, bin: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", "60"]).arg(bin).args(args);
        self.client_env(&mut cmd);
        capture(cmd, Capture::Pipes, BERTH_TIMEOUT)
    }

    /// `docker ARGS…` on this server, whatever its outcome.
    pub fn docker_out(&self, args: &[&str]) -> Output {
        assert!(
            Command::new(DOCKER)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "the docker CLI is missing: apt-get install docker.io (its client only; \
             scripts/install-deps.sh)"
        );
        let mut cmd = Command::new(DOCKER);
        cmd.args(args);
        self.client_env(&mut cmd);
        capture(cmd, Capture::Pipes, BERTH_TIMEOUT)
    }

    /// `docker ARGS…`: it must exit 0; its stdout.
    #[track_caller]
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_out(args);
        assert!(
            out.success(),
            "docker {args:?} failed:\n{out}\nberth serve's log:\n{}",
            self.serve_log()
        );
        out.stdout
    }

    /// A Python script with `c` a `docker.DockerClient` on the socket (API 1.41), `sock` its
    /// path and `env` an environment for the docker CLI; it must exit 0 (its asserts carry
    /// the messages). Its stdout.
    #[track_caller]
    pub fn py(&self, script: &str) -> String {
        let url = format!("unix://{}", self.sock.display());
        self.py_at(&url, false, script)
    }

    /// [`py`](Self::py) with the client on `base_url`, inside the test's network namespace
    /// when `in_netns` (where berth serve's TCP listener is).
    #[track_caller]
    pub fn py_at(&self, base_url: &str, in_netns: bool, script: &str) -> String {
        let prelude = format!(
            "import docker, json, sys, os, io, tarfile, time\n\
             sock = '{sock}'\n\
             c = docker.DockerClient(base_url='{base_url}', version='1.41', timeout=120)\n\
             env = dict(os.environ, DOCKER_HOST='unix://' + sock, DOCKER_CONFIG='{cfg}')\n",
            sock = self.sock.display(),
            cfg = self.e.s.dir.join("docker-config").display(),
        );
        let mut cmd = match (&self.e.s.netns, in_netns) {
            (Some(ns), true) => ns.command(&[PY]),
            _ => Command::new(PY),
        };
        cmd.arg("-c").arg(format!("{prelude}{script}"));
        let out = capture(cmd, Capture::Pipes, BERTH_TIMEOUT);
        assert!(
            !out.stderr.contains("No module named 'docker'"),
            "the Docker SDK for Python is missing: apt-get install python3-docker \
             (scripts/install-deps.sh)"
        );
        assert!(
            out.success(),
            "the client script failed:\n{out}\nberth serve's log:\n{}",
            self.serve_log()
        );
        out.stdout
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

/// `berth registry serve EXTRA…` inside the test's network namespace (where berth serve, and
/// so its pulls and pushes, are), on an ephemeral loopback port; killed on drop. `.1` is
/// its `HOST:PORT`.
pub struct NsRegistry(pub Child, pub String);

impl NsRegistry {
    pub fn start(d: &Docker, extra: &[&str]) -> NsRegistry {
        use std::io::BufRead;
        let root = d.e.s.dir.join("registry");
        let ns = d.e.s.netns.as_ref().expect("the test's network namespace");
        let bin = crate::images::berth_bin().to_string_lossy().into_owned();
        let root_s = root.to_string_lossy().into_owned();
        let mut args = vec![
            bin.as_str(),
            "registry",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            &root_s,
        ];
        args.extend_from_slice(extra);
        let mut child = ns
            .command(&args)
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth registry serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("berth registry serve did not start: {line:?}"))
            .to_string();
        NsRegistry(child, addr)
    }
}

impl Drop for NsRegistry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
