//! Typed errors. Every message that concerns input data names the segment id
//! and its 1-based position in the interchange (ISA = segment 1), so a
//! quarantine report can point an operator at the exact place.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum X12Error {
    #[error("I/O error while reading X12: {0}")]
    Io(#[from] std::io::Error),

    #[error("empty input: no ISA segment at segment 1")]
    Empty,

    #[error("input does not start with ISA at segment 1 (found {found:?})")]
    NotIsa { found: String },

    #[error("ISA at segment 1: {reason}")]
    BadIsa { reason: String },

    #[error("segment at position {position} has an invalid segment id {found:?}{hint}")]
    InvalidSegmentId {
        position: usize,
        found: String,
        hint: &'static str,
    },

    #[error("empty segment at position {position} (two segment terminators in a row)")]
    EmptySegment { position: usize },

    #[error(
        "{id} at segment {position} is longer than {limit} bytes (missing segment terminator?)"
    )]
    SegmentTooLong {
        id: String,
        position: usize,
        limit: usize,
    },

    #[error("{id} at segment {position}: element {element} is not valid UTF-8")]
    InvalidUtf8 {
        id: String,
        position: usize,
        element: usize,
    },

    #[error(
        "{id} at segment {position}: element {id}{element:02} contains a line break (wrong segment terminator?)"
    )]
    LineBreakInElement {
        id: String,
        position: usize,
        element: usize,
    },

    /// A trailer (SE/GE/IEA) is missing: the envelope opened at `opened_*` was
    /// not closed before `found` (another segment) or before end of input.
    #[error("missing {expected} for {opened_id} at segment {opened_position}: {found}")]
    MissingTrailer {
        expected: &'static str,
        opened_id: &'static str,
        opened_position: usize,
        /// e.g. "found GS at segment 20" or "input ends after segment 19"
        found: String,
    },

    /// A segment that is not allowed where it stands (body segment outside
    /// ST/SE, nested GS, trailer without header, second ISA, ...).
    #[error("{id} at segment {position}: {reason}")]
    Unexpected {
        id: String,
        position: usize,
        reason: String,
    },

    #[error("{id} at segment {position}: {element} is {declared:?} but the {what} is {actual}")]
    CountMismatch {
        id: String,
        position: usize,
        element: &'static str,
        declared: String,
        what: &'static str,
        actual: u64,
    },

    #[error(
        "{id} at segment {position}: {element} is {found:?} but {header_element} at segment {header_position} is {expected:?}"
    )]
    ControlMismatch {
        id: String,
        position: usize,
        element: &'static str,
        found: String,
        header_element: &'static str,
        header_position: usize,
        expected: String,
    },

    #[error("{id} at segment {position}: {element} {value:?} {reason}")]
    BadElement {
        id: String,
        position: usize,
        element: String,
        value: String,
        reason: String,
    },

    #[error(
        "{id} at segment {position} has {count} elements but {id} allows at most {max} (missing segment terminator?)"
    )]
    TooManyElements {
        id: String,
        position: usize,
        count: usize,
        max: usize,
    },

    #[error(
        "{id} at segment {position}: {element} {value:?} repeats the control number of an earlier {scope}"
    )]
    Duplicate {
        id: String,
        position: usize,
        element: &'static str,
        value: String,
        scope: &'static str,
    },

    #[error("data after IEA: {id} at segment {position}")]
    DataAfterIea { id: String, position: usize },

    /// Outbound: a profile setting cannot produce valid X12.
    #[error("invalid X12 profile: {field}: {reason}")]
    Profile { field: &'static str, reason: String },

    /// Outbound: a value cannot be written (contains a separator, too long, ...).
    #[error("cannot write {field} {value:?}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },
}

/// Where a problem found by the envelope reader is acknowledged in a 997,
/// with the standard code for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// AK5 R with this AK502 code (X12 element 718) for the set in error.
    Set(u8),
    /// AK9 R with this AK905 code (X12 element 716) for the group in error.
    Group(u8),
    /// Interchange-level: no 997 can carry it; this is the TA1 note code
    /// (X12 element I18) a TA1 would use.
    Interchange(&'static str),
}

impl X12Error {
    /// Standard 997/TA1 code for an envelope error (see the table in
    /// `super` module docs). Errors raised by the envelope reader carry enough
    /// structure to pick one; content errors (846/850 rules) map to AK5 code 5
    /// "one or more segments in error".
    pub fn ack_code(&self) -> AckCode {
        use X12Error::*;
        match self {
            MissingTrailer { expected: "SE", .. } => AckCode::Set(2),
            MissingTrailer { expected: "GE", .. } => AckCode::Group(3),
            MissingTrailer { .. } => AckCode::Interchange("023"),
            CountMismatch {
                element: "SE01", ..
            } => AckCode::Set(4),
            CountMismatch {
                element: "GE01", ..
            } => AckCode::Group(5),
            CountMismatch { .. } => AckCode::Interchange("021"),
            ControlMismatch {
                element: "SE02", ..
            } => AckCode::Set(3),
            ControlMismatch {
                element: "GE02", ..
            } => AckCode::Group(4),
            ControlMismatch { .. } => AckCode::Interchange("001"),
            BadElement { id, element, .. } => match (id.as_str(), element.as_str()) {
                ("ST", "ST01") => AckCode::Set(6),
                ("ST", "ST02") => AckCode::Set(7),
                ("GS", _) | ("GE", _) => AckCode::Group(6),
                ("SE", _) => AckCode::Set(4),
                ("ISA", _) | ("IEA", _) => AckCode::Interchange("022"),
                _ => AckCode::Set(5),
            },
            Duplicate { id, .. } => match id.as_str() {
                "ST" => AckCode::Set(23),
                "GS" => AckCode::Group(19),
                _ => AckCode::Interchange("025"),
            },
            TooManyElements { .. } | LineBreakInElement { .. } | InvalidUtf8 { .. } => {
                AckCode::Set(5)
            }
            SegmentTooLong { .. } | EmptySegment { .. } | InvalidSegmentId { .. } => {
                AckCode::Set(5)
            }
            Unexpected { .. } => AckCode::Interchange("024"),
            DataAfterIea { .. } => AckCode::Interchange("024"),
            Empty => AckCode::Interchange("023"),
            NotIsa { .. } | BadIsa { .. } => AckCode::Interchange("022"),
            Io(_) | Profile { .. } | InvalidValue { .. } => AckCode::Interchange("024"),
        }
    }
}
