//! The SQLite backend of the ledger: connection handling, migrations and
//! every statement.

/// A sum of quantities that can never fail: SQLite's SUM raises "integer
/// overflow", TOTAL does not (and is exact for integer sums below 2^53, far
/// beyond any valid ledger: every quantity is within ±10^12, rule 14). Clamped
/// so that a difference of two such sums still fits an i64, whatever an
/// older ledger holds.
macro_rules! safe_sum {
    ($col:literal) => {
        concat!("CAST(MAX(MIN(TOTAL(", $col, "), 4e18), -4e18) AS INTEGER)")
    };
}

mod backend;
mod batch;
mod debug;
mod maint;
mod scan;
mod schema;
#[cfg(test)]
mod tests;

pub use batch::{InventoryBatch, OrderBatch, ProductBatch};

use super::feed::{Cursor, FeedMerge, OpenLine, drawing_lines, kit_plan};
use super::*;
use rusqlite::{Connection, OptionalExtension, params};
use scan::{OPEN_LINES_OF_SKU, Products, Scan, merge_sql};
use schema::MIGRATIONS;
use std::collections::HashMap;

pub struct SqliteLedger {
    conn: Connection,
    /// The fencing token every completing write checks (None: none).
    fence: Option<Fence>,
}

/// The ledger's clock: SQLite's is the local one (PostgreSQL's is `now()`).
pub(super) fn clock() -> Millis {
    crate::util::now_ms()
}

/// Inside a write transaction: the lease of `fence` is still held (same
/// holder and generation, not expired by the ledger's clock), else
/// [`LedgerError::LeaseLost`]. No fence: nothing to check.
pub(super) fn check_fence(conn: &Connection, fence: Option<&Fence>) -> Result<()> {
    let Some(f) = fence else {
        return Ok(());
    };
    let held: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM leases
          WHERE work = ?1 AND holder = ?2 AND generation = ?3 AND expires_at > ?4)",
        params![f.work, f.holder, f.generation, clock()],
        |r| r.get(0),
    )?;
    if held {
        Ok(())
    } else {
        Err(LedgerError::LeaseLost {
            work: f.work.clone(),
        })
    }
}

impl rusqlite::ToSql for SyncOutcome {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl SqliteLedger {
    pub fn open(path: &Path) -> Result<SqliteLedger> {
        let open_err = |source| LedgerError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = crate::util::private_dir(dir);
        }
        if !path.exists() {
            // Created owner-only: SQLite gives its -wal and -shm the same mode.
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            let _ = crate::util::private_file(path);
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(open_err)?;
        // 16 KiB pages: fewer B-tree splits and page writes for an ingest
        // (README, Performance). Takes effect only on a file that has no
        // page yet: an existing ledger keeps its page size (a `VACUUM`
        // outside WAL mode converts it). Before auto_vacuum, which lays out
        // an empty file with the page size of the moment.
        let _ = conn.pragma_update(None, "page_size", 16384);
        // A new ledger gives freed pages back a little at a time (retention
        // runs `PRAGMA incremental_vacuum`). Takes effect only on a file that
        // has no page yet; a no-op otherwise.
        let _ = conn.pragma_update(None, "auto_vacuum", "INCREMENTAL");
        // Switching a new file to WAL takes an exclusive lock and SQLite does
        // not wait for it through the busy handler: retry for a while when
        // another process is opening the same new ledger at this moment.
        let mut tries = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 300 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r.map_err(open_err)?,
            }
        }
        // The ledger holds partners' data: owner-only, whatever the umask
        // (a ledger made by an older stockgate is tightened too).
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if p.exists() {
                let _ = crate::util::private_file(&p);
            }
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.pragma_update(None, "temp_store", "FILE")
            .map_err(open_err)?;
        let mut l = SqliteLedger { conn, fence: None };
        l.migrate(path)?;
        Ok(l)
    }

    fn migrate(&mut self, path: &Path) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let too_new = |found| LedgerError::TooNew {
            path: path.display().to_string(),
            found,
            known,
        };
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == known {
            return Ok(());
        }
        if version > known {
            return Err(too_new(version));
        }
        // Two processes may open a new ledger at once (the daemon and a
        // `status`): take the write lock first, then read the version again,
        // so only one of them runs each migration.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(too_new(version));
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
        Ok(())
    }

    /// Runs one write `f`: as is without a fence; with one, in an
    /// immediate transaction that first checks the fence.
    pub(super) fn fenced<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.fence.is_none() {
            return f(&self.conn);
        }
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        check_fence(&tx, self.fence.as_ref())?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl SqliteLedger {
    /// Portable SQL (`ledger::sql`) in one transaction: IMMEDIATE and
    /// fenced for a write, DEFERRED for a read.
    pub(in crate::ledger) fn portable<R>(
        &self,
        write: bool,
        f: impl FnOnce(&mut dyn crate::ledger::sql::SqlTx) -> Result<R>,
    ) -> Result<R> {
        use rusqlite::TransactionBehavior as B;
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            if write { B::Immediate } else { B::Deferred },
        )?;
        if write {
            check_fence(&tx, self.fence.as_ref())?;
        }
        let r = f(&mut crate::ledger::sql::SqliteSql(&tx))?;
        tx.commit()?;
        Ok(r)
    }
}
