//! The engine's database: one SQLite file `<root>/engine.db` in WAL mode, the truth about
//! every container. Every state change is one `BEGIN IMMEDIATE` transaction; a busy
//! database is waited for (`busy_timeout`) and then retried with a growing back-off, so
//! concurrent commands never show "database is locked".

use crate::error::{Error, Result};
use crate::types::{ContainerSpec, RestartPolicy, State};
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The schema this code reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// How long one operation keeps retrying a busy database before giving up.
const BUSY_DEADLINE: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER NOT NULL DEFAULT 0,
    pid_start INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    monitor_start INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    started TEXT NOT NULL DEFAULT '',
    finished TEXT NOT NULL DEFAULT '',
    restart_policy TEXT NOT NULL,
    restart_count INTEGER NOT NULL DEFAULT 0,
    stopped_by_user INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS exits (
    id TEXT PRIMARY KEY,
    exit_code INTEGER NOT NULL,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    removed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS exits_removed_at ON exits (removed_at);
";

/// How long the exit code of a removed container is kept (for `wait --condition removed`,
/// whose caller may still be polling when `--rm` wins the race).
pub const EXIT_KEEP_SECS: i64 = 600;

/// One container's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's manifest digest (`sha256:…`).
    pub image_id: String,
    pub spec: ContainerSpec,
    pub state: State,
    /// The container's init (host pid) and its start time (jiffies since boot).
    pub pid: i32,
    pub pid_start: u64,
    /// The monitor and its start time.
    pub monitor_pid: i32,
    pub monitor_start: u64,
    /// None until the container has exited once; -1 when unknown (its monitor died).
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// RFC 3339 (UTC).
    pub created: String,
    pub started: String,
    pub finished: String,
    pub restart_count: u32,
    pub stopped_by_user: bool,
    /// Why the last start failed (empty if it did not).
    pub error: String,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

const COLUMNS: &str = "id, name, image, image_id, spec, state, pid, pid_start, monitor_pid, \
    monitor_start, exit_code, oom_killed, created, started, finished, restart_count, \
    stopped_by_user, error";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Container> {
    let bad = |i: usize, msg: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(std::io::Error::other(msg)),
        )
    };
    let spec: String = r.get(4)?;
    let state: String = r.get(5)?;
    Ok(Container {
        id: r.get(0)?,
        name: r.get(1)?,
        image: r.get(2)?,
        image_id: r.get(3)?,
        spec: serde_json::from_str(&spec).map_err(|e| bad(4, format!("spec: {e}")))?,
        state: state.parse().map_err(|e: Error| bad(5, e.to_string()))?,
        pid: r.get(6)?,
        pid_start: r.get::<_, i64>(7)? as u64,
        monitor_pid: r.get(8)?,
        monitor_start: r.get::<_, i64>(9)? as u64,
        exit_code: r.get(10)?,
        oom_killed: r.get(11)?,
        created: r.get(12)?,
        started: r.get(13)?,
        finished: r.get(14)?,
        restart_count: r.get(15)?,
        stopped_by_user: r.get(16)?,
        error: r.get(17)?,
    })
}

/// An open database. Dropped, its connection goes back to this thread's pool (below) for
/// the next [`Db::open`] of the same file in this process.
#[derive(Debug)]
pub struct Db {
    /// `None` only while being dropped.
    conn: Option<Connection>,
    path: PathBuf,
}

/// Connections kept open between the [`Db`]s of one thread: a command opens the database
/// five or six times (the CLI's create, start, network rows, inspect; the monitor's claim
/// and its records), and each fresh connection pays the open, its pragmas, the schema
/// check and — when no other connection to the file is open anywhere — the rebuild of the
/// WAL index from the log. With the pool, one connection serves the whole command.
/// Entries remember the pid that opened them: a forked child never uses (nor closes) its
/// parent's connection (SQLite: "do not open a database and then fork"; its POSIX locks are
/// per process), it leaks them and opens its own. And the file's identity (device, inode):
/// a database removed or replaced since (`system reset` by another command while a
/// `berth serve` runs) is opened anew.
const POOL_MAX: usize = 4;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Pooled>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The database files (path, device, inode and birth time) whose schema this process has checked and
/// made: another connection to the same file (another thread's: podstart.rs starts a pod's
/// members in threads, each with its own connection) skips the schema's write transaction,
/// which would otherwise queue behind the other threads' `BEGIN IMMEDIATE`.
static SCHEMA_CHECKED: std::sync::Mutex<Vec<(PathBuf, FileBirth)>> =
    std::sync::Mutex::new(Vec::new());

/// (device, inode, birth time): an inode reused by a database made anew (`system reset`
/// in another process) is another file.
type FileBirth = (u64, u64, Option<std::time::SystemTime>);

fn file_birth(path: &Path) -> Option<FileBirth> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.created().ok()))
}

fn schema_checked(path: &Path) -> bool {
    let Some(now) = file_birth(path) else {
        return false;
    };
    SCHEMA_CHECKED
        .lock()
        .is_ok_and(|v| v.iter().any(|(p, f)| p == path && *f == now))
}

fn mark_schema_checked(path: &Path) {
    if let (Some(now), Ok(mut v)) = (file_birth(path), SCHEMA_CHECKED.lock()) {
        v.retain(|(p, _)| p != path);
        v.push((path.to_path_buf(), now));
    }
}

struct Pooled {
    pid: u32,
    path: PathBuf,
    file: (u64, u64),
    conn: Connection,
}

/// The (device, inode) of the file at `path`.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A pooled connection to `path` opened by this process, if there is one.
fn take_pooled(path: &Path) -> Option<Connection> {
    let now = file_id(path)?;
    POOL.try_with(|p| {
        let mut p = p.try_borrow_mut().ok()?;
        let me = std::process::id();
        // Inherited through a fork: never touched again (not even closed).
        for e in p.extract_if(.., |e| e.pid != me) {
            std::mem::forget(e.conn);
        }
        let i = p.iter().position(|e| e.path == path)?;
        let e = p.swap_remove(i);
        (e.file == now).then_some(e.conn)
    })
    .ok()
    .flatten()
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Only a connection at rest (no transaction left open) is kept.
        if !conn.is_autocommit() {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let Some(file) = file_id(&path) else {
            return;
        };
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < POOL_MAX {
                    p.push(Pooled {
                        pid: std::process::id(),
                        path,
                        file,
                        conn,
                    });
                }
            }
        });
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Db {
    /// Opens (creating and migrating if needed) `<root>/engine.db`.
    pub fn open(root: &Path) -> Result<Db> {
        let path = root.join("engine.db");
        if let Some(conn) = take_pooled(&path) {
            return Ok(Db {
                conn: Some(conn),
                path,
            });
        }
        std::fs::create_dir_all(root)
            .map_err(crate::error::io(format!("create {}", root.display())))?;
        let conn = Connection::open(&path).map_err(|source| Error::Db {
            path: path.display().to_string(),
            source,
        })?;
        let mut db = Db {
            conn: Some(conn),
            path,
        };
        db.retry(|c| {
            c.busy_timeout(Duration::from_millis(250))?;
            // WAL: readers never wait for the writer; one writer at a time.
            c.pragma_update(None, "journal_mode", "WAL")?;
            // In WAL mode NORMAL syncs the log only at checkpoints, not at every commit: a
            // commit is atomic and survives any crash of a process (kill -9 of a command or
            // a monitor: the log is in the page cache); only a power loss or kernel crash
            // may take back the last commits, and the database is then still consistent —
            // an older, whole state that reconcile squares with what runs.
            // (https://www.sqlite.org/pragma.html#pragma_synchronous, wal.html)
            c.pragma_update(None, "synchronous", "NORMAL")?;
            // Every command is a short-lived connection: by default the last one to close
            // checkpoints the log into the database (two fsyncs) and deletes the -wal and
            // -shm files, which the next command creates again (another two fsyncs). The
            // log stays instead; it is checkpointed by whichever commit grows it past
            // SQLite's 1000-page auto-checkpoint. (https://www.sqlite.org/c3ref/c_dbconfig_defensive.html)
            c.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
            // A command that opens the database while no other connection is open rebuilds
            // the log's index by reading the whole log: a short log (64 pages, checkpointed
            // by the commit that passes it: two fsyncs every dozen or so commits) keeps
            // that cheap.
            c.pragma_update(None, "wal_autocheckpoint", 64)?;
            Ok(())
        })?;
        if schema_checked(&db.path) {
            return Ok(db);
        }
        let before = file_birth(&db.path);
        db.write(|tx| {
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(crate::health::SCHEMA)?;
            tx.execute_batch(crate::probe::SCHEMA)?;
            tx.execute_batch(crate::service::SCHEMA)?;
            crate::volumes::init(tx)?;
            crate::admission::init(tx)?;
            crate::network::init(tx)?;
            crate::pod::init(tx)?;
            let v: Option<i64> = tx
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .optional()?;
            match v {
                None => {
                    tx.execute(
                        "INSERT INTO schema_version (version) VALUES (?1)",
                        [SCHEMA_VERSION],
                    )?;
                }
                Some(v) if v > SCHEMA_VERSION => {
                    return Ok(Err(Error::Invalid(format!(
                        "the engine database has schema version {v}, newer than this berth's \
                         {SCHEMA_VERSION}: use a newer berth"
                    ))))
                }
                Some(_) => {}
            }
            Ok(Ok(()))
        })??;
        // Only when the file stayed the same one through the write (no reset by another
        // process meanwhile) and has a birth time (an inode number alone can be reused).
        if before.is_some_and(|b| b.2.is_some()) && before == file_birth(&db.path) {
            mark_schema_checked(&db.path);
        }
        Ok(db)
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Db {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Runs `f` until it does not fail with a busy/locked database (growing back-off).
    fn retry<T>(&mut self, mut f: impl FnMut(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(2);
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(Error::Runtime("the engine database is closed".into()));
            };
            match f(conn) {
                Err(e) if is_busy(&e) && start.elapsed() < BUSY_DEADLINE => {
                    tracing::debug!(delay_ms = delay.as_millis() as u64, "engine database busy");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(self.err(e)),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// One write transaction (`BEGIN IMMEDIATE`): committed if `f` returns Ok, rolled back
    /// otherwise; retried as a whole while the database is busy.
    pub fn write<T>(
        &mut self,
        mut f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.retry(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    /// Reads outside a write transaction (each statement its own snapshot): WAL readers
    /// never wait for a writer, so concurrent starts of a pod's members (podstart.rs) do
    /// not queue behind each other's `BEGIN IMMEDIATE` for a lookup.
    pub fn read<T>(&mut self, mut f: impl FnMut(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.retry(|c| f(c))
    }

    /// Every container, oldest first.
    pub fn list(&mut self) -> Result<Vec<Container>> {
        self.retry(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created, id"
            ))?;
            let rows = st.query_map([], from_row)?;
            rows.collect()
        })
    }

    /// The container called `reference`: its name, its id, or a unique prefix of its id.
    pub fn find(&mut self, reference: &str) -> Result<Container> {
        let r = reference.to_string();
        let found = self.retry(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM containers WHERE name = ?1 OR id = ?1 \
                 OR (length(?1) >= 1 AND substr(id, 1, length(?1)) = ?1) \
                 ORDER BY (name = ?1) DESC, (id = ?1) DESC LIMIT 3"
            ))?;
            let rows = st.query_map([&r], from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        match found.as_slice() {
            [] => Err(Error::NotFound(reference.to_string())),
            [one, ..] if one.name == reference || one.id == reference => Ok(one.clone()),
            [one] => Ok(one.clone()),
            _ => Err(Error::Invalid(format!(
                "container id prefix {reference:?} is ambiguous: give more of the id or the name"
            ))),
        }
    }

    /// Inserts a new container; a name in use is a [`Error::Conflict`] naming the holder.
    pub fn insert(&mut self, c: &Container) -> Result<()> {
        let spec = serde_json::to_string(&c.spec).map_err(|e| Error::Invalid(e.to_string()))?;
        let labels =
            serde_json::to_string(&c.spec.labels).map_err(|e| Error::Invalid(e.to_string()))?;
        let r = self.write(|tx| {
            let holder: Option<String> = tx
                .query_row(
                    "SELECT id FROM containers WHERE name = ?1",
                    [&c.name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(h) = holder {
                return Ok(Some(h));
            }
            tx.execute(
                "INSERT INTO containers (id, name, image, image_id, spec, state, created, \
                 restart_policy, labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    c.id,
                    c.name,
                    c.image,
                    c.image_id,
                    spec,
                    c.state.as_str(),
                    c.created,
                    c.spec.restart.to_string(),
                    labels
                ],
            )?;
            Ok(None)
        })?;
        match r {
            Some(holder) => Err(Error::Conflict(format!(
                "the container name {:?} is already in use by container {}: remove or rename \
                 that container, or choose another name",
                c.name,
                &holder[..12.min(holder.len())]
            ))),
            None => Ok(()),
        }
    }

    /// Reads the row of `id` inside a write transaction, lets `f` change it, and stores it
    /// (all in one transaction). `f` returning `Err` leaves the row unchanged. None if the
    /// row is gone.
    pub fn update<T>(
        &mut self,
        id: &str,
        mut f: impl FnMut(&mut Container) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut out: Option<Result<T>> = None;
        self.write(|tx| {
            let row = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                    [id],
                    from_row,
                )
                .optional()?;
            let Some(mut c) = row else {
                out = None;
                return Ok(());
            };
            match f(&mut c) {
                Ok(v) => {
                    tx.execute(
                        "UPDATE containers SET state = ?2, pid = ?3, pid_start = ?4, \
                         monitor_pid = ?5, monitor_start = ?6, exit_code = ?7, oom_killed = ?8, \
                         started = ?9, finished = ?10, restart_count = ?11, \
                         stopped_by_user = ?12, error = ?13 WHERE id = ?1",
                        params![
                            c.id,
                            c.state.as_str(),
                            c.pid,
                            c.pid_start as i64,
                            c.monitor_pid,
                            c.monitor_start as i64,
                            c.exit_code,
                            c.oom_killed,
                            c.started,
                            c.finished,
                            c.restart_count,
                            c.stopped_by_user,
                            c.error
                        ],
                    )?;
                    out = Some(Ok(v));
                }
                Err(e) => out = Some(Err(e)),
            }
            Ok(())
        })?;
        out.transpose()
    }

    /// Deletes the row of `id`. Its exit code, if it has one, is kept in `exits` for
    /// [`EXIT_KEEP_SECS`] in the same transaction (Docker's `wait` with
    /// `condition=removed` answers it after an AutoRemove); older ones are dropped.
    pub fn delete(&mut self, id: &str) -> Result<()> {
        let now = unix_now();
        self.write(|tx| {
            tx.execute(
                "DELETE FROM exits WHERE removed_at < ?1",
                [now - EXIT_KEEP_SECS],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO exits (id, exit_code, oom_killed, removed_at) \
                 SELECT id, exit_code, oom_killed, ?2 FROM containers \
                 WHERE id = ?1 AND exit_code IS NOT NULL",
                params![id, now],
            )?;
            tx.execute("DELETE FROM health WHERE id = ?1", [id])?;
            tx.execute("DELETE FROM probes WHERE id = ?1", [id])?;
            tx.execute("DELETE FROM containers WHERE id = ?1", [id])
                .map(|_| ())
        })
    }

    /// The exit code (and OOM kill) of the removed container `id` (a full id), if it was
    /// removed within [`EXIT_KEEP_SECS`] after it had exited.
    pub fn removed_exit(&mut self, id: &str) -> Result<Option<(i32, bool)>> {
        let id = id.to_string();
        self.retry(|c| {
            c.query_row(
                "SELECT exit_code, oom_killed FROM exits WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// The containers (names) whose image is `image_id`.
    pub fn users_of_image(&mut self, image_id: &str) -> Result<Vec<String>> {
        let d = image_id.to_string();
        self.retry(|c| {
            let mut st =
                c.prepare("SELECT name FROM containers WHERE image_id = ?1 ORDER BY name")?;
            let rows = st.query_map([&d], |r| r.get(0))?;
            rows.collect()
        })
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Restart policies are stored as Docker spells them.
impl rusqlite::ToSql for RestartPolicy {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.to_string().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second connection (another thread's) skips the schema's transaction; a database
    /// removed and made anew at the same path gets its schema again.
    #[test]
    fn schema_checked_once_per_file() {
        let dir = std::env::temp_dir().join(format!("berth-db-schema-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("engine.db");
        assert!(!schema_checked(&path));
        drop(Db::open(&dir).expect("open"));
        assert!(schema_checked(&path));
        // Another thread: no pooled connection, the schema is not written again.
        std::thread::spawn({
            let dir = dir.clone();
            move || {
                let mut db = Db::open(&dir).expect("open in a thread");
                assert!(db.list().expect("list").is_empty());
            }
        })
        .join()
        .expect("thread");
        // Made anew (as `system reset` by another process): another file, checked again.
        std::fs::remove_dir_all(&dir).expect("remove");
        assert!(!schema_checked(&path));
        let mut db = std::thread::spawn({
            let dir = dir.clone();
            move || Db::open(&dir).expect("open anew")
        })
        .join()
        .expect("thread");
        assert!(db.list().expect("the containers table is there").is_empty());
        assert!(schema_checked(&path));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
