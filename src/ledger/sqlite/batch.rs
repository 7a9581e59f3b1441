//! The transaction-scoped batches: one inventory, order or product file
//! applied in one transaction.

use super::super::feed::safe_total;
use super::*;
use crate::util::quoted;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

impl SqliteLedger {
    /// A write transaction for one file and the report id it will take.
    pub(super) fn begin_report(&mut self) -> Result<(Transaction<'_>, i64)> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let report_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM reports", [], |r| {
                r.get(0)
            })?;
        Ok((tx, report_id))
    }
}

/// One inventory file being applied: rows are staged, then summed per
/// (SKU, warehouse) and merged into `stock` in [`InventoryBatch::apply`].
pub struct InventoryBatch<'a> {
    /// Dropped before the transaction (its statements first).
    pub(super) direct: Option<std::cell::RefCell<Direct<'a>>>,
    pub(super) tx: Transaction<'a>,
    pub(super) merchant: String,
    pub(super) fence: Option<Fence>,
}
/// The direct way of applying an inventory file sorted by SKU (each SKU's
/// rows together, SKUs in increasing order, as most WMS exports are): the
/// rows of a SKU are summed per warehouse in memory (rule 7), then upserted
/// into `stock` and `products` [`BATCH`] rows per statement, no staging
/// table. Any other file, or a full snapshot, is staged
/// (`InventoryBatch::needs_staging` tells the caller to read it again so).
pub(super) struct Direct<'a> {
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
pub(super) const BATCH: usize = 16;

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
    pub(super) fn new(
        conn: &'a Connection,
        merchant: &str,
        report_id: i64,
        now: Millis,
    ) -> Result<Self> {
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
            check_fence(&tx, self.fence.as_ref())?;
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
        check_fence(tx, self.fence.as_ref())?;
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
    pub(super) fence: Option<Fence>,
    pub(super) tx: Transaction<'a>,
    pub(super) merchant: String,
    pub(super) report_id: i64,
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
        check_fence(&self.tx, self.fence.as_ref())?;
        commit_report(self.tx, meta, &self.merchant, self.report_id, "products")
    }
}

/// One order file being applied: each line upserted by (source, order id, line).
pub struct OrderBatch<'a> {
    pub(super) fence: Option<Fence>,
    pub(super) tx: Transaction<'a>,
    pub(super) merchant: String,
    pub(super) source: String,
    pub(super) report_id: i64,
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
                   cancelled = excluded.cancelled, updated_at = excluded.updated_at, report_id = excluded.report_id,
                   changed = CASE WHEN order_lines.sent_sync IS NOT NULL AND (order_lines.sku <> excluded.sku
                       OR order_lines.quantity <> excluded.quantity OR order_lines.cancelled <> excluded.cancelled)
                     THEN 1 ELSE order_lines.changed END",
            )?
            .execute(params![
                self.source, l.order_id, l.line, self.merchant, l.sku, l.quantity, l.warehouse, l.ordered_at, l.status,
                l.cancelled, now, self.report_id
            ])?;
        Ok(())
    }

    pub fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        self.apply_as(meta, "orders")
    }

    /// Portable SQL inside this file's transaction (the order loop's own
    /// tables: `ledger::orders`).
    pub fn with_sql<R>(
        &mut self,
        f: impl FnOnce(&mut dyn crate::ledger::sql::SqlTx, i64) -> Result<R>,
    ) -> Result<R> {
        f(&mut crate::ledger::sql::SqliteSql(&self.tx), self.report_id)
    }

    /// Commits the file as a report of `kind` ("orders", "shipments").
    pub fn apply_as(self, meta: &ReportMeta, kind: &str) -> Result<Applied> {
        check_fence(&self.tx, self.fence.as_ref())?;
        commit_report(self.tx, meta, &self.merchant, self.report_id, kind)
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
