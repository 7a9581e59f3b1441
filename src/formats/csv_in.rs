//! CSV inbound: columns by header name or 1-based number, any delimiter.
//!
//! Limits (rule 14's spirit, issue 8): a record is at most [`MAX_RECORD`]
//! bytes (the file is rejected, and no more than about that much is ever
//! held in memory), a field at most [`MAX_FIELD`] bytes (the row is rejected).

use super::{RawRecord, ReadError};
use crate::mapping::{ColumnRef, Field};
use crate::util::quoted;
use std::cell::Cell;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

/// The longest CSV record accepted, in bytes (1 MiB).
pub const MAX_RECORD: u64 = 1 << 20;
/// The longest CSV field accepted, in bytes (64 KiB).
pub const MAX_FIELD: usize = 64 << 10;
/// The CSV reader's own buffer.
const BUFFER: usize = 1 << 16;

/// Counts the bytes handed to the CSV reader since the last record ended,
/// and fails the read beyond [`MAX_RECORD`] (plus what the reader may have
/// buffered ahead): one endless line is never read whole into memory.
struct Capped<R> {
    inner: R,
    since_record: Rc<Cell<u64>>,
}

/// The marker of the cap's I/O error, told apart from a real read error.
const TOO_LONG: &str = "stockgate: CSV record too long";

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.since_record.get() > MAX_RECORD + BUFFER as u64 {
            return Err(std::io::Error::other(TOO_LONG));
        }
        let n = self.inner.read(buf)?;
        self.since_record.set(self.since_record.get() + n as u64);
        Ok(n)
    }
}

pub fn read(
    path: &Path,
    delimiter: u8,
    header: bool,
    columns: &[(Field, ColumnRef)],
    on: &mut dyn FnMut(RawRecord) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(ReadError::Format {
            line: 1,
            message: "empty file".into(),
        });
    }
    let too_long = |line: u64| ReadError::Format {
        line,
        message: format!(
            "record longer than {MAX_RECORD} bytes (1 MiB), the limit for one CSV record; the file is rejected"
        ),
    };
    let since_record = Rc::new(Cell::new(0u64));
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(BUFFER)
        .from_reader(Capped {
            inner: file,
            since_record: since_record.clone(),
        });
    let mut rec = csv::ByteRecord::new();
    // The line after the last record read: where a too-long record starts.
    let next_line = Rc::new(Cell::new(1u64));
    let fmt_err = |e: csv::Error| {
        if let csv::ErrorKind::Io(io) = e.kind()
            && io.to_string() == TOO_LONG
        {
            return too_long(next_line.get());
        }
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        ReadError::Format {
            line,
            message: format!("malformed CSV: {e}"),
        }
    };
    // After each record: the cap counts from here on.
    let record_done = |rec: &csv::ByteRecord| {
        if rec.as_slice().len() + rec.len() > MAX_RECORD as usize {
            return Err(too_long(rec.position().map(|p| p.line()).unwrap_or(0)));
        }
        since_record.set(0);
        if let Some(p) = rec.position() {
            next_line
                .set(p.line() + rec.as_slice().iter().filter(|&&b| b == b'\n').count() as u64 + 1);
        }
        Ok(())
    };
    // Resolve each mapped column to a 0-based index.
    let mut index: Vec<(Field, usize)> = vec![];
    let mut header_len = None;
    let mut ambiguous: Vec<String> = vec![];
    if header {
        if !rdr.read_byte_record(&mut rec).map_err(fmt_err)? {
            return Err(ReadError::Format {
                line: 1,
                message: "empty file (no header)".into(),
            });
        }
        record_done(&rec)?;
        let names: Vec<String> = rec
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let s = String::from_utf8_lossy(b);
                let s = if i == 0 {
                    s.trim_start_matches('\u{feff}').to_string()
                } else {
                    s.into_owned()
                };
                s.trim().to_string()
            })
            .collect();
        header_len = Some(names.len());
        // A column named twice: which one holds the data cannot be told.
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                continue;
            }
            if let Some(j) = names[i + 1..].iter().position(|m| m == n) {
                return Err(ReadError::Format {
                    line: 1,
                    message: format!(
                        "the header names column {} twice (columns {} and {}); rename one",
                        quoted(n),
                        i + 1,
                        i + j + 2
                    ),
                });
            }
        }
        let mut missing = vec![];
        for (f, c) in columns {
            let found = match c {
                ColumnRef::Name(n) => names.iter().position(|h| h == n).or_else(|| {
                    let alike: Vec<usize> = (0..names.len())
                        .filter(|&i| names[i].eq_ignore_ascii_case(n))
                        .collect();
                    match alike.as_slice() {
                        [] => None,
                        [i] => Some(*i),
                        [a, b, ..] => {
                            ambiguous.push(format!(
                                "{} ({}) matches both {} (column {}) and {} (column {})",
                                quoted(n),
                                f.name(),
                                quoted(&names[*a]),
                                a + 1,
                                quoted(&names[*b]),
                                b + 1
                            ));
                            Some(*a)
                        }
                    }
                }),
                ColumnRef::Number(n) => (*n <= names.len()).then(|| n - 1),
            };
            match found {
                Some(i) => index.push((*f, i)),
                None => missing.push(match c {
                    ColumnRef::Name(n) => format!("{n:?} ({})", f.name()),
                    ColumnRef::Number(n) => {
                        format!("{n} ({}): the header has {} columns", f.name(), names.len())
                    }
                }),
            }
        }
        if !ambiguous.is_empty() {
            return Err(ReadError::Format {
                line: 1,
                message: format!("ambiguous header: {}", ambiguous.join("; ")),
            });
        }
        if !missing.is_empty() {
            // The header as found, bounded: it may be one huge line.
            let shown: Vec<String> = names
                .iter()
                .take(50)
                .map(|n| crate::util::bounded(n, crate::util::ECHO_MAX))
                .collect();
            let more = names.len().saturating_sub(shown.len());
            return Err(ReadError::Format {
                line: 1,
                message: format!(
                    "header lacks column {}; header has: {}{}",
                    missing.join(", "),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            });
        }
    } else {
        for (f, c) in columns {
            match c {
                ColumnRef::Number(n) => index.push((*f, n - 1)),
                ColumnRef::Name(n) => {
                    return Err(ReadError::Format {
                        line: 1,
                        message: format!("header = false but column {n:?} is a name"),
                    });
                }
            }
        }
    }
    let mut count = 0;
    while rdr.read_byte_record(&mut rec).map_err(fmt_err)? {
        record_done(&rec)?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        // A blank line is not a record.
        if rec.len() == 1 && rec[0].iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut r = RawRecord {
            line,
            ..Default::default()
        };
        let mut defects = vec![];
        // A row longer than the header is a sign of a broken export.
        if let Some(m) = header_len
            && rec.len() > m
        {
            defects.push(format!("{} fields, the header has {m}", rec.len()));
        }
        for (i, b) in rec.iter().enumerate() {
            if b.len() > MAX_FIELD {
                defects.push(format!(
                    "field {} is {} bytes, longer than the {MAX_FIELD}-byte (64 KiB) limit for one field",
                    i + 1,
                    b.len()
                ));
            }
        }
        if !defects.is_empty() {
            r.error = Some(defects.join("; "));
        }
        for (f, i) in &index {
            if let Some(b) = rec.get(*i) {
                match std::str::from_utf8(b) {
                    Ok(s) => r.set(*f, s.to_string()),
                    Err(_) => r.set(
                        *f,
                        format!("\u{fffd}invalid UTF-8: {}", String::from_utf8_lossy(b)),
                    ),
                }
            }
        }
        count += 1;
        on(r).map_err(ReadError::Stopped)?;
    }
    Ok(count)
}
