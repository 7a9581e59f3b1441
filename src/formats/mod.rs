//! File formats: inbound readers turn a file into raw records (text values
//! per ledger field, with where they came from); feed writers turn items into
//! bytes. Interpreting values (whole numbers, times) is shared, in [`quantity`].

pub mod csv_in;
pub mod csv_out;
pub mod x12;
pub mod xml;

use crate::mapping::{
    Field, InSource, InboundMapping, Measure, OutFormat, OutboundMapping, PerWarehouseMode,
};
use crate::util::Millis;
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

/// One inbound record: the text of each mapped field, as found (borrowed
/// from the reader's buffer where it can be).
#[derive(Debug, Default, Clone)]
pub struct RawRecord<'a> {
    /// Line (CSV, XML) or segment position (X12) where the record starts.
    pub line: u64,
    pub values: [Option<Cow<'a, str>>; crate::mapping::Field::ALL.len()],
    /// A defect the reader found in this record (X12: a LIN without the SKU
    /// qualifier, say); the record is reported as a bad row.
    pub error: Option<String>,
    /// An empty or delimiter-only row (Excel's trailing `;;;`): not a
    /// record, counted as skipped (CONTRACT §4).
    pub skip: bool,
    /// The record is left out without rejecting the file, counted under
    /// this reason (X12: a LIN loop without the quantity QTY, `no quantity`).
    pub left_out: Option<&'static str>,
    /// Notes for the ingest summary that do not reject the row.
    pub warnings: Vec<String>,
}

impl<'a> RawRecord<'a> {
    pub fn get(&self, f: Field) -> Option<&str> {
        self.values[f as usize].as_deref()
    }
    pub fn set(&mut self, f: Field, v: impl Into<Cow<'a, str>>) {
        self.values[f as usize] = Some(v.into());
    }
}

/// A problem that makes a whole file unreadable (as opposed to one bad row).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    #[error("{0}")]
    Stopped(String),
}

/// Reads every record of `path` as `mapping` describes, in file order.
/// The callback may stop the read by returning an error.
pub fn read_records(
    path: &Path,
    mapping: &InboundMapping,
    on: &mut dyn FnMut(RawRecord) -> Result<(), String>,
) -> Result<u64, ReadError> {
    match &mapping.source {
        InSource::Csv {
            delimiter,
            header,
            columns,
        } => csv_in::read(path, *delimiter, *header, columns, mapping, on),
        InSource::Xml { item, fields } => read_xml(path, item, fields, on),
        InSource::X12 { .. } => read_x12(path, mapping, on),
    }
}

/// How the operator finds a field in the file, for error messages.
pub fn field_label(mapping: &InboundMapping, f: Field) -> String {
    match &mapping.source {
        InSource::Csv { columns, .. } => columns
            .iter()
            .find(|(g, _)| *g == f)
            .map(|(_, c)| format!("{c}"))
            .unwrap_or_else(|| f.name().to_string()),
        InSource::Xml { fields, .. } => fields
            .iter()
            .find(|(g, _)| *g == f)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| f.name().into()),
        InSource::X12 { .. } => match (f, mapping.record) {
            (Field::Sku, crate::mapping::RecordKind::Orders) => "PO1".into(),
            (Field::Quantity, crate::mapping::RecordKind::Orders) => "PO102".into(),
            (Field::Unit, crate::mapping::RecordKind::Orders) => "PO103".into(),
            (Field::OrderedAt, _) => "BEG05".into(),
            (Field::OrderId, _) => "BEG03".into(),
            (Field::Sku, _) => "LIN".into(),
            (Field::Quantity, _) => "QTY02".into(),
            (Field::Unit, _) => "QTY03".into(),
            (Field::AsOf, _) => "DTM/BIA04".into(),
            (Field::Warehouse, _) => "N104/SDQ".into(),
            (Field::Price, _) => "CTP03".into(),
            (other, _) => other.name().into(),
        },
    }
}

/// A GTIN of 8, 12, 13 or 14 digits whose last digit is its check digit
/// (the GS1 mod-10 rule shared by UPC-A, EAN-13 and GTIN-14).
pub fn valid_gtin(s: &str) -> bool {
    let b = s.as_bytes();
    if !matches!(b.len(), 8 | 12 | 13 | 14) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let (body, check) = b.split_at(b.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check[0] - b'0')
}

/// The length an X12 product id qualifier fixes, when it names a GTIN:
/// UP (UPC-A) 12 digits, EN (EAN-13) 13, UK (GTIN-14) 14.
pub fn gtin_len(qualifier: &str) -> Option<usize> {
    match qualifier {
        "UP" => Some(12),
        "EN" => Some(13),
        "UK" => Some(14),
        _ => None,
    }
}

/// Prices (`price` in inbound CSV/XML, CTP03 in an inbound 846): decimals
/// kept as validated text, never floats.
pub mod price {
    /// The rule, as shown in a rejected row's reason.
    pub const RULE: &str = "not a price: a decimal like 47.13 (digits, at most one '.', at most 4 decimals and 12 whole digits; no sign, exponent or thousands separator)";

    /// The canonical text of a price, `None` for an empty one (the product
    /// has no price). `47.13`, ` 047.130 `, `+5`, `12.` → `47.13`,
    /// `47.130`, `5`, `12`; `-1`, `1e3`, `1,000`, `.5`, `12.34567` are errors.
    pub fn parse(s: &str) -> Result<Option<String>, &'static str> {
        let t = s.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |v: &str| v.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 4 {
            return Err(RULE);
        }
        let int = match int.trim_start_matches('0') {
            "" => "0",
            i => i,
        };
        if int.len() > 12 {
            return Err(RULE);
        }
        Ok(Some(if frac.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        }))
    }

    #[cfg(test)]
    mod tests {
        use super::parse;
        #[test]
        fn prices() {
            for (s, v) in [
                ("47.13", Some("47.13")),
                (" 047.130 ", Some("47.130")),
                ("+5", Some("5")),
                ("12.", Some("12")),
                ("0.99", Some("0.99")),
                ("000", Some("0")),
                ("", None),
                ("  ", None),
            ] {
                assert_eq!(parse(s), Ok(v.map(String::from)), "{s:?}");
            }
            for s in [
                "-1",
                "1e3",
                "1,000",
                ".5",
                "12.34567",
                "abc",
                "1.2.3",
                "9999999999999",
            ] {
                assert!(parse(s).is_err(), "{s:?} should be rejected");
            }
        }
    }
}

pub mod quantity {
    /// The largest quantity accepted, either sign (CONTRACT rule 14): any
    /// sum of such values over a ledger's rows fits an i64 many times over.
    pub const MAX_QUANTITY: i64 = 1_000_000_000_000;

    /// The whole-number rule: `12`, `+12`, ` 12 `, `12.0`, `-3` are whole;
    /// `12.5`, `1e3`, `12,000`, `twelve` and empty are not.
    pub fn parse_whole(s: &str) -> Result<i64, &'static str> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty quantity");
        }
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (t, None),
        };
        let digits = int.strip_prefix(['+', '-']).unwrap_or(int);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("not a whole number");
        }
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err("not a whole number");
            }
            if f.bytes().any(|b| b != b'0') {
                return Err("not a whole number (has a fraction)");
            }
        }
        // Digits alone: a value of any length is out of range, never an overflow.
        let body = digits.trim_start_matches('0');
        if body.len() > 13 {
            return Err("quantity out of range (at most ±1,000,000,000,000)");
        }
        let v: i64 = body.parse().unwrap_or(0);
        let v = if int.starts_with('-') { -v } else { v };
        if v.abs() > MAX_QUANTITY {
            return Err("quantity out of range (at most ±1,000,000,000,000)");
        }
        Ok(v)
    }

    #[cfg(test)]
    mod tests {
        use super::parse_whole;
        #[test]
        fn contract_examples() {
            for (s, v) in [
                ("12", 12),
                ("+12", 12),
                (" 12 ", 12),
                ("12.0", 12),
                ("-3", -3),
                ("0", 0),
                ("12.00", 12),
                ("1000000000000", 1_000_000_000_000),
                ("-1000000000000", -1_000_000_000_000),
                ("0001000000000000", 1_000_000_000_000),
                ("-0", 0),
            ] {
                assert_eq!(parse_whole(s), Ok(v), "{s:?}");
            }
            for s in [
                "12.5",
                "1e3",
                "12,000",
                "twelve",
                "",
                "  ",
                "12.",
                ".5",
                "+",
                "--3",
                "99999999999999999999",
            ] {
                assert!(parse_whole(s).is_err(), "{s:?} should be rejected");
            }
            for s in [
                "1000000000001",
                "-1000000000001",
                "9223372036854775807",
                "-9223372036854775808",
                "99999999999999999999",
            ] {
                assert!(
                    parse_whole(s).is_err_and(|e| e.contains("out of range")),
                    "{s:?} should be out of range"
                );
            }
        }
    }
}

/// One line of a feed.
#[derive(Debug, Clone, Default)]
pub struct FeedItem {
    pub sku: String,
    pub quantity: i64,
    pub upc: Option<String>,
    pub description: Option<String>,
    pub as_of: Option<Millis>,
    /// Validated decimal text (inbound `price`), when the product has one.
    pub price: Option<String>,
    /// Counted stock before orders: the sum of the latest counts of the
    /// warehouses the cart counts (may be negative).
    pub on_hand: i64,
    /// The open order lines drawing on that stock (rule 2).
    pub committed: i64,
    /// `quantity` split per warehouse, for the warehouses the feed lists
    /// (only when its query asks for a breakdown; the shares sum to
    /// `quantity` unless `unplaced` is not 0).
    pub warehouses: Vec<WarehouseShare>,
    /// The part of `quantity` that only warehouses outside the breakdown
    /// hold: such an item cannot be sent per warehouse.
    pub unplaced: i64,
}

/// One warehouse's part of a feed item (per-warehouse 846s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseShare {
    pub warehouse: String,
    /// This warehouse's part of the value sent (never more than its own
    /// stock minus the orders drawing on it, never negative).
    pub quantity: i64,
    /// Its latest count (may be negative).
    pub on_hand: i64,
    /// The open order lines drawing on it.
    pub committed: i64,
}

/// Context a feed writer may need beyond the items.
pub struct FeedContext<'a> {
    pub merchant: &'a str,
    pub now: Millis,
    /// X12: the interchange and group control numbers reserved for this feed.
    pub control: Option<(i64, i64)>,
    /// The cart's `timezone`: an 846's ISA/GS/BIA dates and times are in it,
    /// as the `{timestamp}` of its file name is.
    pub tz: chrono_tz::Tz,
}

/// Writes a whole feed from an item iterator, so no catalog is ever held whole.
pub fn write_feed(
    mapping: &OutboundMapping,
    ctx: &FeedContext,
    out: &mut dyn Write,
    items: &mut dyn Iterator<Item = FeedItem>,
) -> std::io::Result<()> {
    match &mapping.format {
        OutFormat::Csv {
            delimiter,
            header,
            columns,
            style,
        } => csv_out::write(
            out,
            *delimiter,
            *header,
            columns,
            style,
            ctx.merchant,
            items,
        ),
        OutFormat::Xml { root, item, fields } => {
            write_xml(out, root, item, fields, ctx.merchant, items)
        }
        OutFormat::X12_846(p) => write_846(out, p, ctx, items),
    }
}

/// The text of a feed field for an item ("" when the product lacks it).
pub fn field_text(item: &FeedItem, f: crate::mapping::OutField, merchant: &str) -> String {
    use crate::mapping::OutField::*;
    match f {
        Sku => item.sku.clone(),
        Quantity => item.quantity.to_string(),
        Upc => item.upc.clone().unwrap_or_default(),
        Description => item.description.clone().unwrap_or_default(),
        Merchant => merchant.to_string(),
        AsOf => item.as_of.map(crate::util::rfc3339).unwrap_or_default(),
        Price => item.price.clone().unwrap_or_default(),
    }
}

fn read_xml(
    path: &Path,
    item: &str,
    fields: &[(Field, String)],
    on: &mut dyn FnMut(RawRecord) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let file = std::fs::File::open(path)?;
    let spec = xml::ItemSpec {
        item_path: item.to_string(),
        fields: fields
            .iter()
            .map(|(f, p)| (f.name().to_string(), p.clone()))
            .collect(),
    };
    let summary = xml::read_items(
        std::io::BufReader::with_capacity(1 << 16, file),
        &spec,
        |it: &xml::XmlItem| {
            let mut r = RawRecord {
                line: it.line,
                ..Default::default()
            };
            for ((f, _), v) in fields.iter().zip(&it.values) {
                if let Some(v) = v {
                    r.set(*f, v.as_str());
                }
            }
            on(r)
        },
    );
    match summary {
        Ok(s) => Ok(s.items),
        Err(xml::XmlError::Item { source, .. }) => Err(ReadError::Stopped(source.to_string())),
        Err(e) => Err(ReadError::Format {
            line: e.line().unwrap_or(0),
            message: e.to_string(),
        }),
    }
}

/// XML feeds: `<Root><Item><SKU>..</SKU>..</Item></Root>`, UTF-8, escaped.
fn write_xml(
    out: &mut dyn Write,
    root: &str,
    item: &str,
    columns: &[crate::mapping::OutColumn],
    merchant: &str,
    items: &mut dyn Iterator<Item = FeedItem>,
) -> std::io::Result<()> {
    let spec = xml::FeedSpec {
        root: root.to_string(),
        item: item.to_string(),
        fields: columns
            .iter()
            .map(|c| (c.name.clone(), c.field.name().to_string()))
            .collect(),
    };
    let mut w = xml::XmlWriter::new(out, &spec).map_err(std::io::Error::other)?;
    for it in items {
        // XML 1.0 cannot carry some control characters at all: drop them.
        let values: Vec<String> = columns
            .iter()
            .map(|c| {
                field_text(&it, c.field, merchant)
                    .chars()
                    .filter(|ch| xml::is_xml_char(*ch))
                    .collect()
            })
            .collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        w.write_item(&refs).map_err(std::io::Error::other)?;
    }
    w.finish().map_err(std::io::Error::other)?;
    Ok(())
}

pub use crate::mapping::X12_TIME_FORMAT;

/// The text of the last time formatted: the items of an 846 share their
/// set's time, formatted once.
#[derive(Default)]
struct LastTime {
    last: Option<(chrono::NaiveDateTime, bool, String)>,
}

impl LastTime {
    fn get(
        &mut self,
        t: chrono::NaiveDateTime,
        date_only: bool,
        fmt: impl Fn(chrono::NaiveDateTime, bool) -> String,
    ) -> String {
        match &self.last {
            Some((u, d, text)) if *u == t && *d == date_only => text.clone(),
            _ => {
                let text = fmt(t, date_only);
                self.last = Some((t, date_only, text.clone()));
                text
            }
        }
    }
}

enum X12Stop {
    X12(x12::X12Error),
    Stop(String),
}

impl From<x12::X12Error> for X12Stop {
    fn from(e: x12::X12Error) -> Self {
        X12Stop::X12(e)
    }
}

/// Which shipment set an X12 file holds ("945" or "856"), from its first
/// ST segment (the element separator is the ISA's fourth byte).
fn shipment_set(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut buf = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    let buf = &buf[..n];
    let start = buf.windows(3).position(|w| w == b"ISA")?;
    let sep = *buf.get(start + 3)?;
    for set in ["856", "945"] {
        let needle = [b"ST".as_slice(), &[sep], set.as_bytes(), &[sep]].concat();
        if buf.windows(needle.len()).any(|w| w == needle.as_slice()) {
            return Some(set);
        }
    }
    None
}

/// X12 inbound: 846 LIN loops as inventory rows, 850 PO1 lines as order lines.
/// `line` is the segment position, so errors point into the interchange.
fn read_x12(
    path: &Path,
    mapping: &InboundMapping,
    on: &mut dyn FnMut(RawRecord) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let InSource::X12 {
        sku_qualifiers,
        quantity_qualifier,
        as_of_qualifiers,
        locations,
        price_qualifier,
    } = &mapping.source
    else {
        return Ok(0);
    };
    let input = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    // A date without a time reaches the time parser as a date alone (rule 16).
    let fmt = |t: chrono::NaiveDateTime, date_only: bool| {
        if date_only {
            t.format(crate::mapping::X12_DATE_FORMAT).to_string()
        } else {
            t.format(X12_TIME_FORMAT).to_string()
        }
    };
    let result = match mapping.record {
        crate::mapping::RecordKind::Inventory => {
            let opts = x12::Read846 {
                sku_qualifiers: sku_qualifiers.clone(),
                quantity_qualifier: quantity_qualifier.clone(),
                as_of_qualifiers: as_of_qualifiers.clone(),
                price_qualifier: price_qualifier.clone(),
                split_by_sdq: !locations.is_empty(),
            };
            let mut as_of_text = LastTime::default();
            x12::read_846_with(input, &opts, |it: x12::Item846In| {
                let mut r = RawRecord {
                    line: it.position as u64,
                    error: it.error.clone(),
                    left_out: it.left_out,
                    ..Default::default()
                };
                // Opt-in: the warehouse from the 846's N1 or SDQ location.
                if !locations.is_empty()
                    && let Some(loc) = &it.location
                {
                    match locations.iter().find(|(id, _)| id == loc) {
                        Some((_, w)) => r.set(Field::Warehouse, w.clone()),
                        None if r.error.is_none() => {
                            r.error = Some(format!(
                                "location {} (N104 or SDQ) has no entry in the mapping's [locations] table",
                                crate::util::quoted(loc)
                            ))
                        }
                        None => {}
                    }
                }
                if let Some(s) = it.sku {
                    r.set(Field::Sku, s);
                }
                if let Some(q) = it.quantity {
                    r.set(Field::Quantity, q);
                }
                if !it.unit.is_empty() {
                    r.set(Field::Unit, it.unit);
                }
                if let Some(p) = it.price {
                    r.set(Field::Price, p);
                }
                match it.as_of {
                    Some(t) => r.set(Field::AsOf, as_of_text.get(t, it.as_of_date_only, fmt)),
                    None => r.warnings.push(format!(
                        "set {}: no BIA04 date and no header DTM with DTM01 {}: the as-of is the file's modification time",
                        it.set_control,
                        as_of_qualifiers.join("/")
                    )),
                }
                // A UPC among the LIN ids is kept as the product's UPC.
                if let Some((_, upc)) = it.ids.iter().find(|(q, v)| q == "UP" && !v.is_empty()) {
                    r.set(Field::Upc, upc.clone());
                }
                on(r).map_err(X12Stop::Stop)
            })
            .map(|s| s.items)
        }
        // `check` refuses an X12 catalog: no X12 set is one.
        crate::mapping::RecordKind::Products => {
            return Err(ReadError::Stopped(
                "X12 carries 846 inventory and 850 orders, not a product catalog".into(),
            ));
        }
        crate::mapping::RecordKind::Shipments => {
            let on_line = |l: x12::ShipLineIn| {
                let mut r = RawRecord {
                    line: l.position as u64,
                    error: l.error.clone(),
                    ..Default::default()
                };
                let mut put = |f: Field, v: String| {
                    if !v.is_empty() {
                        r.set(f, v);
                    }
                };
                put(Field::OrderId, l.order_id);
                put(Field::PoNumber, l.po_number);
                put(Field::ShipmentId, l.shipment_id);
                put(Field::Line, l.line);
                put(Field::Quantity, l.quantity);
                put(Field::Unit, l.unit);
                put(Field::Status, l.status);
                put(Field::Package, l.package);
                put(Field::Tracking, l.tracking);
                put(Field::Carrier, l.carrier);
                put(Field::Service, l.service);
                if let Some(t) = l.shipped_at {
                    r.set(Field::ShippedAt, fmt(t, false));
                }
                if let Some(sku) = l.sku {
                    r.set(Field::Sku, sku);
                }
                on(r).map_err(X12Stop::Stop)
            };
            match shipment_set(path) {
                Some("856") => x12::read_856_with(input, sku_qualifiers, on_line),
                _ => x12::read_945_with(input, sku_qualifiers, on_line),
            }
            .map(|s| s.lines)
        }
        crate::mapping::RecordKind::Orders => {
            x12::read_850_with(input, sku_qualifiers, |l: x12::OrderLine850| {
                let mut r = RawRecord {
                    line: l.position as u64,
                    error: l.error.clone(),
                    ..Default::default()
                };
                r.set(Field::OrderId, l.order_id);
                r.set(Field::Line, l.line);
                r.set(Field::Quantity, l.quantity);
                if !l.unit.is_empty() {
                    r.set(Field::Unit, l.unit);
                }
                if let Some(s) = l.sku {
                    r.set(Field::Sku, s);
                }
                if let Some(t) = l.ordered_at {
                    // BEG05 is a date alone.
                    r.set(Field::OrderedAt, fmt(t, true));
                }
                // The order's own fields (CONTRACT §6): BEG03, TD5, N1*ST.
                if !l.po_number.is_empty() {
                    r.set(Field::PoNumber, l.po_number);
                }
                if !l.ship_method.is_empty() {
                    r.set(Field::ShipMethod, l.ship_method);
                }
                let a = l.ship_to;
                for (f, v) in crate::mapping::SHIP_TO.into_iter().zip([
                    a.name,
                    a.company,
                    a.address1,
                    a.address2,
                    a.city,
                    a.state,
                    a.postal_code,
                    a.country,
                    a.phone,
                    a.email,
                ]) {
                    if !v.is_empty() {
                        r.set(f, v);
                    }
                }
                on(r).map_err(X12Stop::Stop)
            })
            .map(|s| s.lines)
        }
    };
    result.map_err(|e| match e {
        X12Stop::Stop(s) => ReadError::Stopped(s),
        X12Stop::X12(x12::X12Error::Io(e)) => ReadError::Io(e),
        X12Stop::X12(e) => ReadError::Format {
            line: 0,
            message: e.to_string(),
        },
    })
}

/// Turns the mapping's profile into the writer's.
pub fn profile_846(p: &crate::mapping::X12Profile) -> x12::Profile846 {
    x12::Profile846 {
        envelope: x12::EnvelopeProfile {
            version: p.version.clone(),
            sender_qualifier: p.sender_qualifier.clone(),
            sender_id: p.sender_id.clone(),
            receiver_qualifier: p.receiver_qualifier.clone(),
            receiver_id: p.receiver_id.clone(),
            usage: p.usage,
            element_separator: p.element_separator,
            segment_terminator: p.segment_terminator,
            component_separator: p.component_separator,
            line_break: p.line_break,
        },
        bia_purpose: p.bia_purpose.clone(),
        bia_report_type: p.bia_report_type.clone(),
        item_ids: p
            .item_ids
            .iter()
            .map(|(q, f)| (q.clone(), f.name().to_string()))
            .collect(),
        quantity_qualifier: p.quantity_qualifier.clone(),
        unit: p.unit.clone(),
        extras: p.extras.clone(),
    }
}

/// A full-catalog X12 846 with the control numbers the ledger reserved.
fn write_846(
    out: &mut dyn Write,
    p: &crate::mapping::X12Profile,
    ctx: &FeedContext,
    items: &mut dyn Iterator<Item = FeedItem>,
) -> std::io::Result<()> {
    let (interchange, group) = ctx
        .control
        .ok_or_else(|| std::io::Error::other("no X12 control numbers reserved"))?;
    let ctl = x12::ControlNumbers {
        interchange: interchange as u32,
        group: group as u32,
    };
    let now = crate::util::to_datetime(ctx.now)
        .with_timezone(&ctx.tz)
        .naive_local();
    let items = items.flat_map(|it| lin_loops(p, it, ctx.merchant));
    x12::write_846(out, &profile_846(p), ctl, now, items).map_err(std::io::Error::other)?;
    Ok(())
}

/// A measure's value for one item (or one warehouse's share of it): never
/// negative in a feed.
fn measure(m: Measure, quantity: i64, on_hand: i64, committed: i64) -> i64 {
    match m {
        Measure::Available => quantity,
        Measure::OnHand => on_hand.max(0),
        Measure::Committed => committed.max(0),
    }
}

/// The LIN loops of one feed item: one, or with `per_warehouse = "n1"` one
/// per warehouse of the breakdown (each with its own share and N1).
fn lin_loops(p: &crate::mapping::X12Profile, mut it: FeedItem, merchant: &str) -> LinLoops {
    let ex = &p.extras;
    let measures = |q: i64, on_hand: i64, committed: i64| -> Vec<i64> {
        ex.extra_quantities
            .iter()
            .map(|(_, m)| measure(*m, q, on_hand, committed))
            .collect()
    };
    let ids = p
        .item_ids
        .iter()
        .map(|(q, f)| (q.clone(), field_text(&it, *f, merchant)))
        .collect();
    let base = x12::Item846Out {
        ids,
        quantity: it.quantity,
        description: it.description.take(),
        price: it.price.take(),
        measures: measures(it.quantity, it.on_hand, it.committed),
        sdq: vec![],
        location: None,
    };
    let Some(pw) = &ex.per_warehouse else {
        return LinLoops::One(Some(base));
    };
    let id_of = |w: &str| pw.location_id(w).unwrap_or_default().to_string();
    match pw.mode {
        PerWarehouseMode::Sdq => LinLoops::One(Some(x12::Item846Out {
            sdq: it
                .warehouses
                .iter()
                .map(|s| (id_of(&s.warehouse), s.quantity))
                .collect(),
            ..base
        })),
        PerWarehouseMode::N1 => LinLoops::Many(
            it.warehouses
                .iter()
                .map(|s| x12::Item846Out {
                    quantity: s.quantity,
                    measures: measures(s.quantity, s.on_hand, s.committed),
                    location: Some(id_of(&s.warehouse)),
                    ..base.clone()
                })
                .collect::<Vec<_>>()
                .into_iter(),
        ),
    }
}

/// The LIN loops of one item: one (no allocation for the usual case), or
/// one per warehouse.
enum LinLoops {
    One(Option<x12::Item846Out>),
    Many(std::vec::IntoIter<x12::Item846Out>),
}

impl Iterator for LinLoops {
    type Item = x12::Item846Out;
    fn next(&mut self) -> Option<x12::Item846Out> {
        match self {
            LinLoops::One(it) => it.take(),
            LinLoops::Many(it) => it.next(),
        }
    }
}
