//! Volumes and the mounts of a container: named and anonymous volumes (Docker's `local`
//! driver), bind mounts and tmpfs.
//!
//! A volume's data is `<root>/volumes/<name>/_data`; its metadata a row of the `volumes`
//! table (this module's, made by [`init`] when the database is opened). Which volumes a
//! container uses is its `ContainerSpec::mounts` (so removing a container frees them with
//! its row). A volume is bind-mounted into the container by its monitor (config.json,
//! [`apply`]); an empty one is first filled with what the image has at that path (Docker's
//! copy-up), through the container's root filesystem with the confined copy (confined.rs):
//! a hostile symlink in the image is copied as a symlink, never followed.
//!
//! Anonymous volumes are made at create for the image config's `Volumes` (image-spec
//! config.md "Volumes") that no mount covers; `rm -v` removes them, a plain `rm` keeps them.

use crate::confined::{self, Owners};
use crate::container::Engine;
use crate::error::{io, Error, Result};
use crate::invalid;
use crate::types::ContainerSpec;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL DEFAULT 'local',
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0
);
";

/// Creates this module's table (called where the database is opened).
pub fn init(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// A volume as `docker volume inspect` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub created_at: String,
    pub scope: String,
    /// Made for an image's `VOLUME` (removed by `rm -v`, `volume prune`).
    #[serde(skip)]
    pub anonymous: bool,
}

/// One mount of a container, as the command line gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mount {
    /// A host directory or file (`--mount type=bind`).
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    /// A volume (`-v NAME:/path`, `--mount type=volume`, an image's `VOLUME`).
    Volume {
        source: String,
        target: String,
        readonly: bool,
        #[serde(default)]
        anonymous: bool,
        /// No copy-up from the image (`volume-nocopy`, `-v …:nocopy`).
        #[serde(default)]
        nocopy: bool,
    },
    /// A tmpfs (`--tmpfs`, `--mount type=tmpfs`).
    Tmpfs {
        target: String,
        size: Option<i64>,
        mode: Option<u32>,
        #[serde(default)]
        options: Vec<String>,
    },
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Volume { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

/// Docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(n: &str) -> bool {
    n.len() >= 2
        && n.len() <= 255
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn check_name(n: &str) -> Result<()> {
    if valid_name(n) {
        Ok(())
    } else {
        Err(invalid!(
            "invalid volume name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ are allowed \
             (a host path must be absolute)"
        ))
    }
}

fn check_target(what: &str, t: &str) -> Result<()> {
    if !t.starts_with('/') {
        return Err(invalid!("{what}: container path {t:?} is not absolute"));
    }
    if t.split('/').any(|c| c == "..") {
        return Err(invalid!(
            "{what}: container path {t:?} has a \"..\" component"
        ));
    }
    Ok(())
}

/// Takes the `-v NAME:/path[:opts]` and `-v /path` (anonymous) entries out of `volumes`
/// (the bind mounts `-v /host:/path` stay there), parses `--mount` and `--tmpfs`: the
/// container's mounts. A bad one is an error naming it.
pub fn parse_cli(
    volumes: &mut Vec<String>,
    mounts: &[String],
    tmpfs: &[String],
) -> Result<Vec<Mount>> {
    let mut out = Vec::new();
    let mut binds = Vec::new();
    for v in std::mem::take(volumes) {
        let parts: Vec<&str> = v.split(':').collect();
        match parts.as_slice() {
            [t] if t.starts_with('/') => {
                check_target(&format!("volume {v:?}"), t)?;
                out.push(Mount::Volume {
                    source: String::new(),
                    target: t.to_string(),
                    readonly: false,
                    anonymous: true,
                    nocopy: false,
                });
            }
            [s, rest @ ..] if !s.starts_with('/') && !s.starts_with('.') && !rest.is_empty() => {
                let what = format!("volume {v:?}");
                check_name(s).map_err(|e| invalid!("{what}: {e}"))?;
                let (t, opts) = match rest {
                    [t] => (*t, ""),
                    [t, o] => (*t, *o),
                    _ => return Err(invalid!("invalid volume {v:?} (NAME:CONTAINER[:ro])")),
                };
                check_target(&what, t)?;
                let (mut readonly, mut nocopy) = (false, false);
                for o in opts.split(',').filter(|o| !o.is_empty()) {
                    match o {
                        "ro" => readonly = true,
                        "rw" => readonly = false,
                        "nocopy" => nocopy = true,
                        other => {
                            return Err(invalid!(
                                "{what}: unknown option {other:?} (ro, rw or nocopy)"
                            ))
                        }
                    }
                }
                out.push(Mount::Volume {
                    source: s.to_string(),
                    target: t.to_string(),
                    readonly,
                    anonymous: false,
                    nocopy,
                });
            }
            _ => binds.push(v),
        }
    }
    *volumes = binds;
    for m in mounts {
        out.push(parse_mount(m)?);
    }
    for t in tmpfs {
        out.push(parse_tmpfs(t)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in volumes
        .iter()
        .filter_map(|v| v.split(':').nth(1).map(str::to_string))
        .chain(out.iter().map(|m| m.target().to_string()))
    {
        let norm = t.trim_end_matches('/').to_string();
        if !seen.insert(norm) {
            return Err(invalid!("duplicate mount point {t:?}"));
        }
    }
    Ok(out)
}

fn parse_bool(what: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(o) => Err(invalid!("{what}: {o:?} is not true or false")),
    }
}

fn parse_mode(what: &str, m: &str) -> Result<u32> {
    u32::from_str_radix(m, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| invalid!("{what}: mode {m:?} is not an octal mode"))
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…,readonly,tmpfs-size=…,tmpfs-mode=…,
/// volume-nocopy` (Docker's keys; `src`, `dst`, `destination`, `ro` as aliases).
pub fn parse_mount(s: &str) -> Result<Mount> {
    let what = format!("--mount {s:?}");
    let (mut ty, mut src, mut dst) = (None, None, None);
    let (mut ro, mut nocopy, mut size, mut mode) = (false, false, None, None);
    for kv in s.split(',') {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (kv.trim(), None),
        };
        match (k, v) {
            ("type", Some(t)) => ty = Some(t),
            ("source" | "src", Some(v)) => src = Some(v),
            ("target" | "destination" | "dst", Some(v)) => dst = Some(v),
            ("readonly" | "ro", v) => ro = parse_bool(&what, v)?,
            ("volume-nocopy", v) => nocopy = parse_bool(&what, v)?,
            ("tmpfs-size", Some(v)) => size = Some(crate::spec::parse_bytes(v)?),
            ("tmpfs-mode", Some(v)) => mode = Some(parse_mode(&what, v)?),
            _ => {
                return Err(invalid!(
                    "{what}: unknown or incomplete key {kv:?} (type, source, target, readonly, \
                     volume-nocopy, tmpfs-size, tmpfs-mode)"
                ))
            }
        }
    }
    let target = dst.ok_or_else(|| invalid!("{what}: no target"))?;
    check_target(&what, target)?;
    let target = target.to_string();
    let only = |ok: bool, key: &str| {
        if ok {
            Ok(())
        } else {
            Err(invalid!("{what}: {key} does not apply to this type"))
        }
    };
    match ty.unwrap_or("volume") {
        "bind" => {
            only(
                !nocopy && size.is_none() && mode.is_none(),
                "a volume or tmpfs key",
            )?;
            let src = src.ok_or_else(|| invalid!("{what}: a bind mount needs a source"))?;
            if !src.starts_with('/') {
                return Err(invalid!("{what}: bind source {src:?} is not absolute"));
            }
            let source = std::fs::canonicalize(src)
                .map_err(|e| invalid!("{what}: host path {src:?}: {e}"))?;
            Ok(Mount::Bind {
                source,
                target,
                readonly: ro,
            })
        }
        "volume" => {
            only(size.is_none() && mode.is_none(), "a tmpfs key")?;
            let source = src.unwrap_or("").to_string();
            if !source.is_empty() {
                check_name(&source).map_err(|e| invalid!("{what}: {e}"))?;
            }
            Ok(Mount::Volume {
                anonymous: source.is_empty(),
                source,
                target,
                readonly: ro,
                nocopy,
            })
        }
        "tmpfs" => {
            only(src.is_none() && !nocopy, "source or volume-nocopy")?;
            let mut options = Vec::new();
            if ro {
                options.push("ro".to_string());
            }
            Ok(Mount::Tmpfs {
                target,
                size,
                mode,
                options,
            })
        }
        t => Err(invalid!(
            "{what}: unknown type {t:?} (bind, volume or tmpfs)"
        )),
    }
}

/// `--tmpfs /path[:size=…,mode=…,ro,noexec,…]`.
pub fn parse_tmpfs(s: &str) -> Result<Mount> {
    let what = format!("--tmpfs {s:?}");
    let (target, opts) = s.split_once(':').unwrap_or((s, ""));
    check_target(&what, target)?;
    let (mut size, mut mode, mut options) = (None, None, Vec::new());
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => size = Some(crate::spec::parse_bytes(v)?),
            Some(("mode", v)) => mode = Some(parse_mode(&what, v)?),
            None if [
                "ro",
                "rw",
                "exec",
                "noexec",
                "suid",
                "nosuid",
                "dev",
                "nodev",
                "atime",
                "noatime",
                "relatime",
                "strictatime",
            ]
            .contains(&o) =>
            {
                options.push(o.to_string())
            }
            _ => {
                return Err(invalid!(
                    "{what}: unknown option {o:?} (size=, mode=, ro, rw, [no]exec, [no]suid, \
                     [no]dev, [no|rel|strict]atime)"
                ))
            }
        }
    }
    Ok(Mount::Tmpfs {
        target: target.to_string(),
        size,
        mode,
        options,
    })
}

fn random_name() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io("read /dev/urandom"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The volumes (names) the mounts of a stored spec (JSON) use.
fn used_by(spec: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(spec).unwrap_or(Value::Null);
    v["mounts"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["type"] == "volume")
                .filter_map(|m| m["source"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn from_row(root: &Path, r: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
    let name: String = r.get(0)?;
    let labels: String = r.get(2)?;
    let options: String = r.get(3)?;
    Ok(Volume {
        mountpoint: data_dir(root, &name),
        name,
        driver: r.get(1)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        options: serde_json::from_str(&options).unwrap_or_default(),
        created_at: r.get(4)?,
        scope: "local".into(),
        anonymous: r.get(5)?,
    })
}

/// `<root>/volumes/<name>/_data`.
pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    root.join("volumes").join(name).join("_data")
}

/// The local driver's options: `type`, `device`, `o` (as `mount -t TYPE -o O DEVICE`).
fn check_options(options: &BTreeMap<String, String>) -> Result<()> {
    for k in options.keys() {
        if !["type", "device", "o"].contains(&k.as_str()) {
            return Err(invalid!(
                "volume option {k:?} is not supported by the local driver (type, device, o)"
            ));
        }
    }
    let complete = options.contains_key("type") && options.contains_key("device");
    if !options.is_empty() && !complete {
        return Err(invalid!(
            "volume options need both type and device (e.g. --opt type=tmpfs --opt device=tmpfs)"
        ));
    }
    Ok(())
}

impl Engine {
    /// Creates a volume (a random name if none); an existing one of that name is returned
    /// as it is (Docker's `volume create` is idempotent).
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume> {
        self.volume_make(name, labels, options, false)
    }

    fn volume_make(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => random_name()?,
        };
        check_options(&options)?;
        let lj = serde_json::to_string(&labels).map_err(|e| invalid!("{e}"))?;
        let oj = serde_json::to_string(&options).map_err(|e| invalid!("{e}"))?;
        let now = runtime::state::now_rfc3339();
        let mut db = self.db()?;
        let new = db.write(|tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO volumes (name, labels, options, created, anonymous) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, lj, oj, now, anonymous],
            )?;
            Ok(n == 1)
        })?;
        let data = data_dir(&self.root, &name);
        if new {
            // What a killed `volume rm` left behind is not this new volume's data.
            let dir = self.root.join("volumes").join(&name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(format!("clear {}", dir.display())))?;
            }
            tracing::debug!(volume = %name, "volume created");
        }
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        self.volume_inspect(&name)
    }

    /// One volume.
    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        let mut db = self.db()?;
        let n = name.to_string();
        let root = self.root.clone();
        db.write(|tx| {
            tx.query_row(
                "SELECT name, driver, labels, options, created, anonymous FROM volumes WHERE name = ?1",
                [&n],
                |r| from_row(&root, r),
            )
            .optional()
        })?
        .ok_or_else(|| invalid!("no such volume: {name}"))
    }

    /// Every volume, by name.
    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        let mut db = self.db()?;
        let root = self.root.clone();
        db.write(|tx| {
            let mut st = tx.prepare(
                "SELECT name, driver, labels, options, created, anonymous FROM volumes ORDER BY name",
            )?;
            let rows = st.query_map([], |r| from_row(&root, r))?;
            rows.collect()
        })
    }

    /// Removes a volume no container uses. In use (by any container, running or not) it is
    /// refused naming the containers, with `force` too, as Docker does; `force` only makes a
    /// missing volume no error. The row goes in the transaction that checked it is unused.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<bool> {
        let mut db = self.db()?;
        let n = name.to_string();
        let outcome = db.write(|tx| {
            let exists: Option<String> = tx
                .query_row("SELECT name FROM volumes WHERE name = ?1", [&n], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_none() {
                return Ok(Err(None));
            }
            let mut users = Vec::new();
            let mut st = tx.prepare("SELECT name, spec FROM containers ORDER BY name")?;
            for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (cname, spec) = row?;
                if used_by(&spec).contains(&n) {
                    users.push(cname);
                }
            }
            if !users.is_empty() {
                return Ok(Err(Some(users)));
            }
            tx.execute("DELETE FROM volumes WHERE name = ?1", [&n])?;
            Ok(Ok(()))
        })?;
        match outcome {
            Err(None) if force => return Ok(false),
            Err(None) => return Err(invalid!("no such volume: {name}")),
            Err(Some(users)) => {
                return Err(Error::Conflict(format!(
                    "volume {name} is in use by container {}: remove the container first",
                    users.join(", ")
                )))
            }
            Ok(()) => {}
        }
        let dir = self.root.join("volumes").join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("remove {}", dir.display()))(e)),
        }
        tracing::debug!(volume = %name, "volume removed");
        Ok(true)
    }

    /// Removes the volumes no container uses: the anonymous ones, or all with `all`
    /// (Docker 23's `volume prune [-a]`). Their names.
    pub fn volume_prune(&self, all: bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for v in self.volume_list()? {
            if !(all || v.anonymous) {
                continue;
            }
            match self.volume_remove(&v.name, true) {
                Ok(true) => out.push(v.name),
                Ok(false) | Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// At create: the named volumes the spec mounts exist, and an anonymous volume is made
    /// for each of the image's `Volumes` no mount covers and for each anonymous mount.
    pub fn volumes_at_create(
        &self,
        image_volumes: &[String],
        spec: &mut ContainerSpec,
    ) -> Result<()> {
        let covered: Vec<String> = spec
            .mounts
            .iter()
            .map(|m| m.target().trim_end_matches('/').to_string())
            .chain(spec.opts.volumes.iter().filter_map(|v| {
                v.split(':')
                    .nth(1)
                    .map(|t| t.trim_end_matches('/').to_string())
            }))
            .collect();
        for t in image_volumes {
            let norm = t.trim_end_matches('/');
            if norm.is_empty() || !t.starts_with('/') || covered.iter().any(|c| c == norm) {
                continue;
            }
            spec.mounts.push(Mount::Volume {
                source: String::new(),
                target: norm.to_string(),
                readonly: false,
                anonymous: true,
                nocopy: false,
            });
        }
        for m in &mut spec.mounts {
            if let Mount::Volume {
                source, anonymous, ..
            } = m
            {
                if source.is_empty() {
                    *source = self
                        .volume_make(None, BTreeMap::new(), BTreeMap::new(), true)?
                        .name;
                    *anonymous = true;
                } else {
                    self.volume_make(Some(source), BTreeMap::new(), BTreeMap::new(), false)?;
                }
            }
        }
        Ok(())
    }

    /// After `rm -v`: removes the anonymous volumes `spec` used (now unused).
    pub fn remove_anonymous_volumes(&self, spec: &ContainerSpec) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for m in &spec.mounts {
            if let Mount::Volume {
                source,
                anonymous: true,
                ..
            } = m
            {
                match self.volume_remove(source, true) {
                    Ok(_) => out.push(source.clone()),
                    // Another container took it meanwhile (`--volumes-from` one day): kept.
                    Err(Error::Conflict(e)) => tracing::info!(volume = %source, "kept: {e}"),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }
}

/// Copies what the image has at `target` into the empty volume directory `data`, through
/// the container's root `rootfs` (confined: `target` is resolved inside it, nothing is
/// followed out of it or out of `data`). Nothing to copy if the image has no directory there.
pub fn copy_up(rootfs: &Path, target: &str, data: &Path) -> Result<()> {
    let what = |e: std::io::Error| Error::Io {
        what: format!("copy {target} of the image into {}", data.display()),
        source: e,
    };
    let root = confined::open_root(rootfs).map_err(what)?;
    let (parent, name) = match confined::parent_in_root(root.as_fd(), Path::new(target)) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(what(e)),
    };
    let src = match confined::open_dir_at(parent.as_fd(), &name) {
        Ok(fd) => fd,
        // Missing, a file or a symlink: nothing to copy up (Docker copies directories).
        Err(_) => return Ok(()),
    };
    let dst = confined::open_root(data).map_err(what)?;
    if !confined::is_empty_dir(dst.as_fd()).map_err(what)? {
        return Ok(());
    }
    confined::copy_contents(src.as_fd(), dst.as_fd(), Owners::Keep).map_err(what)?;
    tracing::debug!(target, volume = %data.display(), "copied the image's content into the volume");
    Ok(())
}

/// Adds the container's mounts to config.json (`spec`), after the default ones and its
/// `-v` bind mounts: volumes (made if missing, filled from the image when empty) as bind
/// mounts of their `_data`, bind mounts, tmpfs. Shallower targets first, so a mount inside
/// another one lands on top of it.
pub fn apply(engine: &Engine, mounts: &[Mount], rootfs: &Path, spec: &mut Value) -> Result<()> {
    let mut sorted: Vec<&Mount> = mounts.iter().collect();
    sorted.sort_by_key(|m| m.target().split('/').filter(|c| !c.is_empty()).count());
    let mut out = Vec::new();
    for m in sorted {
        match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                let mut o = vec!["rbind", "rprivate"];
                if *readonly {
                    o.push("ro");
                }
                out.push(
                    json!({"destination": target, "type": "bind", "source": source, "options": o}),
                );
            }
            Mount::Volume {
                source,
                target,
                readonly,
                nocopy,
                anonymous,
            } => {
                let v = match engine.volume_inspect(source) {
                    Ok(v) => v,
                    Err(_) => engine.volume_make(
                        Some(source),
                        BTreeMap::new(),
                        BTreeMap::new(),
                        *anonymous,
                    )?,
                };
                if let (Some(ty), Some(dev)) = (v.options.get("type"), v.options.get("device")) {
                    let mut o: Vec<String> = v
                        .options
                        .get("o")
                        .map(|o| {
                            o.split(',')
                                .filter(|x| !x.is_empty())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    if *readonly {
                        o.push("ro".into());
                    }
                    out.push(
                        json!({"destination": target, "type": ty, "source": dev, "options": o}),
                    );
                    continue;
                }
                std::fs::create_dir_all(&v.mountpoint)
                    .map_err(io(format!("create {}", v.mountpoint.display())))?;
                if !nocopy {
                    copy_up(rootfs, target, &v.mountpoint)?;
                }
                let mut o = vec!["rbind", "rprivate"];
                if *readonly {
                    o.push("ro");
                }
                out.push(json!({"destination": target, "type": "bind", "source": v.mountpoint, "options": o}));
            }
            Mount::Tmpfs {
                target,
                size,
                mode,
                options,
            } => {
                let mut o: Vec<String> = Vec::new();
                for (flag, opposite) in [("nosuid", "suid"), ("nodev", "dev"), ("noexec", "exec")] {
                    if !options.iter().any(|x| x == opposite) {
                        o.push(flag.into());
                    }
                }
                o.extend(
                    options
                        .iter()
                        .filter(|x| !["suid", "dev", "exec"].contains(&x.as_str()))
                        .cloned(),
                );
                if let Some(s) = size {
                    o.push(format!("size={s}"));
                }
                if let Some(m) = mode {
                    o.push(format!("mode={m:o}"));
                }
                out.push(json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": o}));
            }
        }
    }
    let list = spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| invalid!("config.json has no mounts"))?;
    // A mount of ours replaces a default one at the same place (`--tmpfs /dev/shm`).
    list.retain(|d| !out.iter().any(|m| m["destination"] == d["destination"]));
    list.extend(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for n in ["ab", "data", "my_vol.1-x", "0a"] {
            assert!(valid_name(n), "{n}");
        }
        for n in ["a", "", "-a", ".a", "a/b", "a b", "../x", "ä1"] {
            assert!(!valid_name(n), "{n}");
        }
    }

    #[test]
    fn cli_mounts() {
        let mut v = vec![
            "data:/data:ro".to_string(),
            "/tmp:/host".to_string(),
            "/anon".to_string(),
        ];
        let m = parse_cli(
            &mut v,
            &["type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777".into()],
            &["/run:size=64k,mode=755".into()],
        )
        .expect("valid");
        assert_eq!(v, vec!["/tmp:/host".to_string()]);
        assert_eq!(m.len(), 4);
        assert!(matches!(&m[0], Mount::Volume { source, readonly: true, .. } if source == "data"));
        assert!(matches!(
            &m[1],
            Mount::Volume {
                anonymous: true,
                ..
            }
        ));
        assert_eq!(
            m[2],
            Mount::Tmpfs {
                target: "/t".into(),
                size: Some(1 << 20),
                mode: Some(0o1777),
                options: vec![]
            }
        );
        for (vols, mounts, tmpfs, needle) in [
            (vec!["x:/a"], vec![], vec![], "\"x\""),
            (vec!["data:rel"], vec![], vec![], "not absolute"),
            (vec!["data:/a:rx"], vec![], vec![], "\"rx\""),
            (vec!["data:/a", "other:/a/"], vec![], vec![], "duplicate"),
            (vec![], vec!["type=nfs,target=/x"], vec![], "\"nfs\""),
            (
                vec![],
                vec!["type=bind,source=rel,target=/x"],
                vec![],
                "not absolute",
            ),
            (vec![], vec!["type=volume,source=v"], vec![], "no target"),
            (
                vec![],
                vec!["type=tmpfs,target=/x,tmpfs-mode=9"],
                vec![],
                "octal",
            ),
            (vec![], vec![], vec!["/x:size=lots"], "lots"),
            (vec![], vec![], vec!["/x/../y"], ".."),
        ] {
            let mut v: Vec<String> = vols.iter().map(|s| s.to_string()).collect();
            let ms: Vec<String> = mounts.iter().map(|s| s.to_string()).collect();
            let ts: Vec<String> = tmpfs.iter().map(|s| s.to_string()).collect();
            let e = parse_cli(&mut v, &ms, &ts).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e} (wanted {needle})");
        }
    }

    proptest::proptest! {
        #[test]
        fn mount_parsers_never_panic(s in ".{0,64}") {
            let _ = parse_mount(&s);
            let _ = parse_tmpfs(&s);
            let mut v = vec![s.clone()];
            let _ = parse_cli(&mut v, &[], &[]);
        }
    }
}
