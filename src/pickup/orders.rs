//! The order loop's inbound half (CONTRACT §6): an order file's own
//! fields (ship-to, method, PO) kept per order, and shipment files
//! applied once per shipment (rules 27, 28, 31).

use super::{
    Errors, FileJob, Notes, RowFailed, Staged, archive_and_apply, in_base_unit, read_valid,
    reader_error, row_error, text, valid_sku,
};
use super::{FileOutcome, PickupError, check_utf8, x12_source};
use crate::config::Inbound;
use crate::formats::RawRecord;
use crate::formats::quantity::parse_whole;
use crate::ledger::orders::{self as store, OrderHead, ShipLine, ShipOutcome, ShipmentIn};
use crate::ledger::{Ledger, LedgerError, OrderBatch};
use crate::mapping::{Field, SHIP_TO};
use crate::util::{Millis, escape, quoted};
use std::collections::HashMap;

/// The longest order field kept (a name, an address line), in characters.
const MAX_FIELD_CHARS: usize = 255;

/// Each order's own fields, as the file's rows give them (the first
/// non-empty value of each field wins).
#[derive(Default)]
pub(super) struct Heads {
    order: Vec<OrderHead>,
    at: HashMap<String, usize>,
}

/// A field's text for an order feed: trimmed, bounded, control
/// characters (tab, line breaks) turned into spaces.
fn clean(rec: &RawRecord, f: Field) -> Option<String> {
    let t = text(rec, f)?;
    let s: String = t
        .chars()
        .take(MAX_FIELD_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Some(s)
}

impl Heads {
    pub(super) fn add(&mut self, rec: &RawRecord, order_id: &str) {
        let i = *self.at.entry(order_id.to_string()).or_insert_with(|| {
            self.order.push(OrderHead {
                order_id: order_id.to_string(),
                ..Default::default()
            });
            self.order.len() - 1
        });
        let h = &mut self.order[i];
        if h.po_number.is_none() {
            h.po_number = clean(rec, Field::PoNumber);
        }
        if h.ship_method.is_none() {
            h.ship_method = clean(rec, Field::ShipMethod);
        }
        for (n, f) in SHIP_TO.iter().enumerate() {
            if h.ship_to.0[n].is_empty()
                && let Some(v) = clean(rec, *f)
            {
                h.ship_to.0[n] = v;
            }
        }
    }

    /// Inside the file's transaction: the heads written; each order now
    /// changed after it was sent is said (rule 26: never resent).
    pub(super) fn write(
        &self,
        batch: &mut OrderBatch,
        src: &Inbound,
        now: Millis,
        notes: &mut Notes,
    ) -> Result<(), LedgerError> {
        let changed = batch.with_sql(|tx, rid| {
            store::write_heads(tx, &src.id, &src.merchant, rid, now, &self.order)
        })?;
        for id in changed {
            tracing::warn!(source = %src.id, order = %escape(&id), "order changed after it was sent to its warehouse: not resent; tell the warehouse");
            notes.warn(format!(
                "order {} changed after sending: it is not sent again; tell the warehouse",
                quoted(&id)
            ));
        }
        Ok(())
    }
}

/// One shipped line, checked.
struct ShipRec {
    at: String,
    order_id: String,
    po_number: Option<String>,
    shipment_id: Option<String>,
    line: Option<String>,
    sku: String,
    quantity: i64,
    package: Option<String>,
    tracking: Option<String>,
    carrier: Option<String>,
    service: Option<String>,
    shipped_at: Option<Millis>,
    cancelled: bool,
}

fn ship_row(src: &Inbound, rec: &RawRecord) -> Result<ShipRec, Vec<String>> {
    let m = &src.mapping;
    let mut errs = vec![];
    check_utf8(src, rec, &mut errs);
    reader_error(src, rec, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    let order_id = clean(rec, Field::OrderId);
    if order_id.is_none() {
        errs.push(row_error(
            m,
            rec.line,
            Field::OrderId,
            rec.get(Field::OrderId).unwrap_or(""),
            "empty order id",
        ));
    }
    let sku = valid_sku(src, rec, &mut errs).map(str::to_string);
    let raw_q = rec.get(Field::Quantity).unwrap_or("");
    let qty = match parse_whole(raw_q) {
        Ok(q) if q < 0 => {
            errs.push(row_error(
                m,
                rec.line,
                Field::Quantity,
                raw_q,
                "negative shipped quantity",
            ));
            None
        }
        Ok(q) => in_base_unit(src, rec, q, &mut errs),
        Err(r) => {
            errs.push(row_error(m, rec.line, Field::Quantity, raw_q, r));
            None
        }
    };
    let shipped_at = match text(rec, Field::ShippedAt) {
        None => None,
        Some(raw) => m
            .time
            .parse(raw)
            .map_err(|r| errs.push(row_error(m, rec.line, Field::ShippedAt, raw, &r)))
            .ok(),
    };
    let cancelled = text(rec, Field::Status)
        .is_some_and(|s| m.cancelled.iter().any(|c| c.trim().eq_ignore_ascii_case(s)));
    let (Some(order_id), Some(sku), Some(quantity)) = (order_id, sku, qty) else {
        return Err(errs);
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    let place = if x12_source(src) { "segment" } else { "line" };
    Ok(ShipRec {
        at: format!("{place} {}", rec.line),
        order_id,
        po_number: clean(rec, Field::PoNumber),
        shipment_id: clean(rec, Field::ShipmentId),
        line: clean(rec, Field::Line),
        sku,
        quantity,
        package: clean(rec, Field::Package),
        tracking: clean(rec, Field::Tracking),
        carrier: clean(rec, Field::Carrier),
        service: clean(rec, Field::Service),
        shipped_at,
        cancelled,
    })
}

/// The file's shipments, in file order: one per (shipment id, order), or
/// per order when the file names no shipment id (rule 27's identity).
fn group(recs: Vec<ShipRec>, sha: &str) -> Vec<ShipmentIn> {
    let mut out: Vec<ShipmentIn> = vec![];
    let mut at: HashMap<(Option<String>, String), usize> = HashMap::new();
    for r in recs {
        let key = (r.shipment_id.clone(), r.order_id.clone());
        let i = *at.entry(key).or_insert_with(|| {
            let ident = match &r.shipment_id {
                Some(sid) => format!("{sid}\u{1f}{}", r.order_id),
                None => format!("{}\u{1f}{sha}", r.order_id),
            };
            out.push(ShipmentIn {
                ident,
                shipment_id: r.shipment_id.clone(),
                order_id: r.order_id.clone(),
                po_number: r.po_number.clone(),
                ..Default::default()
            });
            out.len() - 1
        });
        let s = &mut out[i];
        s.shipped_at = s.shipped_at.or(r.shipped_at);
        s.carrier = s.carrier.take().or(r.carrier);
        s.service = s.service.take().or(r.service);
        s.lines.push(ShipLine {
            at: r.at,
            line: r.line,
            sku: r.sku,
            quantity: r.quantity,
            package: r.package,
            tracking: r.tracking,
            cancelled: r.cancelled,
        });
    }
    out
}

/// Reads a shipment file and, when every row is good and every shipment
/// fits its order, applies it in one transaction.
pub(super) fn stage_shipments(
    job: &FileJob,
    ledger: &mut Ledger,
    errors: &mut Errors,
    notes: &mut Notes,
    out: &mut FileOutcome,
) -> Result<Staged, PickupError> {
    let (src, now) = (job.src, job.now);
    let mut batch = ledger.order_batch(&src.merchant, &src.id)?;
    let mut recs = vec![];
    let rows = read_valid(
        job.path,
        src,
        errors,
        &mut out.skipped,
        notes,
        |rec, _, _| {
            recs.push(ship_row(src, rec).map_err(RowFailed::Invalid)?);
            Ok(())
        },
    )?;
    if errors.total > 0 {
        return Ok(Staged::Rejected { rows });
    }
    let shipments = group(recs, &job.sha);
    let outcomes = batch.with_sql(|tx, rid| {
        let mut v = Vec::with_capacity(shipments.len());
        for s in &shipments {
            let o = store::apply_shipment(
                tx,
                &src.id,
                &src.merchant,
                src.warehouse.as_deref(),
                rid,
                now,
                s,
            )?;
            // Nothing after a rejection is kept: stop checking there.
            let rejected = matches!(o, ShipOutcome::Rejected(_));
            v.push(o);
            if rejected {
                break;
            }
        }
        Ok(v)
    })?;
    for (s, o) in shipments.iter().zip(&outcomes) {
        match o {
            ShipOutcome::Rejected(reasons) => {
                reasons.iter().for_each(|r| errors.push(r.clone()));
            }
            ShipOutcome::UnknownOrder => {
                for _ in &s.lines {
                    notes.leave_out("unknown order");
                }
                notes.warn(format!(
                    "order {} is not in the ledger: its shipment is left out",
                    quoted(&s.order_id)
                ));
            }
            ShipOutcome::Duplicate => notes.warn(format!(
                "shipment {} of order {} was applied before: nothing changed",
                quoted(s.shipment_id.as_deref().unwrap_or("(no id)")),
                quoted(&s.order_id)
            )),
            ShipOutcome::Applied { .. } => {}
        }
    }
    if errors.total > 0 {
        return Ok(Staged::Rejected { rows });
    }
    archive_and_apply(job, errors, rows, |meta| batch.apply_as(meta, "shipments"))
}
