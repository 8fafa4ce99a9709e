//! Temporary directories and the mount table.

use super::*;

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
