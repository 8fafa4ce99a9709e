//! Small helpers shared by the suites.

use super::*;

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

/// The C source of [`syscall_probe`].
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long r) {
    if (r < 0) printf("%s=errno%d\n", name, errno); else printf("%s=ok\n", name);
}

int main(void) {
    /* KEY_SPEC_SESSION_KEYRING = -3, KEYCTL_GET_KEYRING_ID = 0 */
    report("add_key", syscall(SYS_add_key, "user", "berth-probe", "x", 1, -3));
    report("keyctl", syscall(SYS_keyctl, 0, -3, 0));
    /* clone3 with a NULL argument: EFAULT/EINVAL when allowed, ENOSYS under the profile */
    report("clone3", syscall(SYS_clone3, NULL, 0));
    /* READ_IMPLIES_EXEC is not an allowed persona */
    report("personality", syscall(SYS_personality, 0x0400000));
    report("vsock", socket(40, SOCK_STREAM, 0));
    report("unshare_user", syscall(SYS_unshare, 0x10000000));
    return 0;
}
"#;

/// A static binary (compiled with `cc -static` into `dir`) that tries system calls the
/// default seccomp profile forbids and prints `NAME=ok` or `NAME=errnoN` for each:
/// add_key, keyctl, clone3, personality(READ_IMPLIES_EXEC), socket(AF_VSOCK),
/// unshare(CLONE_NEWUSER).
pub fn syscall_probe(dir: &Path) -> PathBuf {
    let src = dir.join("probe.c");
    let bin = dir.join("probe");
    fs::write(&src, PROBE_C).expect("write probe.c");
    let out = Command::new("cc")
        .args(["-static", "-O", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc (install gcc and libc6-dev): {e}"));
    assert!(
        out.status.success(),
        "cc -static probe.c failed (libc6-dev provides libc.a):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}
