//! The kits and sku_map files (CONTRACT §5, rules 21, 22 and 24): read,
//! parsed into the ledger's [`Kits`] and [`SkuMap`], and kept per file in a
//! process-wide cache keyed by the content's hash, so that a file is parsed
//! once per change. Tables are read lazily, when a command needs a cart's
//! (`sync`, `run`, `status`, `explain`); `check` reads every one of them.
//! The ledger never reads a file: it is handed the parsed tables.

use crate::ledger::{Kits, SkuMap, alloc::Taken};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A problem in a kits or sku_map file: its CSV line (1 = the header).
#[derive(Debug, Clone, PartialEq)]
pub struct TableProblem {
    pub line: Option<usize>,
    pub message: String,
}

/// Why a kits or sku_map file cannot be used (and no good table of it was
/// read before), worded for `status`, the log, `/healthz` and a failed sync.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    #[error("{what} {}: cannot read: {message}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{what} {}", describe(path, problems))]
    Invalid {
        what: &'static str,
        path: PathBuf,
        problems: Vec<TableProblem>,
    },
}

/// A value of a table as its messages quote it: at most 80 characters.
fn bounded(s: &str) -> String {
    crate::util::quoted_max(s, 80)
}

/// A table file's `path:line: message` of its first problem.
pub fn describe(path: &Path, problems: &[TableProblem]) -> String {
    let first = problems.first();
    let line = first
        .and_then(|p| p.line)
        .map(|l| format!(":{l}"))
        .unwrap_or_default();
    let more = if problems.len() > 1 {
        format!(" (and {} more)", problems.len() - 1)
    } else {
        String::new()
    };
    format!(
        "{}{line}: {}{more}",
        path.display(),
        first.map_or("unreadable", |p| p.message.as_str())
    )
}

/// A field's place in [`Rows::text`]: (start, length).
type Span = (u32, u32);

/// The data rows of a CSV table: the wanted columns of each, as spans of
/// one text (the file itself when it holds no quoting), and their lines.
struct Rows {
    text: String,
    /// `columns` spans per row, row after row.
    spans: Vec<Span>,
    lines: Vec<u32>,
    columns: usize,
}

impl Rows {
    fn len(&self) -> usize {
        self.lines.len()
    }
    fn get(&self, row: usize, col: usize) -> &str {
        let (s, l) = self.spans[row * self.columns + col];
        &self.text[s as usize..(s + l) as usize]
    }
    fn span(&self, row: usize, col: usize) -> Span {
        self.spans[row * self.columns + col]
    }
}

/// The header's positions of `columns`, or a problem for each missing one.
fn column_places(header: &[&str], columns: &[&str]) -> Result<Vec<usize>, Vec<TableProblem>> {
    let mut idx = vec![];
    let mut problems = vec![];
    for c in columns {
        match header.iter().position(|h| h == c) {
            Some(i) => idx.push(i),
            None => problems.push(TableProblem {
                line: Some(1),
                message: format!(
                    "missing column {c:?} (the header must be {})",
                    columns.join(",")
                ),
            }),
        }
    }
    if problems.is_empty() {
        Ok(idx)
    } else {
        Err(problems)
    }
}

/// Reads a CSV table whose header must hold `columns`. The file is read as
/// it is: split on newlines and commas (memchr), each field trimmed, with no
/// copy of it; a file holding a `"` is read by the CSV reader instead (its
/// quoting rules), into a text of its fields.
fn read_rows(bytes: Vec<u8>, columns: &[&str]) -> Result<Rows, Vec<TableProblem>> {
    let mut text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    if text.len() >= u32::MAX as usize {
        return Err(vec![TableProblem {
            line: None,
            message: "the file is too big (4 GB or more)".into(),
        }]);
    }
    if memchr::memchr(b'"', text.as_bytes()).is_some() {
        return read_quoted(&text, columns);
    }
    if text.starts_with('\u{feff}') {
        // The csv reader skips a BOM; so does this one (3 spaces keep offsets).
        text.replace_range(..3, "   ");
    }
    let b = text.as_bytes();
    let mut at = 0usize;
    let mut line = 0u32;
    let next_line = |at: &mut usize| -> Option<(usize, usize)> {
        if *at >= b.len() {
            return None;
        }
        let start = *at;
        let end = memchr::memchr(b'\n', &b[start..]).map_or(b.len(), |i| start + i);
        *at = end + 1;
        Some((start, end))
    };
    let trimmed = |s: usize, e: usize| -> Span {
        let f = &text[s..e];
        let t = f.trim_start();
        let s2 = s + (f.len() - t.len());
        let t = t.trim_end();
        (s2 as u32, t.len() as u32)
    };
    let split = |s: usize, e: usize, out: &mut Vec<Span>| {
        out.clear();
        let mut f = s;
        for i in memchr::memchr_iter(b',', &b[s..e]) {
            out.push(trimmed(f, s + i));
            f = s + i + 1;
        }
        out.push(trimmed(f, e));
    };
    let mut fields: Vec<Span> = Vec::with_capacity(8);
    let (hs, he) = next_line(&mut at).unwrap_or((0, 0));
    line += 1;
    split(hs, he, &mut fields);
    let header: Vec<&str> = fields
        .iter()
        .map(|&(s, l)| &text[s as usize..(s + l) as usize])
        .collect();
    let idx = column_places(&header, columns)?;
    let rows_guess = memchr::memchr_iter(b'\n', b).count();
    let mut spans = Vec::with_capacity(rows_guess * columns.len());
    let mut lines = Vec::with_capacity(rows_guess);
    while let Some((s, e)) = next_line(&mut at) {
        line += 1;
        split(s, e, &mut fields);
        if fields.iter().all(|f| f.1 == 0) {
            continue;
        }
        for &i in &idx {
            spans.push(fields.get(i).copied().unwrap_or((0, 0)));
        }
        lines.push(line);
    }
    Ok(Rows {
        text,
        spans,
        lines,
        columns: columns.len(),
    })
}

/// [`read_rows`] of a file with quoting: the CSV reader's records.
fn read_quoted(text: &str, columns: &[&str]) -> Result<Rows, Vec<TableProblem>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = r.headers().map_err(|e| {
        vec![TableProblem {
            line: Some(1),
            message: format!("cannot read the header: {e}"),
        }]
    })?;
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let idx = column_places(&header, columns)?;
    let mut problems = vec![];
    let mut out = Rows {
        text: String::new(),
        spans: vec![],
        lines: vec![],
        columns: columns.len(),
    };
    // A record's line, counted from its first byte (the reader's own count
    // is one short after a `\r\n`).
    let b = text.as_bytes();
    let (mut counted_to, mut newlines) = (0usize, 0u32);
    let mut line_at = |byte: usize| -> u32 {
        let mut at = byte.min(b.len());
        while at < b.len() && (b[at] == b'\r' || b[at] == b'\n') {
            at += 1;
        }
        if at >= counted_to {
            newlines += memchr::memchr_iter(b'\n', &b[counted_to..at]).count() as u32;
            counted_to = at;
        }
        newlines + 1
    };
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                if rec.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                let line = rec.position().map_or(0, |p| line_at(p.byte() as usize));
                for &i in &idx {
                    let v = rec.get(i).unwrap_or("").trim();
                    out.spans.push((out.text.len() as u32, v.len() as u32));
                    out.text.push_str(v);
                }
                out.lines.push(line);
            }
            Err(e) => problems.push(TableProblem {
                line: e.position().map(|p| p.line() as usize),
                message: format!("cannot read the row: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn check_sku(line: usize, col: &str, v: &str, problems: &mut Vec<TableProblem>) -> bool {
    // A byte length ≤ 255 is ≤ 255 characters: count only longer values.
    let bad = v.is_empty()
        || (v.len() > 255 && v.chars().count() > 255)
        || v.bytes().any(|c| c < 0x20 || c == 0x7f)
        || (!v.is_ascii() && v.chars().any(char::is_control));
    if bad {
        problems.push(TableProblem {
            line: Some(line),
            message: format!(
                "{col} {} must be 1 to 255 characters with no control character",
                bounded(v)
            ),
        });
    }
    !bad
}

/// Parses a kits file, `kit_sku,component_sku,quantity` (rule 21); refuses
/// a kit naming itself or another kit, a quantity that is not a whole
/// number from 1 to 10⁹, a component listed twice for one kit, a missing
/// column, naming each line.
pub fn parse_kits(bytes: Vec<u8>) -> Result<Kits, Vec<TableProblem>> {
    let rows = read_rows(bytes, &["kit_sku", "component_sku", "quantity"])?;
    let mut problems = vec![];
    // Each kit's components in file order, grouped by a hash index (not a
    // B-tree look per line); the B-tree is built once, from sorted groups.
    let mut group_of: HashMap<&str, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut groups: Vec<(&str, Vec<(&str, i64)>)> = vec![];
    let mut lines: Vec<(usize, usize)> = vec![];
    for r in 0..rows.len() {
        let line = rows.lines[r] as usize;
        let (kit, comp, q) = (rows.get(r, 0), rows.get(r, 1), rows.get(r, 2));
        let ok = check_sku(line, "kit_sku", kit, &mut problems)
            & check_sku(line, "component_sku", comp, &mut problems);
        let qty = match q.strip_prefix('+').unwrap_or(q).parse::<i64>() {
            Ok(n) if (1..=1_000_000_000).contains(&n) && !q.contains(' ') => Some(n),
            _ => {
                problems.push(TableProblem {
                    line: Some(line),
                    message: format!(
                        "quantity {} must be a whole number from 1 to 1000000000",
                        bounded(q)
                    ),
                });
                None
            }
        };
        if !ok {
            continue;
        }
        if kit == comp {
            problems.push(TableProblem {
                line: Some(line),
                message: format!("kit {} names itself as a component", bounded(kit)),
            });
            continue;
        }
        let g = *group_of.entry(kit).or_insert_with(|| {
            groups.push((kit, vec![]));
            groups.len() - 1
        });
        let entry = &mut groups[g].1;
        if entry.iter().any(|(c, _)| *c == comp) {
            problems.push(TableProblem {
                line: Some(line),
                message: format!(
                    "kit {} lists component {} twice",
                    bounded(kit),
                    bounded(comp)
                ),
            });
            continue;
        }
        if let Some(q) = qty {
            entry.push((comp, q));
            lines.push((line, r));
        }
    }
    for &(line, r) in &lines {
        let comp = rows.get(r, 1);
        if group_of.contains_key(comp) {
            problems.push(TableProblem {
                line: Some(line),
                message: format!(
                    "kit {} names another kit, {}, as a component (kits of kits are not supported)",
                    bounded(rows.get(r, 0)),
                    bounded(comp)
                ),
            });
        }
    }
    problems.sort_by_key(|p| p.line);
    if !problems.is_empty() {
        return Err(problems);
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let kits: BTreeMap<String, Vec<(String, i64)>> = groups
        .into_iter()
        .map(|(k, comps)| {
            let comps = comps.into_iter().map(|(c, q)| (c.to_string(), q)).collect();
            (k.to_string(), comps)
        })
        .collect();
    Ok(Kits { kits })
}

/// Parses a sku_map file, `sku,cart_sku` (rule 22); refuses a SKU mapped
/// twice or two SKUs mapped to one cart SKU (naming both lines). The table
/// keeps the file's text and indexes into it: no string per entry.
pub fn parse_sku_map(bytes: Vec<u8>) -> Result<SkuMap, Vec<TableProblem>> {
    let rows = read_rows(bytes, &["sku", "cart_sku"])?;
    let mut problems = vec![];
    let n = rows.len();
    let mut accepted: Vec<u32> = Vec::with_capacity(n);
    let mut pairs = Vec::with_capacity(n);
    for r in 0..n {
        let line = rows.lines[r] as usize;
        let (sku, cs) = (rows.get(r, 0), rows.get(r, 1));
        if check_sku(line, "sku", sku, &mut problems)
            & check_sku(line, "cart_sku", cs, &mut problems)
        {
            pairs.push([rows.span(r, 0), rows.span(r, 1)]);
            accepted.push(line as u32);
        }
    }
    let Rows { text, .. } = rows;
    let (map, taken) = SkuMap::new(text, pairs);
    for (i, t) in taken {
        let line = accepted[i];
        let message = match t {
            Taken::Sku(j) => format!(
                "sku {} is mapped twice (first on line {})",
                bounded(map.pair_sku(i)),
                accepted[j]
            ),
            Taken::CartSku(j) => format!(
                "cart_sku {} is given to two SKUs (first on line {})",
                bounded(map.pair_cart_sku(i)),
                accepted[j]
            ),
        };
        problems.push(TableProblem {
            line: Some(line as usize),
            message,
        });
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok(map)
    } else {
        Err(problems)
    }
}

/// The last read of one table file: the content's hash, the last good
/// table and, when the file now cannot be used, why.
struct Entry<T> {
    hash: [u8; 32],
    good: Option<Arc<T>>,
    error: Option<TableError>,
}

type Cache<T> = Mutex<HashMap<PathBuf, Entry<T>>>;

fn kits_cache() -> &'static Cache<Kits> {
    static C: OnceLock<Cache<Kits>> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn map_cache() -> &'static Cache<SkuMap> {
    static C: OnceLock<Cache<SkuMap>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Rule 24: the table at `path`, read again when its content changed
/// (SHA-256 of the file at each call). A file that does not parse keeps
/// the last good table (logged once per change, and listed by
/// [`table_trouble`]); with none, the error.
fn load<T>(
    cache: &'static Cache<T>,
    path: &Path,
    parse: fn(Vec<u8>) -> Result<T, Vec<TableProblem>>,
    what: &'static str,
) -> Result<Arc<T>, TableError> {
    let read = std::fs::read(path);
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let why = TableError::Unreadable {
                what,
                path: path.to_path_buf(),
                message: e.to_string(),
            };
            let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
            let entry = c.entry(path.to_path_buf()).or_insert(Entry {
                hash: [0; 32],
                good: None,
                error: None,
            });
            if entry.error.as_ref() != Some(&why) {
                tracing::warn!("{why}; keeping the last good table");
            }
            entry.hash = [0; 32];
            entry.error = Some(why.clone());
            return entry.good.clone().ok_or(why);
        }
    };
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    {
        let c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = c.get(path)
            && e.hash == hash
        {
            return match (&e.good, &e.error) {
                (None, Some(why)) => Err(why.clone()),
                (Some(g), _) => Ok(g.clone()),
                (None, None) => Err(TableError::Invalid {
                    what,
                    path: path.to_path_buf(),
                    problems: vec![],
                }),
            };
        }
    }
    // Parsed outside the lock: a big table does not hold up the others.
    let parsed = parse(bytes);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    let entry = c.entry(path.to_path_buf()).or_insert(Entry {
        hash,
        good: None,
        error: None,
    });
    entry.hash = hash;
    match parsed {
        Ok(t) => {
            if entry.error.take().is_some() || entry.good.is_some() {
                tracing::info!("{what} {} read again", path.display());
            }
            let t = Arc::new(t);
            entry.good = Some(t.clone());
            Ok(t)
        }
        Err(problems) => {
            let why = TableError::Invalid {
                what,
                path: path.to_path_buf(),
                problems,
            };
            tracing::warn!("{why}; keeping the last good table");
            entry.error = Some(why.clone());
            entry.good.clone().ok_or(why)
        }
    }
}

/// `check`'s read of a kits file: its problems.
pub fn check_kits(bytes: Vec<u8>) -> Result<(), Vec<TableProblem>> {
    parse_kits(bytes).map(drop)
}

/// `check`'s read of a sku_map file: its problems.
pub fn check_sku_map(bytes: Vec<u8>) -> Result<(), Vec<TableProblem>> {
    parse_sku_map(bytes).map(drop)
}

/// A merchant's kits file, read again when it changed (rule 24).
pub fn load_kits(path: &Path) -> Result<Arc<Kits>, TableError> {
    load(kits_cache(), path, parse_kits, "kits file")
}

/// A cart's (or an order source's) sku_map file, read again when it changed.
pub fn load_sku_map(path: &Path) -> Result<Arc<SkuMap>, TableError> {
    load(map_cache(), path, parse_sku_map, "sku_map file")
}

/// Every table file this process read that cannot be used now (its last
/// good table, if any, in use), worded for `status`, the log and `/healthz`.
pub fn table_trouble() -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for e in kits_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        out.extend(e.error.as_ref().map(ToString::to_string));
    }
    for e in map_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        out.extend(e.error.as_ref().map(ToString::to_string));
    }
    out.sort();
    out
}

/// The trouble of one file, if it has some now.
pub fn trouble_of(path: &Path) -> Option<String> {
    let k = kits_cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = k.get(path) {
        return e.error.as_ref().map(ToString::to_string);
    }
    drop(k);
    map_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(path)
        .and_then(|e| e.error.as_ref().map(ToString::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kits(s: &str) -> Result<Kits, Vec<TableProblem>> {
        parse_kits(s.as_bytes().to_vec())
    }
    fn map(s: &str) -> Result<SkuMap, Vec<TableProblem>> {
        parse_sku_map(s.as_bytes().to_vec())
    }

    #[test]
    fn kits_refusals_name_lines() {
        let p = kits("kit_sku,component_sku,quantity\nK,K,1\nK,A,0\nK2,K3,1\nK3,A,1\nK4,A,1.5\n")
            .unwrap_err();
        let lines: Vec<_> = p.iter().map(|p| p.line.unwrap()).collect();
        assert_eq!(lines, vec![2, 3, 4, 6]);
        assert!(p[0].message.contains("names itself"));
        assert!(p[2].message.contains("another kit"));
        let p = kits("kit,component_sku,quantity\n").unwrap_err();
        assert_eq!(p[0].line, Some(1));
        assert!(p[0].message.contains("missing column \"kit_sku\""));
    }

    #[test]
    fn sku_map_refuses_duplicates_either_way() {
        let p = map("sku,cart_sku\nA,X\nA,Y\nB,X\n").unwrap_err();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].line, Some(3));
        assert_eq!(p[0].message, "sku \"A\" is mapped twice (first on line 2)");
        assert_eq!(p[1].line, Some(4));
        assert_eq!(
            p[1].message,
            "cart_sku \"X\" is given to two SKUs (first on line 2)"
        );
    }

    /// The split reader and the CSV reader (a file with quoting) agree:
    /// trimmed fields, blank lines skipped, the BOM, `\r\n`, short rows,
    /// columns in any order, and line numbers.
    #[test]
    fn both_readers_agree() {
        let plain = "\u{feff}cart_sku , extra,sku\r\n W-1 ,x, A \r\n\r\n  ,  \nW-2,,B\nW-3\n";
        let quoted = plain.replace("W-2", "\"W-2\"");
        for text in [plain, quoted.as_str()] {
            let r = read_rows(text.as_bytes().to_vec(), &["sku", "cart_sku"]).unwrap();
            let got: Vec<(u32, &str, &str)> = (0..r.len())
                .map(|i| (r.lines[i], r.get(i, 0), r.get(i, 1)))
                .collect();
            assert_eq!(
                got,
                vec![(2, "A", "W-1"), (5, "B", "W-2"), (6, "", "W-3")],
                "{text:?}"
            );
        }
        let m = map("sku,cart_sku\nA,W-1\n\"B,1\",W-2\n").unwrap();
        assert_eq!(m.cart_sku("B,1"), Some("W-2"));
        assert_eq!(m.sku("W-1"), Some("A"));
        assert_eq!(m.cart_sku("C"), None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = TableError::Invalid {
            what: "sku_map file",
            path: "maps/a.csv".into(),
            problems: map("sku,cart_sku\nA,X\nA,Y\nB,Y\nC,\n").unwrap_err(),
        };
        assert_eq!(
            e.to_string(),
            "sku_map file maps/a.csv:3: sku \"A\" is mapped twice (first on line 2) (and 1 more)"
        );
    }
}
