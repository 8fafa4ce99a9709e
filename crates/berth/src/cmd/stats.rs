//! `berth stats [--no-stream] [-a] [CONTAINER…]`: Docker's live table of CPU %, memory
//! use / limit, MEM %, network and block I/O and PIDs (engine::stats; cgroup v1 or v2).

use crate::Globals;
use anyhow::{bail, Result};
use engine::stats::Row;
use std::io::Write;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show every container (default: running ones).
    #[arg(short, long)]
    all: bool,
    /// Print one sample and exit (default: refresh every second).
    #[arg(long)]
    no_stream: bool,
    /// `table` (default) or `json` (one object per container per sample).
    #[arg(long, default_value = "table")]
    format: String,
    /// Containers (names or IDs; default: every running one).
    containers: Vec<String>,
}

/// Go's `%.*g`: `digits` significant digits, no trailing zeros.
fn sig(v: f64, digits: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's memory sizes (binary: `1.5MiB`).
pub fn binary_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig(v, 4), units[i])
}

/// Docker's I/O sizes (decimal, 3 digits: `12.3kB`).
pub fn decimal_size(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig(v, 3), units[i])
}

pub(crate) fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<15}{:<20}{:<10}{:<22}{:<10}{:<20}{:<20}PIDS\n",
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O"
    );
    for r in rows {
        let n = &r.now;
        s.push_str(&format!(
            "{:<15}{:<20}{:<10}{:<22}{:<10}{:<20}{:<20}{}\n",
            r.container.short_id(),
            r.container.name,
            format!("{:.2}%", r.cpu_percent),
            format!(
                "{} / {}",
                binary_size(n.mem_usage),
                binary_size(n.mem_limit)
            ),
            format!("{:.2}%", r.mem_percent),
            format!("{} / {}", decimal_size(n.net_rx), decimal_size(n.net_tx)),
            format!(
                "{} / {}",
                decimal_size(n.blk_read),
                decimal_size(n.blk_write)
            ),
            n.pids
        ));
    }
    s
}

pub(crate) fn json(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        let n = &r.now;
        let v = serde_json::json!({
            "ID": r.container.short_id(),
            "Container": r.container.id,
            "Name": r.container.name,
            "CPUPerc": format!("{:.2}%", r.cpu_percent),
            "MemUsage": format!("{} / {}", binary_size(n.mem_usage), binary_size(n.mem_limit)),
            "MemPerc": format!("{:.2}%", r.mem_percent),
            "NetIO": format!("{} / {}", decimal_size(n.net_rx), decimal_size(n.net_tx)),
            "BlockIO": format!("{} / {}", decimal_size(n.blk_read), decimal_size(n.blk_write)),
            "PIDs": n.pids.to_string(),
            "MemUsageBytes": n.mem_usage,
            "MemLimitBytes": n.mem_limit,
            "CPUNanoseconds": n.cpu_ns,
        });
        s.push_str(&v.to_string());
        s.push('\n');
    }
    s
}

pub fn run(g: &Globals, a: Args) -> Result<()> {
    let render: fn(&[Row]) -> String = match a.format.as_str() {
        "table" => table,
        "json" => json,
        f => bail!("--format {f:?}: expected table or json"),
    };
    let e = g.engine()?;
    let mut prev: Option<(Vec<engine::stats::Sample>, std::time::Instant)> = None;
    loop {
        let list = if a.containers.is_empty() {
            e.list(a.all)?
        } else {
            a.containers
                .iter()
                .map(|c| e.inspect(c))
                .collect::<Result<Vec<_>, _>>()?
        };
        let previous = prev.as_ref().map(|(s, t)| (s.as_slice(), *t));
        let (rows, samples, t) = e.stats(&list, previous, Duration::from_millis(500))?;
        let text = render(&rows);
        let mut out = std::io::stdout().lock();
        if a.no_stream {
            out.write_all(text.as_bytes())?;
            return Ok(());
        }
        // Clear the screen and redraw, as Docker does on a terminal.
        if out
            .write_all(format!("\x1b[2J\x1b[H{text}").as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(()); // the reader went away
        }
        drop(out);
        prev = Some((samples, t));
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(decimal_size(12_345), "12.3kB");
        assert_eq!(decimal_size(648), "648B");
    }
}
