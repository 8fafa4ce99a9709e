//! Linux security modules: `process.apparmorProfile` and `process.selinuxLabel` (and
//! `linux.mountLabel`). A label is applied for the next `execve` by writing
//! `/proc/self/attr/…/exec`, just before the container's program runs (as runc does). A
//! label for a module the host does not run is an error, never silently dropped.

use crate::error::{config_err, Context, Result};

/// Whether the host runs AppArmor.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// Whether the host runs SELinux.
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuses labels the host cannot apply. `field` is the process's JSON path.
pub fn validate(apparmor: Option<&str>, selinux: Option<&str>, field: &str) -> Result<()> {
    if apparmor.is_some_and(|p| !p.is_empty()) && !apparmor_enabled() {
        return Err(config_err(
            format!("{field}.apparmorProfile"),
            "AppArmor is not enabled on this host",
        ));
    }
    if selinux.is_some_and(|l| !l.is_empty()) && !selinux_enabled() {
        return Err(config_err(
            format!("{field}.selinuxLabel"),
            "SELinux is not enabled on this host",
        ));
    }
    Ok(())
}

/// Makes the next `execve` run under the AppArmor profile and SELinux label.
pub fn apply(apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        let text = format!("exec {p}");
        std::fs::write("/proc/self/attr/apparmor/exec", &text)
            .or_else(|_| std::fs::write("/proc/self/attr/exec", &text))
            .ctx(|| format!("process.apparmorProfile: apply {p}"))?;
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        std::fs::write("/proc/self/attr/exec", l)
            .ctx(|| format!("process.selinuxLabel: apply {l}"))?;
    }
    Ok(())
}
