//! Inbound shipment confirmations: 945 warehouse shipping advice and 856
//! ship notices (contract §6), streamed like [`super::inbound::read_850_with`].
//!
//! One [`ShipLineIn`] per W12 (945) or SN1 (856), carrying the shipment,
//! order, package and tracking of the levels it sits in. Same error policy
//! as the 850: a structural defect (a W12/HL before the set's W06/BSN, a
//! set of the wrong type, a bad date, the envelope's counts) is `Err` naming
//! the segment and position; a defect of one line (no SKU qualifier, no
//! shipped quantity, no order) is handed over with `error: Some(reason)`.
//! Unknown segments are skipped; FA groups (997s) are skipped.
//!
//! Where values come from:
//! - 945: order W0602, PO W0606, shipment W0604; shipped at the header G62
//!   (qualifier 11 "shipped" first, else the first dated G62), else W0603;
//!   carrier W2702, service W2703 (routing); each LX is a pack: LX01 the
//!   line, MAN at LX level the package (non-tracking qualifier) or tracking;
//!   `N9*CN` at header, LX or W12 level the tracking, `N9*LI` in the W12
//!   loop the line (it wins over LX01). W12 ids: W1206 (as "UP"), then the
//!   pairs W1207/08, W1217/18, W1221/22.
//! - 856: shipment BSN02; order and PO PRF01; carrier TD503, service TD505;
//!   shipped at DTM*011 (of a level, else of the header), else BSN03+BSN04; package and tracking from MAN or
//!   `REF*CN` of any level above the item (innermost wins); line LIN01, ids
//!   the LIN pairs; shipped SN102, unit SN103, ordered SN105, status SN108.
//!   The HL tree is followed through HL02 (depth-first order, as senders
//!   write it), so S/O/P/I, S/O/I and S/O/T/P/I all read.

use std::io::BufRead;

use chrono::NaiveDateTime;

use super::envelope::{Envelope, Event};
use super::error::X12Error;
use super::inbound::{bad, check_shape, dated, id_pairs, pick, qualifier_list};
use super::reader::Segment;

/// One shipped line of a 945 (W12) or 856 (SN1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipLineIn {
    /// W0604 / BSN02.
    pub shipment_id: String,
    /// W0602 / PRF01.
    pub order_id: String,
    /// W0606 (945) / PRF01 (856).
    pub po_number: String,
    /// `N9*LI` in the W12 loop, else LX01 (945); LIN01 (856); "" when absent.
    pub line: String,
    /// The id of the first `sku_qualifiers` entry present in `ids`.
    pub sku: Option<String>,
    /// All item id pairs (qualifier, value).
    pub ids: Vec<(String, String)>,
    /// Raw W1203 / SN102.
    pub quantity: String,
    /// W1205 / SN103.
    pub unit: String,
    /// Raw W1202 / SN105, "" when absent.
    pub ordered: String,
    /// W1201 (945) / SN108 (856), "" when absent.
    pub status: String,
    /// MAN02 of a non-tracking MAN (GM, ...) at pack level.
    pub package: String,
    /// MAN02 of a tracking MAN (CP, BM, 2I), or `REF*CN` / `N9*CN`, at
    /// shipment, order or pack level (innermost wins).
    pub tracking: String,
    /// W2702 / TD503.
    pub carrier: String,
    /// W2703 / TD505.
    pub service: String,
    /// G62 (945, W0603 fallback) / DTM*011 or BSN03+BSN04 (856).
    pub shipped_at: Option<NaiveDateTime>,
    /// Segment position of the W12 / SN1.
    pub position: usize,
    /// ST02 of the set.
    pub set_control: String,
    /// Why this line cannot be used; `None` for a good line.
    pub error: Option<String>,
}

/// Counts of a shipment read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryShip {
    pub sets: u64,
    pub lines: u64,
    pub bad_lines: u64,
}

/// MAN01 codes whose MAN02 is a tracking number: CP carrier-assigned
/// package id, BM bill of lading, 2I tracking number.
const TRACKING_MAN: [&str; 3] = ["CP", "BM", "2I"];

/// (package, tracking) of one level.
#[derive(Debug, Clone, Default)]
struct Marks {
    package: String,
    tracking: String,
}

impl Marks {
    /// MAN: a tracking qualifier sets the tracking, another the package
    /// (the first of each wins).
    fn man(&mut self, seg: &Segment) {
        let v = seg.element(2).trim();
        if v.is_empty() {
            return;
        }
        let slot = if TRACKING_MAN.contains(&seg.element(1)) {
            &mut self.tracking
        } else {
            &mut self.package
        };
        if slot.is_empty() {
            *slot = v.to_owned();
        }
    }

    /// REF*CN / N9*CN: the tracking (the first wins).
    fn reference(&mut self, seg: &Segment) {
        let v = seg.element(2).trim();
        if seg.element(1) == "CN" && !v.is_empty() && self.tracking.is_empty() {
            self.tracking = v.to_owned();
        }
    }
}

/// The first non-empty of `levels` (innermost first).
fn innermost<'a>(levels: impl IntoIterator<Item = &'a str>) -> String {
    levels
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or("")
        .to_owned()
}

/// Reasons a line cannot be used, joined; `None` when good.
fn line_error(
    sku: &Option<String>,
    ids: &[(String, String)],
    wanted: &[String],
    seg_id: &str,
    position: usize,
    quantity: &str,
    order: &str,
) -> Option<String> {
    let mut reasons = Vec::new();
    if sku.is_none() {
        let empty = ids.iter().any(|(q, _)| wanted.contains(q));
        reasons.push(format!(
            "{} item qualifier {} for {seg_id} at segment {position}",
            if empty { "empty value for" } else { "no" },
            qualifier_list(wanted),
        ));
    }
    if quantity.trim().is_empty() {
        reasons.push(format!(
            "no shipped quantity in {seg_id} at segment {position}"
        ));
    }
    if order.trim().is_empty() {
        reasons.push(format!("no order id for {seg_id} at segment {position}"));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn wrong_set(h_id: &str, group: &str, position: usize, want: &str) -> X12Error {
    X12Error::Unexpected {
        id: "ST".into(),
        position,
        reason: format!("transaction set {h_id} (group {group}) where a {want} was expected"),
    }
}

fn before_header(seg: &Segment, header: &str) -> X12Error {
    X12Error::Unexpected {
        id: seg.id().to_owned(),
        position: seg.position,
        reason: format!("{} before the {header} of its set", seg.id()),
    }
}

// ------------------------------------------------------------------ 945

/// The W06 of a 945 set.
#[derive(Default)]
struct W06 {
    order_id: String,
    po_number: String,
    shipment_id: String,
    date: Option<NaiveDateTime>,
}

/// A W12 waiting for the end of its loop (N9s follow it).
struct PendingW12 {
    line: ShipLineIn,
    line_n9: String,
    marks: Marks,
}

#[derive(Default)]
struct Set945 {
    control: String,
    w06: Option<W06>,
    /// Header G62: (is qualifier 11, when).
    shipped: Option<(bool, NaiveDateTime)>,
    carrier: String,
    service: String,
    header: Marks,
    /// LX01 and the LX level's marks, once an LX is read.
    lx: Option<(String, Marks)>,
    pending: Option<PendingW12>,
}

impl Set945 {
    fn header_segment(&mut self, seg: &Segment) -> Result<(), X12Error> {
        match seg.id() {
            "W06" => {
                self.w06 = Some(W06 {
                    order_id: seg.element(2).trim().to_owned(),
                    po_number: seg.element(6).trim().to_owned(),
                    shipment_id: seg.element(4).trim().to_owned(),
                    date: dated(seg, 3, 0)?.map(|(t, _)| t),
                });
            }
            "G62" => {
                if let Some((t, _)) = dated(seg, 2, 4)? {
                    let is_shipped = seg.element(1) == "11";
                    if self.shipped.is_none_or(|(best, _)| is_shipped && !best) {
                        self.shipped = Some((is_shipped, t));
                    }
                }
            }
            "W27" => {
                if self.carrier.is_empty() {
                    self.carrier = seg.element(2).trim().to_owned();
                }
                if self.service.is_empty() {
                    self.service = seg.element(3).trim().to_owned();
                }
            }
            "N9" => self.header.reference(seg),
            _ => {}
        }
        Ok(())
    }

    fn start_w12(&mut self, seg: &Segment, wanted: &[String]) -> Result<PendingW12, X12Error> {
        let Some(w06) = &self.w06 else {
            return Err(before_header(seg, "W06"));
        };
        let mut ids = Vec::new();
        let upc = seg.element(6).trim();
        if !upc.is_empty() {
            ids.push(("UP".to_owned(), upc.to_owned()));
        }
        for first in [7, 17, 21] {
            let (q, v) = (seg.element(first), seg.element(first + 1));
            if !q.is_empty() || !v.is_empty() {
                ids.push((q.to_owned(), v.to_owned()));
            }
        }
        let sku = pick(&ids, wanted).map(|(_, v)| v.clone());
        let line = ShipLineIn {
            shipment_id: w06.shipment_id.clone(),
            order_id: w06.order_id.clone(),
            po_number: w06.po_number.clone(),
            line: self.lx.as_ref().map(|(l, _)| l.clone()).unwrap_or_default(),
            sku,
            ids,
            quantity: seg.element(3).trim().to_owned(),
            unit: seg.element(5).trim().to_owned(),
            ordered: seg.element(2).trim().to_owned(),
            status: seg.element(1).trim().to_owned(),
            position: seg.position,
            set_control: self.control.clone(),
            ..Default::default()
        };
        Ok(PendingW12 {
            line,
            line_n9: String::new(),
            marks: Marks::default(),
        })
    }

    /// The pending W12 with the set's header values, ready to hand over.
    fn finish(&mut self, wanted: &[String]) -> Option<ShipLineIn> {
        let p = self.pending.take()?;
        let mut l = p.line;
        let lx_marks = self.lx.as_ref().map(|(_, m)| m.clone()).unwrap_or_default();
        if !p.line_n9.is_empty() {
            l.line = p.line_n9;
        }
        l.package = innermost([p.marks.package.as_str(), lx_marks.package.as_str()]);
        l.tracking = innermost([
            p.marks.tracking.as_str(),
            lx_marks.tracking.as_str(),
            self.header.tracking.as_str(),
        ]);
        l.carrier = self.carrier.clone();
        l.service = self.service.clone();
        l.shipped_at = self
            .shipped
            .map(|(_, t)| t)
            .or(self.w06.as_ref().and_then(|w| w.date));
        let order = if l.order_id.is_empty() {
            &l.po_number
        } else {
            &l.order_id
        };
        l.error = line_error(
            &l.sku,
            &l.ids,
            wanted,
            "W12",
            l.position,
            &l.quantity,
            order,
        );
        Some(l)
    }
}

/// Read 945 warehouse shipping advice (every set of every interchange in
/// `input`, FA groups skipped), handing each W12 to `on_line`.
/// `sku_qualifiers`: the W12 id qualifiers that may hold the SKU, in order
/// of preference. A set with a W06 and no W12 yields no lines. See the
/// module docs for where each field comes from.
pub fn read_945_with<R, E, F>(
    input: R,
    sku_qualifiers: &[String],
    mut on_line: F,
) -> Result<SummaryShip, E>
where
    R: BufRead,
    E: From<X12Error>,
    F: FnMut(ShipLineIn) -> Result<(), E>,
{
    let mut env = Envelope::new(input);
    let mut summary = SummaryShip::default();
    let mut set: Option<Set945> = None;
    let mut group_fid = String::new();
    let mut hand_over = |st: &mut Set945, summary: &mut SummaryShip| -> Result<(), E> {
        if let Some(l) = st.finish(sku_qualifiers) {
            summary.lines += 1;
            if l.error.is_some() {
                summary.bad_lines += 1;
            }
            on_line(l)?;
        }
        Ok(())
    };
    while let Some(ev) = env.next_event()? {
        match ev {
            Event::GroupStart(g) => group_fid = g.functional_id,
            Event::SetStart(_) if group_fid == "FA" => set = None,
            Event::SetStart(h) => {
                if h.id != "945" {
                    return Err(wrong_set(&h.id, &group_fid, h.position, "945").into());
                }
                summary.sets += 1;
                set = Some(Set945 {
                    control: h.control_number,
                    ..Default::default()
                });
            }
            Event::Segment(seg) => {
                let Some(st) = set.as_mut() else { continue };
                check_shape(&seg)?;
                match seg.id() {
                    "LX" => {
                        hand_over(st, &mut summary)?;
                        if st.w06.is_none() {
                            return Err(before_header(&seg, "W06").into());
                        }
                        st.lx = Some((seg.element(1).trim().to_owned(), Marks::default()));
                    }
                    "W12" => {
                        hand_over(st, &mut summary)?;
                        st.pending = Some(st.start_w12(&seg, sku_qualifiers)?);
                    }
                    "W03" => hand_over(st, &mut summary)?,
                    "MAN" | "N9" if st.pending.is_some() => {
                        let Some(p) = st.pending.as_mut() else {
                            continue;
                        };
                        if seg.id() == "MAN" {
                            p.marks.man(&seg);
                        } else if seg.element(1) == "LI" && p.line_n9.is_empty() {
                            p.line_n9 = seg.element(2).trim().to_owned();
                        } else {
                            p.marks.reference(&seg);
                        }
                    }
                    "MAN" | "N9" if st.lx.is_some() => {
                        if let Some((_, m)) = st.lx.as_mut() {
                            if seg.id() == "MAN" {
                                m.man(&seg);
                            } else {
                                m.reference(&seg);
                            }
                        }
                    }
                    _ if st.lx.is_none() => st.header_segment(&seg)?,
                    _ => {}
                }
                env.recycle(seg);
            }
            Event::SetEnd { .. } => {
                if let Some(mut st) = set.take() {
                    hand_over(&mut st, &mut summary)?;
                }
            }
            _ => {}
        }
    }
    Ok(summary)
}

// ------------------------------------------------------------------ 856

/// One open HL level and what it says.
#[derive(Default)]
struct Level {
    id: String,
    marks: Marks,
    prf: String,
    carrier: String,
    service: String,
    shipped_at: Option<NaiveDateTime>,
    lin: Option<(String, Vec<(String, String)>)>,
    /// The SN1 of this level: (quantity, unit, ordered, status, position).
    sn1: Option<(String, String, String, String, usize)>,
}

#[derive(Default)]
struct Set856 {
    control: String,
    /// BSN02 and BSN03+BSN04, once the BSN is read.
    bsn: Option<(String, Option<NaiveDateTime>)>,
    /// A DTM*011 between the BSN and the first HL (004010 has a header DTM).
    header_shipped: Option<NaiveDateTime>,
    /// The open HL levels, root first.
    path: Vec<Level>,
}

impl Set856 {
    /// A new HL: close the levels that are not its ancestors, open it.
    fn open(&mut self, seg: &Segment) -> Result<(), X12Error> {
        if self.bsn.is_none() {
            return Err(before_header(seg, "BSN"));
        }
        let parent = seg.element(2).trim();
        if parent.is_empty() {
            self.path.clear();
        } else {
            let Some(at) = self.path.iter().rposition(|l| l.id == parent) else {
                return Err(bad(
                    seg,
                    2,
                    "names no open parent HL (levels must follow their parent)",
                ));
            };
            self.path.truncate(at + 1);
        }
        self.path.push(Level {
            id: seg.element(1).trim().to_owned(),
            ..Default::default()
        });
        Ok(())
    }

    fn level_segment(&mut self, seg: &Segment) -> Result<(), X12Error> {
        let Some(l) = self.path.last_mut() else {
            if seg.id() == "DTM" && seg.element(1) == "011" && self.header_shipped.is_none() {
                self.header_shipped = dated(seg, 2, 3)?.map(|(t, _)| t);
            }
            return Ok(());
        };
        match seg.id() {
            "MAN" => l.marks.man(seg),
            "REF" => l.marks.reference(seg),
            "PRF" if l.prf.is_empty() => l.prf = seg.element(1).trim().to_owned(),
            "TD5" => {
                if l.carrier.is_empty() {
                    l.carrier = seg.element(3).trim().to_owned();
                }
                if l.service.is_empty() {
                    l.service = seg.element(5).trim().to_owned();
                }
            }
            "DTM" if seg.element(1) == "011" && l.shipped_at.is_none() => {
                l.shipped_at = dated(seg, 2, 3)?.map(|(t, _)| t);
            }
            "LIN" if l.lin.is_none() => {
                l.lin = Some((seg.element(1).trim().to_owned(), id_pairs(seg, 2)));
            }
            "SN1" if l.sn1.is_none() => {
                l.sn1 = Some((
                    seg.element(2).trim().to_owned(),
                    seg.element(3).trim().to_owned(),
                    seg.element(5).trim().to_owned(),
                    seg.element(8).trim().to_owned(),
                    seg.position,
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The line of the innermost level, if it has an SN1 (taken, so a level
    /// is handed over once).
    fn finish(&mut self, wanted: &[String]) -> Option<ShipLineIn> {
        let (quantity, unit, ordered, status, position) = self.path.last_mut()?.sn1.take()?;
        let inner = || self.path.iter().rev();
        let pick_str = |f: fn(&Level) -> &str| innermost(inner().map(f));
        let (line, ids) = self
            .path
            .last()
            .and_then(|l| l.lin.clone())
            .unwrap_or_default();
        let sku = pick(&ids, wanted).map(|(_, v)| v.clone());
        let prf = pick_str(|l| &l.prf);
        let (shipment_id, bsn_at) = self.bsn.clone().unwrap_or_default();
        let error = line_error(&sku, &ids, wanted, "SN1", position, &quantity, &prf);
        Some(ShipLineIn {
            shipment_id,
            order_id: prf.clone(),
            po_number: prf,
            line,
            sku,
            ids,
            quantity,
            unit,
            ordered,
            status,
            package: pick_str(|l| &l.marks.package),
            tracking: pick_str(|l| &l.marks.tracking),
            carrier: pick_str(|l| &l.carrier),
            service: pick_str(|l| &l.service),
            shipped_at: inner()
                .find_map(|l| l.shipped_at)
                .or(self.header_shipped)
                .or(bsn_at),
            position,
            set_control: self.control.clone(),
            error,
        })
    }
}

/// Read 856 ship notices (every set of every interchange in `input`, FA
/// groups skipped), handing each SN1 to `on_line` with the values of the
/// HL levels above it. `sku_qualifiers`: the LIN qualifiers that may hold
/// the SKU, in order of preference. See the module docs.
pub fn read_856_with<R, E, F>(
    input: R,
    sku_qualifiers: &[String],
    mut on_line: F,
) -> Result<SummaryShip, E>
where
    R: BufRead,
    E: From<X12Error>,
    F: FnMut(ShipLineIn) -> Result<(), E>,
{
    let mut env = Envelope::new(input);
    let mut summary = SummaryShip::default();
    let mut set: Option<Set856> = None;
    let mut group_fid = String::new();
    let mut hand_over = |st: &mut Set856, summary: &mut SummaryShip| -> Result<(), E> {
        if let Some(l) = st.finish(sku_qualifiers) {
            summary.lines += 1;
            if l.error.is_some() {
                summary.bad_lines += 1;
            }
            on_line(l)?;
        }
        Ok(())
    };
    while let Some(ev) = env.next_event()? {
        match ev {
            Event::GroupStart(g) => group_fid = g.functional_id,
            Event::SetStart(_) if group_fid == "FA" => set = None,
            Event::SetStart(h) => {
                if h.id != "856" {
                    return Err(wrong_set(&h.id, &group_fid, h.position, "856").into());
                }
                summary.sets += 1;
                set = Some(Set856 {
                    control: h.control_number,
                    ..Default::default()
                });
            }
            Event::Segment(seg) => {
                let Some(st) = set.as_mut() else { continue };
                check_shape(&seg)?;
                match seg.id() {
                    "BSN" => {
                        let id = seg.element(2).trim().to_owned();
                        st.bsn = Some((id, dated(&seg, 3, 4)?.map(|(t, _)| t)));
                    }
                    "HL" => {
                        hand_over(st, &mut summary)?;
                        st.open(&seg)?;
                    }
                    "CTT" => hand_over(st, &mut summary)?,
                    "LIN" | "SN1" if st.bsn.is_none() => {
                        return Err(before_header(&seg, "BSN").into());
                    }
                    _ => st.level_segment(&seg)?,
                }
                env.recycle(seg);
            }
            Event::SetEnd { .. } => {
                if let Some(mut st) = set.take() {
                    hand_over(&mut st, &mut summary)?;
                }
            }
            _ => {}
        }
    }
    Ok(summary)
}
