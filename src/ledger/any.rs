//! The backend a [`super::Ledger`] uses, chosen by its location: SQLite or
//! PostgreSQL, each call dispatched to it (and the batches likewise).

use super::debug::{DebugTable, DebugValue};
use super::*;

#[allow(clippy::large_enum_variant)] // one per handle: boxing buys nothing
pub(super) enum Backend {
    Sqlite(sqlite::SqliteLedger),
    Pg(pg::PgLedger),
}

/// `each!(self, b => expr)`: `expr` on whichever backend `self` holds.
macro_rules! each {
    ($on:expr, $b:ident => $e:expr) => {
        match $on {
            Backend::Sqlite($b) => $e,
            Backend::Pg($b) => $e,
        }
    };
}

/// Batches likewise.
macro_rules! each_batch {
    ($ty:ident, $on:expr, $b:ident => $e:expr) => {
        match $on {
            $ty::Sqlite($b) => $e,
            $ty::Pg($b) => $e,
        }
    };
}

#[allow(clippy::large_enum_variant)] // one per file being applied
pub enum InventoryBatch<'a> {
    Sqlite(sqlite::InventoryBatch<'a>),
    Pg(pg::InventoryBatch<'a>),
}
pub enum ProductBatch<'a> {
    Sqlite(sqlite::ProductBatch<'a>),
    Pg(pg::ProductBatch<'a>),
}
pub enum OrderBatch<'a> {
    Sqlite(sqlite::OrderBatch<'a>),
    Pg(pg::OrderBatch<'a>),
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
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::add(b, sku, warehouse, qty, as_of, upc, description))
    }
    fn price(&self, sku: &str, price: &str, now: Millis) -> Result<()> {
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::price(b, sku, price, now))
    }
    fn aggregate(&self) -> Result<Vec<String>> {
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::aggregate(b))
    }
    fn zero_counts(&self, warehouses: &[String], as_of: Millis) -> Result<Vec<ZeroCount>> {
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::zero_counts(b, warehouses, as_of))
    }
    fn warehouses(&self) -> Result<Vec<String>> {
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::warehouses(b))
    }
    fn needs_staging(&self) -> bool {
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::needs_staging(b))
    }
    fn apply(self, meta: &ReportMeta, snapshot_warehouses: &[String]) -> Result<Applied> {
        each_batch!(InventoryBatch, self, b => InventoryBatchOps::apply(b, meta, snapshot_warehouses))
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
        each_batch!(ProductBatch, self, b => ProductBatchOps::upsert(b, sku, upc, description, price, now))
    }
    fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        each_batch!(ProductBatch, self, b => ProductBatchOps::apply(b, meta))
    }
}

impl OrderBatchOps for OrderBatch<'_> {
    fn upsert(&self, l: &OrderLine, now: Millis) -> Result<()> {
        each_batch!(OrderBatch, self, b => OrderBatchOps::upsert(b, l, now))
    }
    fn apply(self, meta: &ReportMeta) -> Result<Applied> {
        each_batch!(OrderBatch, self, b => OrderBatchOps::apply(b, meta))
    }
}

impl OrderBatch<'_> {
    /// Portable SQL inside the file's transaction, with its report id.
    pub fn with_sql<R>(
        &mut self,
        f: impl FnOnce(&mut dyn super::sql::SqlTx, i64) -> Result<R>,
    ) -> Result<R> {
        each_batch!(OrderBatch, self, b => b.with_sql(f))
    }
    /// Commits the file as a report of `kind`.
    pub fn apply_as(self, meta: &ReportMeta, kind: &str) -> Result<Applied> {
        each_batch!(OrderBatch, self, b => b.apply_as(meta, kind))
    }
}

impl Backend {
    /// Portable SQL in one transaction of whichever backend; a write is
    /// fenced like every other completing write.
    pub(super) fn portable<R>(
        &self,
        write: bool,
        f: impl FnOnce(&mut dyn super::sql::SqlTx) -> Result<R>,
    ) -> Result<R> {
        each!(self, b => b.portable(write, f))
    }
}

impl LedgerBackend for Backend {
    type InventoryBatch<'a> = InventoryBatch<'a>;
    type ProductBatch<'a> = ProductBatch<'a>;
    type OrderBatch<'a> = OrderBatch<'a>;

    fn schema_version(&self) -> Result<i64> {
        each!(self, b => b.schema_version())
    }
    fn check_writable(&self, path: &Path) -> Result<()> {
        each!(self, b => b.check_writable(path))
    }
    fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()> {
        each!(self, b => b.ensure(merchants, carts))
    }
    fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>> {
        each!(self, b => b.already_applied(source, sha256))
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
        each!(self, b => b.record_file(source, file_name, sha256, outcome, archive, error, now))
    }
    fn discard_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        archive: &str,
        now: Millis,
    ) -> Result<()> {
        each!(self, b => b.discard_file(source, file_name, sha256, archive, now))
    }
    fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>> {
        each!(self, b => b.seen_files(source))
    }
    fn note_seen(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        now: Millis,
    ) -> Result<()> {
        each!(self, b => b.note_seen(source, name, size, mtime, now))
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
        each!(self, b => b.note_taken(source, name, size, mtime, outcome, sha256, note, now))
    }
    fn product_count(&self, merchant: &str) -> Result<u64> {
        each!(self, b => b.product_count(merchant))
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
        each!(self, b => b.note_problem(source, name, size, mtime, note, now))
    }
    fn forget(&self, source: &str, name: &str) -> Result<()> {
        each!(self, b => b.forget(source, name))
    }
    fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()> {
        each!(self, b => b.forget_all(source, names))
    }
    fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        each!(self, b => b.keep_schedule(cart, at))
    }
    fn cart_state(&self, cart: &str) -> Result<CartState> {
        each!(self, b => b.cart_state(cart))
    }
    fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        each!(self, b => b.set_retry(cart, at))
    }
    fn max_report_id(&self) -> Result<i64> {
        each!(self, b => b.max_report_id())
    }
    fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64> {
        each!(self, b => b.reports_since(merchant, since, warehouses))
    }
    fn order_reports_since(&self, merchant: &str, since: i64, except: &[String]) -> Result<i64> {
        each!(self, b => b.order_reports_since(merchant, since, except))
    }
    fn feed_rows<T>(
        &self,
        q: &FeedQuery,
        f: impl FnOnce(&mut dyn Iterator<Item = FeedRow>) -> T,
    ) -> Result<T> {
        each!(self, b => b.feed_rows(q, f))
    }
    fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool> {
        each!(self, b => b.product_exists(merchant, sku))
    }
    fn rows_of_skus(&self, merchant: &str, skus: &[String], sync_time: Millis) -> Result<SkuRows> {
        each!(self, b => b.rows_of_skus(merchant, skus, sync_time))
    }
    fn stock_rows(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
    ) -> Result<Vec<StockRow>> {
        each!(self, b => b.stock_rows(merchant, sku, warehouses))
    }
    fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>> {
        each!(self, b => b.order_draws(merchant, sku, warehouses, sync_time))
    }
    fn next_seq(&self, cart: &str) -> Result<i64> {
        each!(self, b => b.next_seq(cart))
    }
    fn next_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        each!(self, b => b.next_control(sender, receiver))
    }
    fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        each!(self, b => b.peek_control(sender, receiver))
    }
    fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64> {
        each!(self, b => b.record_sync(e, delivered_through))
    }
    fn record_delivery(
        &mut self,
        e: &SyncEntry,
        delivered_through: Option<i64>,
        sent: Option<&mut SentLog>,
    ) -> Result<i64> {
        each!(self, b => b.record_delivery(e, delivered_through, sent))
    }
    fn record_ack(&self, carts: &[String], group: i64, status: &str, codes: &str) -> Result<u64> {
        each!(self, b => b.record_ack(carts, group, status, codes))
    }
    fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>> {
        each!(self, b => b.history(cart, limit))
    }
    fn inbound_stats(&self, source: &str) -> Result<InboundStats> {
        each!(self, b => b.inbound_stats(source))
    }
    fn source_look(&self, source: &str) -> Result<SourceLook> {
        each!(self, b => b.source_look(source))
    }
    fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook> {
        each!(self, b => b.note_look(source, at, error))
    }
    fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        each!(self, b => b.table_counts())
    }
    fn inventory_batch(
        &mut self,
        merchant: &str,
        now: Millis,
        direct: bool,
    ) -> Result<InventoryBatch<'_>> {
        Ok(match self {
            Backend::Sqlite(b) => InventoryBatch::Sqlite(b.inventory_batch(merchant, now, direct)?),
            Backend::Pg(b) => InventoryBatch::Pg(b.inventory_batch(merchant, now, direct)?),
        })
    }
    fn order_batch(&mut self, merchant: &str, source: &str) -> Result<OrderBatch<'_>> {
        Ok(match self {
            Backend::Sqlite(b) => OrderBatch::Sqlite(b.order_batch(merchant, source)?),
            Backend::Pg(b) => OrderBatch::Pg(b.order_batch(merchant, source)?),
        })
    }
    fn product_batch(&mut self, merchant: &str) -> Result<ProductBatch<'_>> {
        Ok(match self {
            Backend::Sqlite(b) => ProductBatch::Sqlite(b.product_batch(merchant)?),
            Backend::Pg(b) => ProductBatch::Pg(b.product_batch(merchant)?),
        })
    }
    fn prune_history(&self, cutoff: Millis) -> Result<PrunedRows> {
        each!(self, b => b.prune_history(cutoff))
    }
    fn set_fence(&mut self, fence: Option<Fence>) {
        each!(self, b => b.set_fence(fence))
    }
    fn fence(&self) -> Option<&Fence> {
        each!(self, b => LedgerBackend::fence(b))
    }
    fn take_lease(&self, work: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        each!(self, b => b.take_lease(work, holder, ttl))
    }
    fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool> {
        each!(self, b => b.renew_lease(lease, ttl))
    }
    fn release_lease(&self, lease: &Lease) -> Result<()> {
        each!(self, b => b.release_lease(lease))
    }
    fn leases(&self) -> Result<Vec<LeaseRow>> {
        each!(self, b => b.leases())
    }
    fn heartbeat(&self, instance: &str, within: Duration) -> Result<u64> {
        each!(self, b => b.heartbeat(instance, within))
    }
    fn gateway_left(&self, instance: &str) -> Result<()> {
        each!(self, b => b.gateway_left(instance))
    }
    fn journal_put(&self, cart: &str, json: &str) -> Result<()> {
        each!(self, b => b.journal_put(cart, json))
    }
    fn journal_get(&self, cart: &str) -> Result<Option<String>> {
        each!(self, b => b.journal_get(cart))
    }
    fn journal_clear(&self, cart: &str) -> Result<()> {
        each!(self, b => b.journal_clear(cart))
    }
    fn debug_tables(&self) -> Result<Vec<String>> {
        each!(self, b => b.debug_tables())
    }
    fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable> {
        each!(self, b => b.debug_rows(table, order_by))
    }
    fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()> {
        each!(self, b => b.debug_insert(table, row))
    }
    fn debug_integrity(&self) -> Result<String> {
        each!(self, b => b.debug_integrity())
    }
    fn debug_sum(&self, table: &str, column: &str) -> Result<i64> {
        each!(self, b => b.debug_sum(table, column))
    }
}
