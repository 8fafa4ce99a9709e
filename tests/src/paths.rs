//! Where things are: the workspace, the runtime under test, unique names.

use super::*;

/// The workspace directory (the parent of this package).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The runtime under test: `$BERTH_RUNTIME`, else `<workspace>/target/debug/berth-runtime`.
/// The path is absolute (podman needs that).
pub fn runtime_bin() -> PathBuf {
    let path = match std::env::var_os("BERTH_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_dir().join("target/debug/berth-runtime"),
    };
    if !path.is_file() {
        panic!(
            "berth-runtime not built: run `cargo build --workspace` first, or set BERTH_RUNTIME \
             (looked for {})",
            path.display()
        );
    }
    fs::canonicalize(&path).unwrap_or(path)
}

/// Whether the runtime under test is runc (a few tests note runc's known differences).
pub fn runtime_is_runc() -> bool {
    runtime_bin().file_name().is_some_and(|n| n == "runc")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A suffix unique within this machine for the life of this process: `<pid>-<n>`.
pub fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A unique container id: `t-<name>-<pid>-<n>`.
pub fn unique_id(name: &str) -> String {
    format!("t-{name}-{}", unique_suffix())
}
