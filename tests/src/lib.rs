//! End-to-end test support for berth (see `tests/*.rs`).
//!
//! Every test builds a [`Bundle`]: a fresh temporary directory with a busybox root
//! filesystem and a `config.json` modelled on `runc spec`, its own `--root` state
//! directory and a unique container id. The runtime under test is [`runtime_bin`]:
//! `$BERTH_RUNTIME` if set (e.g. `/usr/sbin/runc`), else `target/debug/berth-runtime`.
//! Dropping a bundle force-deletes its containers and removes its directories, so a
//! failing test leaks nothing.
#![forbid(unsafe_code)]

pub mod api;
pub mod images;
pub mod oci;
pub mod vm;

use serde_json::{json, Value};
use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one runtime invocation may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// The default capability set of a bundle (the one docker and podman use).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The default hostname of a bundle's container.
pub const HOSTNAME: &str = "berth-test";

/// `maskedPaths` of the default config (as `runc spec` has them).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// `readonlyPaths` of the default config (as `runc spec` has them).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The workspace directory (the parent of this package).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The runtime under test: `$BERTH_RUNTIME`, else `<workspace>/target/debug/berth-runtime`.
/// The path is absolute (podman needs that).
pub fn runtime_bin() -> PathBuf {
    let path = match std::env::var_os("BERTH_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_dir().join("target/debug/berth-runtime"),
    };
    if !path.is_file() {
        panic!(
            "berth-runtime not built: run `cargo build --workspace` first, or set BERTH_RUNTIME \
             (looked for {})",
            path.display()
        );
    }
    fs::canonicalize(&path).unwrap_or(path)
}

/// Whether the runtime under test is runc (a few tests note runc's known differences).
pub fn runtime_is_runc() -> bool {
    runtime_bin().file_name().is_some_and(|n| n == "runc")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A suffix unique within this machine for the life of this process: `<pid>-<n>`.
pub fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A unique container id: `t-<name>-<pid>-<n>`.
pub fn unique_id(name: &str) -> String {
    format!("t-{name}-{}", unique_suffix())
}

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A fresh directory (mode 0755) under the system temp dir, removed (after unmounting
/// anything left mounted beneath it) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("berth-{prefix}-{}", unique_suffix()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        unmount_under(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &s[i + 1..i + 4];
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mountinfo file (`/proc/self/mountinfo`, `/proc/<pid>/mountinfo`).
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountInfo {
                root: unescape_mountinfo(pre.get(3)?),
                mount_point: unescape_mountinfo(pre.get(4)?),
                options: pre.get(5)?.to_string(),
                fstype: post.first()?.to_string(),
                source: post
                    .get(1)
                    .map(|s| unescape_mountinfo(s))
                    .unwrap_or_default(),
                super_options: post.get(2).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// The mounts of the test process's mount namespace.
pub fn host_mounts() -> Vec<MountInfo> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// Lazily unmounts everything mounted at or below `dir` in our mount namespace (so that a
/// leaked mount can never make `remove_dir_all` walk into a host directory).
pub fn unmount_under(dir: &Path) {
    let prefix = dir.to_string_lossy().into_owned();
    for _ in 0..8 {
        let mut points: Vec<String> = host_mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The root filesystem
// ---------------------------------------------------------------------------------------------

const BUSYBOX: &str = "/bin/busybox";

/// True if the ELF file at `path` has no PT_INTERP program header (is statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = fs::read(path) else { return false };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap_or([0; 8])) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > b.len() {
            return false;
        }
        if u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) == 3 {
            return false; // PT_INTERP: dynamically linked
        }
    }
    true
}

/// The applets of the host's static busybox (panics with "install busybox-static" if there
/// is no static /bin/busybox).
pub fn busybox_applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        if !Path::new(BUSYBOX).is_file() || !is_static_elf(Path::new(BUSYBOX)) {
            panic!("{BUSYBOX} is missing or not statically linked: install busybox-static");
        }
        let out = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .expect("busybox --list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .map(String::from)
            .collect()
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

pub const GROUP: &str = "root:x:0:\nwheel:x:10:\naudio:x:29:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Fills `root` with a static busybox, a link per applet in /bin and the usual directories.
pub fn build_rootfs(root: &Path) {
    let applets = busybox_applets();
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox into the rootfs");
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755))
        .expect("chmod busybox");
    for a in applets {
        symlink("busybox", root.join("bin").join(a)).expect("applet link");
    }
    fs::write(root.join("etc/passwd"), PASSWD).expect("write passwd");
    fs::write(root.join("etc/group"), GROUP).expect("write group");
    fs::write(root.join("etc/hostname"), "rootfs-hostname\n").expect("write hostname");
}

// ---------------------------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------------------------

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
            .field("dir", &self.dir.path)
            .field("root", &self.state.path)
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

// ---------------------------------------------------------------------------------------------
// Leftovers
// ---------------------------------------------------------------------------------------------

/// The mount points of every cgroup (v1 and v2) hierarchy of the host.
pub fn cgroup_mount_points() -> Vec<PathBuf> {
    host_mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.mount_point))
        .collect()
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.chars().next()
}

/// Pids (not zombies) whose command line contains `needle`, other than ours.
pub fn pids_with_cmdline(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) && proc_state(pid) != Some('Z') {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Everything of container `id` (of bundle `b`) still on the host; empty when clean.
pub fn leftovers(b: &Bundle, id: &str, pid: Option<i32>) -> Vec<String> {
    let mut left = Vec::new();
    let state_dir = b.state_root().join(id);
    if state_dir.exists() {
        left.push(format!("state dir {}", state_dir.display()));
    }
    let cg = b.cgroups_path();
    let cg = cg.trim_start_matches('/');
    if !cg.is_empty() {
        for mp in cgroup_mount_points() {
            let d = mp.join(cg);
            if d.exists() {
                left.push(format!("cgroup dir {}", d.display()));
            }
        }
    }
    let bundle = b.dir_str();
    for m in host_mounts() {
        if m.mount_point.contains(&bundle) {
            left.push(format!("mount at {}", m.mount_point));
        }
    }
    if !id.is_empty() {
        for (p, cmdline) in pids_with_cmdline(id) {
            left.push(format!("process {p}: {cmdline}"));
        }
    }
    if let Some(pid) = pid {
        if let Some(st) = proc_state(pid) {
            if st != 'Z' {
                left.push(format!("container init {pid} still alive (state {st})"));
            }
        }
    }
    left
}

/// Asserts (allowing up to 3 s for processes to die) that container `id` left nothing
/// behind: no state dir under the root, no cgroup dir under any hierarchy, no mount whose
/// path contains the bundle dir, no process with the id in its command line, and the init
/// `pid` (if given) gone.
#[track_caller]
pub fn assert_no_leftovers(b: &Bundle, id: &str, pid: Option<i32>) {
    let mut last = Vec::new();
    let clean = poll(Duration::from_secs(3), || {
        last = leftovers(b, id, pid);
        last.is_empty().then_some(())
    });
    assert!(
        clean.is_some(),
        "container {id:?} left things behind:\n  {}",
        last.join("\n  ")
    );
}

/// Asserts the state root holds no container at all.
#[track_caller]
pub fn assert_state_root_empty(b: &Bundle) {
    let entries: Vec<String> = fs::read_dir(b.state_root())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        entries.is_empty(),
        "state root {} is not empty: {entries:?}",
        b.state_root().display()
    );
}

// ---------------------------------------------------------------------------------------------
// Misc helpers
// ---------------------------------------------------------------------------------------------

/// Capability name → number (the ones the tests use).
pub fn cap_number(name: &str) -> u32 {
    let n = name.trim_start_matches("CAP_");
    const CAPS: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
    ];
    CAPS.iter()
        .position(|c| *c == n)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The `/proc/<pid>/status` hex mask (16 digits) of a capability list.
pub fn cap_mask(list: &[&str]) -> String {
    let mask = list.iter().fold(0u64, |m, c| m | (1u64 << cap_number(c)));
    format!("{mask:016x}")
}

/// A value of `/proc/<pid>/status` (e.g. "Uid"), trimmed.
pub fn proc_status_field(pid: i32, field: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// `readlink /proc/<pid>/ns/<ns>` from the host.
pub fn ns_of(pid: i32, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{ns}: {e}"))
        .to_string_lossy()
        .into_owned()
}
