//! `GET /events`: Docker's event stream (JSON objects, one a line).
//!
//! The engine is daemonless: containers change under `berth` commands as well as through
//! this API. While a client listens, a poller diffs `list(all)` every 200 ms and turns
//! what changed into events (create, start, die, pause, unpause, rename, destroy); what
//! only the API sees (stop, kill, exec_create, exec_start, exec_die) is published by the
//! request that did it. A `since` in the past is answered from what was seen before (a
//! ring of recent events) plus the create, start and die times the engine keeps for each
//! container.

use crate::{epoch_param, ApiError, ApiResult};
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use engine::types::State;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    pub typ: &'static str,
    pub action: String,
    pub id: String,
    pub attrs: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub nanos: i128,
}

impl Event {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attrs},
            "scope": "local",
            "time": (self.nanos / 1_000_000_000) as i64,
            "timeNano": self.nanos as i64,
        });
        if self.typ == "container" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            v["from"] = json!(self.attrs.get("image").cloned().unwrap_or_default());
        }
        v
    }

    /// The action without its detail (`exec_start: sh` → `exec_start`).
    fn verb(&self) -> &str {
        self.action.split(':').next().unwrap_or("")
    }
}

/// Recent events, oldest first.
const RING: usize = 4096;
static HISTORY: LazyLock<Mutex<VecDeque<Event>>> = LazyLock::new(Default::default);
static BUS: LazyLock<tokio::sync::broadcast::Sender<Event>> =
    LazyLock::new(|| tokio::sync::broadcast::channel(1024).0);
static POLLING: AtomicBool = AtomicBool::new(false);

fn publish(ev: Event) {
    tracing::debug!(action = %ev.action, id = %ev.id, "docker api: event");
    {
        let mut h = HISTORY.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() >= RING {
            h.pop_front();
        }
        h.push_back(ev.clone());
    }
    let _ = BUS.send(ev);
}

fn attrs(c: &engine::Container, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = c.spec.labels.clone().into_iter().collect();
    a.insert("name".into(), c.name.clone());
    a.insert("image".into(), c.image.clone());
    for (k, v) in extra {
        a.insert((*k).into(), (*v).into());
    }
    a
}

/// Publishes a container event happening now.
pub fn container(c: &engine::Container, action: &str, extra: &[(&str, &str)]) {
    publish(Event {
        typ: "container",
        action: action.into(),
        id: c.id.clone(),
        attrs: attrs(c, extra),
        nanos: engine::logfiles::now_nanos(),
    });
}

fn time_of(t: &str) -> Option<i128> {
    engine::logfiles::parse_time(t)
}

/// What the poller compares.
#[derive(Clone, PartialEq)]
struct Seen {
    state: State,
    name: String,
    started: String,
}

fn event_at(
    c: &engine::Container,
    action: &str,
    nanos: Option<i128>,
    extra: &[(&str, &str)],
) -> Event {
    Event {
        typ: "container",
        action: action.into(),
        id: c.id.clone(),
        attrs: attrs(c, extra),
        nanos: nanos.unwrap_or_else(engine::logfiles::now_nanos),
    }
}

fn die(c: &engine::Container) -> Event {
    let code = c.exit_code.unwrap_or(0).to_string();
    event_at(c, "die", time_of(&c.finished), &[("exitCode", &code)])
}

/// The events between two looks at a container (`before` None: it is new).
fn diff(before: Option<&(Seen, engine::Container)>, c: &engine::Container) -> Vec<Event> {
    let now = Seen {
        state: c.state,
        name: c.name.clone(),
        started: c.started.clone(),
    };
    let mut out = Vec::new();
    let Some((b, old)) = before else {
        out.push(event_at(c, "create", time_of(&c.created), &[]));
        if c.state.is_active() || !c.started.is_empty() {
            out.push(event_at(c, "start", time_of(&c.started), &[]));
        }
        if !c.state.is_active() && !c.finished.is_empty() {
            out.push(die(c));
        }
        return out;
    };
    if b.name != now.name {
        out.push(event_at(c, "rename", None, &[("oldName", &old.name)]));
    }
    let was = b.state.is_active();
    let is = now.state.is_active();
    if b.started != now.started && !now.started.is_empty() {
        // Started again (maybe it died in between, unseen).
        if was && old.finished != c.finished {
            out.push(die(c));
        }
        out.push(event_at(c, "start", time_of(&c.started), &[]));
    }
    if was && !is {
        out.push(die(c));
    }
    match (b.state, now.state) {
        (State::Running, State::Paused) => out.push(event_at(c, "pause", None, &[])),
        (State::Paused, State::Running) => out.push(event_at(c, "unpause", None, &[])),
        _ => {}
    }
    out
}

/// Diffs the engine's containers every 200 ms while anyone listens.
fn ensure_poller(e: &engine::Engine) {
    if POLLING.swap(true, Ordering::SeqCst) {
        return;
    }
    let e = e.clone();
    tokio::spawn(async move {
        let mut seen: HashMap<String, (Seen, engine::Container)> = HashMap::new();
        let mut first = true;
        loop {
            let e2 = e.clone();
            let list = tokio::task::spawn_blocking(move || e2.list(true)).await;
            if let Ok(Ok(list)) = list {
                let mut next = HashMap::new();
                for c in list {
                    if !first {
                        for ev in diff(seen.get(&c.id), &c) {
                            publish(ev);
                        }
                    }
                    let s = Seen {
                        state: c.state,
                        name: c.name.clone(),
                        started: c.started.clone(),
                    };
                    next.insert(c.id.clone(), (s, c));
                }
                if !first {
                    for (id, (_, c)) in &seen {
                        if !next.contains_key(id) {
                            if c.state.is_active() {
                                publish(event_at(c, "die", None, &[]));
                            }
                            publish(event_at(c, "destroy", None, &[]));
                        }
                    }
                }
                seen = next;
                first = false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if BUS.receiver_count() == 0 {
                POLLING.store(false, Ordering::SeqCst);
                // A listener that came just now found the flag set: keep going for it.
                if BUS.receiver_count() == 0 || POLLING.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        }
    });
}

/// Docker's `filters` for events: `{"type": [...], "container": [...], "event": [...],
/// "label": [...], "image": [...]}` (lists, or the older `{"x": true}` maps).
#[derive(Default, Debug)]
pub struct Filter(crate::filters::Filters);

impl Filter {
    pub fn parse(s: Option<&str>) -> Result<Filter, ApiError> {
        crate::filters::parse(s, &["type", "container", "event", "label", "image"]).map(Filter)
    }

    pub fn matches(&self, ev: &Event) -> bool {
        self.0.iter().all(|(k, vals)| {
            vals.is_empty()
                || vals.iter().any(|v| match k.as_str() {
                    "type" => v == ev.typ,
                    "event" => v == ev.verb() || v == &ev.action,
                    "container" => {
                        ev.typ == "container"
                            && (ev.id.starts_with(v.as_str()) || ev.attrs.get("name") == Some(v))
                    }
                    "image" => ev.attrs.get("image") == Some(v),
                    "label" => crate::filters::label_matches(&ev.attrs, v),
                    _ => false,
                })
        })
    }
}

/// What happened between `since` and `until`: the ring's events and, for containers the
/// ring does not cover, their create, start and die times.
fn replay(list: &[engine::Container], since: i128, until: i128) -> Vec<Event> {
    let mut evs: Vec<Event> = HISTORY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|e| e.nanos >= since && e.nanos <= until)
        .cloned()
        .collect();
    let have: HashSet<(String, String)> = evs
        .iter()
        .map(|e| (e.id.clone(), e.verb().to_string()))
        .collect();
    for c in list {
        for ev in diff(None, c) {
            if ev.nanos >= since
                && ev.nanos <= until
                && !have.contains(&(ev.id.clone(), ev.verb().to_string()))
            {
                evs.push(ev);
            }
        }
    }
    evs.sort_by_key(|e| e.nanos);
    evs
}

fn line(ev: &Event) -> Bytes {
    let mut b = serde_json::to_vec(&ev.to_json()).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `GET /events?since&until&filters`.
pub async fn get(e: engine::Engine, q: BTreeMap<String, String>) -> ApiResult {
    let since = epoch_param(&q, "since")?;
    let until = epoch_param(&q, "until")?;
    let filter = Filter::parse(q.get("filters").map(String::as_str))?;
    let now = engine::logfiles::now_nanos();
    let live = until.is_none_or(|u| u > now);
    // Subscribed before the replay is read: nothing falls between the two.
    let mut rx = live.then(|| {
        let rx = BUS.subscribe();
        ensure_poller(&e);
        rx
    });
    let past = match since {
        Some(s) if s <= now => {
            let e2 = e.clone();
            let list = crate::blocking(move || Ok(e2.list(true)?)).await?;
            replay(&list, s, until.unwrap_or(now).min(now))
        }
        _ => vec![],
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut sent: HashSet<(String, String, i128)> = HashSet::new();
        for ev in past.iter().filter(|ev| filter.matches(ev)) {
            sent.insert((ev.id.clone(), ev.action.clone(), ev.nanos));
            if tx.send(line(ev)).await.is_err() {
                return;
            }
        }
        let Some(rx) = rx.as_mut() else { return };
        let deadline = until.map(|u| {
            let left = u.saturating_sub(engine::logfiles::now_nanos()).max(0);
            tokio::time::Instant::now() + Duration::from_nanos(left as u64)
        });
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
                _ = tx.closed() => return,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            if since.is_some_and(|s| ev.nanos < s)
                || sent.contains(&(ev.id.clone(), ev.action.clone(), ev.nanos))
                || !filter.matches(&ev)
            {
                continue;
            }
            if tx.send(line(&ev)).await.is_err() {
                return;
            }
        }
    });
    let body = axum::body::Body::from_stream(crate::LogStream(body_rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let f = Filter::parse(Some(
            r#"{"type":["container"],"event":["start","die"],"label":["a=b"]}"#,
        ))
        .expect("valid");
        let mut ev = Event {
            typ: "container",
            action: "start".into(),
            id: "abc".into(),
            attrs: BTreeMap::from([("a".to_string(), "b".to_string())]),
            nanos: 1,
        };
        assert!(f.matches(&ev));
        ev.action = "create".into();
        assert!(!f.matches(&ev));
        assert!(Filter::parse(Some(r#"{"bogus":["x"]}"#)).is_err());
        let old = Filter::parse(Some(r#"{"container":{"abc":true}}"#)).expect("old form");
        assert!(old.matches(&ev));
    }
}
