//! What the gateway asks of the ledger beside its records: retention's
//! pruning, the health check, the size metric, and where the files beside
//! the ledger (locks, scratch) go. SQLite keeps the ledger in one file
//! with its `-wal` and `-shm`, so these are about that file.

use super::*;
use rusqlite::OpenFlags;
use std::path::PathBuf;
use std::time::Duration;

/// History rows deleted per transaction by [`SqliteLedger::prune_history`]:
/// short enough never to hold up a sync.
const PRUNE_BATCH: i64 = 500;

impl SqliteLedger {
    /// Whether there is no ledger at `path` yet (opening one creates it).
    pub fn is_new(path: &Path) -> bool {
        !path.exists()
    }

    pub(super) fn prune_batches(&self, sql: &str, cutoff: Millis) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let n = self.conn.execute(sql, params![cutoff, PRUNE_BATCH])?;
            total += n as u64;
            if (n as i64) < PRUNE_BATCH {
                return Ok(total);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `/healthz`: opens the ledger read-only and reads its schema (`SELECT
    /// 1` alone would not touch the file: this also finds a ledger that is
    /// not a database), waiting at most `busy` for a lock.
    pub fn health(path: &Path, busy: Duration) -> std::result::Result<(), String> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        conn.busy_timeout(busy).map_err(|e| e.to_string())?;
        conn.query_row("SELECT 1 FROM sqlite_schema LIMIT 1", [], |_| Ok(()))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every archive path the ledger refers to (reports, inbound files,
    /// syncs), read without writing anything; `None` when there is no
    /// ledger or it cannot be read.
    pub fn archive_paths(path: &Path) -> Option<Vec<String>> {
        if !path.exists() {
            return None;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(10)).ok()?;
        let mut q = conn
            .prepare(
                "SELECT archive_path FROM reports WHERE archive_path IS NOT NULL
             UNION SELECT archive_path FROM inbound_files WHERE archive_path IS NOT NULL
             UNION SELECT archive_path FROM syncs WHERE archive_path IS NOT NULL",
            )
            .ok()?;
        let rows = q.query_map([], |r| r.get::<_, String>(0)).ok()?;
        rows.collect::<rusqlite::Result<_>>().ok()
    }

    /// The ledger's size on disk now: its file and its WAL.
    pub fn size_bytes(path: &Path) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        size(path) + size(Path::new(&wal))
    }

    /// The file whose OS lock marks the one `run` of this ledger: `<ledger>.lock`.
    pub fn instance_lock_path(path: &Path) -> PathBuf {
        let mut os = path.to_path_buf().into_os_string();
        os.push(".lock");
        PathBuf::from(os)
    }

    /// The folder for files in flight beside the ledger (scratch, per-cart
    /// locks): the ledger file's folder.
    pub fn scratch_root(path: &Path) -> &Path {
        path.parent().unwrap_or(Path::new("."))
    }
}

impl SqliteLedger {
    /// Every row of `table` in its stored order, handed to `f` with the
    /// column names: what `copy-ledger` moves.
    pub fn for_each_row(
        &self,
        table: &str,
        mut f: impl FnMut(&[String], &[crate::ledger::debug::DebugValue]) -> Result<()>,
    ) -> Result<()> {
        use crate::ledger::debug::DebugValue;
        use rusqlite::types::ValueRef;
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT * FROM {}", super::debug::ident(table)))?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let mut rows = stmt.query([])?;
        let mut values = Vec::with_capacity(columns.len());
        while let Some(r) = rows.next()? {
            values.clear();
            for i in 0..columns.len() {
                values.push(match r.get_ref(i)? {
                    ValueRef::Null => DebugValue::Null,
                    ValueRef::Integer(v) => DebugValue::Integer(v),
                    ValueRef::Real(v) => DebugValue::Real(v),
                    ValueRef::Text(t) => DebugValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => DebugValue::Blob(b.to_vec()),
                });
            }
            f(&columns, &values)?;
        }
        Ok(())
    }
}
