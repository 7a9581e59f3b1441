//! The transaction-scoped batches on PostgreSQL: an inventory file is
//! staged by `COPY` into a temporary table, summed there and merged into
//! `stock` by a few set-based statements under the apply lock; order and
//! product files take the lock (and their report id) when they begin.

use super::*;
use crate::util::quoted;

/// COPY lines buffered before they are sent.
const COPY_BUFFER: usize = 4 << 20;

const STAGING_COPY: &str = "COPY staging (sku, warehouse, qty, as_of, upc, description) FROM STDIN";

/// The open transaction of a batch: rolled back when dropped unfinished.
struct Open<'a> {
    l: &'a PgLedger,
    done: std::cell::Cell<bool>,
}

impl<'a> Open<'a> {
    fn begin(l: &'a PgLedger) -> Result<Self> {
        l.c().batch_execute("BEGIN")?;
        Ok(Open {
            l,
            done: std::cell::Cell::new(false),
        })
    }

    fn c(&self) -> RefMut<'a, Client> {
        self.l.c()
    }

    fn commit(&self) -> Result<()> {
        self.done.set(true);
        self.c().batch_execute("COMMIT")?;
        Ok(())
    }

    fn rollback(&self) -> Result<()> {
        self.done.set(true);
        self.c().batch_execute("ROLLBACK")?;
        Ok(())
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.done.get() {
            let _ = self.l.c().batch_execute("ROLLBACK");
        }
    }
}

/// One inventory file being applied: rows are copied into `staging`, then
/// summed per (SKU, warehouse) into `agg` and merged into `stock` in
/// [`InventoryBatch::apply`].
pub struct InventoryBatch<'a> {
    open: Open<'a>,
    merchant: String,
    buf: RefCell<Vec<u8>>,
    shape: RefCell<Shape>,
}

/// What the rows of a file look like, learnt as they are added: most WMS
/// exports are sorted by SKU with one row per (SKU, warehouse), often one
/// per SKU. Then the staged rows are their own sums (no GROUP BY of a
/// million rows) and no sum can leave ±10^12 (each row is within it).
struct Shape {
    sku: String,
    /// The warehouses of the current SKU's rows.
    whs: Vec<String>,
    started: bool,
    /// Sorted by SKU, each (SKU, warehouse) once.
    unique: bool,
    /// And each SKU once.
    one_per_sku: bool,
    /// Σ|qty| of every row: within ±10^12, no sum can leave it.
    abs_total: i128,
}

impl Shape {
    fn add(&mut self, sku: &str, warehouse: &str, qty: i64) {
        self.abs_total += i128::from(qty).abs();
        if !self.unique {
            return;
        }
        if !self.started || sku != self.sku {
            if self.started && sku < self.sku.as_str() {
                self.unique = false;
                return;
            }
            self.started = true;
            self.sku.clear();
            self.sku.push_str(sku);
            self.whs.clear();
        } else {
            self.one_per_sku = false;
            if self.whs.iter().any(|w| w == warehouse) {
                self.unique = false;
                return;
            }
        }
        self.whs.push(warehouse.to_string());
    }
}

impl<'a> InventoryBatch<'a> {
    pub(super) fn begin(l: &'a mut PgLedger, merchant: &str) -> Result<Self> {
        let open = Open::begin(l)?;
        open.c().batch_execute(
            r#"CREATE TEMP TABLE staging (sku TEXT COLLATE "C" NOT NULL, warehouse TEXT COLLATE "C" NOT NULL,
                 qty BIGINT NOT NULL, as_of BIGINT NOT NULL, upc TEXT COLLATE "C", description TEXT COLLATE "C")
               ON COMMIT DROP"#,
        )?;
        // Sorts and hash aggregates of a big file in memory, not on disk
        // (the server's; this transaction only).
        open.c().batch_execute("SET LOCAL work_mem = '256MB'")?;
        Ok(InventoryBatch {
            open,
            merchant: merchant.to_string(),
            buf: RefCell::new(Vec::with_capacity(1 << 16)),
            shape: RefCell::new(Shape {
                sku: String::new(),
                whs: Vec::new(),
                started: false,
                unique: true,
                one_per_sku: true,
                abs_total: 0,
            }),
        })
    }

    pub fn add(
        &self,
        sku: &str,
        warehouse: &str,
        qty: i64,
        as_of: Millis,
        upc: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        self.shape.borrow_mut().add(sku, warehouse, qty);
        let mut buf = self.buf.borrow_mut();
        let mut n = itoa::Buffer::new();
        copy_field(&mut buf, Some(sku));
        buf.push(b'\t');
        copy_field(&mut buf, Some(warehouse));
        buf.push(b'\t');
        buf.extend_from_slice(n.format(qty).as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(n.format(as_of).as_bytes());
        buf.push(b'\t');
        copy_field(&mut buf, upc);
        buf.push(b'\t');
        copy_field(&mut buf, description);
        buf.push(b'\n');
        if buf.len() >= COPY_BUFFER {
            copy_in(&mut self.open.c(), STAGING_COPY, &mut buf)?;
        }
        Ok(())
    }

    /// Sets a product's price within the file's transaction; a later row
    /// of the file wins.
    pub fn price(&self, sku: &str, price: &str, now: Millis) -> Result<()> {
        self.open.c().execute(
            "INSERT INTO products (merchant, sku, first_seen, price) VALUES ($1, $2, $3, $4)
             ON CONFLICT (merchant, sku) DO UPDATE SET price = excluded.price",
            &[&self.merchant, &sku, &now, &price],
        )?;
        Ok(())
    }

    /// Sums lots: one row per (SKU, warehouse). Returns the pairs whose
    /// lots sum beyond ±10^12 (rule 14; at most 1,000).
    pub fn aggregate(&self) -> Result<Vec<String>> {
        let mut c = self.open.c();
        copy_in(&mut c, STAGING_COPY, &mut self.buf.borrow_mut())?;
        let shape = self.shape.borrow();
        if shape.unique {
            // Each row is its own sum, in SKU order.
            c.batch_execute(
                "CREATE TEMP VIEW agg AS
                   SELECT sku, warehouse, qty, as_of, 1::bigint AS n, upc, description FROM staging;
                 ANALYZE staging;",
            )?;
        } else {
            // SUM of BIGINTs is an exact NUMERIC: clamped to ±4e18 as SQLite's
            // TOTAL is, so a difference of two sums still fits. Stored in key
            // order: the merge into `stock` then walks its index in order.
            c.batch_execute(
                "CREATE TEMP TABLE agg ON COMMIT DROP AS
                   SELECT sku, warehouse,
                          GREATEST(LEAST(SUM(qty), 4000000000000000000), -4000000000000000000)::bigint AS qty,
                          MAX(as_of) AS as_of, COUNT(*) AS n, MAX(upc) AS upc, MAX(description) AS description
                   FROM staging GROUP BY sku, warehouse ORDER BY sku, warehouse;
                 CREATE UNIQUE INDEX ON agg (sku, warehouse);
                 ANALYZE agg;",
            )?;
        }
        if shape.abs_total <= 1_000_000_000_000 {
            return Ok(vec![]);
        }
        let rows = c.query(
            "SELECT sku, warehouse, qty, n FROM agg WHERE abs(qty) > 1000000000000
             ORDER BY sku, warehouse LIMIT 1000",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                format!(
                    "SKU {} in warehouse {}: its {} rows sum to {}: quantity out of range (at most ±1,000,000,000,000)",
                    quoted(r.get::<_, &str>(0)),
                    quoted(r.get::<_, &str>(1)),
                    r.get::<_, i64>(3),
                    r.get::<_, i64>(2)
                )
            })
            .collect())
    }

    /// For a full snapshot of `warehouses` as of `as_of`: how many SKUs it would zero.
    pub fn zero_counts(&self, warehouses: &[String], as_of: Millis) -> Result<Vec<ZeroCount>> {
        let mut out = vec![];
        for w in warehouses {
            let r = self.open.c().query_one(
                "SELECT COUNT(*) FILTER (WHERE a.sku IS NULL AND s.quantity != 0 AND s.as_of <= $3), COUNT(*)
                 FROM stock s LEFT JOIN agg a ON a.sku = s.sku AND a.warehouse = s.warehouse
                 WHERE s.merchant = $1 AND s.warehouse = $2",
                &[&self.merchant, w, &as_of],
            )?;
            out.push(ZeroCount {
                warehouse: w.clone(),
                zeroed: r.get::<_, i64>(0) as u64,
                total: r.get::<_, i64>(1) as u64,
            });
        }
        Ok(out)
    }

    /// Distinct warehouses named by the staged rows.
    pub fn warehouses(&self) -> Result<Vec<String>> {
        Ok(self
            .open
            .c()
            .query("SELECT DISTINCT warehouse FROM agg ORDER BY warehouse", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Always staged: never asks for a second read.
    pub fn needs_staging(&self) -> bool {
        false
    }

    /// Merges the summed rows into stock (skipping stale ones), zeroes
    /// absent SKUs of `snapshot_warehouses`, records the report, commits;
    /// under the apply lock, the duplicate check first.
    pub fn apply(self, meta: &ReportMeta, snapshot_warehouses: &[String]) -> Result<Applied> {
        let m = &self.merchant;
        let mut c = self.open.c();
        check_fence(&mut c, self.open.l.fence.as_ref())?;
        let rid = next_report_id(&mut c)?;
        if duplicate_in(&mut c, meta)? {
            drop(c);
            self.open.rollback()?;
            return Ok(Applied::Duplicate);
        }
        c.execute(
            "INSERT INTO reports (id, source, merchant, kind, file_name, sha256, as_of, rows, stale, zeroed, applied_at)
             VALUES ($1, $2, $3, 'inventory', $4, $5, $6, $7, 0, 0, $8)",
            &[&rid, &meta.source, m, &meta.file_name, &meta.sha256, &meta.as_of, &(meta.rows as i64), &meta.now],
        )?;
        let stale: i64 = c
            .query_one(
                "SELECT COALESCE(SUM(a.n), 0)::bigint FROM agg a
                   JOIN stock s ON s.merchant = $1 AND s.sku = a.sku AND s.warehouse = a.warehouse
                 WHERE s.as_of > a.as_of",
                &[m],
            )?
            .get(0);
        // Set-based, no ON CONFLICT (its speculative insert per row costs
        // twice a plain one): the rows the ledger has are updated (not when
        // it holds a later count, rule 11), the others inserted. No other
        // writer of `stock` or `products` runs meanwhile: every apply holds
        // the apply lock.
        c.execute(
            "UPDATE stock s SET quantity = a.qty, as_of = a.as_of, report_id = $2, named_report_id = $2
             FROM agg a
             WHERE s.merchant = $1 AND s.sku = a.sku AND s.warehouse = a.warehouse AND s.as_of <= a.as_of",
            &[m, &rid],
        )?;
        c.execute(
            "INSERT INTO stock (merchant, sku, warehouse, quantity, as_of, report_id, named_report_id)
             SELECT $1, a.sku, a.warehouse, a.qty, a.as_of, $2, $2 FROM agg a
             WHERE NOT EXISTS (SELECT 1 FROM stock s
                               WHERE s.merchant = $1 AND s.sku = a.sku AND s.warehouse = a.warehouse)",
            &[m, &rid],
        )?;
        let products = if self.shape.borrow().one_per_sku {
            "SELECT sku, NULLIF(upc, '') AS upc, NULLIF(description, '') AS description FROM agg"
        } else {
            "SELECT sku, MAX(NULLIF(upc, '')) AS upc, MAX(NULLIF(description, '')) AS description
             FROM agg GROUP BY sku"
        };
        c.execute(
            &format!(
                "WITH x AS MATERIALIZED ({products})
                 UPDATE products p SET upc = COALESCE(x.upc, p.upc),
                                       description = COALESCE(x.description, p.description)
                 FROM x WHERE p.merchant = $1 AND p.sku = x.sku
                   AND ((x.upc IS NOT NULL AND x.upc IS DISTINCT FROM p.upc)
                     OR (x.description IS NOT NULL AND x.description IS DISTINCT FROM p.description))"
            ),
            &[m],
        )?;
        c.execute(
            &format!(
                "WITH x AS MATERIALIZED ({products})
                 INSERT INTO products (merchant, sku, upc, description, first_seen)
                 SELECT $1, x.sku, x.upc, x.description, $2 FROM x
                 WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.merchant = $1 AND p.sku = x.sku)"
            ),
            &[m, &meta.now],
        )?;
        let mut zeroed = 0u64;
        for w in snapshot_warehouses {
            zeroed += c.execute(
                "UPDATE stock SET quantity = 0, as_of = $3, report_id = $4, named_report_id = $4
                 WHERE merchant = $1 AND warehouse = $2 AND quantity != 0 AND as_of <= $3
                   AND NOT EXISTS (SELECT 1 FROM agg a WHERE a.sku = stock.sku AND a.warehouse = stock.warehouse)",
                &[m, w, &meta.as_of, &rid],
            )?;
        }
        c.execute(
            "INSERT INTO report_warehouses (report_id, warehouse)
             SELECT DISTINCT $1::bigint, warehouse FROM agg
             UNION SELECT $1::bigint, unnest($2::text[])
             ON CONFLICT DO NOTHING",
            &[&rid, &snapshot_warehouses],
        )?;
        c.execute(
            "UPDATE reports SET stale = $2, zeroed = $3 WHERE id = $1",
            &[&rid, &stale, &(zeroed as i64)],
        )?;
        record_applied(&mut c, meta, rid)?;
        if self.shape.borrow().unique {
            // A view outlives the transaction; `staging` it reads does not.
            c.batch_execute("DROP VIEW agg")?;
        }
        drop(c);
        self.open.commit()?;
        Ok(Applied::Applied(ApplySummary {
            report_id: rid,
            rows: meta.rows,
            stale: stale as u64,
            zeroed,
        }))
    }
}

/// Inside the apply's own transaction, under the apply lock: was this
/// content applied for this source already?
fn duplicate_in(c: &mut Client, meta: &ReportMeta) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM reports WHERE source = $1 AND sha256 = $2 LIMIT 1",
        &[&meta.source, &meta.sha256],
    )?
    .is_some())
}

/// Logs the applied file and sets the report's archive copy; a fixed file
/// clears the rejections of the same name.
fn record_applied(c: &mut Client, meta: &ReportMeta, rid: i64) -> Result<()> {
    c.execute(
        "UPDATE reports SET archive_path = $2 WHERE id = $1",
        &[&rid, &meta.archive_path],
    )?;
    c.execute(
        "INSERT INTO inbound_files (source, file_name, sha256, outcome, report_id, received_at, archive_path)
         VALUES ($1, $2, $3, 'applied', $4, $5, $6)",
        &[&meta.source, &meta.file_name, &meta.sha256, &rid, &meta.now, &meta.archive_path],
    )?;
    c.execute(
        "UPDATE inbound_files SET cleared = 1
         WHERE source = $1 AND file_name = $2 AND outcome IN ('rejected', 'held') AND cleared = 0",
        &[&meta.source, &meta.file_name],
    )?;
    Ok(())
}

/// Ends a file's transaction: a duplicate (rule 12, checked inside it)
/// drops what was staged; otherwise its report and its applied record are
/// written and everything is committed at once.
fn commit_report(
    open: &Open<'_>,
    meta: &ReportMeta,
    merchant: &str,
    report_id: i64,
    kind: &str,
) -> Result<Applied> {
    let mut c = open.c();
    check_fence(&mut c, open.l.fence.as_ref())?;
    if duplicate_in(&mut c, meta)? {
        drop(c);
        open.rollback()?;
        return Ok(Applied::Duplicate);
    }
    c.execute(
        "INSERT INTO reports (id, source, merchant, kind, file_name, sha256, as_of, rows, stale, zeroed, applied_at)
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, 0, 0, $8)",
        &[&report_id, &meta.source, &merchant, &kind, &meta.file_name, &meta.sha256, &(meta.rows as i64), &meta.now],
    )?;
    record_applied(&mut c, meta, report_id)?;
    drop(c);
    open.commit()?;
    Ok(Applied::Applied(ApplySummary {
        report_id,
        rows: meta.rows,
        stale: 0,
        zeroed: 0,
    }))
}

/// One product catalog file being applied (see SQLite's).
pub struct ProductBatch<'a> {
    open: Open<'a>,
    merchant: String,
    report_id: i64,
    upsert: postgres::Statement,
}

impl<'a> ProductBatch<'a> {
    pub(super) fn begin(l: &'a mut PgLedger, merchant: &str) -> Result<Self> {
        let open = Open::begin(l)?;
        let (report_id, upsert) = {
            let mut c = open.c();
            let rid = next_report_id(&mut c)?;
            let upsert = c.prepare(
                "INSERT INTO products (merchant, sku, upc, description, price, first_seen)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (merchant, sku) DO UPDATE SET
                   upc = COALESCE(excluded.upc, products.upc),
                   description = COALESCE(excluded.description, products.description),
                   price = COALESCE(excluded.price, products.price)",
            )?;
            (rid, upsert)
        };
        Ok(ProductBatch {
            open,
            merchant: merchant.to_string(),
            report_id,
            upsert,
        })
    }

    pub fn upsert(
        &self,
        sku: &str,
        upc: Option<&str>,
        description: Option<&str>,
        price: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        self.open.c().execute(
            &self.upsert,
            &[&self.merchant, &sku, &upc, &description, &price, &now],
        )?;
        Ok(())
    }

    pub fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        commit_report(&self.open, meta, &self.merchant, self.report_id, "products")
    }
}

/// One order file being applied: each line upserted by (source, order id, line).
pub struct OrderBatch<'a> {
    open: Open<'a>,
    merchant: String,
    source: String,
    report_id: i64,
    upsert: postgres::Statement,
}

impl<'a> OrderBatch<'a> {
    pub(super) fn begin(l: &'a mut PgLedger, merchant: &str, source: &str) -> Result<Self> {
        let open = Open::begin(l)?;
        let (report_id, upsert) = {
            let mut c = open.c();
            let rid = next_report_id(&mut c)?;
            let upsert = c.prepare(
                "INSERT INTO order_lines (source, order_id, line, merchant, sku, quantity, warehouse, ordered_at,
                                          status, cancelled, entered_at, updated_at, report_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8::bigint, $11::bigint), $9, $10, $11, $11, $12)
                 ON CONFLICT (source, order_id, line) DO UPDATE SET
                   sku = excluded.sku, quantity = excluded.quantity, warehouse = excluded.warehouse,
                   ordered_at = COALESCE($8::bigint, order_lines.ordered_at), status = excluded.status,
                   cancelled = excluded.cancelled, updated_at = excluded.updated_at,
                   report_id = excluded.report_id,
                   changed = CASE WHEN order_lines.sent_sync IS NOT NULL AND (order_lines.sku <> excluded.sku
                       OR order_lines.quantity <> excluded.quantity OR order_lines.cancelled <> excluded.cancelled)
                     THEN 1 ELSE order_lines.changed END",
            )?;
            (rid, upsert)
        };
        Ok(OrderBatch {
            open,
            merchant: merchant.to_string(),
            source: source.to_string(),
            report_id,
            upsert,
        })
    }

    pub fn upsert(&self, l: &OrderLine, now: Millis) -> Result<()> {
        self.open.c().execute(
            &self.upsert,
            &[
                &self.source,
                &l.order_id,
                &l.line,
                &self.merchant,
                &l.sku,
                &l.quantity,
                &l.warehouse,
                &l.ordered_at,
                &l.status,
                &(l.cancelled as i64),
                &now,
                &self.report_id,
            ],
        )?;
        Ok(())
    }

    pub fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        self.apply_as(meta, "orders")
    }

    /// Portable SQL inside this file's transaction (`ledger::orders`).
    pub fn with_sql<R>(
        &mut self,
        f: impl FnOnce(&mut dyn crate::ledger::sql::SqlTx, i64) -> Result<R>,
    ) -> Result<R> {
        let mut c = self.open.c();
        let mut s = crate::ledger::sql::PgSql {
            c: &mut c,
            prepared: Default::default(),
        };
        f(&mut s, self.report_id)
    }

    /// Commits the file as a report of `kind` ("orders", "shipments").
    pub fn apply_as(self, meta: &ReportMeta, kind: &str) -> Result<Applied> {
        commit_report(&self.open, meta, &self.merchant, self.report_id, kind)
    }
}

impl InventoryBatchOps for InventoryBatch<'_> {
    fn add(
        &self,
        sku: &str,
        warehouse: &str,
        qty: i64,
        as_of: Millis,
        upc: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        InventoryBatch::add(self, sku, warehouse, qty, as_of, upc, description)
    }
    fn price(&self, sku: &str, price: &str, now: Millis) -> Result<()> {
        InventoryBatch::price(self, sku, price, now)
    }
    fn aggregate(&self) -> Result<Vec<String>> {
        InventoryBatch::aggregate(self)
    }
    fn zero_counts(&self, warehouses: &[String], as_of: Millis) -> Result<Vec<ZeroCount>> {
        InventoryBatch::zero_counts(self, warehouses, as_of)
    }
    fn warehouses(&self) -> Result<Vec<String>> {
        InventoryBatch::warehouses(self)
    }
    fn needs_staging(&self) -> bool {
        InventoryBatch::needs_staging(self)
    }
    fn apply(self, meta: &ReportMeta, snapshot_warehouses: &[String]) -> Result<Applied> {
        InventoryBatch::apply(self, meta, snapshot_warehouses)
    }
}

impl ProductBatchOps for ProductBatch<'_> {
    fn upsert(
        &self,
        sku: &str,
        upc: Option<&str>,
        description: Option<&str>,
        price: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        ProductBatch::upsert(self, sku, upc, description, price, now)
    }
    fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        ProductBatch::apply(self, meta)
    }
}

impl OrderBatchOps for OrderBatch<'_> {
    fn upsert(&self, l: &OrderLine, now: Millis) -> Result<()> {
        OrderBatch::upsert(self, l, now)
    }
    fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        OrderBatch::apply(self, meta)
    }
}
