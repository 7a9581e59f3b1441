//! The PostgreSQL backend of the ledger: several gateways, one database
//! (CONTRACT §7). Connections come from a small pool of this process's own
//! (idle connections per URL, handed back when a [`PgLedger`] drops);
//! transactions are explicit (`BEGIN` ... `COMMIT`), every write that
//! completes work checks its fence in its own transaction, and every apply
//! of a file serialises on one transaction-scoped advisory lock (never a
//! session lock a pool could strand), so report ids are given in commit
//! order (a cart's "new since report N" never skips a report that
//! committed late).

mod backend;
mod batch;
mod scan;
mod schema;

pub use batch::{InventoryBatch, OrderBatch, ProductBatch};

use super::*;
use postgres::Client;
use schema::{MIGRATIONS, MIGRATIONS_TABLE};
use std::cell::{RefCell, RefMut};
use std::sync::Mutex;

/// The database's clock in ms since the epoch: every lease and fence is
/// judged by it, never by a gateway's own clock.
pub(super) const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint";

/// The key of the advisory lock every apply of a file takes in its
/// transaction (`pg_advisory_xact_lock`): applies commit one at a time.
const APPLY_LOCK: i64 = 0x5354_4b47_4150_5031; // "STKGAPP1"

/// The key of the advisory lock migrations take.
const MIGRATE_LOCK: i64 = 0x5354_4b47_4d49_4731; // "STKGMIG1"

/// Idle connections kept (all URLs together).
const POOL_IDLE: usize = 8;

static POOL: Mutex<Vec<(String, Client)>> = Mutex::new(Vec::new());
/// URLs whose schema this process has found current (migrations run once).
static MIGRATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub struct PgLedger {
    client: RefCell<Option<Client>>,
    url: String,
    /// The fencing token every completing write checks (None: none).
    fence: Option<Fence>,
}

impl Drop for PgLedger {
    fn drop(&mut self) {
        if let Some(c) = self.client.get_mut().take() {
            // A connection left inside a transaction (a panic mid-batch) is
            // rolled back first; a broken one is dropped.
            Self::give_back(&self.url, c);
        }
    }
}

/// Connects to `url`: TLS (rustls, the system's roots, or `SSL_CERT_FILE`)
/// when the URL asks for it with `sslmode=require`, plain otherwise.
pub(super) fn connect(url: &str, timeout: Option<Duration>) -> Result<Client> {
    let shown = super::location::redact(url);
    let open = |e: postgres::Error| LedgerError::Connect {
        url: shown.clone(),
        message: e.to_string(),
    };
    let mut config: postgres::Config = url.parse().map_err(open)?;
    if let Some(t) = timeout {
        config.connect_timeout(t);
    } else if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("stockgate");
    }
    let client = if config.get_ssl_mode() == postgres::config::SslMode::Require {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| LedgerError::Connect {
            url: shown.clone(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .map_err(open)?
    } else {
        config.connect(postgres::NoTls).map_err(open)?
    };
    Ok(client)
}

impl PgLedger {
    /// Opens the ledger at `url` (a pooled connection when one is idle),
    /// creating or upgrading its schema.
    pub fn open(url: &str) -> Result<PgLedger> {
        let client = Self::pooled(url)?;
        let l = PgLedger {
            client: RefCell::new(Some(client)),
            url: url.to_string(),
            fence: None,
        };
        let known = MIGRATED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|u| u == url);
        if !known {
            l.migrate()?;
            MIGRATED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(url.to_string());
        }
        Ok(l)
    }

    /// Whether the database at `url` holds no ledger yet (no schema
    /// table): its first command sets it up as a new SQLite file's does.
    pub fn is_new(url: &str) -> bool {
        let Ok(mut c) = Self::pooled(url) else {
            return false;
        };
        let new = c
            .query_one(
                &format!("SELECT to_regclass('{MIGRATIONS_TABLE}') IS NULL"),
                &[],
            )
            .is_ok_and(|r| r.get::<_, bool>(0));
        Self::give_back(url, c);
        new
    }

    /// An idle connection of the pool, or a new one.
    fn pooled(url: &str) -> Result<Client> {
        let pooled = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            pool.iter()
                .position(|(u, _)| u == url)
                .map(|i| pool.swap_remove(i).1)
        };
        match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => connect(url, None),
        }
    }

    /// Hands a connection back to the pool (outside any transaction): at
    /// most [`POOL_IDLE`] idle ones, the oldest dropped first.
    fn give_back(url: &str, mut c: Client) {
        if c.is_closed() || c.batch_execute("ROLLBACK").is_err() {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_IDLE {
            pool.remove(0);
        }
        pool.push((url.to_string(), c));
    }

    /// The connection (one call at a time: a scan never holds it across
    /// another call).
    pub(super) fn c(&self) -> RefMut<'_, Client> {
        RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut().expect("connection of an open ledger")
        })
    }

    fn migrate(&self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let mut c = self.c();
        c.batch_execute("BEGIN")?;
        let r = (|| -> Result<()> {
            c.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
            c.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                   version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"
            ))?;
            let found: i64 = c
                .query_one(
                    &format!("SELECT COALESCE(MAX(version), 0) FROM {MIGRATIONS_TABLE}"),
                    &[],
                )?
                .get(0);
            if found > known {
                return Err(LedgerError::TooNew {
                    path: super::location::redact(&self.url),
                    found,
                    known,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                c.batch_execute(sql)?;
                c.execute(
                    &format!(
                        "INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES ($1, {NOW_MS})"
                    ),
                    &[&(i as i64 + 1)],
                )?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => c.batch_execute("COMMIT")?,
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                return Err(e);
            }
        }
        Ok(())
    }

    /// Runs `f` in one transaction (`BEGIN` ... `COMMIT`; `ROLLBACK` when
    /// it fails), the fence checked first when `fenced`.
    pub(super) fn tx<T>(
        &self,
        fenced: bool,
        f: impl FnOnce(&mut Client) -> Result<T>,
    ) -> Result<T> {
        let mut c = self.c();
        c.batch_execute("BEGIN")?;
        let r = (|| {
            if fenced {
                check_fence(&mut c, self.fence.as_ref())?;
            }
            f(&mut c)
        })();
        match r {
            Ok(v) => {
                c.batch_execute("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs one write `f`: as is without a fence; with one, in a
    /// transaction that first checks it.
    pub(super) fn fenced<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        if self.fence.is_none() {
            return f(&mut self.c());
        }
        self.tx(true, f)
    }

    /// `/healthz`: a fresh connection (never a pooled one, which could
    /// hide a database gone away) reading the schema table, within `busy`.
    pub fn health(url: &str, busy: Duration) -> std::result::Result<(), String> {
        let mut c =
            connect(url, Some(busy.max(Duration::from_secs(1)))).map_err(|e| e.to_string())?;
        c.query_one(&format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE}"), &[])
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", super::location::redact(url)))
    }
}

/// Inside a write transaction: the lease of `fence` is still held (same
/// holder and generation, not expired by the database's clock), else
/// [`LedgerError::LeaseLost`]. The row is locked (`FOR SHARE`) until the
/// transaction ends: a gateway taking the lease over waits for this write
/// to commit, so no write of an old holder lands after a new one began.
pub(super) fn check_fence(c: &mut Client, fence: Option<&Fence>) -> Result<()> {
    let Some(f) = fence else {
        return Ok(());
    };
    let held = c
        .query_opt(
            &format!(
                "SELECT 1 FROM leases WHERE work = $1 AND holder = $2 AND generation = $3
                   AND expires_at > {NOW_MS} FOR SHARE"
            ),
            &[&f.work, &f.holder, &f.generation],
        )?
        .is_some();
    if held {
        Ok(())
    } else {
        Err(LedgerError::LeaseLost {
            work: f.work.clone(),
        })
    }
}

/// Takes the apply lock and the next report id: one more than the last
/// committed (read after the lock is held, so in commit order and without
/// gaps, as SQLite's).
pub(super) fn next_report_id(c: &mut Client) -> Result<i64> {
    c.query("SELECT pg_advisory_xact_lock($1)", &[&APPLY_LOCK])?;
    Ok(
        c.query_one("SELECT COALESCE(MAX(id), 0)::bigint + 1 FROM reports", &[])?
            .get(0),
    )
}

/// One text field of a `COPY ... FROM STDIN` line (text format).
pub(super) fn copy_field(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(v) = v else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &b in v.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Sends `buf` (COPY text lines) to `copy` (a `COPY ... FROM STDIN`), and empties it.
pub(super) fn copy_in(c: &mut Client, copy: &str, buf: &mut Vec<u8>) -> Result<()> {
    use std::io::Write;
    if buf.is_empty() {
        return Ok(());
    }
    let mut w = c.copy_in(copy)?;
    w.write_all(buf).map_err(LedgerError::Io)?;
    w.finish()?;
    buf.clear();
    Ok(())
}

impl PgLedger {
    /// Every archive path the ledger refers to.
    pub fn archive_paths(&self) -> Option<Vec<String>> {
        let rows = self
            .c()
            .query(
                "SELECT archive_path FROM reports WHERE archive_path IS NOT NULL
                 UNION SELECT archive_path FROM inbound_files WHERE archive_path IS NOT NULL
                 UNION SELECT archive_path FROM syncs WHERE archive_path IS NOT NULL",
                &[],
            )
            .ok()?;
        Some(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The size of the ledger's tables and their indexes, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.c()
            .query_one(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
            .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64)
    }
}

impl PgLedger {
    /// Fills this (empty) ledger with every row of `from`, table by table
    /// by `COPY`, in one transaction: a failure leaves it empty. Returns
    /// the rows copied per table.
    pub fn copy_from(&self, from: &super::sqlite::SqliteLedger) -> Result<Vec<(String, u64)>> {
        use super::debug::DebugValue;
        let tables = LedgerBackend::debug_tables(self)?;
        for (t, n) in LedgerBackend::table_counts(self)? {
            if n > 0 {
                return Err(LedgerError::NotEmpty(format!(
                    "{} (table {t} has {n} rows)",
                    super::location::redact(&self.url)
                )));
            }
        }
        self.tx(false, |c| {
            let mut out = Vec::new();
            for t in LedgerBackend::debug_tables(from)? {
                if !tables.contains(&t) {
                    continue;
                }
                let mut buf = Vec::with_capacity(1 << 20);
                let mut copy = String::new();
                let mut n = 0u64;
                from.for_each_row(&t, |cols, row| {
                    if copy.is_empty() {
                        let cols: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
                        copy = format!("COPY \"{t}\" ({}) FROM STDIN", cols.join(", "));
                    }
                    for (i, v) in row.iter().enumerate() {
                        if i > 0 {
                            buf.push(b'\t');
                        }
                        match v {
                            DebugValue::Null => copy_field(&mut buf, None),
                            DebugValue::Integer(x) => {
                                buf.extend_from_slice(itoa::Buffer::new().format(*x).as_bytes())
                            }
                            DebugValue::Real(x) => buf.extend_from_slice(x.to_string().as_bytes()),
                            DebugValue::Text(s) => copy_field(&mut buf, Some(s)),
                            DebugValue::Blob(b) => {
                                buf.extend_from_slice(b"\\\\x");
                                for byte in b {
                                    buf.extend_from_slice(format!("{byte:02x}").as_bytes());
                                }
                            }
                        }
                    }
                    buf.push(b'\n');
                    n += 1;
                    if buf.len() >= 4 << 20 {
                        copy_in(c, &copy, &mut buf)?;
                    }
                    Ok(())
                })?;
                if !copy.is_empty() {
                    copy_in(c, &copy, &mut buf)?;
                }
                out.push((t, n));
            }
            // Identity columns go on after the highest id copied.
            for t in ["reports", "inbound_files", "syncs", "shipments"] {
                c.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{t}', 'id'),
                                       COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
                    ),
                    &[],
                )?;
            }
            Ok(out)
        })
    }
}

impl PgLedger {
    /// Portable SQL (`ledger::sql`) in one transaction; a write is fenced
    /// (the lease row locked until the commit).
    pub(in crate::ledger) fn portable<R>(
        &self,
        write: bool,
        f: impl FnOnce(&mut dyn crate::ledger::sql::SqlTx) -> Result<R>,
    ) -> Result<R> {
        let mut c = self.c();
        c.batch_execute(if write { "BEGIN" } else { "BEGIN READ ONLY" })?;
        let r = (|| {
            if write {
                check_fence(&mut c, self.fence.as_ref())?;
            }
            let mut s = crate::ledger::sql::PgSql {
                c: &mut c,
                prepared: Default::default(),
            };
            f(&mut s)
        })();
        match r {
            Ok(v) => {
                c.batch_execute("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }
}
