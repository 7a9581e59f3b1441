//! CSV inbound: columns by header name or 1-based number, any delimiter.
//!
//! Limits (rule 14's spirit, issue 8): a record is at most [`MAX_RECORD`]
//! bytes (the file is rejected, and no more than about that much is ever
//! held in memory), a field at most [`MAX_FIELD`] bytes (the row is rejected).

use super::{RawRecord, ReadError};
use crate::mapping::{ColumnRef, Field, InboundMapping};
use crate::util::quoted;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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
    lines: Rc<RefCell<Lines>>,
}

/// Physical line numbers, counted as the bytes go by: a line ends at LF,
/// CRLF or a lone CR, whatever the CSV reader makes of them, so a record's
/// line is the line of the file (as an editor shows it) where it starts.
#[derive(Default)]
struct Lines {
    /// Stream offsets where a line starts, not yet passed by a record.
    starts: VecDeque<u64>,
    /// Lines that started at or before the last offset asked about.
    passed: u64,
    /// Bytes seen so far.
    seen: u64,
    /// Where the last CR was (a CRLF is one line end).
    last_cr: Option<u64>,
}

impl Lines {
    fn feed(&mut self, buf: &[u8]) {
        for j in memchr::memchr2_iter(b'\n', b'\r', buf) {
            let off = self.seen + j as u64;
            match buf[j] {
                // The LF of a CRLF: the line started after the CR (the
                // CSV reader may place the next record at this LF).
                b'\n' if off > 0 && self.last_cr == Some(off - 1) => {}
                b'\n' => self.starts.push_back(off + 1),
                b'\r' => {
                    self.starts.push_back(off + 1);
                    self.last_cr = Some(off);
                }
                _ => {}
            }
        }
        self.seen += buf.len() as u64;
    }
    /// The 1-based line of stream offset `at` (offsets asked in order).
    fn line(&mut self, at: u64) -> u64 {
        while self.starts.front().is_some_and(|&s| s <= at) {
            self.starts.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
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
        self.lines.borrow_mut().feed(&buf[..n]);
        crate::progress::bytes(n as u64);
        Ok(n)
    }
}

/// Whether the first bytes of a file look like UTF-16: a UTF-16 byte-order
/// mark, or NUL bytes in every other place of the first line.
pub fn looks_utf16(head: &[u8]) -> bool {
    if head.starts_with(&[0xff, 0xfe]) || head.starts_with(&[0xfe, 0xff]) {
        return true;
    }
    let n = head.len().min(200);
    n >= 4 && head[..n].iter().filter(|&&b| b == 0).count() * 3 >= n
}

pub fn read(
    path: &Path,
    delimiter: u8,
    header: bool,
    columns: &[(Field, ColumnRef)],
    mapping: &InboundMapping,
    on: &mut dyn FnMut(RawRecord) -> Result<(), String>,
) -> Result<u64, ReadError> {
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(ReadError::Format {
            line: 1,
            message: "empty file".into(),
        });
    }
    let shown = crate::util::mapping_shown(&mapping.path);
    let utf8 = mapping.encoding == encoding_rs::UTF_8;
    if utf8 {
        let mut head = [0u8; 200];
        let n = file.read(&mut head)?;
        if looks_utf16(&head[..n]) {
            return Err(ReadError::Format {
                line: 1,
                message: format!(
                    "the file looks like UTF-16, not UTF-8: set encoding = \"utf-16\" in {shown}"
                ),
            });
        }
        std::io::Seek::rewind(&mut file)?;
    }
    // Another encoding is decoded to UTF-8 as it is read (a byte-order mark
    // decides between UTF-16 LE and BE).
    let input: Box<dyn Read> = if utf8 {
        Box::new(file)
    } else {
        Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(mapping.encoding))
                .bom_override(true)
                .strip_bom(true)
                .build(file),
        )
    };
    let too_long = |line: u64| ReadError::Format {
        line,
        message: format!(
            "record longer than {MAX_RECORD} bytes (1 MiB), the limit for one CSV record; the file is rejected"
        ),
    };
    let since_record = Rc::new(Cell::new(0u64));
    let lines = Rc::new(RefCell::new(Lines::default()));
    let line_of =
        |p: Option<&csv::Position>| p.map(|p| lines.borrow_mut().line(p.byte())).unwrap_or(0);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(BUFFER)
        .from_reader(Capped {
            inner: input,
            since_record: since_record.clone(),
            lines: lines.clone(),
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
        let line = line_of(e.position());
        ReadError::Format {
            line,
            message: format!("malformed CSV: {e}"),
        }
    };
    // After each record: the cap counts from here on.
    // After each record: the cap counts from here on. Returns its line.
    let record_done = |rec: &csv::ByteRecord| {
        let line = line_of(rec.position());
        if rec.as_slice().len() + rec.len() > MAX_RECORD as usize {
            return Err(too_long(line));
        }
        since_record.set(0);
        next_line.set(line + memchr::memchr_iter(b'\n', rec.as_slice()).count() as u64 + 1);
        Ok(line)
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
        let header_line = record_done(&rec)?;
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
                    line: header_line,
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
                line: header_line,
                message: format!(
                    "ambiguous header: {}; name the column exactly in {shown}",
                    ambiguous.join("; ")
                ),
            });
        }
        if !missing.is_empty() {
            let mapping_file = &shown;
            // The header as found, bounded: it may be one huge line.
            let shown: Vec<String> = names
                .iter()
                .take(50)
                .map(|n| crate::util::bounded(n, crate::util::ECHO_MAX))
                .collect();
            let more = names.len().saturating_sub(shown.len());
            let hint = match other_delimiter(&names, delimiter, columns) {
                Some(d) => format!(
                    "; the file looks {}-delimited: set delimiter = {} in {mapping_file}",
                    quoted(&d),
                    quoted(&d)
                ),
                None => format!("; fix the file or the [columns] of {mapping_file}"),
            };
            return Err(ReadError::Format {
                line: header_line,
                message: format!(
                    "header lacks column {}; header has: {}{}{hint}",
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
                        message: format!("header = false but column {n:?} is a name (in {shown})"),
                    });
                }
            }
        }
    }
    let mut count = 0;
    while rdr.read_byte_record(&mut rec).map_err(fmt_err)? {
        let line = record_done(&rec)?;
        // A blank line, or one of delimiters only (Excel's trailing `;;;`),
        // is not a record: skipped, and counted.
        if rec
            .iter()
            .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
        {
            on(RawRecord {
                line,
                skip: true,
                ..Default::default()
            })
            .map_err(ReadError::Stopped)?;
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
                    Ok(s) => r.set(*f, s),
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

/// When a header read as one column holds another usual delimiter that
/// splits it into the mapped names: that delimiter.
fn other_delimiter(
    names: &[String],
    delimiter: u8,
    columns: &[(Field, ColumnRef)],
) -> Option<String> {
    let joined = names.join(&(delimiter as char).to_string());
    let wanted: Vec<&str> = columns
        .iter()
        .filter_map(|(_, c)| match c {
            ColumnRef::Name(n) => Some(n.as_str()),
            ColumnRef::Number(_) => None,
        })
        .collect();
    [';', ',', '\t', '|']
        .into_iter()
        .filter(|&d| d as u32 != delimiter as u32 && joined.contains(d))
        .find(|&d| {
            let parts: Vec<&str> = joined.split(d).map(str::trim).collect();
            !wanted.is_empty()
                && wanted
                    .iter()
                    .all(|w| parts.iter().any(|p| p.eq_ignore_ascii_case(w)))
        })
        .map(|d| {
            if d == '\t' {
                "\\t".to_string()
            } else {
                d.to_string()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_lines_for_lf_crlf_cr() {
        for (text, want) in [
            ("a\nb\nc\n", [1, 2, 3]),
            ("a\r\nb\r\nc\r\n", [1, 2, 3]),
            ("a\rb\rc\r", [1, 2, 3]),
        ] {
            let mut l = Lines::default();
            // Fed in pieces: a CRLF split between two reads is one line end.
            for chunk in text.as_bytes().chunks(1) {
                l.feed(chunk);
            }
            let starts: Vec<u64> = text
                .match_indices(['a', 'b', 'c'])
                .map(|(i, _)| i as u64)
                .collect();
            let got: Vec<u64> = starts.iter().map(|&s| l.line(s)).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}
