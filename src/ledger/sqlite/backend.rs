//! The SQLite ledger as a [`LedgerBackend`]: the trait's methods are the
//! SQLite code itself (the batches' traits forward to their own methods,
//! which callers also use directly).

use super::batch::Direct;
use super::debug::ident;
use super::*;
use crate::ledger::debug::{DebugTable, DebugValue};
use rusqlite::Transaction;
use rusqlite::types::Value;

impl LedgerBackend for SqliteLedger {
    type InventoryBatch<'a> = InventoryBatch<'a>;
    type ProductBatch<'a> = ProductBatch<'a>;
    type OrderBatch<'a> = OrderBatch<'a>;
    fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
    /// Fails with [`LedgerError::ReadOnly`], naming `path`, when SQLite
    /// opened the ledger read-only (a file this user may not write): one
    /// clear line before the first write, instead of SQLite's
    /// "attempt to write a readonly database" at it.
    fn check_writable(&self, path: &Path) -> Result<()> {
        if self.conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(LedgerError::ReadOnly {
                path: path.display().to_string(),
            });
        }
        Ok(())
    }
    /// Registers the config's merchants and carts (idempotent).
    fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()> {
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
    fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>> {
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
    fn record_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        outcome: &str,
        archive: Option<&str>,
        error: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "INSERT INTO inbound_files (source, file_name, sha256, outcome, received_at, archive_path, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![source, file_name, sha256, outcome, now, archive, error],
            )?;
            Ok(())
        })
    }
    /// Records a quarantined file dropped by an operator (`quarantine
    /// discard`): its rejected or held records are cleared, and the discard
    /// is kept with the archive copy of its bytes.
    fn discard_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        archive: &str,
        now: Millis,
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        check_fence(&tx, self.fence.as_ref())?;
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
    fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>> {
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
    fn note_seen(
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
    ) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "INSERT INTO remote_files (source, name, size, mtime, first_seen, outcome, sha256, taken_at, note)
                 VALUES (?1, ?2, ?3, ?4, ?8, ?5, ?6, ?8, ?7)
                 ON CONFLICT (source, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
                   outcome = excluded.outcome, sha256 = COALESCE(excluded.sha256, remote_files.sha256),
                   taken_at = excluded.taken_at, note = excluded.note",
                params![source, name, size as i64, mtime, outcome, sha256, note, now],
            )?;
            Ok(())
        })
    }
    /// How many SKUs a merchant has (the size of a full feed, at most).
    fn product_count(&self, merchant: &str) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM products WHERE merchant = ?1",
            [merchant],
            |r| r.get(0),
        )?)
    }
    /// A listed file that could not be taken this time (fetch or read
    /// failed): the reason is kept with it; it stays untaken (tried again).
    fn note_problem(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        note: &str,
        now: Millis,
    ) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "INSERT INTO remote_files (source, name, size, mtime, first_seen, note) VALUES (?1, ?2, ?3, ?4, ?6, ?5)
                 ON CONFLICT (source, name) DO UPDATE SET note = excluded.note",
                params![source, name, size as i64, mtime, note, now],
            )?;
            Ok(())
        })
    }
    /// Forgets one file (it left the folder).
    fn forget(&self, source: &str, name: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM remote_files WHERE source = ?1 AND name = ?2",
            [source, name],
        )?;
        Ok(())
    }
    /// Forgets these files of `source` (no longer listed), in one transaction.
    fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()> {
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
    /// Puts a cart's last attempt back to `at`: a skipped manual `sync`
    /// leaves the cart's schedule (its next due time) where it was.
    fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "UPDATE carts SET last_attempt = ?2 WHERE id = ?1",
                rusqlite::params![cart, at],
            )?;
            Ok(())
        })
    }
    fn cart_state(&self, cart: &str) -> Result<CartState> {
        Ok(self
            .conn
            .query_row("SELECT last_report_id, last_attempt, last_success, last_outcome, retry_at FROM carts WHERE id = ?1", [cart], |r| {
                Ok(CartState { last_report_id: r.get(0)?, last_attempt: r.get(1)?, last_success: r.get(2)?, last_outcome: r.get(3)?, retry_at: r.get(4)? })
            })
            .optional()?
            .unwrap_or_default())
    }
    /// The daemon's pending retry of a cart's failed delivery (None: none).
    fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "UPDATE carts SET retry_at = ?2 WHERE id = ?1",
                params![cart, at],
            )?;
            Ok(())
        })
    }
    fn max_report_id(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM reports", [], |r| r.get(0))?)
    }
    fn order_reports_since(&self, merchant: &str, since: i64, except: &[String]) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM reports WHERE merchant = ?1 AND kind = 'orders' AND id > ?2
               AND source NOT IN (SELECT value FROM json_each(?3))",
            params![merchant, since, json_list(except)],
            |r| r.get(0),
        )?)
    }
    /// Inventory reports for `merchant` applied after report `since`, touching
    /// one of `warehouses` ([] = any).
    fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64> {
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
    fn feed_rows<T>(
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
            products: Products(products.query(&by_merchant[..n])?),
            stock: Cursor::new(Scan(stock.query(&by_merchant[..n])?))?,
            orders: Cursor::new(Scan(orders.query(&for_orders[..n + 1])?))?,
            sent: Cursor::new(Scan(sent.query(&by_cart[..n])?))?,
            counted: Vec::new(),
            draws: Vec::new(),
            err: None,
            kits: kit_plan(q, |skus| self.rows_of_skus(q.merchant, skus, q.sync_time))?,
            queue: Default::default(),
            products_done: false,
        };
        let out = f(&mut merge);
        match merge.err.take() {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }
    fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM products WHERE merchant = ?1 AND sku = ?2)",
            [merchant, sku],
            |r| r.get(0),
        )?)
    }
    fn rows_of_skus(&self, merchant: &str, skus: &[String], sync_time: Millis) -> Result<SkuRows> {
        Ok(super::scan::rows_of_skus(
            &self.conn, merchant, skus, sync_time,
        )?)
    }
    fn stock_rows(
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
    /// The order lines that [`SqliteLedger::feed_rows`] subtracts for one SKU.
    fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>> {
        let [_, stock, _, _] = merge_sql(true);
        let mut stock = self.conn.prepare_cached(&stock)?;
        let stock = Scan(stock.query(params![merchant, sku])?);
        let mut lines = self.conn.prepare_cached(OPEN_LINES_OF_SKU)?;
        let lines = lines.query_map(params![merchant, sync_time, sku], |r| {
            Ok(OpenLine {
                draw: OrderDraw {
                    order_id: r.get(0)?,
                    line: r.get(1)?,
                    quantity: r.get(2)?,
                    ordered_at: r.get(3)?,
                    warehouse: r.get(4)?,
                },
                warehouse: r.get(4)?,
            })
        })?;
        Ok(drawing_lines(warehouses, stock, lines)?)
    }
    /// Next `{seq}` for a cart's file names; committed at once so it never repeats.
    fn next_seq(&self, cart: &str) -> Result<i64> {
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
    fn next_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "INSERT INTO control_numbers (sender, receiver, last) VALUES (?1, ?2, 1)
             ON CONFLICT (sender, receiver) DO UPDATE SET last = CASE WHEN last >= 999999999 THEN 1 ELSE last + 1 END
             RETURNING last",
            [sender, receiver],
            |r| r.get(0),
        )?)
    }
    /// The control number `next_control` would give, without taking it.
    fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64> {
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
    fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64> {
        self.record_delivery(e, delivered_through, None)
    }
    /// [`SqliteLedger::record_sync`], and for a delivered feed the values it sent
    /// that differ from the last sent (`sent`): only those rows of
    /// `last_sent` are written (`sync_id`: the sync that last changed it).
    fn record_delivery(
        &mut self,
        e: &SyncEntry,
        delivered_through: Option<i64>,
        sent: Option<&mut SentLog>,
    ) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        check_fence(&tx, self.fence.as_ref())?;
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
    fn record_ack(&self, carts: &[String], group: i64, status: &str, codes: &str) -> Result<u64> {
        let n = self.conn.execute(
            "UPDATE syncs SET ack_status = ?3, ack_codes = ?4
             WHERE group_control = ?2 AND outcome = 'sent' AND cart IN (SELECT value FROM json_each(?1))",
            params![json_list(carts), group, status, codes],
        )?;
        Ok(n as u64)
    }
    fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>> {
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
    fn inbound_stats(&self, source: &str) -> Result<InboundStats> {
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
        Ok(InboundStats::from_parts(
            last_pickup,
            applied,
            file_error,
            look,
        ))
    }
    /// A source's looks: the last good one, the current failed run.
    fn source_look(&self, source: &str) -> Result<SourceLook> {
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
    fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook> {
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
    fn table_counts(&self) -> Result<Vec<(String, i64)>> {
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
    /// Starts applying one inventory file; dropped without `apply`, nothing
    /// changes. `direct`: try the direct way (see [`Direct`]) first; `now`:
    /// the moment of the apply.
    fn inventory_batch(
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
            fence: self.fence.clone(),
        })
    }
    fn order_batch(&mut self, merchant: &str, source: &str) -> Result<OrderBatch<'_>> {
        let fence = self.fence.clone();
        let (tx, report_id) = self.begin_report()?;
        Ok(OrderBatch {
            fence,
            tx,
            merchant: merchant.to_string(),
            source: source.to_string(),
            report_id,
        })
    }
    fn product_batch(&mut self, merchant: &str) -> Result<ProductBatch<'_>> {
        let fence = self.fence.clone();
        let (tx, report_id) = self.begin_report()?;
        Ok(ProductBatch {
            fence,
            tx,
            merchant: merchant.to_string(),
            report_id,
        })
    }
    /// Deletes history older than `cutoff`: sync attempts (the newest
    /// attempt of each cart stays: status and the schedule read it) and
    /// inbound file records, in small batches, then gives the space back
    /// a little at a time (ledgers made with auto_vacuum = INCREMENTAL)
    /// and keeps the WAL short.
    fn prune_history(&self, cutoff: Millis) -> Result<PrunedRows> {
        let mut p = PrunedRows {
            history_rows: self.prune_batches(
                "DELETE FROM syncs WHERE id IN (
           SELECT id FROM syncs WHERE finished_at < ?1
             AND id NOT IN (SELECT MAX(id) FROM syncs GROUP BY cart)
           LIMIT ?2)",
                cutoff,
            )?,
            file_rows: 0,
        };
        p.file_rows = self.prune_batches(
            "DELETE FROM inbound_files WHERE id IN (
           SELECT id FROM inbound_files WHERE received_at < ?1 LIMIT ?2)",
            cutoff,
        )?;
        let _ = self
            .conn
            .execute_batch("PRAGMA incremental_vacuum(2000); PRAGMA wal_checkpoint(PASSIVE);");
        Ok(p)
    }
    fn set_fence(&mut self, fence: Option<Fence>) {
        self.fence = fence;
    }
    fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
    /// See [`Ledger::take_lease`]. One immediate transaction: read the
    /// row, then insert or update it.
    fn take_lease(&self, work: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        let tx = Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let now = clock();
        let until = now.saturating_add(ttl.as_millis() as i64);
        let row: Option<(String, i64, Millis, Millis)> = tx
            .query_row(
                "SELECT holder, generation, taken_at, expires_at FROM leases WHERE work = ?1",
                [work],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (generation, taken_at) = match row {
            None => {
                tx.execute(
                    "INSERT INTO leases (work, holder, generation, taken_at, expires_at)
                     VALUES (?1, ?2, 1, ?3, ?4)",
                    params![work, holder, now, until],
                )?;
                (1, now)
            }
            Some((h, g, t, e)) if h == holder && e > now => {
                tx.execute(
                    "UPDATE leases SET expires_at = ?2 WHERE work = ?1",
                    params![work, until],
                )?;
                (g, t)
            }
            Some((_, g, _, e)) if e <= now => {
                tx.execute(
                    "UPDATE leases SET holder = ?2, generation = ?3, taken_at = ?4, expires_at = ?5
                     WHERE work = ?1",
                    params![work, holder, g + 1, now, until],
                )?;
                (g + 1, now)
            }
            Some(_) => return Ok(None),
        };
        tx.commit()?;
        Ok(Some(Lease {
            work: work.to_string(),
            holder: holder.to_string(),
            generation,
            taken_at,
            expires_at: until,
        }))
    }
    /// See [`Ledger::renew_lease`]. A released row has expires_at = taken_at.
    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let until = clock().saturating_add(ttl.as_millis() as i64);
        let n = self.conn.execute(
            "UPDATE leases SET expires_at = ?4
             WHERE work = ?1 AND holder = ?2 AND generation = ?3 AND expires_at > taken_at",
            params![lease.work, lease.holder, lease.generation, until],
        )?;
        Ok(n == 1)
    }
    /// See [`Ledger::release_lease`].
    fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.conn.execute(
            "UPDATE leases SET expires_at = taken_at
             WHERE work = ?1 AND holder = ?2 AND generation = ?3",
            params![lease.work, lease.holder, lease.generation],
        )?;
        Ok(())
    }
    fn leases(&self) -> Result<Vec<LeaseRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT work, holder, generation, taken_at, expires_at, expires_at > ?1
             FROM leases ORDER BY work",
        )?;
        let rows = stmt.query_map([clock()], |r| {
            Ok(LeaseRow {
                work: r.get(0)?,
                holder: r.get(1)?,
                generation: r.get(2)?,
                taken_at: r.get(3)?,
                expires_at: r.get(4)?,
                live: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
    fn heartbeat(&self, instance: &str, within: Duration) -> Result<u64> {
        let now = clock();
        self.conn.execute(
            "INSERT INTO gateways (instance, last_seen) VALUES (?1, ?2)
             ON CONFLICT (instance) DO UPDATE SET last_seen = excluded.last_seen",
            params![instance, now],
        )?;
        let n: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM gateways WHERE last_seen > ?1",
            [now - within.as_millis() as i64],
            |r| r.get(0),
        )?;
        Ok(n.max(1))
    }
    fn gateway_left(&self, instance: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM gateways WHERE instance = ?1", [instance])?;
        Ok(())
    }
    fn journal_put(&self, cart: &str, json: &str) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "INSERT INTO journal (cart, body, written_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (cart) DO UPDATE SET body = excluded.body, written_at = excluded.written_at",
                params![cart, json, clock()],
            )?;
            Ok(())
        })
    }
    fn journal_get(&self, cart: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT body FROM journal WHERE cart = ?1", [cart], |r| {
                r.get(0)
            })
            .optional()?)
    }
    fn journal_clear(&self, cart: &str) -> Result<()> {
        self.fenced(|c| {
            c.execute("DELETE FROM journal WHERE cart = ?1", [cart])?;
            Ok(())
        })
    }
    /// The ledger's tables, by name.
    #[doc(hidden)]
    fn debug_tables(&self) -> Result<Vec<String>> {
        Ok(self
            .conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }
    /// Every row of `table`, ordered by the columns `order_by` (in the
    /// stored order when empty).
    #[doc(hidden)]
    fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable> {
        let mut sql = format!("SELECT * FROM {}", ident(table));
        if !order_by.is_empty() {
            let cols: Vec<String> = order_by.iter().map(|c| ident(c)).collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&cols.join(", "));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get::<_, Value>(i)? {
                            Value::Null => DebugValue::Null,
                            Value::Integer(v) => DebugValue::Integer(v),
                            Value::Real(v) => DebugValue::Real(v),
                            Value::Text(s) => DebugValue::Text(s),
                            Value::Blob(b) => DebugValue::Blob(b),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(DebugTable { columns, rows })
    }
    /// Inserts one row as is (what an older stockgate could have written).
    #[doc(hidden)]
    fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()> {
        let cols: Vec<String> = row.iter().map(|(c, _)| ident(c)).collect();
        let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            ident(table),
            cols.join(", "),
            marks.join(", ")
        );
        self.conn
            .execute(&sql, rusqlite::params_from_iter(row.iter().map(|(_, v)| v)))?;
        Ok(())
    }
    /// The backend's own integrity check: "ok" when whole.
    #[doc(hidden)]
    fn debug_integrity(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
    /// The sum of an integer column over a whole table (0 when empty).
    #[doc(hidden)]
    fn debug_sum(&self, table: &str, column: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT COALESCE(SUM({}), 0) FROM {}",
                ident(column),
                ident(table)
            ),
            [],
            |r| r.get(0),
        )?)
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
