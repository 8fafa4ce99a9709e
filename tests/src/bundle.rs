//! Bundles: a rootfs, a config.json, a state root and the runtime verbs on them.

use super::*;

fn caps(list: &[&str]) -> Value {
    json!({ "bounding": list, "effective": list, "permitted": list })
}

/// The default config: `runc spec`'s, non-terminal, with the docker capability set, a cgroup
/// namespace and `cgroupsPath` `/berth-test/<id>`.
pub fn default_config(id: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": caps(DEFAULT_CAPS),
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": HOSTNAME,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": format!("/berth-test/{id}"),
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    })
}

/// An OCI bundle (busybox rootfs + config.json) with its own state root and container id.
///
/// Dropping it runs `<runtime> delete --force` for every id it was used with, then removes
/// its directories.
pub struct Bundle {
    /// The container id used by the methods without an id argument.
    pub id: String,
    config: Value,
    ids: RefCell<Vec<String>>,
    /// The runtime command, when not [`runtime_bin`] (see [`Bundle::with_runtime`]).
    runtime: Option<PathBuf>,
    state: TempDir,
    dir: TempDir,
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("id", &self.id)
            .field("dir", &self.dir.path())
            .field("root", &self.state.path())
            .finish()
    }
}

impl Bundle {
    /// A new bundle for test `name` (keep it short: it is part of the container id).
    pub fn new(name: &str) -> Bundle {
        let id = unique_id(name);
        let dir = TempDir::new(&format!("bundle-{name}"));
        let state = TempDir::new(&format!("state-{name}"));
        build_rootfs(&dir.join("rootfs"));
        let b = Bundle {
            config: default_config(&id),
            ids: RefCell::new(vec![id.clone()]),
            runtime: None,
            id,
            state,
            dir,
        };
        b.write_config();
        b
    }

    /// Drives this bundle (every command, and the drop guard) with `runtime` instead of
    /// [`runtime_bin`]: e.g. a wrapper that runs the runtime in another view of the host.
    pub fn with_runtime(mut self, runtime: PathBuf) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The runtime command this bundle uses.
    pub fn runtime(&self) -> PathBuf {
        self.runtime.clone().unwrap_or_else(runtime_bin)
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn dir_str(&self) -> String {
        self.dir().to_string_lossy().into_owned()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The `--root` state directory given to every runtime command.
    pub fn state_root(&self) -> &Path {
        self.state.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The config as last set (what config.json holds unless [`Bundle::write_raw_config`]).
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Writes config.json from the in-memory config.
    pub fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        fs::write(self.config_path(), text).expect("write config.json");
    }

    /// Writes `text` as config.json as is (the in-memory config is kept for the cleanup).
    pub fn write_raw_config(&self, text: &str) {
        fs::write(self.config_path(), text).expect("write config.json");
    }

    /// Changes the config (and rewrites config.json).
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.write_config();
    }

    /// Builder form of [`Bundle::edit`].
    pub fn with(mut self, f: impl FnOnce(&mut Value)) -> Self {
        self.edit(f);
        self
    }

    /// Sets `process.args`.
    pub fn args(self, args: &[&str]) -> Self {
        self.with(|c| c["process"]["args"] = json!(args))
    }

    /// Sets `process.args` to `sh -c script`.
    pub fn sh(self, script: &str) -> Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends a mount.
    pub fn mount(self, m: Value) -> Self {
        self.with(|c| {
            c["mounts"]
                .as_array_mut()
                .expect("mounts is an array")
                .push(m)
        })
    }

    /// Appends a writable tmpfs mount at `dest`.
    pub fn tmpfs(self, dest: &str) -> Self {
        self.mount(json!({
            "destination": dest, "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"]
        }))
    }

    /// Appends a bind mount of host directory `src` at `dest` (read-only if `ro`).
    pub fn bind(self, src: &Path, dest: &str, ro: bool) -> Self {
        let mut options = vec!["rbind", "rprivate"];
        if ro {
            options.push("ro");
        }
        self.mount(json!({
            "destination": dest, "type": "bind", "source": src, "options": options
        }))
    }

    /// Sets a field under `linux.resources` (creating the object).
    pub fn resources(self, key: &str, v: Value) -> Self {
        self.with(|c| {
            if !c["linux"]["resources"].is_object() {
                c["linux"]["resources"] = json!({});
            }
            c["linux"]["resources"][key] = v;
        })
    }

    /// `linux.cgroupsPath` of the config (or the default one if it has none).
    pub fn cgroups_path(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("/berth-test/{}", self.id))
    }

    /// The container's cgroup directory in v1 hierarchy `controller` (e.g. "memory").
    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(self.cgroups_path().trim_start_matches('/'))
    }

    /// Reads a file of the container's cgroup in `controller`, trimmed.
    pub fn cgroup_file(&self, controller: &str, file: &str) -> String {
        let p = self.cgroup_dir(controller).join(file);
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_string()
    }

    /// Remembers `id` so the drop guard force-deletes it too.
    pub fn track(&self, id: &str) {
        let mut ids = self.ids.borrow_mut();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// A `Command` for `<runtime> --root <state root> <args>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.runtime());
        cmd.arg("--root").arg(self.state_root()).args(args);
        cmd
    }

    /// Runs `<runtime> --root <state root> <args>`, output through pipes.
    pub fn rt(&self, args: &[&str]) -> Output {
        capture(self.command(args), Capture::Pipes, CMD_TIMEOUT)
    }

    /// Like [`Bundle::rt`], with output through files (for `--detach` commands).
    pub fn rt_files(&self, args: &[&str]) -> Output {
        capture(
            self.command(args),
            Capture::Files(self.dir.join("io")),
            CMD_TIMEOUT,
        )
    }

    pub fn run(&self) -> Output {
        run(self, &self.id)
    }

    pub fn create(&self) -> Output {
        create(self, &self.id)
    }

    pub fn start(&self) -> Output {
        start(self, &self.id)
    }

    pub fn state(&self) -> Output {
        state(self, &self.id)
    }

    pub fn state_json(&self) -> Value {
        state_json(self, &self.id)
    }

    pub fn status(&self) -> String {
        self.state_json()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The container's init pid (from `state`).
    pub fn pid(&self) -> i32 {
        pid_of(&self.state_json())
    }

    pub fn kill(&self, signal: &str) -> Output {
        kill(self, &self.id, signal)
    }

    pub fn delete(&self) -> Output {
        delete(self, &self.id, false)
    }

    pub fn delete_force(&self) -> Output {
        delete(self, &self.id, true)
    }

    /// `exec <id> <args>`.
    pub fn exec(&self, args: &[&str]) -> Output {
        exec(self, &self.id, &[], args)
    }

    /// `exec <flags> <id> <args>`.
    pub fn exec_with(&self, flags: &[&str], args: &[&str]) -> Output {
        exec(self, &self.id, flags, args)
    }

    pub fn wait_status(&self, status: &str, timeout: Duration) -> Value {
        wait_status(self, &self.id, status, timeout)
    }

    /// `create` + `start`, asserting both succeed; returns the init pid.
    pub fn create_start(&self) -> i32 {
        self.create().ok();
        let pid = self.pid();
        self.start().ok();
        pid
    }

    /// `delete --force` (must succeed), then [`assert_no_leftovers`].
    pub fn force_delete_clean(&self, pid: Option<i32>) {
        self.delete_force().ok();
        assert_no_leftovers(self, &self.id, pid);
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let Ok(bin) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.runtime()))
        else {
            return;
        };
        for id in self.ids.borrow().iter() {
            let mut cmd = Command::new(&bin);
            cmd.arg("--root")
                .arg(self.state_root())
                .args(["delete", "--force", id]);
            // Never panic in drop (we may already be unwinding).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                capture(cmd, Capture::Pipes, Duration::from_secs(10))
            }));
        }
    }
}

/// `run --bundle <dir> <id>` (stdin null, output captured, exit status passed through).
pub fn run(b: &Bundle, id: &str) -> Output {
    b.track(id);
    b.rt(&["run", "--bundle", &b.dir_str(), id])
}

/// `create --bundle <dir> <id>`. The container keeps the runtime's stdio, so its output
/// goes to files (in `<bundle>/io/`), not pipes.
pub fn create(b: &Bundle, id: &str) -> Output {
    b.track(id);
    b.rt_files(&["create", "--bundle", &b.dir_str(), id])
}

pub fn start(b: &Bundle, id: &str) -> Output {
    b.rt(&["start", id])
}

pub fn state(b: &Bundle, id: &str) -> Output {
    b.rt(&["state", id])
}

/// `state <id>` parsed (panics if it fails or is not JSON).
pub fn state_json(b: &Bundle, id: &str) -> Value {
    let out = state(b, id);
    out.ok();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("state output is not JSON ({e}):\n{out}"))
}

/// The `pid` of a state (panics unless it is a positive number).
pub fn pid_of(state: &Value) -> i32 {
    let pid = state["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "state has no positive pid: {state}");
    i32::try_from(pid).expect("pid fits in i32")
}

pub fn kill(b: &Bundle, id: &str, signal: &str) -> Output {
    b.rt(&["kill", id, signal])
}

pub fn delete(b: &Bundle, id: &str, force: bool) -> Output {
    if force {
        b.rt(&["delete", "--force", id])
    } else {
        b.rt(&["delete", id])
    }
}

/// `exec <flags> <id> <args>`.
pub fn exec(b: &Bundle, id: &str, flags: &[&str], args: &[&str]) -> Output {
    let mut v = vec!["exec"];
    v.extend_from_slice(flags);
    v.push(id);
    v.extend_from_slice(args);
    b.rt(&v)
}

/// Polls `state` until the status is `status`; panics with the last state after `timeout`.
pub fn wait_status(b: &Bundle, id: &str, status: &str, timeout: Duration) -> Value {
    let mut last = String::new();
    poll(timeout, || {
        let out = state(b, id);
        last = out.to_string();
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        (v["status"] == status).then_some(v)
    })
    .unwrap_or_else(|| {
        panic!("container {id} did not become {status:?} within {timeout:?}; last state:\n{last}")
    })
}
