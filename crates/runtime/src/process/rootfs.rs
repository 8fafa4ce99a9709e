//! Building the container's root filesystem inside its new mount namespace: the mounts of
//! config.json, the cgroup mount, pivot_root, and the masked and read-only paths.
//!
//! Invariant: every mount destination is resolved inside the rootfs with
//! `openat2(RESOLVE_IN_ROOT)` and mounted through `/proc/self/fd/N`, so a symlink in the image
//! can never redirect a mount to the host.

use crate::error::{Context, Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{fstatvfs, FsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Parsed mount options (runtime-spec config.md "Mounts", mount(8) option names).
#[derive(Debug, Clone)]
pub struct MountOpts {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
    /// Recursive attributes (`rro`, `rnosuid`, …): `MOUNT_ATTR_*` to set and to clear on
    /// the mount and every mount below it.
    pub rec_set: u64,
    pub rec_clear: u64,
}

/// The recursive mount options of runtime-spec 1.2 (config.md "Mounts": "rro", "rrw",
/// "rnosuid", …, applied with `mount_setattr(2)` and `AT_RECURSIVE`): (set, clear).
pub fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    use sys::mount::*;
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        // The atime mode is one field: clearing it and setting the new mode changes it;
        // the "no" forms of a mode fall back to the kernel's default, relatime.
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rrelatime" | "ratime" | "rnostrictatime" | "rnorelatime" => {
            (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME)
        }
        _ => return None,
    })
}

/// Maps a propagation name (also `linux.rootfsPropagation`) to mount flags.
pub fn propagation_flag(s: &str) -> Option<MsFlags> {
    Some(match s {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Parses mount options into flags, propagation and filesystem data.
pub fn parse_options(opts: &[String]) -> MountOpts {
    let mut o = MountOpts {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        bind: false,
        recursive: false,
        rec_set: 0,
        rec_clear: 0,
    };
    for opt in opts {
        if let Some((set, clear)) = recursive_attr(opt) {
            // A later option wins over an earlier one, as with the plain flags.
            o.rec_set = (o.rec_set & !clear & !set) | set;
            o.rec_clear = (o.rec_clear & !set) | clear;
            continue;
        }
        let (set, clear) = match opt.as_str() {
            "defaults" | "tmpcopyup" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "nosymfollow" => (MsFlags::from_bits_retain(256), MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MsFlags::from_bits_retain(256)),
            "bind" => {
                o.bind = true;
                (MsFlags::empty(), MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                (MsFlags::empty(), MsFlags::empty())
            }
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else {
                    o.data.push(other.to_string());
                }
                (MsFlags::empty(), MsFlags::empty())
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    o
}

/// `/proc/self/fd/N` for a descriptor: the path through which we mount onto it.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside `root` (O_PATH).
pub fn open_in(root: BorrowedFd<'_>, path: &Path) -> nix::Result<OwnedFd> {
    sys::resolve::open_in_root(root, path, libc::O_PATH, 0)
}

/// Creates every missing directory of `path` inside `root` and returns an O_PATH descriptor
/// of it. Symlinks met on the way are followed inside the root (a dangling absolute symlink
/// `/evil -> /etc` makes `/etc` inside the rootfs, never on the host).
pub fn mkdir_all_in(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd> {
    mkdir_all_depth(root, path, 0)
}

fn mkdir_all_depth(root: BorrowedFd<'_>, path: &Path, depth: u32) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(Error::Sys {
            what: format!("resolve {}", path.display()),
            source: nix::errno::Errno::ELOOP,
        });
    }
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        let next = cur.join(c);
        match sys::resolve::open_in_root(root, &next, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(_) => cur = next,
            Err(nix::errno::Errno::ENOENT) => {
                let parent =
                    sys::resolve::open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY, 0)
                        .ctx(|| format!("open {} in rootfs", cur.display()))?;
                match nix::sys::stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    *c,
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) => cur = next,
                    Err(nix::errno::Errno::EEXIST) => {
                        // A dangling symlink: continue from its target, inside the root.
                        let target = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), *c)
                            .ctx(|| format!("readlink {} in rootfs", next.display()))?;
                        let rest: PathBuf = comps[i + 1..].iter().collect();
                        let t = Path::new(&target);
                        let np = if t.is_absolute() {
                            t.join(rest)
                        } else {
                            cur.join(t).join(rest)
                        };
                        return mkdir_all_depth(root, &np, depth + 1);
                    }
                    Err(e) => {
                        return Err(Error::Sys {
                            what: format!("mkdir {} in rootfs", next.display()),
                            source: e,
                        })
                    }
                }
            }
            Err(e) => {
                return Err(Error::Sys {
                    what: format!("open {} in rootfs", next.display()),
                    source: e,
                })
            }
        }
    }
    sys::resolve::open_in_root(root, path, libc::O_PATH | libc::O_DIRECTORY, 0)
        .ctx(|| format!("open {} in rootfs", path.display()))
}

/// Makes sure a file exists at `path` inside `root` (for bind mounts of files).
pub fn mkfile_in(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd> {
    if let Some(parent) = path.parent() {
        mkdir_all_in(root, parent)?;
    }
    match open_in(root, path) {
        Ok(fd) => return Ok(fd),
        Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Sys {
                what: format!("open {} in rootfs", path.display()),
                source: e,
            })
        }
    }
    drop(
        sys::resolve::open_in_root(
            root,
            path,
            libc::O_CREAT | libc::O_RDONLY | libc::O_NOFOLLOW,
            0o644,
        )
        .or_else(|_| sys::resolve::open_in_root(root, path, libc::O_CREAT | libc::O_RDONLY, 0o644))
        .ctx(|| format!("create {} in rootfs", path.display()))?,
    );
    open_in(root, path).ctx(|| format!("open {} in rootfs", path.display()))
}

/// Flags of an existing mount that a bind remount must keep (they may be locked when the
/// mount came from a more privileged user namespace).
fn locked_flags(fd: BorrowedFd<'_>) -> MsFlags {
    let Ok(st) = fstatvfs(fd) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (s, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            m |= ms;
        }
    }
    m
}

fn mnt<P: ?Sized + nix::NixPath>(
    src: Option<&P>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    mount(src, target, fstype, flags, data).ctx(what)
}

/// Re-applies flags to a bind mount (binds ignore flags on the first call) and propagation.
pub fn remount_bind(fd: BorrowedFd<'_>, flags: MsFlags, rec: bool, dest: &Path) -> Result<()> {
    let f = flags | locked_flags(fd) | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let f = if rec { f | MsFlags::MS_REC } else { f };
    mnt(None::<&str>, &fd_path(fd), None, f, None, || {
        format!("remount {}", dest.display())
    })
}

/// What the mount code needs to know about the container.
pub struct MountCtx<'a> {
    pub rootfs: &'a Path,
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    /// cgroup dirs of the container per hierarchy ("" = unified), for the cgroup mount.
    pub cgroup_paths: &'a std::collections::BTreeMap<String, PathBuf>,
    pub cgroup_unified: bool,
    pub new_cgroupns: bool,
}

/// Performs one entry of `mounts`.
pub fn mount_entry(ctx: &MountCtx<'_>, m: &Mount, index: usize) -> Result<()> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "none" });
    let bind = opts.bind || typ == "bind";
    let what = |op: &str| format!("mounts[{index}] ({op} on {})", dest.display());
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, dest, &opts, index);
    }
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    if bind {
        let src = m.source().as_ref().ok_or_else(|| {
            crate::error::config_err(
                format!("mounts[{index}].source"),
                "required for a bind mount",
            )
        })?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        let meta = std::fs::metadata(&src).map_err(|e| {
            crate::error::config_err(
                format!("mounts[{index}].source"),
                format!("{}: {e}", src.display()),
            )
        })?;
        let fd = if meta.is_dir() {
            mkdir_all_in(ctx.root, dest)?
        } else {
            mkfile_in(ctx.root, dest)?
        };
        let mut f = MsFlags::MS_BIND;
        if opts.recursive {
            f |= MsFlags::MS_REC;
        }
        mnt(Some(&src), &fd_path(fd.as_fd()), None, f, None, || {
            what("bind")
        })?;
        drop(fd);
        let fd = open_in(ctx.root, dest).ctx(|| what("reopen"))?;
        let extra = opts.flags & !(MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(fd.as_fd(), extra, opts.recursive, dest)?;
        }
        apply_propagation(fd.as_fd(), &opts.propagation, dest)?;
        set_recursive_attrs(fd.as_fd(), &opts, dest)?;
        return Ok(());
    }
    let fd = if typ == "proc" || typ == "sysfs" {
        ordinary_dir_in(ctx.root, dest, typ, index)?
    } else {
        mkdir_all_in(ctx.root, dest)?
    };
    let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let target = fd_path(fd.as_fd());
    match mount(Some(&src), &target, Some(typ), opts.flags, data) {
        Ok(()) => {}
        // A user namespace that does not own the network namespace may not mount sysfs:
        // bind the host's read-only instead, as runc does.
        Err(nix::errno::Errno::EPERM) if typ == "sysfs" => {
            mnt(
                Some("/sys"),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
                || what("bind /sys"),
            )?;
            drop(fd);
            let fd = open_in(ctx.root, dest).ctx(|| what("reopen"))?;
            remount_bind(fd.as_fd(), opts.flags | MsFlags::MS_RDONLY, true, dest)?;
            return Ok(());
        }
        Err(e) => {
            return Err(Error::Sys {
                what: what(typ),
                source: e,
            })
        }
    }
    if !opts.propagation.is_empty() || opts.rec_set | opts.rec_clear != 0 {
        drop(fd);
        let fd = open_in(ctx.root, dest).ctx(|| what("reopen"))?;
        apply_propagation(fd.as_fd(), &opts.propagation, dest)?;
        set_recursive_attrs(fd.as_fd(), &opts, dest)?;
    }
    Ok(())
}

/// Applies the recursive options (`rro`, …) to the mount at `fd` and all mounts below it.
fn set_recursive_attrs(fd: BorrowedFd<'_>, opts: &MountOpts, dest: &Path) -> Result<()> {
    if opts.rec_set | opts.rec_clear == 0 {
        return Ok(());
    }
    sys::mount::set_attr_recursive(fd, opts.rec_set, opts.rec_clear).ctx(|| {
        format!(
            "recursive mount options on {}: mount_setattr(AT_RECURSIVE)",
            dest.display()
        )
    })
}

/// The destination of a procfs or sysfs mount, created if missing: it must be an ordinary
/// directory, reached without a symlink. A symlink there (`/proc -> /tmp/x`) would put the
/// kernel's files where the masked and read-only paths (`/proc/kcore`, `/proc/sys`, …) and
/// LSM profiles do not expect them (runc's CVE-2019-16884 and CVE-2019-19921 checks).
fn ordinary_dir_in(root: BorrowedFd<'_>, dest: &Path, typ: &str, index: usize) -> Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let opened = match sys::resolve::open_in_root_no_symlinks(root, dest, flags) {
        Err(nix::errno::Errno::ENOENT) => {
            drop(mkdir_all_in(root, dest)?);
            sys::resolve::open_in_root_no_symlinks(root, dest, flags)
        }
        r => r,
    };
    opened.map_err(|e| match e {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => crate::error::config_err(
            format!("mounts[{index}].destination"),
            format!(
                "{typ} must be mounted on an ordinary directory: {} is (or passes through) a \
                 symlink or is not a directory in the rootfs",
                dest.display()
            ),
        ),
        e => Error::Sys {
            what: format!("open {} in rootfs", dest.display()),
            source: e,
        },
    })
}

fn apply_propagation(fd: BorrowedFd<'_>, props: &[MsFlags], dest: &Path) -> Result<()> {
    for p in props {
        mnt(None::<&str>, &fd_path(fd), None, *p, None, || {
            format!("set propagation of {}", dest.display())
        })?;
    }
    Ok(())
}

/// The cgroup mount: cgroup2 (or a bind of the container's cgroup) on unified hosts; on v1
/// and hybrid hosts a tmpfs with a bind of the container's dir of every hierarchy, as runc
/// does.
fn mount_cgroup(ctx: &MountCtx<'_>, dest: &Path, opts: &MountOpts, index: usize) -> Result<()> {
    let what = |op: &str| format!("mounts[{index}] ({op} on {})", dest.display());
    let fd = mkdir_all_in(ctx.root, dest)?;
    let flags = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if ctx.cgroup_unified {
        if ctx.new_cgroupns {
            return mnt(
                Some("cgroup2"),
                &fd_path(fd.as_fd()),
                Some("cgroup2"),
                flags,
                None,
                || what("cgroup2"),
            );
        }
        let src = ctx
            .cgroup_paths
            .get("")
            .cloned()
            .unwrap_or_else(|| "/sys/fs/cgroup".into());
        mnt(
            Some(&src),
            &fd_path(fd.as_fd()),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            || what("bind cgroup"),
        )?;
        let fd = open_in(ctx.root, dest).ctx(|| what("reopen"))?;
        return remount_bind(fd.as_fd(), flags, true, dest);
    }
    let tmp_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(
        Some("tmpfs"),
        &fd_path(fd.as_fd()),
        Some("tmpfs"),
        tmp_flags,
        Some("mode=755"),
        || what("tmpfs"),
    )?;
    drop(fd);
    for (name, src) in ctx.cgroup_paths {
        let sub = dest.join(if name.is_empty() {
            "unified"
        } else {
            name.as_str()
        });
        let sfd = mkdir_all_in(ctx.root, &sub)?;
        mnt(
            Some(src),
            &fd_path(sfd.as_fd()),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
            || what(&format!("bind {}", src.display())),
        )?;
        drop(sfd);
        let sfd = open_in(ctx.root, &sub).ctx(|| what("reopen"))?;
        remount_bind(sfd.as_fd(), flags, true, &sub)?;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let fd = open_in(ctx.root, dest).ctx(|| what("reopen"))?;
        mnt(
            None::<&str>,
            &fd_path(fd.as_fd()),
            None,
            tmp_flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            Some("mode=755"),
            || what("remount tmpfs ro"),
        )?;
    }
    Ok(())
}

/// Prepares the mount namespace before any mount: nothing propagates back to the host, and
/// the rootfs becomes a mount point of its own (pivot_root needs one).
///
/// In the runtime's own mount namespace (`shared`) the host's propagation is left alone;
/// only the rootfs bind is made private, so the container's mounts below it reach no
/// other namespace.
pub fn prepare_root(rootfs: &Path, propagation: Option<&str>, shared: bool) -> Result<()> {
    let root_flag = match propagation {
        Some("private") | Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if !shared {
        mnt(None::<&str>, Path::new("/"), None, root_flag, None, || {
            "make / a slave mount".into()
        })?;
    }
    mnt(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        || format!("bind rootfs {}", rootfs.display()),
    )?;
    if shared {
        mnt(
            None::<&str>,
            rootfs,
            None,
            MsFlags::MS_PRIVATE,
            None,
            || format!("make rootfs {} private", rootfs.display()),
        )?;
    }
    Ok(())
}

/// Switches the root to the rootfs: pivot_root(".", ".") then a lazy unmount of the old root
/// stacked below, as crun and runc do; or MS_MOVE + chroot for `--no-pivot`; or only
/// chroot in the runtime's mount namespace (`shared`), whose root must not move.
pub fn pivot(rootfs: &Path, no_pivot: bool, shared: bool) -> Result<()> {
    let new = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(rootfs)
        .ctx(|| format!("open rootfs {}", rootfs.display()))?;
    // The old root, to step onto after pivot_root: "." must name it (not the new root) when
    // we make it a slave and detach it, or the container's own mounts lose the propagation
    // their options asked for (runc does the same).
    let old = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open("/")
        .ctx(|| "open old root".into())?;
    nix::unistd::fchdir(new.as_raw_fd()).ctx(|| "chdir to rootfs".into())?;
    if shared {
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    } else if no_pivot {
        mnt(
            Some("."),
            Path::new("/"),
            None,
            MsFlags::MS_MOVE,
            None,
            || "move rootfs to /".into(),
        )?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    } else {
        nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
        nix::unistd::fchdir(old.as_raw_fd()).ctx(|| "chdir to old root".into())?;
        mnt(
            None::<&str>,
            Path::new("."),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
            || "make old root a slave".into(),
        )?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root".into())?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// After pivot: masks paths (a read-only empty tmpfs on directories, /dev/null on files).
pub fn mask_path(root: BorrowedFd<'_>, path: &str) -> Result<()> {
    let fd = match open_in(root, Path::new(path)) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                what: format!("mask {path}"),
                source: e,
            })
        }
    };
    let is_dir = nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false);
    let target = post_pivot_target(fd.as_fd(), path);
    if is_dir {
        mnt(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0k"),
            || format!("mask {path}"),
        )
    } else {
        mnt(
            Some("/dev/null"),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
            || format!("mask {path}"),
        )
    }
}

/// After pivot: makes a path read-only (bind onto itself, remount read-only).
pub fn readonly_path(root: BorrowedFd<'_>, path: &str) -> Result<()> {
    let fd = match open_in(root, Path::new(path)) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                what: format!("readonly {path}"),
                source: e,
            })
        }
    };
    let target = post_pivot_target(fd.as_fd(), path);
    mnt(
        Some(&target),
        &target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
        || format!("bind {path}"),
    )?;
    drop(fd);
    let fd = open_in(root, Path::new(path)).ctx(|| format!("reopen {path}"))?;
    let f = MsFlags::MS_RDONLY
        | locked_flags(fd.as_fd())
        | MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_REC;
    let target = post_pivot_target(fd.as_fd(), path);
    mnt(None::<&str>, &target, None, f, None, || {
        format!("remount {path} read-only")
    })
}

/// After pivot: the root read-only.
pub fn readonly_root() -> Result<()> {
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open("/")
        .ctx(|| "open /".into())?
        .into();
    // By path: the container may have no /proc for a /proc/self/fd path, and "/" is ours.
    let f = MsFlags::MS_RDONLY | locked_flags(fd.as_fd()) | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    mnt(None::<&str>, Path::new("/"), None, f, None, || {
        "remount / read-only".into()
    })
}

/// After pivot: where to mount onto `fd` (resolved from `path` inside the root). Through
/// /proc/self/fd when the container has /proc; else the path itself, which after pivot_root
/// can only lead within the container.
fn post_pivot_target(fd: BorrowedFd<'_>, path: &str) -> PathBuf {
    if Path::new("/proc/self/fd").exists() {
        fd_path(fd)
    } else {
        PathBuf::from(path)
    }
}

/// After pivot: applies `linux.rootfsPropagation` to the new root.
pub fn set_root_propagation(p: &str) -> Result<()> {
    if let Some(f) = propagation_flag(p) {
        mnt(None::<&str>, Path::new("/"), None, f, None, || {
            format!("rootfsPropagation {p}")
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = parse_options(&[
            "rbind".into(),
            "ro".into(),
            "nosuid".into(),
            "rslave".into(),
            "size=65536k".into(),
            "mode=755".into(),
        ]);
        assert!(o.bind && o.recursive);
        assert!(o.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["size=65536k", "mode=755"]);
        let o = parse_options(&["ro".into(), "rw".into()]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }
}
