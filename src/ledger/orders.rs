//! The order loop's ledger (CONTRACT §6, rules 25–31), written once for
//! both backends in portable SQL ([`super::sql`]): order heads (ship-to,
//! method, PO), each line's delivery to its order feed, shipments and
//! their lines, and each shipment's delivery to each confirm feed. The
//! rules that need more than a row at a time (which source holds an order,
//! which line a shipped line is, an order's status) are plain Rust here.

use super::sql::{SqlTx, Val};
use super::{Ledger, Result};
use crate::util::Millis;
use crate::vals;
use std::collections::{BTreeMap, HashMap};

/// The ship-to fields, in `ship_to_*` order (stored as one text, the
/// fields joined by U+001F, which no field may hold).
pub const SHIP_TO_FIELDS: [&str; 10] = [
    "name",
    "company",
    "address1",
    "address2",
    "city",
    "state",
    "postal_code",
    "country",
    "phone",
    "email",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShipTo(pub [String; 10]);

impl ShipTo {
    pub fn get(&self, field: &str) -> &str {
        SHIP_TO_FIELDS
            .iter()
            .position(|f| *f == field)
            .map(|i| self.0[i].as_str())
            .unwrap_or("")
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(String::is_empty)
    }
    fn encode(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.0.join("\u{1f}"))
    }
    fn decode(s: Option<String>) -> ShipTo {
        let mut t = ShipTo::default();
        if let Some(s) = s {
            for (i, part) in s.split('\u{1f}').take(10).enumerate() {
                t.0[i] = part.to_string();
            }
        }
        t
    }
}

/// An order's own fields, as an order file gives them (any may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderHead {
    pub order_id: String,
    pub po_number: Option<String>,
    pub ship_method: Option<String>,
    pub ship_to: ShipTo,
}

/// Inside an order file's transaction, after its lines were upserted:
/// each order's head written (a field the file leaves empty keeps what
/// the ledger had), lines new to an order already sent marked late, and
/// the ids of the file's orders now changed after sending (rule 26).
pub fn write_heads(
    tx: &mut dyn SqlTx,
    source: &str,
    merchant: &str,
    report_id: i64,
    now: Millis,
    heads: &[OrderHead],
) -> Result<Vec<String>> {
    for h in heads {
        tx.exec(
            "INSERT INTO order_heads (source, order_id, merchant, po_number, ship_method, ship_to, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (source, order_id) DO UPDATE SET
               po_number = COALESCE(excluded.po_number, order_heads.po_number),
               ship_method = COALESCE(excluded.ship_method, order_heads.ship_method),
               ship_to = COALESCE(excluded.ship_to, order_heads.ship_to),
               updated_at = excluded.updated_at",
            vals![
                source,
                h.order_id.as_str(),
                merchant,
                h.po_number.clone(),
                h.ship_method.clone(),
                h.ship_to.encode(),
                now
            ],
        )?;
        tx.exec(
            "UPDATE order_lines SET late = 1
             WHERE source = ? AND order_id = ? AND sent_sync IS NULL AND entered_at = ? AND report_id = ?
               AND EXISTS (SELECT 1 FROM order_lines o
                           WHERE o.source = ? AND o.order_id = ? AND o.sent_sync IS NOT NULL)",
            vals![source, h.order_id.as_str(), now, report_id, source, h.order_id.as_str()],
        )?;
    }
    let rows = tx.query(
        "SELECT DISTINCT order_id FROM order_lines
         WHERE source = ? AND report_id = ? AND (changed = 1 OR late = 1) ORDER BY order_id",
        vals![source, report_id],
    )?;
    Ok(rows.iter().map(|r| r[0].text()).collect())
}

/// One line an order feed may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLine {
    pub line: String,
    pub sku: String,
    pub quantity: i64,
    pub warehouse: Option<String>,
    pub ordered_at: Millis,
}

/// An order with lines not yet sent to any order feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOrder {
    pub source: String,
    pub order_id: String,
    pub po_number: Option<String>,
    pub ship_method: Option<String>,
    pub ship_to: ShipTo,
    pub lines: Vec<PendingLine>,
}

/// Numeric line numbers in number order, others after them by text.
fn line_key(line: &str) -> (u64, String) {
    (line.parse().unwrap_or(u64::MAX), line.to_string())
}

/// Every order of `merchant` with lines never sent (not cancelled, not
/// arrived after their order was sent), its lines in line order.
pub fn pending_orders(tx: &mut dyn SqlTx, merchant: &str) -> Result<Vec<PendingOrder>> {
    let rows = tx.query(
        "SELECT l.source, l.order_id, l.line, l.sku, l.quantity, l.warehouse, l.ordered_at,
                h.po_number, h.ship_method, h.ship_to
         FROM order_lines l
         LEFT JOIN order_heads h ON h.source = l.source AND h.order_id = l.order_id
         WHERE l.merchant = ? AND l.sent_sync IS NULL AND l.late = 0 AND l.cancelled = 0
         ORDER BY l.source, l.order_id",
        vals![merchant],
    )?;
    let mut out: Vec<PendingOrder> = vec![];
    for r in rows {
        let (source, order_id) = (r[0].text(), r[1].text());
        let same = out
            .last()
            .is_some_and(|o| o.source == source && o.order_id == order_id);
        if !same {
            out.push(PendingOrder {
                source,
                order_id,
                po_number: r[7].opt_text(),
                ship_method: r[8].opt_text(),
                ship_to: ShipTo::decode(r[9].opt_text()),
                lines: vec![],
            });
        }
        let o = out.last_mut().expect("just pushed");
        o.lines.push(PendingLine {
            line: r[2].text(),
            sku: r[3].text(),
            quantity: r[4].int(),
            warehouse: r[5].opt_text(),
            ordered_at: r[6].int(),
        });
    }
    for o in &mut out {
        o.lines.sort_by_key(|l| line_key(&l.line));
    }
    Ok(out)
}

/// A line an order feed delivered: (source, order id, line).
pub type LineKey = (String, String, String);

/// Once the order feed's file is delivered (sync `sync_id`): its lines
/// marked sent, never sent again; their orders no longer held. A line
/// already marked (the same delivery recorded twice) is left as it is.
pub fn mark_sent(tx: &mut dyn SqlTx, feed: &str, sync_id: i64, lines: &[LineKey]) -> Result<()> {
    for (source, order_id, line) in lines {
        tx.exec(
            "UPDATE order_lines SET sent_feed = ?, sent_sync = ?
             WHERE source = ? AND order_id = ? AND line = ? AND sent_sync IS NULL",
            vals![feed, sync_id, source, order_id, line],
        )?;
    }
    let mut orders: Vec<(&String, &String)> = lines.iter().map(|(s, o, _)| (s, o)).collect();
    orders.dedup();
    for (source, order_id) in orders {
        tx.exec(
            "UPDATE order_heads SET held = NULL WHERE source = ? AND order_id = ?",
            vals![source, order_id],
        )?;
    }
    Ok(())
}

/// Why an order feed holds an order back (`None`: it no longer does);
/// whether that changed.
pub fn set_held(
    tx: &mut dyn SqlTx,
    source: &str,
    order_id: &str,
    reason: Option<&str>,
) -> Result<bool> {
    let n = tx.exec(
        "UPDATE order_heads SET held = ?
         WHERE source = ? AND order_id = ? AND COALESCE(held, '') <> COALESCE(?, '')",
        vals![reason, source, order_id, reason],
    )?;
    Ok(n > 0)
}

/// One shipped line as a shipment file gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipLine {
    /// Where in the file (line or segment), for errors.
    pub at: String,
    pub line: Option<String>,
    pub sku: String,
    pub quantity: i64,
    pub package: Option<String>,
    pub tracking: Option<String>,
    /// The warehouse cancelled the line (rule 31).
    pub cancelled: bool,
}

/// One shipment of a file: its identity (rule 27) and lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipmentIn {
    /// `shipment_id`, or the order id and the file's SHA-256.
    pub ident: String,
    pub shipment_id: Option<String>,
    pub order_id: String,
    /// The PO (a 945's W0606): the order, when `order_id` names none known.
    pub po_number: Option<String>,
    pub shipped_at: Option<Millis>,
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub lines: Vec<ShipLine>,
}

/// What one shipment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipOutcome {
    Applied {
        lines: u64,
    },
    /// The same shipment was applied before (rule 27): nothing changed.
    Duplicate,
    /// No order source of the merchant holds the order (rule 28).
    UnknownOrder,
    /// Reasons that reject the whole file (rule 28).
    Rejected(Vec<String>),
}

struct OrderLineState {
    line: String,
    sku: String,
    quantity: i64,
    shipped: i64,
    cancelled: bool,
}

/// The order source holding `order_id` for a shipment from a source of
/// `warehouse` (rule 27): the only one, else the one whose lines are for
/// that warehouse. `Ok(None)`: no source holds it.
fn order_source(
    tx: &mut dyn SqlTx,
    merchant: &str,
    order_id: &str,
    warehouse: Option<&str>,
) -> Result<std::result::Result<Option<String>, String>> {
    let rows = tx.query(
        "SELECT source, warehouse FROM order_lines WHERE merchant = ? AND order_id = ? ORDER BY source",
        vals![merchant, order_id],
    )?;
    let mut sources: Vec<String> = rows.iter().map(|r| r[0].text()).collect();
    sources.dedup();
    if sources.len() <= 1 {
        return Ok(Ok(sources.pop()));
    }
    let mut of_wh: Vec<String> = rows
        .iter()
        .filter(|r| warehouse.is_some() && r[1].opt_text().as_deref() == warehouse)
        .map(|r| r[0].text())
        .collect();
    of_wh.dedup();
    if of_wh.len() == 1 {
        return Ok(Ok(of_wh.pop()));
    }
    Ok(Err(format!(
        "order {} is held by order sources {} and none alone has lines for this source's warehouse",
        crate::util::quoted(order_id),
        sources.join(", ")
    )))
}

/// Applies one shipment inside the file's transaction (rules 27, 28, 31).
#[allow(clippy::too_many_arguments)]
pub fn apply_shipment(
    tx: &mut dyn SqlTx,
    source: &str,
    merchant: &str,
    warehouse: Option<&str>,
    report_id: i64,
    now: Millis,
    s: &ShipmentIn,
) -> Result<ShipOutcome> {
    let dup = tx.query(
        "SELECT id FROM shipments WHERE source = ? AND ident = ?",
        vals![source, s.ident.as_str()],
    )?;
    if !dup.is_empty() {
        return Ok(ShipOutcome::Duplicate);
    }
    let mut found = order_source(tx, merchant, &s.order_id, warehouse)?;
    let mut order_id = s.order_id.clone();
    if matches!(found, Ok(None))
        && let Some(po) = s.po_number.as_ref().filter(|p| **p != s.order_id)
    {
        found = order_source(tx, merchant, po, warehouse)?;
        order_id = po.clone();
    }
    let order_src = match found {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(ShipOutcome::UnknownOrder),
        Err(reason) => return Ok(ShipOutcome::Rejected(vec![reason])),
    };
    let s = &ShipmentIn {
        order_id,
        ..s.clone()
    };
    let mut lines: Vec<OrderLineState> = tx
        .query(
            "SELECT line, sku, quantity, shipped, cancelled FROM order_lines WHERE source = ? AND order_id = ?",
            vals![order_src.as_str(), s.order_id.as_str()],
        )?
        .into_iter()
        .map(|r| OrderLineState {
            line: r[0].text(),
            sku: r[1].text(),
            quantity: r[2].int(),
            shipped: r[3].int(),
            cancelled: r[4].int() != 0,
        })
        .collect();
    lines.sort_by_key(|l| line_key(&l.line));
    let mut errors = vec![];
    let mut matched: Vec<(usize, &ShipLine)> = vec![];
    for sl in &s.lines {
        match match_line(&mut lines, sl, &s.order_id) {
            Ok(i) => matched.push((i, sl)),
            Err(e) => errors.push(format!("{}: {e}", sl.at)),
        }
    }
    if !errors.is_empty() {
        return Ok(ShipOutcome::Rejected(errors));
    }
    let id = tx.query(
        "INSERT INTO shipments (source, ident, merchant, order_source, order_id, shipment_id, shipped_at,
                                carrier, service, report_id, applied_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        vals![
            source,
            s.ident.as_str(),
            merchant,
            order_src.as_str(),
            s.order_id.as_str(),
            s.shipment_id.clone(),
            s.shipped_at,
            s.carrier.clone(),
            s.service.clone(),
            report_id,
            now
        ],
    )?[0][0]
        .int();
    for (n, (i, sl)) in matched.iter().enumerate() {
        let ol = &lines[*i];
        let qty = if sl.cancelled { 0 } else { sl.quantity };
        tx.exec(
            "INSERT INTO shipment_lines (shipment, n, line, sku, quantity, package, tracking)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            vals![
                id,
                n as i64,
                ol.line.as_str(),
                ol.sku.as_str(),
                qty,
                sl.package.clone(),
                sl.tracking.clone()
            ],
        )?;
        if sl.cancelled {
            // Rule 31: a line the warehouse cancelled stops subtracting now.
            tx.exec(
                "UPDATE order_lines SET cancelled = 1, updated_at = ?
                 WHERE source = ? AND order_id = ? AND line = ?",
                vals![
                    now,
                    order_src.as_str(),
                    s.order_id.as_str(),
                    ol.line.as_str()
                ],
            )?;
        } else {
            tx.exec(
                "UPDATE order_lines SET shipped = shipped + ?
                 WHERE source = ? AND order_id = ? AND line = ?",
                vals![
                    qty,
                    order_src.as_str(),
                    s.order_id.as_str(),
                    ol.line.as_str()
                ],
            )?;
        }
    }
    Ok(ShipOutcome::Applied {
        lines: matched.len() as u64,
    })
}

/// The order line a shipped line is (rule 27: by `line`, else the first
/// line of the SKU with some left to ship), its quantity counted against
/// what is left (rule 28).
fn match_line(
    lines: &mut [OrderLineState],
    sl: &ShipLine,
    order_id: &str,
) -> std::result::Result<usize, String> {
    let q = crate::util::quoted;
    let i = match &sl.line {
        Some(l) => {
            let i = lines
                .iter()
                .position(|o| &o.line == l)
                .ok_or_else(|| format!("order {} has no line {}", q(order_id), q(l)))?;
            if lines[i].sku != sl.sku {
                return Err(format!(
                    "line {} of order {} is SKU {}, not {}",
                    q(l),
                    q(order_id),
                    q(&lines[i].sku),
                    q(&sl.sku)
                ));
            }
            i
        }
        None => {
            let of_sku: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].sku == sl.sku)
                .collect();
            if of_sku.is_empty() {
                return Err(format!("order {} holds no SKU {}", q(order_id), q(&sl.sku)));
            }
            of_sku
                .iter()
                .copied()
                .find(|&i| !lines[i].cancelled && lines[i].shipped < lines[i].quantity)
                .unwrap_or(of_sku[0])
        }
    };
    let o = &mut lines[i];
    if sl.cancelled {
        o.cancelled = true;
        return Ok(i);
    }
    let left = if o.cancelled {
        0
    } else {
        o.quantity - o.shipped
    };
    if sl.quantity > left {
        return Err(format!(
            "ships {} of SKU {} on line {} of order {}, which has {left} left to ship (ordered {}, shipped {}{})",
            sl.quantity,
            q(&sl.sku),
            q(&o.line),
            q(order_id),
            o.quantity,
            o.shipped,
            if o.cancelled { ", cancelled" } else { "" }
        ));
    }
    o.shipped += sl.quantity;
    Ok(i)
}

/// One shipped line of a shipment a confirm feed sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmLine {
    pub line: String,
    pub sku: String,
    pub quantity: i64,
    pub ordered: i64,
    pub package: Option<String>,
    pub tracking: Option<String>,
}

/// A shipment not yet delivered by a confirm feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingShipment {
    pub id: i64,
    pub order_source: String,
    pub order_id: String,
    pub shipment_id: Option<String>,
    pub shipped_at: Option<Millis>,
    pub carrier: Option<String>,
    pub service: Option<String>,
    pub po_number: Option<String>,
    pub ship_to: ShipTo,
    pub lines: Vec<ConfirmLine>,
}

/// Shipments of orders from `sources` not yet delivered by `feed`, in the
/// order they were applied (rule 29).
pub fn pending_shipments(
    tx: &mut dyn SqlTx,
    feed: &str,
    merchant: &str,
    sources: &[String],
) -> Result<Vec<PendingShipment>> {
    let rows = tx.query(
        "SELECT s.id, s.order_source, s.order_id, s.shipment_id, s.shipped_at, s.carrier, s.service,
                h.po_number, h.ship_to
         FROM shipments s
         LEFT JOIN order_heads h ON h.source = s.order_source AND h.order_id = s.order_id
         WHERE s.merchant = ?
           AND NOT EXISTS (SELECT 1 FROM confirmations c WHERE c.feed = ? AND c.shipment = s.id)
         ORDER BY s.id",
        vals![merchant, feed],
    )?;
    let mut out = vec![];
    for r in rows {
        let order_source = r[1].text();
        if !sources.contains(&order_source) {
            continue;
        }
        let id = r[0].int();
        let order_id = r[2].text();
        let lines = tx
            .query(
                "SELECT sl.line, sl.sku, sl.quantity, sl.package, sl.tracking, ol.quantity
                 FROM shipment_lines sl
                 LEFT JOIN order_lines ol ON ol.source = ? AND ol.order_id = ? AND ol.line = sl.line
                 WHERE sl.shipment = ? ORDER BY sl.n",
                vals![order_source.as_str(), order_id.as_str(), id],
            )?
            .into_iter()
            .map(|l| ConfirmLine {
                line: l[0].text(),
                sku: l[1].text(),
                quantity: l[2].int(),
                package: l[3].opt_text(),
                tracking: l[4].opt_text(),
                ordered: l[5].int(),
            })
            .collect();
        out.push(PendingShipment {
            id,
            order_source,
            order_id,
            shipment_id: r[3].opt_text(),
            shipped_at: r[4].opt_int(),
            carrier: r[5].opt_text(),
            service: r[6].opt_text(),
            po_number: r[7].opt_text(),
            ship_to: ShipTo::decode(r[8].opt_text()),
            lines,
        });
    }
    Ok(out)
}

/// Once the confirm feed's file is delivered: its shipments marked.
pub fn mark_confirmed(tx: &mut dyn SqlTx, feed: &str, sync_id: i64, ids: &[i64]) -> Result<()> {
    for id in ids {
        tx.exec(
            "INSERT INTO confirmations (feed, shipment, sync_id) VALUES (?, ?, ?)
             ON CONFLICT (feed, shipment) DO NOTHING",
            vals![feed, *id, sync_id],
        )?;
    }
    Ok(())
}

/// One order as `orders` shows it (rule 25).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrderView {
    pub merchant: String,
    pub source: String,
    pub order_id: String,
    pub status: String,
    pub changed_after_sending: bool,
    pub held: Option<String>,
    pub lines: Vec<LineView>,
    pub shipments: Vec<ShipmentView>,
    #[serde(skip)]
    pub ordered_at: Millis,
    /// Lines not sent yet, not late, not cancelled.
    #[serde(skip)]
    pub unsent: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LineView {
    pub line: String,
    pub sku: String,
    pub quantity: i64,
    pub shipped: i64,
    pub cancelled: bool,
    pub warehouse: Option<String>,
    #[serde(skip)]
    pub sent: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ShipmentView {
    pub shipment_id: Option<String>,
    pub shipped_at: Option<String>,
    pub carrier: Option<String>,
    pub packages: Vec<PackageView>,
    pub confirmed_to: Vec<String>,
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub applied_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PackageView {
    pub package: Option<String>,
    pub tracking: Option<String>,
}

/// Rule 25, from an order's lines and shipments and the confirm feeds
/// covering its source.
fn status_of(lines: &[LineView], shipments: &[ShipmentView], covering: &[String]) -> &'static str {
    if !lines.is_empty() && lines.iter().all(|l| l.cancelled) {
        return "cancelled";
    }
    let live: Vec<&LineView> = lines.iter().filter(|l| !l.cancelled).collect();
    let all_shipped = !live.is_empty() && live.iter().all(|l| l.shipped >= l.quantity);
    if all_shipped {
        let confirmed = !covering.is_empty()
            && shipments
                .iter()
                .all(|s| covering.iter().all(|f| s.confirmed_to.contains(f)));
        return if confirmed { "confirmed" } else { "shipped" };
    }
    if live.iter().any(|l| l.shipped > 0) {
        return "partial";
    }
    if lines.iter().any(|l| l.sent) {
        return "sent";
    }
    "open"
}

/// Every order (of `merchant`, or all), with its lines, shipments and
/// status; `covering(source)` names the confirm feeds covering a source.
pub fn list_orders(
    tx: &mut dyn SqlTx,
    merchant: Option<&str>,
    covering: &dyn Fn(&str) -> Vec<String>,
) -> Result<Vec<OrderView>> {
    let (filter, params): (&str, Vec<Val>) = match merchant {
        Some(m) => (" WHERE merchant = ?", vec![Val::from(m)]),
        None => ("", vec![]),
    };
    let line_rows = tx.query(
        &format!(
            "SELECT merchant, source, order_id, line, sku, quantity, shipped, cancelled, warehouse,
                    sent_sync, changed, late, ordered_at FROM order_lines{filter}"
        ),
        &params,
    )?;
    let head_rows = tx.query(
        &format!("SELECT source, order_id, held FROM order_heads{filter}"),
        &params,
    )?;
    let ship_rows = tx.query(
        &format!(
            "SELECT id, order_source, order_id, shipment_id, shipped_at, carrier, applied_at FROM shipments{filter} ORDER BY id"
        ),
        &params,
    )?;
    let pack_rows = tx.query(
        &format!(
            "SELECT sl.shipment, sl.package, sl.tracking FROM shipment_lines sl
             JOIN shipments s ON s.id = sl.shipment{} ORDER BY sl.shipment, sl.n",
            filter.replace("merchant", "s.merchant")
        ),
        &params,
    )?;
    let conf_rows = tx.query(
        "SELECT shipment, feed FROM confirmations ORDER BY shipment, feed",
        &[],
    )?;
    let mut orders: BTreeMap<(String, String), OrderView> = BTreeMap::new();
    for r in &line_rows {
        let key = (r[1].text(), r[2].text());
        let o = orders.entry(key).or_insert_with(|| OrderView {
            merchant: r[0].text(),
            source: r[1].text(),
            order_id: r[2].text(),
            status: String::new(),
            changed_after_sending: false,
            held: None,
            lines: vec![],
            shipments: vec![],
            ordered_at: r[12].int(),
            unsent: 0,
        });
        let sent = r[9].opt_int().is_some();
        let cancelled = r[7].int() != 0;
        o.changed_after_sending |= r[10].int() != 0 || r[11].int() != 0;
        o.ordered_at = o.ordered_at.min(r[12].int());
        if !sent && r[11].int() == 0 && !cancelled {
            o.unsent += 1;
        }
        o.lines.push(LineView {
            line: r[3].text(),
            sku: r[4].text(),
            quantity: r[5].int(),
            shipped: r[6].int(),
            cancelled,
            warehouse: r[8].opt_text(),
            sent,
        });
    }
    for r in head_rows {
        if let Some(o) = orders.get_mut(&(r[0].text(), r[1].text())) {
            o.held = r[2].opt_text();
        }
    }
    let mut packs: HashMap<i64, Vec<PackageView>> = HashMap::new();
    for r in pack_rows {
        let p = PackageView {
            package: r[1].opt_text(),
            tracking: r[2].opt_text(),
        };
        let v = packs.entry(r[0].int()).or_default();
        if !v.contains(&p) {
            v.push(p);
        }
    }
    let mut confs: HashMap<i64, Vec<String>> = HashMap::new();
    for r in conf_rows {
        confs.entry(r[0].int()).or_default().push(r[1].text());
    }
    for r in ship_rows {
        let id = r[0].int();
        if let Some(o) = orders.get_mut(&(r[1].text(), r[2].text())) {
            o.shipments.push(ShipmentView {
                shipment_id: r[3].opt_text(),
                shipped_at: r[4].opt_int().map(crate::util::rfc3339),
                carrier: r[5].opt_text(),
                packages: packs.remove(&id).unwrap_or_default(),
                confirmed_to: confs.remove(&id).unwrap_or_default(),
                id,
                applied_at: r[6].int(),
            });
        }
    }
    let mut out: Vec<OrderView> = orders.into_values().collect();
    for o in &mut out {
        o.lines.sort_by_key(|l| line_key(&l.line));
        let cov = covering(&o.source);
        o.status = status_of(&o.lines, &o.shipments, &cov).to_string();
    }
    Ok(out)
}

impl Ledger {
    /// Portable SQL in one fenced write transaction (the order loop).
    pub fn sql_write<R>(&self, f: impl FnOnce(&mut dyn SqlTx) -> Result<R>) -> Result<R> {
        self.inner.portable(true, f)
    }
    /// Portable SQL in one read transaction.
    pub fn sql_read<R>(&self, f: impl FnOnce(&mut dyn SqlTx) -> Result<R>) -> Result<R> {
        self.inner.portable(false, f)
    }
}
