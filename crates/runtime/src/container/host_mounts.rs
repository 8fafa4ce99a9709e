//! Containers without a mount namespace of their own.
//!
//! runtime-spec config-linux.md "Namespaces": a namespace type that is not listed is
//! inherited from the runtime, so such a container's mounts (`mounts`, masked and
//! read-only paths, the rootfs bind) are made in the runtime's mount namespace, under the
//! rootfs, and its init `chroot`s instead of `pivot_root` (which would move the host's
//! root). We record the mounts its setup added and remove exactly those at `delete` and
//! when `create` fails; runc leaves them on the host. A mount that was already there (an
//! overlay rootfs, say) is never touched.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One mount from /proc/self/mountinfo: its id (unique while it is mounted) and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMount {
    pub id: u64,
    pub path: PathBuf,
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`, …).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(u8::is_ascii_digit) {
            let v = b[i + 1..=i + 3]
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Parses mountinfo text: the mounts at or below `root`, in mount order.
fn parse_under(text: &str, root: &Path) -> Vec<HostMount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let id = f.next()?.parse().ok()?;
            let path = unescape(f.nth(3)?);
            path.starts_with(root).then_some(HostMount { id, path })
        })
        .collect()
}

/// The mounts of our mount namespace at or below `root` (canonicalised), in mount order.
pub fn under(root: &Path) -> Vec<HostMount> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_under(&t, &root))
        .unwrap_or_default()
}

/// The mounts at or below `root` that are not in `before`.
pub fn added_since(root: &Path, before: &[HostMount]) -> Vec<HostMount> {
    under(root)
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect()
}

/// Unmounts `mounts` that are still mounted, newest first (lazily: a process that still
/// holds one keeps only its own reference).
pub fn unmount(mounts: &[HostMount]) {
    let Some(root) = mounts
        .iter()
        .map(|m| m.path.as_path())
        .min_by_key(|p| p.as_os_str().len())
    else {
        return;
    };
    let present = under(root);
    for m in mounts.iter().rev().filter(|m| present.contains(m)) {
        let _ = nix::mount::umount2(&m.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_below_a_root_with_escapes() {
        let text = "\
22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw
30 22 0:40 / /srv/b\\040x/rootfs rw - overlay overlay rw
31 30 0:41 / /srv/b\\040x/rootfs/proc rw - proc proc rw
32 22 0:42 / /srv/b\\040x/rootfs2 rw - tmpfs tmpfs rw
";
        let got = parse_under(text, Path::new("/srv/b x/rootfs"));
        assert_eq!(
            got,
            vec![
                HostMount {
                    id: 30,
                    path: "/srv/b x/rootfs".into()
                },
                HostMount {
                    id: 31,
                    path: "/srv/b x/rootfs/proc".into()
                },
            ]
        );
    }
}
