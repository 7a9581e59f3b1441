//! X12 EDI for stockgate: streaming reader, envelope validation, 846/850
//! and 945/856 interpreters, 846, 940, 856 and 997 writers. Self-contained: siblings are reached
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
//! - [`shipments`]: `read_945_with` / `read_856_with`, one shipped line per
//!   W12 / SN1 with its shipment, order, package and tracking (same error
//!   policy as the 850).
//! - [`orders`]: `write_940` (warehouse shipping orders) and `write_856`
//!   (ship notices), one set per order / shipment (contract rule 30).
//! - [`writer::write_846`] and [`ack::build_997`]: values holding a delimiter
//!   are refused, never escaped; output is streamed, so write to a temporary
//!   file and discard it on error.
//!
//! The 997 code mapping is documented in [`ack`].

pub mod ack;
pub mod envelope;
pub mod error;
pub mod inbound;
pub mod orders;
pub mod reader;
pub mod shipments;
pub mod writer;

#[cfg(test)]
mod orders_tests;
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
pub use orders::{
    Address, Item856, Line940, Order940, Pack856, Profile856, Profile940, Shipment856, Written,
    check_order_940, check_shipment_856, write_856, write_940,
};
pub use reader::{Reader, Segment, Separators};
pub use shipments::{ShipLineIn, SummaryShip, read_856_with, read_945_with};
pub use writer::{
    ControlNumbers, EnvelopeProfile, Extras846, Item846Out, Profile846, VERSIONS, Written846,
    ack_version, write_846,
};
