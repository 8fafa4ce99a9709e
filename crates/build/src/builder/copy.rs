//! COPY and ADD: what they take (for the cache key) and the copy itself; and the commit of
//! the final image.

use super::{invalid, BuildError, Builder, Report, Stage, StepError};
use crate::backend::LayerRef;
use crate::config::ImageConfig;
use crate::context::{Ignore, SourceRoot};
use crate::fsroot::{clean, Owner, Root};
use crate::parse::{Args, Instruction, Keyword};
use crate::run;
use crate::steps::{copy_items, CopyOpts, Overlay, StepDir};
use crate::words;
use std::path::{Path, PathBuf};

/// A COPY/ADD with its words substituted.
#[derive(Debug)]
pub(super) struct CopySpec {
    pub flags: Vec<(String, String)>,
    pub srcs: Vec<String>,
    /// Absolute; a trailing `/` kept (it makes the destination a directory).
    pub dest: String,
    /// `--from`: the layers of that stage or image.
    pub from: Option<Vec<LayerRef>>,
    /// What the sources hash to (or the key of the stage they come from).
    pub inputs: String,
}

impl Builder<'_> {
    fn context(&mut self) -> Result<&SourceRoot, StepError> {
        if self.ctx.is_none() {
            let ignore = Ignore::load(&self.o.context)?;
            self.ctx = Some(SourceRoot::new(&self.o.context, ignore)?);
        }
        match &self.ctx {
            Some(c) => Ok(c),
            None => invalid("build context"),
        }
    }

    pub(super) fn copy_spec(
        &mut self,
        st: &Stage,
        ins: &Instruction,
        vars: &[(String, String)],
    ) -> Result<CopySpec, StepError> {
        let e = self.escape;
        let mut words = match &ins.args {
            Args::Json(v) => v
                .iter()
                .map(|w| words::expand(w, e, vars))
                .collect::<Result<Vec<_>, _>>()?,
            Args::Raw(r) => words::expand_words(r, e, vars)?,
        };
        if words.len() < 2 {
            return invalid(format!("{} needs a source and a destination", ins.keyword));
        }
        let dest_word = words.pop().unwrap_or_default();
        let srcs = words;
        if let Some(url) = srcs.iter().find(|s| s.contains("://")) {
            return invalid(format!(
                "{} from a URL ({url}) is not supported: builds have no network; download it \
                 into the build context and COPY it",
                ins.keyword
            ));
        }
        let dest = {
            let joined = Path::new(st.workdir()).join(&dest_word);
            let mut d = Path::new("/").join(clean(&joined)).display().to_string();
            if (dest_word.ends_with('/') || dest_word.ends_with("/.")) && !d.ends_with('/') {
                d.push('/');
            }
            d
        };
        let mut flags = Vec::new();
        for (k, v) in &ins.flags {
            flags.push((k.clone(), words::expand(v, e, vars)?));
        }
        let from_flag = flags
            .iter()
            .rev()
            .find(|(k, _)| k == "from")
            .map(|(_, v)| v.clone());
        let (from, inputs) = match from_flag {
            Some(f) => match self.find_stage(&f) {
                Some(s) => (Some(s.layers.clone()), format!("stage:{}", s.key.0)),
                None => {
                    let img = self
                        .backend
                        .image(&f)
                        .map_err(StepError::Backend)?
                        .ok_or_else(|| {
                            StepError::Invalid(format!(
                                "--from={f:?}: no such stage or local image"
                            ))
                        })?;
                    (Some(img.layers), format!("image:{}", img.id))
                }
            },
            None => {
                let ctx = self.context()?;
                let items = ctx.plan(&srcs, Path::new(&dest), dest.ends_with('/'))?;
                (None, ctx.hash_items(&items)?)
            }
        };
        Ok(CopySpec {
            flags,
            srcs,
            dest,
            from,
            inputs,
        })
    }

    pub(super) fn copy(
        &mut self,
        ins: &Instruction,
        spec: CopySpec,
        root: &Root,
        dir: &StepDir,
        rootfs: &Path,
    ) -> Result<(), StepError> {
        let flag = |n: &str| {
            spec.flags
                .iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v)
        };
        let owner = match flag("chown") {
            Some(c) => {
                let u = image::user::resolve(rootfs, c).map_err(run::RunError::from)?;
                Some(Owner {
                    uid: u.uid,
                    gid: u.gid,
                })
            }
            None => None,
        };
        let mode = match flag("chmod") {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        StepError::Invalid(format!("--chmod={m:?} is not an octal mode"))
                    })?,
            ),
            None => None,
        };
        let dest = PathBuf::from(&spec.dest);
        let dest_dir = spec.dest.ends_with('/') || root.is_dir(&dest);
        let opts = CopyOpts {
            owner,
            mode,
            extract: ins.keyword == Keyword::Add && spec.from.is_none(),
        };
        match &spec.from {
            None => {
                let ctx = self.context()?;
                let items = ctx.plan(&spec.srcs, &dest, dest_dir)?;
                copy_items(root, ctx, &items, opts)?;
            }
            Some(layers) => {
                let lowers = self
                    .backend
                    .layer_dirs(layers)
                    .map_err(StepError::Backend)?;
                let ov = Overlay::mount(&lowers, &dir.join("empty"), None, &dir.join("from"))?;
                let f = flag("from").map(String::as_str).unwrap_or("");
                let label = if self.find_stage(f).is_some() {
                    format!("stage {f:?}")
                } else {
                    format!("image {f:?}")
                };
                let src = SourceRoot::labelled(ov.path(), Ignore::default(), &label)?;
                let items = src.plan(&spec.srcs, &dest, dest_dir)?;
                copy_items(root, &src, &items, opts)?;
            }
        }
        Ok(())
    }

    /// Stores the final stage as the image and names it.
    pub(super) fn commit(&mut self, mut st: Stage) -> Result<Report, BuildError> {
        // Same final key, same config: a fully cached build keeps the image id it had
        // (unless SOURCE_DATE_EPOCH pins the time, which makes the config equal anyway).
        // Only if its layers are these very layers: a step run again (its cache entry
        // lost) need not make the same bytes.
        let reuse = !self.o.no_cache && self.o.source_date_epoch.is_none();
        let cached = reuse
            .then(|| self.cache.get_config(&st.key))
            .flatten()
            .filter(|b| {
                serde_json::from_slice::<ImageConfig>(b)
                    .is_ok_and(|c| c.rootfs.diff_ids == st.config.rootfs.diff_ids)
            });
        let bytes = match cached {
            Some(b) => b,
            None => {
                st.config.created = Some(self.created.clone());
                serde_json::to_vec(&st.config).map_err(BuildError::Config)?
            }
        };
        let id = self
            .backend
            .commit_image(&bytes, &st.layers, &self.o.tags)
            .map_err(BuildError::Backend)?;
        self.cache.put_config(&st.key, &bytes)?;
        if !self.o.tags.is_empty() {
            self.say(&format!("COMMIT {}", self.o.tags.join(", ")))?;
        }
        let size: u64 = st.layers.iter().map(|l| l.size).sum();
        self.say(&format!(
            "--> {} ({} in {} layers)",
            short(&id),
            super::human(size),
            st.layers.len()
        ))?;
        for t in &self.o.tags {
            self.say(&format!("Successfully tagged {t}"))?;
        }
        writeln!(self.out, "{id}").map_err(BuildError::Output)?;
        Ok(Report {
            image_id: id,
            steps: std::mem::take(&mut self.steps),
        })
    }
}

/// The first 12 hex digits of a digest.
pub(super) fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}
