//! `GET /containers/{id}/stats?stream&one-shot`: Docker's `StatsJSON` from the engine's
//! samples (engine::stats: cgroup v1 or v2, the container's /proc/<pid>/net/dev).
//!
//! The client computes the CPU percentage as Docker's CLI does: (container CPU delta /
//! system CPU delta) × online CPUs × 100, from `cpu_stats` and `precpu_stats`; the system
//! figure is /proc/stat's `cpu` line in nanoseconds. One sample a second when streaming;
//! without `stream`, two a second apart (`precpu_stats` filled) unless `one-shot`.

use crate::{flag, ApiResult, Json};
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use engine::stats::Sample;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The host's CPU time (all CPUs, every state) in nanoseconds: /proc/stat's `cpu` line, in
/// clock ticks of 1/100 s (USER_HZ).
fn system_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            let l = t.lines().find(|l| l.starts_with("cpu "))?;
            Some(
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse::<u64>().ok())
                    .sum::<u64>()
                    .saturating_mul(10_000_000),
            )
        })
        .unwrap_or(0)
}

fn online_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// A sample with the time and the host's CPU figure taken with it.
#[derive(Clone, Default)]
struct Taken {
    s: Sample,
    system: u64,
    at: String,
}

fn take(c: &engine::Container) -> Taken {
    Taken {
        s: engine::stats::sample(c),
        system: system_cpu_ns(),
        at: runtime::state::now_rfc3339(),
    }
}

fn cpu(t: &Taken) -> Value {
    json!({
        "cpu_usage": {"total_usage": t.s.cpu_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": t.system,
        "online_cpus": online_cpus(),
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

fn stats_json(c: &engine::Container, now: &Taken, pre: Option<&Taken>) -> Value {
    let zero = "0001-01-01T00:00:00Z";
    let blk = |op: &str, v: u64| json!({"major": 0, "minor": 0, "op": op, "value": v});
    json!({
        "id": c.id,
        "name": format!("/{}", c.name),
        "read": now.at,
        "preread": pre.map_or(zero.to_string(), |p| p.at.clone()),
        "pids_stats": {"current": now.s.pids},
        "blkio_stats": {
            "io_service_bytes_recursive": [blk("Read", now.s.blk_read), blk("Write", now.s.blk_write)],
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(now),
        "precpu_stats": pre.map_or_else(|| json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}}), cpu),
        "memory_stats": {"usage": now.s.mem_usage, "limit": now.s.mem_limit, "stats": {}},
        "networks": {"eth0": {
            "rx_bytes": now.s.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": now.s.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }},
    })
}

/// `GET /containers/{id}/stats`.
pub async fn get(e: engine::Engine, id: String, q: BTreeMap<String, String>) -> ApiResult {
    let stream = q.get("stream").is_none_or(|_| flag(&q, "stream"));
    let one_shot = flag(&q, "one-shot");
    let c = crate::blocking(move || Ok(e.inspect(&id)?)).await?;
    if !stream {
        let v = tokio::task::spawn_blocking(move || {
            let first = take(&c);
            if one_shot {
                return stats_json(&c, &first, None);
            }
            std::thread::sleep(Duration::from_secs(1));
            stats_json(&c, &take(&c), Some(&first))
        })
        .await
        .map_err(|x| crate::ApiError::Internal(format!("stats: {x}")))?;
        return Ok(Json(v).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut pre: Option<Taken> = None;
        loop {
            let c2 = c.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || take(&c2)).await else {
                return;
            };
            let mut b = serde_json::to_vec(&stats_json(&c, &now, pre.as_ref())).unwrap_or_default();
            b.push(b'\n');
            if tx.send(Bytes::from(b)).await.is_err() {
                return;
            }
            pre = Some(now);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    let body = axum::body::Body::from_stream(crate::LogStream(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
