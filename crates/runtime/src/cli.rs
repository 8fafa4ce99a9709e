//! The runc command line, parsed with `lexopt`.
//!
//! A small hand-written parser instead of clap: `berth-runtime` is exec'd for every
//! container operation and its resident size and exec time are benchmarked against crun,
//! so it carries no argument-parsing framework (clap alone was ~150 KB of resident text).
//!
//! Grammar (runc's, plus what podman and containerd send): global options anywhere on the
//! line (`--root`, `--log`, `--log-format`, `--debug`, `--systemd-cgroup`, `--rootless`,
//! `--criu`), then a command, then its options before or after the container ID. `exec` and
//! `ps` take everything after the ID's first following positional as the command line.

use berth_runtime::container::{create::CreateOpts, exec::ExecOpts};
use berth_runtime::error::{Error, Result};
use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;

/// Global options (runc's).
#[derive(Debug)]
pub struct Global {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub json_log: bool,
    pub debug: bool,
    pub rootless: Option<String>,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is systemd's `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// `update` options: a resources document and/or single values.
#[derive(Debug, Default)]
pub struct UpdateArgs {
    pub resources: Option<PathBuf>,
    /// (section, key, value) in linux.resources form, in command-line order.
    pub values: Vec<(&'static str, &'static str, serde_json::Value)>,
    pub id: String,
}

#[derive(Debug)]
pub enum Cmd {
    Create(CreateOpts),
    Start {
        id: String,
    },
    Run {
        c: CreateOpts,
        detach: bool,
        keep: bool,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: Option<String>,
        all: bool,
    },
    Delete {
        force: bool,
        id: String,
    },
    Exec(Box<ExecOpts>),
    List {
        json: bool,
        quiet: bool,
    },
    Ps {
        json: bool,
        id: String,
        ps_args: Vec<String>,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Update(UpdateArgs),
    Events {
        id: String,
        stats: bool,
        interval: std::time::Duration,
    },
    Features,
    Spec {
        bundle: PathBuf,
    },
}

/// What the command line asks for.
pub enum Parsed {
    Run(Global, Cmd),
    /// `--help` / `--version`: text for stdout, exit 0.
    Print(String),
}

const VERSION: &str = concat!("berth-runtime ", env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0");

const HELP: &str = "berth-runtime: berth's OCI runtime (runc command line)

Usage: berth-runtime [GLOBAL OPTIONS] COMMAND [OPTIONS] [ID] [ARGS...]

Commands:
  create [--bundle B] [--pid-file F] [--console-socket S] [--no-pivot]
         [--no-new-keyring] [--preserve-fds N] ID
  start ID                 start a created container
  run [create options] [--detach] [--keep] ID
                           create + start; in the foreground wait and pass the exit status
  state ID                 print the OCI state
  kill [--all] ID [SIGNAL] send a signal (default SIGTERM)
  delete [--force] ID
  exec [--process F | ARGS] [--tty] [--detach] [--pid-file F] [--console-socket S]
       [--env K=V]... [--cwd D] [--user U[:G]] [--additional-gids G]... [--cap C]...
       [--no-new-privs] [--preserve-fds N] [--process-label L] [--apparmor P]
       [--ignore-paused] [--cgroup [CONTROLLER[,CONTROLLER]:]SUBPATH]... ID [ARGS...]
  list [--format table|json] [--quiet]
  ps [--format table|json] ID [PS ARGS...]
  pause ID | resume ID
  update [--resources F|-] [--memory N] [--memory-reservation N] [--memory-swap N]
         [--cpu-share(s) N] [--cpu-quota N] [--cpu-period N] [--cpu-rt-period N]
         [--cpu-rt-runtime N] [--cpuset-cpus L]
         [--cpuset-mems L] [--pids-limit N] [--blkio-weight N] ID
  events [--stats] [--interval D] ID
                           cgroup statistics (and OOM events) as JSON lines, every D
                           (default 5s) until the container stops; --stats: once
  features                 print the features this runtime implements (JSON)
  spec [--bundle B]        write a default config.json

Global options:
  --root DIR (default /run/berth-runtime)  --log FILE  --log-format text|json  --debug
  --systemd-cgroup (cgroupsPath is slice:prefix:name, default system.slice:berth:ID; mapped
  to systemd's cgroupfs layout, /system.slice/berth-ID.scope, on a host without systemd)
  --rootless[=true|false]  --criu PATH (accepted for runc compatibility)
  -h, --help  -v, --version
";

fn usage(msg: impl std::fmt::Display) -> Error {
    Error::Usage(msg.to_string())
}

fn string(v: OsString, what: &str) -> Result<String> {
    v.into_string()
        .map_err(|v| usage(format!("{what}: not valid UTF-8: {v:?}")))
}

fn number<T: std::str::FromStr>(v: OsString, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let s = string(v, what)?;
    s.parse()
        .map_err(|e| usage(format!("{what}: invalid value {s:?}: {e}")))
}

/// Options of every command, filled as they appear; `finish` checks which the command takes.
#[derive(Default)]
struct Acc {
    create: CreateOpts,
    exec: ExecOpts,
    update: UpdateArgs,
    bundle_set: bool,
    detach: bool,
    keep: bool,
    all: bool,
    force: bool,
    json: bool,
    quiet: bool,
    stats: bool,
    interval: Option<String>,
    positional: Vec<String>,
    trailing: Vec<String>,
}

/// Parses `args` (without argv[0]).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Parsed> {
    let mut p = lexopt::Parser::from_args(args);
    let mut g = Global {
        root: PathBuf::from("/run/berth-runtime"),
        log: None,
        json_log: false,
        debug: false,
        rootless: None,
        systemd_cgroup: false,
    };
    let mut cmd: Option<String> = None;
    let mut a = Acc::default();
    let err = |e: lexopt::Error| usage(e);
    while let Some(arg) = p.next().map_err(err)? {
        let c = cmd.clone().unwrap_or_default();
        match arg {
            // Global options, accepted anywhere.
            Long("root") => g.root = p.value().map_err(err)?.into(),
            Long("log") => g.log = Some(p.value().map_err(err)?.into()),
            Long("log-format") => {
                let v = string(p.value().map_err(err)?, "--log-format")?;
                g.json_log = match v.as_str() {
                    "text" => false,
                    "json" => true,
                    _ => return Err(usage(format!("--log-format: {v:?} is not text or json"))),
                };
            }
            Long("debug") => g.debug = true,
            Long("systemd-cgroup") => g.systemd_cgroup = true,
            Long("rootless") => {
                g.rootless = Some(match p.optional_value() {
                    Some(v) => string(v, "--rootless")?,
                    None => "true".into(),
                })
            }
            Long("criu") => drop(p.value().map_err(err)?),
            Long("help") | Short('h') => return Ok(Parsed::Print(HELP.into())),
            Long("version") | Short('v') if cmd.is_none() => {
                return Ok(Parsed::Print(VERSION.into()))
            }
            Value(v) if cmd.is_none() => {
                let c = string(v, "command")?;
                // runc's CRIU verbs: named, with why they are missing, whatever options
                // follow (not "unknown command").
                if c == "checkpoint" || c == "restore" {
                    return Err(usage(format!(
                        "{c}: not supported by berth-runtime (no CRIU integration; features \
                         says org.opencontainers.runc.checkpoint.enabled=false)"
                    )));
                }
                cmd = Some(c);
            }
            Value(v) => {
                let v = string(v, "argument")?;
                // exec's and ps's command line starts at the first positional after the ID.
                if matches!(c.as_str(), "exec" | "ps") && !a.positional.is_empty() {
                    a.trailing.push(v);
                    for rest in p.raw_args().map_err(err)? {
                        a.trailing.push(string(rest, "argument")?);
                    }
                } else {
                    a.positional.push(v);
                }
            }
            Long(n) => {
                let key = n.to_string();
                command_option(&c, &key, &mut p, &mut a)?
            }
            Short(ch) => command_option(&c, &format!("-{ch}"), &mut p, &mut a)?,
        }
    }
    let Some(cmd) = cmd else {
        return Err(usage("no command given (try --help)"));
    };
    Ok(Parsed::Run(g, finish(&cmd, a)?))
}

/// One option of the command `c`: `key` is a long name without dashes or `-x` for a short one.
fn command_option(c: &str, key: &str, p: &mut lexopt::Parser, a: &mut Acc) -> Result<()> {
    let name = if key.starts_with('-') {
        key.to_string()
    } else {
        format!("--{key}")
    };
    let mut value = |what: &str| -> Result<OsString> {
        p.value()
            .map_err(|_| usage(format!("{what} needs a value")))
    };
    let ok = match (c, key) {
        ("create" | "run" | "spec", "bundle" | "-b") => {
            a.create.bundle = value("--bundle")?.into();
            a.bundle_set = true;
            true
        }
        ("create" | "run", "pid-file") => {
            a.create.pid_file = Some(value("--pid-file")?.into());
            true
        }
        ("create" | "run", "console-socket") => {
            a.create.console_socket = Some(value("--console-socket")?.into());
            true
        }
        ("create" | "run", "no-pivot") => {
            a.create.no_pivot = true;
            true
        }
        ("create" | "run", "no-new-keyring") => {
            a.create.no_new_keyring = true;
            true
        }
        ("create" | "run", "preserve-fds") => {
            a.create.preserve_fds = number(value("--preserve-fds")?, "--preserve-fds")?;
            true
        }
        ("run" | "exec", "detach" | "-d") => {
            a.detach = true;
            true
        }
        ("run", "keep") => {
            a.keep = true;
            true
        }
        ("kill", "all" | "-a") => {
            a.all = true;
            true
        }
        ("delete", "force" | "-f") => {
            a.force = true;
            true
        }
        ("list" | "ps", "format" | "-f") => {
            let f = string(value("--format")?, "--format")?;
            a.json = match f.as_str() {
                "json" => true,
                "table" => false,
                _ => return Err(usage(format!("--format: {f:?} is not table or json"))),
            };
            true
        }
        ("list", "quiet" | "-q") => {
            a.quiet = true;
            true
        }
        ("events", "stats") => {
            a.stats = true;
            true
        }
        ("events", "interval") => {
            a.interval = Some(string(value("--interval")?, "--interval")?);
            true
        }
        ("exec", _) => exec_option(key, &mut value, &mut a.exec)?,
        ("update", _) => update_option(key, &mut value, &mut a.update)?,
        _ => false,
    };
    if ok {
        Ok(())
    } else if c.is_empty() {
        Err(usage(format!("unknown global option {name} (try --help)")))
    } else {
        Err(usage(format!("{c}: unknown option {name} (try --help)")))
    }
}

fn exec_option(
    key: &str,
    value: &mut dyn FnMut(&str) -> Result<OsString>,
    e: &mut ExecOpts,
) -> Result<bool> {
    match key {
        "process" | "-p" => e.process_file = Some(value("--process")?.into()),
        "tty" | "-t" => e.tty = true,
        "pid-file" => e.pid_file = Some(value("--pid-file")?.into()),
        "console-socket" => e.console_socket = Some(value("--console-socket")?.into()),
        "env" | "-e" => e.env.push(string(value("--env")?, "--env")?),
        "cwd" => e.cwd = Some(value("--cwd")?.into()),
        "user" | "-u" => e.user = Some(string(value("--user")?, "--user")?),
        "additional-gids" | "-g" => e
            .additional_gids
            .push(number(value("--additional-gids")?, "--additional-gids")?),
        "cap" | "-c" => e.caps.push(string(value("--cap")?, "--cap")?),
        "no-new-privs" => e.no_new_privs = true,
        "preserve-fds" => e.preserve_fds = number(value("--preserve-fds")?, "--preserve-fds")?,
        "process-label" => {
            e.process_label = Some(string(value("--process-label")?, "--process-label")?)
        }
        "apparmor" => e.apparmor = Some(string(value("--apparmor")?, "--apparmor")?),
        "ignore-paused" => e.ignore_paused = true,
        "cgroup" => e.cgroups.push(string(value("--cgroup")?, "--cgroup")?),
        _ => return Ok(false),
    }
    Ok(true)
}

fn update_option(
    key: &str,
    value: &mut dyn FnMut(&str) -> Result<OsString>,
    u: &mut UpdateArgs,
) -> Result<bool> {
    // (option, section, key, numeric?) in linux.resources form.
    const FIELDS: &[(&str, &str, &str, bool)] = &[
        ("memory", "memory", "limit", true),
        ("memory-reservation", "memory", "reservation", true),
        ("memory-swap", "memory", "swap", true),
        ("cpu-shares", "cpu", "shares", true),
        // runc's spelling.
        ("cpu-share", "cpu", "shares", true),
        ("cpu-rt-period", "cpu", "realtimePeriod", true),
        ("cpu-rt-runtime", "cpu", "realtimeRuntime", true),
        ("cpu-quota", "cpu", "quota", true),
        ("cpu-period", "cpu", "period", true),
        ("cpuset-cpus", "cpu", "cpus", false),
        ("cpuset-mems", "cpu", "mems", false),
        ("pids-limit", "pids", "limit", true),
        ("blkio-weight", "blockIO", "weight", true),
    ];
    match key {
        "resources" | "-r" => u.resources = Some(value("--resources")?.into()),
        "l3-cache-schema" | "mem-bw-schema" => {
            return Err(usage(format!(
                "update: --{key}: Intel RDT is not supported by this runtime"
            )))
        }
        name => {
            let Some(&(opt, section, key, numeric)) = FIELDS.iter().find(|f| f.0 == name) else {
                return Ok(false);
            };
            let flag = format!("--{opt}");
            let v = value(&flag)?;
            let v = if numeric {
                serde_json::Value::from(number::<i64>(v, &flag)?)
            } else {
                serde_json::Value::from(string(v, &flag)?)
            };
            u.values.push((section, key, v));
        }
    }
    Ok(true)
}

/// Checks the positional arguments of `cmd` and builds it.
fn finish(cmd: &str, mut a: Acc) -> Result<Cmd> {
    let mut pos = std::mem::take(&mut a.positional).into_iter();
    let mut id = |what: &str| -> Result<String> {
        pos.next()
            .ok_or_else(|| usage(format!("{cmd}: missing {what}")))
    };
    if !a.bundle_set {
        a.create.bundle = PathBuf::from(".");
    }
    let built = match cmd {
        "create" => {
            a.create.id = id("container ID")?;
            Cmd::Create(a.create)
        }
        "run" => {
            a.create.id = id("container ID")?;
            Cmd::Run {
                c: a.create,
                detach: a.detach,
                keep: a.keep,
            }
        }
        "start" => Cmd::Start {
            id: id("container ID")?,
        },
        "state" => Cmd::State {
            id: id("container ID")?,
        },
        "kill" => Cmd::Kill {
            id: id("container ID")?,
            signal: pos.next(),
            all: a.all,
        },
        "delete" => Cmd::Delete {
            force: a.force,
            id: id("container ID")?,
        },
        "exec" => {
            a.exec.id = id("container ID")?;
            a.exec.detach = a.detach;
            a.exec.args = a.trailing;
            Cmd::Exec(Box::new(a.exec))
        }
        "list" => Cmd::List {
            json: a.json,
            quiet: a.quiet,
        },
        "ps" => Cmd::Ps {
            json: a.json,
            id: id("container ID")?,
            ps_args: a.trailing,
        },
        "pause" => Cmd::Pause {
            id: id("container ID")?,
        },
        "resume" => Cmd::Resume {
            id: id("container ID")?,
        },
        "update" => {
            a.update.id = id("container ID")?;
            Cmd::Update(a.update)
        }
        "events" => Cmd::Events {
            id: id("container ID")?,
            stats: a.stats,
            interval: match &a.interval {
                Some(i) => berth_runtime::container::events::parse_interval(i)?,
                None => std::time::Duration::from_secs(5),
            },
        },
        "features" => Cmd::Features,
        "spec" => Cmd::Spec {
            bundle: a.create.bundle,
        },
        other => return Err(usage(format!("unknown command {other:?} (try --help)"))),
    };
    if let Some(extra) = pos.next() {
        return Err(usage(format!("{cmd}: unexpected argument {extra:?}")));
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<(Global, Cmd)> {
        match parse(args.iter().map(OsString::from))? {
            Parsed::Run(g, c) => Ok((g, c)),
            Parsed::Print(_) => panic!("help/version for {args:?}"),
        }
    }

    #[test]
    fn globals_anywhere_and_options_after_the_id() {
        let (g, c) = run(&[
            "create",
            "c1",
            "--root",
            "/r",
            "--bundle",
            "/b",
            "--pid-file=/p",
        ])
        .expect("parse");
        assert_eq!(g.root, PathBuf::from("/r"));
        match c {
            Cmd::Create(c) => {
                assert_eq!(c.id, "c1");
                assert_eq!(c.bundle, PathBuf::from("/b"));
                assert_eq!(c.pid_file, Some(PathBuf::from("/p")));
            }
            other => panic!("{other:?}"),
        }
        let (g, c) = run(&["--log-format", "json", "--debug", "run", "-d", "x"]).expect("parse");
        assert!(g.json_log && g.debug);
        assert!(
            matches!(c, Cmd::Run { detach: true, ref c, .. } if c.id == "x" && c.bundle.as_os_str() == ".")
        );
    }

    #[test]
    fn exec_takes_the_rest_as_the_command() {
        let (_, c) =
            run(&["exec", "-t", "--env", "A=1", "c1", "sh", "-c", "echo --tty"]).expect("parse");
        let Cmd::Exec(e) = c else { panic!("not exec") };
        assert!(e.tty);
        assert_eq!(e.env, vec!["A=1"]);
        assert_eq!(e.args, vec!["sh", "-c", "echo --tty"]);
    }

    #[test]
    fn kill_signal_and_update_values() {
        let (_, c) = run(&["kill", "--all", "c1", "KILL"]).expect("parse");
        assert!(
            matches!(c, Cmd::Kill { all: true, ref signal, .. } if signal.as_deref() == Some("KILL"))
        );
        let (_, c) =
            run(&["update", "--memory", "1048576", "--cpuset-cpus", "0", "c1"]).expect("parse");
        let Cmd::Update(u) = c else {
            panic!("not update")
        };
        assert_eq!(u.values.len(), 2);
        assert_eq!(u.values[0].2, serde_json::json!(1048576));
        // runc's --cpu-share and the realtime pair.
        let (_, c) = run(&[
            "update",
            "--cpu-share",
            "512",
            "--cpu-rt-runtime",
            "1000",
            "c1",
        ])
        .expect("parse");
        let Cmd::Update(u) = c else {
            panic!("not update")
        };
        assert_eq!(u.values[0].0, "cpu");
        assert_eq!(u.values[0].1, "shares");
        assert_eq!(u.values[1].1, "realtimeRuntime");
    }

    #[test]
    fn events_options_and_systemd_flag() {
        let (g, c) =
            run(&["--systemd-cgroup", "events", "--interval", "250ms", "c1"]).expect("parse");
        assert!(g.systemd_cgroup);
        assert!(matches!(c, Cmd::Events { stats: false, interval, .. }
            if interval == std::time::Duration::from_millis(250)));
        let (_, c) = run(&["events", "--stats", "c1"]).expect("parse");
        assert!(matches!(c, Cmd::Events { stats: true, .. }));
        let err = run(&["events", "--interval", "5", "c1"])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("--interval")));
        let err = run(&["update", "--l3-cache-schema", "x", "c1"])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("Intel RDT")));
    }

    #[test]
    fn bad_lines_name_what_is_wrong() {
        let msg = |args: &[&str]| run(args).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg(&["start"]).contains("start: missing container ID"));
        assert!(msg(&["create", "--bogus", "c"]).contains("create: unknown option --bogus"));
        assert!(msg(&["frobnicate", "c"]).contains("unknown command \"frobnicate\""));
        assert!(msg(&["--log-format", "xml", "list"]).contains("--log-format"));
        assert!(
            msg(&["create", "--preserve-fds", "x", "c"]).contains("--preserve-fds: invalid value")
        );
        assert!(msg(&["start", "a", "b"]).contains("unexpected argument \"b\""));
        assert!(msg(&["kill", "--force", "c"]).contains("kill: unknown option --force"));
        assert!(msg(&[]).contains("no command"));
        assert!(
            msg(&["checkpoint", "--image-path", "/x", "c"]).contains("checkpoint: not supported")
        );
    }
}
