//! Outbound X12: envelope writing shared by the 846 and 997 writers.
//!
//! Values are never escaped (X12 has no escape): a value containing a
//! delimiter, CR or LF is refused with [`X12Error::InvalidValue`]. Output is
//! streamed, so an error can leave a partial interchange in `w`: callers write
//! to a temporary file and discard it on error.

use std::io::Write;

use chrono::NaiveDateTime;

use super::error::X12Error;
use super::reader::Separators;

/// Most LIN loops per 846 set; more items start a new ST/SE in the group.
pub const MAX_LIN_PER_SET: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlNumbers {
    /// ISA13/IEA02, 1..=999999999.
    pub interchange: u32,
    /// GS06/GE02, 1..=999999999.
    pub group: u32,
}

/// Sender/receiver/separators of an outbound interchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeProfile {
    /// "004010" or "005010" (GS08; ISA12 follows: 00401 / 00501).
    pub version: String,
    pub sender_qualifier: String,
    pub sender_id: String,
    pub receiver_qualifier: String,
    pub receiver_id: String,
    /// 'P' production or 'T' test (ISA15).
    pub usage: char,
    pub element_separator: char,
    pub segment_terminator: char,
    pub component_separator: char,
    /// Write "\n" after each segment terminator (readable files; most
    /// partners accept it). Default false: terminator only.
    pub line_break: bool,
}

/// Outbound 846 settings; field names follow the `x12-846` mapping keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile846 {
    /// Sender, receiver, version, usage, separators.
    pub envelope: EnvelopeProfile,
    pub bia_purpose: String,
    pub bia_report_type: String,
    /// LIN qualifier / field name pairs, in LIN order.
    pub item_ids: Vec<(String, String)>,
    pub quantity_qualifier: String,
    pub unit: String,
    /// Optional segments retailers' guides ask for; all off by default.
    pub extras: Extras846,
}

/// Optional 846 content: the mapping's own keys of the same names, one
/// definition for both.
pub use crate::mapping::Extras846;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item846Out {
    /// (qualifier, value) in the profile's `item_ids` order.
    pub ids: Vec<(String, String)>,
    pub quantity: i64,
    /// Written as PID05 when the profile asks for descriptions.
    pub description: Option<String>,
    /// CTP03, required when the profile writes a CTP (`extras.price`).
    pub price: Option<String>,
    /// One value per `extras.extra_quantities` entry, in that order.
    pub measures: Vec<i64>,
    /// SDQ (location id, quantity) pairs, written before the QTY (at most
    /// ten per SDQ segment).
    pub sdq: Vec<(String, i64)>,
    /// N104 of an N1 written in the loop after the QTYs (`n1` mode).
    pub location: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written846 {
    pub sets: u32,
    pub items: u64,
    pub bytes: u64,
}

pub(super) fn profile_err(field: &'static str, reason: impl Into<String>) -> X12Error {
    X12Error::Profile {
        field,
        reason: reason.into(),
    }
}

pub(super) fn check_code(
    field: &'static str,
    v: &str,
    min: usize,
    max: usize,
) -> Result<(), X12Error> {
    if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(profile_err(
            field,
            format!("{v:?} must be {min} to {max} letters or digits"),
        ));
    }
    Ok(())
}

impl EnvelopeProfile {
    /// Separators for this profile, after checking the whole profile.
    pub fn validate(&self) -> Result<Separators, X12Error> {
        let (isa12, _) = isa_version(&self.version)?;
        let sep = |field: &'static str, c: char| -> Result<u8, X12Error> {
            if !c.is_ascii() || c.is_ascii_alphanumeric() || c == ' ' {
                return Err(profile_err(
                    field,
                    format!(
                        "{c:?} must be an ASCII character that is not a letter, digit or space"
                    ),
                ));
            }
            Ok(c as u8)
        };
        let element = sep("element_separator", self.element_separator)?;
        let segment = sep("segment_terminator", self.segment_terminator)?;
        let component = sep("component_separator", self.component_separator)?;
        if matches!(self.element_separator, '\r' | '\n' | '\t')
            || matches!(self.component_separator, '\r' | '\n' | '\t')
        {
            return Err(profile_err(
                "element_separator",
                "line breaks and tabs may only be segment terminators",
            ));
        }
        let repetition = (isa12 >= "00402").then_some(b'^');
        let all = [Some(element), Some(segment), Some(component), repetition];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                if all[i].is_some() && all[i] == all[j] {
                    return Err(profile_err(
                        "element_separator",
                        "element separator, segment terminator, component separator (and '^' repetition separator from 004020 on) must all differ",
                    ));
                }
            }
        }
        check_code("sender_qualifier", &self.sender_qualifier, 2, 2)?;
        check_code("receiver_qualifier", &self.receiver_qualifier, 2, 2)?;
        let seps = Separators {
            element,
            component,
            repetition,
            segment,
        };
        for (field, v) in [
            ("sender_id", &self.sender_id),
            ("receiver_id", &self.receiver_id),
        ] {
            let t = v.trim();
            if t.is_empty()
                || t.len() > 15
                || !t.is_ascii()
                || t.bytes().any(|b| seps.contains(b) || b.is_ascii_control())
            {
                return Err(profile_err(
                    field,
                    format!("{v:?} must be 1 to 15 ASCII characters without separators"),
                ));
            }
        }
        if !matches!(self.usage, 'P' | 'T') {
            return Err(profile_err(
                "usage",
                format!("{:?} must be \"P\" or \"T\"", self.usage),
            ));
        }
        Ok(seps)
    }
}

/// Versions an interchange can be written in: (GS08, ISA12). The 846
/// mappings use 004010 or 005010; a 997 echoes its partner's release when
/// it is one of these (see [`ack_version`]).
pub const VERSIONS: [(&str, &str); 11] = [
    ("003040", "00304"),
    ("003050", "00305"),
    ("003060", "00306"),
    ("003070", "00307"),
    ("004010", "00401"),
    ("004020", "00402"),
    ("004030", "00403"),
    ("004040", "00404"),
    ("004050", "00405"),
    ("004060", "00406"),
    ("005010", "00501"),
];

/// (ISA12, GS08) for a profile version.
fn isa_version(v: &str) -> Result<(&'static str, &'static str), X12Error> {
    VERSIONS
        .iter()
        .find(|(gs08, _)| *gs08 == v)
        .map(|(gs08, isa12)| (*isa12, *gs08))
        .ok_or_else(|| {
            profile_err(
                "version",
                format!(
                    "{v:?} must be \"004010\" or \"005010\" (a 997 may also use {})",
                    {
                        let all: Vec<&str> = VERSIONS.iter().map(|(g, _)| *g).collect();
                        all.join(", ")
                    }
                ),
            )
        })
}

/// The version to answer a group of version `gs08` (e.g. "003040",
/// "004010VICS", "005010X222A1") in: its release when we can write it,
/// else 004010.
pub fn ack_version(gs08: &str) -> &'static str {
    let release = gs08.get(..6).unwrap_or("");
    VERSIONS
        .iter()
        .find(|(g, _)| *g == release)
        .map(|(g, _)| *g)
        .unwrap_or("004010")
}

/// Byte-counting segment writer with the separators of one interchange.
pub(super) struct SegWriter<W: Write> {
    w: W,
    seps: Separators,
    line_break: bool,
    pub bytes: u64,
    /// Segments written since the last ST (ST included).
    pub set_segments: u64,
    line: Vec<u8>,
    /// The bytes no value may hold: the delimiters and control characters
    /// (one lookup a byte).
    refused: [bool; 256],
}

impl<W: Write> SegWriter<W> {
    pub fn new(w: W, seps: Separators, line_break: bool) -> Self {
        let mut refused = [false; 256];
        for (b, r) in refused.iter_mut().enumerate() {
            let b = b as u8;
            *r = seps.contains(b) || b.is_ascii_control();
        }
        SegWriter {
            w,
            seps,
            line_break,
            bytes: 0,
            set_segments: 0,
            line: Vec::with_capacity(256),
            refused,
        }
    }

    fn end_segment(&mut self) -> Result<(), X12Error> {
        self.line.push(self.seps.segment);
        if self.line_break && self.seps.segment != b'\n' {
            self.line.push(b'\n');
        }
        self.w.write_all(&self.line)?;
        self.bytes += self.line.len() as u64;
        self.set_segments += 1;
        self.line.clear();
        Ok(())
    }

    /// Write one segment. Trailing empty elements are dropped (X12 forbids
    /// them); a value holding a delimiter or control character is refused.
    pub fn segment(&mut self, id: &str, elements: &[&str]) -> Result<(), X12Error> {
        let used = elements
            .iter()
            .rposition(|e| !e.is_empty())
            .map_or(0, |i| i + 1);
        self.line.clear();
        self.line.extend_from_slice(id.as_bytes());
        for (i, e) in elements[..used].iter().enumerate() {
            if let Some(bad) = e.bytes().find(|&b| self.refused[usize::from(b)]) {
                return Err(X12Error::InvalidValue {
                    field: format!("{id}{:02}", i + 1),
                    value: (*e).to_owned(),
                    reason: format!(
                        "contains the delimiter or control character {:?}",
                        bad as char
                    ),
                });
            }
            self.line.push(self.seps.element);
            self.line.extend_from_slice(e.as_bytes());
        }
        self.end_segment()
    }

    /// Write a raw, already-checked segment body (the fixed-width ISA).
    fn raw_segment(&mut self, body: &[u8]) -> Result<(), X12Error> {
        self.line.clear();
        self.line.extend_from_slice(body);
        self.end_segment()
    }

    pub fn flush(&mut self) -> Result<(), X12Error> {
        self.w.flush()?;
        Ok(())
    }
}

/// ISA + GS of an outbound interchange with one group. `app_ids`: GS02 and
/// GS03 when they differ from the ISA ids (a 997 answers the partner's GS).
pub(super) fn begin_interchange<W: Write>(
    w: W,
    p: &EnvelopeProfile,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    functional_id: &str,
    app_ids: Option<(&str, &str)>,
) -> Result<SegWriter<W>, X12Error> {
    let seps = p.validate()?;
    let (isa12, gs08) = isa_version(&p.version)?;
    for (field, n) in [
        ("interchange control number", ctl.interchange),
        ("group control number", ctl.group),
    ] {
        if n == 0 || n > 999_999_999 {
            return Err(X12Error::InvalidValue {
                field: field.into(),
                value: n.to_string(),
                reason: "must be 1 to 999999999".into(),
            });
        }
    }
    let e = p.element_separator;
    let isa11 = if isa12 >= "00402" { '^' } else { 'U' };
    let isa = format!(
        "ISA{e}00{e}{:10}{e}00{e}{:10}{e}{}{e}{:<15}{e}{}{e}{:<15}{e}{}{e}{}{e}{isa11}{e}{isa12}{e}{:09}{e}0{e}{}{e}{}",
        "",
        "",
        p.sender_qualifier,
        p.sender_id.trim(),
        p.receiver_qualifier,
        p.receiver_id.trim(),
        now.format("%y%m%d"),
        now.format("%H%M"),
        ctl.interchange,
        p.usage,
        p.component_separator,
    );
    debug_assert_eq!(isa.len(), 105);
    let mut sw = SegWriter::new(w, seps, p.line_break);
    sw.raw_segment(isa.as_bytes())?;
    let date = now.format("%Y%m%d").to_string();
    let time = now.format("%H%M").to_string();
    let group = ctl.group.to_string();
    // GS02/GS03 are 2 to 15 characters; anything else falls back to the ISA ids.
    let fits = |v: &str| (2..=15).contains(&v.trim().len());
    let (gs02, gs03) = match app_ids {
        Some((s, r)) if fits(s) && fits(r) => (s.trim(), r.trim()),
        _ => (p.sender_id.trim(), p.receiver_id.trim()),
    };
    sw.segment(
        "GS",
        &[functional_id, gs02, gs03, &date, &time, &group, "X", gs08],
    )?;
    Ok(sw)
}

/// GE + IEA.
pub(super) fn end_interchange<W: Write>(
    sw: &mut SegWriter<W>,
    ctl: ControlNumbers,
    sets: u32,
) -> Result<(), X12Error> {
    sw.segment("GE", &[&sets.to_string(), &ctl.group.to_string()])?;
    sw.segment("IEA", &["1", &format!("{:09}", ctl.interchange)])?;
    sw.flush()
}

pub(super) fn item_err(field: String, value: &str, reason: &str) -> X12Error {
    X12Error::InvalidValue {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A quantity as QTY02/SDQ text: at most 15 digits.
/// Written into `buf`, so that a QTY costs no allocation.
pub(super) fn checked_qty(buf: &mut itoa::Buffer, item: u64, v: i64) -> Result<&str, X12Error> {
    let s = buf.format(v);
    if v.unsigned_abs() > 999_999_999_999_999 {
        return Err(item_err(
            format!("item {item} quantity"),
            s,
            "has more than 15 digits",
        ));
    }
    Ok(s)
}

/// `CTP*<class of trade>*<price identifier>*<price>` when the profile asks.
fn write_ctp<W: Write>(
    sw: &mut SegWriter<W>,
    ex: &Extras846,
    item: &Item846Out,
    n: u64,
) -> Result<(), X12Error> {
    let Some((class, qualifier)) = &ex.price else {
        return Ok(());
    };
    let price = item.price.as_deref().unwrap_or("");
    let valid = {
        let (int, frac) = price.split_once('.').unwrap_or((price, ""));
        !int.is_empty()
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
            && int.len() + frac.len() <= 17
    };
    if !valid {
        return Err(item_err(
            format!("item {n} price"),
            price,
            "CTP03 needs a decimal price of at most 17 digits",
        ));
    }
    sw.segment("CTP", &[class, qualifier, price])
}

/// `SDQ*<unit>*<id qualifier>*<location>*<quantity>...`, ten pairs a segment.
fn write_sdq<W: Write>(
    sw: &mut SegWriter<W>,
    profile: &Profile846,
    pairs: &[(String, i64)],
    n: u64,
) -> Result<(), X12Error> {
    let Some(pw) = &profile.extras.per_warehouse else {
        return Ok(());
    };
    for chunk in pairs.chunks(10) {
        let mut els: Vec<String> = vec![profile.unit.clone(), pw.qualifier.clone()];
        for (id, q) in chunk {
            els.push(id.clone());
            els.push(checked_qty(&mut itoa::Buffer::new(), n, *q)?.to_owned());
        }
        let refs: Vec<&str> = els.iter().map(String::as_str).collect();
        sw.segment("SDQ", &refs)?;
    }
    Ok(())
}

/// Write an 846 inventory interchange (one group, sets of at most
/// [`MAX_LIN_PER_SET`] LIN loops). An empty `items` is refused before
/// anything is written (the 846 grammar requires a LIN loop). Items are streamed: only the current
/// set's counters are kept.
///
/// Each item's `ids` must follow `profile.item_ids` (same qualifiers, same
/// order) with non-empty values of at most 48 characters; quantities of more
/// than 15 digits are refused. Segment layout per set:
/// `ST*846*nnnn`, `BIA*purpose*type*<ISA13 as number>*CCYYMMDD*HHMM`,
/// `LIN*<n>*Q*V...` + `QTY*<qualifier>*<qty>*<unit>` per item, `CTT*<LINs>`, `SE`.
/// The optional segments of [`Extras846`] go where the 846 grammar puts
/// them: header DTM, REF, N1 after the BIA; in the LIN loop PID, CTP, REF,
/// SDQ before the QTYs and N1 after them.
pub fn write_846<W: Write>(
    w: W,
    profile: &Profile846,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    items: impl Iterator<Item = Item846Out>,
) -> Result<Written846, X12Error> {
    write_846_sets(w, profile, ctl, now, items, MAX_LIN_PER_SET)
}

pub(super) fn write_846_sets<W: Write>(
    w: W,
    profile: &Profile846,
    ctl: ControlNumbers,
    now: NaiveDateTime,
    items: impl Iterator<Item = Item846Out>,
    max_per_set: usize,
) -> Result<Written846, X12Error> {
    let v = &profile.envelope.version;
    if v != "004010" && v != "005010" {
        return Err(profile_err(
            "version",
            format!("{v:?} must be \"004010\" or \"005010\""),
        ));
    }
    check_code("bia_purpose", &profile.bia_purpose, 2, 2)?;
    check_code("bia_report_type", &profile.bia_report_type, 2, 2)?;
    check_code("quantity_qualifier", &profile.quantity_qualifier, 2, 2)?;
    check_code("unit", &profile.unit, 2, 2)?;
    if profile.item_ids.is_empty() || profile.item_ids.len() > 15 {
        return Err(profile_err(
            "item_ids",
            "needs 1 to 15 [qualifier, field] pairs",
        ));
    }
    for (q, _) in &profile.item_ids {
        check_code("item_ids", q, 2, 2)?;
    }
    let ex = &profile.extras;
    if let Some(r) = &ex.bia_reference
        && (r.is_empty() || r.len() > 30)
    {
        return Err(profile_err(
            "bia_reference",
            format!("{r:?} must be 1 to 30 characters"),
        ));
    }
    if let Some(q) = &ex.as_of_dtm {
        check_code("as_of_dtm", q, 3, 3)?;
    }
    if let Some([n101, n102, n103, n104]) = &ex.ship_from {
        check_code("ship_from", n101, 2, 3)?;
        if n102.len() > 60 || (!n103.is_empty() && n103.len() > 2) || n104.len() > 80 {
            return Err(profile_err(
                "ship_from",
                "[N101, name (at most 60), id qualifier (2), id (at most 80)]",
            ));
        }
    }
    for q in &ex.extra_quantity_qualifiers {
        check_code("extra_quantity_qualifiers", q, 2, 2)?;
    }
    for (q, _) in &ex.extra_quantities {
        check_code("extra_quantities", q, 2, 2)?;
    }
    if let Some((class, q)) = &ex.price {
        if !class.is_empty() {
            check_code("price_class_of_trade", class, 2, 2)?;
        }
        check_code("price_qualifier", q, 3, 3)?;
    }
    for [q, id, _] in ex.header_refs.iter().chain(&ex.item_refs) {
        check_code("header_refs", q, 2, 3)?;
        if id.is_empty() || id.len() > 50 {
            return Err(profile_err(
                "header_refs",
                format!("REF02 {id:?} must be 1 to 50 characters"),
            ));
        }
    }
    if let Some(pw) = &ex.per_warehouse {
        check_code("location_qualifier", &pw.qualifier, 1, 2)?;
        check_code("location_entity", &pw.entity, 2, 3)?;
    }
    profile.envelope.validate()?;
    let mut items = items.peekable();
    if items.peek().is_none() {
        return Err(item_err(
            "items".into(),
            "",
            "an 846 needs at least one LIN item",
        ));
    }
    let mut sw = begin_interchange(w, &profile.envelope, ctl, now, "IB", None)?;
    let date = now.format("%Y%m%d").to_string();
    let time = now.format("%H%M").to_string();
    let reference = profile
        .extras
        .bia_reference
        .clone()
        .unwrap_or_else(|| ctl.interchange.to_string());
    let max_per_set = max_per_set.max(1);

    let mut sets: u32 = 0;
    let mut total: u64 = 0;
    while items.peek().is_some() {
        sets += 1;
        let st02 = format!("{sets:04}");
        sw.set_segments = 0;
        sw.segment("ST", &["846", &st02])?;
        sw.segment(
            "BIA",
            &[
                &profile.bia_purpose,
                &profile.bia_report_type,
                &reference,
                &date,
                &time,
            ],
        )?;
        let ex = &profile.extras;
        if let Some(q) = &ex.as_of_dtm {
            sw.segment("DTM", &[q, &date, &time])?;
        }
        for [q, id, d] in &ex.header_refs {
            sw.segment("REF", &[q, id, d])?;
        }
        if let Some([n101, n102, n103, n104]) = &ex.ship_from {
            sw.segment("N1", &[n101, n102, n103, n104])?;
        }
        let mut lins: usize = 0;
        let mut hash: i128 = 0;
        while lins < max_per_set {
            let Some(item) = items.next() else { break };
            lins += 1;
            total += 1;
            if item.ids.len() != profile.item_ids.len() {
                return Err(item_err(
                    format!("item {total} ids"),
                    &format!("{:?}", item.ids),
                    "must have one value per item_ids pair",
                ));
            }
            // LIN01 and at most 15 pairs (checked above): on the stack.
            let mut els: [&str; 31] = [""; 31];
            let mut seq_buf = itoa::Buffer::new();
            els[0] = seq_buf.format(lins);
            let mut k = 1;
            for ((q, v), (pq, _)) in item.ids.iter().zip(&profile.item_ids) {
                if q != pq {
                    return Err(item_err(
                        format!("item {total} qualifier"),
                        q,
                        &format!("expected {pq} (item_ids order)"),
                    ));
                }
                if v.is_empty() || (v.len() > 48 && v.chars().count() > 48) {
                    return Err(item_err(
                        format!("item {total} {q}"),
                        v,
                        "must be 1 to 48 characters",
                    ));
                }
                els[k] = q;
                els[k + 1] = v;
                k += 2;
            }
            sw.segment("LIN", &els[..k])?;
            let mut qty_buf = itoa::Buffer::new();
            let qty = checked_qty(&mut qty_buf, total, item.quantity)?;
            if ex.pid_description
                && let Some(d) = item.description.as_deref().map(str::trim)
                && !d.is_empty()
            {
                // PID05 is at most 80 characters.
                let d: String = d.chars().take(80).collect();
                sw.segment("PID", &["F", "", "", "", &d])?;
            }
            write_ctp(&mut sw, ex, &item, total)?;
            for [q, id, d] in &ex.item_refs {
                sw.segment("REF", &[q, id, d])?;
            }
            write_sdq(&mut sw, profile, &item.sdq, total)?;
            sw.segment("QTY", &[&profile.quantity_qualifier, qty, &profile.unit])?;
            hash += i128::from(item.quantity);
            for q in &ex.extra_quantity_qualifiers {
                sw.segment("QTY", &[q, qty, &profile.unit])?;
                hash += i128::from(item.quantity);
            }
            if item.measures.len() != ex.extra_quantities.len() {
                return Err(item_err(
                    format!("item {total} measures"),
                    &format!("{:?}", item.measures),
                    "must have one value per extra_quantities entry",
                ));
            }
            let mut measure_buf = itoa::Buffer::new();
            for ((q, _), v) in ex.extra_quantities.iter().zip(&item.measures) {
                let v = checked_qty(&mut measure_buf, total, *v)?;
                sw.segment("QTY", &[q, v, &profile.unit])?;
            }
            hash += item.measures.iter().map(|v| i128::from(*v)).sum::<i128>();
            if let (Some(id), Some(pw)) = (&item.location, &ex.per_warehouse) {
                sw.segment("N1", &[&pw.entity, "", &pw.qualifier, id])?;
            }
        }
        if ex.hash_total {
            sw.segment("CTT", &[&lins.to_string(), &hash.to_string()])?;
        } else {
            sw.segment("CTT", &[&lins.to_string()])?;
        }
        let count = (sw.set_segments + 1).to_string();
        sw.segment("SE", &[&count, &st02])?;
    }
    end_interchange(&mut sw, ctl, sets)?;
    Ok(Written846 {
        sets,
        items: total,
        bytes: sw.bytes,
    })
}
