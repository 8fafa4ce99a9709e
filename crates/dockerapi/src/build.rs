//! `POST /build`: the body is the build context as a tar (maybe compressed), unpacked as a
//! hostile layer is (image::apply: no path out of the directory, symlinks never followed
//! out of it, entries and bytes capped) into a directory of the store's, then built by a
//! child `berth build` (the builder needs a private mount namespace for its overlays, which
//! a child process gets without touching the server's). Its output becomes Docker's JSON
//! message stream: `{"stream": …}` lines, `{"aux": {"ID": …}}` at the end, or
//! `{"errorDetail": …, "error": …}` when it fails.
//!
//! The child-process stream ([`Child`]) also serves pull and push (pull.rs).

use super::{ApiError, ApiResult, LogStream};
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

type Query = BTreeMap<String, String>;

static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The `berth` binary (this server's own), with the engine's `--root` and `--runroot`.
pub(crate) fn berth(e: &engine::Engine) -> Result<Command, ApiError> {
    let exe = std::env::current_exe()
        .map_err(|x| ApiError::Internal(format!("find the berth binary: {x}")))?;
    let mut c = Command::new(exe);
    c.arg("--root")
        .arg(&e.root)
        .arg("--runroot")
        .arg(&e.runroot)
        .env("BERTH_RUNTIME", &e.runtime)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(c)
}

/// Removes what a killed server left in `dir`: the entries `PREFIX-PID-…` whose process is
/// gone (a live server's, this one's included, are kept).
pub(crate) fn clean_stale(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let p = ent.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => {
                    tracing::info!(path = %p.display(), "docker api: removed a dead server's leftover")
                }
                Err(x) => {
                    tracing::warn!(path = %p.display(), error = %x, "docker api: remove a leftover")
                }
            }
        }
    }
}

/// One JSON message line of Docker's stream.
pub(crate) fn message(v: &Value) -> Bytes {
    let mut b = v.to_string().into_bytes();
    b.push(b'\n');
    Bytes::from(b)
}

/// How a child's run is told to the client.
pub(crate) trait Report: Send + 'static {
    /// A line of the child's standard output or error.
    fn line(&mut self, line: &str, stderr: bool) -> Option<Value>;
    /// The last messages: `ok` whether the child succeeded, `err` its last error line.
    fn end(&mut self, ok: bool, err: &str) -> Vec<Value>;
}

/// Runs `cmd` on a blocking thread, its lines made messages by `r`, streamed as the body;
/// `cleanup` runs when it is over.
pub(crate) fn stream_child(
    mut cmd: Command,
    mut r: impl Report,
    cleanup: impl FnOnce() + Send + 'static,
) -> ApiResult {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(x) => {
            cleanup();
            return Err(ApiError::Internal(format!("start berth: {x}")));
        }
    };
    let out = child.stdout.take();
    let err = child.stderr.take();
    tokio::task::spawn_blocking(move || {
        let (ltx, lrx) = std::sync::mpsc::channel::<(String, bool)>();
        let readers: Vec<_> = [(
            out.map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            false,
        )]
        .into_iter()
        .chain([(
            err.map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            true,
        )])
        .filter_map(|(p, is_err)| {
            let p = p?;
            let ltx = ltx.clone();
            Some(std::thread::spawn(move || {
                for l in BufReader::new(p).lines() {
                    let Ok(l) = l else { break };
                    if ltx.send((l, is_err)).is_err() {
                        break;
                    }
                }
            }))
        })
        .collect();
        drop(ltx);
        let mut last_err = String::new();
        let mut gone = false;
        for (l, is_err) in lrx {
            if is_err && !l.trim().is_empty() {
                last_err = l.clone();
            }
            if let Some(m) = r.line(&l, is_err) {
                if !gone && tx.blocking_send(message(&m)).is_err() {
                    // The client went away: the child runs to its end (a build or pull
                    // half done is the builder's and the store's to clean).
                    gone = true;
                }
            }
        }
        for t in readers {
            let _ = t.join();
        }
        let ok = child.wait().map(|s| s.success()).unwrap_or(false);
        for m in r.end(ok, &last_err) {
            let _ = tx.blocking_send(message(&m));
        }
        cleanup();
    });
    let body = axum::body::Body::from_stream(LogStream(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Docker's error message of a failed child: its last error line without berth's prefix.
pub(crate) fn error_message(err: &str, what: &str) -> Value {
    let m = err
        .trim()
        .trim_start_matches("berth: ")
        .trim_start_matches("Error: ");
    let m = if m.is_empty() {
        format!("{what} failed")
    } else {
        m.to_string()
    };
    json!({"errorDetail": {"message": m}, "error": m})
}

struct BuildReport {
    quiet: bool,
    last: String,
}

impl Report for BuildReport {
    fn line(&mut self, line: &str, stderr: bool) -> Option<Value> {
        if !stderr {
            self.last = line.trim().to_string();
        }
        // The image ID (the builder's last line) goes in the final `aux` message.
        let hex = line.trim().trim_start_matches("sha256:");
        if self.quiet || (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())) {
            return None;
        }
        // berth's `STEP 1/3: FROM x` in Docker's words (`Step 1/3 : FROM x`).
        let text = match line.strip_prefix("STEP ").and_then(|r| r.split_once(": ")) {
            Some((n, rest)) => format!("Step {n} : {rest}"),
            None => line.to_string(),
        };
        Some(json!({"stream": format!("{text}\n")}))
    }

    fn end(&mut self, ok: bool, err: &str) -> Vec<Value> {
        if !ok {
            return vec![error_message(err, "the build")];
        }
        // The builder's last line is the image ID.
        let hex = self.last.trim_start_matches("sha256:");
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut v = vec![json!({"aux": {"ID": format!("sha256:{hex}")}})];
            if !self.quiet {
                v.push(json!({"stream": format!("Successfully built {}\n", &hex[..12])}));
            }
            v
        } else {
            vec![error_message(
                "the builder printed no image ID",
                "the build",
            )]
        }
    }
}

/// A JSON object query parameter (`buildargs`, `labels`) as a map of strings.
fn json_map(q: &Query, k: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match q.get(k).filter(|s| !s.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(s) => {
            let v: Value = serde_json::from_str(s)
                .map_err(|x| ApiError::BadRequest(format!("invalid {k} {s:?}: {x}")))?;
            let mut m = BTreeMap::new();
            for (key, val) in v
                .as_object()
                .ok_or_else(|| ApiError::BadRequest(format!("invalid {k}: not an object")))?
            {
                match val {
                    // A null build arg is one taken from the environment: the server's is
                    // not the client's, so it is left out.
                    Value::Null => {}
                    Value::String(x) => {
                        m.insert(key.clone(), x.clone());
                    }
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "invalid {k}: {key:?} is not a string"
                        )))
                    }
                }
            }
            Ok(m)
        }
    }
}

/// The repeated `t` parameters of the raw query.
fn tags(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "t")
        .map(|(_, v)| super::decode(v))
        .filter(|v| !v.is_empty())
        .collect()
}

/// Reads the Dockerfile at the relative `name` of the context `ctx`, refusing a path out of
/// it and any symlink on the way (the context is the client's).
fn read_dockerfile(ctx: &Path, name: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("dockerfile {name:?}: {why}"));
    let mut p = ctx.to_path_buf();
    let mut n = 0;
    for c in Path::new(name).components() {
        match c {
            std::path::Component::Normal(x) => {
                p.push(x);
                n += 1;
                let md = std::fs::symlink_metadata(&p)
                    .map_err(|_| bad("not found in the build context"))?;
                if md.file_type().is_symlink() {
                    return Err(bad("a symlink in the build context is not followed"));
                }
            }
            std::path::Component::CurDir => {}
            _ => return Err(bad("must be a relative path inside the build context")),
        }
    }
    if n == 0 {
        return Err(bad("empty path"));
    }
    let md = std::fs::metadata(&p).map_err(|_| bad("not found in the build context"))?;
    if !md.is_file() || md.len() > 1 << 20 {
        return Err(bad("not a regular file of at most 1 MiB"));
    }
    std::fs::read_to_string(&p).map_err(|x| bad(&x.to_string()))
}

/// A `LABEL` instruction for the API's `labels` (double-quoted, escaped).
fn label_line(labels: &BTreeMap<String, String>) -> Result<String, ApiError> {
    let q = |s: &str| -> Result<String, ApiError> {
        if s.contains(['\n', '\r']) {
            return Err(ApiError::BadRequest(format!(
                "labels: {s:?} has a line break"
            )));
        }
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    };
    let mut l = String::from("LABEL");
    for (k, v) in labels {
        l.push_str(&format!(" {}={}", q(k)?, q(v)?));
    }
    Ok(l)
}

/// `POST /build`.
pub(crate) fn build(e: &engine::Engine, q: &Query, raw: Option<&str>, body: &Bytes) -> ApiResult {
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::BadRequest(
            "build: a remote context is not supported (send the context as the body)".into(),
        ));
    }
    let build_args = json_map(q, "buildargs")?;
    let labels = json_map(q, "labels")?;
    let target = q.get("target").filter(|t| !t.is_empty()).cloned();
    if !labels.is_empty() && target.is_some() {
        return Err(ApiError::BadRequest(
            "build: labels with a target stage are not supported".into(),
        ));
    }
    let tags = tags(raw);
    for t in &tags {
        image::normalize_name(t)
            .map_err(|x| ApiError::BadRequest(format!("invalid tag {t:?}: {x}")))?;
    }
    let quiet = super::flag(q, "q");
    clean_stale(&e.root.join("build"), "api");
    let dir = e.root.join("build").join(format!(
        "api-{}-{}",
        std::process::id(),
        BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let ctx = dir.join("context");
    std::fs::create_dir_all(&ctx)
        .map_err(|x| ApiError::Internal(format!("create {}: {x}", ctx.display())))?;
    let cleanup_dir = dir.clone();
    let cleanup = move || {
        let _ = std::fs::remove_dir_all(&cleanup_dir);
    };
    let prepared = (|| -> Result<Command, ApiError> {
        let limits = image::apply::Caps::from_env()
            .map_err(|x| ApiError::Internal(format!("limits: {x}")))?
            .limits(u64::MAX);
        image::apply::apply_layer(&body[..], &ctx, image::apply::Whiteouts::Remove, &limits)
            .map_err(|x| ApiError::BadRequest(format!("the build context: {x}")))?;
        let name = q
            .get("dockerfile")
            .filter(|d| !d.is_empty())
            .map_or("Dockerfile", |d| d);
        let mut text = read_dockerfile(&ctx, name)?;
        if !labels.is_empty() {
            text.push('\n');
            text.push_str(&label_line(&labels)?);
            text.push('\n');
        }
        let file: PathBuf = dir.join("Dockerfile");
        std::fs::write(&file, text)
            .map_err(|x| ApiError::Internal(format!("write {}: {x}", file.display())))?;
        let mut cmd = berth(e)?;
        cmd.arg("build").arg("-f").arg(&file);
        for t in &tags {
            cmd.arg("-t").arg(t);
        }
        for (k, v) in &build_args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if let Some(t) = &target {
            cmd.arg("--target").arg(t);
        }
        if super::flag(q, "nocache") {
            cmd.arg("--no-cache");
        }
        cmd.arg("--").arg(&ctx);
        Ok(cmd)
    })();
    let cmd = match prepared {
        Ok(c) => c,
        Err(x) => {
            cleanup();
            return Err(x);
        }
    };
    tracing::info!(tags = ?tags, "docker api: build");
    stream_child(
        cmd,
        BuildReport {
            quiet,
            last: String::new(),
        },
        cleanup,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_leftovers_of_dead_servers_go() {
        let dir = std::env::temp_dir().join(format!("dockerapi-stale-{}", std::process::id()));
        let dead = dir.join("api-4294967295-0");
        let live = dir.join(format!("api-{}-0", std::process::id()));
        let other = dir.join("tmp");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        clean_stale(&dir, "api");
        assert!(!dead.exists() && live.exists() && other.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn repeated_tags_are_all_kept() {
        assert_eq!(
            tags(Some("t=a%3A1&q=1&t=b&t=")),
            vec!["a:1".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn labels_are_quoted() {
        let l: BTreeMap<String, String> = [("a.b".to_string(), "x \"y\"".to_string())].into();
        assert_eq!(label_line(&l).expect("valid"), r#"LABEL "a.b"="x \"y\"""#);
        let nl: BTreeMap<String, String> = [("k".to_string(), "a\nb".to_string())].into();
        assert!(label_line(&nl).is_err());
    }

    #[test]
    fn steps_read_as_dockers() {
        let mut r = BuildReport {
            quiet: false,
            last: String::new(),
        };
        assert_eq!(
            r.line("STEP 1/2: FROM busybox", false),
            Some(json!({"stream": "Step 1/2 : FROM busybox\n"}))
        );
        let id = "a".repeat(64);
        r.line(&id, false);
        assert_eq!(
            r.end(true, "")[0],
            json!({"aux": {"ID": format!("sha256:{id}")}})
        );
        assert_eq!(
            r.end(false, "berth: step 2 failed")[0]["error"],
            json!("step 2 failed")
        );
    }
}
