//! What an image's config means for the process that runs it, shared by `berth run` and the
//! builder's RUN and COPY --chown: the user (image-spec config.md `User`: "user",
//! "uid", "user:group", "uid:gid", "user:gid", "uid:group") resolved against the image's
//! own /etc/passwd and /etc/group, and the default capability set.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

/// The capabilities docker and podman give a container (and a build step) by default.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A user resolved for a process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// The groups that list the user by name (only when no group was given, as docker does).
    pub additional_gids: Vec<u32>,
}

/// Why a user spec could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} not found in the image's /etc/passwd")]
    NoUser(String),
    #[error("group {0:?} not found in the image's /etc/group")]
    NoGroup(String),
    #[error("{what} {value:?} is out of range: ids are 0 to 4294967294 (4294967295 means \"unchanged\" to the kernel)")]
    OutOfRange { what: &'static str, value: String },
    #[error("user {user:?}: bad {field} {value:?} in the image's /etc/passwd")]
    BadEntry {
        user: String,
        field: &'static str,
        value: String,
    },
}

/// Reads `/etc/<file>` of an image root, confined to it, only if it is a regular file (a
/// FIFO or device there must not hang us), at most 4 MiB; absent or unreadable: empty.
fn read_etc(rootfs: &Path, file: &str) -> String {
    let Ok(root) = std::fs::File::open(rootfs) else {
        return String::new();
    };
    let Ok(f) = sys::resolve::open_regular_in_root(root.as_fd(), &Path::new("etc").join(file))
    else {
        return String::new();
    };
    let mut s = String::new();
    // A file that is not text has no users for us.
    let _ = f.take(4 << 20).read_to_string(&mut s);
    s
}

fn entries(db: &str, min_fields: usize) -> impl Iterator<Item = Vec<&str>> {
    db.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(move |f| f.len() >= min_fields)
}

/// The largest id a process can have: `(uid_t)-1` = 2³²−1 is the "leave unchanged" value of
/// setresuid(2)/setresgid(2) and chown(2), never an id.
pub const MAX_ID: u32 = u32::MAX - 1;

/// A decimal id (digits only, as docker's user spec), if `s` is one; an id above
/// [`MAX_ID`] is an error, not a name.
fn numeric_id(what: &'static str, s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        // "-1" and the like are not names a user database can hold either.
        let negative = s
            .strip_prefix('-')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if negative {
            return Err(UserError::OutOfRange {
                what,
                value: s.to_string(),
            });
        }
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n)),
        _ => Err(UserError::OutOfRange {
            what,
            value: s.to_string(),
        }),
    }
}

/// Resolves `spec` against the image root `rootfs`. An empty spec is root. A numeric uid
/// that /etc/passwd does not list is used as it is, with gid 0. Every id, given or read
/// from the image's files, is at most [`MAX_ID`].
pub fn resolve(rootfs: &Path, spec: &str) -> Result<User, UserError> {
    if spec.is_empty() {
        return Ok(User::default());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_num = numeric_id("uid", user)?;
    let group_num = group.map(|g| numeric_id("gid", g)).transpose()?.flatten();
    let passwd = read_etc(rootfs, "passwd");
    // By name first; a number may also name a uid.
    let entry = entries(&passwd, 4)
        .find(|f| f[0] == user)
        .or_else(|| entries(&passwd, 4).find(|f| f[2] == user));
    let field = |f: &[&str], i: usize, name: &'static str| -> Result<u32, UserError> {
        f[i].parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_ID)
            .ok_or_else(|| UserError::BadEntry {
                user: user.to_string(),
                field: name,
                value: f[i].to_string(),
            })
    };
    let (uid, mut gid, name) = match (&entry, user_num) {
        (Some(f), _) => (field(f, 2, "uid")?, field(f, 3, "gid")?, Some(f[0])),
        (None, Some(n)) => (n, 0, None),
        (None, None) => return Err(UserError::NoUser(user.to_string())),
    };
    let groups = read_etc(rootfs, "group");
    if let Some(g) = group {
        gid = match group_num {
            Some(n) => n,
            None => entries(&groups, 3)
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse::<u32>().ok())
                .filter(|n| *n <= MAX_ID)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let (Some(name), None) = (name, group) {
        for f in entries(&groups, 4) {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g <= MAX_ID && g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("berth-user-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc")).expect("mkdir");
        std::fs::write(
            d.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n2000:x:1500:1500::/:/bin/sh\nbad:x:nope:0::/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            d.join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n",
        )
        .expect("group");
        d
    }

    #[test]
    fn forms_of_the_user_spec() {
        let r = root();
        let u = |s: &str| resolve(&r, s).map_err(|e| e.to_string());
        assert_eq!(u(""), Ok(User::default()));
        assert_eq!(
            u("app"),
            Ok(User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 29]
            })
        );
        // A numeric uid listed in passwd takes its primary group, and its groups.
        assert_eq!(u("1000").map(|u| (u.uid, u.gid)), Ok((1000, 1000)));
        // A name that looks like a number is a name first.
        assert_eq!(u("2000").map(|u| u.uid), Ok(1500));
        assert_eq!(
            u("4242"),
            Ok(User {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            })
        );
        assert_eq!(
            u("app:wheel"),
            Ok(User {
                uid: 1000,
                gid: 10,
                additional_gids: vec![]
            })
        );
        assert_eq!(u("app:77").map(|u| u.gid), Ok(77));
        assert_eq!(u("7:8").map(|u| (u.uid, u.gid)), Ok((7, 8)));
        assert!(u("nobody")
            .expect_err("must fail")
            .contains("\"nobody\" not found in the image's /etc/passwd"));
        assert!(u("app:staff")
            .expect_err("must fail")
            .contains("group \"staff\" not found"));
        assert!(u("bad")
            .expect_err("must fail")
            .contains("bad uid \"nope\""));
        // (uid_t)-1 is "unchanged" to the kernel, never an id.
        for s in [
            "1000:4294967295",
            "4294967295",
            "7:99999999999",
            "-1",
            "app:-1",
        ] {
            assert!(
                u(s).expect_err(s).contains("out of range"),
                "{s}: {:?}",
                u(s)
            );
        }
        assert_eq!(
            u("4294967294:4294967294").map(|u| (u.uid, u.gid)),
            Ok((MAX_ID, MAX_ID))
        );
        let _ = std::fs::remove_dir_all(&r);
    }
}
