//! Envelope validation (ISA/IEA, GS/GE, ST/SE) layered on [`Reader`].
//!
//! An input may hold several interchanges one after the other (each ISA
//! with its own separators); each gives its own InterchangeStart ..
//! InterchangeEnd events. Anything else after an IEA is an error.
//!
//! Strict mode (default) stops at the first envelope problem with an error.
//! Tolerant mode reports each problem as [`Event::Problem`] and recovers
//! (closing an envelope whose trailer is missing), so a 997 can acknowledge
//! every group and set; see [`super::ack::validate_for_ack`].

use std::collections::{HashSet, VecDeque};
use std::io::BufRead;

use super::error::X12Error;
use super::reader::{Reader, Segment, Separators};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isa {
    /// ISA01..ISA16 as read (padding kept).
    pub elements: Vec<String>,
    pub separators: Separators,
}

impl Isa {
    /// ISA element `n` (1-based), trimmed of its fixed-width padding.
    pub fn field(&self, n: usize) -> &str {
        n.checked_sub(1)
            .and_then(|i| self.elements.get(i))
            .map(|s| s.trim())
            .unwrap_or("")
    }
    pub fn sender_qualifier(&self) -> &str {
        self.field(5)
    }
    pub fn sender_id(&self) -> &str {
        self.field(6)
    }
    pub fn receiver_qualifier(&self) -> &str {
        self.field(7)
    }
    pub fn receiver_id(&self) -> &str {
        self.field(8)
    }
    /// ISA12, e.g. "00401".
    pub fn version(&self) -> &str {
        self.field(12)
    }
    /// ISA13 as written (9 digits).
    pub fn control_number(&self) -> &str {
        self.field(13)
    }
    /// ISA15 'P' or 'T'.
    pub fn usage(&self) -> &str {
        self.field(15)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupHeader {
    pub functional_id: String,
    pub sender: String,
    pub receiver: String,
    pub date: String,
    pub time: String,
    pub control_number: String,
    /// GS08, e.g. "004010" or "004010VICS".
    pub version: String,
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetHeader {
    pub id: String,
    pub control_number: String,
    /// ST03 (5010 implementation convention), "" when absent.
    pub implementation: String,
    pub position: usize,
}

#[derive(Debug)]
pub enum Event {
    InterchangeStart(Isa),
    GroupStart(GroupHeader),
    SetStart(SetHeader),
    /// A body segment between ST and SE.
    Segment(Segment),
    /// `segments` is the actual count ST..SE inclusive.
    SetEnd {
        id: String,
        control_number: String,
        segments: u64,
        position: usize,
    },
    /// `sets` is the actual number of sets; `declared` is GE01 as written
    /// ("" when the GE is missing).
    GroupEnd {
        control_number: String,
        sets: u64,
        declared: String,
        position: usize,
    },
    InterchangeEnd {
        control_number: String,
        groups: u64,
        position: usize,
    },
    /// Tolerant mode only: a problem with the innermost envelope still open
    /// when it is reported (set, else group, else interchange).
    Problem(X12Error),
}

struct OpenSet {
    id: String,
    control: String,
    position: usize,
    segments: u64,
}

struct OpenGroup {
    control: String,
    position: usize,
    sets: u64,
    set_controls: HashSet<String>,
}

#[derive(PartialEq, Eq)]
enum Phase {
    Start,
    Open,
    Done,
}

pub struct Envelope<R> {
    reader: Reader<R>,
    tolerant: bool,
    phase: Phase,
    isa_control: String,
    /// Position of the open interchange's ISA.
    isa_position: usize,
    /// The ISA of the next interchange, read while checking what follows an IEA.
    pending: Option<Segment>,
    /// ISA13s seen in this input: an interchange repeated in one file is an error.
    isa_controls: HashSet<String>,
    groups: u64,
    group_controls: HashSet<String>,
    group: Option<OpenGroup>,
    set: Option<OpenSet>,
    queue: VecDeque<Event>,
    failed: bool,
}

/// Control numbers are compared as written; all-digit values also compare
/// by value ("1979" == "000001979") since senders disagree on zero padding.
fn same_control(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        a.trim_start_matches('0') == b.trim_start_matches('0')
    } else {
        false
    }
}

fn parse_count(seg: &Segment, n: usize) -> Result<u64, X12Error> {
    let v = seg.element(n);
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(X12Error::BadElement {
            id: seg.id().to_owned(),
            position: seg.position,
            element: seg.element_name(n),
            value: v.to_owned(),
            reason: "is not a count (digits only)".into(),
        });
    }
    Ok(v.parse().unwrap_or(u64::MAX))
}

fn required(seg: &Segment, n: usize) -> Result<String, X12Error> {
    let v = seg.element(n);
    if v.trim().is_empty() {
        return Err(X12Error::BadElement {
            id: seg.id().to_owned(),
            position: seg.position,
            element: seg.element_name(n),
            value: v.to_owned(),
            reason: "is required but empty".into(),
        });
    }
    Ok(v.to_owned())
}

impl<R: BufRead> Envelope<R> {
    /// Strict: the first envelope problem is an error.
    pub fn new(input: R) -> Self {
        Self::from_reader(Reader::new(input), false)
    }

    /// Tolerant: problems become [`Event::Problem`] and reading goes on.
    /// Reader-level errors (I/O, bad ISA, invalid UTF-8, ...) stay fatal.
    pub fn tolerant(input: R) -> Self {
        Self::from_reader(Reader::new(input), true)
    }

    pub fn from_reader(reader: Reader<R>, tolerant: bool) -> Self {
        Envelope {
            reader,
            tolerant,
            phase: Phase::Start,
            isa_control: String::new(),
            isa_position: 1,
            pending: None,
            isa_controls: HashSet::new(),
            groups: 0,
            group_controls: HashSet::new(),
            group: None,
            set: None,
            queue: VecDeque::new(),
            failed: false,
        }
    }

    pub fn separators(&self) -> Option<Separators> {
        self.reader.separators()
    }

    /// Hands back the segment of an [`Event::Segment`] once done with it:
    /// a later segment reuses its buffers.
    pub fn recycle(&mut self, seg: Segment) {
        self.reader.recycle(seg);
    }

    /// Next event; `Ok(None)` after InterchangeEnd (and after an error).
    pub fn next_event(&mut self) -> Result<Option<Event>, X12Error> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            if self.failed {
                return Ok(None);
            }
            if let Err(e) = self.step() {
                self.failed = true;
                self.queue.clear();
                return Err(e);
            }
        }
    }

    fn problem(&mut self, e: X12Error) -> Result<(), X12Error> {
        if self.tolerant {
            self.queue.push_back(Event::Problem(e));
            Ok(())
        } else {
            Err(e)
        }
    }

    fn last_pos(&self) -> usize {
        self.reader.position()
    }

    /// Read one segment and queue the events it causes.
    fn step(&mut self) -> Result<(), X12Error> {
        let seg = match self.pending.take() {
            Some(isa) => Some(isa),
            None => self.reader.next_segment()?,
        };
        let Some(seg) = seg else {
            return self.end_of_input();
        };
        if self.phase == Phase::Start {
            // The reader guarantees the first segment is the ISA.
            let Some(seps) = self.reader.separators() else {
                return Err(X12Error::Empty);
            };
            self.isa_control = required(&seg, 13)?.trim().to_owned();
            self.isa_position = seg.position;
            self.groups = 0;
            self.group_controls.clear();
            self.phase = Phase::Open;
            let repeated = !self.isa_controls.insert(self.isa_control.clone());
            let position = seg.position;
            self.queue.push_back(Event::InterchangeStart(Isa {
                elements: seg.elements().map(str::to_owned).collect(),
                separators: seps,
            }));
            if repeated {
                self.problem(X12Error::Duplicate {
                    id: "ISA".into(),
                    position,
                    element: "ISA13",
                    value: self.isa_control.clone(),
                    scope: "interchange in this input",
                })?;
            }
            return Ok(());
        }
        if self.phase == Phase::Done {
            // Only whitespace may follow the IEA; the reader skips it.
            self.phase = Phase::Done;
            let e = X12Error::DataAfterIea {
                id: seg.id().to_owned(),
                position: seg.position,
            };
            if self.tolerant {
                self.queue.push_back(Event::Problem(e));
                self.failed = true; // stop: what follows is not ours to judge
                return Ok(());
            }
            return Err(e);
        }
        match seg.id() {
            "ISA" => {
                self.close_set_missing(&seg)?;
                self.close_group_missing(&seg)?;
                let e = X12Error::Unexpected {
                    id: seg.id().to_owned(),
                    position: seg.position,
                    reason: format!(
                        "second ISA before the IEA of the ISA at segment {} (nested interchange)",
                        self.isa_position
                    ),
                };
                self.problem(e)?;
                self.failed = true;
                Ok(())
            }
            "GS" => {
                self.close_set_missing(&seg)?;
                self.close_group_missing(&seg)?;
                self.open_group(seg)
            }
            "ST" => {
                self.close_set_missing(&seg)?;
                if self.group.is_none() {
                    let e = X12Error::Unexpected {
                        id: seg.id().to_owned(),
                        position: seg.position,
                        reason: "ST outside a functional group (no GS before it)".into(),
                    };
                    return self.problem(e);
                }
                self.open_set(seg)
            }
            "SE" => self.close_set(seg),
            "GE" => {
                self.close_set_missing(&seg)?;
                self.close_group(seg)
            }
            "IEA" => {
                self.close_set_missing(&seg)?;
                self.close_group_missing(&seg)?;
                self.close_interchange(seg)
            }
            _ => {
                if let Some(set) = self.set.as_mut() {
                    set.segments += 1;
                    self.queue.push_back(Event::Segment(seg));
                    Ok(())
                } else {
                    let where_ = if self.group.is_some() {
                        "outside a transaction set (between ST and SE)"
                    } else {
                        "outside a functional group and transaction set"
                    };
                    let e = X12Error::Unexpected {
                        id: seg.id().to_owned(),
                        position: seg.position,
                        reason: format!("segment {where_}"),
                    };
                    self.problem(e)
                }
            }
        }
    }

    fn end_of_input(&mut self) -> Result<(), X12Error> {
        if self.phase == Phase::Done {
            // Clean end after IEA.
            self.failed = true;
            return Ok(());
        }
        let pos = self.last_pos();
        let found = format!("input ends after segment {pos}");
        if let Some(set) = self.set.take() {
            self.problem(X12Error::MissingTrailer {
                expected: "SE",
                opened_id: "ST",
                opened_position: set.position,
                found: found.clone(),
            })?;
            self.push_set_end(set, pos);
        }
        if let Some(g) = self.group.take() {
            self.problem(X12Error::MissingTrailer {
                expected: "GE",
                opened_id: "GS",
                opened_position: g.position,
                found: found.clone(),
            })?;
            self.push_group_end(g, String::new(), pos);
        }
        self.problem(X12Error::MissingTrailer {
            expected: "IEA",
            opened_id: "ISA",
            opened_position: self.isa_position,
            found,
        })?;
        self.queue.push_back(Event::InterchangeEnd {
            control_number: self.isa_control.clone(),
            groups: self.groups,
            position: pos,
        });
        self.failed = true;
        Ok(())
    }

    fn push_set_end(&mut self, set: OpenSet, position: usize) {
        self.queue.push_back(Event::SetEnd {
            id: set.id,
            control_number: set.control,
            segments: set.segments,
            position,
        });
    }

    fn push_group_end(&mut self, g: OpenGroup, declared: String, position: usize) {
        self.queue.push_back(Event::GroupEnd {
            control_number: g.control,
            sets: g.sets,
            declared,
            position,
        });
    }

    /// `seg` may not appear inside a set: report the missing SE.
    fn close_set_missing(&mut self, seg: &Segment) -> Result<(), X12Error> {
        if let Some(set) = self.set.take() {
            self.problem(X12Error::MissingTrailer {
                expected: "SE",
                opened_id: "ST",
                opened_position: set.position,
                found: format!("found {} at segment {}", seg.id(), seg.position),
            })?;
            self.push_set_end(set, seg.position.saturating_sub(1));
        }
        Ok(())
    }

    fn close_group_missing(&mut self, seg: &Segment) -> Result<(), X12Error> {
        if let Some(g) = self.group.take() {
            self.problem(X12Error::MissingTrailer {
                expected: "GE",
                opened_id: "GS",
                opened_position: g.position,
                found: format!("found {} at segment {}", seg.id(), seg.position),
            })?;
            self.push_group_end(g, String::new(), seg.position.saturating_sub(1));
        }
        Ok(())
    }

    fn open_group(&mut self, seg: Segment) -> Result<(), X12Error> {
        self.groups += 1;
        // Problems are reported after GroupStart so that tolerant consumers
        // attach them to this group.
        let mut deferred = Vec::new();
        let control = seg.element(6).to_owned();
        if control.is_empty() || control.len() > 9 || !control.bytes().all(|b| b.is_ascii_digit()) {
            deferred.push(X12Error::BadElement {
                id: "GS".into(),
                position: seg.position,
                element: "GS06".into(),
                value: control.clone(),
                reason: "is not a group control number (1 to 9 digits)".into(),
            });
        } else if !self
            .group_controls
            .insert(control.trim_start_matches('0').to_owned())
        {
            deferred.push(X12Error::Duplicate {
                id: "GS".into(),
                position: seg.position,
                element: "GS06",
                value: control.clone(),
                scope: "group in this interchange",
            });
        }
        self.group = Some(OpenGroup {
            control: control.clone(),
            position: seg.position,
            sets: 0,
            set_controls: HashSet::new(),
        });
        self.queue.push_back(Event::GroupStart(GroupHeader {
            functional_id: seg.element(1).to_owned(),
            sender: seg.element(2).to_owned(),
            receiver: seg.element(3).to_owned(),
            date: seg.element(4).to_owned(),
            time: seg.element(5).to_owned(),
            control_number: control,
            version: seg.element(8).to_owned(),
            position: seg.position,
        }));
        for e in deferred {
            self.problem(e)?;
        }
        Ok(())
    }

    fn open_set(&mut self, seg: Segment) -> Result<(), X12Error> {
        // As for groups, problems follow SetStart.
        let mut deferred = Vec::new();
        let id = seg.element(1).to_owned();
        if let Err(e) = required(&seg, 1) {
            deferred.push(e);
        }
        let control = seg.element(2).to_owned();
        if let Err(e) = required(&seg, 2) {
            deferred.push(e);
        } else if let Some(g) = self.group.as_mut()
            && !g.set_controls.insert(control.clone())
        {
            deferred.push(X12Error::Duplicate {
                id: "ST".into(),
                position: seg.position,
                element: "ST02",
                value: control.clone(),
                scope: "set in this group",
            });
        }
        if let Some(g) = self.group.as_mut() {
            g.sets += 1;
        }
        self.set = Some(OpenSet {
            id: id.clone(),
            control: control.clone(),
            position: seg.position,
            segments: 1,
        });
        self.queue.push_back(Event::SetStart(SetHeader {
            id,
            control_number: control,
            implementation: seg.element(3).to_owned(),
            position: seg.position,
        }));
        for e in deferred {
            self.problem(e)?;
        }
        Ok(())
    }

    fn close_set(&mut self, seg: Segment) -> Result<(), X12Error> {
        let Some(mut set) = self.set.take() else {
            return self.problem(X12Error::Unexpected {
                id: seg.id().to_owned(),
                position: seg.position,
                reason: "SE without a matching ST".into(),
            });
        };
        set.segments += 1;
        match parse_count(&seg, 1) {
            Ok(n) if n == set.segments => {}
            Ok(_) => self.problem(X12Error::CountMismatch {
                id: seg.id().to_owned(),
                position: seg.position,
                element: "SE01",
                declared: seg.element(1).to_owned(),
                what: "number of segments ST..SE inclusive",
                actual: set.segments,
            })?,
            Err(e) => self.problem(e)?,
        }
        if !same_control(seg.element(2), &set.control) {
            self.problem(X12Error::ControlMismatch {
                id: seg.id().to_owned(),
                position: seg.position,
                element: "SE02",
                found: seg.element(2).to_owned(),
                header_element: "ST02",
                header_position: set.position,
                expected: set.control.clone(),
            })?;
        }
        self.push_set_end(set, seg.position);
        Ok(())
    }

    fn close_group(&mut self, seg: Segment) -> Result<(), X12Error> {
        let Some(g) = self.group.take() else {
            return self.problem(X12Error::Unexpected {
                id: seg.id().to_owned(),
                position: seg.position,
                reason: "GE without a matching GS".into(),
            });
        };
        match parse_count(&seg, 1) {
            Ok(n) if n == g.sets => {}
            Ok(_) => self.problem(X12Error::CountMismatch {
                id: seg.id().to_owned(),
                position: seg.position,
                element: "GE01",
                declared: seg.element(1).to_owned(),
                what: "number of transaction sets in the group",
                actual: g.sets,
            })?,
            Err(e) => self.problem(e)?,
        }
        if !same_control(seg.element(2), &g.control) {
            self.problem(X12Error::ControlMismatch {
                id: seg.id().to_owned(),
                position: seg.position,
                element: "GE02",
                found: seg.element(2).to_owned(),
                header_element: "GS06",
                header_position: g.position,
                expected: g.control.clone(),
            })?;
        }
        let declared = seg.element(1).to_owned();
        self.push_group_end(g, declared, seg.position);
        Ok(())
    }

    fn close_interchange(&mut self, seg: Segment) -> Result<(), X12Error> {
        match parse_count(&seg, 1) {
            Ok(n) if n == self.groups => {}
            Ok(_) => self.problem(X12Error::CountMismatch {
                id: seg.id().to_owned(),
                position: seg.position,
                element: "IEA01",
                declared: seg.element(1).to_owned(),
                what: "number of functional groups",
                actual: self.groups,
            })?,
            Err(e) => self.problem(e)?,
        }
        if !same_control(seg.element(2), &self.isa_control) {
            self.problem(X12Error::ControlMismatch {
                id: seg.id().to_owned(),
                position: seg.position,
                element: "IEA02",
                found: seg.element(2).to_owned(),
                header_element: "ISA13",
                header_position: self.isa_position,
                expected: self.isa_control.clone(),
            })?;
        }
        self.phase = Phase::Done;
        // Check what follows now, so InterchangeEnd means a clean file (or
        // the start of another interchange) even for a consumer that stops
        // reading there.
        self.reader.expect_isa();
        let trailing = match self.reader.next_segment() {
            Ok(None) | Err(X12Error::Empty) => None,
            Ok(Some(next)) => {
                self.pending = Some(next);
                None
            }
            Err(X12Error::NotIsa { found }) => {
                let id: String = found
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .take(3)
                    .collect();
                Some((
                    if id.is_empty() {
                        "(unreadable)".to_owned()
                    } else {
                        id
                    },
                    seg.position + 1,
                ))
            }
            Err(e) => return Err(e),
        };
        if let Some((id, position)) = trailing {
            self.problem(X12Error::DataAfterIea { id, position })?;
        }
        self.queue.push_back(Event::InterchangeEnd {
            control_number: self.isa_control.clone(),
            groups: self.groups,
            position: seg.position,
        });
        if self.pending.is_some() {
            self.phase = Phase::Start;
        } else {
            self.failed = true; // nothing more to read
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for Envelope<R> {
    type Item = Result<Event, X12Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}
