//! CSV inbound: columns by header name or 1-based number, any delimiter.

use super::{RawRecord, ReadError};
use crate::mapping::{ColumnRef, Field};
use std::path::Path;

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
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 16, file));
    let mut rec = csv::ByteRecord::new();
    let fmt_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        ReadError::Format {
            line,
            message: format!("malformed CSV: {e}"),
        }
    };
    // Resolve each mapped column to a 0-based index.
    let mut index: Vec<(Field, usize)> = vec![];
    if header {
        if !rdr.read_byte_record(&mut rec).map_err(fmt_err)? {
            return Err(ReadError::Format {
                line: 1,
                message: "empty file (no header)".into(),
            });
        }
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
        let mut missing = vec![];
        for (f, c) in columns {
            let found = match c {
                ColumnRef::Name(n) => names
                    .iter()
                    .position(|h| h == n)
                    .or_else(|| names.iter().position(|h| h.eq_ignore_ascii_case(n))),
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
        if !missing.is_empty() {
            return Err(ReadError::Format {
                line: 1,
                message: format!(
                    "header lacks column {}; header has: {}",
                    missing.join(", "),
                    names.join(", ")
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
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        // A blank line is not a record.
        if rec.len() == 1 && rec[0].iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut r = RawRecord {
            line,
            ..Default::default()
        };
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
