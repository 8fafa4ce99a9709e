//! Admission: a container started with `--memory`/`--cpus` reserves that much of the node
//! while it runs, and a start that does not fit is refused, naming what is free and who
//! holds the rest ("needs 512MiB memory, 256MiB of 1GiB free; reserved by web, db").
//!
//! The node's capacity is its memory (`MemTotal` of /proc/meminfo) and CPUs, unless
//! `berth system capacity` set other figures (the `capacity` table). Reservations are rows
//! of `reservations` (this module's tables, made by [`init`] when the database is opened).
//! The check and the reservation are one `BEGIN IMMEDIATE` transaction, so two concurrent
//! starts cannot both take the last slot.
//!
//! A reservation counts while its container is running (or restarting, paused), and while
//! its start is under way: it has not started since the reservation was taken, no start
//! error was recorded and the reservation is younger than [`STARTING_GRACE`]. So a failed
//! start, an exit or a removal frees it without anyone having to remember to.

use crate::container::Engine;
use crate::db::Container;
use crate::error::{Error, Result};
use crate::invalid;
use rusqlite::{params, OptionalExtension, Transaction};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS capacity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    memory INTEGER,
    cpus REAL
);
CREATE TABLE IF NOT EXISTS reservations (
    container TEXT PRIMARY KEY,
    memory INTEGER NOT NULL,
    cpus REAL NOT NULL,
    taken REAL NOT NULL,
    started_before TEXT NOT NULL
);
";

/// How long a reservation of a container that has not started yet holds.
pub const STARTING_GRACE: Duration = Duration::from_secs(120);

/// Creates this module's tables (called where the database is opened).
pub fn init(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// The node's capacity, what is reserved and by whom.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    pub memory: u64,
    pub cpus: f64,
    /// Whether the figures were set by `system capacity` (else the host's).
    pub memory_set: bool,
    pub cpus_set: bool,
    pub reserved_memory: u64,
    pub reserved_cpus: f64,
    /// (container name, memory, cpus).
    pub holders: Vec<(String, u64, f64)>,
}

impl Usage {
    pub fn free_memory(&self) -> u64 {
        self.memory.saturating_sub(self.reserved_memory)
    }
    pub fn free_cpus(&self) -> f64 {
        (self.cpus - self.reserved_cpus).max(0.0)
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The CPUs this process may run on.
pub fn host_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// `512MiB`, `1GiB`, `1.5GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if (v - v.round()).abs() < 0.005 {
        format!("{}{}", v.round() as u64, UNITS[u])
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

fn cpus_str(c: f64) -> String {
    let s = format!("{c:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// What the container asks for: (memory bytes, cpus); None if neither.
fn demand(c: &Container) -> Result<Option<(u64, f64)>> {
    let mem = match &c.spec.opts.memory {
        Some(m) => crate::spec::parse_bytes(m)?.max(0) as u64,
        None => 0,
    };
    let cpus = c.spec.opts.cpus.unwrap_or(0.0);
    Ok((mem > 0 || cpus > 0.0).then_some((mem, cpus)))
}

/// Reads capacity and the reservations that count, in `tx`; `except` is left out.
fn usage_in(tx: &Transaction<'_>, except: &str) -> rusqlite::Result<Usage> {
    let (memory, cpus): (Option<i64>, Option<f64>) = tx
        .query_row("SELECT memory, cpus FROM capacity WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .unwrap_or((None, None));
    // Rows of containers that are gone, or that no longer hold anything, go.
    let now = now_secs();
    let grace = STARTING_GRACE.as_secs_f64();
    let holds = "(c.state IN ('running', 'restarting', 'paused') \
                 OR (c.started = r.started_before AND c.error = '' AND r.taken > ?1 - ?2 \
                     AND c.state != 'removing'))";
    tx.execute(
        &format!(
            "DELETE FROM reservations WHERE container NOT IN (SELECT c.id FROM containers c \
             JOIN reservations r ON r.container = c.id WHERE {holds})"
        ),
        params![now, grace],
    )?;
    let mut st = tx.prepare(&format!(
        "SELECT c.name, r.memory, r.cpus FROM reservations r JOIN containers c \
         ON r.container = c.id WHERE {holds} AND c.id != ?3 ORDER BY c.name"
    ))?;
    let holders = st
        .query_map(params![now, grace, except], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<(String, u64, f64)>>>()?;
    Ok(Usage {
        memory: memory.map_or_else(host_memory, |m| m.max(0) as u64),
        cpus: cpus.unwrap_or_else(host_cpus),
        memory_set: memory.is_some(),
        cpus_set: cpus.is_some(),
        reserved_memory: holders.iter().map(|h| h.1).sum(),
        reserved_cpus: holders.iter().map(|h| h.2).sum(),
        holders,
    })
}

impl Engine {
    /// The node's capacity, reservations and what is free.
    pub fn capacity(&self) -> Result<Usage> {
        // Reconcile first: a container whose monitor died holds nothing.
        self.list(true)?;
        self.db()?.write(|tx| usage_in(tx, ""))
    }

    /// Sets (Some(Some)), resets to the host's (Some(None)) or keeps (None) the figures.
    pub fn set_capacity(
        &self,
        memory: Option<Option<u64>>,
        cpus: Option<Option<f64>>,
    ) -> Result<Usage> {
        if let Some(Some(c)) = cpus {
            if !(c > 0.0 && c.is_finite()) {
                return Err(invalid!("--cpus {c}: must be more than 0"));
            }
        }
        self.db()?.write(|tx| {
            tx.execute("INSERT OR IGNORE INTO capacity (id) VALUES (1)", [])?;
            if let Some(m) = memory {
                tx.execute(
                    "UPDATE capacity SET memory = ?1 WHERE id = 1",
                    [m.map(|m| m as i64)],
                )?;
            }
            if let Some(c) = cpus {
                tx.execute("UPDATE capacity SET cpus = ?1 WHERE id = 1", [c])?;
            }
            Ok(())
        })?;
        self.capacity()
    }

    /// Reserves what `c` asks for, or refuses it ([`Error::Capacity`]) naming what is free
    /// and who holds the rest: the check and the reservation in one transaction.
    pub fn admit(&self, c: &Container) -> Result<()> {
        let Some((mem, cpus)) = demand(c)? else {
            return Ok(());
        };
        // Reconcile first: a container whose monitor died holds nothing.
        self.list(true)?;
        let refusal = self.db()?.write(|tx| {
            let u = usage_in(tx, &c.id)?;
            let mut short = Vec::new();
            if mem > u.free_memory() {
                short.push(format!(
                    "{} memory, {} of {} free",
                    human(mem),
                    human(u.free_memory()),
                    human(u.memory)
                ));
            }
            if cpus > u.free_cpus() + 1e-9 {
                short.push(format!(
                    "{} CPUs, {} of {} free",
                    cpus_str(cpus),
                    cpus_str(u.free_cpus()),
                    cpus_str(u.cpus)
                ));
            }
            if !short.is_empty() {
                let by: Vec<&str> = u.holders.iter().map(|h| h.0.as_str()).collect();
                let by = if by.is_empty() {
                    "nothing reserved".to_string()
                } else {
                    format!("reserved by {}", by.join(", "))
                };
                return Ok(Some(format!(
                    "container {} does not fit: needs {}; {by}",
                    c.name,
                    short.join(" and needs ")
                )));
            }
            tx.execute(
                "INSERT OR REPLACE INTO reservations (container, memory, cpus, taken, started_before) \
                 VALUES (?1, ?2, ?3, ?4, (SELECT started FROM containers WHERE id = ?1))",
                params![c.id, mem as i64, cpus, now_secs()],
            )?;
            Ok(None)
        })?;
        match refusal {
            Some(msg) => Err(Error::Capacity(msg)),
            None => {
                tracing::debug!(container = %c.id, memory = mem, cpus, "reserved");
                Ok(())
            }
        }
    }

    /// `start`, queued while the container does not fit (`--wait`): retried until it does,
    /// or until `timeout` has passed (forever without one).
    pub fn start_waiting(&self, reference: &str, timeout: Option<Duration>) -> Result<Container> {
        let begin = Instant::now();
        let mut logged = false;
        loop {
            match self.start(reference) {
                Err(Error::Capacity(msg)) => {
                    if timeout.is_some_and(|t| begin.elapsed() >= t) {
                        return Err(Error::Capacity(format!(
                            "{msg} (waited {}s)",
                            begin.elapsed().as_secs()
                        )));
                    }
                    if !logged {
                        tracing::info!(container = reference, "waiting for capacity: {msg}");
                        logged = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                r => return r,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512 << 20), "512MiB");
        assert_eq!(human(1 << 30), "1GiB");
        assert_eq!(human(3 << 29), "1.50GiB");
        assert_eq!(cpus_str(0.5), "0.5");
        assert_eq!(cpus_str(2.0), "2");
        assert!(host_memory() > 0);
    }
}
