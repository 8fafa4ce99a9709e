//! `berth system capacity [--memory SIZE|host] [--cpus N|host]` and `berth system info`:
//! the node's capacity for admission, what is reserved and free (engine::admission).

use crate::Globals;
use anyhow::{bail, Result};
use engine::admission::{human, Usage};

#[derive(clap::Args, Debug)]
pub struct CapacityArgs {
    /// Memory the node offers (`4g`), or `host` for the host's MemTotal.
    #[arg(long)]
    memory: Option<String>,
    /// CPUs the node offers (`2.5`), or `host` for the host's count.
    #[arg(long)]
    cpus: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    format: String,
}

fn print(u: &Usage, format: &str) -> Result<()> {
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "Capacity": {"Memory": u.memory, "CPUs": u.cpus,
                             "MemorySet": u.memory_set, "CPUsSet": u.cpus_set},
                "Reserved": {"Memory": u.reserved_memory, "CPUs": u.reserved_cpus},
                "Free": {"Memory": u.free_memory(), "CPUs": u.free_cpus()},
                "Reservations": u.holders.iter().map(|(n, m, c)| serde_json::json!(
                    {"Container": n, "Memory": m, "CPUs": c})).collect::<Vec<_>>(),
            }))?
        ),
        "table" => {
            let src = |set: bool| if set { "set" } else { "host" };
            println!(
                "{:<10} {:>12} {:>12} {:>12}",
                "", "CAPACITY", "RESERVED", "FREE"
            );
            println!(
                "{:<10} {:>12} {:>12} {:>12}  ({})",
                "Memory",
                human(u.memory),
                human(u.reserved_memory),
                human(u.free_memory()),
                src(u.memory_set)
            );
            println!(
                "{:<10} {:>12} {:>12} {:>12}  ({})",
                "CPUs",
                u.cpus,
                u.reserved_cpus,
                u.free_cpus(),
                src(u.cpus_set)
            );
            for (n, m, c) in &u.holders {
                println!("reserved by {n}: {} memory, {c} CPUs", human(*m));
            }
        }
        f => bail!("unknown --format {f:?} (table or json)"),
    }
    Ok(())
}

pub fn capacity(g: &Globals, a: CapacityArgs) -> Result<()> {
    let e = g.engine()?;
    let memory = match a.memory.as_deref() {
        None => None,
        Some("host") => Some(None),
        Some(m) => Some(Some(engine::spec::parse_bytes(m)? as u64)),
    };
    let cpus = match a.cpus.as_deref() {
        None => None,
        Some("host") => Some(None),
        Some(c) => Some(Some(c.parse::<f64>().map_err(|_| {
            anyhow::anyhow!("--cpus {c:?}: not a number (or `host`)")
        })?)),
    };
    let u = if memory.is_none() && cpus.is_none() {
        e.capacity()?
    } else {
        e.set_capacity(memory, cpus)?
    };
    print(&u, "table")
}

pub fn info(g: &Globals, a: InfoArgs) -> Result<()> {
    print(&g.engine()?.capacity()?, &a.format)
}
