//! The SQLite ledger as a [`LedgerBackend`]: every call goes to its own
//! method of the same name.

use super::*;
use crate::ledger::debug::{DebugTable, DebugValue};

impl LedgerBackend for SqliteLedger {
    type InventoryBatch<'a> = InventoryBatch<'a>;
    type ProductBatch<'a> = ProductBatch<'a>;
    type OrderBatch<'a> = OrderBatch<'a>;
    fn schema_version(&self) -> Result<i64> {
        SqliteLedger::schema_version(self)
    }
    fn check_writable(&self, path: &Path) -> Result<()> {
        SqliteLedger::check_writable(self, path)
    }
    fn ensure(&self, merchants: &[String], carts: &[String]) -> Result<()> {
        SqliteLedger::ensure(self, merchants, carts)
    }
    fn already_applied(&self, source: &str, sha256: &str) -> Result<Option<i64>> {
        SqliteLedger::already_applied(self, source, sha256)
    }
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
        SqliteLedger::record_file(
            self, source, file_name, sha256, outcome, archive, error, now,
        )
    }
    fn discard_file(
        &self,
        source: &str,
        file_name: &str,
        sha256: &str,
        archive: &str,
        now: Millis,
    ) -> Result<()> {
        SqliteLedger::discard_file(self, source, file_name, sha256, archive, now)
    }
    fn seen_files(&self, source: &str) -> Result<HashMap<String, SeenFile>> {
        SqliteLedger::seen_files(self, source)
    }
    fn note_seen(
        &self,
        source: &str,
        name: &str,
        size: u64,
        mtime: Option<Millis>,
        now: Millis,
    ) -> Result<()> {
        SqliteLedger::note_seen(self, source, name, size, mtime, now)
    }
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
        SqliteLedger::note_taken(self, source, name, size, mtime, outcome, sha256, note, now)
    }
    fn product_count(&self, merchant: &str) -> Result<u64> {
        SqliteLedger::product_count(self, merchant)
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
        SqliteLedger::note_problem(self, source, name, size, mtime, note, now)
    }
    fn forget(&self, source: &str, name: &str) -> Result<()> {
        SqliteLedger::forget(self, source, name)
    }
    fn forget_all(&mut self, source: &str, names: &[&str]) -> Result<()> {
        SqliteLedger::forget_all(self, source, names)
    }
    fn keep_schedule(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        SqliteLedger::keep_schedule(self, cart, at)
    }
    fn cart_state(&self, cart: &str) -> Result<CartState> {
        SqliteLedger::cart_state(self, cart)
    }
    fn set_retry(&self, cart: &str, at: Option<Millis>) -> Result<()> {
        SqliteLedger::set_retry(self, cart, at)
    }
    fn max_report_id(&self) -> Result<i64> {
        SqliteLedger::max_report_id(self)
    }
    fn reports_since(&self, merchant: &str, since: i64, warehouses: &[String]) -> Result<i64> {
        SqliteLedger::reports_since(self, merchant, since, warehouses)
    }
    fn feed_rows<T>(
        &self,
        q: &FeedQuery,
        f: impl FnOnce(&mut dyn Iterator<Item = FeedRow>) -> T,
    ) -> Result<T> {
        SqliteLedger::feed_rows(self, q, f)
    }
    fn product_exists(&self, merchant: &str, sku: &str) -> Result<bool> {
        SqliteLedger::product_exists(self, merchant, sku)
    }
    fn stock_rows(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
    ) -> Result<Vec<StockRow>> {
        SqliteLedger::stock_rows(self, merchant, sku, warehouses)
    }
    fn order_draws(
        &self,
        merchant: &str,
        sku: &str,
        warehouses: &[String],
        sync_time: Millis,
    ) -> Result<Vec<OrderDraw>> {
        SqliteLedger::order_draws(self, merchant, sku, warehouses, sync_time)
    }
    fn next_seq(&self, cart: &str) -> Result<i64> {
        SqliteLedger::next_seq(self, cart)
    }
    fn next_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        SqliteLedger::next_control(self, sender, receiver)
    }
    fn peek_control(&self, sender: &str, receiver: &str) -> Result<i64> {
        SqliteLedger::peek_control(self, sender, receiver)
    }
    fn record_sync(&mut self, e: &SyncEntry, delivered_through: Option<i64>) -> Result<i64> {
        SqliteLedger::record_sync(self, e, delivered_through)
    }
    fn record_delivery(
        &mut self,
        e: &SyncEntry,
        delivered_through: Option<i64>,
        sent: Option<&mut SentLog>,
    ) -> Result<i64> {
        SqliteLedger::record_delivery(self, e, delivered_through, sent)
    }
    fn record_ack(&self, carts: &[String], group: i64, status: &str, codes: &str) -> Result<u64> {
        SqliteLedger::record_ack(self, carts, group, status, codes)
    }
    fn history(&self, cart: Option<&str>, limit: u64) -> Result<Vec<SyncEntry>> {
        SqliteLedger::history(self, cart, limit)
    }
    fn inbound_stats(&self, source: &str) -> Result<InboundStats> {
        SqliteLedger::inbound_stats(self, source)
    }
    fn source_look(&self, source: &str) -> Result<SourceLook> {
        SqliteLedger::source_look(self, source)
    }
    fn note_look(&self, source: &str, at: Millis, error: Option<&str>) -> Result<SourceLook> {
        SqliteLedger::note_look(self, source, at, error)
    }
    fn table_counts(&self) -> Result<Vec<(String, i64)>> {
        SqliteLedger::table_counts(self)
    }
    fn inventory_batch(
        &mut self,
        merchant: &str,
        now: Millis,
        direct: bool,
    ) -> Result<Self::InventoryBatch<'_>> {
        SqliteLedger::inventory_batch(self, merchant, now, direct)
    }
    fn order_batch(&mut self, merchant: &str, source: &str) -> Result<Self::OrderBatch<'_>> {
        SqliteLedger::order_batch(self, merchant, source)
    }
    fn product_batch(&mut self, merchant: &str) -> Result<Self::ProductBatch<'_>> {
        SqliteLedger::product_batch(self, merchant)
    }
    fn prune_history(&self, cutoff: Millis) -> Result<PrunedRows> {
        SqliteLedger::prune_history(self, cutoff)
    }
    #[doc(hidden)]
    fn debug_tables(&self) -> Result<Vec<String>> {
        SqliteLedger::debug_tables(self)
    }
    #[doc(hidden)]
    fn debug_rows(&self, table: &str, order_by: &[&str]) -> Result<DebugTable> {
        SqliteLedger::debug_rows(self, table, order_by)
    }
    #[doc(hidden)]
    fn debug_insert(&self, table: &str, row: &[(&str, DebugValue)]) -> Result<()> {
        SqliteLedger::debug_insert(self, table, row)
    }
    #[doc(hidden)]
    fn debug_integrity(&self) -> Result<String> {
        SqliteLedger::debug_integrity(self)
    }
    #[doc(hidden)]
    fn debug_sum(&self, table: &str, column: &str) -> Result<i64> {
        SqliteLedger::debug_sum(self, table, column)
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
