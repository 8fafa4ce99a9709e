//! The async invocations' queue (`POST /async-function/NAME`), at least once: a call is
//! persisted before the gateway answers 202 — its body in a file under
//! `<root>/functions/async/` (written to a temporary name, fsync'd, renamed, the directory
//! fsync'd), its row in `<root>/functions.db` table `async_calls` (one transaction) — and
//! deleted only once its result was delivered (the `X-Callback-Url` POST got a 2xx, or the
//! call ran when there is no callback).
//!
//! A row is `queued` (due at `next_at`), `inflight` (taken by a worker until `lease_until`)
//! or `dead` (out of attempts; kept, with its last error, for `GET /system/async/NAME`).
//! A gateway that starts takes back every call left `inflight` by one that died
//! ([`Queue::recover`]); an expired lease is taken again too. A call's result is kept with
//! its row once it ran (`result_status`, the body in `<id>.out`), so a failed callback is
//! retried without running the function again.

use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `POST /async-function/NAME` queues.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCall {
    pub id: String,
    pub function: String,
    pub method: String,
    /// Below `/async-function/NAME` (at least `/`).
    pub path: String,
    pub query: Option<String>,
    /// Header names and raw values (values need not be UTF-8).
    pub headers: Vec<(String, Vec<u8>)>,
    pub callback: Option<String>,
}

/// A call a worker took.
#[derive(Debug)]
pub struct Call {
    pub call: NewCall,
    pub body: Vec<u8>,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// The result of an earlier attempt whose callback failed: (status, body).
    pub result: Option<(u16, Vec<u8>)>,
}

/// One row as `GET /system/async/NAME` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CallInfo {
    pub id: String,
    pub function: String,
    pub state: String,
    pub attempts: u32,
    pub callback: Option<String>,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub result_status: Option<u16>,
}

/// The queue: a connection to `functions.db` and the body directory.
pub struct Queue {
    conn: Connection,
    dir: PathBuf,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The wait before attempt `attempts + 1`: 1 s, doubling, at most 60 s.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(6);
    Duration::from_secs((1u64 << exp).min(60))
}

fn io(what: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", what.display()))
}

/// Writes `data` to `path` durably: a temporary name in the same directory, fsync, rename,
/// fsync of the directory.
fn write_durable(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(data).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// A call id names files: only `[0-9a-z-]`.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
    {
        return Err(Error::Invalid(format!(
            "async call id {id:?}: not a call id"
        )));
    }
    Ok(())
}

impl Queue {
    /// Opens (creating) the table in `<root>/functions.db` and `<root>/functions/async/`.
    pub fn open(root: &Path) -> Result<Queue> {
        let dir = root.join("functions").join("async");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let conn = crate::store::connect(root)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS async_calls (
                 id            TEXT PRIMARY KEY NOT NULL,
                 function      TEXT NOT NULL,
                 method        TEXT NOT NULL,
                 path          TEXT NOT NULL,
                 query         TEXT,
                 headers       TEXT NOT NULL,
                 callback      TEXT,
                 state         TEXT NOT NULL,
                 attempts      INTEGER NOT NULL DEFAULT 0,
                 created       INTEGER NOT NULL,
                 next_at       INTEGER NOT NULL,
                 lease_until   INTEGER NOT NULL DEFAULT 0,
                 last_error    TEXT,
                 result_status INTEGER
             );
             CREATE INDEX IF NOT EXISTS async_calls_due ON async_calls (state, next_at);",
        )?;
        Ok(Queue { conn, dir })
    }

    fn body_name(id: &str) -> String {
        format!("{id}.body")
    }

    fn out_name(id: &str) -> String {
        format!("{id}.out")
    }

    /// Persists `call` and its body: the body file first (durable), then the row in one
    /// transaction. When this returns `Ok` the call survives a crash.
    pub fn enqueue(&mut self, call: &NewCall, body: &[u8]) -> Result<()> {
        check_id(&call.id)?;
        let name = Self::body_name(&call.id);
        write_durable(&self.dir, &name, body)?;
        let headers =
            serde_json::to_string(&call.headers).map_err(|e| Error::Invalid(e.to_string()))?;
        let now = now_ms();
        let r = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO async_calls
                     (id, function, method, path, query, headers, callback, state, created, next_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?8)",
                params![
                    call.id,
                    call.function,
                    call.method,
                    call.path,
                    call.query,
                    headers,
                    call.callback,
                    now
                ],
            )?;
            tx.commit()?;
            Ok(())
        })();
        if r.is_err() {
            let _ = std::fs::remove_file(self.dir.join(&name));
        }
        r
    }

    /// Takes back the calls a dead gateway left in flight (they are due now). Returns how
    /// many.
    pub fn recover(&mut self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE async_calls SET state = 'queued', next_at = 0, lease_until = 0
             WHERE state = 'inflight'",
            [],
        )?)
    }

    /// Takes up to `limit` due calls (queued and due, or in flight with an expired lease),
    /// oldest first, marking them in flight until now + `lease(function)`, in one
    /// transaction; then reads their bodies. A call whose body file is gone is dead.
    pub fn claim(&mut self, limit: usize, lease: impl Fn(&str) -> Duration) -> Result<Vec<Call>> {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        type Row = (NewCall, String, u32, Option<u16>);
        let mut rows: Vec<Row> = Vec::new();
        {
            let mut st = tx.prepare(
                "SELECT id, function, method, path, query, headers, callback, attempts, result_status
                 FROM async_calls
                 WHERE (state = 'queued' AND next_at <= ?1)
                    OR (state = 'inflight' AND lease_until < ?1)
                 ORDER BY created, id LIMIT ?2",
            )?;
            let it = st.query_map(params![now, limit as i64], |r| {
                Ok((
                    NewCall {
                        id: r.get(0)?,
                        function: r.get(1)?,
                        method: r.get(2)?,
                        path: r.get(3)?,
                        query: r.get(4)?,
                        headers: Vec::new(),
                        callback: r.get(6)?,
                    },
                    r.get::<_, String>(5)?,
                    r.get::<_, u32>(7)?,
                    r.get::<_, Option<u16>>(8)?,
                ))
            })?;
            for row in it {
                rows.push(row?);
            }
        }
        for (c, _, attempts, _) in &rows {
            let until = now.saturating_add(lease(&c.function).as_millis() as i64);
            tx.execute(
                "UPDATE async_calls SET state = 'inflight', lease_until = ?2, attempts = ?3
                 WHERE id = ?1",
                params![c.id, until, attempts + 1],
            )?;
        }
        tx.commit()?;
        let mut out = Vec::new();
        for (mut call, headers, attempts, status) in rows {
            let read = |name: String| {
                let p = self.dir.join(name);
                std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
            };
            let parsed = serde_json::from_str::<Vec<(String, Vec<u8>)>>(&headers)
                .map_err(|e| format!("unreadable headers: {e}"));
            let body = check_id(&call.id)
                .map_err(|e| e.to_string())
                .and(parsed)
                .and_then(|h| {
                    call.headers = h;
                    read(Self::body_name(&call.id))
                });
            let result = match status {
                Some(s) => read(Self::out_name(&call.id)).map(|b| Some((s, b))),
                None => Ok(None),
            };
            match body.and_then(|b| result.map(|r| (b, r))) {
                Ok((body, result)) => out.push(Call {
                    call,
                    body,
                    attempt: attempts + 1,
                    result,
                }),
                Err(e) => {
                    tracing::warn!(call = %call.id, error = %e, "async call unreadable: dead");
                    self.conn.execute(
                        "UPDATE async_calls SET state = 'dead', last_error = ?2 WHERE id = ?1",
                        params![call.id, e],
                    )?;
                }
            }
        }
        Ok(out)
    }

    /// The call was delivered: its row and files go.
    pub fn done(&mut self, id: &str) -> Result<()> {
        check_id(id)?;
        self.conn
            .execute("DELETE FROM async_calls WHERE id = ?1", params![id])?;
        for name in [Self::body_name(id), Self::out_name(id)] {
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&self.dir.join(&name), e)),
            }
        }
        Ok(())
    }

    /// Keeps the result of a call whose delivery failed (the next attempt only delivers).
    pub fn keep_result(&mut self, id: &str, status: u16, body: &[u8]) -> Result<()> {
        check_id(id)?;
        write_durable(&self.dir, &Self::out_name(id), body)?;
        self.conn.execute(
            "UPDATE async_calls SET result_status = ?2 WHERE id = ?1",
            params![id, status],
        )?;
        Ok(())
    }

    /// Attempt `attempt` failed with `error`: the call is due again after the back-off, or
    /// dead once `attempt` reached `max_attempts`. Returns whether it is dead.
    pub fn failed(
        &mut self,
        id: &str,
        attempt: u32,
        max_attempts: u32,
        error: &str,
    ) -> Result<bool> {
        let dead = attempt >= max_attempts;
        let next = now_ms().saturating_add(backoff(attempt).as_millis() as i64);
        self.conn.execute(
            "UPDATE async_calls SET state = ?2, next_at = ?3, lease_until = 0, last_error = ?4
             WHERE id = ?1",
            params![id, if dead { "dead" } else { "queued" }, next, error],
        )?;
        Ok(dead)
    }

    /// The calls of `function` (every function with `None`), oldest first.
    pub fn list(&mut self, function: Option<&str>) -> Result<Vec<CallInfo>> {
        let mut st = self.conn.prepare(
            "SELECT id, function, state, attempts, callback, created, next_at, last_error, result_status
             FROM async_calls WHERE ?1 IS NULL OR function = ?1 ORDER BY created, id",
        )?;
        let rows = st.query_map(params![function], |r| {
            Ok(CallInfo {
                id: r.get(0)?,
                function: r.get(1)?,
                state: r.get(2)?,
                attempts: r.get(3)?,
                callback: r.get(4)?,
                created_ms: r.get(5)?,
                next_attempt_ms: r.get(6)?,
                last_error: r.get(7)?,
                result_status: r.get(8)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// Rows by function and state (the `/metrics` gauge).
    pub fn depth(&mut self) -> Result<Vec<(String, String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT function, state, COUNT(*) FROM async_calls GROUP BY function, state
             ORDER BY function, state",
        )?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// Whether a call `id` is in the queue (any state).
    pub fn contains(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM async_calls WHERE id = ?1",
                params![id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

/// Whether `X-Callback-Url` may be called (an SSRF guard): an `http://` URL whose host is
/// a loopback address, or a host (or `host:port`) listed with `berth serve
/// --allow-callback-hosts`. Names are not resolved here: a name is allowed only when listed.
pub fn check_callback(url: &str, allowed: &[String]) -> std::result::Result<hyper::Uri, String> {
    let u: hyper::Uri = url
        .parse()
        .map_err(|_| format!("X-Callback-Url {url:?}: not a URL"))?;
    if u.scheme_str() != Some("http") {
        return Err(format!("X-Callback-Url {url:?}: expected an http:// URL"));
    }
    let Some(host) = u
        .host()
        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
    else {
        return Err(format!("X-Callback-Url {url:?}: no host"));
    };
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
    {
        return Ok(u);
    }
    let with_port = format!("{host}:{}", u.port_u16().unwrap_or(80));
    if allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(&with_port))
    {
        return Ok(u);
    }
    Err(format!(
        "X-Callback-Url {url:?}: host {host} is not a loopback address (allow it with berth serve --allow-callback-hosts {host})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("berth-queue-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("scratch dir");
            Scratch(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn call(id: &str) -> NewCall {
        NewCall {
            id: id.into(),
            function: "f".into(),
            method: "POST".into(),
            path: "/p".into(),
            query: Some("a=1".into()),
            headers: vec![("x-bin".into(), vec![0xff, b'a'])],
            callback: None,
        }
    }

    #[test]
    fn a_call_survives_reopen_is_taken_back_and_goes_dead_after_its_attempts() {
        let d = Scratch::new("life");
        let mut q = Queue::open(d.path()).expect("open");
        q.enqueue(&call("c-1"), b"body").expect("enqueue");
        let got = q.claim(10, |_| Duration::from_secs(60)).expect("claim");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, b"body");
        assert_eq!(got[0].call, call("c-1"));
        assert_eq!(got[0].attempt, 1);
        // In flight with a live lease: not taken again.
        assert!(q
            .claim(10, |_| Duration::from_secs(60))
            .expect("claim")
            .is_empty());
        drop(q);
        // A new gateway takes it back.
        let mut q = Queue::open(d.path()).expect("open");
        assert_eq!(q.recover().expect("recover"), 1);
        let got = q.claim(10, |_| Duration::from_secs(60)).expect("claim");
        assert_eq!(got[0].attempt, 2);
        q.keep_result("c-1", 200, b"out").expect("keep");
        assert!(!q.failed("c-1", 2, 3, "callback refused").expect("failed"));
        // Not due before the back-off.
        assert!(q
            .claim(10, |_| Duration::from_secs(60))
            .expect("claim")
            .is_empty());
        q.conn
            .execute("UPDATE async_calls SET next_at = 0", [])
            .expect("due");
        let got = q.claim(10, |_| Duration::from_secs(60)).expect("claim");
        assert_eq!(got[0].result, Some((200, b"out".to_vec())));
        assert!(q.failed("c-1", 3, 3, "callback refused").expect("failed"));
        let l = q.list(Some("f")).expect("list");
        assert_eq!((l[0].state.as_str(), l[0].attempts), ("dead", 3));
        assert_eq!(l[0].last_error.as_deref(), Some("callback refused"));
        assert_eq!(q.depth().expect("depth"), [("f".into(), "dead".into(), 1)]);
        q.done("c-1").expect("done");
        assert!(!q.contains("c-1").expect("contains"));
        assert!(!d.path().join("functions/async/c-1.body").exists());
        assert!(!d.path().join("functions/async/c-1.out").exists());
    }

    #[test]
    fn ids_that_are_not_call_ids_are_refused() {
        let d = Scratch::new("ids");
        let mut q = Queue::open(d.path()).expect("open");
        assert!(q.enqueue(&call("../x"), b"").is_err());
        assert!(q.done("a/b").is_err());
    }

    #[test]
    fn callbacks_go_to_loopback_or_listed_hosts_only() {
        assert!(check_callback("http://127.0.0.1:9/x", &[]).is_ok());
        assert!(check_callback("http://[::1]:9/x", &[]).is_ok());
        let e = check_callback("http://10.0.0.1/x", &[]).expect_err("refused");
        assert!(e.contains("--allow-callback-hosts 10.0.0.1"), "{e}");
        assert!(check_callback("http://hooks.example:8080/", &["hooks.example".into()]).is_ok());
        assert!(
            check_callback("http://hooks.example:81/", &["hooks.example:8080".into()]).is_err()
        );
        assert!(check_callback("http://localhost/", &[]).is_err());
        assert!(check_callback("https://127.0.0.1/", &[])
            .expect_err("https")
            .contains("http://"));
        assert!(check_callback("ftp://x/", &[]).is_err());
    }
}
