//! `berth vm image IMAGE -o DISK [--size MiB]`: an OCI image of the store as a bootable ext4
//! root disk.
//!
//! The image's layers are flattened into a directory beside the output by the image
//! crate's copying snapshotter (hostile tar paths were handled when each layer was
//! unpacked); berth adds `/.berth/agent` (the static `berth-agent`, the guest's init) and
//! `/.berth/config.json` (entrypoint, cmd, env, workdir, user of the image config) and the
//! mount points the agent needs; `mkfs.ext4 -d` makes the file system from the directory,
//! without mounting anything, in a temporary file renamed into place.
//!
//! `berth vm run --image` keeps such disks in `<store>/vm-disks/`, named by a digest of the
//! image's manifest digest, the agent and the size: a disk is made once and only read after.

use agent::config::GuestConfig;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default image store (berth's `--root`).
pub const DEFAULT_STORE: &str = "/var/lib/berth";
const MIB: u64 = 1 << 20;

/// Where the image and the agent come from (shared with `vm run --image`).
#[derive(clap::Args, Debug, Clone)]
pub struct Source {
    /// The image store (berth's `--root`; `berth vm --root` is the VMs' state).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    /// The guest agent: a static executable (default: $BERTH_AGENT, else `berth-agent`
    /// beside this binary; build it with scripts/build-agent.sh).
    #[arg(long, value_name = "FILE")]
    pub agent: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: a name, an ID prefix or a manifest digest.
    image: String,
    /// The disk file to write (replaced atomically).
    #[arg(short = 'o', long = "output", value_name = "DISK")]
    output: PathBuf,
    /// The disk's size in MiB (default: the image's content plus headroom).
    #[arg(long, value_name = "MiB")]
    size: Option<u64>,
    #[command(flatten)]
    src: Source,
}

pub fn run(a: Args) -> Result<()> {
    let agent = read_agent(a.src.agent.as_deref())?;
    let store = open_store(&a.src.store)?;
    let size = build_disk(&store, &a.image, &a.output, a.size, &agent)?;
    println!(
        "{}: {} MiB ext4 root disk of {} (boot with init={})",
        a.output.display(),
        size / MIB,
        a.image,
        agent::AGENT_PATH
    );
    Ok(())
}

pub fn open_store(root: &Path) -> Result<image::ImageStore> {
    if !root.is_dir() {
        bail!(
            "image store {}: no such directory (give --store DIR)",
            root.display()
        );
    }
    image::ImageStore::open(root)
        .map_err(|e| anyhow::anyhow!("open the image store at {}: {e}", root.display()))
}

/// The agent's bytes: `path`, else `$BERTH_AGENT`, else `berth-agent` beside this binary;
/// refused unless it is a static x86-64 ELF executable.
pub fn read_agent(path: Option<&Path>) -> Result<Vec<u8>> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("BERTH_AGENT") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .context("locate the berth executable")?
                .with_file_name("berth-agent"),
        },
    };
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "guest agent {}: cannot read it (build it with scripts/build-agent.sh and give \
             --agent or $BERTH_AGENT)",
            path.display()
        )
    })?;
    check_static_elf(&bytes).map_err(|why| {
        anyhow::anyhow!(
            "guest agent {}: {why} (it runs as the guest's PID 1: build it with \
             scripts/build-agent.sh)",
            path.display()
        )
    })?;
    Ok(bytes)
}

/// Whether `elf` is an x86-64 ELF executable without a program interpreter.
fn check_static_elf(elf: &[u8]) -> Result<(), String> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    if u16_at(18) != Some(0x3e) {
        return Err("not an x86-64 executable".into());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return Err("truncated ELF header".into());
    };
    for i in 0..usize::from(phnum) {
        let off = usize::try_from(phoff)
            .ok()
            .and_then(|p| p.checked_add(i * usize::from(phentsize)))
            .ok_or("bad program header offset")?;
        match u32_at(off) {
            Some(3) => return Err("dynamically linked (it has a program interpreter)".into()),
            Some(_) => {}
            None => return Err("truncated program headers".into()),
        }
    }
    Ok(())
}

/// The guest configuration from an image config.
fn guest_config(reference: &str, img: &image::store::Image) -> GuestConfig {
    let ic = img.config.config().clone().unwrap_or_default();
    GuestConfig {
        image: reference.to_string(),
        hostname: String::new(),
        entrypoint: ic.entrypoint().clone().unwrap_or_default(),
        cmd: ic.cmd().clone().unwrap_or_default(),
        env: ic.env().clone().unwrap_or_default(),
        workdir: ic.working_dir().clone().unwrap_or_default(),
        user: ic.user().clone().unwrap_or_default(),
    }
}

/// Removes whatever `p` is, without following a symlink.
fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(p).with_context(|| format!("remove {}", p.display()))
        }
        Ok(_) => fs::remove_file(p).with_context(|| format!("remove {}", p.display())),
        Err(_) => Ok(()),
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("write {}", path.display()))?;
    // The umask may have narrowed the mode.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Adds the agent, its configuration and the mount points to a flattened rootfs.
fn add_agent(rootfs: &Path, agent: &[u8], config: &GuestConfig) -> Result<()> {
    // The image's own `.berth`, whatever it is (a symlink out of the tree included), goes.
    let dir = rootfs.join(".berth");
    remove_any(&dir)?;
    fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))?;
    write_new(&dir.join("agent"), agent, 0o755)?;
    let json = serde_json::to_vec_pretty(config).context("encode the guest configuration")?;
    write_new(&dir.join("config.json"), &json, 0o644)?;
    for (name, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("run", 0o755),
    ] {
        let p = rootfs.join(name);
        // Whatever the image has there (even a symlink) is left for the agent to cope with.
        if fs::symlink_metadata(&p).is_err() {
            fs::create_dir(&p).with_context(|| format!("create {}", p.display()))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {}", p.display()))?;
        }
    }
    Ok(())
}

/// Bytes and inodes a tree needs on ext4 (4 KiB blocks; hard links counted once).
fn usage(root: &Path) -> Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        bytes += 4096;
        inodes += 1;
        for e in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let e = e.with_context(|| format!("read {}", dir.display()))?;
            let m = e
                .metadata()
                .with_context(|| format!("stat {}", e.path().display()))?;
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            inodes += 1;
            // Symlinks under 60 bytes live in the inode.
            if !(m.file_type().is_symlink() && m.len() < 60) {
                bytes += m.len().div_ceil(4096) * 4096;
            }
        }
    }
    Ok((bytes, inodes))
}

/// The smallest disk (bytes) that holds `content` bytes in `inodes` inodes: the files, the
/// inode tables, a journal and the metadata.
fn min_size(content: u64, inodes: u64) -> u64 {
    (content + content / 20 + inodes * 256 + 16 * MIB).div_ceil(MIB) * MIB
}

/// The default disk size: room to write in the guest.
fn default_size(content: u64, inodes: u64) -> u64 {
    (content + content / 2 + inodes * 512 + 64 * MIB).div_ceil(MIB) * MIB
}

/// `mkfs.ext4`: /usr/sbin, /sbin, else $PATH.
fn mkfs() -> PathBuf {
    ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mkfs.ext4"))
}

/// Removes the work files when dropped.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = remove_any(p);
        }
    }
}

/// Makes the disk of image `reference` at `out`; returns its size in bytes.
pub fn build_disk(
    store: &image::ImageStore,
    reference: &str,
    out: &Path,
    size_mib: Option<u64>,
    agent: &[u8],
) -> Result<u64> {
    if out.is_dir() {
        bail!("-o {}: is a directory (give a file name)", out.display());
    }
    let name = out
        .file_name()
        .with_context(|| format!("-o {}: not a file name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(
            "-o {}: directory {} does not exist",
            out.display(),
            parent.display()
        );
    }
    if size_mib == Some(0) {
        bail!("--size 0: a disk needs at least one MiB");
    }
    let img = store
        .resolve(reference)
        .with_context(|| format!("image {reference}"))?;
    let layers = img
        .layers()
        .with_context(|| format!("image {reference}: layers"))?;

    let pid = std::process::id();
    let rootfs = parent.join(format!(".{name}.rootfs-{pid}"));
    let tmp = parent.join(format!(".{name}.tmp-{pid}"));
    let _cleanup = Cleanup(vec![rootfs.clone(), tmp.clone()]);
    fs::create_dir(&rootfs).with_context(|| format!("create {}", rootfs.display()))?;
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", rootfs.display()))?;
    store
        .flatten_rootfs(&layers, &rootfs)
        .with_context(|| format!("image {reference}: flatten its layers"))?;
    add_agent(&rootfs, agent, &guest_config(reference, &img))?;

    let (content, inodes) = usage(&rootfs)?;
    let min = min_size(content, inodes);
    let size = match size_mib {
        Some(mib) => {
            let size = mib.checked_mul(MIB).context("--size: too large")?;
            if size < min {
                bail!(
                    "--size {mib} MiB: too small for image {reference} ({} MiB of files; \
                     give at least {} MiB, or leave --size out)",
                    content.div_ceil(MIB),
                    min / MIB
                );
            }
            size
        }
        None => default_size(content, inodes),
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    file.set_len(size)
        .with_context(|| format!("size {}", tmp.display()))?;
    // One inode per 16 KiB (mke2fs's default) unless the image needs more.
    let want_inodes = inodes + inodes / 2 + 1024;
    let mut cmd = Command::new(mkfs());
    cmd.args([
        "-F",
        "-q",
        "-t",
        "ext4",
        "-b",
        "4096",
        "-L",
        "berth-root",
        "-m",
        "0",
    ])
    .args(["-E", "root_owner=0:0"]);
    if want_inodes > size / 16384 {
        cmd.arg("-N").arg(want_inodes.to_string());
    }
    cmd.arg("-d").arg(&rootfs).arg(&tmp);
    let out_mkfs = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("mkfs.ext4 not found: install e2fsprogs")
        } else {
            anyhow::anyhow!("run mkfs.ext4: {e}")
        }
    })?;
    if !out_mkfs.status.success() {
        let err = String::from_utf8_lossy(&out_mkfs.stderr);
        bail!(
            "mkfs.ext4 for image {reference} ({} MiB) failed: {}",
            size / MIB,
            err.trim().replace('\n', "; ")
        );
    }
    file.sync_all()
        .with_context(|| format!("sync {}", tmp.display()))?;
    drop(file);
    fs::rename(&tmp, out)
        .with_context(|| format!("rename {} to {}", tmp.display(), out.display()))?;
    if let Ok(d) = fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(size)
}

/// The base disk of `reference` for `vm run --image`, made once per (image, agent) in
/// `<store>/vm-disks/` and reused after.
pub fn cached_disk(src: &Source, reference: &str) -> Result<PathBuf> {
    let agent = read_agent(src.agent.as_deref())?;
    let store = open_store(&src.store)?;
    let img = store
        .resolve(reference)
        .with_context(|| format!("image {reference}"))?;
    let key = content::Digest::sha256(
        format!(
            "berth-vm-disk/1\n{}\n{}\n",
            img.manifest_digest,
            content::Digest::sha256(&agent)
        )
        .as_bytes(),
    );
    let dir = src.store.join("vm-disks");
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let disk = dir.join(format!("{}.ext4", key.hex()));
    if !disk.is_file() {
        // By the manifest digest: a tag moved meanwhile cannot change what the key names.
        build_disk(
            &store,
            &img.manifest_digest.to_string(),
            &disk,
            None,
            &agent,
        )?;
    }
    Ok(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_static_x86_64_elves_pass() {
        let exe = fs::read(std::env::current_exe().expect("exe")).expect("read");
        // The test binary itself is dynamically linked.
        let e = check_static_elf(&exe).expect_err("dynamic");
        assert!(e.contains("dynamically linked"), "{e}");
        assert!(check_static_elf(b"#!/bin/sh\n").is_err());
        assert!(check_static_elf(&exe[..40]).is_err());
        // Without the interpreter header (type 3 → 1) it passes.
        let mut patched = exe.clone();
        let phoff = u64::from_le_bytes(patched[32..40].try_into().expect("8")) as usize;
        let phentsize = usize::from(u16::from_le_bytes([patched[54], patched[55]]));
        let phnum = usize::from(u16::from_le_bytes([patched[56], patched[57]]));
        for i in 0..phnum {
            let o = phoff + i * phentsize;
            if patched[o..o + 4] == 3u32.to_le_bytes() {
                patched[o..o + 4].copy_from_slice(&1u32.to_le_bytes());
            }
        }
        assert_eq!(check_static_elf(&patched), Ok(()));
    }

    #[test]
    fn sizes_leave_room() {
        assert!(min_size(0, 10) >= 16 * MIB);
        assert!(default_size(100 * MIB, 1000) > min_size(100 * MIB, 1000));
        assert_eq!(default_size(1, 1) % MIB, 0);
    }
}
