//! The scans of the feed merge on PostgreSQL: portals (server-side
//! cursors of one transaction) fetched a few thousand rows at a time.

use super::super::feed::{KeyedRow, KeyedScan, ProductRow, ProductScan};
use postgres::{Portal, Row, Transaction};
use std::cell::RefCell;
use std::collections::VecDeque;

/// Rows fetched from a portal per round trip.
const FETCH: i32 = 4096;

/// A portal of the feed's transaction, read in key order.
pub(super) struct PortalScan<'t, 'c> {
    tx: &'t RefCell<Transaction<'c>>,
    portal: Portal,
    buf: VecDeque<Row>,
    done: bool,
}

impl<'t, 'c> PortalScan<'t, 'c> {
    pub(super) fn new(tx: &'t RefCell<Transaction<'c>>, portal: Portal) -> Self {
        PortalScan {
            tx,
            portal,
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn next(&mut self) -> Result<Option<Row>, postgres::Error> {
        if self.buf.is_empty() && !self.done {
            let rows = self.tx.borrow_mut().query_portal(&self.portal, FETCH)?;
            self.done = rows.len() < FETCH as usize;
            self.buf.extend(rows);
        }
        Ok(self.buf.pop_front())
    }
}

/// Fills `row` from a stock, orders or last-sent row.
fn keyed(r: &Row, row: &mut KeyedRow) -> Result<(), postgres::Error> {
    let n = r.len();
    row.sku.clear();
    row.sku.push_str(r.try_get::<_, &str>(0)?);
    // last_sent: (sku, value); stock and orders: (sku, warehouse, ints...).
    let first_int = if n == 2 {
        1
    } else {
        match r.try_get::<_, Option<&str>>(1)? {
            None => row.text = None,
            Some(v) => {
                let t = row.text.get_or_insert_with(String::new);
                t.clear();
                t.push_str(v);
            }
        }
        2
    };
    for (i, col) in (first_int..n).enumerate() {
        row.ints[i] = r.try_get(col)?;
    }
    Ok(())
}

impl KeyedScan for PortalScan<'_, '_> {
    type Error = postgres::Error;

    fn next_into(&mut self, row: &mut KeyedRow) -> Result<bool, postgres::Error> {
        match self.next()? {
            Some(r) => keyed(&r, row).map(|()| true),
            None => Ok(false),
        }
    }
}

/// Rows already read (one SKU's, for `explain`), as a keyed scan.
pub(super) struct RowsScan(std::vec::IntoIter<Row>);

impl RowsScan {
    pub(super) fn new(rows: Vec<Row>) -> Self {
        RowsScan(rows.into_iter())
    }
}

impl KeyedScan for RowsScan {
    type Error = postgres::Error;

    fn next_into(&mut self, row: &mut KeyedRow) -> Result<bool, postgres::Error> {
        match self.0.next() {
            Some(r) => keyed(&r, row).map(|()| true),
            None => Ok(false),
        }
    }
}

/// The products scan: (sku, upc, description, price) in SKU order.
pub(super) struct Products<'t, 'c> {
    scan: PortalScan<'t, 'c>,
    current: Option<Row>,
}

impl<'t, 'c> Products<'t, 'c> {
    pub(super) fn new(scan: PortalScan<'t, 'c>) -> Self {
        Products {
            scan,
            current: None,
        }
    }
}

impl ProductRow for &Row {
    type Error = postgres::Error;

    fn sku(&self) -> Result<&str, postgres::Error> {
        self.try_get(0)
    }

    #[allow(clippy::type_complexity)]
    fn details(&self) -> Result<(Option<String>, Option<String>, Option<String>), postgres::Error> {
        Ok((self.try_get(1)?, self.try_get(2)?, self.try_get(3)?))
    }
}

impl ProductScan for Products<'_, '_> {
    type Error = postgres::Error;
    type Row<'r>
        = &'r Row
    where
        Self: 'r;

    fn next_row(&mut self) -> Result<Option<&Row>, postgres::Error> {
        self.current = self.scan.next()?;
        Ok(self.current.as_ref())
    }
}
