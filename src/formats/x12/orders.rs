//! Outbound order loop: 940 warehouse shipping orders and 856 ship notices
//! (contract rule 30).
//!
//! Both writers put every transaction set in one interchange with one group
//! (940: functional id "OW", 856: "SH"), in version 004010 or 005010. As for
//! the 846, values are never escaped: a value holding a delimiter or control
//! character is refused with [`X12Error::InvalidValue`], and output is
//! streamed, so callers write to a temporary file and discard it on error.
//! Segment order follows the 940/856 grammars of both versions (checked by
//! the independent validator in the tests).

use std::io::Write;

use chrono::NaiveDateTime;

use super::error::X12Error;
use super::writer::{
    ControlNumbers, EnvelopeProfile, SegWriter, begin_interchange, check_code, end_interchange,
    item_err, profile_err,
};

/// A postal address with contact; `""` means absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub company: String,
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
    pub phone: String,
    pub email: String,
}

/// Outbound 940 settings; field names follow the `x12-940` mapping keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile940 {
    /// Sender, receiver, version, usage, separators.
    pub envelope: EnvelopeProfile,
    /// W6602, e.g. "M" (motor).
    pub transport_method: String,
    /// W6601, e.g. "PP" (prepaid).
    pub payment_method: String,
    /// W0102 unit of measure, e.g. "EA".
    pub unit: String,
}

/// One line of a 940 order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line940 {
    /// The order line id, written as `N9*LI*<line>` in the W01 loop ("" = none).
    pub line: String,
    pub quantity: i64,
    /// (qualifier, value) item ids, in order.
    pub ids: Vec<(String, String)>,
}

/// One order for a 940 set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Order940 {
    /// W0502.
    pub order_id: String,
    /// W0503 ("" = none).
    pub po_number: String,
    /// W6605 routing ("" = none).
    pub ship_method: String,
    /// G62*04 (order date) when known.
    pub ordered_at: Option<NaiveDateTime>,
    pub ship_to: Address,
    pub lines: Vec<Line940>,
}

/// What a 940 or 856 writer wrote: sets, lines or items, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub sets: u32,
    pub items: u64,
    pub bytes: u64,
}

/// Outbound 856 settings; field names follow the `x12-856` mapping keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile856 {
    /// Sender, receiver, version, usage, separators.
    pub envelope: EnvelopeProfile,
    /// SN103/SN106 unit of measure, e.g. "EA".
    pub unit: String,
}

/// One item level (HL I) of an 856.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item856 {
    /// LIN01, the order line id ("" = none).
    pub line: String,
    /// (qualifier, value) LIN pairs, in order.
    pub ids: Vec<(String, String)>,
    /// SN102.
    pub shipped: i64,
    /// SN105.
    pub ordered: i64,
}

/// One pack level (HL P) of an 856.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pack856 {
    /// `MAN*GM*<package>` ("" = none).
    pub package: String,
    /// `MAN*CP*<tracking>` ("" = none).
    pub tracking: String,
    pub items: Vec<Item856>,
}

/// One shipment: one 856 set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shipment856 {
    /// BSN02 (2 to 30 characters).
    pub shipment_id: String,
    /// DTM*011 at the shipment level.
    pub shipped_at: NaiveDateTime,
    /// TD503 SCAC ("" = none).
    pub carrier: String,
    /// TD505 routing ("" = none).
    pub service: String,
    /// PRF01 when `po_number` is "".
    pub order_id: String,
    /// PRF01 ("" = use `order_id`).
    pub po_number: String,
    /// N1*ST loop at the shipment level, when not all empty.
    pub ship_to: Address,
    pub packs: Vec<Pack856>,
}

fn check_version(p: &EnvelopeProfile) -> Result<(), X12Error> {
    let v = &p.version;
    if v != "004010" && v != "005010" {
        return Err(profile_err(
            "version",
            format!("{v:?} must be \"004010\" or \"005010\""),
        ));
    }
    p.validate()?;
    Ok(())
}

/// `v` as an X12 numeric of at most `digits` digits, not negative.
fn quantity(what: String, v: i64, digits: u32) -> Result<String, X12Error> {
    let s = v.to_string();
    if v < 0 || v >= 10_i64.pow(digits) {
        return Err(item_err(
            what,
            &s,
            &format!("must be 0 to {} digits", digits),
        ));
    }
    Ok(s)
}

/// A required value: not empty, at most `max` characters.
fn required(what: String, v: &str, max: usize) -> Result<(), X12Error> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(item_err(what, v, &format!("must be 1 to {max} characters")));
    }
    Ok(())
}

/// An id pair: a 2-character qualifier and a value of 1 to 48 characters.
fn check_id(what: &str, q: &str, v: &str) -> Result<(), X12Error> {
    if q.len() != 2 || !q.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(item_err(
            format!("{what} qualifier"),
            q,
            "must be 2 letters or digits",
        ));
    }
    required(format!("{what} {q}"), v, 48)
}

/// Each address value that is given must fit its element in both
/// versions (N102, N201, N301/N302, N401..N404, PER04/06).
fn check_address(a: &Address) -> Result<(), X12Error> {
    for (field, v, min, max) in [
        ("ship_to_name N102", &a.name, 1, 60),
        ("ship_to_company N201", &a.company, 1, 60),
        ("ship_to_address1 N301", &a.address1, 1, 55),
        ("ship_to_address2 N302", &a.address2, 1, 55),
        ("ship_to_city N401", &a.city, 2, 30),
        ("ship_to_state N402", &a.state, 2, 2),
        ("ship_to_postal_code N403", &a.postal_code, 3, 15),
        ("ship_to_country N404", &a.country, 2, 3),
        ("ship_to_phone PER04", &a.phone, 1, 80),
        ("ship_to_email PER06", &a.email, 1, 80),
    ] {
        let n = v.chars().count();
        if n > 0 && (n < min || n > max) {
            return Err(item_err(
                field.into(),
                v,
                &format!("must be {min} to {max} characters"),
            ));
        }
    }
    Ok(())
}

/// The N1 loop of a ship-to: `N1*ST*name`, N2 company, N3, N4, PER
/// (`PER*IC**TE*<phone>*EM*<email>`), each only when it has a value.
fn write_ship_to<W: Write>(sw: &mut SegWriter<W>, a: &Address) -> Result<(), X12Error> {
    if *a == Address::default() {
        return Ok(());
    }
    check_address(a)?;
    sw.segment("N1", &["ST", &a.name])?;
    if !a.company.is_empty() {
        sw.segment("N2", &[&a.company])?;
    }
    if !a.address1.is_empty() || !a.address2.is_empty() {
        let (one, two) = if a.address1.is_empty() {
            (a.address2.as_str(), "")
        } else {
            (a.address1.as_str(), a.address2.as_str())
        };
        sw.segment("N3", &[one, two])?;
    }
    if [&a.city, &a.state, &a.postal_code, &a.country]
        .iter()
        .any(|v| !v.is_empty())
    {
        sw.segment("N4", &[&a.city, &a.state, &a.postal_code, &a.country])?;
    }
    let mut per: Vec<&str> = vec!["IC", ""];
    if !a.phone.is_empty() {
        per.extend(["TE", a.phone.as_str()]);
    }
    if !a.email.is_empty() {
        per.extend(["EM", a.email.as_str()]);
    }
    if per.len() > 2 {
        sw.segment("PER", &per)?;
    }
    Ok(())
}

/// `W01*<qty>*<unit>*<UPC>*<q>*<v>*<q>*<v>*...*<q>*<v>`: a 12-character
/// "UP" id goes to W0103 (the UPC element); the other pairs fill
/// W0104/05, W0106/07 and W0115/16, the three qualifier/id pairs of W01.
fn w01_elements<'a>(
    n: u64,
    qty: &'a str,
    unit: &'a str,
    ids: &'a [(String, String)],
) -> Result<Vec<&'a str>, X12Error> {
    let mut els: Vec<&str> = vec![""; 16];
    els[0] = qty;
    els[1] = unit;
    let slots = [3, 5, 14];
    let mut next = 0;
    for (q, v) in ids {
        check_id(&format!("line {n} id"), q, v)?;
        if q == "UP" && v.len() == 12 && els[2].is_empty() {
            els[2] = v;
            continue;
        }
        let Some(&at) = slots.get(next) else {
            return Err(item_err(
                format!("line {n} ids"),
                &format!("{ids:?}"),
                "a W01 holds a UPC and at most 3 other id pairs",
            ));
        };
        els[at] = q;
        els[at + 1] = v;
        next += 1;
    }
    Ok(els)
}

/// One 940 set: W05, ship-to N1 loop, G62, W66, LX/W01 per line, W76, SE.
fn write_940_set<W: Write>(
    sw: &mut SegWriter<W>,
    p: &Profile940,
    st02: &str,
    o: &Order940,
    first_line: u64,
) -> Result<u64, X12Error> {
    required("order_id".into(), &o.order_id, 22)?;
    if o.po_number.chars().count() > 22 {
        return Err(item_err(
            format!("order {} po_number", o.order_id),
            &o.po_number,
            "must be at most 22 characters",
        ));
    }
    if o.lines.is_empty() {
        return Err(item_err(
            format!("order {} lines", o.order_id),
            "",
            "a 940 needs at least one line",
        ));
    }
    if o.ship_method.chars().count() > 35 {
        return Err(item_err(
            format!("order {} ship_method", o.order_id),
            &o.ship_method,
            "must be at most 35 characters (W6605)",
        ));
    }
    sw.set_segments = 0;
    sw.segment("ST", &["940", st02])?;
    sw.segment("W05", &["N", &o.order_id, &o.po_number])?;
    write_ship_to(sw, &o.ship_to)?;
    if let Some(t) = o.ordered_at {
        // 04: purchase order date.
        sw.segment("G62", &["04", &t.format("%Y%m%d").to_string()])?;
    }
    // The ship method is the routing, W6605 (35 characters, free text in
    // both versions; W6610 would need a 2-4 character SCAC).
    sw.segment(
        "W66",
        &[
            &p.payment_method,
            &p.transport_method,
            "",
            "",
            &o.ship_method,
        ],
    )?;
    let mut total: i128 = 0;
    let mut n = first_line;
    for (i, l) in o.lines.iter().enumerate() {
        n += 1;
        let qty = quantity(format!("line {n} quantity"), l.quantity, 15)?;
        total += i128::from(l.quantity);
        sw.segment("LX", &[&(i + 1).to_string()])?;
        let els = w01_elements(n, &qty, &p.unit, &l.ids)?;
        sw.segment("W01", &els)?;
        if !l.line.is_empty() {
            // LI: line item identifier, so the 945 can name the line.
            required(format!("line {n} line"), &l.line, 30)?;
            sw.segment("N9", &["LI", &l.line])?;
        }
    }
    sw.segment("W76", &[&total.to_string()])?;
    let count = (sw.set_segments + 1).to_string();
    sw.segment("SE", &[&count, st02])?;
    Ok(n)
}

/// Check an order as [`write_940`] would write it (every value, every
/// length, the delimiters of `p`), without writing anything: an order feed
/// can hold back the orders this refuses and write the others.
pub fn check_order_940(p: &Profile940, o: &Order940) -> Result<(), X12Error> {
    let seps = p.envelope.validate()?;
    let mut sink = SegWriter::new(std::io::sink(), seps, false);
    write_940_set(&mut sink, p, "0001", o, 0).map(|_| ())
}

/// Write a 940 interchange: one 940 transaction set per order, all in one
/// interchange and one GS (functional id "OW"). Per set:
/// `W05*N*<order_id>*<po_number>`, the ship-to N1 loop (N1*ST, N2, N3, N4,
/// PER) when the address has any value, `G62*04*<date>` when the order date
/// is known, `W66*<payment>*<transport>***<ship_method>`, `LX*<n>` +
/// `W01*<qty>*<unit>*...` (+ `N9*LI*<line>`) per line, `W76*<total qty>`, SE.
///
/// Refused before anything is written (see [`check_order_940`]): no
/// orders, a profile that does not validate, an order without lines, a
/// negative quantity, more ids than a W01 holds, a value too long for its
/// element or holding a delimiter.
pub fn write_940<W: Write>(
    w: W,
    p: &Profile940,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    orders: &[Order940],
) -> Result<Written, X12Error> {
    check_version(&p.envelope)?;
    check_code("payment_method", &p.payment_method, 2, 2)?;
    check_code("transport_method", &p.transport_method, 1, 2)?;
    check_code("unit", &p.unit, 2, 2)?;
    if orders.is_empty() {
        return Err(item_err(
            "orders".into(),
            "",
            "a 940 needs at least one order",
        ));
    }
    for o in orders {
        check_order_940(p, o)?;
    }
    let mut sw = begin_interchange(w, &p.envelope, ctl, now, "OW", None)?;
    let mut sets: u32 = 0;
    let mut lines: u64 = 0;
    for o in orders {
        sets += 1;
        lines = write_940_set(&mut sw, p, &format!("{sets:04}"), o, lines)?;
    }
    end_interchange(&mut sw, ctl, sets)?;
    Ok(Written {
        sets,
        items: lines,
        bytes: sw.bytes,
    })
}

/// `TD5**2*<SCAC>**<service>`, when there is a carrier or a service.
fn write_td5<W: Write>(sw: &mut SegWriter<W>, s: &Shipment856) -> Result<(), X12Error> {
    if s.carrier.is_empty() && s.service.is_empty() {
        return Ok(());
    }
    let qualifier = if s.carrier.is_empty() { "" } else { "2" };
    sw.segment("TD5", &["", qualifier, &s.carrier, "", &s.service])
}

/// The item level: `HL*<n>*<pack>*I`, LIN, SN1.
fn write_856_item<W: Write>(
    sw: &mut SegWriter<W>,
    unit: &str,
    hl: u64,
    pack_hl: u64,
    item: &Item856,
    n: u64,
) -> Result<(), X12Error> {
    sw.segment("HL", &[&hl.to_string(), &pack_hl.to_string(), "I"])?;
    if item.ids.is_empty() || item.ids.len() > 15 {
        return Err(item_err(
            format!("item {n} ids"),
            &format!("{:?}", item.ids),
            "a LIN needs 1 to 15 id pairs",
        ));
    }
    if item.line.chars().count() > 20 {
        return Err(item_err(
            format!("item {n} line"),
            &item.line,
            "must be at most 20 characters (LIN01)",
        ));
    }
    let mut lin: Vec<&str> = vec![&item.line];
    for (q, v) in &item.ids {
        check_id(&format!("item {n} id"), q, v)?;
        lin.push(q);
        lin.push(v);
    }
    sw.segment("LIN", &lin)?;
    let shipped = quantity(format!("item {n} shipped"), item.shipped, 10)?;
    let ordered = quantity(format!("item {n} ordered"), item.ordered, 15)?;
    sw.segment("SN1", &["", &shipped, unit, "", &ordered, unit])
}

/// One 856 set; returns the item count after it.
fn write_856_set<W: Write>(
    sw: &mut SegWriter<W>,
    p: &Profile856,
    st02: &str,
    now: NaiveDateTime,
    s: &Shipment856,
    mut items: u64,
) -> Result<u64, X12Error> {
    if s.shipment_id.chars().count() < 2 || s.shipment_id.chars().count() > 30 {
        return Err(item_err(
            "shipment_id".into(),
            &s.shipment_id,
            "must be 2 to 30 characters (BSN02)",
        ));
    }
    if !s.carrier.is_empty() && !(2..=4).contains(&s.carrier.len()) {
        return Err(item_err(
            format!("shipment {} carrier", s.shipment_id),
            &s.carrier,
            "must be a 2 to 4 character SCAC (TD503)",
        ));
    }
    let prf = if s.po_number.is_empty() {
        &s.order_id
    } else {
        &s.po_number
    };
    required(format!("shipment {} order", s.shipment_id), prf, 22)?;
    if s.service.chars().count() > 35 {
        return Err(item_err(
            format!("shipment {} service", s.shipment_id),
            &s.service,
            "must be at most 35 characters (TD505)",
        ));
    }
    for pack in &s.packs {
        for (what, v) in [("package", &pack.package), ("tracking", &pack.tracking)] {
            if v.chars().count() > 48 {
                return Err(item_err(
                    format!("shipment {} {what}", s.shipment_id),
                    v,
                    "must be at most 48 characters (MAN02)",
                ));
            }
        }
    }
    sw.set_segments = 0;
    sw.segment("ST", &["856", st02])?;
    let date = now.format("%Y%m%d").to_string();
    let time = now.format("%H%M").to_string();
    sw.segment("BSN", &["00", &s.shipment_id, &date, &time])?;
    sw.segment("HL", &["1", "", "S"])?;
    write_td5(sw, s)?;
    // 011: shipped.
    sw.segment(
        "DTM",
        &[
            "011",
            &s.shipped_at.format("%Y%m%d").to_string(),
            &s.shipped_at.format("%H%M").to_string(),
        ],
    )?;
    write_ship_to(sw, &s.ship_to)?;
    sw.segment("HL", &["2", "1", "O"])?;
    sw.segment("PRF", &[prf])?;
    let mut hl: u64 = 2;
    for pack in &s.packs {
        hl += 1;
        let pack_hl = hl;
        sw.segment("HL", &[&pack_hl.to_string(), "2", "P"])?;
        // GM: the package's SSCC/label id; CP: carrier-assigned package id
        // (the tracking number). Both versions take MAN here.
        if !pack.package.is_empty() {
            sw.segment("MAN", &["GM", &pack.package])?;
        }
        if !pack.tracking.is_empty() {
            sw.segment("MAN", &["CP", &pack.tracking])?;
        }
        for item in &pack.items {
            hl += 1;
            items += 1;
            write_856_item(sw, &p.unit, hl, pack_hl, item, items)?;
        }
    }
    sw.segment("CTT", &[&hl.to_string()])?;
    let count = (sw.set_segments + 1).to_string();
    sw.segment("SE", &[&count, st02])?;
    Ok(items)
}

/// Check a shipment as [`write_856`] would write it, without writing
/// anything (see [`check_order_940`]).
pub fn check_shipment_856(p: &Profile856, s: &Shipment856) -> Result<(), X12Error> {
    let seps = p.envelope.validate()?;
    let mut sink = SegWriter::new(std::io::sink(), seps, false);
    let now = NaiveDateTime::default();
    write_856_set(&mut sink, p, "0001", now, s, 0).map(|_| ())
}

/// Write an 856 interchange: one 856 transaction set per shipment, one
/// interchange and one GS (functional id "SH"). Per set:
/// `BSN*00*<shipment_id>*<now date>*<now time>`; `HL*1**S` with
/// `TD5**2*<SCAC>**<service>`, `DTM*011*<shipped date>*<time>` and the
/// ship-to N1 loop; `HL*2*1*O` with `PRF*<po_number or order_id>`; per pack
/// `HL*n*2*P` with `MAN*GM*<package>` and `MAN*CP*<tracking>` when given; per
/// item `HL*n*<pack>*I` with `LIN*<line>*<q>*<v>...` and
/// `SN1**<shipped>*<unit>**<ordered>*<unit>`; `CTT*<HL count>`; SE.
///
/// Refused before anything is written (see [`check_shipment_856`]): no
/// shipments, a profile that does not validate, a shipment id not 2 to 30
/// characters, a carrier that is not a 2 to 4 character SCAC, no order id,
/// an item without ids, a negative quantity, a value too long for its
/// element or holding a delimiter.
pub fn write_856<W: Write>(
    w: W,
    p: &Profile856,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    shipments: &[Shipment856],
) -> Result<Written, X12Error> {
    check_version(&p.envelope)?;
    check_code("unit", &p.unit, 2, 2)?;
    if shipments.is_empty() {
        return Err(item_err(
            "shipments".into(),
            "",
            "an 856 needs at least one shipment",
        ));
    }
    for s in shipments {
        check_shipment_856(p, s)?;
    }
    let mut sw = begin_interchange(w, &p.envelope, ctl, now, "SH", None)?;
    let mut sets: u32 = 0;
    let mut items: u64 = 0;
    for s in shipments {
        sets += 1;
        items = write_856_set(&mut sw, p, &format!("{sets:04}"), now, s, items)?;
    }
    end_interchange(&mut sw, ctl, sets)?;
    Ok(Written {
        sets,
        items,
        bytes: sw.bytes,
    })
}
