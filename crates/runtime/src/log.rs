//! runc-compatible logging: `--log FILE` and `--log-format text|json`. conmon and podman
//! read the last error line of this file when a runtime verb fails, containerd's runc shim
//! the last `"level":"error"` entry of its JSON. On stderr each message is one line
//! `berth-runtime: error: …` (or `warning:`, `debug:`): the level word that tools scraping
//! a runtime's stderr look for, as in runc's `level=error` and crun's `error …` lines.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug)]
struct Sink {
    path: Option<std::path::PathBuf>,
    json: bool,
    debug: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Configures logging once, from the global flags.
pub fn init(path: Option<std::path::PathBuf>, json: bool, debug: bool) {
    let _ = SINK.set(Sink { path, json, debug });
}

fn emit(level: &str, msg: &str) {
    let sink = SINK.get();
    if let Some(Sink {
        path: Some(p),
        json,
        ..
    }) = sink
    {
        let line = if *json {
            serde_json::json!({"level": level, "msg": msg, "time": crate::state::now_rfc3339()})
                .to_string()
        } else {
            format!(
                "time=\"{}\" level={level} msg={msg:?}",
                crate::state::now_rfc3339()
            )
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    if level != "debug" || sink.is_some_and(|s| s.debug) {
        eprintln!("berth-runtime: {level}: {msg}");
    }
}

pub fn error(msg: &str) {
    emit("error", msg);
}

pub fn warn(msg: &str) {
    emit("warning", msg);
}

pub fn debug(msg: &str) {
    emit("debug", msg);
}
