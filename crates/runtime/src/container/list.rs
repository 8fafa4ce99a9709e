//! `list` and `ps`.

use crate::error::{Context, Result};
use crate::state::{self, Store};

/// The OCI states of every container.
pub fn list(store: &Store) -> Vec<serde_json::Value> {
    store
        .ids()
        .iter()
        .filter_map(|id| store.load(id).ok())
        .map(|st| st.oci(state::status(store, &st)))
        .collect()
}

/// Pids of every process in the container.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let st = store.load(id)?;
    let mut p = super::cgroup_of(&st)?.pids()?;
    p.sort_unstable();
    Ok(p)
}

/// `ps` table output: the host's `ps` filtered to the container's pids.
pub fn ps_table(pids: &[i32], args: &[String]) -> Result<String> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx(|| "run ps".into())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .unwrap_or(1);
    let mut s = format!("{header}\n");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            s.push_str(l);
            s.push('\n');
        }
    }
    Ok(s)
}
