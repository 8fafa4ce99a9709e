//! Function definitions in `<root>/functions.db` (SQLite, WAL): one row per function, its
//! definition as JSON. Every change is one transaction; `berth fn` writes it and the
//! gateway in `berth serve` reads it (reloading on a miss and on its sync tick).

use crate::def::Function;
use crate::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// The function database.
pub struct Store {
    conn: Connection,
}

/// A connection to `<root>/functions.db` (the definitions and the async queue): WAL, every
/// commit synced, a busy database waited for.
pub(crate) fn connect(root: &Path) -> Result<Connection> {
    let conn = Connection::open(root.join("functions.db"))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Store {
    /// Opens (creating) `<root>/functions.db`.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|e| Error::Io(format!("{}: {e}", root.display())))?;
        let conn = connect(root)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS functions (
                 name TEXT PRIMARY KEY NOT NULL,
                 def  TEXT NOT NULL
             );",
        )?;
        Ok(Store { conn })
    }

    fn decode(name: &str, json: &str) -> Result<Function> {
        serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("function {name}: unreadable definition: {e}")))
    }

    /// Inserts or replaces `f` (deploying over an existing function updates it).
    pub fn put(&mut self, f: &Function) -> Result<()> {
        let json = serde_json::to_string(f).map_err(|e| Error::Invalid(e.to_string()))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO functions (name, def) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET def = excluded.def",
            params![f.name, json],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn get(&mut self, name: &str) -> Result<Function> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT def FROM functions WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        match json {
            Some(j) => Self::decode(name, &j),
            None => Err(Error::NotFound(name.to_string())),
        }
    }

    /// Every function, by name.
    pub fn list(&mut self) -> Result<Vec<Function>> {
        let mut st = self
            .conn
            .prepare("SELECT name, def FROM functions ORDER BY name")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, json) = row?;
            out.push(Self::decode(&name, &json)?);
        }
        Ok(out)
    }

    /// Changes `name` with `f` in one transaction (read, change, validate, write).
    pub fn update(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Function) -> Result<()>,
    ) -> Result<Function> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let json: Option<String> = tx
            .query_row(
                "SELECT def FROM functions WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        let mut def = match json {
            Some(j) => Self::decode(name, &j)?,
            None => return Err(Error::NotFound(name.to_string())),
        };
        f(&mut def)?;
        def.validate()?;
        let json = serde_json::to_string(&def).map_err(|e| Error::Invalid(e.to_string()))?;
        tx.execute(
            "UPDATE functions SET def = ?2 WHERE name = ?1",
            params![name, json],
        )?;
        tx.commit()?;
        Ok(def)
    }

    /// Removes `name`; `NotFound` if there is none.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM functions WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(Error::NotFound(name.to_string()));
        }
        Ok(())
    }
}
