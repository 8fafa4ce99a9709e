//! Loading and validating `config.json` (runtime-spec config.md, config-linux.md).
//!
//! Every error names the JSON path of the offending field, so a user can fix it from the
//! one line we print.

use crate::error::{config_err, Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// Reads and parses a JSON document, reporting the path of the field that failed to parse.
///
/// The document is parsed plainly first; only a document that fails is parsed again with
/// `serde_path_to_error` to find the field. The path-tracking parser is a large
/// monomorphised copy of the config types' deserializers, and keeping it off the common
/// path keeps its pages out of the runtime's resident set (docs/benchmarks.md).
pub fn parse_json<T: serde::de::DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde_json appends " at line L column C"; keep it, it helps with big files.
        Error::Config {
            file: file.into(),
            field: if path == "." {
                "(document)".into()
            } else {
                path
            },
            msg,
        }
    })
}

/// Loads `<bundle>/config.json` and validates it for creating a container.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::Config {
        file: path.display().to_string(),
        field: "(file)".into(),
        msg: e.to_string(),
    })?;
    let spec: Spec = parse_json("config.json", &bytes)?;
    validate(&spec)?;
    Ok(spec)
}

/// Resolves `root.path` against the bundle. A relative root must stay inside the bundle.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| config_err("root", "missing"))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(config_err("root.path", "must not be empty"));
    }
    let joined = if p.is_absolute() {
        p.clone()
    } else {
        // Lexically first: "../x" leaves the bundle even when x does not exist.
        let mut depth: i32 = 0;
        for c in p.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(config_err(
                    "root.path",
                    format!(
                        "{} is relative but resolves outside the bundle",
                        p.display()
                    ),
                ));
            }
        }
        if p.components().any(|c| c == Component::ParentDir) {
            let canon_bundle = bundle
                .canonicalize()
                .unwrap_or_else(|_| bundle.to_path_buf());
            let canon = bundle
                .join(p)
                .canonicalize()
                .unwrap_or_else(|_| bundle.join(p));
            if !canon.starts_with(&canon_bundle) {
                return Err(config_err(
                    "root.path",
                    format!(
                        "{} is relative but resolves outside the bundle",
                        p.display()
                    ),
                ));
            }
        }
        bundle.join(p)
    };
    let canon = joined
        .canonicalize()
        .map_err(|e| config_err("root.path", format!("{}: {e}", joined.display())))?;
    if !canon.is_dir() {
        return Err(config_err(
            "root.path",
            format!("{} is not a directory", canon.display()),
        ));
    }
    Ok(canon)
}

/// The process of a spec, which `create` requires.
pub fn process(spec: &Spec) -> Result<&Process> {
    spec.process()
        .as_ref()
        .ok_or_else(|| config_err("process", "missing"))
}

/// Checks the rules runtime-spec states with MUST that serde cannot express.
pub fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if !version.starts_with("1.") {
        return Err(config_err(
            "ociVersion",
            format!("unsupported version {version:?}"),
        ));
    }
    validate_process(process(spec)?, "process")?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| config_err("linux", "missing"))?;
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(config_err(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace type {}", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(config_err(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} is not absolute", p.display()),
                ));
            }
        }
    }
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    let new_ns = |t: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let has_user = has(LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_ns(LinuxNamespaceType::User) {
        for (name, m) in [
            ("uidMappings", linux.uid_mappings()),
            ("gidMappings", linux.gid_mappings()),
        ] {
            if m.as_ref().is_none_or(|m| m.is_empty()) {
                return Err(config_err(
                    format!("linux.{name}"),
                    "required when a new user namespace is created",
                ));
            }
        }
    } else if maps && !has_user {
        return Err(config_err(
            "linux.uidMappings",
            "set but there is no user namespace",
        ));
    }
    // Set in the container's own uts namespace, new or joined by path (as runc does); never
    // in the host's.
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(config_err("hostname", "requires a uts namespace"));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(config_err("domainname", "requires a uts namespace"));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        if !new_ns(LinuxNamespaceType::Time) {
            return Err(config_err(
                "linux.timeOffsets",
                "requires a new time namespace",
            ));
        }
        for k in linux.time_offsets().iter().flat_map(|t| t.keys()) {
            if k != "monotonic" && k != "boottime" {
                return Err(config_err(
                    format!("linux.timeOffsets.{k}"),
                    "only monotonic and boottime clocks can be offset",
                ));
            }
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            let field = format!("linux.sysctl.{key}");
            if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
                return Err(config_err(field, "invalid key"));
            }
            let ipc = key.starts_with("fs.mqueue.")
                || [
                    "kernel.msgmax",
                    "kernel.msgmnb",
                    "kernel.msgmni",
                    "kernel.sem",
                    "kernel.shmall",
                    "kernel.shmmax",
                    "kernel.shmmni",
                    "kernel.shm_rmid_forced",
                ]
                .contains(&key.as_str());
            if ipc && !has(LinuxNamespaceType::Ipc) {
                return Err(config_err(field, "requires an ipc namespace"));
            } else if key.starts_with("net.") && !has(LinuxNamespaceType::Network) {
                return Err(config_err(field, "requires a network namespace"));
            } else if (key == "kernel.hostname" || key == "kernel.domainname")
                && !has(LinuxNamespaceType::Uts)
            {
                return Err(config_err(field, "requires a uts namespace"));
            } else if !ipc
                && !key.starts_with("net.")
                && !key.starts_with("kernel.")
                && !key.starts_with("fs.mqueue.")
            {
                return Err(config_err(
                    field,
                    "is not namespaced and cannot be set in a container",
                ));
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination().as_os_str().is_empty() {
            return Err(config_err(
                format!("mounts[{i}].destination"),
                "must not be empty",
            ));
        }
        let idmap = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "idmap" || o == "ridmap");
        if idmap || m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(config_err(
                format!("mounts[{i}]"),
                "id-mapped mounts are not supported yet",
            ));
        }
    }
    // Fields we do not implement fail loudly rather than being ignored.
    if linux.intel_rdt().is_some() {
        return Err(config_err("linux.intelRdt", "not supported"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(config_err("linux.netDevices", "not supported yet"));
    }
    if let Some(devs) = linux.devices() {
        for (i, d) in devs.iter().enumerate() {
            if !d.path().is_absolute() {
                return Err(config_err(
                    format!("linux.devices[{i}].path"),
                    "must be absolute",
                ));
            }
        }
    }
    if let Some(p) = linux.rootfs_propagation() {
        if crate::process::rootfs::propagation_flag(p).is_none() {
            return Err(config_err(
                "linux.rootfsPropagation",
                format!("unknown value {p:?}"),
            ));
        }
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty())
        && !crate::process::lsm::selinux_enabled()
    {
        return Err(config_err(
            "linux.mountLabel",
            "SELinux is not enabled on this host",
        ));
    }
    validate_hooks(spec)
}

/// config.md "POSIX-platform Hooks": `path` is absolute, `timeout` greater than zero.
fn validate_hooks(spec: &Spec) -> Result<()> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    #[allow(deprecated)]
    let kinds = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (kind, list) in kinds {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(config_err(
                    format!("hooks.{kind}[{i}].path"),
                    format!("{} is not absolute", hook.path().display()),
                ));
            }
            if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
                return Err(config_err(
                    format!("hooks.{kind}[{i}].timeout"),
                    format!("must be greater than zero, not {t}"),
                ));
            }
        }
    }
    Ok(())
}

/// Validates a process (of config.json, or of `exec --process`). `field` is its JSON path.
pub fn validate_process(p: &Process, field: &str) -> Result<()> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(config_err(
                format!("{field}.args"),
                "must name the program to run",
            ))
        }
    }
    crate::process::lsm::validate(
        p.apparmor_profile().as_deref(),
        p.selinux_label().as_deref(),
        field,
    )?;
    if !p.cwd().is_absolute() {
        return Err(config_err(
            format!("{field}.cwd"),
            format!("{} is not an absolute path", p.cwd().display()),
        ));
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return Err(config_err(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    // (uid_t)-1 is "leave unchanged" to setresuid/setresgid/setgroups: asking for it would
    // run the process with the runtime's own ids (config.md "User": uid, gid are ids).
    let user = p.user();
    let out_of_range = |f: String, v: u32| {
        config_err(
            f,
            format!("{v} is out of range: ids are 0 to {}", u32::MAX - 1),
        )
    };
    if user.uid() == u32::MAX {
        return Err(out_of_range(format!("{field}.user.uid"), user.uid()));
    }
    if user.gid() == u32::MAX {
        return Err(out_of_range(format!("{field}.user.gid"), user.gid()));
    }
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        if *g == u32::MAX {
            return Err(out_of_range(
                format!("{field}.user.additionalGids[{i}]"),
                *g,
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if !seen.insert(format!("{:?}", r.typ())) {
            return Err(config_err(
                format!("{field}.rlimits[{i}].type"),
                "duplicate rlimit",
            ));
        }
        if r.soft() > r.hard() {
            return Err(config_err(
                format!("{field}.rlimits[{i}]"),
                "soft limit exceeds hard limit",
            ));
        }
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(config_err(
                format!("{field}.oomScoreAdj"),
                format!("{adj} is not in -1000..1000"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Spec> {
        let mut v = crate::spec_default::default_spec(false);
        edit(&mut v);
        let bytes = serde_json::to_vec(&v).map_err(|e| Error::Usage(e.to_string()))?;
        let s: Spec = parse_json("config.json", &bytes)?;
        validate(&s)?;
        Ok(s)
    }

    fn field_of(r: Result<Spec>) -> String {
        match r {
            Err(Error::Config { field, .. }) => field,
            Err(e) => format!("other error: {e}"),
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn default_spec_is_valid() {
        assert!(spec(|_| {}).is_ok());
    }

    #[test]
    fn wrong_type_names_the_field() {
        assert_eq!(
            field_of(spec(|v| v["process"]["user"]["uid"] = "abc".into())),
            "process.user.uid"
        );
        assert_eq!(
            field_of(spec(|v| v["linux"]["namespaces"][1]["type"] = "foo".into())),
            "linux.namespaces[1].type"
        );
    }

    #[test]
    fn contradictions_name_the_field() {
        assert_eq!(
            field_of(spec(|v| v["process"]["args"] = serde_json::json!([]))),
            "process.args"
        );
        assert_eq!(
            field_of(spec(|v| v["process"]["cwd"] = "rel".into())),
            "process.cwd"
        );
        assert_eq!(
            field_of(spec(|v| v["linux"]["namespaces"]
                .as_array_mut()
                .into_iter()
                .for_each(|a| a.push(serde_json::json!({"type": "pid"}))))),
            "linux.namespaces[6].type"
        );
        assert_eq!(
            field_of(spec(|v| v["linux"]["namespaces"]
                .as_array_mut()
                .into_iter()
                .for_each(|a| a.push(serde_json::json!({"type": "user"}))))),
            "linux.uidMappings"
        );
        assert_eq!(
            field_of(spec(|v| v["linux"]["uidMappings"] =
                serde_json::json!([{"containerID": 0, "hostID": 1, "size": 1}]))),
            "linux.uidMappings"
        );
        assert_eq!(
            field_of(spec(|v| v["linux"]["namespaces"] =
                serde_json::json!([{"type": "mount"}, {"type": "pid"}]))),
            "hostname"
        );
        assert_eq!(
            field_of(spec(
                |v| v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"})
            )),
            "linux.sysctl.vm.swappiness"
        );
        assert_eq!(
            field_of(spec(
                |v| v["linux"]["timeOffsets"] = serde_json::json!({"monotonic": {"secs": 1}})
            )),
            "linux.timeOffsets"
        );
        assert_eq!(
            field_of(spec(|v| v["linux"]["rootfsPropagation"] = "sideways".into())),
            "linux.rootfsPropagation"
        );
    }

    #[test]
    fn relative_root_must_stay_in_the_bundle() {
        let s = spec(|v| v["root"]["path"] = "../../etc".into()).ok();
        let s = s
            .as_ref()
            .map(|s| field_of(rootfs_path(s, Path::new("/tmp")).map(|_| Spec::default())));
        assert_eq!(s.as_deref(), Some("root.path"));
    }

    /// Issue 10: config.json is outside input. Whatever it holds, parsing and validation
    /// return (never panic), and a refusal is a config error that names a field.
    mod props {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[ -~]{0,12}".prop_map(Value::from),
                // Strings the config does use, so enums and paths get reached.
                prop::sample::select(vec![
                    "/",
                    "/proc",
                    "rel/path",
                    "pid",
                    "user",
                    "mount",
                    "RLIMIT_NOFILE",
                    "CAP_SYS_ADMIN",
                    "SCMP_ACT_ERRNO",
                    "1.0.2",
                    "",
                    "..",
                    "a=b",
                ])
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                    prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Every path (serde_path_to_error's spelling) of a document's values.
        fn paths(v: &Value, here: &str, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        let p = if here.is_empty() {
                            k.clone()
                        } else {
                            format!("{here}.{k}")
                        };
                        out.push(p.clone());
                        paths(x, &p, out);
                    }
                }
                Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        let p = format!("{here}[{i}]");
                        out.push(p.clone());
                        paths(x, &p, out);
                    }
                }
                _ => {}
            }
        }

        /// The value at `path` (as produced by `paths`), mutably.
        fn at<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
            let mut cur = v;
            for part in path.split('.') {
                let (key, idx) = match part.find('[') {
                    Some(i) => (&part[..i], Some(&part[i..])),
                    None => (part, None),
                };
                cur = cur.get_mut(key)?;
                for n in idx.into_iter().flat_map(|s| s.split('[').skip(1)) {
                    cur = cur.get_mut(n.trim_end_matches(']').parse::<usize>().ok()?)?;
                }
            }
            Some(cur)
        }

        fn a_valid_config() -> Value {
            let mut v = crate::spec_default::default_spec(false);
            v["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]
            });
            v["process"]["user"]["additionalGids"] = serde_json::json!([1, 2]);
            v["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/true", "timeout": 3}]});
            v
        }

        fn check(bytes: &[u8]) -> std::result::Result<Option<(String, String)>, TestCaseError> {
            let spec = match parse_json::<Spec>("config.json", bytes) {
                Ok(s) => s,
                Err(Error::Config { field, msg, .. }) => return Ok(Some((field, msg))),
                Err(e) => return Err(TestCaseError::fail(format!("not a config error: {e}"))),
            };
            let checked = validate(&spec).and_then(|()| {
                // The filter is compiled at create, before "created": part of the checks.
                match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
                    Some(s) => crate::process::seccomp::compile(s).map(drop),
                    None => Ok(()),
                }
            });
            match checked {
                Ok(()) => Ok(None),
                Err(Error::Config { field, msg, .. }) => Ok(Some((field, msg))),
                Err(Error::Seccomp(msg)) => Ok(Some(("linux.seccomp".into(), msg))),
                Err(e) => Err(TestCaseError::fail(format!("not a config error: {e}"))),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_json_is_refused_clearly(v in json()) {
                let bytes = serde_json::to_vec(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some((field, msg)) = check(&bytes)? {
                    prop_assert!(!field.is_empty() && !msg.is_empty());
                }
            }

            #[test]
            fn arbitrary_bytes_do_not_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
                if let Some((field, msg)) = check(&b)? {
                    prop_assert!(!field.is_empty() && !msg.is_empty());
                }
            }

            /// One value of a valid config replaced (or removed): a refusal names that
            /// field, one of its parents, or one inside it; or (for a rule between fields,
            /// such as hostname needing a uts namespace) some other field by its path.
            #[test]
            fn mutated_config_names_the_field(pick in any::<prop::sample::Index>(), new in json(), remove in any::<bool>()) {
                let mut v = a_valid_config();
                let mut all = Vec::new();
                paths(&v, "", &mut all);
                let path = pick.get(&all).clone();
                if remove {
                    match path.rfind(['.', '[']) {
                        Some(i) if path[i..].starts_with('.') => {
                            if let Some(Value::Object(m)) = at(&mut v, &path[..i]) {
                                m.remove(&path[i + 1..]);
                            }
                        }
                        Some(i) => {
                            let n: usize = path[i + 1..].trim_end_matches(']').parse().unwrap_or(0);
                            if let Some(Value::Array(a)) = at(&mut v, &path[..i]) {
                                if n < a.len() { a.remove(n); }
                            }
                        }
                        None => { v.as_object_mut().map(|m| m.remove(&path)); }
                    }
                } else if let Some(slot) = at(&mut v, &path) {
                    *slot = new;
                }
                let bytes = serde_json::to_vec(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let parsed = parse_json::<Spec>("config.json", &bytes);
                if let Err(Error::Config { field, msg, .. }) = &parsed {
                    // A type error is reported where it is: at the mutated value, inside it,
                    // or at a parent (a missing required field, a map key).
                    let related = field == "(document)"
                        || field.starts_with(&path)
                        || path.starts_with(field.as_str());
                    prop_assert!(related, "mutated {path}, error names {field}: {msg}");
                }
                if let Some((field, msg)) = check(&bytes)? {
                    prop_assert!(!field.is_empty() && !msg.is_empty());
                }
            }
        }
    }
}
