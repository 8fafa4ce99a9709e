//! The OCI runtime config of a container (foreground `berth run` and the engine's
//! detached containers alike): the defaults of `berth-runtime spec`
//! (namespaces, mounts, masked and read-only paths) with docker's default capability set,
//! filled from the image config (runtime-spec `config.md`; image-spec `config.md`
//! "Properties": Env, Entrypoint, Cmd, WorkingDir, User) and the command line. Built
//! with oci-spec's `runtime::Spec` types and builders (`build_spec`); `build` gives it as
//! JSON to the callers that still add to it (volumes, `--init`, root and cgroup paths).

use crate::error::Result;
use crate::invalid;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxSeccomp, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, UserBuilder,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What the command line asks of the container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Opts {
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub cmd: Vec<String>,
    pub volumes: Vec<String>,
    pub read_only: bool,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub hostname: String,
    pub tty: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    /// `--init`: berth-init as PID 1 (add_init).
    pub init: bool,
}

/// Where `--init` puts berth-init in the container: on the runtime's `/dev` tmpfs, so
/// neither the image's files nor a read-only root are touched.
pub const INIT_PATH: &str = "/dev/init";

/// The init binary: `$BERTH_INIT`, else `berth-init` next to this executable (berth and
/// berth-monitor are installed together with it).
pub fn init_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_INIT").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe =
        std::env::current_exe().map_err(|e| invalid!("--init: locate this executable: {e}"))?;
    let p = exe.with_file_name("berth-init");
    if !p.is_file() {
        return Err(invalid!(
            "--init: {} not found: build it (cargo build) or set BERTH_INIT",
            p.display()
        ));
    }
    Ok(p)
}

/// `--init`: `bin` bound read-only at [`INIT_PATH`] and made the process, with the
/// command as its arguments (Docker binds tini at /sbin/docker-init the same way).
pub fn add_init(spec: &mut Value, bin: &Path) -> Result<()> {
    let args = spec["process"]["args"]
        .as_array_mut()
        .ok_or_else(|| invalid!("--init: the config has no process.args"))?;
    args.splice(0..0, [json!(INIT_PATH), json!("--")]);
    spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| invalid!("--init: the config has no mounts"))?
        .push(json!({
            "destination": INIT_PATH,
            "type": "bind",
            "source": bin,
            "options": ["bind", "ro", "nosuid", "nodev"],
        }));
    Ok(())
}

/// The seccomp profile a container gets.
#[derive(Debug, PartialEq)]
enum Seccomp {
    /// Docker's default allow-list (image::seccomp::default_profile).
    Default,
    Unconfined,
    File(PathBuf),
}

/// What `--security-opt` asks for.
#[derive(Debug, PartialEq)]
struct Security {
    seccomp: Seccomp,
    no_new_privileges: Option<bool>,
}

/// Parses `--security-opt` values (Docker's spellings: `key=value` or the older
/// `key:value`).
fn security(opts: &[String]) -> Result<Security> {
    let mut s = Security {
        seccomp: Seccomp::Default,
        no_new_privileges: None,
    };
    for o in opts {
        let (key, value) = match o.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => s.seccomp = Seccomp::Unconfined,
            ("seccomp", Some(p)) if !p.is_empty() => s.seccomp = Seccomp::File(PathBuf::from(p)),
            ("no-new-privileges", None | Some("true")) => s.no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => s.no_new_privileges = Some(false),
            _ => {
                return Err(invalid!(
                    "--security-opt {o:?}: expected seccomp=unconfined, seccomp=PROFILE.json or \
                     no-new-privileges[=true|false]"
                ))
            }
        }
    }
    Ok(s)
}

/// The default capability set with `--cap-drop` and then `--cap-add` applied (`ALL` in
/// either means every capability).
fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<&'static str>> {
    use image::seccomp::{cap_name, ALL_CAPS};
    let name = |flag: &str, c: &str| {
        cap_name(c).ok_or_else(|| invalid!("{flag} {c:?}: not a capability (see capabilities(7))"))
    };
    let all = |c: &String| c.eq_ignore_ascii_case("all");
    let mut caps: Vec<&'static str> = image::user::DEFAULT_CAPS.to_vec();
    if drop.iter().any(all) {
        caps.clear();
    }
    for c in drop.iter().filter(|c| !all(c)) {
        let n = name("--cap-drop", c)?;
        caps.retain(|x| *x != n);
    }
    if add.iter().any(all) {
        caps = ALL_CAPS.to_vec();
    }
    for c in add.iter().filter(|c| !all(c)) {
        let n = name("--cap-add", c)?;
        if !caps.contains(&n) {
            caps.push(n);
        }
    }
    Ok(caps)
}

/// Reads the env files and copies `-e NAME` values from this process's environment into
/// `env`, so a container created now gets the same environment when it starts later.
pub fn freeze_env(o: &mut Opts) -> Result<()> {
    let mut env = Vec::new();
    for f in std::mem::take(&mut o.env_files) {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| invalid!("read env file {}: {e}", f.display()))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    for e in std::mem::take(&mut o.env) {
        match e.split_once('=') {
            Some(("", _)) => return Err(invalid!("invalid environment variable {e:?}")),
            Some(_) => env.push(e),
            None => {
                if let Ok(v) = std::env::var(&e) {
                    env.push(format!("{e}={v}"));
                }
            }
        }
    }
    o.env = env;
    Ok(())
}

/// Checks what can be checked before the container's root filesystem exists (everything
/// but the user, which is resolved in the image's /etc/passwd at start): a bad option is
/// refused at create, with nothing made.
pub fn validate(o: &Opts) -> Result<()> {
    security(&o.security_opt)?;
    capabilities(&o.cap_add, &o.cap_drop)?;
    if let Some(w) = &o.workdir {
        if !w.starts_with('/') {
            return Err(invalid!("working directory {w:?} is not absolute"));
        }
    }
    if let Some(m) = &o.memory {
        parse_bytes(m)?;
    }
    if let Some(c) = o.cpus {
        if !(c > 0.0 && c <= 1024.0) {
            return Err(invalid!("--cpus {c}: must be between 0 and 1024"));
        }
    }
    volumes(&o.volumes, &mut Vec::new())?;
    Ok(())
}

/// Appends the `-v HOST:CONTAINER[:ro]` bind mounts to `mounts`.
fn volumes(list: &[String], mounts: &mut Vec<Mount>) -> Result<()> {
    for v in list {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => return Err(invalid!("invalid volume {v:?} (HOST:CONTAINER[:ro])")),
        };
        let src = std::fs::canonicalize(src)
            .map_err(|e| invalid!("volume {v:?}: host path {src:?}: {e}"))?;
        if !dst.starts_with('/') {
            return Err(invalid!(
                "volume {v:?}: container path {dst:?} is not absolute"
            ));
        }
        let mut options = vec!["rbind", "rprivate"];
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" => options.push("ro"),
                "rw" => {}
                other => {
                    return Err(invalid!(
                        "volume {v:?}: unknown option {other:?} (ro or rw)"
                    ))
                }
            }
        }
        mounts.push(
            MountBuilder::default()
                .destination(dst)
                .typ("bind")
                .source(src)
                .options(options.into_iter().map(String::from).collect::<Vec<_>>())
                .build()
                .map_err(oci)?,
        );
    }
    Ok(())
}

/// The container's command: the image's entrypoint and cmd as `--entrypoint` and the
/// command line change them (`--entrypoint` replaces the entrypoint and drops the cmd).
pub fn process_args(image: &ImageConfiguration, o: &Opts) -> Vec<String> {
    let ic = image.config().clone().unwrap_or_default();
    let entrypoint: Vec<String> = match &o.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => ic.entrypoint().clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !o.cmd.is_empty() {
        o.cmd.clone()
    } else if o.entrypoint.is_some() {
        vec![]
    } else {
        ic.cmd().clone().unwrap_or_default()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// Builds config.json for a container whose (mounted) root filesystem is `rootfs`, as
/// JSON for the callers that add to it (volumes.rs, the monitor's root and cgroup paths).
pub fn build(image: &ImageConfiguration, o: &Opts, rootfs: &Path) -> Result<Value> {
    let mut v = serde_json::to_value(build_spec(image, o, rootfs)?)
        .map_err(|e| invalid!("serialize the OCI config: {e}"))?;
    // oci-spec keeps capability sets in a HashSet: sorted, config.json is reproducible.
    for set in ["bounding", "effective", "permitted"] {
        if let Some(a) = v["process"]["capabilities"][set].as_array_mut() {
            a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
        }
    }
    Ok(v)
}

/// The OCI runtime config (runtime-spec `config.md`) with oci-spec's types: `berth-runtime
/// spec`'s defaults, then the process, root, hostname, `-v` binds, seccomp and resources.
pub fn build_spec(image: &ImageConfiguration, o: &Opts, rootfs: &Path) -> Result<Spec> {
    let mut spec: Spec = serde_json::from_value(runtime::spec_default::default_spec(false))
        .map_err(|e| invalid!("the default OCI config: {e}"))?;
    let ic = image.config().clone().unwrap_or_default();
    let args = process_args(image, o);
    if args.is_empty() {
        return Err(invalid!(
            "no command: the image has no entrypoint or cmd; give one after the image name"
        ));
    }

    // Environment: image, then env files, then -e (later wins).
    let mut env: Vec<String> = ic.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let mut extra = Vec::new();
    for f in &o.env_files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| invalid!("read env file {}: {e}", f.display()))?;
        extra.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    extra.extend(o.env.iter().cloned());
    for e in extra {
        let kv = match e.split_once('=') {
            Some(_) => e,
            None => match std::env::var(&e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue, // docker drops unset names
            },
        };
        let key = kv.split('=').next().unwrap_or("").to_string();
        if key.is_empty() {
            return Err(invalid!("invalid environment variable {kv:?}"));
        }
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }

    let cwd = o
        .workdir
        .clone()
        .or_else(|| ic.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(invalid!("working directory {cwd:?} is not absolute"));
    }
    let user = o
        .user
        .clone()
        .or_else(|| ic.user().clone())
        .unwrap_or_default();
    let image::user::User {
        uid,
        gid,
        additional_gids: groups,
    } = image::user::resolve(rootfs, &user)?;

    let cap_list = capabilities(&o.cap_add, &o.cap_drop)?;
    let caps: Capabilities = cap_list
        .iter()
        .map(|c| {
            serde_json::from_value(json!(c))
                .map_err(|e| invalid!("capability {c}: not known to the OCI config: {e}"))
        })
        .collect::<Result<_>>()?;
    let sec = security(&o.security_opt)?;
    let mut user = UserBuilder::default().uid(uid).gid(gid);
    if !groups.is_empty() {
        user = user.additional_gids(groups);
    }
    // As many open files as this process may have (podman raises the soft limit too).
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    let mut linux_caps = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(oci)?;
    // The builder's defaults would grant these two sets; Docker leaves them empty.
    linux_caps.set_inheritable(None);
    linux_caps.set_ambient(None);
    let process = ProcessBuilder::default()
        .terminal(o.tty)
        .user(user.build().map_err(oci)?)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(linux_caps)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(hard)
            .soft(hard)
            .build()
            .map_err(oci)?])
        // The default config's `true` unless --security-opt says otherwise.
        .no_new_privileges(sec.no_new_privileges.unwrap_or(true))
        .build()
        .map_err(oci)?;
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(o.read_only)
            .build()
            .map_err(oci)?,
    ));
    spec.set_hostname(Some(o.hostname.clone()));
    volumes(&o.volumes, spec.mounts_mut().get_or_insert_with(Vec::new))?;

    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or_else(|| invalid!("the default config has no linux section"))?;
    // The seccomp profile follows the capability set (moby's includes/excludes.caps).
    let profile = match &sec.seccomp {
        Seccomp::Default => Some(image::seccomp::default_profile()),
        Seccomp::Unconfined => None,
        Seccomp::File(path) => Some(image::seccomp::read_profile(path)?),
    };
    if let Some(profile) = profile {
        let seccomp: LinuxSeccomp = serde_json::from_value(profile.to_linux_seccomp(&cap_list)?)
            .map_err(|e| invalid!("the seccomp profile as an OCI config: {e}"))?;
        linux.set_seccomp(Some(seccomp));
    }

    let res = linux.resources_mut().get_or_insert_with(Default::default);
    if let Some(m) = &o.memory {
        res.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(parse_bytes(m)?)
                .build()
                .map_err(oci)?,
        ));
    }
    if let Some(c) = o.cpus {
        if !(c > 0.0 && c <= 1024.0) {
            return Err(invalid!("--cpus {c}: must be between 0 and 1024"));
        }
        res.set_cpu(Some(
            LinuxCpuBuilder::default()
                .quota((c * 100_000.0) as i64)
                .period(100_000u64)
                .build()
                .map_err(oci)?,
        ));
    }
    if let Some(n) = o.pids_limit {
        res.set_pids(Some(
            LinuxPidsBuilder::default().limit(n).build().map_err(oci)?,
        ));
    }
    Ok(spec)
}

/// A builder's error (a required field left out: a bug here, not bad input).
fn oci(e: oci_spec::OciSpecError) -> crate::Error {
    invalid!("building the OCI config: {e}")
}

/// `512`, `64k`, `512m`, `2g` (binary units, as docker reads them).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| invalid!("invalid size {s:?}"))?;
    if !n.is_finite() || n <= 0.0 {
        return Err(invalid!("invalid size {s:?}"));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opts() {
        let s = |v: &[&str]| security(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["seccomp=unconfined", "no-new-privileges"]).ok(),
            Some(Security {
                seccomp: Seccomp::Unconfined,
                no_new_privileges: Some(true)
            })
        );
        assert_eq!(
            s(&["seccomp:/p.json", "no-new-privileges:false"]).ok(),
            Some(Security {
                seccomp: Seccomp::File("/p.json".into()),
                no_new_privileges: Some(false)
            })
        );
        assert!(s(&["seccomp="]).is_err());
        assert!(s(&["label=disable"]).is_err());
        assert!(s(&["no-new-privileges=maybe"]).is_err());
    }

    #[test]
    fn cap_add_and_drop() {
        let c = |a: &[&str], d: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            capabilities(&v(a), &v(d)).map_err(|e| e.to_string())
        };
        let with_admin = c(&["sys_admin"], &["NET_RAW"]).expect("valid");
        assert!(with_admin.contains(&"CAP_SYS_ADMIN") && !with_admin.contains(&"CAP_NET_RAW"));
        assert_eq!(c(&["CHOWN"], &["ALL"]).ok(), Some(vec!["CAP_CHOWN"]));
        assert!(c(&["WISHFUL"], &[])
            .expect_err("unknown")
            .contains("WISHFUL"));
    }

    /// The config from oci-spec's types: what the options ask for, the default config's
    /// mounts and namespaces kept, no inheritable or ambient capabilities.
    #[test]
    fn config_from_typed_spec() {
        let img: ImageConfiguration = serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/w"},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .expect("image config");
        let o = Opts {
            env: vec!["B=2".into(), "A=3".into()],
            cmd: vec!["echo".into(), "hi".into()],
            volumes: vec!["/tmp:/h:ro".into()],
            read_only: true,
            memory: Some("64m".into()),
            cpus: Some(0.5),
            pids_limit: Some(50),
            hostname: "hn".into(),
            tty: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["CHOWN".into()],
            ..Default::default()
        };
        let v = build(&img, &o, Path::new("/nonexistent")).expect("build");
        let p = &v["process"];
        assert_eq!(p["args"], json!(["echo", "hi"]));
        assert_eq!(p["env"], json!(["PATH=/bin", "B=2", "A=3", "TERM=xterm"]));
        assert_eq!(p["cwd"], "/w");
        assert_eq!(p["terminal"], true);
        assert_eq!(p["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(p["noNewPrivileges"], true);
        let caps = &p["capabilities"];
        let bounding: Vec<&str> = caps["bounding"]
            .as_array()
            .expect("bounding")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        assert!(bounding.contains(&"CAP_NET_ADMIN") && !bounding.contains(&"CAP_CHOWN"));
        assert!(bounding.windows(2).all(|w| w[0] < w[1]), "{bounding:?}");
        assert_eq!(caps["effective"], caps["bounding"]);
        assert!(caps.get("inheritable").is_none() && caps.get("ambient").is_none());
        assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
        assert_eq!(v["hostname"], "hn");
        let mounts = v["mounts"].as_array().expect("mounts");
        assert_eq!(mounts[0]["destination"], "/proc");
        assert_eq!(
            mounts.last(),
            Some(
                &json!({"destination": "/h", "type": "bind", "source": "/tmp",
                         "options": ["rbind", "rprivate", "ro"]})
            )
        );
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"], json!({"quota": 50_000, "period": 100_000}));
        assert_eq!(r["pids"]["limit"], 50);
        assert_eq!(r["devices"], json!([{"allow": false, "access": "rwm"}]));
        assert_eq!(v["linux"]["namespaces"].as_array().map(Vec::len), Some(6));
        assert!(v["linux"]["seccomp"]["syscalls"].is_array());

        let o = Opts {
            security_opt: vec![
                "seccomp=unconfined".into(),
                "no-new-privileges=false".into(),
            ],
            ..Default::default()
        };
        let v = build(&img, &o, Path::new("/nonexistent")).expect("build");
        assert_eq!(v["process"]["args"], json!(["sh"]));
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert!(v["linux"].get("seccomp").is_none());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").ok(), Some(512 << 20));
        assert_eq!(parse_bytes("1g").ok(), Some(1 << 30));
        assert_eq!(parse_bytes("4096").ok(), Some(4096));
        assert!(parse_bytes("lots").is_err());
    }
}
