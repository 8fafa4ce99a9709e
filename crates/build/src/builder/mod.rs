//! The builder: stages, steps, the cache and the `docker build`-like progress output.
//!
//! Each stage starts from `scratch`, a local image or an earlier stage. Metadata steps
//! (ENV, CMD, …) change the config; filesystem steps (RUN, COPY, ADD) add a layer each. A
//! step's cache key chains its parent's key (see `cache.rs`), so a change at step k makes
//! every later step of that stage run again while steps before k stay cached.

use crate::backend::{Backend, BackendError, LayerRef};
use crate::cache::{Cache, CacheError, Key};
use crate::config::{self, Healthcheck, History, ImageConfig};
use crate::context::{ContextError, SourceRoot};
use crate::diff::{self, DiffError};
use crate::fsroot::{clean, Owner, Root, RootError};
use crate::parse::{self, Args, Instruction, Keyword, ParseError};
use crate::run::{self, RunError};
use crate::steps::{self, CopyError, FsError, Overlay, StepDir};
use crate::words::{self, WordError};
use copy::CopySpec;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What to build and where to work.
#[derive(Debug, Clone)]
pub struct Options {
    /// The build context directory.
    pub context: PathBuf,
    /// The Containerfile's text.
    pub containerfile: String,
    /// `name[:tag]` names for the result (none: the image is known by its id only).
    pub tags: Vec<String>,
    /// `--build-arg K=V` in order.
    pub build_args: Vec<(String, String)>,
    /// `--target STAGE`: build up to this stage (name or index).
    pub target: Option<String>,
    pub no_cache: bool,
    /// Print only the image id; RUN output is shown only when the command fails.
    pub quiet: bool,
    /// `berth-runtime` and its state directory.
    pub runtime: PathBuf,
    pub runtime_state: PathBuf,
    /// Scratch space for step directories (on the store's filesystem).
    pub work_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// `SOURCE_DATE_EPOCH`: the `created` time of the image and its history (seconds since
    /// the epoch). Unset, it is now — except that a build whose every step is cached gets
    /// the config of the build that made it, so its image id does not change. Layer
    /// entries always get this time as mtime (0 when unset), so layers are reproducible
    /// either way.
    pub source_date_epoch: Option<u64>,
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub number: usize,
    pub text: String,
    pub cached: bool,
    pub layer: Option<LayerRef>,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct Report {
    pub image_id: String,
    pub steps: Vec<StepReport>,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Words(#[from] WordError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("image store")]
    Backend(#[source] BackendError),
    #[error("{0}")]
    Invalid(String),
}

/// A build error.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Containerfile {0}")]
    Parse(#[from] ParseError),
    #[error("Containerfile line {line}: {keyword}")]
    Step {
        line: usize,
        keyword: Keyword,
        #[source]
        source: StepError,
    },
    #[error("the Containerfile has no FROM")]
    NoFrom,
    #[error("target stage {0:?} not found")]
    NoTarget(String),
    #[error("image config")]
    Config(#[source] serde_json::Error),
    #[error("image store")]
    Backend(#[source] BackendError),
    #[error("build cache")]
    Cache(#[from] CacheError),
    #[error("output")]
    Output(#[source] io::Error),
}

mod copy;
#[cfg(test)]
mod tests;

fn invalid<T>(msg: impl Into<String>) -> Result<T, StepError> {
    Err(StepError::Invalid(msg.into()))
}

/// The state of one stage as its steps run.
#[derive(Debug, Clone)]
struct Stage {
    name: Option<String>,
    config: ImageConfig,
    layers: Vec<LayerRef>,
    key: Key,
    /// ARGs in scope (not part of the image).
    args: Vec<(String, String)>,
    /// Whether this stage set CMD itself (ENTRYPOINT resets an inherited CMD).
    cmd_set: bool,
}

impl Stage {
    fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// Variables for substitution: ARGs, then ENV (ENV wins).
    fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.args.clone();
        v.extend(self.config.config.env.iter().filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        }));
        v
    }

    fn workdir(&self) -> &str {
        st_workdir(&self.config.config)
    }

    fn shell(&self) -> Vec<String> {
        st_shell(&self.config.config)
    }
}

struct Builder<'a> {
    backend: &'a dyn Backend,
    o: &'a Options,
    out: &'a mut dyn Write,
    cache: Cache,
    escape: char,
    global_args: Vec<(String, String)>,
    stages: Vec<Stage>,
    steps: Vec<StepReport>,
    total: usize,
    seq: usize,
    /// The build context (opened at its first use).
    ctx: Option<SourceRoot>,
    /// The `created` time of this build (RFC 3339).
    created: String,
}

/// Human-readable size (`1.2 MB`).
pub fn human(n: u64) -> String {
    match n {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

/// Builds the image `o` describes, writing progress to `out`.
pub fn build(
    backend: &dyn Backend,
    o: &Options,
    out: &mut dyn Write,
) -> Result<Report, BuildError> {
    let cf = parse::parse(&o.containerfile)?;
    let first_from = cf
        .instructions
        .iter()
        .position(|i| i.keyword == Keyword::From)
        .ok_or(BuildError::NoFrom)?;
    // Split into stages: each FROM and the instructions up to the next one.
    let mut stages: Vec<Vec<&Instruction>> = Vec::new();
    for ins in &cf.instructions[first_from..] {
        if ins.keyword == Keyword::From {
            stages.push(Vec::new());
        }
        if let Some(s) = stages.last_mut() {
            s.push(ins);
        }
    }
    let target = match &o.target {
        None => stages.len() - 1,
        Some(t) => stages
            .iter()
            .position(|s| stage_name(s[0]).is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .or_else(|| t.parse::<usize>().ok().filter(|i| *i < stages.len()))
            .ok_or_else(|| BuildError::NoTarget(t.clone()))?,
    };
    let mut b = Builder {
        backend,
        o,
        out,
        cache: Cache::open(&o.cache_dir)?,
        escape: cf.escape,
        global_args: Vec::new(),
        stages: Vec::new(),
        steps: Vec::new(),
        total: stages[..=target].iter().map(Vec::len).sum(),
        seq: 0,
        ctx: None,
        created: config::rfc3339(o.source_date_epoch.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })),
    };
    for ins in &cf.instructions[..first_from] {
        if ins.keyword != Keyword::Arg {
            return Err(step_err(
                ins,
                StepError::Invalid("only ARG may come before the first FROM".into()),
            ));
        }
        let args = b.global_args.clone();
        let declared = b
            .declare_args(ins, &args, &[])
            .map_err(|e| step_err(ins, e))?;
        b.global_args.extend(declared);
    }
    let declared: Vec<&str> = cf
        .instructions
        .iter()
        .filter(|i| i.keyword == Keyword::Arg)
        .flat_map(|i| match &i.args {
            Args::Raw(r) => r.split_whitespace().collect::<Vec<_>>(),
            Args::Json(_) => Vec::new(),
        })
        .map(|w| w.split_once('=').map_or(w, |(k, _)| k))
        .collect();
    for (k, _) in &o.build_args {
        if !declared.contains(&k.as_str()) {
            b.say(&format!(
                "warning: build arg {k:?} is not used (the Containerfile has no ARG {k})"
            ))?;
        }
    }
    for stage in &stages[..=target] {
        b.stage(stage)?;
    }
    let final_stage = b.stages[target].clone();
    b.commit(final_stage)
}

fn step_err(ins: &Instruction, source: StepError) -> BuildError {
    BuildError::Step {
        line: ins.line,
        keyword: ins.keyword,
        source,
    }
}

/// The `AS name` of a FROM, if any.
fn stage_name(from: &Instruction) -> Option<String> {
    let words: Vec<&str> = match &from.args {
        Args::Raw(r) => r.split_whitespace().collect(),
        Args::Json(_) => return None,
    };
    match words.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
        _ => None,
    }
}

impl Builder<'_> {
    fn say(&mut self, line: &str) -> Result<(), BuildError> {
        if self.o.quiet {
            return Ok(());
        }
        writeln!(self.out, "{line}").map_err(BuildError::Output)
    }

    fn build_arg(&self, name: &str) -> Option<&str> {
        self.o
            .build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The (name, value) pairs an ARG declares: a `--build-arg` wins over the default,
    /// which wins over the value of a global ARG of that name; unset ones are left out.
    fn declare_args(
        &self,
        ins: &Instruction,
        vars: &[(String, String)],
        globals: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StepError> {
        let mut out = Vec::new();
        for w in words::expand_words(&ins.raw(), self.escape, vars)? {
            let (name, default) = match w.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty() {
                return invalid(format!("invalid ARG {w:?}"));
            }
            let value = self
                .build_arg(&name)
                .map(str::to_string)
                .or(default)
                .or_else(|| {
                    globals
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.clone())
                });
            if let Some(v) = value {
                out.push((name, v));
            }
        }
        Ok(out)
    }

    fn stage(&mut self, ins: &[&Instruction]) -> Result<(), BuildError> {
        let from = ins[0];
        self.seq += 1;
        self.say(&format!("STEP {}/{}: {}", self.seq, self.total, from.text))?;
        let mut stage = self.from(from).map_err(|e| step_err(from, e))?;
        self.steps.push(StepReport {
            number: self.seq,
            text: from.text.clone(),
            cached: false,
            layer: None,
        });
        for i in &ins[1..] {
            self.seq += 1;
            self.say(&format!("STEP {}/{}: {}", self.seq, self.total, i.text))?;
            let (cached, layer) = self.step(&mut stage, i).map_err(|e| step_err(i, e))?;
            if let Some(l) = &layer {
                let hex = l.digest.trim_start_matches("sha256:");
                let short = &hex[..hex.len().min(12)];
                let status = if cached { "CACHED " } else { "" };
                self.say(&format!("--> {status}{short} ({})", human(l.size)))?;
            }
            self.steps.push(StepReport {
                number: self.seq,
                text: i.text.clone(),
                cached,
                layer,
            });
        }
        self.stages.push(stage);
        Ok(())
    }

    fn from(&mut self, ins: &Instruction) -> Result<Stage, StepError> {
        let words = match &ins.args {
            Args::Raw(r) => words::expand_words(r, self.escape, self.global_args.as_slice())?,
            Args::Json(_) => return invalid("FROM takes an image, not a JSON array"),
        };
        let (image, name) = match words.as_slice() {
            [image] => (image.clone(), None),
            [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                (image.clone(), Some(name.clone()))
            }
            _ => return invalid(format!("FROM {:?}: expected IMAGE [AS NAME]", ins.raw())),
        };
        if let Some(n) = &name {
            if self
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(n.as_str()))
            {
                return invalid(format!("duplicate stage name {n:?}"));
            }
        }
        let mut stage = if image == "scratch" {
            Stage {
                name: None,
                config: ImageConfig::scratch(),
                layers: Vec::new(),
                key: self.base_key("scratch"),
                args: Vec::new(),
                cmd_set: false,
            }
        } else if let Some(s) = self.find_stage(&image) {
            s.clone()
        } else {
            let base = self
                .backend
                .image(&image)
                .map_err(StepError::Backend)?
                .ok_or_else(|| {
                    StepError::Invalid(format!(
                        "image {image:?} not found locally (berth build uses local images: \
                         `berth load` or `berth import` it first)"
                    ))
                })?;
            let config: ImageConfig = serde_json::from_slice(&base.config)
                .map_err(|e| StepError::Invalid(format!("config of image {image:?}: {e}")))?;
            Stage {
                name: None,
                config,
                layers: base.layers,
                key: self.base_key(&base.id),
                args: Vec::new(),
                cmd_set: false,
            }
        };
        stage.name = name;
        stage.args.clear();
        stage.cmd_set = false;
        Ok(stage)
    }

    /// The key a stage built on `what` starts from. The layers' mtime is part of it:
    /// the same steps under another SOURCE_DATE_EPOCH make other layers.
    fn base_key(&self, what: &str) -> Key {
        let mtime = self.o.source_date_epoch.unwrap_or(0);
        Key::base(&format!("{what} mtime={mtime}"))
    }

    fn find_stage(&self, name: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }

    /// Runs one step; returns whether it was cached and the layer it added.
    fn step(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
    ) -> Result<(bool, Option<LayerRef>), StepError> {
        let e = self.escape;
        let vars = st.vars();
        let c = &mut st.config.config;
        match ins.keyword {
            Keyword::From => return invalid("FROM inside a stage"),
            Keyword::Run | Keyword::Copy | Keyword::Add => return self.fs_step(st, ins),
            Keyword::Env => {
                let pairs = words::key_values(&ins.raw(), e, vars.as_slice())?;
                for (k, v) in &pairs {
                    c.env_set(k, v);
                }
            }
            Keyword::Arg => {
                let globals = self.global_args.clone();
                let declared = self.declare_args(ins, &vars, &globals)?;
                st.args.extend(declared);
            }
            Keyword::Workdir => {
                let w = words::expand(&ins.raw(), e, vars.as_slice())?;
                let joined = Path::new(st_workdir(c)).join(w);
                c.working_dir = Path::new("/").join(clean(&joined)).display().to_string();
            }
            Keyword::User => {
                c.user = words::expand(&ins.raw(), e, vars.as_slice())?;
            }
            Keyword::Cmd => {
                c.cmd = Some(command(&ins.args, &st_shell(c)));
                st.cmd_set = true;
            }
            Keyword::Entrypoint => {
                c.entrypoint = Some(command(&ins.args, &st_shell(c)));
                if !st.cmd_set {
                    c.cmd = None;
                }
            }
            Keyword::Shell => match &ins.args {
                Args::Json(v) if !v.is_empty() => c.shell = Some(v.clone()),
                _ => return invalid("SHELL needs a JSON array, e.g. SHELL [\"/bin/sh\", \"-c\"]"),
            },
            Keyword::Expose => {
                for p in words::expand_words(&ins.raw(), e, vars.as_slice())? {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    c.exposed_ports.insert(p, config::Empty {});
                }
            }
            Keyword::Label => {
                for (k, v) in words::key_values(&ins.raw(), e, vars.as_slice())? {
                    c.labels.insert(k, v);
                }
            }
            Keyword::Volume => {
                let vols = match &ins.args {
                    Args::Json(v) => v.clone(),
                    Args::Raw(r) => words::expand_words(r, e, vars.as_slice())?,
                };
                for v in vols {
                    c.volumes.insert(v, config::Empty {});
                }
            }
            Keyword::StopSignal => {
                c.stop_signal = words::expand(&ins.raw(), e, vars.as_slice())?;
            }
            Keyword::Healthcheck => c.healthcheck = Some(healthcheck(ins)?),
            Keyword::Maintainer => st.config.author = Some(ins.raw()),
        }
        // A metadata step is keyed by its effect on the config (substitutions included);
        // an ARG's value counts where it is used (RUN, or a substitution), not here.
        let effect = serde_json::to_string(&st.config.config)
            .map_err(|e| StepError::Invalid(format!("config: {e}")))?;
        st.key = st.key.step(&ins.text, &effect, &[]);
        st.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(ins.text.clone()),
            comment: None,
            empty_layer: true,
        });
        Ok((false, None))
    }

    /// RUN, COPY or ADD: a cached layer, or the step run on an overlay and diffed.
    fn fs_step(
        &mut self,
        st: &mut Stage,
        ins: &Instruction,
    ) -> Result<(bool, Option<LayerRef>), StepError> {
        let vars = st.vars();
        let mut copy: Option<CopySpec> = None;
        let (effective, inputs) = match ins.keyword {
            Keyword::Run => (ins.text.clone(), String::new()),
            _ => {
                let spec = self.copy_spec(st, ins, &vars)?;
                let inputs = spec.inputs.clone();
                let text = format!(
                    "{} {:?} {:?} {:?}",
                    ins.keyword, spec.flags, spec.srcs, spec.dest
                );
                copy = Some(spec);
                (text, inputs)
            }
        };
        // Build args reach a RUN as environment variables, so they are part of its key;
        // COPY and ADD see them only through substitution, which `effective` shows.
        let args: &[(String, String)] = if ins.keyword == Keyword::Run {
            &st.args
        } else {
            &[]
        };
        let key = st.key.step(&effective, &inputs, args);
        let mut chain = st.layers.clone();
        if !self.o.no_cache {
            if let Some(layer) = self.cache.get(&key) {
                chain.push(layer.clone());
                if self.backend.has_layer(&chain) {
                    st.key = key;
                    self.add_layer(st, ins, layer.clone());
                    return Ok((true, Some(layer)));
                }
                chain.pop();
            }
        }
        let dir = StepDir::new(
            &self.o.work_dir,
            &format!("{}-{}", std::process::id(), self.seq),
        )?;
        let lowers = self
            .backend
            .layer_dirs(&chain)
            .map_err(StepError::Backend)?;
        {
            let ov = Overlay::mount(
                &lowers,
                &dir.join("empty"),
                Some((&dir.join("upper"), &dir.join("work"))),
                &dir.join("merged"),
            )?;
            let root = Root::open(ov.path()).map_err(steps::at(ov.path()))?;
            root.mkdir_all(Path::new(st.workdir()), 0o755, Owner::default())?;
            match copy {
                None => self.run(st, ins, &dir, ov.path())?,
                Some(spec) => self.copy(ins, spec, &root, &dir, ov.path())?,
            }
        }
        let tar = dir.join("layer.tar");
        let mtime = self.o.source_date_epoch.unwrap_or(0);
        let l = diff::diff_upper(&dir.join("upper"), &tar, mtime)?;
        let layer = LayerRef::built(l.digest, l.size);
        self.backend
            .put_layer(&st.diff_ids(), &layer, &tar, &dir.join("upper"))
            .map_err(StepError::Backend)?;
        self.cache.put(&key, &layer)?;
        st.key = key;
        self.add_layer(st, ins, layer.clone());
        Ok((false, Some(layer)))
    }

    fn add_layer(&self, st: &mut Stage, ins: &Instruction, layer: LayerRef) {
        st.config.rootfs.diff_ids.push(layer.diff_id.clone());
        st.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(ins.text.clone()),
            comment: None,
            empty_layer: false,
        });
        st.layers.push(layer);
    }

    fn run(
        &mut self,
        st: &Stage,
        ins: &Instruction,
        dir: &StepDir,
        rootfs: &Path,
    ) -> Result<(), StepError> {
        let args = command(&ins.args, &st.shell());
        let c = &st.config.config;
        let user = image::user::resolve(rootfs, &c.user).map_err(run::RunError::from)?;
        let mut env = c.env.clone();
        for (k, v) in &st.args {
            if c.env_get(k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={}", config::DEFAULT_PATH));
        }
        let id = format!("berth-build-{}-{}", std::process::id(), self.seq);
        self.out
            .flush()
            .map_err(|e| StepError::Invalid(format!("output: {e}")))?;
        run::run(&run::RunSpec {
            runtime: &self.o.runtime,
            state: &self.o.runtime_state,
            bundle: &dir.join("bundle"),
            rootfs,
            id: &id,
            args,
            env,
            cwd: st.workdir(),
            user,
            quiet: self.o.quiet,
        })?;
        Ok(())
    }
}

/// The working directory of a config (`/` when unset).
fn st_workdir(c: &config::RunConfig) -> &str {
    match c.working_dir.as_str() {
        "" => "/",
        w => w,
    }
}

/// The SHELL of a config (`/bin/sh -c` when unset).
fn st_shell(c: &config::RunConfig) -> Vec<String> {
    c.shell
        .clone()
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// The argv of a RUN, CMD or ENTRYPOINT: the exec form as is, the shell form through the
/// stage's SHELL.
fn command(args: &Args, shell: &[String]) -> Vec<String> {
    match args {
        Args::Json(v) => v.clone(),
        Args::Raw(r) => {
            let mut v = shell.to_vec();
            v.push(r.clone());
            v
        }
    }
}

fn healthcheck(ins: &Instruction) -> Result<Healthcheck, StepError> {
    let raw = ins.raw();
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("none") {
        return Ok(Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        });
    }
    let Some(rest) = raw
        .strip_prefix("CMD")
        .or_else(|| raw.strip_prefix("cmd"))
        .map(str::trim_start)
    else {
        return invalid("HEALTHCHECK needs NONE or CMD …");
    };
    let test = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        Err(_) => vec!["CMD-SHELL".to_string(), rest.to_string()],
    };
    let dur = |name: &str| -> Result<u64, StepError> {
        match ins.flag(name) {
            None => Ok(0),
            Some(v) => config::parse_duration(v)
                .ok_or_else(|| StepError::Invalid(format!("--{name}={v:?} is not a duration"))),
        }
    };
    Ok(Healthcheck {
        test,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries: match ins.flag("retries") {
            None => 0,
            Some(v) => v
                .parse()
                .map_err(|_| StepError::Invalid(format!("--retries={v:?} is not a number")))?,
        },
    })
}
