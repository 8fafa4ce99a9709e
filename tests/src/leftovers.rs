//! What a container may leave behind (state, cgroups, mounts, processes).

use super::*;

/// The mount points of every cgroup (v1 and v2) hierarchy of the host.
pub fn cgroup_mount_points() -> Vec<PathBuf> {
    host_mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.mount_point))
        .collect()
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.chars().next()
}

/// Pids (not zombies) whose command line contains `needle`, other than ours.
pub fn pids_with_cmdline(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) && proc_state(pid) != Some('Z') {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Everything of container `id` (of bundle `b`) still on the host; empty when clean.
pub fn leftovers(b: &Bundle, id: &str, pid: Option<i32>) -> Vec<String> {
    let mut left = Vec::new();
    let state_dir = b.state_root().join(id);
    if state_dir.exists() {
        left.push(format!("state dir {}", state_dir.display()));
    }
    let cg = b.cgroups_path();
    let cg = cg.trim_start_matches('/');
    if !cg.is_empty() {
        for mp in cgroup_mount_points() {
            let d = mp.join(cg);
            if d.exists() {
                left.push(format!("cgroup dir {}", d.display()));
            }
        }
    }
    let bundle = b.dir_str();
    for m in host_mounts() {
        if m.mount_point.contains(&bundle) {
            left.push(format!("mount at {}", m.mount_point));
        }
    }
    if !id.is_empty() {
        for (p, cmdline) in pids_with_cmdline(id) {
            left.push(format!("process {p}: {cmdline}"));
        }
    }
    if let Some(pid) = pid {
        if let Some(st) = proc_state(pid) {
            if st != 'Z' {
                left.push(format!("container init {pid} still alive (state {st})"));
            }
        }
    }
    left
}

/// Asserts (allowing up to 3 s for processes to die) that container `id` left nothing
/// behind: no state dir under the root, no cgroup dir under any hierarchy, no mount whose
/// path contains the bundle dir, no process with the id in its command line, and the init
/// `pid` (if given) gone.
#[track_caller]
pub fn assert_no_leftovers(b: &Bundle, id: &str, pid: Option<i32>) {
    let mut last = Vec::new();
    let clean = poll(Duration::from_secs(3), || {
        last = leftovers(b, id, pid);
        last.is_empty().then_some(())
    });
    assert!(
        clean.is_some(),
        "container {id:?} left things behind:\n  {}",
        last.join("\n  ")
    );
}

/// Asserts the state root holds no container at all.
#[track_caller]
pub fn assert_state_root_empty(b: &Bundle) {
    let entries: Vec<String> = fs::read_dir(b.state_root())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        entries.is_empty(),
        "state root {} is not empty: {entries:?}",
        b.state_root().display()
    );
}
