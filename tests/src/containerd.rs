//! A containerd of a test's own (tests/containerd.rs, tests/cri.rs): private root, state,
//! sockets and log under one directory, a namespace of its own, berth-runtime as the runc v2
//! shim's binary, and a busybox image made by `berth save`.

use crate::images::Store;
use crate::oci::need;
use crate::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);
pub const IMAGE: &str = "box:latest";
/// ctr needs no CRI plugin (it would set up CNI state for nothing).
pub const NO_CRI: &str = r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#;

/// A containerd of the test's own: state, root, sockets and log under one directory.
pub struct Containerd {
    pub dir: TempDir,
    child: Option<Child>,
    pub ns: String,
}

impl Containerd {
    /// Starts containerd with `extra` appended to its config (TOML), and waits until it
    /// answers on its socket.
    pub fn start(name: &str, extra: &str) -> Containerd {
        Self::start_with(name, extra, &[])
    }

    /// Like [`Containerd::start`], with containerd run under `wrap` (e.g. `unshare --net`).
    /// `ns` may be changed afterwards (the CRI's containers live in `k8s.io`).
    pub fn start_with(name: &str, extra: &str, wrap: &[&str]) -> Containerd {
        need("containerd");
        need("ctr");
        need("containerd-shim-runc-v2");
        let dir = TempDir::new(&format!("containerd-{name}"));
        let d = dir.path().display().to_string();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
{extra}
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[metrics]
  address = ""
"#
        );
        std::fs::write(dir.join("config.toml"), config).expect("write containerd config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd log");
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg("containerd");
                c
            }
            None => Command::new("containerd"),
        };
        let child = cmd
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd {
            ns: unique_id(name),
            dir,
            child: Some(child),
        };
        let up = poll(Duration::from_secs(20), || {
            c.ctr_quiet(&["version"]).success().then_some(())
        });
        assert!(up.is_some(), "containerd did not come up:\n{}", c.log());
        c
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The runc root the shim passes to berth-runtime (`--runc-root`).
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.ns)
            .args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn ctr_quiet(&self, args: &[&str]) -> Output {
        capture(self.command(args), Capture::Pipes, CTR_TIMEOUT)
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        let out = self.ctr_quiet(args);
        if !out.success() {
            eprintln!("containerd log:\n{}", self.log());
        }
        out
    }

    /// `ctr run` with berth-runtime as the shim's runc binary.
    pub fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Output {
        let rt = runtime_bin().display().to_string();
        let root = self.runc_root().display().to_string();
        let fifos = self.dir.join("fifo").display().to_string();
        let mut v = vec![
            "run",
            "--runc-binary",
            &rt,
            "--runc-root",
            &root,
            "--fifo-dir",
            &fifos,
        ];
        v.extend_from_slice(flags);
        v.push(IMAGE);
        v.push(id);
        v.extend_from_slice(args);
        self.ctr(&v)
    }

    /// Imports a busybox image saved by `berth save` (an OCI archive).
    pub fn import_busybox(&self) {
        self.import_busybox_as("box", &["sh"]);
    }

    /// Imports a busybox image named `name` (with `cmd` as its command), saved by `berth
    /// save` as an OCI archive.
    pub fn import_busybox_as(&self, name: &str, cmd: &[&str]) {
        let store = Store::new("ctd-src");
        let tar = crate::images::busybox_tarball(&store.dir);
        let tar = tar.to_string_lossy();
        let mut args = vec!["import"];
        for w in cmd {
            args.extend(["--cmd", w]);
        }
        args.extend([tar.as_ref(), name]);
        store.berth(&args).ok();
        let archive = self
            .dir
            .join(format!("{}.tar", name.replace(['/', ':'], "_")));
        store
            .berth(&[
                "save",
                "--format",
                "oci-archive",
                "-o",
                &archive.to_string_lossy(),
                name,
            ])
            .ok();
        self.ctr(&["image", "import", &archive.to_string_lossy()])
            .ok();
    }

    /// The task's (pid, status) from `ctr task ls`.
    pub fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = self.ctr_quiet(&["task", "ls"]);
        out.stdout.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    pub fn wait_task(&self, id: &str, status: &str) -> i32 {
        poll(Duration::from_secs(10), || {
            self.task(id).filter(|t| t.1 == status).map(|t| t.0)
        })
        .unwrap_or_else(|| panic!("task {id} never {status}: {:?}", self.task(id)))
    }

    /// berth-runtime reading the state the shim made it write.
    pub fn berth_state(&self, id: &str) -> Value {
        let mut cmd = Command::new(runtime_bin());
        cmd.arg("--root")
            .arg(self.runc_root().join(&self.ns))
            .args(["state", id]);
        let out = capture(cmd, Capture::Pipes, CTR_TIMEOUT);
        out.ok();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{out}"))
    }

    /// The shim's bundle directory of a container.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let tasks = self.ctr_quiet(&["task", "ls", "--quiet"]);
            for t in tasks.stdout.lines() {
                self.ctr_quiet(&["task", "kill", "--signal", "SIGKILL", t]);
                let _ = poll(Duration::from_secs(5), || {
                    self.ctr_quiet(&["task", "rm", "--force", t])
                        .success()
                        .then_some(())
                });
            }
            let cs = self.ctr_quiet(&["container", "ls", "--quiet"]);
            for c in cs.stdout.lines() {
                self.ctr_quiet(&["container", "rm", c]);
            }
        }));
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let gone = poll(Duration::from_secs(10), || {
                child.try_wait().ok().flatten().map(|_| ())
            });
            if gone.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // The shim puts each task's cgroup under /<namespace>/ (ctr, and the CRI's pods
        // without a cgroup parent); the runtime removes the task's, the namespace's is left
        // (as with runc): remove it where it is empty.
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(h.path().join(&self.ns));
        }
    }
}

/// berth-runtime's own debug lines in the shim's log.json: runc writes none of these.
pub fn ran_by_berth(log_json: &Path, verb: &str) -> bool {
    std::fs::read_to_string(log_json)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("root ") && m.contains(&format!(": {verb}")))
        })
}
