//! X12 EDI for stockgate: streaming reader, envelope validation, 846/850
//! interpreters, 846 and 997 writers. Self-contained: siblings are reached
//! through `super::`/`self::` only, so the module can move.
//!
//! Layers, each streaming (one segment in memory at a time):
//! - [`reader::Reader`]: bytes -> [`Segment`]s. Separators from the
//!   fixed-width ISA; BOM, CR/LF and indentation between segments skipped; a
//!   final segment without terminator is accepted (truncation is still caught
//!   by the trailer checks). Never panics; every error names segment + position.
//! - [`envelope::Envelope`]: ISA/GS/ST nesting, SE/GE/IEA counts and control
//!   numbers; several interchanges may follow each other in one input (each
//!   ISA with its own separators; anything else after an IEA is an error).
//!   Strict by default; tolerant mode feeds [`ack::validate_for_ack`].
//! - [`inbound`]: `read_846` / `read_850` (structural defects are `Err`,
//!   per-item defects are items with `error: Some(reason)`).
//! - [`writer::write_846`] and [`ack::build_997`]: values holding a delimiter
//!   are refused, never escaped; output is streamed, so write to a temporary
//!   file and discard it on error.
//!
//! The 997 code mapping is documented in [`ack`].

pub mod ack;
pub mod envelope;
pub mod error;
pub mod inbound;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;

pub use ack::{
    Ack997, AckReport, GroupAck, SetAck, Written997, build_997, build_997_to, read_997,
    validate_for_ack, validate_interchanges_for_ack,
};
pub use envelope::{Envelope, Event, GroupHeader, Isa, SetHeader};
pub use error::{AckCode, X12Error};
pub use inbound::{
    DEFAULT_AS_OF_QUALIFIERS, Item846In, OrderLine850, Read846, Summary846, Summary850, read_846,
    read_846_with, read_850, read_850_with,
};
pub use reader::{Reader, Segment, Separators};
pub use writer::{
    ControlNumbers, EnvelopeProfile, Extras846, Item846Out, Profile846, VERSIONS, Written846,
    ack_version, write_846,
};
