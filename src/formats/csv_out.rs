//! CSV feeds: the mapping's columns, in order, one row per item.

use super::{FeedItem, field_text};
use crate::mapping::OutColumn;
use std::io::Write;

pub fn write(
    out: &mut dyn Write,
    delimiter: u8,
    header: bool,
    columns: &[OutColumn],
    merchant: &str,
    items: &mut dyn Iterator<Item = FeedItem>,
) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(out);
    if header {
        w.write_record(columns.iter().map(|c| c.name.as_str()))
            .map_err(std::io::Error::other)?;
    }
    for item in items {
        w.write_record(columns.iter().map(|c| field_text(&item, c.field, merchant)))
            .map_err(std::io::Error::other)?;
    }
    w.flush()
}
