//! Inbound interpreters: 846 inventory and 850 purchase orders.
//!
//! Both stream: items are handed to the caller's callback as each loop
//! closes, so a file of any size is read in bounded memory.
//!
//! Error policy: a defect in the file's structure (envelope, a segment with
//! too many elements, a bad date, wrong transaction set type) ends the read
//! with `Err`. A defect in one item (LIN or PO1 without any SKU qualifier)
//! is *not* an `Err`: the item is handed over with `error: Some(reason)` and
//! reading goes on, so the caller can name every bad line in its quarantine
//! report. A LIN loop without the quantity QTY (a price-only or catalog
//! line, common in vendor feeds) is handed over with `left_out: Some("no
//! quantity")`: the caller leaves it out and counts it.
//! Quantities are handed over raw (the caller applies its whole-number rule).
//!
//! Groups are read by their functional id (GS01): an 846 reader reads the
//! IB groups (and any other group's sets must be 846s), an 850 reader the
//! PO groups; FA groups (997s) are skipped by both, so one interchange may
//! carry an 846 group and a 997 group. Several interchanges in one input are
//! read one after the other.

use std::io::BufRead;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::envelope::{Envelope, Event};
use super::error::X12Error;
use super::orders::Address;
use super::reader::Segment;

/// One LIN loop of an 846.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item846In {
    /// Value of the LIN pair whose qualifier is the requested SKU qualifier.
    pub sku: Option<String>,
    /// All LIN id pairs (qualifier, value) from LIN02/LIN03 on.
    pub ids: Vec<(String, String)>,
    /// QTY02 of the first QTY whose QTY01 is the requested qualifier, raw.
    pub quantity: Option<String>,
    /// First component of QTY03 (unit of measure), "" when absent.
    pub unit: String,
    /// Position of that QTY, or of the LIN when no such QTY.
    pub position: usize,
    pub lin_position: usize,
    /// Header DTM (DTM02 + DTM03) whose DTM01 is an as-of qualifier, else
    /// BIA04 + BIA05; `None` when the set has neither.
    pub as_of: Option<NaiveDateTime>,
    /// The as-of was a date without a time (start of that day).
    pub as_of_date_only: bool,
    /// Why the item is left out without rejecting the file (`"no quantity"`).
    pub left_out: Option<&'static str>,
    /// Where the quantity is: the SDQ location id of this quantity, else
    /// the id (N104) of the set's header N1 whose N101 is a location code
    /// (WH warehouse, SF ship from, SN store, ST ship to), else `None`.
    pub location: Option<String>,
    /// ST02 of the set holding the item.
    pub set_control: String,
    /// CTP03 of the loop's first CTP whose CTP02 is the requested price
    /// qualifier, raw.
    pub price: Option<String>,
    /// Why this item cannot be used; `None` for a good item.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary846 {
    pub sets: u64,
    pub items: u64,
    pub bad_items: u64,
}

/// One PO1 line of an 850.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine850 {
    /// BEG03.
    pub order_id: String,
    /// PO101, or the 1-based ordinal of the PO1 in its set when PO101 is empty.
    pub line: String,
    /// PO102, raw.
    pub quantity: String,
    /// PO103.
    pub unit: String,
    pub sku: Option<String>,
    /// All PO1 id pairs (qualifier, value) from PO106/PO107 on.
    pub ids: Vec<(String, String)>,
    /// BEG05 (CCYYMMDD) at 00:00, when present: a date alone (rule 16).
    pub ordered_at: Option<NaiveDateTime>,
    /// BEG03 (the purchase order number).
    pub po_number: String,
    /// Header TD5: TD505 routing, else TD503 SCAC, else TD504 transport
    /// method; "" without a TD5.
    pub ship_method: String,
    /// The header N1 loop whose N101 is "ST": N102 name, N201 company, N3
    /// address lines, N4 city/state/postal code/country, PER TE phone and EM
    /// email. Empty fields when absent.
    pub ship_to: Address,
    pub position: usize,
    pub set_control: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary850 {
    pub sets: u64,
    pub lines: u64,
    pub bad_lines: u64,
}

/// Maximum element counts of segments we interpret or commonly meet in
/// 846/850 (4010 and 5010 agree on these). More elements than this means a
/// lost segment terminator glued two segments together.
fn max_elements(id: &str) -> Option<usize> {
    Some(match id {
        "BIA" => 6,
        "DTM" => 6,
        "LIN" => 31,
        "QTY" => 4,
        "REF" => 4,
        "UIT" => 3,
        "CTT" => 7,
        "N1" => 6,
        "CUR" => 21,
        "CTP" => 11,
        "BEG" => 12,
        "PO1" => 25,
        "PID" => 9,
        "SDQ" => 23,
        "W06" => 12,
        "W12" => 22,
        "W27" => 10,
        "G62" => 5,
        "BSN" => 7,
        "HL" => 4,
        "SN1" => 8,
        "PRF" => 7,
        "MAN" => 6,
        "TD5" => 15,
        "LX" => 1,
        _ => return None,
    })
}

pub(super) fn check_shape(seg: &Segment) -> Result<(), X12Error> {
    if let Some(max) = max_elements(seg.id())
        && seg.element_count() > max
    {
        return Err(X12Error::TooManyElements {
            id: seg.id().to_owned(),
            position: seg.position,
            count: seg.element_count(),
            max,
        });
    }
    let (dates, times) = date_time_elements(seg.id());
    for &n in dates {
        let v = seg.element(n);
        if !v.is_empty() && parse_date(v).is_none() {
            return Err(bad(seg, n, "is not a CCYYMMDD date"));
        }
    }
    for &n in times {
        let v = seg.element(n);
        if !v.is_empty() && parse_time(v).is_none() {
            return Err(bad(seg, n, "is not an HHMM[SS[D..]] time"));
        }
    }
    Ok(())
}

/// The elements of type DT and TM (004010 and 005010 agree) in segments we
/// meet: each must be a real date or time whatever the segment's qualifier
/// says, or the set is rejected (issue 15: `DTM*405*20241399` was accepted).
fn date_time_elements(id: &str) -> (&'static [usize], &'static [usize]) {
    match id {
        "BIA" => (&[4], &[5]),
        "DTM" => (&[2], &[3]),
        "BEG" => (&[5], &[]),
        "G62" => (&[2], &[4]),
        "BSN" => (&[3], &[4]),
        "W06" => (&[3], &[]),
        _ => (&[], &[]),
    }
}

pub(super) fn bad(seg: &Segment, n: usize, reason: &str) -> X12Error {
    X12Error::BadElement {
        id: seg.id().to_owned(),
        position: seg.position,
        element: seg.element_name(n),
        value: seg.element(n).to_owned(),
        reason: reason.to_owned(),
    }
}

/// CCYYMMDD.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

/// HHMM, HHMMSS or HHMMSSD..D (decimal seconds, X12 TM type).
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    if !(4..=8).contains(&s.len()) || s.len() == 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<u32>().ok());
    let h = num(0..2)?;
    let m = num(2..4)?;
    let sec = if s.len() >= 6 { num(4..6)? } else { 0 };
    let nanos = if s.len() > 6 {
        let frac = s.get(6..)?;
        let scale = 10u32.pow(9 - frac.len() as u32);
        frac.parse::<u32>().ok()? * scale
    } else {
        0
    };
    NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
}

/// Date element `d` plus optional time element `t` of `seg`.
fn date_time(seg: &Segment, d: usize, t: usize) -> Result<Option<NaiveDateTime>, X12Error> {
    Ok(dated(seg, d, t)?.map(|(t, _)| t))
}

/// Date element `d` plus optional time element `t`, and whether the time
/// was absent (a date alone).
pub(super) fn dated(
    seg: &Segment,
    d: usize,
    t: usize,
) -> Result<Option<(NaiveDateTime, bool)>, X12Error> {
    let ds = seg.element(d);
    if ds.is_empty() {
        return Ok(None);
    }
    let date = parse_date(ds).ok_or_else(|| bad(seg, d, "is not a CCYYMMDD date"))?;
    let ts = if t == 0 { "" } else { seg.element(t) };
    let time = if ts.is_empty() {
        NaiveTime::MIN
    } else {
        parse_time(ts).ok_or_else(|| bad(seg, t, "is not an HHMM[SS[D..]] time"))?
    };
    Ok(Some((date.and_time(time), ts.is_empty())))
}

/// DTM01 codes that date an 846's count unless the caller says otherwise:
/// 007 effective, 009 processed, 097 transaction creation, 194 period end.
pub const DEFAULT_AS_OF_QUALIFIERS: [&str; 4] = ["007", "009", "097", "194"];

/// What [`read_846_with`] looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read846 {
    /// LIN qualifiers that may hold the SKU, in order of preference.
    pub sku_qualifiers: Vec<String>,
    /// QTY01 of the quantity.
    pub quantity_qualifier: String,
    /// Header DTM01 codes that may set the as-of.
    pub as_of_qualifiers: Vec<String>,
    /// CTP02 of the CTP whose CTP03 is the item's price (`None`: CTP passed over).
    pub price_qualifier: Option<String>,
    /// SDQ pairs split the chosen QTY into one item per location (the
    /// mapping has `[locations]`). Otherwise SDQs are per-location detail
    /// passed over, and the chosen QTY counts whole.
    pub split_by_sdq: bool,
}

impl Read846 {
    pub fn new(sku_qualifier: &str, quantity_qualifier: &str) -> Read846 {
        Read846 {
            sku_qualifiers: vec![sku_qualifier.to_owned()],
            quantity_qualifier: quantity_qualifier.to_owned(),
            as_of_qualifiers: DEFAULT_AS_OF_QUALIFIERS
                .iter()
                .map(|q| q.to_string())
                .collect(),
            price_qualifier: None,
            split_by_sdq: false,
        }
    }
}

/// The value of the first qualifier of `wanted` present (non-empty) in `ids`.
pub(super) fn pick<'a>(
    ids: &'a [(String, String)],
    wanted: &[String],
) -> Option<&'a (String, String)> {
    wanted
        .iter()
        .find_map(|w| ids.iter().find(|(q, v)| q == w && !v.trim().is_empty()))
}

pub(super) fn qualifier_list(q: &[String]) -> String {
    q.join("/")
}

/// Id pairs (qualifier, value) starting at element `first`.
pub(super) fn id_pairs(seg: &Segment, first: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut n = first;
    while n <= seg.element_count() {
        let q = seg.element(n);
        let v = seg.element(n + 1);
        if !q.is_empty() || !v.is_empty() {
            out.push((q.to_owned(), v.to_owned()));
        }
        n += 2;
    }
    out
}

struct LinLoop {
    lin_position: usize,
    ids: Vec<(String, String)>,
    qty: Option<(String, String, usize)>,
    /// Any QTY read in this loop (an SDQ before the first one, at its
    /// place in the 846 grammar, splits the chosen QTY).
    qty_seen: bool,
    /// SDQ (location id, quantity, position) pairs following the chosen QTY.
    sdq: Vec<(String, String, usize, String)>,
    /// N104 of the loop's own N1 naming a location (after the QTYs).
    location: Option<String>,
    price: Option<String>,
}

impl LinLoop {
    /// SDQ segments already taken (they follow the QTY one after the other).
    fn sdq_segments(&self) -> usize {
        let mut seen: Vec<usize> = self.sdq.iter().map(|(_, _, p, _)| *p).collect();
        seen.dedup();
        seen.len()
    }
}

/// N101 codes of a header N1 that names where the stock is.
const LOCATION_ENTITIES: [&str; 4] = ["WH", "SF", "SN", "ST"];

/// Set-level state while reading an 846.
#[derive(Default)]
struct Set846 {
    control: String,
    bia_as_of: Option<(NaiveDateTime, bool)>,
    dtm_as_of: Option<(NaiveDateTime, bool)>,
    seen_lin: bool,
    lins: u64,
    open: Option<LinLoop>,
    /// N104 of the first header N1 naming a location.
    location: Option<String>,
}

/// Read an 846 inventory interchange, handing each LIN loop to `on_item`.
///
/// `sku_qualifier` picks the LIN pair holding the SKU (e.g. "VN");
/// `quantity_qualifier` picks the QTY (e.g. "33"); the default as-of
/// qualifiers apply. See [`read_846_with`].
pub fn read_846<R, E, F>(
    input: R,
    sku_qualifier: &str,
    quantity_qualifier: &str,
    on_item: F,
) -> Result<Summary846, E>
where
    R: BufRead,
    E: From<X12Error>,
    F: FnMut(Item846In) -> Result<(), E>,
{
    read_846_with(
        input,
        &Read846::new(sku_qualifier, quantity_qualifier),
        on_item,
    )
}

/// Read 846 inventory (every IB group of every interchange in `input`),
/// handing each LIN loop to `on_item`. See the module docs for which
/// problems are `Err` and which are item errors. A CTT, when present, must
/// count the LIN loops of its set.
pub fn read_846_with<R, E, F>(input: R, opts: &Read846, mut on_item: F) -> Result<Summary846, E>
where
    R: BufRead,
    E: From<X12Error>,
    F: FnMut(Item846In) -> Result<(), E>,
{
    let mut env = Envelope::new(input);
    let mut summary = Summary846::default();
    let mut set: Option<Set846> = None;
    let mut group_fid = String::new();
    let wanted = &opts.sku_qualifiers;
    let quantity_qualifier = opts.quantity_qualifier.as_str();

    let mut comp = ':';
    let finish_loop =
        |set: &mut Set846, summary: &mut Summary846, on_item: &mut F| -> Result<(), E> {
            let Some(lp) = set.open.take() else {
                return Ok(());
            };
            let sku = pick(&lp.ids, wanted).map(|(_, v)| v.clone());
            let mut reasons = Vec::new();
            if sku.is_none() {
                let empty = lp.ids.iter().any(|(q, _)| wanted.contains(q));
                reasons.push(format!(
                    "{} LIN qualifier {} in LIN at segment {}",
                    if empty { "empty value for" } else { "no" },
                    qualifier_list(wanted),
                    lp.lin_position
                ));
            }
            let (quantity, unit, position) = match lp.qty {
                Some((q, u, p)) => (Some(q), u, p),
                None => (None, String::new(), lp.lin_position),
            };
            let left_out = (quantity.is_none() && reasons.is_empty()).then_some("no quantity");
            let error = (!reasons.is_empty()).then(|| reasons.join("; "));
            summary.items += 1;
            if error.is_some() {
                summary.bad_items += 1;
            }
            let as_of = set.dtm_as_of.or(set.bia_as_of);
            let item = Item846In {
                sku,
                ids: lp.ids,
                quantity,
                unit,
                position,
                lin_position: lp.lin_position,
                as_of: as_of.map(|(t, _)| t),
                as_of_date_only: as_of.is_some_and(|(_, d)| d),
                left_out,
                location: lp.location.or_else(|| set.location.clone()),
                set_control: set.control.clone(),
                price: lp.price,
                error,
            };
            if lp.sdq.is_empty() || item.error.is_some() || item.quantity.is_none() {
                return on_item(item);
            }
            // Quantities per location: one item each.
            for (loc, q, pos, unit) in lp.sdq {
                let mut it = item.clone();
                it.quantity = Some(q);
                if !unit.is_empty() {
                    it.unit = unit;
                }
                it.location = Some(loc);
                it.position = pos;
                on_item(it)?;
            }
            Ok(())
        };

    while let Some(ev) = env.next_event()? {
        match ev {
            Event::InterchangeStart(isa) => comp = isa.separators.component as char,
            Event::GroupStart(g) => group_fid = g.functional_id,
            Event::SetStart(h) => {
                if group_fid == "FA" {
                    // Acknowledgments travel beside inventory; read elsewhere.
                    set = None;
                    continue;
                }
                if h.id != "846" {
                    return Err(X12Error::Unexpected {
                        id: "ST".into(),
                        position: h.position,
                        reason: format!(
                            "transaction set {} (group {}) where an 846 was expected",
                            h.id, group_fid
                        ),
                    }
                    .into());
                }
                summary.sets += 1;
                set = Some(Set846 {
                    control: h.control_number,
                    ..Default::default()
                });
            }
            Event::Segment(seg) => {
                let Some(st) = set.as_mut() else { continue };
                check_shape(&seg)?;
                match seg.id() {
                    "BIA" => st.bia_as_of = dated(&seg, 4, 5)?,
                    "DTM"
                        if !st.seen_lin
                        // Header-level DTM with an as-of qualifier: the
                        // report's as-of. The first one wins.
                        && st.dtm_as_of.is_none()
                        && opts.as_of_qualifiers.iter().any(|q| q == seg.element(1)) =>
                    {
                        st.dtm_as_of = dated(&seg, 2, 3)?;
                    }
                    "N1" if !st.seen_lin
                        && st.location.is_none()
                        && LOCATION_ENTITIES.contains(&seg.element(1))
                        && !seg.element(4).trim().is_empty() =>
                    {
                        st.location = Some(seg.element(4).trim().to_owned());
                    }
                    "N1" if LOCATION_ENTITIES.contains(&seg.element(1))
                        && !seg.element(4).trim().is_empty() =>
                    {
                        // An N1 in the LIN loop names that loop's location.
                        if let Some(lp) = st.open.as_mut()
                            && lp.location.is_none()
                        {
                            lp.location = Some(seg.element(4).trim().to_owned());
                        }
                    }
                    "CTP" => {
                        if let Some(lp) = st.open.as_mut()
                            && lp.price.is_none()
                            && opts.price_qualifier.as_deref() == Some(seg.element(2))
                        {
                            lp.price = Some(seg.element(3).to_owned());
                        }
                    }
                    "SDQ" if opts.split_by_sdq => {
                        // SDQ01 unit, SDQ02 id qualifier, then up to ten
                        // (location, quantity) pairs, for the QTY just read.
                        // for the QTY just read, or (the grammar's place)
                        // before any QTY of the loop, for the chosen one.
                        if let Some(lp) = st.open.as_mut()
                            && (!lp.qty_seen
                                || lp.qty.as_ref().is_some_and(|(_, _, p)| {
                                    *p + 1 + lp.sdq_segments() == seg.position
                                }))
                        {
                            let unit = seg.element(1).split(comp).next().unwrap_or("").to_owned();
                            let mut n = 3;
                            while n < seg.element_count() {
                                let (loc, q) = (seg.element(n).trim(), seg.element(n + 1).trim());
                                if !loc.is_empty() {
                                    lp.sdq.push((
                                        loc.to_owned(),
                                        q.to_owned(),
                                        seg.position,
                                        unit.clone(),
                                    ));
                                }
                                n += 2;
                            }
                        }
                    }
                    "LIN" => {
                        finish_loop(st, &mut summary, &mut on_item)?;
                        st.seen_lin = true;
                        st.lins += 1;
                        st.open = Some(LinLoop {
                            lin_position: seg.position,
                            ids: id_pairs(&seg, 2),
                            qty: None,
                            qty_seen: false,
                            sdq: Vec::new(),
                            location: None,
                            price: None,
                        });
                    }
                    "QTY" => {
                        let unit = seg.element(3).split(comp).next().unwrap_or("").to_owned();
                        if unit.len() > 2 {
                            return Err(bad(&seg, 3, "is not a 2-character unit of measure code (missing segment terminator?)").into());
                        }
                        if let Some(lp) = st.open.as_mut() {
                            if lp.qty.is_none() && seg.element(1) == quantity_qualifier {
                                lp.qty = Some((seg.element(2).to_owned(), unit, seg.position));
                            }
                            lp.qty_seen = true;
                        }
                    }
                    "CTT" => {
                        finish_loop(st, &mut summary, &mut on_item)?;
                        let declared = seg.element(1);
                        if declared.parse::<u64>().ok() != Some(st.lins) {
                            return Err(X12Error::CountMismatch {
                                id: seg.id().to_owned(),
                                position: seg.position,
                                element: "CTT01",
                                declared: declared.to_owned(),
                                what: "number of LIN loops in the set",
                                actual: st.lins,
                            }
                            .into());
                        }
                    }
                    _ => {}
                }
                env.recycle(seg);
            }
            Event::SetEnd { .. } => {
                if let Some(mut st) = set.take() {
                    finish_loop(&mut st, &mut summary, &mut on_item)?;
                }
            }
            _ => {}
        }
    }
    Ok(summary)
}

struct Set850 {
    control: String,
    /// BEG03 and BEG05 once the BEG is read.
    beg: Option<(String, Option<NaiveDateTime>)>,
    /// PO1 count, the line number when PO101 is empty.
    ordinal: u64,
    /// Header TD5 ship method, N1*ST loop, and whether the N1 loop being
    /// read is the ship-to one.
    ship_method: String,
    ship_to: Address,
    in_ship_to: bool,
}

impl Set850 {
    /// Header segments that describe the shipping: TD5 and the N1*ST loop
    /// (N1, N2, N3, N4, PER). Anything else is passed over.
    fn ship_segment(&mut self, seg: &Segment) {
        let el = |n: usize| seg.element(n).trim().to_owned();
        let a = &mut self.ship_to;
        match seg.id() {
            "TD5" if self.ship_method.is_empty() => {
                self.ship_method = [5, 3, 4]
                    .iter()
                    .map(|&n| el(n))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default();
            }
            "N1" => {
                self.in_ship_to = seg.element(1) == "ST" && *a == Address::default();
                if self.in_ship_to {
                    a.name = el(2);
                }
            }
            "N2" if self.in_ship_to && a.company.is_empty() => a.company = el(1),
            "N3" if self.in_ship_to => {
                if a.address1.is_empty() {
                    a.address1 = el(1);
                    a.address2 = el(2);
                } else if a.address2.is_empty() {
                    a.address2 = el(1);
                }
            }
            "N4" if self.in_ship_to && a.city.is_empty() => {
                a.city = el(1);
                a.state = el(2);
                a.postal_code = el(3);
                a.country = el(4);
            }
            "PER" if self.in_ship_to => {
                for n in [3, 5, 7] {
                    let v = el(n + 1);
                    match seg.element(n) {
                        "TE" if a.phone.is_empty() => a.phone = v,
                        "EM" if a.email.is_empty() => a.email = v,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// Read an 850 purchase-order interchange, handing each PO1 line to
/// `on_line`. `sku_qualifier` picks the PO1 id pair (PO106/PO107, ...)
/// holding the SKU. Same error policy as [`read_846`].
pub fn read_850<R, E, F>(input: R, sku_qualifier: &str, on_line: F) -> Result<Summary850, E>
where
    R: BufRead,
    E: From<X12Error>,
    F: FnMut(OrderLine850) -> Result<(), E>,
{
    read_850_with(input, &[sku_qualifier.to_owned()], on_line)
}

/// [`read_850`] with a list of SKU qualifiers: the first present in a PO1
/// (with a value) holds the SKU. FA groups are skipped.
pub fn read_850_with<R, E, F>(
    input: R,
    sku_qualifiers: &[String],
    mut on_line: F,
) -> Result<Summary850, E>
where
    R: BufRead,
    E: From<X12Error>,
    F: FnMut(OrderLine850) -> Result<(), E>,
{
    let mut env = Envelope::new(input);
    let mut summary = Summary850::default();
    let mut set: Option<Set850> = None;
    let mut group_fid = String::new();
    while let Some(ev) = env.next_event()? {
        match ev {
            Event::GroupStart(g) => group_fid = g.functional_id,
            Event::SetStart(_) if group_fid == "FA" => set = None,
            Event::SetStart(h) => {
                if h.id != "850" {
                    return Err(X12Error::Unexpected {
                        id: "ST".into(),
                        position: h.position,
                        reason: format!(
                            "transaction set {} (group {}) where an 850 was expected",
                            h.id, group_fid
                        ),
                    }
                    .into());
                }
                summary.sets += 1;
                set = Some(Set850 {
                    control: h.control_number,
                    beg: None,
                    ordinal: 0,
                    ship_method: String::new(),
                    ship_to: Address::default(),
                    in_ship_to: false,
                });
            }
            Event::Segment(seg) => {
                if set.is_none() {
                    continue;
                }
                check_shape(&seg)?;
                let Some(st) = set.as_mut() else {
                    continue;
                };
                if st.ordinal == 0 {
                    st.ship_segment(&seg);
                }
                let Set850 {
                    control,
                    beg,
                    ordinal,
                    ship_method,
                    ship_to,
                    ..
                } = st;
                match seg.id() {
                    "BEG" => {
                        let id = seg.element(3);
                        if id.trim().is_empty() {
                            return Err(bad(
                                &seg,
                                3,
                                "(purchase order number) is required but empty",
                            )
                            .into());
                        }
                        let at = date_time(&seg, 5, 0)?;
                        *beg = Some((id.to_owned(), at));
                    }
                    "PO1" => {
                        *ordinal += 1;
                        let Some((order_id, ordered_at)) = beg.clone() else {
                            return Err(X12Error::Unexpected {
                                id: seg.id().to_owned(),
                                position: seg.position,
                                reason: "PO1 before the BEG of its set".into(),
                            }
                            .into());
                        };
                        let ids = id_pairs(&seg, 6);
                        let sku = pick(&ids, sku_qualifiers).map(|(_, v)| v.clone());
                        let error = sku.is_none().then(|| {
                            format!(
                                "no PO1 qualifier {} in PO1 at segment {}",
                                qualifier_list(sku_qualifiers),
                                seg.position
                            )
                        });
                        let line = match seg.element(1) {
                            "" => ordinal.to_string(),
                            l => l.to_owned(),
                        };
                        summary.lines += 1;
                        if error.is_some() {
                            summary.bad_lines += 1;
                        }
                        on_line(OrderLine850 {
                            po_number: order_id.clone(),
                            ship_method: ship_method.clone(),
                            ship_to: ship_to.clone(),
                            order_id,
                            line,
                            quantity: seg.element(2).to_owned(),
                            unit: seg.element(3).to_owned(),
                            sku,
                            ids,
                            ordered_at,
                            position: seg.position,
                            set_control: control.clone(),
                            error,
                        })?;
                    }
                    _ => {}
                }
                env.recycle(seg);
            }
            Event::SetEnd { .. } => set = None,
            _ => {}
        }
    }
    Ok(summary)
}
