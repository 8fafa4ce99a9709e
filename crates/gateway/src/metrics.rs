//! The gateway's Prometheus metrics (text exposition format 0.0.4): invocations by function
//! and status, a duration histogram per function, cold starts; queue depth and instances
//! are read from the pools when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the duration histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    invocations: BTreeMap<(String, u16), u64>,
    durations: BTreeMap<String, Hist>,
    cold_starts: BTreeMap<String, u64>,
}

/// Counters shared by every request.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A pool's gauges at scrape time.
pub struct PoolGauges {
    pub name: String,
    pub instances: usize,
    pub busy: usize,
    pub queued: u32,
    pub starting: u32,
    /// Whether a prepared spare waits for the next cold start.
    pub spare_ready: bool,
}

/// Escapes a label value (exposition format: backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One answered invocation of `function`.
    pub fn invocation(&self, function: &str, status: u16, took: Duration) {
        let mut m = self.lock();
        *m.invocations
            .entry((function.to_string(), status))
            .or_default() += 1;
        let h = m.durations.entry(function.to_string()).or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn cold_start(&self, function: &str) {
        *self
            .lock()
            .cold_starts
            .entry(function.to_string())
            .or_default() += 1;
    }

    /// Invocations of `function`, every status.
    pub fn invocation_count(&self, function: &str) -> u64 {
        self.lock()
            .invocations
            .iter()
            .filter(|((f, _), _)| f == function)
            .map(|(_, n)| n)
            .sum()
    }

    /// The exposition text.
    pub fn render(&self, pools: &[PoolGauges]) -> String {
        let m = self.lock();
        let mut s = String::new();
        let _ = writeln!(s, "# HELP berth_function_invocations_total Invocations answered, by function and HTTP status.");
        let _ = writeln!(s, "# TYPE berth_function_invocations_total counter");
        for ((f, code), n) in &m.invocations {
            let _ = writeln!(
                s,
                "berth_function_invocations_total{{function=\"{}\",code=\"{code}\"}} {n}",
                label(f)
            );
        }
        let _ = writeln!(s, "# HELP berth_function_duration_seconds Time from request to response, queueing and cold start included.");
        let _ = writeln!(s, "# TYPE berth_function_duration_seconds histogram");
        for (f, h) in &m.durations {
            let f = label(f);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "berth_function_duration_seconds_bucket{{function=\"{f}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                s,
                "berth_function_duration_seconds_bucket{{function=\"{f}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                s,
                "berth_function_duration_seconds_sum{{function=\"{f}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "berth_function_duration_seconds_count{{function=\"{f}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(s, "# HELP berth_function_cold_starts_total Instances started for a request or to keep --min warm.");
        let _ = writeln!(s, "# TYPE berth_function_cold_starts_total counter");
        for (f, n) in &m.cold_starts {
            let _ = writeln!(
                s,
                "berth_function_cold_starts_total{{function=\"{}\"}} {n}",
                label(f)
            );
        }
        type Gauge = fn(&PoolGauges) -> u64;
        let gauges: [(&str, &str, Gauge); 5] = [
            (
                "berth_function_instances",
                "Instances running (idle or busy).",
                |p| p.instances as u64,
            ),
            (
                "berth_function_instances_busy",
                "Instances with a request in flight.",
                |p| p.busy as u64,
            ),
            (
                "berth_function_instances_starting",
                "Instances being started.",
                |p| u64::from(p.starting),
            ),
            (
                "berth_function_spare_ready",
                "1 when the next cold start has a prepared instance (a zygote while the function has instances).",
                |p| u64::from(p.spare_ready),
            ),
            (
                "berth_function_queue_depth",
                "Requests waiting for an instance.",
                |p| u64::from(p.queued),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} gauge");
            for p in pools {
                let _ = writeln!(s, "{name}{{function=\"{}\"}} {}", label(&p.name), value(p));
            }
        }
        s
    }
}

/// The persisted async queue (crate::queue) by function and state: queued, inflight, dead.
pub fn render_async(depth: &[(String, String, u64)]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP berth_function_async_calls Async calls in the persisted queue, by state."
    );
    let _ = writeln!(s, "# TYPE berth_function_async_calls gauge");
    for (f, state, n) in depth {
        let _ = writeln!(
            s,
            "berth_function_async_calls{{function=\"{}\",state=\"{}\"}} {n}",
            label(f),
            label(state)
        );
    }
    s
}
