//! `berth vm ls`: the VMs under the state root and what their monitors say.

use anyhow::Result;
use std::path::Path;
use std::time::Duration;
use vmm::api::{request, VmmAction, VmmData};
use vmm::state;

pub fn run(root: &Path) -> Result<()> {
    println!(
        "{:<24} {:<8} {:>4} {:>10} {:>8}",
        "NAME", "STATE", "CPUS", "MEMORY", "PID"
    );
    for e in state::list(root)? {
        let (cpus, mem, pid) = match &e.record {
            Some(r) => (
                r.config.cpus.to_string(),
                format!("{}MiB", r.config.memory_mib),
                r.pid.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let st = if !e.alive() {
            "gone".to_string()
        } else {
            match request(&e.socket(), &VmmAction::Describe, Duration::from_secs(5)) {
                Ok(VmmData::Info(i)) => i.state,
                _ => "unknown".into(),
            }
        };
        println!(
            "{:<24} {:<8} {:>4} {:>10} {:>8}",
            e.name, st, cpus, mem, pid
        );
    }
    Ok(())
}
