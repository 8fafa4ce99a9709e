//! Writes confined to a root directory (the image's root filesystem during a build).
//!
//! Every parent directory is resolved with `openat2(RESOLVE_IN_ROOT)` (`sys::resolve`), so
//! `..` and symlinks — absolute or relative, planted by an earlier layer — stay inside the
//! root; the last component is then created through `/proc/self/fd/N/NAME` without following
//! a symlink there. Nothing a Containerfile names can be written outside the root.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{lchown, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A write error naming the path inside the root.
#[derive(Debug, thiserror::Error)]
#[error("{path} (inside the image root)")]
pub struct RootError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> RootError + '_ {
    move |source| RootError {
        path: path.to_path_buf(),
        source,
    }
}

/// `p` made relative and lexically clean: `.` dropped, `..` never above the root (as
/// `filepath.Join("/", p)` does for Docker).
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Owner of files written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// A directory that every write is confined to.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    pub fn open(dir: &Path) -> io::Result<Root> {
        let f = File::open(dir)?;
        Ok(Root { fd: f.into() })
    }

    fn resolve(&self, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        sys::resolve::open_in_root(self.fd.as_fd(), rel, flags, 0).map_err(io::Error::from)
    }

    /// Whether `rel` exists in the root and is a directory (following symlinks inside it).
    pub fn is_dir(&self, rel: &Path) -> bool {
        self.resolve(&clean(rel), libc::O_PATH | libc::O_DIRECTORY)
            .is_ok()
    }

    /// The path through which `name` in directory `dir` is reached without re-resolving.
    fn proc_path(dir: &OwnedFd, name: &std::ffi::OsStr) -> PathBuf {
        Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
    }

    /// Creates `rel` and its missing parents (new ones get `mode` and `owner`); returns an
    /// `O_PATH` descriptor of it. A dangling symlink on the way is followed inside the root
    /// (its target is created), as a path lookup in the container would.
    pub fn mkdir_all(&self, rel: &Path, mode: u32, owner: Owner) -> Result<OwnedFd, RootError> {
        let mut rel = clean(rel);
        let dir_flags = libc::O_PATH | libc::O_DIRECTORY;
        'restart: for _ in 0..40 {
            let mut cur = self.resolve(Path::new(""), dir_flags).map_err(at(&rel))?;
            let mut done = PathBuf::new();
            let comps: Vec<_> = rel.components().collect();
            for (i, c) in comps.iter().enumerate() {
                done.push(c);
                cur = match self.resolve(&done, dir_flags) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        let p = Self::proc_path(&cur, c.as_os_str());
                        if let Ok(target) = fs::read_link(&p) {
                            let base = done.parent().unwrap_or(Path::new(""));
                            let mut next = clean(&base.join(target));
                            next.extend(&comps[i + 1..]);
                            rel = next;
                            continue 'restart;
                        }
                        fs::create_dir(&p).map_err(at(&done))?;
                        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
                            .map_err(at(&done))?;
                        lchown(&p, Some(owner.uid), Some(owner.gid)).map_err(at(&done))?;
                        self.resolve(&done, dir_flags).map_err(at(&done))?
                    }
                    Err(e) => return Err(at(&done)(e)),
                };
            }
            return Ok(cur);
        }
        Err(at(&rel)(io::Error::from_raw_os_error(libc::ELOOP)))
    }

    /// The parent directory of `rel` (created if missing, root-owned 0755) and its name.
    fn parent(&self, rel: &Path) -> Result<(OwnedFd, std::ffi::OsString), RootError> {
        let rel = clean(rel);
        let name = rel
            .file_name()
            .ok_or_else(|| at(&rel)(io::Error::from(io::ErrorKind::InvalidInput)))?
            .to_os_string();
        let dir = self.mkdir_all(
            rel.parent().unwrap_or(Path::new("")),
            0o755,
            Owner::default(),
        )?;
        Ok((dir, name))
    }

    /// Removes whatever non-directory is at `name` in `dir` (a file or symlink that a new
    /// entry replaces).
    fn clear(p: &Path) -> io::Result<()> {
        match fs::symlink_metadata(p) {
            Ok(md) if !md.is_dir() => fs::remove_file(p),
            _ => Ok(()),
        }
    }

    /// Writes a regular file at `rel` with the content of `src`, `mode` and `owner`.
    pub fn write_file(
        &self,
        rel: &Path,
        src: &mut dyn io::Read,
        mode: u32,
        owner: Owner,
    ) -> Result<u64, RootError> {
        let (dir, name) = self.parent(rel)?;
        let p = Self::proc_path(&dir, &name);
        Self::clear(&p).map_err(at(rel))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&p)
            .map_err(at(rel))?;
        let n = io::copy(src, &mut f).map_err(at(rel))?;
        std::os::unix::fs::fchown(&f, Some(owner.uid), Some(owner.gid)).map_err(at(rel))?;
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(at(rel))?;
        Ok(n)
    }

    /// Opens regular file `rel` for reading (symlinks followed inside the root); any other
    /// type (a FIFO, a device node of an image) is refused, never opened for blocking.
    pub fn read_file(&self, rel: &Path) -> Result<File, RootError> {
        let rel = clean(rel);
        let fd = self
            .resolve(&rel, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)
            .map_err(at(&rel))?;
        let f = File::from(fd);
        if !f.metadata().map_err(at(&rel))?.is_file() {
            return Err(at(&rel)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        Ok(f)
    }

    /// Creates a symlink at `rel` pointing to `target` (which is not checked: it is
    /// resolved inside the container at run time).
    pub fn symlink(&self, rel: &Path, target: &Path, owner: Owner) -> Result<(), RootError> {
        let (dir, name) = self.parent(rel)?;
        let p = Self::proc_path(&dir, &name);
        Self::clear(&p).map_err(at(rel))?;
        std::os::unix::fs::symlink(target, &p).map_err(at(rel))?;
        lchown(&p, Some(owner.uid), Some(owner.gid)).map_err(at(rel))
    }

    /// Creates directory `rel` (or keeps the one there) with `mode` and `owner`.
    pub fn dir(&self, rel: &Path, mode: u32, owner: Owner) -> Result<(), RootError> {
        let fd = self.mkdir_all(rel, mode, owner)?;
        let p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o7777)).map_err(at(rel))?;
        std::os::unix::fs::chown(&p, Some(owner.uid), Some(owner.gid)).map_err(at(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_never_leaves_the_root() {
        assert_eq!(clean(Path::new("/a/../../b/./c")), PathBuf::from("b/c"));
        assert_eq!(
            clean(Path::new("../../etc/passwd")),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(clean(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_stay_inside() {
        let d = std::env::temp_dir().join(format!("berth-fsroot-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let root = d.join("root");
        let outside = d.join("outside");
        fs::create_dir_all(&root).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        // A hostile earlier layer: /evil -> the host's `outside`, /up -> ../..
        std::os::unix::fs::symlink(&outside, root.join("evil")).expect("symlink");
        std::os::unix::fs::symlink("../..", root.join("up")).expect("symlink");
        let r = Root::open(&root).expect("open");
        let me = Owner {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        r.write_file(Path::new("evil/f"), &mut &b"x"[..], 0o644, me)
            .expect("write");
        r.write_file(Path::new("up/g"), &mut &b"y"[..], 0o644, me)
            .expect("write");
        assert!(fs::read_dir(&outside).expect("ls").next().is_none());
        // `evil` resolved to /<outside> inside the root, `up` to the root itself.
        assert!(root
            .join(outside.strip_prefix("/").expect("abs"))
            .join("f")
            .is_file());
        assert!(root.join("g").is_file());
        // A symlink at the destination is replaced, not followed.
        std::os::unix::fs::symlink(outside.join("t"), root.join("t")).expect("symlink");
        r.write_file(Path::new("t"), &mut &b"z"[..], 0o600, me)
            .expect("write");
        assert!(!outside.join("t").exists());
        assert_eq!(fs::read(root.join("t")).expect("read"), b"z");
        let _ = fs::remove_dir_all(&d);
    }
}
