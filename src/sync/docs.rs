//! The order loop's outbound feeds (CONTRACT §6): an order feed sends
//! each order line to its warehouse once (rule 26), a confirm feed each
//! shipment once to each cart covering its order's source (rule 29). Both
//! are delivered as a cart's feed is (archive, journal, temporary name,
//! size check, rename, history); their marks move only once the file is
//! delivered, and a journal carries them across a stop mid-delivery.

use super::{
    Counting, Outgoing, Rendered, SyncError, SyncOptions, SyncReport, deliver_and_record,
    dry_run_report, unsent,
};
use crate::config::{Cart, Config, FeedKind};
use crate::docmap::{DocField, DocFormat, DocMapping};
use crate::ledger::orders::{self as store, LineKey, PendingOrder, PendingShipment};
use crate::ledger::{Ledger, LedgerError, SentLog, SyncEntry, SyncOutcome};
use crate::util::{Millis, escape, hex, rfc3339};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// What a delivered order or confirm feed marks (kept in its journal).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocMarks {
    /// Order lines sent: (source, order id, line).
    Lines(Vec<LineKey>),
    /// Shipments confirmed (their ledger ids).
    Shipments(Vec<i64>),
}

/// Moves the marks of a delivered file (sync `sync_id`).
pub fn mark(
    ledger: &Ledger,
    feed: &str,
    sync_id: i64,
    marks: &DocMarks,
) -> Result<(), LedgerError> {
    ledger.sql_write(|tx| match marks {
        DocMarks::Lines(keys) => store::mark_sent(tx, feed, sync_id, keys),
        DocMarks::Shipments(ids) => store::mark_confirmed(tx, feed, sync_id, ids),
    })
}

/// One row of a CSV/XML feed: each field's text.
type Values = HashMap<String, String>;

/// What a sync of an order or confirm feed would send.
struct Plan {
    rows: Vec<Values>,
    orders: Vec<PendingOrder>,
    shipments: Vec<PendingShipment>,
    marks: DocMarks,
    /// Orders or shipments sent.
    count: u64,
    /// The catalog's UPCs by SKU, when the layout names `upc`.
    upcs: HashMap<String, String>,
}

/// The order feed of the merchant that takes a line of `warehouse`
/// (rule 26): the feed for that warehouse, else the one without a
/// warehouse; a line naming none goes to the latter, else to the first.
pub fn route<'a>(cfg: &'a Config, merchant: &str, warehouse: Option<&str>) -> Option<&'a str> {
    let feeds: Vec<(&str, Option<&str>)> = cfg
        .carts
        .iter()
        .filter(|c| c.merchant == merchant)
        .filter_map(|c| match &c.kind {
            FeedKind::Orders { warehouse, .. } => Some((c.id.as_str(), warehouse.as_deref())),
            _ => None,
        })
        .collect();
    if let Some(w) = warehouse
        && let Some((id, _)) = feeds.iter().find(|(_, fw)| *fw == Some(w))
    {
        return Some(id);
    }
    if let Some((id, _)) = feeds.iter().find(|(_, fw)| fw.is_none()) {
        return Some(id);
    }
    match warehouse {
        None => feeds.first().map(|(id, _)| *id),
        Some(_) => None,
    }
}

fn ship_to_values(v: &mut Values, ship_to: &store::ShipTo) {
    for (i, f) in store::SHIP_TO_FIELDS.iter().enumerate() {
        v.insert(format!("ship_to_{f}"), ship_to.0[i].clone());
    }
}

/// Why an order cannot go out in this feed's layout, if it cannot.
fn held_reason(doc: &DocMapping, o: &PendingOrder) -> Option<String> {
    let mut v = Values::new();
    ship_to_values(&mut v, &o.ship_to);
    v.insert("po_number".into(), o.po_number.clone().unwrap_or_default());
    v.insert(
        "ship_method".into(),
        o.ship_method.clone().unwrap_or_default(),
    );
    let need: Vec<String> = match &doc.format {
        DocFormat::X12 { .. } => [
            "ship_to_name",
            "ship_to_address1",
            "ship_to_city",
            "ship_to_postal_code",
            "ship_to_country",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        _ => doc.required().iter().map(|f| f.name()).collect(),
    };
    let missing: Vec<String> = need
        .into_iter()
        .filter(|f| v.get(f).is_some_and(|s| s.is_empty()))
        .collect();
    (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
}

fn plan_orders(
    cfg: &Config,
    ledger: &Ledger,
    cart: &Cart,
    doc: &DocMapping,
    dry_run: bool,
) -> Result<Plan, SyncError> {
    let pending = ledger.sql_read(|tx| store::pending_orders(tx, &cart.merchant))?;
    let upcs = product_upcs(ledger, &cart.merchant, doc)?;
    let mut plan = Plan {
        rows: vec![],
        orders: vec![],
        shipments: vec![],
        marks: DocMarks::Lines(vec![]),
        count: 0,
        upcs: HashMap::new(),
    };
    let mut keys = vec![];
    for mut o in pending {
        o.lines.retain(|l| {
            route(cfg, &cart.merchant, l.warehouse.as_deref()) == Some(cart.id.as_str())
        });
        if o.lines.is_empty() {
            continue;
        }
        let held = held_reason(doc, &o).or_else(|| super::x12docs::refused(doc, &o, &upcs, cart));
        if !dry_run {
            let changed = ledger
                .sql_write(|tx| store::set_held(tx, &o.source, &o.order_id, held.as_deref()))?;
            if changed && let Some(why) = &held {
                tracing::warn!(feed = %cart.id, order = %escape(&o.order_id), reason = %why, "order held back");
            }
        }
        if held.is_some() {
            continue;
        }
        for l in &o.lines {
            let mut v = Values::new();
            v.insert("order_id".into(), o.order_id.clone());
            v.insert("line".into(), l.line.clone());
            v.insert("sku".into(), l.sku.clone());
            v.insert("quantity".into(), l.quantity.to_string());
            v.insert("ordered_at".into(), rfc3339(l.ordered_at));
            v.insert("po_number".into(), o.po_number.clone().unwrap_or_default());
            v.insert(
                "ship_method".into(),
                o.ship_method.clone().unwrap_or_default(),
            );
            v.insert("source".into(), o.source.clone());
            v.insert("upc".into(), upcs.get(&l.sku).cloned().unwrap_or_default());
            ship_to_values(&mut v, &o.ship_to);
            plan.rows.push(v);
            keys.push((o.source.clone(), o.order_id.clone(), l.line.clone()));
        }
        plan.count += 1;
        plan.orders.push(o);
    }
    plan.marks = DocMarks::Lines(keys);
    plan.upcs = upcs;
    Ok(plan)
}

fn plan_confirms(
    ledger: &Ledger,
    cart: &Cart,
    orders_from: &[String],
    doc: &DocMapping,
) -> Result<Plan, SyncError> {
    let pending = ledger
        .sql_read(|tx| store::pending_shipments(tx, &cart.id, &cart.merchant, orders_from))?;
    let upcs = product_upcs(ledger, &cart.merchant, doc)?;
    let mut rows = vec![];
    for s in &pending {
        for l in &s.lines {
            let mut v = Values::new();
            v.insert("order_id".into(), s.order_id.clone());
            v.insert("line".into(), l.line.clone());
            v.insert("sku".into(), l.sku.clone());
            v.insert("quantity".into(), l.quantity.to_string());
            v.insert("ordered".into(), l.ordered.to_string());
            v.insert(
                "shipment_id".into(),
                s.shipment_id.clone().unwrap_or_default(),
            );
            v.insert("package".into(), l.package.clone().unwrap_or_default());
            v.insert("tracking".into(), l.tracking.clone().unwrap_or_default());
            v.insert("carrier".into(), s.carrier.clone().unwrap_or_default());
            v.insert("service".into(), s.service.clone().unwrap_or_default());
            v.insert(
                "shipped_at".into(),
                s.shipped_at.map(rfc3339).unwrap_or_default(),
            );
            v.insert("po_number".into(), s.po_number.clone().unwrap_or_default());
            v.insert("source".into(), s.order_source.clone());
            v.insert("upc".into(), upcs.get(&l.sku).cloned().unwrap_or_default());
            rows.push(v);
        }
    }
    Ok(Plan {
        rows,
        count: pending.len() as u64,
        marks: DocMarks::Shipments(pending.iter().map(|s| s.id).collect()),
        orders: vec![],
        shipments: pending,
        upcs,
    })
}

/// The merchant's UPCs by SKU, when the layout names `upc`.
fn product_upcs(
    ledger: &Ledger,
    merchant: &str,
    doc: &DocMapping,
) -> Result<HashMap<String, String>, SyncError> {
    let wants = match &doc.format {
        DocFormat::Csv { columns, .. }
        | DocFormat::Xml {
            fields: columns, ..
        } => columns.iter().any(|c| c.field == DocField::Upc),
        DocFormat::X12 { item_ids, .. } => item_ids.iter().any(|(_, f)| *f == DocField::Upc),
    };
    if !wants {
        return Ok(HashMap::new());
    }
    Ok(ledger.sql_read(|tx| {
        let rows = tx.query(
            "SELECT sku, upc FROM products WHERE merchant = ? AND upc IS NOT NULL",
            crate::vals![merchant],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| (r[0].text(), r[1].text()))
            .collect())
    })?)
}

/// Syncs an order feed or a confirm feed (`cart.kind` says which).
pub(super) fn sync_doc(
    cfg: &Config,
    ledger: &mut Ledger,
    cart: &Cart,
    opts: &SyncOptions,
    mut entry: SyncEntry,
) -> Result<SyncReport, SyncError> {
    let (plan, what) = match &cart.kind {
        FeedKind::Orders { doc, .. } => {
            (plan_orders(cfg, ledger, cart, doc, opts.dry_run)?, "orders")
        }
        FeedKind::Confirms {
            orders_from, doc, ..
        } => (plan_confirms(ledger, cart, orders_from, doc)?, "shipments"),
        FeedKind::Inventory => unreachable!("an inventory cart is synced by sync_cart"),
    };
    let doc = cart.kind.doc().expect("a document feed");
    if plan.count == 0 {
        let mut r = unsent(
            ledger,
            entry,
            SyncOutcome::Skipped,
            "nothing new".into(),
            opts.dry_run,
        )?;
        set_count(&mut r, what, 0);
        return Ok(r);
    }
    let started = entry.started_at;
    let seq = if opts.dry_run {
        0
    } else {
        ledger.next_seq(&cart.id)?
    };
    let control = match &doc.format {
        DocFormat::X12 { envelope, .. } => {
            let n = if opts.dry_run {
                ledger.peek_control(&envelope.sender_id, &envelope.receiver_id)?
            } else {
                ledger.next_control(&envelope.sender_id, &envelope.receiver_id)?
            };
            Some(n)
        }
        _ => None,
    };
    entry.interchange_control = control;
    entry.group_control = control;
    entry.items = plan.count;
    let name = super::file_name(cart, started, seq);
    let local = cfg.scratch_dir("outgoing", &cart.id).join(&name);
    let rendered = match render(doc, &plan, control, started, cart, &local) {
        Ok(r) => r,
        Err(reason) => {
            let _ = std::fs::remove_file(&local);
            return unsent(ledger, entry, SyncOutcome::Failed, reason, opts.dry_run);
        }
    };
    entry.bytes = Some(rendered.bytes);
    entry.sha256 = Some(rendered.sha256.clone());
    if opts.dry_run {
        let mut r = dry_run_report(&entry, &rendered, vec![], opts);
        set_count(&mut r, what, plan.count);
        return Ok(r);
    }
    let out = Outgoing {
        rendered,
        name,
        through: 0,
        sent: SentLog::new(&cfg.scratch_dir("outgoing", &cart.id)),
        missing: vec![],
        marks: Some(plan.marks),
    };
    let mut r = deliver_and_record(cfg, ledger, cart, opts, entry, out)?;
    let n = if r.outcome == SyncOutcome::Sent {
        plan.count
    } else {
        0
    };
    set_count(&mut r, what, n);
    Ok(r)
}

fn set_count(r: &mut SyncReport, what: &str, n: u64) {
    match what {
        "orders" => r.orders = Some(n),
        _ => r.shipments = Some(n),
    }
}

/// Writes the feed to `path` (fsynced): CSV, XML or X12.
fn render(
    doc: &DocMapping,
    plan: &Plan,
    control: Option<i64>,
    now: Millis,
    cart: &Cart,
    path: &Path,
) -> Result<Rendered, String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let file =
        std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut counting = Counting {
        inner: std::io::BufWriter::with_capacity(1 << 16, file),
        bytes: 0,
        hash: Sha256::new(),
    };
    match &doc.format {
        DocFormat::Csv {
            delimiter,
            header,
            crlf,
            columns,
        } => write_csv(
            &mut counting,
            *delimiter,
            *header,
            *crlf,
            columns,
            &plan.rows,
        ),
        DocFormat::Xml { root, item, fields } => {
            write_xml(&mut counting, root, item, fields, &plan.rows)
        }
        DocFormat::X12 { .. } => {
            super::x12docs::write(&mut counting, doc, plan_x12(plan), control, now, cart)
        }
    }?;
    counting
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let Counting { inner, bytes, hash } = counting;
    inner
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?
        .sync_all()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Rendered {
        path: path.to_path_buf(),
        bytes,
        sha256: hex(&hash.finalize()),
    })
}

/// What an X12 writer needs of a plan.
pub(super) struct X12Plan<'a> {
    pub orders: &'a [PendingOrder],
    pub shipments: &'a [PendingShipment],
    pub upcs: &'a HashMap<String, String>,
}

fn plan_x12(plan: &Plan) -> X12Plan<'_> {
    X12Plan {
        orders: &plan.orders,
        shipments: &plan.shipments,
        upcs: &plan.upcs,
    }
}

fn write_csv(
    w: &mut impl Write,
    delimiter: u8,
    header: bool,
    crlf: bool,
    columns: &[crate::docmap::DocColumn],
    rows: &[Values],
) -> Result<(), String> {
    let mut out = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(if crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(w);
    let err = |e: csv::Error| format!("cannot write the feed: {e}");
    if header {
        out.write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(err)?;
    }
    for r in rows {
        out.write_record(
            columns
                .iter()
                .map(|c| r.get(&c.field.name()).map(String::as_str).unwrap_or("")),
        )
        .map_err(err)?;
    }
    out.flush()
        .map_err(|e| format!("cannot write the feed: {e}"))
}

fn write_xml(
    w: &mut impl Write,
    root: &str,
    item: &str,
    fields: &[crate::docmap::DocColumn],
    rows: &[Values],
) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write the feed: {e}");
    writeln!(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>").map_err(err)?;
    writeln!(w, "<{root}>").map_err(err)?;
    for r in rows {
        write!(w, "  <{item}>").map_err(err)?;
        for f in fields {
            let v = r.get(&f.field.name()).map(String::as_str).unwrap_or("");
            write!(w, "<{0}>{1}</{0}>", f.name, quick_xml::escape::escape(v)).map_err(err)?;
        }
        writeln!(w, "</{item}>").map_err(err)?;
    }
    writeln!(w, "</{root}>").map_err(err)?;
    Ok(())
}
