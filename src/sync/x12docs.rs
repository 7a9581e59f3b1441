//! X12 940 (order feeds) and 856 (confirm feeds), from a sync's plan: the
//! ledger's orders and shipments turned into the X12 module's documents.

use super::docs::X12Plan;
use crate::config::Cart;
use crate::docmap::{DocField, DocFormat, DocMapping};
use crate::formats::x12::{
    Address, ControlNumbers, Item856, Line940, Order940, Pack856, Profile856, Profile940,
    Shipment856, check_order_940, write_856, write_940,
};
use crate::ledger::orders::{PendingOrder, ShipTo};
use crate::util::Millis;
use chrono::NaiveDateTime;
use std::collections::HashMap;
use std::io::Write;

/// One pending order as a 940.
fn order_940(
    o: &PendingOrder,
    item_ids: &[(String, DocField)],
    upcs: &HashMap<String, String>,
    cart: &Cart,
) -> Order940 {
    Order940 {
        order_id: o.order_id.clone(),
        po_number: o.po_number.clone().unwrap_or_default(),
        ship_method: o.ship_method.clone().unwrap_or_default(),
        ordered_at: o
            .lines
            .iter()
            .map(|l| l.ordered_at)
            .min()
            .map(|t| local(t, cart)),
        ship_to: address(&o.ship_to),
        lines: o
            .lines
            .iter()
            .map(|l| Line940 {
                line: l.line.clone(),
                quantity: l.quantity,
                ids: ids(item_ids, &l.sku, upcs),
            })
            .collect(),
    }
}

fn profile_940(doc: &DocMapping) -> Option<Profile940> {
    match &doc.format {
        DocFormat::X12 {
            envelope,
            transport_method,
            payment_method,
            unit,
            ..
        } => Some(Profile940 {
            envelope: envelope.clone(),
            transport_method: transport_method.clone(),
            payment_method: payment_method.clone(),
            unit: unit.clone(),
        }),
        _ => None,
    }
}

/// Why the 940 writer would refuse this order (a value holding a
/// delimiter, one too long for its element): the order is held back with
/// the reason instead of failing the whole feed.
pub(super) fn refused(
    doc: &DocMapping,
    o: &PendingOrder,
    upcs: &HashMap<String, String>,
    cart: &Cart,
) -> Option<String> {
    let (Some(p), DocFormat::X12 { item_ids, .. }) = (profile_940(doc), &doc.format) else {
        return None;
    };
    check_order_940(&p, &order_940(o, item_ids, upcs, cart))
        .err()
        .map(|e| e.to_string())
}

fn address(t: &ShipTo) -> Address {
    let f = |i: usize| t.0[i].clone();
    Address {
        name: f(0),
        company: f(1),
        address1: f(2),
        address2: f(3),
        city: f(4),
        state: f(5),
        postal_code: f(6),
        country: f(7),
        phone: f(8),
        email: f(9),
    }
}

fn local(t: Millis, cart: &Cart) -> NaiveDateTime {
    crate::util::to_datetime(t)
        .with_timezone(&cart.tz)
        .naive_local()
}

/// The item ids of a SKU in the mapping's order; ids without a value
/// (a SKU without a UPC) are left out, and the SKU as VN stands in when
/// none has one.
fn ids(
    item_ids: &[(String, DocField)],
    sku: &str,
    upcs: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let v: Vec<(String, String)> = item_ids
        .iter()
        .filter_map(|(q, f)| {
            let value = match f {
                DocField::Upc => upcs.get(sku).cloned().unwrap_or_default(),
                _ => sku.to_string(),
            };
            (!value.is_empty()).then(|| (q.clone(), value))
        })
        .collect();
    if v.is_empty() {
        vec![("VN".into(), sku.to_string())]
    } else {
        v
    }
}

pub(super) fn write(
    w: &mut impl Write,
    doc: &DocMapping,
    plan: X12Plan<'_>,
    control: Option<i64>,
    now: Millis,
    cart: &Cart,
) -> Result<(), String> {
    let DocFormat::X12 {
        envelope,
        item_ids,
        unit,
        ..
    } = &doc.format
    else {
        return Err("not an X12 feed".into());
    };
    let n = control.unwrap_or(1).clamp(1, 999_999_999) as u32;
    let ctl = ControlNumbers {
        interchange: n,
        group: n,
    };
    let at = local(now, cart);
    let written = match doc.kind {
        crate::docmap::DocKind::Orders => {
            let orders: Vec<Order940> = plan
                .orders
                .iter()
                .map(|o| order_940(o, item_ids, plan.upcs, cart))
                .collect();
            let p = profile_940(doc).expect("an X12 feed");
            write_940(w, &p, ctl, at, &orders).map(|_| ())
        }
        crate::docmap::DocKind::Confirms => {
            let shipments: Vec<Shipment856> = plan
                .shipments
                .iter()
                .map(|s| {
                    let mut packs: Vec<Pack856> = vec![];
                    for l in &s.lines {
                        let key = (
                            l.package.clone().unwrap_or_default(),
                            l.tracking.clone().unwrap_or_default(),
                        );
                        let i = match packs.iter().position(|p| {
                            (p.package.as_str(), p.tracking.as_str())
                                == (key.0.as_str(), key.1.as_str())
                        }) {
                            Some(i) => i,
                            None => {
                                packs.push(Pack856 {
                                    package: key.0,
                                    tracking: key.1,
                                    items: vec![],
                                });
                                packs.len() - 1
                            }
                        };
                        packs[i].items.push(Item856 {
                            line: l.line.clone(),
                            ids: ids(item_ids, &l.sku, plan.upcs),
                            shipped: l.quantity,
                            ordered: l.ordered,
                        });
                    }
                    Shipment856 {
                        shipment_id: s.shipment_id.clone().unwrap_or_else(|| s.id.to_string()),
                        shipped_at: s.shipped_at.map(|t| local(t, cart)).unwrap_or(at),
                        carrier: s.carrier.clone().unwrap_or_default(),
                        service: s.service.clone().unwrap_or_default(),
                        order_id: s.order_id.clone(),
                        po_number: s.po_number.clone().unwrap_or_default(),
                        ship_to: address(&s.ship_to),
                        packs,
                    }
                })
                .collect();
            let p = Profile856 {
                envelope: envelope.clone(),
                unit: unit.clone(),
            };
            write_856(w, &p, ctl, at, &shipments).map(|_| ())
        }
    };
    written.map_err(|e| format!("cannot render the {}: {e}", doc.format_name()))
}
