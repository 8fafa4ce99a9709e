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
