//! X12 940 (order feeds) and 856 (confirm feeds), from a sync's plan.

use super::docs::X12Plan;
use crate::config::Cart;
use crate::docmap::DocMapping;
use crate::util::Millis;
use std::io::Write;

pub(super) fn write(
    _w: &mut impl Write,
    doc: &DocMapping,
    plan: X12Plan<'_>,
    _control: Option<i64>,
    _now: Millis,
    _cart: &Cart,
) -> Result<(), String> {
    let _ = (plan.orders, plan.shipments, plan.upcs);
    Err(format!("{} feeds are not written yet", doc.format_name()))
}
