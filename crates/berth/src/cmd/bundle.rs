//! `berth bundle DIR [-- CMD…]`: a busybox-static rootfs and a default config.json.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to create the bundle in (must not exist yet).
    dir: PathBuf,
    /// A statically linked busybox (Debian package busybox-static).
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    /// Hostname of the container.
    #[arg(long, default_value = "berth")]
    hostname: String,
    /// The command to run (default: sh).
    #[arg(last = true)]
    command: Vec<String>,
}

fn is_static(bin: &Path) -> Result<bool> {
    let bytes = std::fs::read(bin).with_context(|| format!("read {}", bin.display()))?;
    // An ELF with no PT_INTERP program header needs no dynamic loader.
    Ok(!bytes
        .windows(b"/lib64/ld-linux".len())
        .any(|w| w == b"/lib64/ld-linux"))
}

pub fn run(a: Args) -> Result<()> {
    if a.dir.exists() {
        bail!("{} already exists", a.dir.display());
    }
    if !a.busybox.is_file() {
        bail!(
            "{} not found: install busybox-static (apt-get install busybox-static)",
            a.busybox.display()
        );
    }
    if !is_static(&a.busybox)? {
        bail!(
            "{} is dynamically linked: install busybox-static",
            a.busybox.display()
        );
    }
    let rootfs = a.dir.join("rootfs");
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root",
    ] {
        std::fs::create_dir_all(rootfs.join(d))
            .with_context(|| format!("create {}", rootfs.join(d).display()))?;
    }
    std::fs::copy(&a.busybox, rootfs.join("bin/busybox")).context("copy busybox")?;
    let list = Command::new(&a.busybox)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| !l.is_empty() && *l != "busybox")
    {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)
                .with_context(|| format!("link {}", link.display()))?;
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(rootfs.join("etc/hostname"), format!("{}\n", a.hostname))?;
    let mut spec = runtime::spec_default::default_spec(false);
    spec["hostname"] = a.hostname.into();
    if !a.command.is_empty() {
        spec["process"]["args"] = serde_json::json!(a.command);
    }
    std::fs::write(
        a.dir.join("config.json"),
        serde_json::to_string_pretty(&spec)? + "\n",
    )?;
    println!("{}", a.dir.display());
    Ok(())
}
