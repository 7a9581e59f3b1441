//! CSV feeds: the mapping's columns, in order, one row per item.

use super::{FeedItem, FeedWriter, field_text};
use crate::mapping::OutColumn;
use std::io::Write;

pub struct CsvFeed<W: Write> {
    w: csv::Writer<W>,
    columns: Vec<OutColumn>,
    merchant: String,
}

impl<W: Write> CsvFeed<W> {
    pub fn new(out: W, delimiter: u8, header: bool, columns: Vec<OutColumn>, merchant: String) -> std::io::Result<Self> {
        let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(out);
        if header {
            w.write_record(columns.iter().map(|c| c.name.as_str())).map_err(std::io::Error::other)?;
        }
        Ok(CsvFeed { w, columns, merchant })
    }
}

impl<W: Write> FeedWriter for CsvFeed<W> {
    fn write_item(&mut self, item: &FeedItem) -> std::io::Result<()> {
        let row: Vec<String> = self.columns.iter().map(|c| field_text(item, c.field, &self.merchant)).collect();
        self.w.write_record(&row).map_err(std::io::Error::other)
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let mut w = self.w.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
        w.flush()
    }
}
