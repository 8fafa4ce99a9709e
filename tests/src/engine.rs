//! Helpers of the engine's end-to-end tests (tests/engine*.rs): a store with a busybox
//! image whose engine pods and containers are force-removed when the test ends.

use crate::images::*;
use crate::*;
use serde_json::Value;
use std::time::Duration;

/// A store whose engine pods and containers are all force-removed when the test ends.
pub struct Eng {
    pub s: Store,
}

impl Eng {
    pub fn new(name: &str) -> Eng {
        let mut s = Store::new(&format!("engine-{name}"));
        // Containers join the default network: made inside a namespace of the test's.
        s.netns = Some(crate::net::NetNs::new("eng"));
        s.import_busybox("busybox");
        Eng { s }
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.s.berth(args)
    }

    /// `run -d ARGS…`: the new container's id.
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        let out = self.berth(&a);
        out.ok();
        let id = out.stdout.trim().to_string();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "run -d printed no id:\n{out}"
        );
        id
    }

    pub fn inspect(&self, c: &str) -> Value {
        let out = self.berth(&["inspect", c]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).expect("inspect prints JSON");
        v[0].clone()
    }

    /// `ps -a --no-trunc --format json`: one object per line (Docker's `{{json .}}`).
    pub fn ps_all(&self) -> Vec<Value> {
        let out = self.berth(&["ps", "-a", "--no-trunc", "--format", "json"]);
        out.ok();
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("ps line {l:?}: {e}")))
            .collect()
    }

    /// Polls inspect until `f` holds (or fails the test after `limit`).
    #[track_caller]
    pub fn until(&self, c: &str, limit: Duration, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let got = poll(limit, || {
            last = self.inspect(c);
            f(&last).then(|| last.clone())
        });
        got.unwrap_or_else(|| panic!("container {c} never got {what}; last inspect: {last:#}"))
    }
}

impl Drop for Eng {
    fn drop(&mut self) {
        // Pods first (members, then the infra a plain `rm` refuses), then what is left.
        let pods = self.s.berth(&["pod", "ls", "-q", "--no-trunc"]);
        for id in pods.stdout.split_whitespace() {
            let _ = self.s.berth(&["pod", "rm", "-f", id]);
        }
        let out = self.s.berth(&["ps", "-a", "-q"]);
        for id in out.stdout.split_whitespace() {
            let _ = self.s.berth(&["rm", "-f", id]);
        }
    }
}

pub fn monitor_pids(id: &str) -> Vec<i32> {
    pids_with_cmdline("berth-monitor")
        .into_iter()
        .filter(|(_, c)| c.contains(id))
        .map(|(p, _)| p)
        .collect()
}

/// Everything of container `id` left on the host: processes, mounts, cgroups, its dir.
pub fn host_leftovers(e: &Eng, id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for (p, c) in pids_with_cmdline(id) {
        left.push(format!("process {p}: {c}"));
    }
    for m in host_mounts() {
        if m.mount_point.contains(id) {
            left.push(format!("mount {}", m.mount_point));
        }
    }
    for mp in cgroup_mount_points() {
        let d = mp.join("berth").join(id);
        if d.exists() {
            left.push(format!("cgroup {}", d.display()));
        }
    }
    let dir = e.s.root().join("containers").join(id);
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left
}
