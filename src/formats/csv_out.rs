//! CSV feeds: the mapping's columns, in order, one row per item.

use super::{FeedItem, field_text};
use crate::mapping::{CsvStyle, OutColumn, OutField};
use std::io::Write;

pub fn write(
    out: &mut dyn Write,
    delimiter: u8,
    header: bool,
    columns: &[OutColumn],
    style: &CsvStyle,
    merchant: &str,
    items: &mut dyn Iterator<Item = FeedItem>,
) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(if style.crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .quote_style(if style.quote_always {
            csv::QuoteStyle::Always
        } else {
            csv::QuoteStyle::Necessary
        })
        .from_writer(out);
    if header {
        w.write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(std::io::Error::other)?;
    }
    for item in items {
        w.write_record(columns.iter().map(|c| match (c.field, item.as_of) {
            (OutField::AsOf, Some(t)) if style.as_of.is_some() => style.as_of_text(t),
            _ => field_text(&item, c.field, merchant),
        }))
        .map_err(std::io::Error::other)?;
    }
    w.flush()
}
