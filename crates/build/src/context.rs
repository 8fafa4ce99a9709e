//! The build context: which files a COPY or ADD takes, and a hash of them for the cache.
//!
//! Sources are hostile paths: each is cleaned lexically (`..` never climbs above the
//! context), resolved with `openat2(RESOLVE_IN_ROOT)` so a symlink in the context cannot
//! lead out of it, and directories are walked without following symlinks (they are copied
//! as symlinks). `.containerignore` (or else `.dockerignore`) excludes paths with Docker's
//! rules: `*`, `?`, `[…]` within one path element, `**` across elements, `!` re-includes,
//! the last matching line wins, and a pattern that matches a directory excludes what is
//! below it.

use crate::fsroot::clean;
use globset::{Glob, GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A context error naming the source or pattern.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("source {src:?} not found in {root}")]
    NotFound { src: String, root: String },
    /// The source resolves through a symlink whose target is outside the root (resolved
    /// inside it instead, it names nothing).
    #[error("source {src:?}: symlink {link:?} (to {target:?}) leads outside {root}")]
    Escapes {
        src: String,
        link: String,
        target: String,
        root: String,
    },
    #[error("source pattern {0:?} matches no file")]
    NoMatch(String),
    #[error("source {0:?} is not a regular file or a directory (a FIFO, socket or device)")]
    Special(String),
    #[error("invalid pattern {pattern:?}")]
    Pattern {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, ContextError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g: Glob| g.compile_matcher())
        .map_err(|source| ContextError::Pattern {
            pattern: pattern.to_string(),
            source,
        })
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Exclusion rules of a `.containerignore`/`.dockerignore`.
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl Ignore {
    /// Parses ignore-file text.
    pub fn parse(text: &str) -> Result<Ignore, ContextError> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let cleaned = clean(Path::new(pat));
            let Some(p) = cleaned.to_str().filter(|p| !p.is_empty()) else {
                continue;
            };
            rules.push((glob(p)?, negate));
        }
        Ok(Ignore { rules })
    }

    /// Reads `.containerignore`, else `.dockerignore`, of `context` (none: nothing ignored).
    pub fn load(context: &Path) -> Result<Ignore, ContextError> {
        for name in [".containerignore", ".dockerignore"] {
            let p = context.join(name);
            match fs::read_to_string(&p) {
                Ok(t) => return Ignore::parse(&t),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&p)(e)),
            }
        }
        Ok(Ignore::default())
    }

    /// Whether `rel` (relative to the context) is excluded.
    pub fn ignored(&self, rel: &Path) -> bool {
        let mut out = false;
        for (m, negate) in &self.rules {
            if rel
                .ancestors()
                .any(|a| !a.as_os_str().is_empty() && m.is_match(a))
            {
                out = !negate;
            }
        }
        out
    }
}

/// What one copied entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// One entry to copy: from `src` on the host to `dest` (relative) in the image.
#[derive(Debug, Clone)]
pub struct Item {
    pub src: PathBuf,
    pub dest: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    /// Named by a source itself (not found inside a source directory): ADD extracts such
    /// a file if it is an archive; such a directory is the destination of a directory
    /// source (created if missing, left as it is otherwise).
    pub top: bool,
    /// For a top item: `dest` is `<destination dir>/<name>` (else it is the destination).
    pub dest_is_dir: bool,
}

/// Where sources come from: the context directory (with its ignore rules) or the root of
/// another stage (`COPY --from`).
#[derive(Debug)]
pub struct SourceRoot {
    dir: PathBuf,
    fd: std::os::fd::OwnedFd,
    ignore: Ignore,
    /// What the root is, for errors: "the build context", `stage "a"`.
    label: String,
}

impl SourceRoot {
    /// The build context at `dir`.
    pub fn new(dir: &Path, ignore: Ignore) -> Result<SourceRoot, ContextError> {
        Self::labelled(dir, ignore, "the build context")
    }

    /// A root that errors call `label` (`stage "a"` for `COPY --from=a`).
    pub fn labelled(dir: &Path, ignore: Ignore, label: &str) -> Result<SourceRoot, ContextError> {
        let dir = fs::canonicalize(dir).map_err(at(dir))?;
        let fd = File::open(&dir).map_err(at(&dir))?.into();
        Ok(SourceRoot {
            dir,
            fd,
            ignore,
            label: label.to_string(),
        })
    }

    fn not_found(&self, rel: &Path) -> ContextError {
        ContextError::NotFound {
            src: rel.display().to_string(),
            root: if self.label == "the build context" {
                "the build context (or excluded by its ignore file)".into()
            } else {
                self.label.clone()
            },
        }
    }

    /// Why `rel` does not resolve inside the root: a symlink on its way whose target is
    /// outside (the walk only reads links, never opens through them), or it is missing.
    fn why_missing(&self, rel: &Path) -> ContextError {
        // RESOLVE_BENEATH refuses (EXDEV) what would leave the root, where RESOLVE_IN_ROOT
        // clamped it inside and found nothing there.
        if !matches!(
            sys::resolve::open_beneath(self.fd.as_fd(), rel, libc::O_PATH, 0),
            Err(nix::errno::Errno::EXDEV)
        ) {
            return self.not_found(rel);
        }
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            prefix.push(c);
            let Ok(md) = fs::symlink_metadata(self.dir.join(&prefix)) else {
                break;
            };
            if md.file_type().is_symlink() {
                let target = fs::read_link(self.dir.join(&prefix)).unwrap_or_default();
                return ContextError::Escapes {
                    src: rel.display().to_string(),
                    link: prefix.display().to_string(),
                    target: target.display().to_string(),
                    root: self.label.clone(),
                };
            }
        }
        self.not_found(rel)
    }

    /// `rel` resolved inside the root (symlinks followed but confined): its real path.
    fn resolve(&self, rel: &Path) -> Result<PathBuf, ContextError> {
        let q = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let fd =
            sys::resolve::open_in_root(self.fd.as_fd(), q, libc::O_PATH, 0).map_err(
                |e| match e {
                    nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => self.why_missing(rel),
                    e => at(rel)(e.into()),
                },
            )?;
        let real = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(at(rel))?;
        Ok(real)
    }

    fn rel_of<'a>(&self, real: &'a Path) -> &'a Path {
        real.strip_prefix(&self.dir).unwrap_or(Path::new(""))
    }

    /// Opens the regular file an item lists, resolved inside the root again at the moment
    /// of reading: a path swapped for a symlink since `plan` listed it cannot lead out of
    /// the root, and a FIFO or device put in its place is refused without blocking.
    pub fn open_file(&self, src: &Path) -> io::Result<File> {
        sys::resolve::open_regular_in_root(self.fd.as_fd(), self.rel_of(src)).map_err(|e| {
            if e == nix::errno::Errno::EINVAL {
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
            } else {
                e.into()
            }
        })
    }

    /// A digest of what `items` would copy: destinations, kinds, modes, symlink targets
    /// and file contents (the cache key input of a COPY or ADD).
    pub fn hash_items(&self, items: &[Item]) -> Result<String, ContextError> {
        let mut h = Sha256::new();
        for it in items {
            h.update(it.dest.as_os_str().as_encoded_bytes());
            h.update([0]);
            h.update(it.mode.to_le_bytes());
            match &it.kind {
                Kind::Dir => h.update(b"d"),
                Kind::Symlink(t) => {
                    h.update(b"l");
                    h.update(t.as_os_str().as_encoded_bytes());
                    h.update([0]);
                }
                Kind::File => {
                    h.update(b"f");
                    let mut f = self.open_file(&it.src).map_err(at(&it.src))?;
                    let mut fh = Sha256::new();
                    io::copy(&mut f, &mut fh).map_err(at(&it.src))?;
                    h.update(fh.finalize());
                }
            }
        }
        Ok(format!("{:x}", h.finalize()))
    }

    /// Every path (relative, not ignored) under the root, for glob matching.
    fn all(&self) -> Result<Vec<PathBuf>, ContextError> {
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = self.dir.join(&rel);
            for e in fs::read_dir(&dir).map_err(at(&dir))? {
                let e = e.map_err(at(&dir))?;
                let r = rel.join(e.file_name());
                if self.ignore.ignored(&r) {
                    continue;
                }
                if e.file_type().map_err(at(&r))?.is_dir() {
                    stack.push(r.clone());
                }
                out.push(r);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The entries that `srcs` (patterns as written, substituted) copy to `dest` (an
    /// absolute path in the image). `dest_dir` says whether `dest` is a directory (it ends
    /// with `/`, exists as one, or there are several sources).
    pub fn plan(
        &self,
        srcs: &[String],
        dest: &Path,
        dest_dir: bool,
    ) -> Result<Vec<Item>, ContextError> {
        let dest = clean(dest);
        let mut matched = Vec::new();
        for s in srcs {
            let rel = clean(Path::new(s));
            if has_meta(s) {
                let m = glob(&rel.to_string_lossy())?;
                let found: Vec<PathBuf> =
                    self.all()?.into_iter().filter(|p| m.is_match(p)).collect();
                if found.is_empty() {
                    return Err(ContextError::NoMatch(s.clone()));
                }
                matched.extend(found);
            } else {
                matched.push(rel);
            }
        }
        let dir_mode = dest_dir || matched.len() > 1;
        let mut items = Vec::new();
        for rel in matched {
            // A source the ignore file excludes is as absent as Docker makes it.
            if self.ignore.ignored(&rel) {
                return Err(self.not_found(&rel));
            }
            let real = self.resolve(&rel)?;
            let md = fs::metadata(&real).map_err(at(&real))?;
            if !md.is_dir() && !md.is_file() {
                // A FIFO would hang the build and a device would be read without end.
                return Err(ContextError::Special(rel.display().to_string()));
            }
            if md.is_dir() {
                // The destination directory itself (created if missing, kept as it is if
                // the image has it), then the source directory's contents under it.
                items.push(Item {
                    src: real.clone(),
                    dest: dest.clone(),
                    kind: Kind::Dir,
                    mode: 0o755,
                    top: true,
                    dest_is_dir: true,
                });
                self.walk(&real, &dest, &mut items)?;
            } else {
                let to = if dir_mode {
                    dest.join(real.file_name().unwrap_or_default())
                } else {
                    dest.clone()
                };
                items.push(Item {
                    src: real.clone(),
                    dest: to,
                    kind: Kind::File,
                    mode: md.mode() & 0o7777,
                    top: true,
                    dest_is_dir: dir_mode,
                });
            }
        }
        Ok(items)
    }

    /// The contents of directory `dir` (a real path) under `dest`, not following symlinks.
    fn walk(&self, dir: &Path, dest: &Path, items: &mut Vec<Item>) -> Result<(), ContextError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(at(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(at(dir))?;
        names.sort();
        for n in names {
            let src = dir.join(&n);
            if self.ignore.ignored(self.rel_of(&src)) {
                continue;
            }
            let md = fs::symlink_metadata(&src).map_err(at(&src))?;
            let to = dest.join(&n);
            let mode = md.mode() & 0o7777;
            if md.is_dir() {
                items.push(Item {
                    src: src.clone(),
                    dest: to.clone(),
                    kind: Kind::Dir,
                    mode,
                    top: false,
                    dest_is_dir: false,
                });
                self.walk(&src, &to, items)?;
            } else if md.file_type().is_symlink() {
                let target = fs::read_link(&src).map_err(at(&src))?;
                items.push(Item {
                    src,
                    dest: to,
                    kind: Kind::Symlink(target),
                    mode,
                    top: false,
                    dest_is_dir: false,
                });
            } else if md.is_file() {
                items.push(Item {
                    src,
                    dest: to,
                    kind: Kind::File,
                    mode,
                    top: false,
                    dest_is_dir: false,
                });
            }
            // Devices, fifos and sockets in a context are not copied (as Docker does).
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        let ig = Ignore::parse("# c\n*.log\nbuild\n!build/keep\n/secret/**\n").expect("parses");
        assert!(ig.ignored(Path::new("a.log")));
        assert!(!ig.ignored(Path::new("dir/a.log")));
        assert!(ig.ignored(Path::new("build/x")));
        assert!(!ig.ignored(Path::new("build/keep")));
        assert!(ig.ignored(Path::new("secret/a/b")));
        assert!(!ig.ignored(Path::new("src/main.rs")));
    }

    #[test]
    fn plan_globs_dirs_and_escapes() {
        let d = std::env::temp_dir().join(format!("berth-ctx-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let ctx = d.join("ctx");
        fs::create_dir_all(ctx.join("src/sub")).expect("mkdir");
        fs::write(ctx.join("a.txt"), "a").expect("write");
        fs::write(ctx.join("b.txt"), "b").expect("write");
        fs::write(ctx.join("c.log"), "c").expect("write");
        fs::write(ctx.join("src/sub/f"), "f").expect("write");
        fs::write(d.join("outside"), "secret").expect("write");
        std::os::unix::fs::symlink("../outside", ctx.join("link")).expect("symlink");
        let root = SourceRoot::new(&ctx, Ignore::parse("b.txt").expect("parses")).expect("root");
        let items = root
            .plan(&["*.txt".into()], Path::new("/app/"), true)
            .expect("plan");
        let dests: Vec<_> = items.iter().map(|i| i.dest.display().to_string()).collect();
        assert_eq!(dests, ["app/a.txt"]);
        let items = root
            .plan(&["src".into()], Path::new("/s"), false)
            .expect("plan");
        let dests: Vec<_> = items.iter().map(|i| i.dest.display().to_string()).collect();
        assert_eq!(dests, ["s", "s/sub", "s/sub/f"]);
        assert!(matches!(
            root.plan(&["b.txt".into()], Path::new("/x"), false),
            Err(ContextError::NotFound { .. })
        ));
        // `..` is clamped at the context and a symlink out of it resolves inside it.
        assert!(matches!(
            root.plan(&["../outside".into()], Path::new("/x"), false),
            Err(ContextError::NotFound { .. })
        ));
        // ... and is named as a link that leaves the context.
        let e = root.plan(&["link".into()], Path::new("/x"), false);
        assert!(
            matches!(&e, Err(ContextError::Escapes { link, .. }) if link == "link"),
            "{e:?}"
        );
        assert!(matches!(
            root.plan(&["*.md".into()], Path::new("/x"), false),
            Err(ContextError::NoMatch(_))
        ));
        let h1 = root
            .hash_items(
                &root
                    .plan(&["a.txt".into()], Path::new("/a"), false)
                    .expect("plan"),
            )
            .expect("hash");
        fs::write(ctx.join("a.txt"), "A").expect("write");
        let h2 = root
            .hash_items(
                &root
                    .plan(&["a.txt".into()], Path::new("/a"), false)
                    .expect("plan"),
            )
            .expect("hash");
        assert_ne!(h1, h2);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_swapped_for_a_symlink_after_planning_is_read_inside_the_root() {
        let d = std::env::temp_dir().join(format!("berth-ctx-swap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let ctx = d.join("ctx");
        fs::create_dir_all(ctx.join("dir")).expect("mkdir");
        fs::write(ctx.join("dir/f"), "mine").expect("write");
        fs::write(d.join("secret"), "secret").expect("write");
        let root = SourceRoot::new(&ctx, Ignore::default()).expect("root");
        let items = root
            .plan(&["dir".into()], Path::new("/x"), true)
            .expect("plan");
        // After planning, the listed directory becomes a symlink to one outside the
        // context holding a file of the same name.
        fs::create_dir_all(d.join("out")).expect("mkdir");
        fs::write(d.join("out/f"), "secret").expect("write");
        fs::remove_dir_all(ctx.join("dir")).expect("rm");
        std::os::unix::fs::symlink(d.join("out"), ctx.join("dir")).expect("symlink");
        let file = items
            .iter()
            .find(|it| matches!(it.kind, Kind::File))
            .expect("a file item");
        let read = root.open_file(&file.src).map(|mut f| {
            let mut s = String::new();
            let _ = io::Read::read_to_string(&mut f, &mut s);
            s
        });
        assert!(read.is_err(), "read through the swapped path: {read:?}");
        assert!(
            root.hash_items(&items).is_err(),
            "hashed a file outside the root"
        );
        // A FIFO in a file's place is refused, not waited on.
        fs::remove_file(ctx.join("dir")).expect("rm link");
        fs::create_dir_all(ctx.join("dir")).expect("mkdir");
        nix::unistd::mkfifo(
            &ctx.join("dir/f"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let err = root.open_file(&file.src).expect_err("a fifo");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let _ = fs::remove_dir_all(&d);
    }
}
