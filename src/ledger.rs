//! The SQLite ledger: stock, orders, reports, carts' sync history.
//!
//! Every change to stock or orders happens in one transaction per file;
//! every rule that computes a number a cart receives is in one place,
//! [`Ledger::feed_rows`], shared by `sync` and `explain`.

use crate::formats::{FeedItem, WarehouseShare};
use crate::mapping::OutField;
use crate::util::{Millis, quoted};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashMap;
use std::path::Path;

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
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// Schema migrations, in order; `PRAGMA user_version` = how many have run.
/// Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: the first release.
    "
    CREATE TABLE merchants (id TEXT PRIMARY KEY);
    CREATE TABLE products (
        merchant TEXT NOT NULL, sku TEXT NOT NULL, upc TEXT, description TEXT,
        first_seen INTEGER NOT NULL,
        PRIMARY KEY (merchant, sku)) WITHOUT ROWID;
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, merchant TEXT NOT NULL, kind TEXT NOT NULL,
        file_name TEXT NOT NULL, sha256 TEXT NOT NULL, as_of INTEGER, rows INTEGER NOT NULL,
        stale INTEGER NOT NULL, zeroed INTEGER NOT NULL, applied_at INTEGER NOT NULL, archive_path TEXT);
    CREATE INDEX reports_sha ON reports (source, sha256);
    CREATE INDEX reports_merchant ON reports (merchant, id);
    CREATE TABLE report_warehouses (
        report_id INTEGER NOT NULL, warehouse TEXT NOT NULL, PRIMARY KEY (report_id, warehouse)) WITHOUT ROWID;
    CREATE TABLE stock (
        merchant TEXT NOT NULL, sku TEXT NOT NULL, warehouse TEXT NOT NULL,
        quantity INTEGER NOT NULL, as_of INTEGER NOT NULL,
        report_id INTEGER NOT NULL,        -- report that set the quantity
        named_report_id INTEGER NOT NULL,  -- last report that named this row
        PRIMARY KEY (merchant, sku, warehouse)) WITHOUT ROWID;
    CREATE INDEX stock_warehouse ON stock (merchant, warehouse);
    CREATE TABLE order_lines (
        source TEXT NOT NULL, order_id TEXT NOT NULL, line TEXT NOT NULL,
        merchant TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, warehouse TEXT,
        ordered_at INTEGER NOT NULL, status TEXT, cancelled INTEGER NOT NULL,
        entered_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, report_id INTEGER NOT NULL,
        PRIMARY KEY (source, order_id, line));
    CREATE INDEX order_lines_sku ON order_lines (merchant, sku);
    CREATE TABLE inbound_files (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, file_name TEXT NOT NULL, sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL, report_id INTEGER, received_at INTEGER NOT NULL, archive_path TEXT);
    CREATE INDEX inbound_files_source ON inbound_files (source, id);
    CREATE TABLE carts (
        id TEXT PRIMARY KEY, last_report_id INTEGER NOT NULL DEFAULT 0,
        last_attempt INTEGER, last_success INTEGER, last_outcome TEXT, seq INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE syncs (
        id INTEGER PRIMARY KEY, cart TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL, reason TEXT, items INTEGER NOT NULL, file TEXT, bytes INTEGER,
        sha256 TEXT, forced INTEGER NOT NULL, archive_path TEXT,
        interchange_control INTEGER, group_control INTEGER, ack_status TEXT, ack_codes TEXT);
    CREATE INDEX syncs_cart ON syncs (cart, id);
    CREATE TABLE last_sent (
        cart TEXT NOT NULL, sku TEXT NOT NULL, value INTEGER NOT NULL, sync_id INTEGER NOT NULL,
        PRIMARY KEY (cart, sku)) WITHOUT ROWID;
    CREATE TABLE control_numbers (
        sender TEXT NOT NULL, receiver TEXT NOT NULL, last INTEGER NOT NULL,
        PRIMARY KEY (sender, receiver)) WITHOUT ROWID;
    ",
    // 2: remote pickup. Every file a source has listed: first seen with this
    // size and mtime (to tell when it is stable), and once taken, its outcome
    // (so a kept file is never applied again, and a kept rejected file is not
    // fetched again until it changes). Rejected and held files are logged in
    // inbound_files with their first error; `cleared` once fixed and applied.
    "
    CREATE TABLE remote_files (
        source TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER,
        first_seen INTEGER NOT NULL, outcome TEXT, sha256 TEXT, taken_at INTEGER, note TEXT,
        PRIMARY KEY (source, name)) WITHOUT ROWID;
    ALTER TABLE inbound_files ADD COLUMN error TEXT;
    ALTER TABLE inbound_files ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0;
    ",
    // 3: nothing reads stock by (merchant, warehouse) but a full snapshot's
    // check and zeroing, once per such file, which scan the merchant's stock
    // by its primary key as fast; every ingest paid for keeping the index.
    "
    DROP INDEX IF EXISTS stock_warehouse;
    ",
    // 4: a product's price (inbound `price`, 846 CTP): validated decimal
    // text, never a float; NULL when no file gave one.
    "
    ALTER TABLE products ADD COLUMN price TEXT;
    ",
    // 5: each inbound source's looks (rule 37, 38): the last good listing,
    // the last failed one and how many failed in a row, so `status` run
    // beside the daemon and a restarted daemon's metrics see them.
    "
    CREATE TABLE source_looks (
        source TEXT PRIMARY KEY,
        last_look INTEGER,
        last_error TEXT,
        last_error_at INTEGER,
        failures INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    ",
    // 6: a cart's pending retry of a failed delivery (the daemon's), so
    // `status` beside it and a restarted daemon see when it comes.
    "
    ALTER TABLE carts ADD COLUMN retry_at INTEGER;
    ",
];

pub struct Ledger {
    conn: Connection,
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

/// SQLite's `safe_sum!` on an exact sum: TOTAL (a double), clamped to ±4e18,
/// cast back to an integer.
fn safe_total(sum: i128) -> i64 {
    (sum as f64).clamp(-4e18, 4e18) as i64
}

/// One key-ordered scan of the feed merge, its current row held in
/// reusable buffers (no allocation per row once warm).
struct Cursor<'s> {
    rows: rusqlite::Rows<'s>,
    done: bool,
    sku: String,
    /// Text column 1 (stock, orders: the warehouse), when not NULL.
    text: Option<String>,
    /// Integer columns from `ints_from` on.
    ints: [i64; 3],
}

fn text_of(v: rusqlite::types::ValueRef<'_>, col: usize) -> rusqlite::Result<&str> {
    v.as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, v.data_type(), Box::new(e)))
}

impl<'s> Cursor<'s> {
    fn new(rows: rusqlite::Rows<'s>) -> rusqlite::Result<Self> {
        let mut c = Cursor {
            rows,
            done: false,
            sku: String::new(),
            text: None,
            ints: [0; 3],
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> rusqlite::Result<()> {
        let Some(r) = self.rows.next()? else {
            self.done = true;
            return Ok(());
        };
        let n = r.as_ref().column_count();
        self.sku.clear();
        self.sku.push_str(text_of(r.get_ref(0)?, 0)?);
        // last_sent: (sku, value); stock and orders: (sku, warehouse, ints...).
        let first_int = if n == 2 {
            1
        } else {
            match r.get_ref(1)? {
                rusqlite::types::ValueRef::Null => self.text = None,
                v => {
                    let t = self.text.get_or_insert_with(String::new);
                    t.clear();
                    t.push_str(text_of(v, 1)?);
                }
            }
            2
        };
        for (i, col) in (first_int..n).enumerate() {
            self.ints[i] = r.get(col)?;
        }
        Ok(())
    }

    /// Skips rows before `sku`; whether the current row is `sku`'s.
    fn seek(&mut self, sku: &str) -> rusqlite::Result<bool> {
        while !self.done && self.sku.as_str() < sku {
            self.advance()?;
        }
        Ok(!self.done && self.sku == sku)
    }
}

/// The whole-catalog feed as one streaming pass: products, stock, open
/// orders and last-sent values, each scanned in SKU order (SQLite's binary
/// collation is byte order, as Rust's `str`), merged per SKU; or one SKU's
/// rows of each, for `explain`.
struct FeedMerge<'q, 's> {
    q: &'q FeedQuery<'q>,
    products: rusqlite::Rows<'s>,
    stock: Cursor<'s>,
    orders: Cursor<'s>,
    sent: Cursor<'s>,
    /// The current SKU's counted stock rows: (warehouse, as_of, quantity); buffers reused.
    counted: Vec<(String, i64, i64)>,
    /// With a breakdown (`q.locations`): the current SKU's open orders per
    /// warehouse they draw on ("" when no stock was ever counted).
    draws: Vec<(String, i128)>,
    err: Option<rusqlite::Error>,
}

/// Whether a cart counting `warehouses` ([] = all) counts `warehouse`.
fn counts(warehouses: &[String], warehouse: &str) -> bool {
    warehouses.is_empty() || warehouses.iter().any(|w| w == warehouse)
}

impl FeedMerge<'_, '_> {
    fn step(&mut self) -> rusqlite::Result<Option<FeedRow>> {
        let q = self.q;
        loop {
            let Some(p) = self.products.next()? else {
                return Ok(None);
            };
            let sku = text_of(p.get_ref(0)?, 0)?;
            // Stock counted for this cart: summed (rule 2), latest as-of, last report naming it.
            let mut sum = 0i128;
            let mut any = false;
            let mut latest: Option<i64> = None;
            let mut named: Option<i64> = None;
            let mut n_counted = 0;
            if self.stock.seek(sku)? {
                while !self.stock.done && self.stock.sku == sku {
                    let w = self.stock.text.as_deref().unwrap_or("");
                    if counts(q.warehouses, w) {
                        let [qty, as_of, nr] = self.stock.ints;
                        sum += qty as i128;
                        any = true;
                        latest = latest.max(Some(as_of));
                        named = named.max(Some(nr));
                        if n_counted == self.counted.len() {
                            self.counted.push((String::new(), 0, 0));
                        }
                        let slot = &mut self.counted[n_counted];
                        slot.0.clear();
                        slot.0.push_str(w);
                        slot.1 = as_of;
                        slot.2 = qty;
                        n_counted += 1;
                    }
                    self.stock.advance()?;
                }
            }
            // Open orders since the count of the stock they draw on.
            let mut drawn = 0i128;
            let mut any_drawn = false;
            let breakdown = !q.locations.is_empty();
            self.draws.clear();
            if self.orders.seek(sku)? {
                while !self.orders.done && self.orders.sku == sku {
                    let [qty, ordered_at, _] = self.orders.ints;
                    let since = match self.orders.text.as_deref() {
                        None => Some(latest),
                        Some(w) if counts(q.warehouses, w) => Some(
                            self.counted[..n_counted]
                                .iter()
                                .find(|(cw, _, _)| cw == w)
                                .map(|(_, a, _)| *a),
                        ),
                        Some(_) => None,
                    };
                    if let Some(since) = since
                        && ordered_at > since.unwrap_or(-9223372036854775807)
                    {
                        drawn += qty as i128;
                        any_drawn = true;
                        if breakdown {
                            let counted = &self.counted[..n_counted];
                            let w = self.orders.text.as_deref();
                            add_draw(&mut self.draws, draws_on(counted, latest, w), qty);
                        }
                    }
                    self.orders.advance()?;
                }
            }
            let stock_q = if any { safe_total(sum) } else { 0 };
            let orders_q = if any_drawn { safe_total(drawn) } else { 0 };
            let available = stock_q - orders_q;
            let value = if available < q.min_level {
                0
            } else {
                available.max(0)
            };
            let last = if self.sent.seek(sku)? {
                Some(self.sent.ints[0])
            } else {
                None
            };
            let changed = last != Some(value);
            let include = q.full || named.unwrap_or(0) > q.since_report || changed;
            if !include {
                continue;
            }
            let (warehouses, unplaced) = if breakdown {
                split_by_warehouse(q.locations, &self.counted[..n_counted], &self.draws, value)
            } else {
                (Vec::new(), 0)
            };
            return Ok(Some(FeedRow {
                item: FeedItem {
                    sku: sku.to_string(),
                    quantity: value,
                    upc: p.get(1)?,
                    description: p.get(2)?,
                    as_of: latest,
                    price: p.get(3)?,
                    on_hand: stock_q,
                    committed: orders_q,
                    warehouses,
                    unplaced,
                },
                available,
                include,
                changed,
            }));
        }
    }
}

/// The warehouse an open order line draws on (rule 2): its own, else the
/// SKU's latest-counted warehouse (the first by name among equal as-ofs),
/// else "" (no stock counted).
fn draws_on<'a>(
    counted: &'a [(String, i64, i64)],
    latest: Option<i64>,
    own: Option<&'a str>,
) -> &'a str {
    own.or_else(|| {
        counted
            .iter()
            .find(|(_, a, _)| Some(*a) == latest)
            .map(|(w, _, _)| w.as_str())
    })
    .unwrap_or("")
}

fn add_draw(draws: &mut Vec<(String, i128)>, warehouse: &str, qty: i64) {
    match draws.iter_mut().find(|(w, _)| w == warehouse) {
        Some((_, d)) => *d += i128::from(qty),
        None => draws.push((warehouse.to_string(), i128::from(qty))),
    }
}

/// One warehouse while a SKU's value is split.
struct Bucket<'a> {
    warehouse: &'a str,
    listed: bool,
    on_hand: i128,
    drawn: i128,
    share: i128,
}

/// The bucket of warehouse `w`, added (unlisted) when new.
fn bucket_at<'a>(buckets: &mut Vec<Bucket<'a>>, w: &'a str) -> usize {
    match buckets.iter().position(|b| b.warehouse == w) {
        Some(i) => i,
        None => {
            buckets.push(Bucket {
                warehouse: w,
                listed: false,
                on_hand: 0,
                drawn: 0,
                share: 0,
            });
            buckets.len() - 1
        }
    }
}

/// Splits a SKU's value sent over warehouses (per-warehouse 846s), never
/// overselling (rules 4 and 5 hold for the sum):
///
/// - a warehouse's *net* is its latest count minus the open orders drawing
///   on it (`draws`: the line's warehouse, else the SKU's latest-counted);
/// - each warehouse starts with its net, or 0 when the net is negative;
/// - those starting shares exceed `value` by the other warehouses'
///   shortfalls (and by everything when min_level sends 0): that excess is
///   taken away first from warehouses outside `listed` (they cannot be
///   sent), then from the largest share, then the next largest (ties in
///   warehouse name order), until the shares sum to `value` exactly.
///
/// Returns the share of every warehouse in `listed`, in that order (0 for
/// one the SKU has no stock in), and what is left on unlisted warehouses
/// (`unplaced`; the item then cannot be sent per warehouse). Example: W1
/// counts 5, W2 counts 0 with 3 ordered: total 2; W1's 5 loses the excess
/// 3, so W1 = 2, W2 = 0.
fn split_by_warehouse<'a>(
    listed: &'a [String],
    stock: &'a [(String, i64, i64)],
    draws: &'a [(String, i128)],
    value: i64,
) -> (Vec<WarehouseShare>, i64) {
    let mut buckets: Vec<Bucket> = listed
        .iter()
        .map(|w| Bucket {
            warehouse: w,
            listed: true,
            on_hand: 0,
            drawn: 0,
            share: 0,
        })
        .collect();
    for (w, _, qty) in stock {
        let i = bucket_at(&mut buckets, w);
        buckets[i].on_hand += i128::from(*qty);
    }
    for (w, d) in draws {
        let i = bucket_at(&mut buckets, w);
        buckets[i].drawn += d;
    }
    for b in &mut buckets {
        b.share = (b.on_hand - b.drawn).max(0);
    }
    let mut excess = buckets.iter().map(|b| b.share).sum::<i128>() - i128::from(value);
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&buckets[a], &buckets[b]);
        x.listed
            .cmp(&y.listed)
            .then(y.share.cmp(&x.share))
            .then(x.warehouse.cmp(y.warehouse))
    });
    for i in order {
        if excess <= 0 {
            break;
        }
        let take = excess.min(buckets[i].share);
        buckets[i].share -= take;
        excess -= take;
    }
    let unplaced = buckets
        .iter()
        .filter(|b| !b.listed)
        .map(|b| b.share)
        .sum::<i128>();
    let shares = buckets
        .iter()
        .filter(|b| b.listed)
        .map(|b| WarehouseShare {
            warehouse: b.warehouse.to_string(),
            quantity: safe_total(b.share),
            on_hand: safe_total(b.on_hand),
            committed: safe_total(b.drawn),
        })
        .collect();
    (shares, safe_total(unplaced))
}

impl Iterator for FeedMerge<'_, '_> {
    type Item = FeedRow;
    fn next(&mut self) -> Option<FeedRow> {
        if self.err.is_some() {
            return None;
        }
        match self.step() {
            Ok(r) => r,
            Err(e) => {
                self.err = Some(e);
                None
            }
        }
    }
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

impl rusqlite::ToSql for SyncOutcome {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
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
}

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

/// Counted stock for a cart: `st` its rows, `agg` summed per SKU.
/// ?1 merchant, ?2 JSON list of warehouses ('[]' = all); `sku_filter` is ""
/// or `AND sku = ?N` (one SKU: searched by the stock primary key).
fn counted(sku_filter: &str) -> String {
    format!(
        "
    st AS (SELECT sku, warehouse, quantity, as_of, named_report_id FROM stock
           WHERE merchant = ?1 {sku_filter} AND (?2 = '[]' OR warehouse IN (SELECT value FROM json_each(?2)))),
    agg AS (SELECT sku, {} AS q, MAX(as_of) AS latest, MAX(named_report_id) AS named
            FROM st GROUP BY sku)",
        safe_sum!("quantity")
    )
}

/// The four scans [`FeedMerge`] merges, in SKU order: products (?1
/// merchant), stock (?1), open orders (?1, ?2 sync time) and the cart's
/// last-sent values (?1 cart). `one_sku`: for one SKU (?2; ?3 for orders),
/// searched by index (explain on a big ledger).
fn merge_sql(one_sku: bool) -> [String; 4] {
    let (one, one_order) = if one_sku {
        ("AND sku = ?2", "AND sku = ?3")
    } else {
        ("", "")
    };
    [
        format!(
            "SELECT sku, upc, description, price FROM products WHERE merchant = ?1 {one} ORDER BY sku"
        ),
        format!(
            "SELECT sku, warehouse, quantity, as_of, named_report_id FROM stock
             WHERE merchant = ?1 {one} ORDER BY sku, warehouse"
        ),
        format!(
            "SELECT sku, warehouse, quantity, ordered_at FROM order_lines INDEXED BY order_lines_sku
             WHERE merchant = ?1 AND cancelled = 0 AND ordered_at <= ?2 {one_order} ORDER BY sku"
        ),
        format!("SELECT sku, value FROM last_sent WHERE cart = ?1 {one} ORDER BY sku"),
    ]
}

/// Open order lines that draw on counted stock: ordered after the as-of of
/// the stock they draw on (the line's warehouse, else the SKU's latest count)
/// and not after the sync time (?3). Never-counted stock draws every order.
const DRAWING_ORDERS: &str = "
    FROM order_lines o
    LEFT JOIN st s ON s.sku = o.sku AND s.warehouse = o.warehouse
    LEFT JOIN agg a ON a.sku = o.sku
    WHERE o.merchant = ?1 AND o.cancelled = 0 AND o.ordered_at <= ?3
      AND (o.warehouse IS NULL OR ?2 = '[]' OR o.warehouse IN (SELECT value FROM json_each(?2)))
      AND o.ordered_at > COALESCE(CASE WHEN o.warehouse IS NULL THEN a.latest ELSE s.as_of END, -9223372036854775807)";

impl Ledger {
    pub fn open(path: &Path) -> Result<Ledger> {
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
        let mut l = Ledger { conn };
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

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Fails with [`LedgerError::ReadOnly`], naming `path`, when SQLite
    /// opened the ledger read-only (a file this user may not write): one
    /// clear line before the first write, instead of SQLite's
    /// "attempt to write a readonly database" at it.
    pub fn check_writable(&self, path: &Path) -> Result<()> {
        if self.conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(LedgerError::ReadOnly {
                path: path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Registers the config's merchants and carts (idempotent).
    pub fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()> {
        for m in merchants {
            self.conn
                .execute("INSERT OR IGNORE INTO merchants (id) VALUES (?1)", [m])?;
        }
        for c in carts {
            self.conn
                .execute("INSERT OR IGNORE INTO carts (id) VALUES (?1)", [c])?;
        }
        Ok(())
    }

    // ----- inbound -----

    pub fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM reports WHERE source = ?1 AND sha256 = ?2 LIMIT 1",
                [source, sha256],
                |r| r.get(0),
            )
            .optional()?)
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
        self.conn.execute(
            "INSERT INTO inbound_files (source, file_name, sha256, outcome, received_at, archive_path, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![source, file_name, sha256, outcome, now, archive, error],
        )?;
        Ok(())
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
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE inbound_files SET cleared = 1
             WHERE source = ?1 AND file_name = ?2 AND outcome IN ('rejected', 'held') AND cleared = 0",
            params![source, file_name],
        )?;
        tx.execute(
            "INSERT INTO inbound_files (source, file_name, sha256, outcome, received_at, archive_path)
             VALUES (?1, ?2, ?3, 'discarded', ?4, ?5)",
            params![source, file_name, sha256, now, archive],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every file a source listed last time, by name.
    pub fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, size, mtime, first_seen, outcome, note FROM remote_files WHERE source = ?1",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                SeenFile {
                    size: r.get(1)?,
                    mtime: r.get(2)?,
                    first_seen: r.get(3)?,
                    outcome: r.get(4)?,
                    note: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        self.conn.execute(
            "INSERT INTO remote_files (source, name, size, mtime, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
               first_seen = excluded.first_seen, outcome = NULL, sha256 = NULL, taken_at = NULL, note = NULL",
            params![source, name, size as i64, mtime, now],
        )?;
        Ok(())
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
        self.conn.execute(
            "INSERT INTO remote_files (source, name, size, mtime, first_seen, outcome, sha256, taken_at, note)
             VALUES (?1, ?2, ?3, ?4, ?8, ?5, ?6, ?8, ?7)
             ON CONFLICT (source, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
               outcome = excluded.outcome, sha256 = COALESCE(excluded.sha256, remote_files.sha256),
               taken_at = excluded.taken_at, note = excluded.note",
            params![source, name, size as i64, mtime, outcome, sha256, note, now],
        )?;
        Ok(())
    }

    /// How many SKUs a merchant has (the size of a full feed, at most).
    pub fn product_count(&self, merchant: &str) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM products WHERE merchant = ?1",
            [merchant],
            |r| r.get(0),
        )?)
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
        self.conn.execute(
            "INSERT INTO remote_files (source, name, size, mtime, first_seen, note) VALUES (?1, ?2, ?3, ?4, ?6, ?5)
             ON CONFLICT (source, name) DO UPDATE SET note = excluded.note",
            params![source, name, size as i64, mtime, note, now],
        )?;
        Ok(())
    }

    /// Forgets one file (it left the folder).
    pub fn forget(&self, source: &str, name: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM remote_files WHERE source = ?1 AND name = ?2",
            [source, name],
        )?;
        Ok(())
    }

    /// Forgets these files of `source` (no longer listed), in one transaction.
    pub fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare("DELETE FROM remote_files WHERE source = ?1 AND name = ?2")?;
            for n in names {
                del.execute([source, n])?;
            }
        }
        tx.commit()?;
        Ok(())
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
        let conn = &self.conn;
        // Immediate: the write lock is held from the first row to the commit,
        // so the duplicate check in `apply` and the apply are one step
        // whatever other process ingests the same file.
        let tx = Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let direct = if direct {
            let report_id: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM reports", [], |r| {
                    r.get(0)
                })?;
            Some(std::cell::RefCell::new(Direct::new(
                conn, merchant, report_id, now,
            )?))
        } else {
            tx.execute_batch(
                "DROP TABLE IF EXISTS temp.staging;
                 CREATE TEMP TABLE staging (sku TEXT NOT NULL, warehouse TEXT NOT NULL, qty INTEGER NOT NULL,
                                            as_of INTEGER NOT NULL, upc TEXT, description TEXT);",
            )?;
            None
        };
        Ok(InventoryBatch {
            direct,
            tx,
            merchant: merchant.to_string(),
        })
    }

    /// A write transaction for one file and the report id it will take.
    fn begin_report(&mut self) -> Result<(Transaction<'_>, i64)> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let report_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM reports", [], |r| {
                r.get(0)
            })?;
        Ok((tx, report_id))
    }

    pub fn order_batch(&mut self, merchant: &str, source: &str) -> Result<OrderBatch<'_>> {
        let (tx, report_id) = self.begin_report()?;
        Ok(OrderBatch {
            tx,
            merchant: merchant.to_string(),
            source: source.to_string(),
            report_id,
        })
    }

    pub fn product_batch(&mut self, merchant: &str) -> Result<ProductBatch<'_>> {
        let (tx, report_id) = self.begin_report()?;
        Ok(ProductBatch {
            tx,
            merchant: merchant.to_string(),
            report_id,
        })
    }

    // ----- carts -----

    /// Puts a cart's last attempt back to `at`: a skipped manual `sync`
    /// leaves the cart's schedule (its next due time) where it was.
    pub fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        self.conn.execute(
            "UPDATE carts SET last_attempt = ?2 WHERE id = ?1",
            rusqlite::params![cart, at],
        )?;
        Ok(())
    }

    pub fn cart_state(&self, cart: &str) -> Result<CartState> {
        Ok(self
            .conn
            .query_row("SELECT last_report_id, last_attempt, last_success, last_outcome, retry_at FROM carts WHERE id = ?1", [cart], |r| {
                Ok(CartState { last_report_id: r.get(0)?, last_attempt: r.get(1)?, last_success: r.get(2)?, last_outcome: r.get(3)?, retry_at: r.get(4)? })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// The daemon's pending retry of a cart's failed delivery (None: none).
    pub fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        self.conn.execute(
            "UPDATE carts SET retry_at = ?2 WHERE id = ?1",
            params![cart, at],
        )?;
        Ok(())
    }

    pub fn max_report_id(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM reports", [], |r| r.get(0))?)
    }

    /// Inventory reports for `merchant` applied after report `since`, touching
    /// one of `warehouses` ([] = any).
    pub fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(DISTINCT r.id) FROM reports r JOIN report_warehouses w ON w.report_id = r.id
             WHERE r.merchant = ?1 AND r.kind = 'inventory' AND r.id > ?2
               AND (?3 = '[]' OR w.warehouse IN (SELECT value FROM json_each(?3)))",
            params![merchant, since, json_list(warehouses)],
            |r| r.get(0),
        )?)
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
        // One SKU (explain): the same merge over that SKU's rows.
        let sku = q.sku.unwrap_or_default();
        let n = if q.sku.is_some() { 2 } else { 1 };
        let [products, stock, orders, sent] = merge_sql(q.sku.is_some());
        let mut products = self.conn.prepare_cached(&products)?;
        let mut stock = self.conn.prepare_cached(&stock)?;
        let mut orders = self.conn.prepare_cached(&orders)?;
        let mut sent = self.conn.prepare_cached(&sent)?;
        let by_merchant: [&dyn rusqlite::ToSql; 2] = [&q.merchant, &sku];
        let by_cart: [&dyn rusqlite::ToSql; 2] = [&q.cart, &sku];
        let for_orders: [&dyn rusqlite::ToSql; 3] = [&q.merchant, &q.sync_time, &sku];
        let mut merge = FeedMerge {
            q,
            products: products.query(&by_merchant[..n])?,
            stock: Cursor::new(stock.query(&by_merchant[..n])?)?,
            orders: Cursor::new(orders.query(&for_orders[..n + 1])?)?,
            sent: Cursor::new(sent.query(&by_cart[..n])?)?,
            counted: Vec::new(),
            draws: Vec::new(),
            err: None,
        };
        let out = f(&mut merge);
        match merge.err.take() {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    pub fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM products WHERE merchant = ?1 AND sku = ?2)",
            [merchant, sku],
            |r| r.get(0),
        )?)
    }

    pub fn stock_rows(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
    ) -> Result<Vec<StockRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.warehouse, s.quantity, s.as_of, COALESCE(r.file_name, '') FROM stock s LEFT JOIN reports r ON r.id = s.report_id
             WHERE s.merchant = ?1 AND s.sku = ?2 AND (?3 = '[]' OR s.warehouse IN (SELECT value FROM json_each(?3)))
             ORDER BY s.warehouse",
        )?;
        let rows = stmt.query_map(params![merchant, sku, json_list(warehouses)], |r| {
            Ok(StockRow {
                warehouse: r.get(0)?,
                quantity: r.get(1)?,
                as_of: r.get(2)?,
                report: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The order lines that [`Ledger::feed_rows`] subtracts for one SKU.
    pub fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>> {
        let sql = format!(
            "WITH {} SELECT o.order_id, o.line, o.quantity, o.ordered_at {DRAWING_ORDERS} AND o.sku = ?4
             ORDER BY o.ordered_at, o.order_id, o.line",
            counted("AND sku = ?4")
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            params![merchant, json_list(warehouses), sync_time, sku],
            |r| {
                Ok(OrderDraw {
                    order_id: r.get(0)?,
                    line: r.get(1)?,
                    quantity: r.get(2)?,
                    ordered_at: r.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Next `{seq}` for a cart's file names; committed at once so it never repeats.
    pub fn next_seq(&self, cart: &str) -> Result<i64> {
        self.conn
            .execute("INSERT OR IGNORE INTO carts (id) VALUES (?1)", [cart])?;
        Ok(self.conn.query_row(
            "UPDATE carts SET seq = seq + 1 WHERE id = ?1 RETURNING seq",
            [cart],
            |r| r.get(0),
        )?)
    }

    /// Next X12 control number for (sender, receiver); committed before use,
    /// so a crash or a failed delivery never lets one repeat.
    pub fn next_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "INSERT INTO control_numbers (sender, receiver, last) VALUES (?1, ?2, 1)
             ON CONFLICT (sender, receiver) DO UPDATE SET last = CASE WHEN last >= 999999999 THEN 1 ELSE last + 1 END
             RETURNING last",
            [sender, receiver],
            |r| r.get(0),
        )?)
    }

    /// The control number `next_control` would give, without taking it.
    pub fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT last FROM control_numbers WHERE sender = ?1 AND receiver = ?2",
                [sender, receiver],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match last {
            Some(n) if n < 999_999_999 => n + 1,
            _ => 1,
        })
    }

    /// Records a sync attempt. When `delivered_through` is set (the file is
    /// delivered under its final name), the cart's last-sync mark and
    /// last-sent values move in the same transaction.
    pub fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64> {
        self.record_delivery(e, delivered_through, None)
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
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO syncs (cart, started_at, finished_at, outcome, reason, items, file, bytes, sha256, forced,
                                archive_path, interchange_control, group_control)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                e.cart, e.started_at, e.finished_at, e.outcome, e.reason, e.items, e.file, e.bytes, e.sha256, e.forced,
                e.archive_path, e.interchange_control, e.group_control
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute("INSERT OR IGNORE INTO carts (id) VALUES (?1)", [&e.cart])?;
        tx.execute(
            "UPDATE carts SET last_attempt = ?2, last_outcome = ?3 WHERE id = ?1",
            params![e.cart, e.started_at, e.outcome],
        )?;
        if let Some(through) = delivered_through {
            tx.execute(
                "UPDATE carts SET last_success = ?2, last_report_id = MAX(last_report_id, ?3) WHERE id = ?1",
                params![e.cart, e.finished_at, through],
            )?;
            if let Some(log) = sent {
                let mut up = tx.prepare(
                    "INSERT INTO last_sent (cart, sku, value, sync_id) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (cart, sku) DO UPDATE SET value = excluded.value, sync_id = excluded.sync_id",
                )?;
                log.for_each(|sku, value| {
                    up.execute(params![e.cart, sku, value, id])?;
                    Ok(())
                })?;
            }
        }
        tx.commit()?;
        Ok(id)
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
        let n = self.conn.execute(
            "UPDATE syncs SET ack_status = ?3, ack_codes = ?4
             WHERE group_control = ?2 AND outcome = 'sent' AND cart IN (SELECT value FROM json_each(?1))",
            params![json_list(carts), group, status, codes],
        )?;
        Ok(n as u64)
    }

    pub fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, cart, started_at, finished_at, outcome, reason, items, file, bytes, sha256, forced, archive_path,
                    interchange_control, group_control, ack_status, ack_codes
             FROM syncs WHERE (?1 IS NULL OR cart = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![cart, limit as i64], |r| {
            Ok(SyncEntry {
                id: r.get(0)?,
                cart: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                outcome: SyncOutcome::parse(&r.get::<_, String>(4)?),
                reason: r.get(5)?,
                items: r.get(6)?,
                file: r.get(7)?,
                bytes: r.get(8)?,
                sha256: r.get(9)?,
                forced: r.get(10)?,
                archive_path: r.get(11)?,
                interchange_control: r.get(12)?,
                group_control: r.get(13)?,
                ack_status: r.get(14)?,
                ack_codes: r.get(15)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What `status` says of an inbound source, from the ledger.
    pub fn inbound_stats(&self, source: &str) -> Result<InboundStats> {
        let (last_pickup, applied) = self.conn.query_row(
            "SELECT MAX(received_at), COUNT(*) FILTER (WHERE outcome = 'applied')
             FROM inbound_files WHERE source = ?1",
            [source],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let file_error = self
            .conn
            .query_row(
                "SELECT file_name, error, received_at FROM inbound_files
                 WHERE source = ?1 AND outcome IN ('rejected', 'held') AND cleared = 0
                 ORDER BY id DESC LIMIT 1",
                [source],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Millis>(2)?,
                    ))
                },
            )
            .optional()?
            .map(|(f, e, at)| (format!("{f}: {}", e.unwrap_or_default()), at));
        let look = self.source_look(source)?;
        let look_error = look.last_error.clone().zip(look.last_error_at);
        // The latest of the two (a failed look wins a tie: it is current).
        let (last_error, last_error_at) = match (look_error, file_error) {
            (Some(l), Some(f)) if f.1 > l.1 => (Some(f.0), Some(f.1)),
            (Some(l), _) => (Some(l.0), Some(l.1)),
            (None, Some(f)) => (Some(f.0), Some(f.1)),
            (None, None) => (None, None),
        };
        Ok(InboundStats {
            last_pickup,
            applied,
            last_error,
            last_error_at,
            last_look: look.last_look,
            failures: look.failures,
        })
    }

    /// A source's looks: the last good one, the current failed run.
    pub fn source_look(&self, source: &str) -> Result<SourceLook> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_look, last_error, last_error_at, failures FROM source_looks
                 WHERE source = ?1",
                [source],
                |r| {
                    Ok(SourceLook {
                        last_look: r.get(0)?,
                        last_error: r.get(1)?,
                        last_error_at: r.get(2)?,
                        failures: r.get(3)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Records one look at a source at `at`: a good listing (`error` None)
    /// ends a failed run and clears its error; a failed one counts.
    pub fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook> {
        match error {
            None => self.conn.execute(
                "INSERT INTO source_looks (source, last_look, failures) VALUES (?1, ?2, 0)
                 ON CONFLICT (source) DO UPDATE SET last_look = excluded.last_look,
                     last_error = NULL, last_error_at = NULL, failures = 0",
                params![source, at],
            )?,
            Some(e) => self.conn.execute(
                "INSERT INTO source_looks (source, last_error, last_error_at, failures)
                 VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error,
                     last_error_at = excluded.last_error_at, failures = failures + 1",
                params![source, e, at],
            )?,
        };
        self.source_look(source)
    }

    /// Row counts of every table, to prove a rejected file changed nothing.
    pub fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        let names: Vec<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        names
            .into_iter()
            .map(|n| {
                let c: i64 =
                    self.conn
                        .query_row(&format!("SELECT COUNT(*) FROM \"{n}\""), [], |r| r.get(0))?;
                Ok((n, c))
            })
            .collect()
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// One inventory file being applied: rows are staged, then summed per
/// (SKU, warehouse) and merged into `stock` in [`InventoryBatch::apply`].
pub struct InventoryBatch<'a> {
    /// Dropped before the transaction (its statements first).
    direct: Option<std::cell::RefCell<Direct<'a>>>,
    tx: Transaction<'a>,
    merchant: String,
}
/// The direct way of applying an inventory file sorted by SKU (each SKU's
/// rows together, SKUs in increasing order, as most WMS exports are): the
/// rows of a SKU are summed per warehouse in memory (rule 7), then upserted
/// into `stock` and `products` [`BATCH`] rows per statement, no staging
/// table. Any other file, or a full snapshot, is staged
/// (`InventoryBatch::needs_staging` tells the caller to read it again so).
struct Direct<'a> {
    conn: &'a Connection,
    merchant: String,
    report_id: i64,
    now: Millis,
    /// The upserts of [`BATCH`] rows, their shared parameters bound.
    stock: rusqlite::Statement<'a>,
    products: rusqlite::Statement<'a>,
    /// The SKU being read, its rows summed per warehouse.
    sku: String,
    lots: Vec<Lot>,
    n_lots: usize,
    started: bool,
    /// Not sorted by SKU: the caller stages the file instead.
    unsorted: bool,
    stale: u64,
    warehouses: std::collections::BTreeSet<String>,
    /// (SKU, warehouse) -> (rows, sum) beyond ±10^12: the 1,000 first in key order.
    out_of_range: std::collections::BTreeMap<(String, String), (u64, i64)>,
    /// Summed rows and products waiting for their upsert.
    stock_rows: Vec<PendingStock>,
    product_rows: Vec<PendingProduct>,
}

/// Rows per upsert statement in the direct way. One statement over many
/// rows in key order keeps SQLite's B-tree cursor where the last row went,
/// so the next key is found from there (on a new ledger: appended to the
/// last page) instead of by a search from the root, and a statement's
/// fixed cost (start, reset) is paid once per batch. Measured (callgrind,
/// 100,000 rows): 16 beats 8, 32 and 128, whose bound texts no longer fit
/// SQLite's per-connection lookaside memory and each cost a malloc/free.
const BATCH: usize = 16;

/// One (SKU, warehouse) of the file, summed, waiting for its upsert.
struct PendingStock {
    sku: String,
    warehouse: String,
    qty: i64,
    as_of: Millis,
    /// The file's rows summed into it (all stale, or none).
    n: u64,
}

/// One SKU's product attributes, waiting for their upsert.
struct PendingProduct {
    sku: String,
    upc: Option<String>,
    description: Option<String>,
}

/// The stock upsert of `rows` rows: ?1 merchant, ?2 report, then per row
/// SKU, warehouse, quantity, as-of. A row older than the ledger's changes
/// nothing (rule 11).
///
/// `OR FAIL` (for this and [`products_upsert`]): a failed statement keeps
/// the rows before it instead of undoing itself (any error drops the
/// file's whole transaction anyway), so SQLite needs no statement journal
/// for the inserts; only the stock upsert's DO UPDATE still may abort. On
/// file, that journal costs two writes per page once it outgrew 64 KiB:
/// 1,000,000 rows wrote 329,000 pages to it, now 46,000 (1.55 s instead
/// of 2.07 s).
fn stock_upsert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let p = 3 + 4 * i;
            format!("(?1, ?{}, ?{}, ?{}, ?{}, ?2, ?2)", p, p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT OR FAIL INTO stock (merchant, sku, warehouse, quantity, as_of, report_id, named_report_id)
         VALUES {}
         ON CONFLICT (merchant, sku, warehouse) DO UPDATE SET
           quantity = excluded.quantity, as_of = excluded.as_of,
           report_id = excluded.report_id, named_report_id = excluded.named_report_id
         WHERE stock.as_of <= excluded.as_of",
        values.join(", ")
    )
}

/// The products upsert of `rows` rows: ?1 merchant, ?2 first seen, then per
/// row SKU, UPC, description (NULL keeps the ledger's).
fn products_upsert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let p = 3 + 3 * i;
            format!("(?1, ?{}, ?{}, ?{}, ?2)", p, p + 1, p + 2)
        })
        .collect();
    format!(
        "INSERT OR FAIL INTO products (merchant, sku, upc, description, first_seen) VALUES {}
         ON CONFLICT (merchant, sku) DO UPDATE SET
           upc = COALESCE(excluded.upc, products.upc),
           description = COALESCE(excluded.description, products.description)",
        values.join(", ")
    )
}

#[derive(Default)]
struct Lot {
    warehouse: String,
    sum: i128,
    n: u64,
    as_of: Millis,
    upc: Option<String>,
    description: Option<String>,
}

/// MAX() of SQLite over text: NULL ignored, byte order.
fn max_text(slot: &mut Option<String>, v: Option<&str>) {
    if let Some(v) = v
        && slot.as_deref().is_none_or(|s| v > s)
    {
        *slot = Some(v.to_string());
    }
}

/// [`max_text`] of two owned values, taking `v` when it wins.
fn take_max(slot: &mut Option<String>, v: &mut Option<String>) {
    if *v > *slot {
        *slot = v.take();
    }
}

impl<'a> Direct<'a> {
    fn new(conn: &'a Connection, merchant: &str, report_id: i64, now: Millis) -> Result<Self> {
        let mut stock = conn.prepare(&stock_upsert(BATCH))?;
        stock.raw_bind_parameter(1, merchant)?;
        stock.raw_bind_parameter(2, report_id)?;
        let mut products = conn.prepare(&products_upsert(BATCH))?;
        products.raw_bind_parameter(1, merchant)?;
        products.raw_bind_parameter(2, now)?;
        Ok(Direct {
            conn,
            merchant: merchant.to_string(),
            report_id,
            now,
            stock,
            products,
            sku: String::new(),
            lots: Vec::new(),
            n_lots: 0,
            started: false,
            unsorted: false,
            stale: 0,
            warehouses: Default::default(),
            out_of_range: Default::default(),
            stock_rows: Vec::with_capacity(BATCH),
            product_rows: Vec::with_capacity(BATCH),
        })
    }

    fn add(&mut self, row: (&str, &str, i64, Millis, Option<&str>, Option<&str>)) -> Result<()> {
        let (sku, warehouse, qty, as_of, upc, description) = row;
        if self.unsorted {
            return Ok(());
        }
        if !self.started || sku != self.sku {
            if self.started && sku <= self.sku.as_str() {
                self.unsorted = true;
                return Ok(());
            }
            self.flush()?;
            self.started = true;
            self.sku.clear();
            self.sku.push_str(sku);
        }
        let i = match self.lots[..self.n_lots]
            .iter()
            .position(|l| l.warehouse == warehouse)
        {
            Some(i) => i,
            None => {
                if self.n_lots == self.lots.len() {
                    self.lots.push(Lot::default());
                }
                let l = &mut self.lots[self.n_lots];
                l.warehouse.clear();
                l.warehouse.push_str(warehouse);
                l.sum = 0;
                l.n = 0;
                l.as_of = Millis::MIN;
                l.upc = None;
                l.description = None;
                self.n_lots += 1;
                self.n_lots - 1
            }
        };
        let l = &mut self.lots[i];
        l.sum += qty as i128;
        l.n += 1;
        l.as_of = l.as_of.max(as_of);
        max_text(&mut l.upc, upc);
        max_text(&mut l.description, description);
        Ok(())
    }

    /// Queues the SKU read so far: its stock per warehouse and its product
    /// attributes; writes the full batches.
    fn flush(&mut self) -> Result<()> {
        if !self.started || self.n_lots == 0 {
            return Ok(());
        }
        let (mut upc, mut description) = (None, None);
        for l in &mut self.lots[..self.n_lots] {
            take_max(&mut upc, &mut l.upc);
            take_max(&mut description, &mut l.description);
            if !self.warehouses.contains(&l.warehouse) {
                self.warehouses.insert(l.warehouse.clone());
            }
            let qty = safe_total(l.sum);
            if qty.abs() > 1_000_000_000_000 {
                self.out_of_range
                    .insert((self.sku.clone(), l.warehouse.clone()), (l.n, qty));
                if self.out_of_range.len() > 1000 {
                    self.out_of_range.pop_last();
                }
                continue;
            }
            self.stock_rows.push(PendingStock {
                sku: self.sku.clone(),
                warehouse: std::mem::take(&mut l.warehouse),
                qty,
                as_of: l.as_of,
                n: l.n,
            });
        }
        self.product_rows.push(PendingProduct {
            sku: self.sku.clone(),
            upc,
            description,
        });
        self.n_lots = 0;
        self.write(false)
    }

    /// Flushes the last SKU and writes every queued row.
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.write(true)
    }

    /// Upserts the queued rows in full batches with the held statements;
    /// `all`: the last few too, with statements of their own size.
    fn write(&mut self, all: bool) -> Result<()> {
        while self.stock_rows.len() >= BATCH || (all && !self.stock_rows.is_empty()) {
            let rest = self.stock_rows.split_off(self.stock_rows.len().min(BATCH));
            let rows = std::mem::replace(&mut self.stock_rows, rest);
            self.write_stock(&rows)?;
        }
        while self.product_rows.len() >= BATCH || (all && !self.product_rows.is_empty()) {
            let rest = self
                .product_rows
                .split_off(self.product_rows.len().min(BATCH));
            let rows = std::mem::replace(&mut self.product_rows, rest);
            self.write_products(&rows)?;
        }
        Ok(())
    }

    /// Upserts stock rows and counts the stale ones.
    fn write_stock(&mut self, rows: &[PendingStock]) -> Result<()> {
        let mut tail;
        let stmt = if rows.len() == BATCH {
            &mut self.stock
        } else {
            tail = self.conn.prepare(&stock_upsert(rows.len()))?;
            tail.raw_bind_parameter(1, self.merchant.as_str())?;
            tail.raw_bind_parameter(2, self.report_id)?;
            &mut tail
        };
        for (i, r) in rows.iter().enumerate() {
            let p = 3 + 4 * i;
            stmt.raw_bind_parameter(p, r.sku.as_str())?;
            stmt.raw_bind_parameter(p + 1, r.warehouse.as_str())?;
            stmt.raw_bind_parameter(p + 2, r.qty)?;
            stmt.raw_bind_parameter(p + 3, r.as_of)?;
        }
        if stmt.raw_execute()? < rows.len() {
            self.count_stale(rows)?;
        }
        Ok(())
    }

    /// Some rows of a batch changed nothing (rule 11): those the ledger
    /// still holds a later count for (an upserted row now has the row's
    /// as-of). The keys of a batch are distinct.
    fn count_stale(&mut self, rows: &[PendingStock]) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT as_of FROM stock WHERE merchant = ?1 AND sku = ?2 AND warehouse = ?3",
        )?;
        for r in rows {
            let held: Millis =
                stmt.query_row(params![self.merchant, r.sku, r.warehouse], |row| row.get(0))?;
            if held > r.as_of {
                self.stale += r.n;
            }
        }
        Ok(())
    }

    /// Upserts product rows.
    fn write_products(&mut self, rows: &[PendingProduct]) -> Result<()> {
        let mut tail;
        let stmt = if rows.len() == BATCH {
            &mut self.products
        } else {
            tail = self.conn.prepare(&products_upsert(rows.len()))?;
            tail.raw_bind_parameter(1, self.merchant.as_str())?;
            tail.raw_bind_parameter(2, self.now)?;
            &mut tail
        };
        for (i, r) in rows.iter().enumerate() {
            let p = 3 + 3 * i;
            stmt.raw_bind_parameter(p, r.sku.as_str())?;
            stmt.raw_bind_parameter(p + 1, r.upc.as_deref())?;
            stmt.raw_bind_parameter(p + 2, r.description.as_deref())?;
        }
        stmt.raw_execute()?;
        Ok(())
    }
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

impl InventoryBatch<'_> {
    pub fn add(
        &self,
        sku: &str,
        warehouse: &str,
        qty: i64,
        as_of: Millis,
        upc: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        if let Some(d) = &self.direct {
            return d
                .borrow_mut()
                .add((sku, warehouse, qty, as_of, upc, description));
        }
        self.tx
            .prepare_cached("INSERT INTO staging (sku, warehouse, qty, as_of, upc, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![sku, warehouse, qty, as_of, upc, description])?;
        Ok(())
    }

    /// Sets a product's price (a validated decimal from an inbound `price`)
    /// within the file's transaction; a later row of the file wins.
    pub fn price(&self, sku: &str, price: &str, now: Millis) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO products (merchant, sku, first_seen, price) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (merchant, sku) DO UPDATE SET price = excluded.price",
            )?
            .execute(params![self.merchant, sku, now, price])?;
        Ok(())
    }

    /// Sums lots: one row per (SKU, warehouse). Call once, after the last
    /// `add`. Returns the (SKU, warehouse) pairs whose lots sum beyond
    /// ±10^12 (rule 14; at most 1,000): then the file must be rejected.
    pub fn aggregate(&self) -> Result<Vec<String>> {
        if let Some(d) = &self.direct {
            let mut d = d.borrow_mut();
            if d.unsorted {
                return Ok(vec![]);
            }
            d.finish()?;
            return Ok(d
                .out_of_range
                .iter()
                .map(|((sku, w), (n, q))| {
                    format!(
                        "SKU {} in warehouse {}: its {n} rows sum to {q}: quantity out of range (at most ±1,000,000,000,000)",
                        quoted(sku),
                        quoted(w),
                    )
                })
                .collect());
        }
        self.tx.execute_batch(concat!(
            "DROP TABLE IF EXISTS temp.agg;
             CREATE TEMP TABLE agg AS
               SELECT sku, warehouse, ",
            safe_sum!("qty"),
            " AS qty, MAX(as_of) AS as_of, COUNT(*) AS n,
                      MAX(upc) AS upc, MAX(description) AS description
               FROM staging GROUP BY sku, warehouse;
             CREATE UNIQUE INDEX temp.agg_key ON agg (sku, warehouse);"
        ))?;
        let mut stmt = self.tx.prepare(
            "SELECT sku, warehouse, qty, n FROM agg WHERE abs(qty) > 1000000000000 ORDER BY sku, warehouse LIMIT 1000",
        )?;
        let bad = stmt
            .query_map([], |r| {
                Ok(format!(
                    "SKU {} in warehouse {}: its {} rows sum to {}: quantity out of range (at most ±1,000,000,000,000)",
                    quoted(&r.get::<_, String>(0)?),
                    quoted(&r.get::<_, String>(1)?),
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(2)?
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(bad)
    }

    /// For a full snapshot of `warehouses` as of `as_of`: how many SKUs it would zero.
    pub fn zero_counts(&self, warehouses: &[String], as_of: Millis) -> Result<Vec<ZeroCount>> {
        let mut out = vec![];
        for w in warehouses {
            let (zeroed, total): (u64, u64) = self.tx.query_row(
                "SELECT COUNT(*) FILTER (WHERE a.sku IS NULL AND s.quantity != 0 AND s.as_of <= ?3), COUNT(*)
                 FROM stock s LEFT JOIN agg a ON a.sku = s.sku AND a.warehouse = s.warehouse
                 WHERE s.merchant = ?1 AND s.warehouse = ?2",
                params![self.merchant, w, as_of],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            out.push(ZeroCount {
                warehouse: w.clone(),
                zeroed,
                total,
            });
        }
        Ok(out)
    }

    /// Distinct warehouses named by the staged rows.
    pub fn warehouses(&self) -> Result<Vec<String>> {
        if let Some(d) = &self.direct {
            return Ok(d.borrow().warehouses.iter().cloned().collect());
        }
        let mut stmt = self
            .tx
            .prepare("SELECT DISTINCT warehouse FROM agg ORDER BY warehouse")?;
        let v = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Merges staged rows into stock (skipping stale ones), zeroes absent SKUs
    /// of `snapshot_warehouses`, records the report, and commits.
    /// The file was not sorted by SKU: the direct way cannot sum its rows;
    /// drop this batch and read the file again into a staged one.
    pub fn needs_staging(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| d.borrow().unsorted)
    }

    pub fn apply(self, meta: &ReportMeta, snapshot_warehouses: &[String]) -> Result<Applied> {
        if let Some(d) = self.direct {
            let d = d.into_inner();
            debug_assert!(snapshot_warehouses.is_empty() && !d.unsorted);
            let tx = self.tx;
            if duplicate_in(&tx, meta)? {
                tx.rollback()?;
                return Ok(Applied::Duplicate);
            }
            let rid = d.report_id;
            tx.execute(
                "INSERT INTO reports (id, source, merchant, kind, file_name, sha256, as_of, rows, stale, zeroed, applied_at)
                 VALUES (?1, ?2, ?3, 'inventory', ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                params![rid, meta.source, self.merchant, meta.file_name, meta.sha256, meta.as_of, meta.rows, d.stale, meta.now],
            )?;
            for w in &d.warehouses {
                tx.execute(
                    "INSERT OR IGNORE INTO report_warehouses (report_id, warehouse) VALUES (?1, ?2)",
                    params![rid, w],
                )?;
            }
            record_applied(&tx, meta, rid)?;
            let stale = d.stale;
            drop(d);
            tx.commit()?;
            return Ok(Applied::Applied(ApplySummary {
                report_id: rid,
                rows: meta.rows,
                stale,
                zeroed: 0,
            }));
        }
        let tx = &self.tx;
        let m = &self.merchant;
        if duplicate_in(tx, meta)? {
            self.tx.commit()?;
            return Ok(Applied::Duplicate);
        }
        tx.execute(
            "INSERT INTO reports (source, merchant, kind, file_name, sha256, as_of, rows, stale, zeroed, applied_at)
             VALUES (?1, ?2, 'inventory', ?3, ?4, ?5, ?6, 0, 0, ?7)",
            params![meta.source, m, meta.file_name, meta.sha256, meta.as_of, meta.rows, meta.now],
        )?;
        let rid = tx.last_insert_rowid();
        // A row older than what the ledger holds changes nothing (files arrive out of order).
        let stale: u64 = tx.query_row(
            "SELECT COALESCE(SUM(a.n), 0) FROM agg a JOIN stock s ON s.merchant = ?1 AND s.sku = a.sku AND s.warehouse = a.warehouse
             WHERE s.as_of > a.as_of",
            [m],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO stock (merchant, sku, warehouse, quantity, as_of, report_id, named_report_id)
             SELECT ?1, sku, warehouse, qty, as_of, ?2, ?2 FROM agg WHERE true
             ON CONFLICT (merchant, sku, warehouse) DO UPDATE SET
               quantity = excluded.quantity, as_of = excluded.as_of,
               report_id = excluded.report_id, named_report_id = excluded.named_report_id
             WHERE stock.as_of <= excluded.as_of",
            params![m, rid],
        )?;
        tx.execute(
            "INSERT INTO products (merchant, sku, upc, description, first_seen)
             SELECT ?1, sku, MAX(NULLIF(upc, '')), MAX(NULLIF(description, '')), ?2 FROM agg WHERE true GROUP BY sku
             ON CONFLICT (merchant, sku) DO UPDATE SET
               upc = COALESCE(excluded.upc, products.upc),
               description = COALESCE(excluded.description, products.description)",
            params![m, meta.now],
        )?;
        let mut zeroed = 0u64;
        for w in snapshot_warehouses {
            zeroed += tx.execute(
                "UPDATE stock SET quantity = 0, as_of = ?3, report_id = ?4, named_report_id = ?4
                 WHERE merchant = ?1 AND warehouse = ?2 AND quantity != 0 AND as_of <= ?3
                   AND NOT EXISTS (SELECT 1 FROM agg a WHERE a.sku = stock.sku AND a.warehouse = stock.warehouse)",
                params![m, w, meta.as_of, rid],
            )? as u64;
        }
        tx.execute(
            "INSERT OR IGNORE INTO report_warehouses (report_id, warehouse) SELECT DISTINCT ?1, warehouse FROM agg",
            [rid],
        )?;
        for w in snapshot_warehouses {
            tx.execute(
                "INSERT OR IGNORE INTO report_warehouses (report_id, warehouse) VALUES (?1, ?2)",
                params![rid, w],
            )?;
        }
        tx.execute(
            "UPDATE reports SET stale = ?2, zeroed = ?3 WHERE id = ?1",
            params![rid, stale, zeroed],
        )?;
        record_applied(tx, meta, rid)?;
        tx.execute_batch("DROP TABLE temp.agg; DROP TABLE temp.staging;")?;
        self.tx.commit()?;
        Ok(Applied::Applied(ApplySummary {
            report_id: rid,
            rows: meta.rows,
            stale,
            zeroed,
        }))
    }
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Applied(ApplySummary),
    /// The same content was applied for this source already (possibly by
    /// another process a moment ago): nothing changed.
    Duplicate,
}

/// Inside the apply's own (immediate) transaction: was this content applied
/// for this source already?
fn duplicate_in(tx: &Transaction, meta: &ReportMeta) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM reports WHERE source = ?1 AND sha256 = ?2 LIMIT 1",
            [meta.source, meta.sha256],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Logs the applied file and sets the report's archive copy; a fixed file
/// clears the rejections of the same name.
fn record_applied(tx: &Transaction, meta: &ReportMeta, rid: i64) -> Result<()> {
    tx.execute(
        "UPDATE reports SET archive_path = ?2 WHERE id = ?1",
        params![rid, meta.archive_path],
    )?;
    tx.execute(
        "INSERT INTO inbound_files (source, file_name, sha256, outcome, report_id, received_at, archive_path)
         VALUES (?1, ?2, ?3, 'applied', ?4, ?5, ?6)",
        params![meta.source, meta.file_name, meta.sha256, rid, meta.now, meta.archive_path],
    )?;
    tx.execute(
        "UPDATE inbound_files SET cleared = 1
         WHERE source = ?1 AND file_name = ?2 AND outcome IN ('rejected', 'held') AND cleared = 0",
        params![meta.source, meta.file_name],
    )?;
    Ok(())
}

/// One product catalog file being applied: each SKU's UPC, description and
/// price set where the file gives them (an empty field keeps what the
/// ledger has); stock is never touched.
pub struct ProductBatch<'a> {
    tx: Transaction<'a>,
    merchant: String,
    report_id: i64,
}

impl ProductBatch<'_> {
    pub fn upsert(
        &self,
        sku: &str,
        upc: Option<&str>,
        description: Option<&str>,
        price: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO products (merchant, sku, upc, description, price, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (merchant, sku) DO UPDATE SET
                   upc = COALESCE(excluded.upc, products.upc),
                   description = COALESCE(excluded.description, products.description),
                   price = COALESCE(excluded.price, products.price)",
            )?
            .execute(params![self.merchant, sku, upc, description, price, now])?;
        Ok(())
    }

    pub fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        commit_report(self.tx, meta, &self.merchant, self.report_id, "products")
    }
}

/// One order file being applied: each line upserted by (source, order id, line).
pub struct OrderBatch<'a> {
    tx: Transaction<'a>,
    merchant: String,
    source: String,
    report_id: i64,
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

impl OrderBatch<'_> {
    pub fn upsert(&self, l: &OrderLine, now: Millis) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO order_lines (source, order_id, line, merchant, sku, quantity, warehouse, ordered_at, status,
                                          cancelled, entered_at, updated_at, report_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(?8, ?11), ?9, ?10, ?11, ?11, ?12)
                 ON CONFLICT (source, order_id, line) DO UPDATE SET
                   sku = excluded.sku, quantity = excluded.quantity, warehouse = excluded.warehouse,
                   ordered_at = COALESCE(?8, order_lines.ordered_at), status = excluded.status,
                   cancelled = excluded.cancelled, updated_at = excluded.updated_at, report_id = excluded.report_id",
            )?
            .execute(params![
                self.source, l.order_id, l.line, self.merchant, l.sku, l.quantity, l.warehouse, l.ordered_at, l.status,
                l.cancelled, now, self.report_id
            ])?;
        Ok(())
    }

    pub fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        commit_report(self.tx, meta, &self.merchant, self.report_id, "orders")
    }
}

/// Ends a file's transaction: a duplicate (rule 12, checked inside it) drops
/// what was staged; otherwise its report (`kind`, no as-of) and its applied
/// record are written and everything is committed at once.
fn commit_report(
    tx: Transaction<'_>,
    meta: &ReportMeta,
    merchant: &str,
    report_id: i64,
    kind: &str,
) -> Result<Applied> {
    if duplicate_in(&tx, meta)? {
        tx.rollback()?;
        return Ok(Applied::Duplicate);
    }
    tx.execute(
        "INSERT INTO reports (id, source, merchant, kind, file_name, sha256, as_of, rows, stale, zeroed, applied_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, 0, 0, ?8)",
        params![report_id, meta.source, merchant, kind, meta.file_name, meta.sha256, meta.rows, meta.now],
    )?;
    record_applied(&tx, meta, report_id)?;
    tx.commit()?;
    Ok(Applied::Applied(ApplySummary {
        report_id,
        rows: meta.rows,
        stale: 0,
        zeroed: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_upgrade_an_older_ledger_and_refuse_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        // A ledger at version 0 (created by nothing) upgrades to the latest.
        Connection::open(&path).unwrap();
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(l);
        // Reopening is idempotent.
        assert_eq!(
            Ledger::open(&path).unwrap().schema_version().unwrap(),
            MIGRATIONS.len() as i64
        );
        // A ledger written by a newer stockgate is refused, untouched.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        match Ledger::open(&path) {
            Err(LedgerError::TooNew { found: 99, .. }) => {}
            other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_new_ledger_opened_by_several_processes_at_once_migrates_once() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("l.sqlite");
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let p = path.clone();
                    std::thread::spawn(move || {
                        Ledger::open(&p).map(|l| l.schema_version().unwrap())
                    })
                })
                .collect();
            for h in handles {
                let v = h.join().unwrap();
                assert_eq!(
                    v.as_ref().ok(),
                    Some(&(MIGRATIONS.len() as i64)),
                    "round {round}: {:?}",
                    v.as_ref().err()
                );
            }
        }
    }

    /// Applies `rows` (SKU, warehouse, qty, as-of, UPC) the direct way or
    /// staged; returns the summary and every stock and product row.
    fn apply_rows(
        l: &mut Ledger,
        direct: bool,
        name: &str,
        rows: &[(String, &str, i64, Millis, Option<String>)],
    ) -> (ApplySummary, Vec<String>) {
        let batch = l.inventory_batch("m", 5, direct).unwrap();
        for (sku, w, q, t, upc) in rows {
            batch.add(sku, w, *q, *t, upc.as_deref(), None).unwrap();
        }
        assert!(!batch.needs_staging());
        assert!(batch.aggregate().unwrap().is_empty());
        let meta = ReportMeta {
            source: "s",
            file_name: name,
            sha256: name,
            archive_path: None,
            as_of: 0,
            rows: rows.len() as u64,
            now: 5,
        };
        let Applied::Applied(summary) = batch.apply(&meta, &[]).unwrap() else {
            panic!("duplicate")
        };
        let dump = |sql: &str| -> Vec<String> {
            let mut stmt = l.conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let mut all = dump(
            "SELECT concat_ws('|', sku, warehouse, quantity, as_of, report_id, named_report_id) FROM stock ORDER BY 1",
        );
        all.extend(dump(
            "SELECT concat_ws('|', sku, upc, description, first_seen) FROM products ORDER BY 1",
        ));
        (summary, all)
    }

    #[test]
    fn direct_batches_match_the_staged_way_stale_rows_included() {
        // Over several batches and a tail: lots summed, a second warehouse
        // now and then; the later file older for every third SKU (stale).
        let (n_first, n_later) = (BATCH * 4 + 7, BATCH * 6 + 5);
        let first: Vec<_> = (0..n_first)
            .map(|i| {
                (
                    format!("S{i:05}"),
                    "W",
                    1,
                    if i % 3 == 0 { 20 } else { 10 },
                    None,
                )
            })
            .collect();
        let mut later = vec![];
        for i in 0..n_later {
            let sku = format!("S{i:05}");
            later.push((sku.clone(), "W", i as i64, 15, Some(format!("{i:012}"))));
            if i % 7 == 0 {
                later.push((sku.clone(), "W", 2, 15, None));
                later.push((sku, "X", 3, 15, None));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut results = vec![];
        for direct in [true, false] {
            let mut l = Ledger::open(&dir.path().join(format!("{direct}.sqlite"))).unwrap();
            l.ensure(&["m".into()], &[]).unwrap();
            apply_rows(&mut l, direct, "a", &first);
            results.push(apply_rows(&mut l, direct, "b", &later));
        }
        let stale_skus = (0..n_first).filter(|i| i % 3 == 0);
        let want: u64 = stale_skus.map(|i| if i % 7 == 0 { 2 } else { 1 }).sum();
        assert_eq!(results[0].0.stale, want);
        assert_eq!(results[0], results[1]);
    }

    /// The query plan of `sql`, one detail line per step.
    fn plan(l: &Ledger, sql: &str, n: usize) -> Vec<String> {
        let mut stmt = l
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let params: Vec<rusqlite::types::Value> = (0..n)
            .map(|_| rusqlite::types::Value::Text("x".into()))
            .collect();
        stmt.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// Issue 8 item 15: `explain` of one SKU searches stock, orders and
    /// products by index (milliseconds on a 2,000,000-SKU ledger), never
    /// scans the merchant's whole catalog.
    #[test]
    fn explain_of_one_sku_searches_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let order_draws = format!(
            "WITH {} SELECT o.order_id {DRAWING_ORDERS} AND o.sku = ?4",
            counted("AND sku = ?4")
        );
        let [products, stock, orders, sent] = merge_sql(true);
        for (what, sql, n, tables) in [
            ("products of one SKU", products, 2, &["products"][..]),
            ("stock of one SKU", stock, 2, &["stock"]),
            ("orders of one SKU", orders, 3, &["order_lines"]),
            ("last sent of one SKU", sent, 2, &["last_sent"]),
            ("order_draws", order_draws, 4, &["stock", "o"]),
        ] {
            let steps = plan(&l, &sql, n);
            let text = steps.join("\n");
            // Tables as the plan names them (by their aliases in the SQL).
            for table in tables {
                let uses: Vec<&String> = steps
                    .iter()
                    .filter(|s| s.split_whitespace().nth(1) == Some(table))
                    .collect();
                assert!(!uses.is_empty(), "{what}: {table} not in the plan:\n{text}");
                for u in uses {
                    assert!(
                        u.starts_with("SEARCH") && u.contains("sku=?"),
                        "{what}: {table} is not searched by SKU through an index:\n{text}"
                    );
                }
            }
        }
    }

    /// Issue 8 item 1: sums in the feed query never raise "integer overflow",
    /// whatever an older ledger holds.
    #[test]
    fn feed_sums_never_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        l.conn
            .execute_batch(&format!(
                "INSERT INTO products VALUES ('m', 'A', NULL, NULL, 0, NULL);
                 INSERT INTO stock VALUES ('m', 'A', 'W1', {max}, 1, 1, 1), ('m', 'A', 'W2', {max}, 1, 1, 1);
                 INSERT INTO order_lines VALUES ('o', '1', '1', 'm', 'A', {max}, NULL, 5, NULL, 0, 5, 5, 1),
                                                ('o', '1', '2', 'm', 'A', {max}, NULL, 5, NULL, 0, 5, 5, 1);",
                max = i64::MAX
            ))
            .unwrap();
        for sku in [None, Some("A")] {
            let q = FeedQuery {
                merchant: "m",
                cart: "c",
                warehouses: &[],
                min_level: 0,
                full: true,
                since_report: 0,
                sync_time: 10,
                required: &[],
                sku,
                locations: &[],
            };
            let rows: Vec<(String, i64, i64)> = l
                .feed_rows(&q, |rows| {
                    rows.map(|r| (r.item.sku, r.available, r.item.quantity))
                        .collect()
                })
                .unwrap();
            assert_eq!(rows, [("A".to_string(), 0, 0)], "{sku:?}");
        }
    }

    /// Per-warehouse 846s: shares never exceed a warehouse's own net and
    /// always sum to the value sent (rules 4 and 5 hold for the sum).
    #[test]
    fn split_by_warehouse_never_oversells() {
        let listed = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let stock = |rows: &[(&str, i64)]| {
            rows.iter()
                .map(|(w, q)| (w.to_string(), 1, *q))
                .collect::<Vec<_>>()
        };
        let draws = |rows: &[(&str, i128)]| {
            rows.iter()
                .map(|(w, q)| (w.to_string(), *q))
                .collect::<Vec<_>>()
        };
        let shares = |l: &[String], s: &[(String, i64, i64)], d: &[(String, i128)], v| {
            let (sh, unplaced) = split_by_warehouse(l, s, d, v);
            let q: Vec<(String, i64)> = sh.into_iter().map(|x| (x.warehouse, x.quantity)).collect();
            (q, unplaced)
        };
        let w12 = listed(&["W1", "W2"]);
        let pairs = |v: &[(&str, i64)]| {
            v.iter()
                .map(|(w, q)| (w.to_string(), *q))
                .collect::<Vec<_>>()
        };
        // W1 = 5, W2 = -3: total 2; W2's shortfall is taken from W1.
        assert_eq!(
            shares(&w12, &stock(&[("W1", 5), ("W2", -3)]), &[], 2),
            (pairs(&[("W1", 2), ("W2", 0)]), 0)
        );
        // W1 = 5, W2 = 0 with 3 ordered on W2: total 2, same split.
        assert_eq!(
            shares(
                &w12,
                &stock(&[("W1", 5), ("W2", 0)]),
                &draws(&[("W2", 3)]),
                2
            ),
            (pairs(&[("W1", 2), ("W2", 0)]), 0)
        );
        // min_level sends 0: every share is 0.
        assert_eq!(
            shares(&w12, &stock(&[("W1", 5), ("W2", -3)]), &[], 0),
            (pairs(&[("W1", 0), ("W2", 0)]), 0)
        );
        // The excess comes off the largest share first: W1 10, W2 4, W3 -6 -> 8.
        let w123 = listed(&["W1", "W2", "W3"]);
        assert_eq!(
            shares(&w123, &stock(&[("W1", 10), ("W2", 4), ("W3", -6)]), &[], 8),
            (pairs(&[("W1", 4), ("W2", 4), ("W3", 0)]), 0)
        );
        // Ties go in name order; a listed warehouse without stock gets 0.
        assert_eq!(
            shares(
                &w123,
                &stock(&[("W1", 3), ("W2", 3)]),
                &draws(&[("W1", 1)]),
                5
            ),
            (pairs(&[("W1", 2), ("W2", 3), ("W3", 0)]), 0)
        );
        // An unlisted warehouse gives up its share first...
        let w1 = listed(&["W1"]);
        assert_eq!(
            shares(
                &w1,
                &stock(&[("W1", 5), ("W9", 4)]),
                &draws(&[("W1", 2)]),
                5
            ),
            (pairs(&[("W1", 3)]), 2)
        );
        assert_eq!(
            shares(&w1, &stock(&[("W1", 5), ("W9", -4)]), &[], 1),
            (pairs(&[("W1", 1)]), 0)
        );
        // ... and an order on no counted stock ("") is a shortfall too.
        assert_eq!(
            shares(&w1, &stock(&[("W1", 5)]), &draws(&[("", 2)]), 3),
            (pairs(&[("W1", 3)]), 0)
        );
    }

    #[test]
    fn a_new_ledger_gives_freed_pages_back_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let mode: i64 = l
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "INCREMENTAL");
    }

    #[test]
    fn control_numbers_never_repeat_and_wrap_at_nine_digits() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        assert_eq!(l.next_control("S", "R").unwrap(), 1);
        assert_eq!(l.next_control("S", "R").unwrap(), 2);
        assert_eq!(l.next_control("S", "OTHER").unwrap(), 1);
        l.conn
            .execute(
                "UPDATE control_numbers SET last = 999999999 WHERE receiver = 'R'",
                [],
            )
            .unwrap();
        assert_eq!(l.next_control("S", "R").unwrap(), 1);
    }
}
