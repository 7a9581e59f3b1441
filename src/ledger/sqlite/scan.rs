//! The scans of the feed merge, and the SQL they run.

use super::super::feed::{KeyedRow, KeyedScan, ProductRow, ProductScan};

/// The four scans the feed merge (`FeedMerge`) merges, in SKU order: products (?1
/// merchant), stock (?1), open orders (?1, ?2 sync time) and the cart's
/// last-sent values (?1 cart). `one_sku`: for one SKU (?2; ?3 for orders),
/// searched by index (explain on a big ledger).
pub(super) fn merge_sql(one_sku: bool) -> [String; 4] {
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

/// One SKU's open order lines (?1 merchant, ?2 sync time, ?3 SKU), with
/// their warehouse, for `explain`'s list of the lines its value
/// subtracts (rule 2 is applied to them in Rust, as the merge does).
pub(super) const OPEN_LINES_OF_SKU: &str = "SELECT order_id, line, quantity, ordered_at, warehouse FROM order_lines INDEXED BY order_lines_sku
     WHERE merchant = ?1 AND cancelled = 0 AND ordered_at <= ?2 AND sku = ?3
     ORDER BY ordered_at, order_id, line";

fn text_of(v: rusqlite::types::ValueRef<'_>, col: usize) -> rusqlite::Result<&str> {
    v.as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, v.data_type(), Box::new(e)))
}

/// A key-ordered scan of stock, open orders or last-sent values: rows of
/// (sku, value) or (sku, warehouse, ints...).
pub(super) struct Scan<'s>(pub rusqlite::Rows<'s>);

impl KeyedScan for Scan<'_> {
    type Error = rusqlite::Error;

    fn next_into(&mut self, row: &mut KeyedRow) -> rusqlite::Result<bool> {
        let Some(r) = self.0.next()? else {
            return Ok(false);
        };
        let n = r.as_ref().column_count();
        row.sku.clear();
        row.sku.push_str(text_of(r.get_ref(0)?, 0)?);
        // last_sent: (sku, value); stock and orders: (sku, warehouse, ints...).
        let first_int = if n == 2 {
            1
        } else {
            match r.get_ref(1)? {
                rusqlite::types::ValueRef::Null => row.text = None,
                v => {
                    let t = row.text.get_or_insert_with(String::new);
                    t.clear();
                    t.push_str(text_of(v, 1)?);
                }
            }
            2
        };
        for (i, col) in (first_int..n).enumerate() {
            row.ints[i] = r.get(col)?;
        }
        Ok(true)
    }
}

/// The products scan: (sku, upc, description, price) in SKU order.
pub(super) struct Products<'s>(pub rusqlite::Rows<'s>);

impl ProductRow for &rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn sku(&self) -> rusqlite::Result<&str> {
        text_of(self.get_ref(0)?, 0)
    }

    fn details(&self) -> rusqlite::Result<(Option<String>, Option<String>, Option<String>)> {
        Ok((self.get(1)?, self.get(2)?, self.get(3)?))
    }
}

impl<'s> ProductScan for Products<'s> {
    type Error = rusqlite::Error;
    type Row<'r>
        = &'r rusqlite::Row<'s>
    where
        Self: 'r;

    fn next_row(&mut self) -> rusqlite::Result<Option<&rusqlite::Row<'s>>> {
        self.0.next()
    }
}

/// [`crate::ledger::LedgerBackend::rows_of_skus`]: one indexed look per SKU
/// (stock by its primary key, open lines by `order_lines_sku`).
pub(super) fn rows_of_skus(
    conn: &rusqlite::Connection,
    merchant: &str,
    skus: &[String],
    sync_time: i64,
) -> rusqlite::Result<crate::ledger::SkuRows> {
    let mut out = crate::ledger::SkuRows::default();
    // Many SKUs (a big kits table): one pass over the merchant's rows in
    // SKU order, keeping those of `skus` (sorted), beats a look per SKU.
    if skus.len() > 4096 {
        // Both scans come in SKU order: `skus` is walked along with them
        // (a row out of that order is looked up).
        let walker = || {
            let mut at = 0usize;
            move |sku: &str| {
                while at < skus.len() && skus[at].as_str() < sku {
                    at += 1;
                }
                if at < skus.len() && skus[at] == sku {
                    return true;
                }
                at > 0
                    && skus[at - 1].as_str() > sku
                    && skus.binary_search_by(|s| s.as_str().cmp(sku)).is_ok()
            }
        };
        let [_, stock_sql, orders_sql, _] = merge_sql(false);
        let mut wanted = walker();
        let mut stock = conn.prepare_cached(&stock_sql)?;
        let mut rows = stock.query(rusqlite::params![merchant])?;
        while let Some(r) = rows.next()? {
            let sku = text_of(r.get_ref(0)?, 0)?;
            if wanted(sku) {
                out.stock.push(stock_at(r, 1, sku.to_string())?);
            }
        }
        let mut wanted = walker();
        let mut orders = conn.prepare_cached(&orders_sql)?;
        let mut rows = orders.query(rusqlite::params![merchant, sync_time])?;
        while let Some(r) = rows.next()? {
            let sku = text_of(r.get_ref(0)?, 0)?;
            if wanted(sku) {
                out.orders.push(order_at(r, 1, sku.to_string())?);
            }
        }
        return Ok(out);
    }
    let mut stock = conn.prepare_cached(
        "SELECT warehouse, quantity, as_of, named_report_id FROM stock WHERE merchant = ?1 AND sku = ?2",
    )?;
    let mut orders = conn.prepare_cached(
        "SELECT warehouse, quantity, ordered_at FROM order_lines INDEXED BY order_lines_sku
         WHERE merchant = ?1 AND sku = ?2 AND cancelled = 0 AND ordered_at <= ?3",
    )?;
    for sku in skus {
        let mut rows = stock.query(rusqlite::params![merchant, sku])?;
        while let Some(r) = rows.next()? {
            out.stock.push(stock_at(r, 0, sku.clone())?);
        }
        let mut rows = orders.query(rusqlite::params![merchant, sku, sync_time])?;
        while let Some(r) = rows.next()? {
            out.orders.push(order_at(r, 0, sku.clone())?);
        }
    }
    Ok(out)
}

/// A stock row of `sku` whose warehouse is column `at` (then quantity,
/// as_of, named_report_id).
fn stock_at(
    r: &rusqlite::Row,
    at: usize,
    sku: String,
) -> rusqlite::Result<crate::ledger::SkuStock> {
    Ok(crate::ledger::SkuStock {
        sku,
        warehouse: r.get(at)?,
        quantity: r.get(at + 1)?,
        as_of: r.get(at + 2)?,
        named_report_id: r.get(at + 3)?,
    })
}

/// An open order line of `sku` whose warehouse is column `at` (then
/// quantity, ordered_at).
fn order_at(
    r: &rusqlite::Row,
    at: usize,
    sku: String,
) -> rusqlite::Result<crate::ledger::SkuOrder> {
    Ok(crate::ledger::SkuOrder {
        sku,
        warehouse: r.get(at)?,
        quantity: r.get(at + 1)?,
        ordered_at: r.get(at + 2)?,
    })
}
