//! Running lifecycle hooks (runtime-spec config.md "POSIX-platform Hooks"): the state JSON
//! on stdin, `args[0]` as argv[0], only the hook's `env` (a startContainer hook without one
//! gets the container process's, as runc's), and a timeout after which the hook is killed
//! and counts as failed.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `hooks` in order; the first failure stops the rest and is returned.
pub fn run_all(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
) -> Result<()> {
    run_all_with_env(kind, hooks, state, &[])
}

/// Like [`run_all`]; a hook without `env` gets `default_env`.
pub fn run_all_with_env(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
    default_env: &[String],
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let input = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        run_one(kind, h, &input, default_env)?;
    }
    Ok(())
}

/// Runs every hook of a kind whose failures are only warnings (poststart, poststop:
/// runtime.md says the remaining hooks and the lifecycle continue).
pub fn run_all_warn(kind: &'static str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) {
    let Some(hooks) = hooks else { return };
    let input = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        if let Err(e) = run_one(kind, h, &input, &[]) {
            crate::log::warn(&e.to_string());
        }
    }
}

fn run_one(kind: &'static str, h: &Hook, input: &[u8], default_env: &[String]) -> Result<()> {
    let err = |msg: String| Error::Hook {
        kind,
        path: h.path().clone(),
        msg,
    };
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().as_deref().unwrap_or(default_env) {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| err(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(input);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(err(format!("failed: {st}"))),
            Ok(None) => {}
            Err(e) => return Err(err(e.to_string())),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(format!(
                "timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
