//! The ledger: stock, orders, reports, carts' sync history.
//!
//! Every change to stock or orders happens in one transaction per file;
//! every rule that computes a number a cart receives is in one place, the
//! feed merge ([`feed`], plain Rust over key-ordered rows a backend
//! yields), behind [`Ledger::feed_rows`], shared by `sync` and `explain`.
//!
//! This module holds the backend-neutral surface (public types, errors);
//! each backend lives in a directory of its own (`sqlite/`).

pub mod alloc;
mod any;
#[doc(hidden)]
pub mod debug;
mod feed;
pub mod location;
pub mod orders;
mod pg;
pub mod sql;
mod sqlite;

use crate::formats::FeedItem;
use crate::mapping::OutField;
use crate::util::Millis;
pub use alloc::{Allocation, CartRules, Filters, Kits, SkuMap, Steps};
use debug::{DebugTable, DebugValue};
pub use feed::{KitComponent, KitExplain, KitWarehouse};
pub use location::{LedgerLocation, PgUrl};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use any::Backend;

/// One inventory file being applied, in its own transaction.
pub type InventoryBatch<'a> = any::InventoryBatch<'a>;
/// One product file being applied, in its own transaction.
pub type ProductBatch<'a> = any::ProductBatch<'a>;
/// One order file being applied, in its own transaction.
pub type OrderBatch<'a> = any::OrderBatch<'a>;

/// Rows pruned by [`Ledger::prune_history`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PrunedRows {
    /// Sync attempts (the newest of each cart stays).
    pub history_rows: u64,
    /// Inbound file records.
    pub file_rows: u64,
}

/// The ledger: what the gateway keeps, whatever keeps it.
pub struct Ledger {
    inner: Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "ledger {path} has schema version {found}, newer than this stockgate knows ({known}); upgrade stockgate"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("ledger {path} is read-only: this user cannot write it")]
    ReadOnly { path: String },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The PostgreSQL ledger could not be reached (the URL shown redacted).
    #[error("ledger {url}: {message}")]
    Connect { url: String, message: String },
    /// (Its Display is the whole message: no `source`, so an error chain
    /// does not print it twice.)
    #[error("ledger: {}", pg_message(.0))]
    Pg(postgres::Error),
    #[error("ledger: {0}")]
    Io(std::io::Error),
    /// `copy-ledger` into a database that holds a ledger already.
    #[error("ledger {0} is not empty: copy-ledger only fills an empty one")]
    NotEmpty(String),
    #[error("{0}")]
    Usage(String),
    /// A fenced write found the lease of its work no longer this handle's
    /// (expired, taken by another gateway, or re-taken): nothing was written.
    #[error("lease lost: {work}")]
    LeaseLost { work: String },
}

pub type Result<T> = std::result::Result<T, LedgerError>;

impl From<postgres::Error> for LedgerError {
    fn from(e: postgres::Error) -> Self {
        LedgerError::Pg(e)
    }
}

/// A PostgreSQL error as one line: the server's own message (and detail)
/// where it sent one.
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {} ({d})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => e.to_string(),
    }
}

/// One SKU a cart's feed includes (rule 6), with its numbers.
#[derive(Debug, Clone)]
pub struct FeedRow {
    /// `quantity` is the value sent (rules 2, 4, 5).
    pub item: FeedItem,
    pub available: i64,
    pub include: bool,
    /// The value differs from the last value sent to this cart (or none was).
    pub changed: bool,
    /// The merchant SKU, when `item.sku` carries the cart's own id (rule 22).
    pub key: Option<String>,
    /// Why the cart's feed leaves the SKU out (rules 22, 23): `filtered`,
    /// `no alias`.
    pub left_out: Option<&'static str>,
    /// A kit's build per warehouse (explain of one SKU only).
    pub kit: Option<Box<KitExplain>>,
}

impl FeedRow {
    /// The merchant SKU (what `last_sent` keys).
    pub fn sku(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.item.sku)
    }
}

/// Stock rows and open order lines of a set of SKUs (kits and their
/// components), from [`LedgerBackend::rows_of_skus`].
#[derive(Debug, Clone, Default)]
pub struct SkuRows {
    pub stock: Vec<SkuStock>,
    pub orders: Vec<SkuOrder>,
}

#[derive(Debug, Clone)]
pub struct SkuStock {
    pub sku: String,
    pub warehouse: String,
    pub quantity: i64,
    pub as_of: Millis,
    pub named_report_id: i64,
}

#[derive(Debug, Clone)]
pub struct SkuOrder {
    pub sku: String,
    pub warehouse: Option<String>,
    pub quantity: i64,
    pub ordered_at: Millis,
}

/// Which of `required` (a mapping's required fields, in order) the item
/// lacks first: such an item is left out and counted as `missing <field>`.
pub fn missing_field(item: &FeedItem, required: &[OutField]) -> Option<usize> {
    required.iter().position(|f| match f {
        OutField::Upc => item.upc.as_deref().is_none_or(str::is_empty),
        OutField::Description => item.description.as_deref().is_none_or(str::is_empty),
        OutField::AsOf => item.as_of.is_none(),
        OutField::Price => item.price.as_deref().is_none_or(str::is_empty),
        _ => false,
    })
}

/// The values a feed sent that differ from the cart's last sent, kept
/// until the delivery is recorded: in memory up to a bound, then in an
/// unlinked scratch file (a first sync of a big catalog).
pub struct SentLog {
    mem: Vec<(String, i64)>,
    spill: Option<std::io::BufWriter<std::fs::File>>,
    dir: std::path::PathBuf,
    len: u64,
}

const SENT_IN_MEMORY: usize = 50_000;

impl SentLog {
    /// A log that spills into `dir` when it grows.
    pub fn new(dir: &Path) -> SentLog {
        SentLog {
            mem: Vec::new(),
            spill: None,
            dir: dir.to_path_buf(),
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, sku: &str, value: i64) -> std::io::Result<()> {
        use std::io::Write;
        self.len += 1;
        if self.spill.is_none() && self.mem.len() < SENT_IN_MEMORY {
            self.mem.push((sku.to_string(), value));
            return Ok(());
        }
        if self.spill.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(format!(
                ".sent-{}-{}.tmp",
                std::process::id(),
                crate::util::now_ms()
            ));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            self.spill = Some(std::io::BufWriter::with_capacity(1 << 16, f));
        }
        let w = self.spill.as_mut().expect("spill file");
        w.write_all(&(sku.len() as u32).to_le_bytes())?;
        w.write_all(sku.as_bytes())?;
        w.write_all(&value.to_le_bytes())
    }

    /// Every (SKU, value) pushed, in the order pushed.
    fn for_each(&mut self, mut f: impl FnMut(&str, i64) -> Result<()>) -> Result<()> {
        use std::io::{Read, Seek};
        for (sku, v) in &self.mem {
            f(sku, *v)?;
        }
        if let Some(w) = self.spill.take() {
            let io = |e: std::io::Error| {
                LedgerError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            };
            let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
            file.rewind().map_err(io)?;
            let mut r = std::io::BufReader::with_capacity(1 << 16, file);
            let mut len = [0u8; 4];
            let mut sku = Vec::new();
            let mut val = [0u8; 8];
            loop {
                match r.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io(e)),
                }
                sku.resize(u32::from_le_bytes(len) as usize, 0);
                r.read_exact(&mut sku).map_err(io)?;
                r.read_exact(&mut val).map_err(io)?;
                let s = std::str::from_utf8(&sku).map_err(|e| io(std::io::Error::other(e)))?;
                f(s, i64::from_le_bytes(val))?;
            }
        }
        Ok(())
    }
}

/// Stock and order rules for one cart (or for `explain`).
#[derive(Debug, Clone)]
pub struct FeedQuery<'a> {
    pub merchant: &'a str,
    pub cart: &'a str,
    pub warehouses: &'a [String],
    pub min_level: i64,
    pub full: bool,
    /// Reports with a larger id are "new since the last successful sync".
    pub since_report: i64,
    pub sync_time: Millis,
    pub required: &'a [OutField],
    pub sku: Option<&'a str>,
    /// Warehouses to split each value over (per-warehouse 846s; [] = no
    /// split). See [`split_by_warehouse`]; the whole-catalog pass only.
    pub locations: &'a [String],
    /// The cart's allocation keys, kits, item ids and filters (rules
    /// 20–23); None: as §1 alone.
    pub rules: Option<&'a CartRules>,
}

/// A file a source listed: as last seen, and its outcome once taken.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenFile {
    pub size: i64,
    pub mtime: Option<Millis>,
    pub first_seen: Millis,
    pub outcome: Option<String>,
    /// Why it was skipped, or could not be taken last time.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InboundStats {
    pub last_pickup: Option<Millis>,
    pub applied: u64,
    /// The latest of a failed look and a rejected or held file, and its time.
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    /// The last successful listing of the source.
    pub last_look: Option<Millis>,
    /// Failed looks in a row (0 after a good one).
    pub failures: u64,
}

impl InboundStats {
    /// A source's stats from what a backend read: its last pickup, how
    /// many files applied, its latest rejected or held file still
    /// standing (`"name: error"`, when), and its looks. `last_error` is the
    /// latest of that file's error and a failed look (a failed look wins a
    /// tie: it is current).
    pub(crate) fn from_parts(
        last_pickup: Option<Millis>,
        applied: u64,
        file_error: Option<(String, Millis)>,
        look: SourceLook,
    ) -> InboundStats {
        let look_error = look.last_error.zip(look.last_error_at);
        let (last_error, last_error_at) = match (look_error, file_error) {
            (Some(l), Some(f)) if f.1 > l.1 => (Some(f.0), Some(f.1)),
            (Some(l), _) => (Some(l.0), Some(l.1)),
            (None, Some(f)) => (Some(f.0), Some(f.1)),
            (None, None) => (None, None),
        };
        InboundStats {
            last_pickup,
            applied,
            last_error,
            last_error_at,
            last_look: look.last_look,
            failures: look.failures,
        }
    }
}

/// What the ledger keeps of a source's looks (rule 37).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceLook {
    pub last_look: Option<Millis>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    pub failures: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CartState {
    pub last_report_id: i64,
    pub last_attempt: Option<Millis>,
    pub last_success: Option<Millis>,
    pub last_outcome: Option<String>,
    /// When the daemon retries a failed delivery, if one is pending.
    pub retry_at: Option<Millis>,
}

/// How a sync attempt ended. Stored as its name (`sent`, `skipped`,
/// `failed`); `dry-run` is reported, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncOutcome {
    Sent,
    #[default]
    Skipped,
    Failed,
    DryRun,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Sent => "sent",
            SyncOutcome::Skipped => "skipped",
            SyncOutcome::Failed => "failed",
            SyncOutcome::DryRun => "dry-run",
        }
    }
    /// The stored name back (an unknown one reads as failed).
    pub fn parse(s: &str) -> SyncOutcome {
        match s {
            "sent" => SyncOutcome::Sent,
            "skipped" => SyncOutcome::Skipped,
            "dry-run" => SyncOutcome::DryRun,
            _ => SyncOutcome::Failed,
        }
    }
}

impl std::fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncEntry {
    pub id: i64,
    pub cart: String,
    pub started_at: Millis,
    pub finished_at: Millis,
    pub outcome: SyncOutcome,
    pub reason: Option<String>,
    pub items: u64,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub forced: bool,
    pub archive_path: Option<String>,
    pub interchange_control: Option<i64>,
    pub group_control: Option<i64>,
    pub ack_status: Option<String>,
    pub ack_codes: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StockRow {
    pub warehouse: String,
    pub quantity: i64,
    pub as_of: Millis,
    pub report: String,
}

#[derive(Debug, Clone)]
pub struct OrderDraw {
    pub order_id: String,
    pub line: String,
    pub quantity: i64,
    pub ordered_at: Millis,
    /// The line's own warehouse (None: it names none).
    pub warehouse: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplySummary {
    pub report_id: i64,
    pub rows: u64,
    pub stale: u64,
    pub zeroed: u64,
}

/// A full snapshot that would zero too much: (warehouse, would zero, of total).
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroCount {
    pub warehouse: String,
    pub zeroed: u64,
    pub total: u64,
}

pub struct ReportMeta<'a> {
    pub source: &'a str,
    pub file_name: &'a str,
    pub sha256: &'a str,
    /// The durable archive copy, made before the apply (rule 13).
    pub archive_path: Option<&'a str>,
    pub as_of: Millis,
    pub rows: u64,
    pub now: Millis,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Applied(ApplySummary),
    /// The same content was applied for this source already (possibly by
    /// another process a moment ago): nothing changed.
    Duplicate,
}

pub struct OrderLine<'a> {
    pub order_id: &'a str,
    pub line: &'a str,
    pub sku: &'a str,
    pub quantity: i64,
    pub warehouse: Option<&'a str>,
    /// None: the time the line first entered the ledger.
    pub ordered_at: Option<Millis>,
    pub status: Option<&'a str>,
    pub cancelled: bool,
}

/// A lease on one unit of work (`source:<id>`, `cart:<id>`, later
/// `order_feed:<id>`, `confirm_feed:<id>`), as granted by
/// [`Ledger::take_lease`]. Times are the ledger's own clock (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub work: String,
    pub holder: String,
    /// Bumped each time the lease changes holder or is taken again after
    /// it expired or was released; the same while it is renewed.
    pub generation: i64,
    pub taken_at: Millis,
    pub expires_at: Millis,
}

impl Lease {
    /// The fencing token of this lease, for [`Ledger::set_fence`].
    pub fn fence(&self) -> Fence {
        Fence {
            work: self.work.clone(),
            holder: self.holder.clone(),
            generation: self.generation,
        }
    }
}

/// One row of the lease table, for `status` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub work: String,
    pub holder: String,
    pub generation: i64,
    pub taken_at: Millis,
    pub expires_at: Millis,
    /// Not expired by the ledger's clock now (a released lease is expired).
    pub live: bool,
}

/// A fencing token: set on a [`Ledger`] handle, every write that completes
/// work checks, in the write's own transaction, that the lease row of
/// `work` still has this holder and generation and has not expired; if not
/// it writes nothing and fails with [`LedgerError::LeaseLost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub work: String,
    pub holder: String,
    pub generation: i64,
}

/// The lease key of an inbound source's work.
pub fn source_work(id: &str) -> String {
    format!("source:{id}")
}

/// The lease key of a cart's work.
pub fn cart_work(id: &str) -> String {
    format!("cart:{id}")
}

/// The surface every ledger backend offers (today SQLite's; PostgreSQL's
/// next): [`Ledger`] dispatches each call to its backend through it.
/// Opening, the health check and what sits beside a ledger (its size, its
/// locks, scratch) are [`Ledger`]'s own associated functions, which pick
/// the backend.
pub trait LedgerBackend {
    type InventoryBatch<'a>: InventoryBatchOps
    where
        Self: 'a;
    type ProductBatch<'a>: ProductBatchOps
    where
        Self: 'a;
    type OrderBatch<'a>: OrderBatchOps
    where
        Self: 'a;

    fn schema_version(&self) -> Result<i64>;
    fn check_writable(&self, path: &Path) -> Result<()>;
    fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()>;
    fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>>;
    #[allow(clippy::too_many_arguments)]
    fn record_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        outcome: &str,
        archive: Option<&str>,
        error: Option<&str>,
        now: Millis,
    ) -> Result<()>;
    fn discard_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        archive: &str,
        now: Millis,
    ) -> Result<()>;
    fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>>;
    fn note_seen(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        now: Millis,
    ) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn note_taken(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        outcome: &str,
        sha256: Option<&str>,
        note: Option<&str>,
        now: Millis,
    ) -> Result<()>;
    fn product_count(&self, merchant: &str) -> Result<u64>;
    fn note_problem(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        note: &str,
        now: Millis,
    ) -> Result<()>;
    fn forget(&self, source: &str, name: &str) -> Result<()>;
    fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()>;
    fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()>;
    fn cart_state(&self, cart: &str) -> Result<CartState>;
    fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()>;
    fn max_report_id(&self) -> Result<i64>;
    fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64>;
    /// Order reports (`kind = 'orders'`) of `merchant` applied after
    /// report `since` from a source not in `except`: how many.
    fn order_reports_since(&self, merchant: &str, since: i64, except: &[String]) -> Result<i64>;
    fn feed_rows<T>(
        &self,
        q: &FeedQuery,
        f: impl FnOnce(&mut dyn Iterator<Item = FeedRow>) -> T,
    ) -> Result<T>;
    fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool>;
    /// Every stock row of `skus` (sorted, distinct) of `merchant`, and
    /// every open order line of them (not cancelled, `ordered_at <=
    /// sync_time`), in any order: what kits are built from (rule 21).
    fn rows_of_skus(&self, merchant: &str, skus: &[String], sync_time: Millis) -> Result<SkuRows>;
    fn stock_rows(&self, merchant: &str, sku: &str, warehouses: &[String])
    -> Result<Vec<StockRow>>;
    fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>>;
    fn next_seq(&self, cart: &str) -> Result<i64>;
    fn next_control(&self, sender: &str, receiver: &str) -> Result<i64>;
    fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64>;
    fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64>;
    fn record_delivery(
        &mut self,
        e: &SyncEntry,
        delivered_through: Option<i64>,
        sent: Option<&mut SentLog>,
    ) -> Result<i64>;
    fn record_ack(&self, carts: &[String], group: i64, status: &str, codes: &str) -> Result<u64>;
    fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>>;
    fn inbound_stats(&self, source: &str) -> Result<InboundStats>;
    fn source_look(&self, source: &str) -> Result<SourceLook>;
    fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook>;
    fn table_counts(&self) -> Result<Vec<(String, i64)>>;
    fn inventory_batch(
        &mut self,
        merchant: &str,
        now: Millis,
        direct: bool,
    ) -> Result<Self::InventoryBatch<'_>>;
    fn order_batch(&mut self, merchant: &str, source: &str) -> Result<Self::OrderBatch<'_>>;
    fn product_batch(&mut self, merchant: &str) -> Result<Self::ProductBatch<'_>>;
    fn prune_history(&self, cutoff: Millis) -> Result<PrunedRows>;
    // ----- leases (rules 33, 34): see the methods of [`Ledger`] -----
    fn set_fence(&mut self, fence: Option<Fence>);
    fn fence(&self) -> Option<&Fence>;
    fn take_lease(&self, work: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>>;
    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool>;
    fn release_lease(&self, lease: &Lease) -> Result<()>;
    fn leases(&self) -> Result<Vec<LeaseRow>>;
    fn heartbeat(&self, instance: &str, within: Duration) -> Result<u64>;
    fn gateway_left(&self, instance: &str) -> Result<()>;
    fn journal_put(&self, cart: &str, json: &str) -> Result<()>;
    fn journal_get(&self, cart: &str) -> Result<Option<String>>;
    fn journal_clear(&self, cart: &str) -> Result<()>;
    #[doc(hidden)]
    fn debug_tables(&self) -> Result<Vec<String>>;
    #[doc(hidden)]
    fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable>;
    #[doc(hidden)]
    fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()>;
    #[doc(hidden)]
    fn debug_integrity(&self) -> Result<String>;
    #[doc(hidden)]
    fn debug_sum(&self, table: &str, column: &str) -> Result<i64>;
}

/// The transaction-scoped batch of a inventory file, as every backend offers it.
pub trait InventoryBatchOps {
    fn add(
        &self,
        sku: &str,
        warehouse: &str,
        qty: i64,
        as_of: Millis,
        upc: Option<&str>,
        description: Option<&str>,
    ) -> Result<()>;
    fn price(&self, sku: &str, price: &str, now: Millis) -> Result<()>;
    fn aggregate(&self) -> Result<Vec<String>>;
    fn zero_counts(&self, warehouses: &[String], as_of: Millis) -> Result<Vec<ZeroCount>>;
    fn warehouses(&self) -> Result<Vec<String>>;
    fn needs_staging(&self) -> bool;
    fn apply(self, meta: &ReportMeta, snapshot_warehouses: &[String]) -> Result<Applied>;
}

/// The transaction-scoped batch of a product file, as every backend offers it.
pub trait ProductBatchOps {
    fn upsert(
        &self,
        sku: &str,
        upc: Option<&str>,
        description: Option<&str>,
        price: Option<&str>,
        now: Millis,
    ) -> Result<()>;
    fn apply(self, meta: &ReportMeta) -> Result<Applied>;
}

/// The transaction-scoped batch of a order file, as every backend offers it.
pub trait OrderBatchOps {
    fn upsert(&self, l: &OrderLine, now: Millis) -> Result<()>;
    fn apply(self, meta: &ReportMeta) -> Result<Applied>;
}

impl Ledger {
    /// Opens (creating or upgrading) the ledger at `at`: a SQLite file,
    /// or a PostgreSQL database (a pooled connection).
    pub fn open(at: impl Into<LedgerLocation>) -> Result<Ledger> {
        let inner = match at.into() {
            LedgerLocation::File(path) => Backend::Sqlite(sqlite::SqliteLedger::open(&path)?),
            LedgerLocation::Postgres(url) => Backend::Pg(pg::PgLedger::open(url.expose())?),
        };
        Ok(Ledger { inner })
    }

    /// `copy-ledger --from FILE`: every row of the SQLite ledger `from`
    /// (history included) into this PostgreSQL ledger, which must be
    /// empty. Returns the rows copied per table.
    pub fn copy_from_sqlite(&self, from: &Path) -> Result<Vec<(String, u64)>> {
        let Backend::Pg(to) = &self.inner else {
            return Err(LedgerError::Usage(
                "copy-ledger copies into a PostgreSQL ledger: give [ledger] url or url_env".into(),
            ));
        };
        if !from.is_file() {
            return Err(LedgerError::Usage(format!(
                "{}: no such SQLite ledger",
                from.display()
            )));
        }
        let src = sqlite::SqliteLedger::open(from)?;
        to.copy_from(&src)
    }

    /// Whether this handle is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner, Backend::Pg(_))
    }

    pub fn schema_version(&self) -> Result<i64> {
        LedgerBackend::schema_version(&self.inner)
    }

    /// Fails with [`LedgerError::ReadOnly`], naming `path`, when SQLite
    /// opened the ledger read-only (a file this user may not write): one
    /// clear line before the first write, instead of SQLite's
    /// "attempt to write a readonly database" at it.
    pub fn check_writable(&self, at: impl Into<LedgerLocation>) -> Result<()> {
        let at = at.into();
        LedgerBackend::check_writable(&self.inner, at.as_file().unwrap_or(Path::new("")))
    }

    /// Registers the config's merchants and carts (idempotent).
    pub fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()> {
        LedgerBackend::ensure(&self.inner, merchants, carts)
    }

    pub fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>> {
        LedgerBackend::already_applied(&self.inner, source, sha256)
    }

    /// Logs a received file that changed no stock or order: a duplicate, a
    /// 997, or a rejected or held file (with its first error).
    #[allow(clippy::too_many_arguments)]
    pub fn record_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        outcome: &str,
        archive: Option<&str>,
        error: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        LedgerBackend::record_file(
            &self.inner,
            source,
            file_name,
            sha256,
            outcome,
            archive,
            error,
            now,
        )
    }

    /// Records a quarantined file dropped by an operator (`quarantine
    /// discard`): its rejected or held records are cleared, and the discard
    /// is kept with the archive copy of its bytes.
    pub fn discard_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        archive: &str,
        now: Millis,
    ) -> Result<()> {
        LedgerBackend::discard_file(&self.inner, source, file_name, sha256, archive, now)
    }

    /// Every file a source listed last time, by name.
    pub fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>> {
        LedgerBackend::seen_files(&self.inner, source)
    }

    /// A listed file, with this size and mtime since `now` (forgets any
    /// outcome of an earlier version of it).
    pub fn note_seen(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        now: Millis,
    ) -> Result<()> {
        LedgerBackend::note_seen(&self.inner, source, name, size, mtime, now)
    }

    /// A listed file was taken (or skipped for good): its outcome, and what
    /// is left to say about it (an after-step that failed).
    #[allow(clippy::too_many_arguments)]
    pub fn note_taken(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        outcome: &str,
        sha256: Option<&str>,
        note: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        LedgerBackend::note_taken(
            &self.inner,
            source,
            name,
            size,
            mtime,
            outcome,
            sha256,
            note,
            now,
        )
    }

    /// How many SKUs a merchant has (the size of a full feed, at most).
    pub fn product_count(&self, merchant: &str) -> Result<u64> {
        LedgerBackend::product_count(&self.inner, merchant)
    }

    /// A listed file that could not be taken this time (fetch or read
    /// failed): the reason is kept with it; it stays untaken (tried again).
    pub fn note_problem(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        note: &str,
        now: Millis,
    ) -> Result<()> {
        LedgerBackend::note_problem(&self.inner, source, name, size, mtime, note, now)
    }

    /// Forgets one file (it left the folder).
    pub fn forget(&self, source: &str, name: &str) -> Result<()> {
        LedgerBackend::forget(&self.inner, source, name)
    }

    /// Forgets these files of `source` (no longer listed), in one transaction.
    pub fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()> {
        LedgerBackend::forget_all(&mut self.inner, source, names)
    }

    /// Puts a cart's last attempt back to `at`: a skipped manual `sync`
    /// leaves the cart's schedule (its next due time) where it was.
    pub fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        LedgerBackend::keep_schedule(&self.inner, cart, at)
    }

    pub fn cart_state(&self, cart: &str) -> Result<CartState> {
        LedgerBackend::cart_state(&self.inner, cart)
    }

    /// The daemon's pending retry of a cart's failed delivery (None: none).
    pub fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        LedgerBackend::set_retry(&self.inner, cart, at)
    }

    pub fn max_report_id(&self) -> Result<i64> {
        LedgerBackend::max_report_id(&self.inner)
    }

    /// Inventory reports for `merchant` applied after report `since`, touching
    /// one of `warehouses` ([] = any).
    pub fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64> {
        LedgerBackend::reports_since(&self.inner, merchant, since, warehouses)
    }

    /// See [`LedgerBackend::order_reports_since`] (`sync_on_orders`).
    pub fn order_reports_since(
        &self,
        merchant: &str,
        since: i64,
        except: &[String],
    ) -> Result<i64> {
        LedgerBackend::order_reports_since(&self.inner, merchant, since, except)
    }

    /// Hands the SKUs a cart's feed includes (rule 6: all when full, else
    /// those named by a new report or whose value differs from the last
    /// sent) to `f`, in SKU order, as one streaming pass: a merge of the
    /// merchant's products, stock, open orders and the cart's last-sent
    /// values, each read in key order (never all in memory, nothing
    /// written). With `q.sku`, that SKU only, by index. A read error ends
    /// the iteration and is returned after `f` is done.
    pub fn feed_rows<T>(
        &self,
        q: &FeedQuery,
        f: impl FnOnce(&mut dyn Iterator<Item = FeedRow>) -> T,
    ) -> Result<T> {
        LedgerBackend::feed_rows(&self.inner, q, f)
    }

    pub fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool> {
        LedgerBackend::product_exists(&self.inner, merchant, sku)
    }

    /// See [`LedgerBackend::rows_of_skus`].
    pub fn rows_of_skus(
        &self,
        merchant: &str,
        skus: &[String],
        sync_time: Millis,
    ) -> Result<SkuRows> {
        LedgerBackend::rows_of_skus(&self.inner, merchant, skus, sync_time)
    }

    pub fn stock_rows(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
    ) -> Result<Vec<StockRow>> {
        LedgerBackend::stock_rows(&self.inner, merchant, sku, warehouses)
    }

    /// The order lines that [`Ledger::feed_rows`] subtracts for one SKU.
    pub fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>> {
        LedgerBackend::order_draws(&self.inner, merchant, sku, warehouses, sync_time)
    }

    /// Next `{seq}` for a cart's file names; committed at once so it never repeats.
    pub fn next_seq(&self, cart: &str) -> Result<i64> {
        LedgerBackend::next_seq(&self.inner, cart)
    }

    /// Next X12 control number for (sender, receiver); committed before use,
    /// so a crash or a failed delivery never lets one repeat.
    pub fn next_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        LedgerBackend::next_control(&self.inner, sender, receiver)
    }

    /// The control number `next_control` would give, without taking it.
    pub fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        LedgerBackend::peek_control(&self.inner, sender, receiver)
    }

    /// Records a sync attempt. When `delivered_through` is set (the file is
    /// delivered under its final name), the cart's last-sync mark and
    /// last-sent values move in the same transaction.
    pub fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64> {
        LedgerBackend::record_sync(&mut self.inner, e, delivered_through)
    }

    /// [`Ledger::record_sync`], and for a delivered feed the values it sent
    /// that differ from the last sent (`sent`): only those rows of
    /// `last_sent` are written (`sync_id`: the sync that last changed it).
    pub fn record_delivery(
        &mut self,
        e: &SyncEntry,
        delivered_through: Option<i64>,
        sent: Option<&mut SentLog>,
    ) -> Result<i64> {
        LedgerBackend::record_delivery(&mut self.inner, e, delivered_through, sent)
    }

    /// Marks the sent 846s of `carts` with group control `group` as
    /// acknowledged; returns how many sync entries matched.
    pub fn record_ack(
        &self,
        carts: &[String],
        group: i64,
        status: &str,
        codes: &str,
    ) -> Result<u64> {
        LedgerBackend::record_ack(&self.inner, carts, group, status, codes)
    }

    pub fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>> {
        LedgerBackend::history(&self.inner, cart, limit)
    }

    /// What `status` says of an inbound source, from the ledger.
    pub fn inbound_stats(&self, source: &str) -> Result<InboundStats> {
        LedgerBackend::inbound_stats(&self.inner, source)
    }

    /// A source's looks: the last good one, the current failed run.
    pub fn source_look(&self, source: &str) -> Result<SourceLook> {
        LedgerBackend::source_look(&self.inner, source)
    }

    /// Records one look at a source at `at`: a good listing (`error` None)
    /// ends a failed run and clears its error; a failed one counts.
    pub fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook> {
        LedgerBackend::note_look(&self.inner, source, at, error)
    }

    /// Row counts of every table, to prove a rejected file changed nothing.
    pub fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        LedgerBackend::table_counts(&self.inner)
    }

    /// Starts applying one inventory file; dropped without `apply`, nothing
    /// changes. `direct`: try the direct way (see [`Direct`]) first; `now`:
    /// the moment of the apply.
    pub fn inventory_batch(
        &mut self,
        merchant: &str,
        now: Millis,
        direct: bool,
    ) -> Result<InventoryBatch<'_>> {
        LedgerBackend::inventory_batch(&mut self.inner, merchant, now, direct)
    }

    pub fn order_batch(&mut self, merchant: &str, source: &str) -> Result<OrderBatch<'_>> {
        LedgerBackend::order_batch(&mut self.inner, merchant, source)
    }

    pub fn product_batch(&mut self, merchant: &str) -> Result<ProductBatch<'_>> {
        LedgerBackend::product_batch(&mut self.inner, merchant)
    }

    /// Whether there is no ledger at `path` yet (opening one creates it).
    /// A database: whether it holds no ledger yet (opening creates it).
    pub fn is_new(at: impl Into<LedgerLocation>) -> bool {
        match at.into() {
            LedgerLocation::File(path) => sqlite::SqliteLedger::is_new(&path),
            LedgerLocation::Postgres(url) => pg::PgLedger::is_new(url.expose()),
        }
    }

    /// Opens an existing ledger for commands that only read it (`status`,
    /// `explain`, ...). SQLite still opens it read-write: a WAL reader
    /// writes the `-shm` index, and an older ledger is migrated.
    pub fn open_read(at: impl Into<LedgerLocation>) -> Result<Ledger> {
        Ledger::open(at)
    }

    /// Deletes history older than `cutoff`: sync attempts (the newest
    /// attempt of each cart stays: status and the schedule read it) and
    /// inbound file records, in small batches, then gives the space back
    /// a little at a time (ledgers made with auto_vacuum = INCREMENTAL)
    /// and keeps the WAL short.
    pub fn prune_history(&self, cutoff: Millis) -> Result<PrunedRows> {
        LedgerBackend::prune_history(&self.inner, cutoff)
    }

    /// `/healthz`: opens the ledger read-only and reads its schema (`SELECT
    /// 1` alone would not touch the file: this also finds a ledger that is
    /// not a database), waiting at most `busy` for a lock.
    /// PostgreSQL: a fresh connection (at most `busy` to connect) reading
    /// the schema table.
    pub fn health(
        at: impl Into<LedgerLocation>,
        busy: Duration,
    ) -> std::result::Result<(), String> {
        match at.into() {
            LedgerLocation::File(path) => sqlite::SqliteLedger::health(&path, busy),
            LedgerLocation::Postgres(url) => pg::PgLedger::health(url.expose(), busy),
        }
    }

    /// Every archive path the ledger refers to (reports, inbound files,
    /// syncs), read without writing anything; `None` when there is no
    /// ledger or it cannot be read.
    pub fn archive_paths(at: impl Into<LedgerLocation>) -> Option<Vec<String>> {
        match at.into() {
            LedgerLocation::File(path) => sqlite::SqliteLedger::archive_paths(&path),
            at @ LedgerLocation::Postgres(_) => match Ledger::open(at).ok()?.inner {
                Backend::Pg(l) => l.archive_paths(),
                Backend::Sqlite(_) => None,
            },
        }
    }

    /// The ledger's size on disk now: its file and its WAL; a database's
    /// tables and their indexes.
    pub fn size_bytes(at: impl Into<LedgerLocation>) -> u64 {
        match at.into() {
            LedgerLocation::File(path) => sqlite::SqliteLedger::size_bytes(&path),
            at @ LedgerLocation::Postgres(_) => match Ledger::open(at).map(|l| l.inner) {
                Ok(Backend::Pg(l)) => l.size_bytes(),
                _ => 0,
            },
        }
    }

    /// Whether a `run` holding [`Ledger::instance_lock_path`] works the
    /// ledger alone (SQLite: rule 18's one `run` per ledger): then leases
    /// another holder left (a run that crashed) are handed back at its
    /// start instead of waiting for them to expire. PostgreSQL: false.
    pub fn exclusive_run(at: &LedgerLocation) -> bool {
        !at.is_postgres()
    }

    /// The file whose OS lock marks the one `run` of this ledger:
    /// `<ledger>.lock`; None for PostgreSQL (many runs share it, rule 33).
    pub fn instance_lock_path(at: &LedgerLocation) -> Option<PathBuf> {
        at.as_file().map(sqlite::SqliteLedger::instance_lock_path)
    }

    /// The folder for files in flight beside a SQLite ledger (scratch,
    /// per-cart locks): the ledger file's folder.
    pub fn scratch_root(path: &Path) -> &Path {
        sqlite::SqliteLedger::scratch_root(path)
    }

    /// Sets (or with `None` clears) this handle's fencing token: from now
    /// on every write that completes work (a file batch's `apply`,
    /// `record_file`, `note_taken`, `note_problem`, `discard_file`,
    /// `record_sync`, `record_delivery`, `set_retry`, `keep_schedule`,
    /// `journal_put`, `journal_clear`) first checks, in its own
    /// transaction, that the lease row of `fence.work` has `fence.holder`
    /// and `fence.generation` and `expires_at` later than the ledger's
    /// clock now; otherwise it writes nothing and fails with
    /// [`LedgerError::LeaseLost`]. Without a fence nothing is checked.
    pub fn set_fence(&mut self, fence: Option<Fence>) {
        LedgerBackend::set_fence(&mut self.inner, fence)
    }

    /// The fencing token set on this handle.
    pub fn fence(&self) -> Option<&Fence> {
        LedgerBackend::fence(&self.inner)
    }

    /// Takes the lease of `work` for `holder` for `ttl` from the ledger's
    /// clock now (never a time the caller passes), in one transaction:
    /// - no row yet: granted, generation 1;
    /// - held by `holder` and not expired: renewed (`expires_at` = now +
    ///   ttl), same generation and `taken_at`;
    /// - expired or released (whoever held it): granted, generation + 1,
    ///   `taken_at` = now;
    /// - held by another holder and not expired: `None`, nothing changes.
    pub fn take_lease(&self, work: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        LedgerBackend::take_lease(&self.inner, work, holder, ttl)
    }

    /// Renews `lease` to now + `ttl`: true when its row still has its
    /// holder and generation (also when it expired meanwhile and nobody
    /// took it: then nobody else can have worked it). False (nothing
    /// changed) when the lease is lost: taken by another holder, or taken
    /// again (generation moved), or released.
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        LedgerBackend::renew_lease(&self.inner, lease, ttl)
    }

    /// Hands `lease` back (a clean stop, or work given to another
    /// gateway): when its row still has its holder and generation, it
    /// expires now (kept, so that the next taker bumps the generation);
    /// otherwise nothing changes.
    pub fn release_lease(&self, lease: &Lease) -> Result<()> {
        LedgerBackend::release_lease(&self.inner, lease)
    }

    /// Every lease row, by work; `live` by the ledger's clock now.
    pub fn leases(&self) -> Result<Vec<LeaseRow>> {
        LedgerBackend::leases(&self.inner)
    }

    /// Records that gateway `instance` is up now (the ledger's clock) and
    /// returns how many gateways were seen within `within` of now, this
    /// one included (at least 1).
    pub fn heartbeat(&self, instance: &str, within: Duration) -> Result<u64> {
        LedgerBackend::heartbeat(&self.inner, instance, within)
    }

    /// Gateway `instance` stopped cleanly: its heartbeat row goes.
    pub fn gateway_left(&self, instance: &str) -> Result<()> {
        LedgerBackend::gateway_left(&self.inner, instance)
    }

    /// Keeps the interrupted-delivery journal of `cart` (replacing any);
    /// fenced.
    pub fn journal_put(&self, cart: &str, json: &str) -> Result<()> {
        LedgerBackend::journal_put(&self.inner, cart, json)
    }

    /// The interrupted-delivery journal of `cart`, if one is kept.
    pub fn journal_get(&self, cart: &str) -> Result<Option<String>> {
        LedgerBackend::journal_get(&self.inner, cart)
    }

    /// Drops the journal of `cart` (none: a no-op); fenced.
    pub fn journal_clear(&self, cart: &str) -> Result<()> {
        LedgerBackend::journal_clear(&self.inner, cart)
    }

    /// The ledger's tables, by name.
    #[doc(hidden)]
    pub fn debug_tables(&self) -> Result<Vec<String>> {
        LedgerBackend::debug_tables(&self.inner)
    }

    /// Every row of `table`, ordered by the columns `order_by` (in the
    /// stored order when empty).
    #[doc(hidden)]
    pub fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable> {
        LedgerBackend::debug_rows(&self.inner, table, order_by)
    }

    /// Inserts one row as is (what an older stockgate could have written).
    #[doc(hidden)]
    pub fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()> {
        LedgerBackend::debug_insert(&self.inner, table, row)
    }

    /// The backend's own integrity check: "ok" when whole.
    #[doc(hidden)]
    pub fn debug_integrity(&self) -> Result<String> {
        LedgerBackend::debug_integrity(&self.inner)
    }

    /// The sum of an integer column over a whole table (0 when empty).
    #[doc(hidden)]
    pub fn debug_sum(&self, table: &str, column: &str) -> Result<i64> {
        LedgerBackend::debug_sum(&self.inner, table, column)
    }
}
