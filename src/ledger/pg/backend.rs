//! The PostgreSQL ledger as a [`LedgerBackend`]: the same statements as
//! SQLite's where the two dialects agree, and where they do not, the same
//! meaning (lists as `text[]`, sums clamped as numerics, time from the
//! database's clock for leases).

use super::schema::MIGRATIONS_TABLE;
use super::*;
use crate::ledger::debug::{DebugTable, DebugValue};
use crate::ledger::feed::{Cursor, FeedMerge, OpenLine, drawing_lines, kit_plan};
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use scan::{PortalScan, Products};

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl ToSql for DebugValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            DebugValue::Null => Ok(IsNull::Yes),
            DebugValue::Integer(v) if *ty == Type::INT4 => (*v as i32).to_sql(ty, out),
            DebugValue::Integer(v) if *ty == Type::BOOL => (*v != 0).to_sql(ty, out),
            DebugValue::Integer(v) => v.to_sql(ty, out),
            DebugValue::Real(v) => v.to_sql(ty, out),
            DebugValue::Text(s) => s.as_str().to_sql(ty, out),
            DebugValue::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// A stored value as a test sees it.
fn debug_value(r: &postgres::Row, i: usize) -> Result<DebugValue> {
    let ty = r.columns()[i].type_().clone();
    Ok(if ty == Type::INT8 {
        r.try_get::<_, Option<i64>>(i)?
            .map_or(DebugValue::Null, DebugValue::Integer)
    } else if ty == Type::INT4 {
        r.try_get::<_, Option<i32>>(i)?
            .map_or(DebugValue::Null, |v| DebugValue::Integer(v as i64))
    } else if ty == Type::BOOL {
        r.try_get::<_, Option<bool>>(i)?
            .map_or(DebugValue::Null, |v| DebugValue::Integer(v as i64))
    } else if ty == Type::FLOAT8 {
        r.try_get::<_, Option<f64>>(i)?
            .map_or(DebugValue::Null, DebugValue::Real)
    } else if ty == Type::BYTEA {
        r.try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(DebugValue::Null, DebugValue::Blob)
    } else {
        r.try_get::<_, Option<String>>(i)?
            .map_or(DebugValue::Null, DebugValue::Text)
    })
}

fn history_row(r: &postgres::Row) -> SyncEntry {
    SyncEntry {
        id: r.get(0),
        cart: r.get(1),
        started_at: r.get(2),
        finished_at: r.get(3),
        outcome: SyncOutcome::parse(&r.get::<_, String>(4)),
        reason: r.get(5),
        items: r.get::<_, i64>(6) as u64,
        file: r.get(7),
        bytes: r.get::<_, Option<i64>>(8).map(|b| b as u64),
        sha256: r.get(9),
        forced: r.get::<_, i64>(10) != 0,
        archive_path: r.get(11),
        interchange_control: r.get(12),
        group_control: r.get(13),
        ack_status: r.get(14),
        ack_codes: r.get(15),
    }
}

/// The four scans of the feed merge, as SQLite's `merge_sql` (with `$n`).
fn merge_sql(one_sku: bool) -> [String; 4] {
    let (one, one_order) = if one_sku {
        ("AND sku = $2", "AND sku = $3")
    } else {
        ("", "")
    };
    [
        format!(
            "SELECT sku, upc, description, price FROM products WHERE merchant = $1 {one} ORDER BY sku"
        ),
        format!(
            "SELECT sku, warehouse, quantity, as_of, named_report_id FROM stock
             WHERE merchant = $1 {one} ORDER BY sku, warehouse"
        ),
        format!(
            "SELECT sku, warehouse, quantity, ordered_at FROM order_lines
             WHERE merchant = $1 AND cancelled = 0 AND ordered_at <= $2 {one_order} ORDER BY sku"
        ),
        format!("SELECT sku, value FROM last_sent WHERE cart = $1 {one} ORDER BY sku"),
    ]
}

impl PgLedger {
    /// Every stock row and open order line of `skus` (see
    /// [`LedgerBackend::rows_of_skus`]), by one query each over the array.
    fn rows_of_skus_on(
        c: &mut impl postgres::GenericClient,
        merchant: &str,
        skus: &[String],
        sync_time: Millis,
    ) -> Result<SkuRows> {
        let mut out = SkuRows::default();
        for r in c.query(
            "SELECT sku, warehouse, quantity, as_of, named_report_id FROM stock
             WHERE merchant = $1 AND sku = ANY($2)",
            &[&merchant, &skus],
        )? {
            out.stock.push(SkuStock {
                sku: r.get(0),
                warehouse: r.get(1),
                quantity: r.get(2),
                as_of: r.get(3),
                named_report_id: r.get(4),
            });
        }
        for r in c.query(
            "SELECT sku, warehouse, quantity, ordered_at FROM order_lines
             WHERE merchant = $1 AND sku = ANY($2) AND cancelled = 0 AND ordered_at <= $3",
            &[&merchant, &skus, &sync_time],
        )? {
            out.orders.push(SkuOrder {
                sku: r.get(0),
                warehouse: r.get(1),
                quantity: r.get(2),
                ordered_at: r.get(3),
            });
        }
        Ok(out)
    }
}

impl LedgerBackend for PgLedger {
    type InventoryBatch<'a> = InventoryBatch<'a>;
    type ProductBatch<'a> = ProductBatch<'a>;
    type OrderBatch<'a> = OrderBatch<'a>;

    fn schema_version(&self) -> Result<i64> {
        Ok(self
            .c()
            .query_one(
                &format!("SELECT COALESCE(MAX(version), 0) FROM {MIGRATIONS_TABLE}"),
                &[],
            )?
            .get(0))
    }
    fn check_writable(&self, _path: &Path) -> Result<()> {
        // A database that refuses writes says so at the first one, with
        // its own message; a standby is named here.
        let standby: bool = self
            .c()
            .query_one("SELECT pg_is_in_recovery()", &[])?
            .get(0);
        if standby {
            return Err(LedgerError::ReadOnly {
                path: super::super::location::redact(&self.url),
            });
        }
        Ok(())
    }
    fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()> {
        let mut c = self.c();
        c.execute(
            "INSERT INTO merchants (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            &[&merchants],
        )?;
        c.execute(
            "INSERT INTO carts (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            &[&carts],
        )?;
        Ok(())
    }
    fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>> {
        Ok(self
            .c()
            .query_opt(
                "SELECT id FROM reports WHERE source = $1 AND sha256 = $2 LIMIT 1",
                &[&source, &sha256],
            )?
            .map(|r| r.get(0)))
    }
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&source, &file_name, &sha256, &outcome, &now, &archive, &error],
            )?;
            Ok(())
        })
    }
    fn discard_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        archive: &str,
        now: Millis,
    ) -> Result<()> {
        self.tx(true, |c| {
            c.execute(
                "UPDATE inbound_files SET cleared = 1
                 WHERE source = $1 AND file_name = $2 AND outcome IN ('rejected', 'held') AND cleared = 0",
                &[&source, &file_name],
            )?;
            c.execute(
                "INSERT INTO inbound_files (source, file_name, sha256, outcome, received_at, archive_path)
                 VALUES ($1, $2, $3, 'discarded', $4, $5)",
                &[&source, &file_name, &sha256, &now, &archive],
            )?;
            Ok(())
        })
    }
    fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>> {
        let rows = self.c().query(
            "SELECT name, size, mtime, first_seen, outcome, note FROM remote_files WHERE source = $1",
            &[&source],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    SeenFile {
                        size: r.get(1),
                        mtime: r.get(2),
                        first_seen: r.get(3),
                        outcome: r.get(4),
                        note: r.get(5),
                    },
                )
            })
            .collect())
    }
    fn note_seen(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        now: Millis,
    ) -> Result<()> {
        self.c().execute(
            "INSERT INTO remote_files (source, name, size, mtime, first_seen) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (source, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
               first_seen = excluded.first_seen, outcome = NULL, sha256 = NULL, taken_at = NULL, note = NULL",
            &[&source, &name, &(size as i64), &mtime, &now],
        )?;
        Ok(())
    }
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
                 VALUES ($1, $2, $3, $4, $8, $5, $6, $8, $7)
                 ON CONFLICT (source, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
                   outcome = excluded.outcome, sha256 = COALESCE(excluded.sha256, remote_files.sha256),
                   taken_at = excluded.taken_at, note = excluded.note",
                &[&source, &name, &(size as i64), &mtime, &outcome, &sha256, &note, &now],
            )?;
            Ok(())
        })
    }
    fn product_count(&self, merchant: &str) -> Result<u64> {
        let n: i64 = self
            .c()
            .query_one(
                "SELECT COUNT(*) FROM products WHERE merchant = $1",
                &[&merchant],
            )?
            .get(0);
        Ok(n as u64)
    }
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
                "INSERT INTO remote_files (source, name, size, mtime, first_seen, note) VALUES ($1, $2, $3, $4, $6, $5)
                 ON CONFLICT (source, name) DO UPDATE SET note = excluded.note",
                &[&source, &name, &(size as i64), &mtime, &note, &now],
            )?;
            Ok(())
        })
    }
    fn forget(&self, source: &str, name: &str) -> Result<()> {
        self.c().execute(
            "DELETE FROM remote_files WHERE source = $1 AND name = $2",
            &[&source, &name],
        )?;
        Ok(())
    }
    fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        self.c().execute(
            "DELETE FROM remote_files WHERE source = $1 AND name = ANY($2)",
            &[&source, &names],
        )?;
        Ok(())
    }
    fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "UPDATE carts SET last_attempt = $2 WHERE id = $1",
                &[&cart, &at],
            )?;
            Ok(())
        })
    }
    fn cart_state(&self, cart: &str) -> Result<CartState> {
        Ok(self
            .c()
            .query_opt(
                "SELECT last_report_id, last_attempt, last_success, last_outcome, retry_at FROM carts WHERE id = $1",
                &[&cart],
            )?
            .map(|r| CartState {
                last_report_id: r.get(0),
                last_attempt: r.get(1),
                last_success: r.get(2),
                last_outcome: r.get(3),
                retry_at: r.get(4),
            })
            .unwrap_or_default())
    }
    fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                "UPDATE carts SET retry_at = $2 WHERE id = $1",
                &[&cart, &at],
            )?;
            Ok(())
        })
    }
    fn max_report_id(&self) -> Result<i64> {
        Ok(self
            .c()
            .query_one("SELECT COALESCE(MAX(id), 0)::bigint FROM reports", &[])?
            .get(0))
    }
    fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64> {
        Ok(self
            .c()
            .query_one(
                "SELECT COUNT(DISTINCT r.id) FROM reports r JOIN report_warehouses w ON w.report_id = r.id
                 WHERE r.merchant = $1 AND r.kind = 'inventory' AND r.id > $2
                   AND (cardinality($3::text[]) = 0 OR w.warehouse = ANY($3))",
                &[&merchant, &since, &warehouses],
            )?
            .get(0))
    }
    fn order_reports_since(&self, merchant: &str, since: i64, except: &[String]) -> Result<i64> {
        Ok(self
            .c()
            .query_one(
                "SELECT COUNT(*) FROM reports WHERE merchant = $1 AND kind = 'orders' AND id > $2
                   AND NOT (source = ANY($3::text[]))",
                &[&merchant, &since, &except],
            )?
            .get(0))
    }
    /// The merge over four server-side cursors (portals of one read-only,
    /// repeatable-read transaction: one snapshot), each fetched a few
    /// thousand rows at a time in key order: memory stays bounded.
    fn feed_rows<T>(
        &self,
        q: &FeedQuery,
        f: impl FnOnce(&mut dyn Iterator<Item = FeedRow>) -> T,
    ) -> Result<T> {
        let mut c = self.c();
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let kits = kit_plan(q, |skus| {
            Self::rows_of_skus_on(&mut tx, q.merchant, skus, q.sync_time)
        })?;
        let sku = q.sku.unwrap_or_default();
        let one = q.sku.is_some();
        let [products, stock, orders, sent] = merge_sql(one);
        let by_merchant: Vec<&(dyn ToSql + Sync)> = if one {
            vec![&q.merchant, &sku]
        } else {
            vec![&q.merchant]
        };
        let by_cart: Vec<&(dyn ToSql + Sync)> = if one {
            vec![&q.cart, &sku]
        } else {
            vec![&q.cart]
        };
        let for_orders: Vec<&(dyn ToSql + Sync)> = if one {
            vec![&q.merchant, &q.sync_time, &sku]
        } else {
            vec![&q.merchant, &q.sync_time]
        };
        let p = tx.bind(products.as_str(), &by_merchant)?;
        let s = tx.bind(stock.as_str(), &by_merchant)?;
        let o = tx.bind(orders.as_str(), &for_orders)?;
        let l = tx.bind(sent.as_str(), &by_cart)?;
        let tx = RefCell::new(tx);
        let out = {
            let mut merge = FeedMerge {
                q,
                products: Products::new(PortalScan::new(&tx, p)),
                stock: Cursor::new(PortalScan::new(&tx, s))?,
                orders: Cursor::new(PortalScan::new(&tx, o))?,
                sent: Cursor::new(PortalScan::new(&tx, l))?,
                counted: Vec::new(),
                draws: Vec::new(),
                err: None,
                kits,
                queue: Default::default(),
                products_done: false,
            };
            let out = f(&mut merge);
            match merge.err.take() {
                Some(e) => Err(LedgerError::from(e)),
                None => Ok(out),
            }
        };
        // Dropped without a commit, the transaction rolls back.
        let out = out?;
        tx.into_inner().commit()?;
        Ok(out)
    }
    fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool> {
        Ok(self
            .c()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM products WHERE merchant = $1 AND sku = $2)",
                &[&merchant, &sku],
            )?
            .get(0))
    }
    fn rows_of_skus(&self, merchant: &str, skus: &[String], sync_time: Millis) -> Result<SkuRows> {
        Self::rows_of_skus_on(&mut *self.c(), merchant, skus, sync_time)
    }
    fn stock_rows(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
    ) -> Result<Vec<StockRow>> {
        let rows = self.c().query(
            "SELECT s.warehouse, s.quantity, s.as_of, COALESCE(r.file_name, '') FROM stock s
               LEFT JOIN reports r ON r.id = s.report_id
             WHERE s.merchant = $1 AND s.sku = $2 AND (cardinality($3::text[]) = 0 OR s.warehouse = ANY($3))
             ORDER BY s.warehouse",
            &[&merchant, &sku, &warehouses],
        )?;
        Ok(rows
            .iter()
            .map(|r| StockRow {
                warehouse: r.get(0),
                quantity: r.get(1),
                as_of: r.get(2),
                report: r.get(3),
            })
            .collect())
    }
    fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>> {
        let [_, stock, _, _] = merge_sql(true);
        let mut c = self.c();
        let stock_rows = c.query(stock.as_str(), &[&merchant, &sku])?;
        let lines = c.query(
            "SELECT order_id, line, quantity, ordered_at, warehouse FROM order_lines
             WHERE merchant = $1 AND cancelled = 0 AND ordered_at <= $2 AND sku = $3
             ORDER BY ordered_at, order_id, line",
            &[&merchant, &sync_time, &sku],
        )?;
        let lines = lines.iter().map(|r| {
            Ok::<_, postgres::Error>(OpenLine {
                draw: OrderDraw {
                    order_id: r.try_get(0)?,
                    line: r.try_get(1)?,
                    quantity: r.try_get(2)?,
                    ordered_at: r.try_get(3)?,
                    warehouse: r.try_get(4)?,
                },
                warehouse: r.try_get(4)?,
            })
        });
        Ok(drawing_lines(
            warehouses,
            scan::RowsScan::new(stock_rows),
            lines,
        )?)
    }
    fn next_seq(&self, cart: &str) -> Result<i64> {
        Ok(self
            .c()
            .query_one(
                "INSERT INTO carts (id, seq) VALUES ($1, 1)
                 ON CONFLICT (id) DO UPDATE SET seq = carts.seq + 1 RETURNING seq",
                &[&cart],
            )?
            .get(0))
    }
    fn next_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        Ok(self
            .c()
            .query_one(
                "INSERT INTO control_numbers (sender, receiver, last) VALUES ($1, $2, 1)
                 ON CONFLICT (sender, receiver) DO UPDATE SET last =
                   CASE WHEN control_numbers.last >= 999999999 THEN 1 ELSE control_numbers.last + 1 END
                 RETURNING last",
                &[&sender, &receiver],
            )?
            .get(0))
    }
    fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        let last: Option<i64> = self
            .c()
            .query_opt(
                "SELECT last FROM control_numbers WHERE sender = $1 AND receiver = $2",
                &[&sender, &receiver],
            )?
            .map(|r| r.get(0));
        Ok(match last {
            Some(n) if n < 999_999_999 => n + 1,
            _ => 1,
        })
    }
    fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64> {
        self.record_delivery(e, delivered_through, None)
    }
    /// As SQLite's; the values sent go by COPY into a temporary table and
    /// one set-based upsert (a first sync of a big catalog sends them all).
    fn record_delivery(
        &mut self,
        e: &SyncEntry,
        delivered_through: Option<i64>,
        sent: Option<&mut SentLog>,
    ) -> Result<i64> {
        self.tx(true, |c| {
            let id: i64 = c
                .query_one(
                    "INSERT INTO syncs (cart, started_at, finished_at, outcome, reason, items, file, bytes, sha256,
                                        forced, archive_path, interchange_control, group_control)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                    &[
                        &e.cart,
                        &e.started_at,
                        &e.finished_at,
                        &e.outcome.as_str(),
                        &e.reason,
                        &(e.items as i64),
                        &e.file,
                        &e.bytes.map(|b| b as i64),
                        &e.sha256,
                        &(e.forced as i64),
                        &e.archive_path,
                        &e.interchange_control,
                        &e.group_control,
                    ],
                )?
                .get(0);
            c.execute(
                "INSERT INTO carts (id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&e.cart],
            )?;
            c.execute(
                "UPDATE carts SET last_attempt = $2, last_outcome = $3 WHERE id = $1",
                &[&e.cart, &e.started_at, &e.outcome.as_str()],
            )?;
            if let Some(through) = delivered_through {
                c.execute(
                    "UPDATE carts SET last_success = $2, last_report_id = GREATEST(last_report_id, $3)
                     WHERE id = $1",
                    &[&e.cart, &e.finished_at, &through],
                )?;
                if let Some(log) = sent
                    && !log.is_empty()
                {
                    c.batch_execute(
                        r#"CREATE TEMP TABLE sent_now (sku TEXT COLLATE "C" NOT NULL, value BIGINT NOT NULL)
                           ON COMMIT DROP"#,
                    )?;
                    let copy = "COPY sent_now (sku, value) FROM STDIN";
                    let mut buf = Vec::with_capacity(1 << 20);
                    log.for_each(|sku, value| {
                        copy_field(&mut buf, Some(sku));
                        buf.push(b'\t');
                        buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
                        buf.push(b'\n');
                        if buf.len() >= 4 << 20 {
                            copy_in(c, copy, &mut buf)?;
                        }
                        Ok(())
                    })?;
                    copy_in(c, copy, &mut buf)?;
                    // A SKU pushed twice keeps its last value, as SQLite's
                    // row-by-row upsert does.
                    c.execute(
                        "INSERT INTO last_sent (cart, sku, value, sync_id)
                         SELECT DISTINCT ON (sku) $1::text, sku, value, $2::bigint FROM sent_now
                         ORDER BY sku, ctid DESC
                         ON CONFLICT (cart, sku) DO UPDATE SET value = excluded.value, sync_id = excluded.sync_id",
                        &[&e.cart, &id],
                    )?;
                }
            }
            Ok(id)
        })
    }
    fn record_ack(&self, carts: &[String], group: i64, status: &str, codes: &str) -> Result<u64> {
        Ok(self.c().execute(
            "UPDATE syncs SET ack_status = $3, ack_codes = $4
             WHERE group_control = $2 AND outcome = 'sent' AND cart = ANY($1)",
            &[&carts, &group, &status, &codes],
        )?)
    }
    fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>> {
        let rows = self.c().query(
            "SELECT id, cart, started_at, finished_at, outcome, reason, items, file, bytes, sha256, forced,
                    archive_path, interchange_control, group_control, ack_status, ack_codes
             FROM syncs WHERE ($1::text IS NULL OR cart = $1) ORDER BY id DESC LIMIT $2",
            &[&cart, &(limit.min(i64::MAX as u64) as i64)],
        )?;
        Ok(rows.iter().map(history_row).collect())
    }
    fn inbound_stats(&self, source: &str) -> Result<InboundStats> {
        let (last_pickup, applied): (Option<Millis>, i64) = {
            let r = self.c().query_one(
                "SELECT MAX(received_at), COUNT(*) FILTER (WHERE outcome = 'applied')
                 FROM inbound_files WHERE source = $1",
                &[&source],
            )?;
            (r.get(0), r.get(1))
        };
        let file_error = self
            .c()
            .query_opt(
                "SELECT file_name, error, received_at FROM inbound_files
                 WHERE source = $1 AND outcome IN ('rejected', 'held') AND cleared = 0
                 ORDER BY id DESC LIMIT 1",
                &[&source],
            )?
            .map(|r| {
                let (f, e, at): (String, Option<String>, Millis) = (r.get(0), r.get(1), r.get(2));
                (format!("{f}: {}", e.unwrap_or_default()), at)
            });
        let look = self.source_look(source)?;
        Ok(InboundStats::from_parts(
            last_pickup,
            applied as u64,
            file_error,
            look,
        ))
    }
    fn source_look(&self, source: &str) -> Result<SourceLook> {
        Ok(self
            .c()
            .query_opt(
                "SELECT last_look, last_error, last_error_at, failures FROM source_looks WHERE source = $1",
                &[&source],
            )?
            .map(|r| SourceLook {
                last_look: r.get(0),
                last_error: r.get(1),
                last_error_at: r.get(2),
                failures: r.get::<_, i64>(3) as u64,
            })
            .unwrap_or_default())
    }
    fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook> {
        match error {
            None => self.c().execute(
                "INSERT INTO source_looks (source, last_look, failures) VALUES ($1, $2, 0)
                 ON CONFLICT (source) DO UPDATE SET last_look = excluded.last_look,
                     last_error = NULL, last_error_at = NULL, failures = 0",
                &[&source, &at],
            )?,
            Some(e) => self.c().execute(
                "INSERT INTO source_looks (source, last_error, last_error_at, failures)
                 VALUES ($1, $2, $3, 1)
                 ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error,
                     last_error_at = excluded.last_error_at, failures = source_looks.failures + 1",
                &[&source, &e, &at],
            )?,
        };
        self.source_look(source)
    }
    fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        let names = self.debug_tables()?;
        let mut c = self.c();
        names
            .into_iter()
            .map(|n| {
                let count: i64 = c
                    .query_one(&format!("SELECT COUNT(*) FROM {}", ident(&n)), &[])?
                    .get(0);
                Ok((n, count))
            })
            .collect()
    }
    fn inventory_batch(
        &mut self,
        merchant: &str,
        _now: Millis,
        _direct: bool,
    ) -> Result<InventoryBatch<'_>> {
        InventoryBatch::begin(self, merchant)
    }
    fn order_batch(&mut self, merchant: &str, source: &str) -> Result<OrderBatch<'_>> {
        OrderBatch::begin(self, merchant, source)
    }
    fn product_batch(&mut self, merchant: &str) -> Result<ProductBatch<'_>> {
        ProductBatch::begin(self, merchant)
    }
    fn prune_history(&self, cutoff: Millis) -> Result<PrunedRows> {
        let batches = |sql: &str| -> Result<u64> {
            let mut total = 0u64;
            loop {
                let n = self.c().execute(sql, &[&cutoff, &500i64])?;
                total += n;
                if n < 500 {
                    return Ok(total);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        Ok(PrunedRows {
            history_rows: batches(
                "DELETE FROM syncs WHERE id IN (
                   SELECT id FROM syncs WHERE finished_at < $1
                     AND id NOT IN (SELECT MAX(id) FROM syncs GROUP BY cart)
                   LIMIT $2)",
            )?,
            file_rows: batches(
                "DELETE FROM inbound_files WHERE id IN (
                   SELECT id FROM inbound_files WHERE received_at < $1 LIMIT $2)",
            )?,
        })
    }
    fn set_fence(&mut self, fence: Option<Fence>) {
        self.fence = fence;
    }
    fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
    /// See [`Ledger::take_lease`]: one upsert, judged by the database's
    /// clock; a live lease of another holder is left alone (no row back).
    fn take_lease(&self, work: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        let ttl = ttl.as_millis() as i64;
        let row = self.c().query_opt(
            &format!(
                "WITH now AS (SELECT {NOW_MS} AS ms)
                 INSERT INTO leases AS l (work, holder, generation, taken_at, expires_at)
                 SELECT $1, $2, 1, now.ms, now.ms + $3 FROM now
                 ON CONFLICT (work) DO UPDATE SET
                   holder = excluded.holder,
                   generation = CASE WHEN l.holder = excluded.holder AND l.expires_at > excluded.taken_at
                                     THEN l.generation ELSE l.generation + 1 END,
                   taken_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > excluded.taken_at
                                   THEN l.taken_at ELSE excluded.taken_at END,
                   expires_at = excluded.expires_at
                 WHERE l.expires_at <= excluded.taken_at OR l.holder = excluded.holder
                 RETURNING generation, taken_at, expires_at"
            ),
            &[&work, &holder, &ttl],
        )?;
        Ok(row.map(|r| Lease {
            work: work.to_string(),
            holder: holder.to_string(),
            generation: r.get(0),
            taken_at: r.get(1),
            expires_at: r.get(2),
        }))
    }
    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        let n = self.c().execute(
            &format!(
                "UPDATE leases SET expires_at = {NOW_MS} + $4
                 WHERE work = $1 AND holder = $2 AND generation = $3 AND expires_at > taken_at"
            ),
            &[
                &lease.work,
                &lease.holder,
                &lease.generation,
                &(ttl.as_millis() as i64),
            ],
        )?;
        Ok(n == 1)
    }
    fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.c().execute(
            "UPDATE leases SET expires_at = taken_at
             WHERE work = $1 AND holder = $2 AND generation = $3",
            &[&lease.work, &lease.holder, &lease.generation],
        )?;
        Ok(())
    }
    fn leases(&self) -> Result<Vec<LeaseRow>> {
        let rows = self.c().query(
            &format!(
                "SELECT work, holder, generation, taken_at, expires_at, expires_at > {NOW_MS}
                 FROM leases ORDER BY work"
            ),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| LeaseRow {
                work: r.get(0),
                holder: r.get(1),
                generation: r.get(2),
                taken_at: r.get(3),
                expires_at: r.get(4),
                live: r.get(5),
            })
            .collect())
    }
    fn heartbeat(&self, instance: &str, within: Duration) -> Result<u64> {
        let mut c = self.c();
        c.execute(
            &format!(
                "INSERT INTO gateways (instance, last_seen) VALUES ($1, {NOW_MS})
                 ON CONFLICT (instance) DO UPDATE SET last_seen = excluded.last_seen"
            ),
            &[&instance],
        )?;
        let n: i64 = c
            .query_one(
                &format!("SELECT COUNT(*) FROM gateways WHERE last_seen > {NOW_MS} - $1"),
                &[&(within.as_millis() as i64)],
            )?
            .get(0);
        Ok((n as u64).max(1))
    }
    fn gateway_left(&self, instance: &str) -> Result<()> {
        self.c()
            .execute("DELETE FROM gateways WHERE instance = $1", &[&instance])?;
        Ok(())
    }
    fn journal_put(&self, cart: &str, json: &str) -> Result<()> {
        self.fenced(|c| {
            c.execute(
                &format!(
                    "INSERT INTO journal (cart, body, written_at) VALUES ($1, $2, {NOW_MS})
                     ON CONFLICT (cart) DO UPDATE SET body = excluded.body, written_at = excluded.written_at"
                ),
                &[&cart, &json],
            )?;
            Ok(())
        })
    }
    fn journal_get(&self, cart: &str) -> Result<Option<String>> {
        Ok(self
            .c()
            .query_opt("SELECT body FROM journal WHERE cart = $1", &[&cart])?
            .map(|r| r.get(0)))
    }
    fn journal_clear(&self, cart: &str) -> Result<()> {
        self.fenced(|c| {
            c.execute("DELETE FROM journal WHERE cart = $1", &[&cart])?;
            Ok(())
        })
    }
    fn debug_tables(&self) -> Result<Vec<String>> {
        let rows = self.c().query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> $1
             ORDER BY table_name COLLATE \"C\"",
            &[&MIGRATIONS_TABLE],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
    fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable> {
        let mut sql = format!("SELECT * FROM {}", ident(table));
        // "In the stored order" is insertion order for SQLite's rowid
        // tables; the primary key's for the others: order by it too.
        let order: Vec<String> = if order_by.is_empty() {
            self.c()
                .query(
                    "SELECT a.attname::text FROM pg_index i
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                     WHERE i.indrelid = $1::text::regclass AND i.indisprimary
                     ORDER BY array_position(i.indkey::int2[], a.attnum)",
                    &[&ident(table)],
                )?
                .iter()
                .map(|r| ident(&r.get::<_, String>(0)))
                .collect()
        } else {
            order_by.iter().map(|c| ident(c)).collect()
        };
        if !order.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&order.join(", "));
        }
        let rows = self.c().query(sql.as_str(), &[])?;
        let columns: Vec<String> = match rows.first() {
            Some(r) => r.columns().iter().map(|c| c.name().to_string()).collect(),
            None => self
                .c()
                .prepare(&sql)?
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(
                (0..columns.len())
                    .map(|i| debug_value(r, i))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        Ok(DebugTable { columns, rows: out })
    }
    fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()> {
        let cols: Vec<String> = row.iter().map(|(c, _)| ident(c)).collect();
        let marks: Vec<String> = (1..=row.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            ident(table),
            cols.join(", "),
            marks.join(", ")
        );
        let params: Vec<&(dyn ToSql + Sync)> =
            row.iter().map(|(_, v)| v as &(dyn ToSql + Sync)).collect();
        self.c().execute(sql.as_str(), &params)?;
        Ok(())
    }
    fn debug_integrity(&self) -> Result<String> {
        self.c().query_one("SELECT 1", &[])?;
        Ok("ok".into())
    }
    fn debug_sum(&self, table: &str, column: &str) -> Result<i64> {
        Ok(self
            .c()
            .query_one(
                &format!(
                    "SELECT COALESCE(SUM({}), 0)::bigint FROM {}",
                    ident(column),
                    ident(table)
                ),
                &[],
            )?
            .get(0))
    }
}
