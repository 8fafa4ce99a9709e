//! Support for the microVM tests (`tests/vmm.rs`): the test guest (built here from
//! `tests/guest/guest.asm` with nasm and ld), the `berth` binary, and [`VmRoot`], a private
//! state root whose VMs are killed when it is dropped.

use crate::{capture, poll, workspace_dir, Capture, Output, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// How long one `berth vm` command may take.
pub const VM_TIMEOUT: Duration = Duration::from_secs(60);

/// Fails the test unless `/dev/kvm` is there: these tests never pass silently without KVM.
#[track_caller]
pub fn require_kvm() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "the microVM tests need /dev/kvm, which is absent on this host (load kvm_intel, \
         kvm_amd or kvm_pvm, or run on a machine with KVM)"
    );
}

/// The `berth` binary under test.
pub fn berth_bin() -> PathBuf {
    let path = workspace_dir().join("target/debug/berth");
    assert!(
        path.is_file(),
        "berth not built: run `cargo build --workspace` first (looked for {})",
        path.display()
    );
    path
}

fn run_tool(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (install nasm and binutils): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test guest (a PVH ELF), assembled once per test process into
/// `target/test-guest/guest.elf`.
pub fn test_guest() -> PathBuf {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST
        .get_or_init(|| {
            let src = workspace_dir().join("tests/guest");
            let out = workspace_dir().join("target/test-guest");
            std::fs::create_dir_all(&out).expect("create target/test-guest");
            // Built under names of this process, then renamed into place (atomically, so
            // a concurrent test process never sees half a file).
            let pid = std::process::id();
            let obj = out.join(format!("guest-{pid}.o"));
            let tmp = out.join(format!("guest-{pid}.elf"));
            let elf = out.join("guest.elf");
            run_tool(
                Command::new("nasm")
                    .args(["-f", "elf64"])
                    .arg(format!("-I{}/", src.display()))
                    .arg("-o")
                    .arg(&obj)
                    .arg(src.join("guest.asm")),
            );
            run_tool(
                Command::new("ld")
                    .args(["-m", "elf_x86_64", "--no-warn-rwx-segments", "-T"])
                    .arg(src.join("guest.ld"))
                    .arg("-o")
                    .arg(&tmp)
                    .arg(&obj),
            );
            let _ = std::fs::remove_file(&obj);
            std::fs::rename(&tmp, &elf).expect("rename the test guest into place");
            elf
        })
        .clone()
}

/// A private `--root` for `berth vm`; every VM still recorded there is killed on drop.
pub struct VmRoot {
    pub dir: TempDir,
}

impl Default for VmRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl VmRoot {
    pub fn new() -> VmRoot {
        require_kvm();
        VmRoot {
            dir: TempDir::new("vm"),
        }
    }

    /// The state root.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// `berth vm --root ROOT ARGS…`, captured.
    pub fn vm(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("vm").arg("--root").arg(self.root()).args(args);
        cmd.env_remove("RUST_BACKTRACE");
        capture(cmd, Capture::Pipes, VM_TIMEOUT)
    }

    /// `berth vm run --kernel <test guest> ARGS…` in the foreground.
    pub fn run_guest(&self, args: &[&str]) -> Output {
        let guest = test_guest();
        let mut all = vec!["run", "--kernel", guest.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.vm(&all)
    }

    /// The names of the VMs recorded under the root.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A detached VM's console log so far.
    pub fn console(&self, name: &str) -> String {
        std::fs::read_to_string(self.root().join(name).join("console.log")).unwrap_or_default()
    }

    /// Waits until `name`'s console contains `needle`; panics with the console otherwise.
    #[track_caller]
    pub fn wait_console(&self, name: &str, needle: &str) -> String {
        poll(VM_TIMEOUT, || {
            let c = self.console(name);
            c.contains(needle).then_some(c)
        })
        .unwrap_or_else(|| {
            panic!(
                "vm {name}: {needle:?} never appeared on the console:\n{}",
                self.console(name)
            )
        })
    }
}

impl Drop for VmRoot {
    fn drop(&mut self) {
        for name in self.names() {
            let _ = self.vm(&["kill", &name]);
        }
    }
}

/// The complete lines of a console (a line still being written is left out).
fn complete_lines(console: &str) -> std::str::Lines<'_> {
    let end = console.rfind('\n').map_or(0, |i| i + 1);
    console[..end].lines()
}

/// The last complete "tick N" line of a console, 0 if none.
pub fn last_tick(console: &str) -> u32 {
    complete_lines(console)
        .rev()
        .filter_map(|l| l.strip_prefix("tick "))
        .filter_map(|n| n.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// The first complete "tick N" line of a console, 0 if none.
pub fn first_tick(console: &str) -> u32 {
    complete_lines(console)
        .filter_map(|l| l.strip_prefix("tick "))
        .filter_map(|n| n.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

impl VmRoot {
    /// Waits until `name`'s console has a complete "tick N" line; returns the first N.
    #[track_caller]
    pub fn wait_first_tick(&self, name: &str) -> u32 {
        poll(VM_TIMEOUT, || {
            Some(first_tick(&self.console(name))).filter(|t| *t > 0)
        })
        .unwrap_or_else(|| panic!("vm {name} never ticked:\n{}", self.console(name)))
    }
}

/// The processes with `root` in their command line (VMMs), after waiting up to 3 s for
/// their number to become `expected`: a monitor that ended leaves KVM's teardown of its VM
/// to a child that lives a few milliseconds past it (see `Vm::defer_teardown`).
pub fn vmm_processes(root: &Path, expected: usize) -> Vec<(i32, String)> {
    let mut last = Vec::new();
    poll(Duration::from_secs(3), || {
        last = crate::pids_with_cmdline(&root.to_string_lossy());
        (last.len() == expected).then_some(())
    });
    last
}

/// The microVM guest kernel's directory (`vmlinux`, `bzImage`), built from Debian's
/// linux-source-6.1 by `scripts/build-guest-kernel.sh` on first use and cached in
/// `target/guest-kernel/` (about 3 minutes on 2 cores).
/// Held by every test that boots the Linux guest: under a software virtualizer one boot
/// takes one to two and a half minutes of both host cores, and several at once starve each
/// other past their timeouts (seen on a loaded machine). One at a time per test binary.
pub fn linux_boot_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn guest_kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(workspace_dir().join("scripts/build-guest-kernel.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("run scripts/build-guest-kernel.sh");
            assert!(
                out.status.success(),
                "scripts/build-guest-kernel.sh failed (run scripts/install-deps.sh first)"
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// An uncompressed initramfs (newc cpio: a gzip one costs minutes of guest time under
/// kvm_pvm) with busybox and an `/init` that prints a marker and reboots.
pub fn busybox_initramfs(dir: &Path) -> PathBuf {
    let tree = dir.join("initramfs");
    std::fs::create_dir_all(tree.join("bin")).expect("mkdir initramfs");
    std::fs::copy("/bin/busybox", tree.join("bin/busybox")).expect("copy busybox");
    let init = tree.join("init");
    std::fs::write(
        &init,
        "#!/bin/busybox sh\n/bin/busybox echo berth-linux-init-ran\n/bin/busybox reboot -f\n",
    )
    .expect("write init");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cpio = dir.join("initramfs.cpio");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
            tree.display(),
            cpio.display()
        ))
        .status()
        .expect("run cpio");
    assert!(st.success(), "cpio failed (install cpio)");
    cpio
}

/// The static guest agent (`berth-agent`), built once per test process by
/// `scripts/build-agent.sh` into `target/agent/release/`.
pub fn agent_bin() -> PathBuf {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(workspace_dir().join("scripts/build-agent.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("run scripts/build-agent.sh");
            assert!(
                out.status.success(),
                "scripts/build-agent.sh failed: the guest agent could not be built static"
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// The directories of a monitor's cgroup, `/berth-vm/<name>.<pid>`: one per memory, cpu and
/// pids v1 hierarchy, keyed by controller, or the unified one (key "") on a v2-only host;
/// found from /proc/self/mountinfo. Panics where no cgroup hierarchy is mounted.
pub fn vmm_cgroup_dirs(name: &str, pid: u32) -> Vec<(String, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mut v1 = Vec::new();
    let mut unified = None;
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(mountpoint), mut r) = (left.split(' ').nth(4), right.split(' ')) else {
            continue;
        };
        let (fstype, _, opts) = (r.next(), r.next(), r.next().unwrap_or_default());
        let rel = format!("berth-vm/{name}.{pid}");
        match fstype {
            Some("cgroup") => {
                for c in ["memory", "cpu", "pids"] {
                    if opts.split(',').any(|o| o == c) {
                        v1.push((c.to_string(), Path::new(mountpoint).join(&rel)));
                    }
                }
            }
            Some("cgroup2") => unified = Some(Path::new(mountpoint).join(&rel)),
            _ => {}
        }
    }
    if v1.is_empty() {
        let u = unified.expect("no cgroup hierarchy is mounted on this host");
        return vec![(String::new(), u)];
    }
    v1
}

/// The pid of the monitor of VM `name` under `root`, from its record.
pub fn vmm_pid(root: &Path, name: &str) -> u32 {
    let text = std::fs::read_to_string(root.join(name).join("vm.json"))
        .unwrap_or_else(|e| panic!("vm {name}: no record: {e}"));
    let record: serde_json::Value = serde_json::from_str(&text).expect("vm.json is JSON");
    record["pid"].as_u64().expect("vm.json has a pid") as u32
}

/// Waits up to 5 s until none of `dirs` exists; returns those left.
pub fn cgroups_left(dirs: &[(String, PathBuf)]) -> Vec<PathBuf> {
    let mut left = Vec::new();
    poll(Duration::from_secs(5), || {
        left = dirs
            .iter()
            .filter(|(_, d)| d.exists())
            .map(|(_, d)| d.clone())
            .collect();
        left.is_empty().then_some(())
    });
    left
}
