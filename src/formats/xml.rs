//! XML inventory files in, XML inventory feeds out — both streaming.
//!
//! Reading ([`read_items`]) holds only the current item, so memory stays
//! bounded whatever the file size. It is strict on purpose, because the caller
//! applies a file all-or-nothing and rolls back on the final error:
//! - any `<!DOCTYPE` is refused, so no DTD is read and no external or custom
//!   entity can ever be expanded; only the five predefined entities and
//!   numeric character references are decoded;
//! - malformed markup, invalid UTF-8, an encoding other than UTF-8, an empty
//!   file and a truncated file (even after complete items were emitted) are
//!   errors, each with the 1-based line where it was found;
//! - one markup or text run longer than [`MAX_EVENT_BYTES`] is an error, which
//!   is what bounds memory against hostile input.
//!
//! Writing ([`XmlWriter`]) rejects, rather than strips, characters that XML 1.0
//! cannot carry (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF): silently
//! changing a SKU would be worse than refusing it. The check runs before an
//! item is written, so a rejected item leaves the output untouched and the
//! caller may skip it and go on ([`forbidden_char`] lets it check up front).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::io::{self, BufRead, Read, Write};

use quick_xml::encoding::EncodingError;
use quick_xml::errors::{Error as QxError, SyntaxError};
use quick_xml::escape::{EscapeError, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// Longest single piece of markup or text accepted (a tag with its
/// attributes, one text run, a comment...), give or take one read buffer.
/// Bounds the reader's memory.
pub const MAX_EVENT_BYTES: u64 = 1 << 20;
/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// Boxed error returned by an `on_item` callback.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Errors of [`read_items`]. Every variant about the document carries the
/// 1-based line number where the problem was found.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("invalid XML mapping: {0}")]
    Spec(String),
    #[error("empty document: no root element (line {line})")]
    Empty { line: u64 },
    #[error("DTD not allowed (line {line})")]
    Dtd { line: u64 },
    #[error("invalid UTF-8 (line {line})")]
    InvalidUtf8 { line: u64 },
    #[error("unsupported encoding \"{encoding}\": only UTF-8 is accepted (line {line})")]
    UnsupportedEncoding { encoding: String, line: u64 },
    #[error("undefined entity &{name}; (line {line})")]
    UndefinedEntity { name: String, line: u64 },
    #[error("malformed XML: {message} (line {line})")]
    Malformed { message: String, line: u64 },
    #[error("unexpected end of file: <{open}> is not closed (line {line})")]
    Truncated { open: String, line: u64 },
    #[error("root element is <{found}>, the mapping expects <{expected}> (line {line})")]
    WrongRoot {
        expected: String,
        found: String,
        line: u64,
    },
    #[error("item {ordinal}: field {field} (\"{path}\") appears more than once (line {line})")]
    DuplicateField {
        ordinal: u64,
        field: String,
        path: String,
        line: u64,
    },
    #[error("markup or text longer than {limit} bytes (line {line})")]
    TooLarge { limit: u64, line: u64 },
    #[error("elements nested deeper than {limit} levels (line {line})")]
    TooDeep { limit: usize, line: u64 },
    #[error("read error (line {line}): {source}")]
    Io {
        line: u64,
        #[source]
        source: io::Error,
    },
    /// The `on_item` callback refused an item.
    #[error("item {ordinal} (line {line}): {source}")]
    Item {
        ordinal: u64,
        line: u64,
        #[source]
        source: BoxError,
    },
}

impl XmlError {
    /// Line number of the problem, when it is about the document.
    pub fn line(&self) -> Option<u64> {
        use XmlError::*;
        match self {
            Spec(_) => None,
            Empty { line }
            | Dtd { line }
            | InvalidUtf8 { line }
            | TooLarge { line, .. }
            | UnsupportedEncoding { line, .. }
            | UndefinedEntity { line, .. }
            | Malformed { line, .. }
            | Truncated { line, .. }
            | WrongRoot { line, .. }
            | DuplicateField { line, .. }
            | TooDeep { line, .. }
            | Io { line, .. }
            | Item { line, .. } => Some(*line),
        }
    }
}

/// Where records and their fields sit in an inbound XML file (mapping keys
/// `item` and `[fields]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSpec {
    /// Element path from the root to each record, e.g. `"Inventory/Item"`.
    pub item_path: String,
    /// `(field name, location)`; location is a child element path relative to
    /// the item (`"SKU"`, `"Stock/OnHand"`) or an attribute: `"@qty"` on the
    /// item itself, `"Stock/@qty"` on a child.
    pub fields: Vec<(String, String)>,
}

impl ItemSpec {
    /// Checks the paths, for `check` to report before any file arrives.
    pub fn validate(&self) -> Result<(), XmlError> {
        Plan::new(self).map(|_| ())
    }
}

/// One record of an inbound file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlItem {
    /// 1-based number of the item in the file.
    pub ordinal: u64,
    /// Line where the item element starts.
    pub line: u64,
    /// One value per `ItemSpec::fields`, same order. `None`: absent. Text is
    /// raw (not trimmed) with entities decoded and line ends normalized;
    /// attribute values are normalized as XML requires (tab/newline → space).
    pub values: Vec<Option<String>>,
}

/// What a successful read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSummary {
    pub items: u64,
    pub bytes: u64,
    pub lines: u64,
}

/// A field location, split once up front.
#[derive(Debug)]
enum FieldPath {
    /// Text of the element at this path (relative to the item, non-empty).
    Text(Vec<String>),
    /// Attribute `attr` of the element at `elems` (empty: the item itself).
    Attr { elems: Vec<String>, attr: String },
}

#[derive(Debug)]
struct Plan {
    item: Vec<String>,
    fields: Vec<FieldPath>,
}

impl Plan {
    fn new(spec: &ItemSpec) -> Result<Plan, XmlError> {
        let bad = |m: String| XmlError::Spec(m);
        let split = |path: &str| -> Option<Vec<String>> {
            let parts: Vec<String> = path.split('/').map(str::to_owned).collect();
            parts.iter().all(|p| valid_element_name(p)).then_some(parts)
        };
        // A leading "/" (absolute path) is accepted and means the same.
        let item = split(spec.item_path.trim().trim_start_matches('/')).ok_or_else(|| {
            bad(format!(
                "item path \"{}\" is not a valid element path",
                spec.item_path
            ))
        })?;
        if spec.fields.is_empty() {
            return Err(bad("no fields".into()));
        }
        let mut fields = Vec::with_capacity(spec.fields.len());
        for (name, loc) in &spec.fields {
            let loc = loc.trim();
            let invalid = || {
                bad(format!(
                    "field {name}: \"{loc}\" is not a child element path or @attribute"
                ))
            };
            let path = match loc.rsplit_once('/') {
                _ if loc.starts_with('@') => FieldPath::Attr {
                    elems: vec![],
                    attr: loc[1..].to_owned(),
                },
                Some((elems, attr)) if attr.starts_with('@') => FieldPath::Attr {
                    elems: split(elems).ok_or_else(invalid)?,
                    attr: attr[1..].to_owned(),
                },
                _ => FieldPath::Text(split(loc).ok_or_else(invalid)?),
            };
            if let FieldPath::Attr { attr, .. } = &path
                && !valid_element_name(attr)
            {
                return Err(invalid());
            }
            fields.push(path);
        }
        Ok(Plan { item, fields })
    }
}

/// A `BufRead` wrapper that counts lines as bytes are consumed, so line
/// numbers cost one pass over bytes quick-xml reads anyway. It remembers the
/// newline offsets of the current event only, to place an error inside it.
struct LineCounter<R> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    /// 1-based line at `pos`.
    line: u64,
    /// Offset and line where the current event started.
    mark: u64,
    mark_line: u64,
    /// First byte of the current event (`<` for markup).
    first: Option<u8>,
    /// Offsets, relative to `mark`, of newlines consumed since `mark`.
    newlines: Vec<u32>,
    /// Set when an event ran past `MAX_EVENT_BYTES`.
    too_large: bool,
}

impl<R: BufRead> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            pos: 0,
            line: 1,
            mark: 0,
            mark_line: 1,
            first: None,
            newlines: Vec::new(),
            too_large: false,
        }
    }

    fn start_event(&mut self) {
        self.mark = self.pos;
        self.mark_line = self.line;
        self.first = None;
        self.newlines.clear();
    }

    /// Line of byte offset `off`, which must lie in the current event.
    fn line_at(&self, off: u64) -> u64 {
        let rel = off.clamp(self.mark, self.pos) - self.mark;
        self.mark_line
            + self
                .newlines
                .iter()
                .take_while(|&&n| u64::from(n) < rel)
                .count() as u64
    }
}

impl<R: BufRead> Read for LineCounter<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCounter<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos - self.mark > MAX_EVENT_BYTES {
            self.too_large = true;
            return Err(io::Error::other("event too large"));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // fill_buf on a non-empty buffer returns it again without reading.
        if let Ok(buf) = self.inner.fill_buf() {
            let chunk = &buf[..amt.min(buf.len())];
            if self.first.is_none() {
                self.first = chunk.first().copied();
            }
            let base = self.pos - self.mark;
            for (i, _) in chunk.iter().enumerate().filter(|(_, b)| **b == b'\n') {
                // Fits: an event is at most MAX_EVENT_BYTES + one buffer long.
                self.newlines.push((base + i as u64) as u32);
                self.line += 1;
            }
        }
        self.pos += amt as u64;
        self.inner.consume(amt);
    }
}

/// The item being collected.
struct Current {
    ordinal: u64,
    line: u64,
    values: Vec<Option<String>>,
    /// `(field index, depth of its element)` for text fields being captured.
    open: Vec<(usize, usize)>,
}

/// Reads every item of `spec` from `reader`, calling `on_item` for each, in
/// file order, as soon as it is complete (the item is lent: its strings are
/// reused for the next one). An error from `on_item` stops the
/// read and is returned as [`XmlError::Item`]. Items emitted before an error
/// must be discarded by the caller: the file as a whole was not valid.
pub fn read_items<R, E>(
    reader: R,
    spec: &ItemSpec,
    mut on_item: impl FnMut(&XmlItem) -> Result<(), E>,
) -> Result<ReadSummary, XmlError>
where
    R: BufRead,
    E: Into<BoxError>,
{
    let plan = Plan::new(spec)?;
    let mut xml = Reader::from_reader(LineCounter::new(reader));
    // Defaults already check end names and refuse dangling `&`; be explicit.
    let cfg = xml.config_mut();
    cfg.check_end_names = true;
    cfg.allow_unmatched_ends = false;
    cfg.allow_dangling_amp = false;
    cfg.expand_empty_elements = false;

    let mut buf = Vec::new();
    // Open element names; reused slots avoid an allocation per element.
    let mut names: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut items = 0u64;
    let mut current: Option<Current> = None;
    // Value strings and lists of finished items, reused.
    let mut spare = Spare::default();

    loop {
        xml.get_mut().start_event();
        buf.clear();
        let event = match xml.read_event_into(&mut buf) {
            Ok(ev) => ev,
            Err(err) => return Err(convert_error(err, &xml)),
        };
        let line = xml.get_ref().mark_line;
        let outside_root = depth == 0;
        match event {
            Event::Decl(decl) => match decl.encoding() {
                None => {}
                Some(Ok(enc))
                    if enc.eq_ignore_ascii_case("utf-8") || enc.eq_ignore_ascii_case("utf8") => {}
                Some(Ok(enc)) => {
                    return Err(XmlError::UnsupportedEncoding {
                        encoding: enc.into_owned(),
                        line,
                    });
                }
                Some(Err(err)) => {
                    return Err(malformed(&format!("bad XML declaration: {err}"), line));
                }
            },
            Event::DocType(_) => return Err(XmlError::Dtd { line }),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                if outside_root && seen_root {
                    return Err(malformed("element after the end of the root element", line));
                }
                if depth == MAX_DEPTH {
                    return Err(XmlError::TooDeep {
                        limit: MAX_DEPTH,
                        line,
                    });
                }
                let name = e.name().into_inner();
                if depth == 0 && name != plan.item[0] {
                    return Err(XmlError::WrongRoot {
                        expected: plan.item[0].clone(),
                        found: name.to_owned(),
                        line,
                    });
                }
                seen_root = true;
                check_attributes(e, line)?;
                // Push the name, reusing the slot's allocation.
                if names.len() == depth {
                    names.push(String::new());
                }
                names[depth].clear();
                names[depth].push_str(name);
                depth += 1;

                if current.is_none() && names[..depth] == plan.item[..] {
                    items += 1;
                    current = Some(spare.current(items, line, plan.fields.len()));
                }
                let item_depth = plan.item.len();
                if let Some(cur) = current.as_mut() {
                    let rel = &names[item_depth..depth];
                    for (i, field) in plan.fields.iter().enumerate() {
                        let value = match field {
                            FieldPath::Text(path) if path[..] == *rel => {
                                cur.open.push((i, depth));
                                Some(spare.string())
                            }
                            FieldPath::Attr { elems, attr } if elems[..] == *rel => {
                                attribute(e, attr, line)?.map(|v| {
                                    let mut s = spare.string();
                                    s.push_str(&v);
                                    s
                                })
                            }
                            _ => continue,
                        };
                        if cur.values[i].is_some() {
                            return Err(XmlError::DuplicateField {
                                ordinal: cur.ordinal,
                                field: spec.fields[i].0.clone(),
                                path: spec.fields[i].1.clone(),
                                line,
                            });
                        }
                        cur.values[i] = value;
                    }
                }
                if empty {
                    close_element(
                        &mut depth,
                        &mut current,
                        &mut spare,
                        plan.item.len(),
                        &mut on_item,
                    )?;
                }
            }
            Event::End(_) => {
                // quick-xml has already checked the name against the open tag.
                close_element(
                    &mut depth,
                    &mut current,
                    &mut spare,
                    plan.item.len(),
                    &mut on_item,
                )?;
            }
            Event::Text(t) => {
                if outside_root {
                    if !t.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
                        return Err(malformed("text outside the root element", line));
                    }
                } else {
                    append_text(&mut current, &t.xml10_content());
                }
            }
            Event::CData(c) => {
                if outside_root {
                    return Err(malformed("CDATA outside the root element", line));
                }
                append_text(&mut current, &c.xml10_content());
            }
            Event::GeneralRef(r) => {
                if outside_root {
                    return Err(malformed("entity reference outside the root element", line));
                }
                let mut tmp = [0u8; 4];
                let text: &str = match r.resolve_char_ref() {
                    Ok(Some(ch)) if is_xml_char(ch) => ch.encode_utf8(&mut tmp),
                    Ok(Some(_)) | Err(_) => {
                        return Err(malformed(
                            &format!("invalid character reference &{};", &*r),
                            line,
                        ));
                    }
                    Ok(None) => {
                        resolve_predefined_entity(&r).ok_or_else(|| XmlError::UndefinedEntity {
                            name: r.to_string(),
                            line,
                        })?
                    }
                };
                append_text(&mut current, text);
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }

    let counter = xml.get_ref();
    if depth > 0 {
        return Err(XmlError::Truncated {
            open: names[depth - 1].clone(),
            line: counter.line,
        });
    }
    if !seen_root {
        return Err(XmlError::Empty { line: counter.line });
    }
    Ok(ReadSummary {
        items,
        bytes: counter.pos,
        lines: counter.line,
    })
}

fn malformed(message: &str, line: u64) -> XmlError {
    XmlError::Malformed {
        message: message.to_owned(),
        line,
    }
}

/// Pops one element; closes text fields ending there and emits the item
/// when its own element ends.
fn close_element<E: Into<BoxError>>(
    depth: &mut usize,
    current: &mut Option<Current>,
    spare: &mut Spare,
    item_depth: usize,
    on_item: &mut impl FnMut(&XmlItem) -> Result<(), E>,
) -> Result<(), XmlError> {
    if let Some(cur) = current.as_mut() {
        cur.open.retain(|&(_, d)| d < *depth);
    }
    *depth -= 1;
    if *depth == item_depth - 1
        && let Some(cur) = current.take()
    {
        let (ordinal, line) = (cur.ordinal, cur.line);
        let item = XmlItem {
            ordinal,
            line,
            values: cur.values,
        };
        let done = on_item(&item);
        spare.keep(item.values, cur.open);
        done.map_err(|e| XmlError::Item {
            ordinal,
            line,
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Strings and lists of finished items, handed out again for the next.
#[derive(Default)]
struct Spare {
    strings: Vec<String>,
    values: Option<Vec<Option<String>>>,
    open: Option<Vec<(usize, usize)>>,
}

impl Spare {
    fn string(&mut self) -> String {
        self.strings.pop().unwrap_or_default()
    }

    fn current(&mut self, ordinal: u64, line: u64, fields: usize) -> Current {
        let mut values = self.values.take().unwrap_or_default();
        values.clear();
        values.resize(fields, None);
        let mut open = self.open.take().unwrap_or_default();
        open.clear();
        Current {
            ordinal,
            line,
            values,
            open,
        }
    }

    fn keep(&mut self, mut values: Vec<Option<String>>, open: Vec<(usize, usize)>) {
        for mut s in values.iter_mut().filter_map(Option::take) {
            s.clear();
            self.strings.push(s);
        }
        self.values = Some(values);
        self.open = Some(open);
    }
}

/// Text anywhere inside a captured element belongs to it (like XPath string()).
fn append_text(current: &mut Option<Current>, text: &str) {
    if let Some(cur) = current.as_mut() {
        for &(i, _) in &cur.open {
            if let Some(v) = cur.values[i].as_mut() {
                v.push_str(text);
            }
        }
    }
}

/// Validates every attribute of an element (well-formedness, known entities).
fn check_attributes(e: &BytesStart<'_>, line: u64) -> Result<(), XmlError> {
    // Most elements have none: nothing to parse.
    if e.attributes_raw()
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Ok(());
    }
    for attr in e.attributes() {
        let attr = attr.map_err(|err| malformed(&format!("bad attribute: {err}"), line))?;
        if attr.value.contains('&') {
            attr.normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| escape_error(err, line))?;
        }
    }
    Ok(())
}

fn attribute<'e>(
    e: &'e BytesStart<'_>,
    name: &str,
    line: u64,
) -> Result<Option<Cow<'e, str>>, XmlError> {
    for attr in e.attributes() {
        let attr = attr.map_err(|err| malformed(&format!("bad attribute: {err}"), line))?;
        if attr.key.into_inner() == name {
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| escape_error(err, line))?;
            return Ok(Some(value));
        }
    }
    Ok(None)
}

fn escape_error(err: QxError, line: u64) -> XmlError {
    match err {
        QxError::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            XmlError::UndefinedEntity { name, line }
        }
        other => malformed(&other.to_string(), line),
    }
}

/// Maps a quick-xml error to ours, with the line where it happened.
fn convert_error<R: BufRead>(err: QxError, xml: &Reader<LineCounter<R>>) -> XmlError {
    let counter = xml.get_ref();
    if counter.too_large {
        return XmlError::TooLarge {
            limit: MAX_EVENT_BYTES,
            line: counter.mark_line,
        };
    }
    match err {
        QxError::Encoding(EncodingError::Utf8(e)) => {
            // The bad byte's offset inside the event; markup content starts after `<`.
            let skip = u64::from(counter.first == Some(b'<'));
            let off = counter.mark + skip + e.valid_up_to() as u64;
            XmlError::InvalidUtf8 {
                line: counter.line_at(off),
            }
        }
        QxError::Encoding(other) => malformed(&other.to_string(), counter.mark_line),
        QxError::Syntax(SyntaxError::UnclosedDoctype) => XmlError::Dtd {
            line: counter.mark_line,
        },
        QxError::Io(e) => XmlError::Io {
            line: counter.line,
            source: io::Error::new(e.kind(), e.to_string()),
        },
        QxError::Escape(EscapeError::UnrecognizedEntity(_, name)) => XmlError::UndefinedEntity {
            name,
            line: counter.mark_line,
        },
        other => {
            let line = counter.line_at(xml.error_position());
            malformed(&other.to_string(), line)
        }
    }
}

/// Characters XML 1.0 allows (Rust `char` already excludes surrogates).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
        && !matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// First character of `s` that XML 1.0 cannot carry, if any.
pub fn forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|&c| !is_xml_char(c))
}

/// Simplified XML Name check for element (and attribute) names used in
/// mappings: a letter or `_`, then letters, digits, `-`, `_` or `.`. No colon,
/// so no namespace prefixes.
pub fn valid_element_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Outbound XML feed layout (mapping keys `root`, `item`, `fields`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSpec {
    pub root: String,
    pub item: String,
    /// `(element name, field)`; items are written with one child per entry,
    /// in this order.
    pub fields: Vec<(String, String)>,
}

/// Errors of [`XmlWriter`].
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("invalid XML element name \"{0}\"")]
    InvalidName(String),
    #[error("XML feed has no fields")]
    NoFields,
    #[error("item has {got} values but the feed has {expected} fields")]
    FieldCount { expected: usize, got: usize },
    #[error("<{element}>: character U+{code:04X} is not allowed in XML")]
    ForbiddenChar { element: String, code: u32 },
    #[error("write error: {0}")]
    Io(#[from] io::Error),
}

/// Streaming writer of an XML feed:
/// ```text
/// <?xml version="1.0" encoding="UTF-8"?>
/// <Root>
///   <Item><SKU>A-1</SKU><Quantity>5</Quantity></Item>
/// </Root>
/// ```
/// Each item is written with one `write_all`; wrap a file in a `BufWriter`
/// anyway for fewer system calls.
pub struct XmlWriter<W: Write> {
    out: W,
    root: String,
    item: String,
    elements: Vec<String>,
    line: String,
}

impl<W: Write> XmlWriter<W> {
    /// Checks the names and writes the declaration and the root start tag.
    pub fn new(mut out: W, spec: &FeedSpec) -> Result<Self, FeedError> {
        let names = [&spec.root, &spec.item]
            .into_iter()
            .chain(spec.fields.iter().map(|(e, _)| e));
        if let Some(bad) = names.into_iter().find(|n| !valid_element_name(n)) {
            return Err(FeedError::InvalidName(bad.clone()));
        }
        if spec.fields.is_empty() {
            return Err(FeedError::NoFields);
        }
        write!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{}>\n",
            spec.root
        )?;
        Ok(XmlWriter {
            out,
            root: spec.root.clone(),
            item: spec.item.clone(),
            elements: spec.fields.iter().map(|(e, _)| e.clone()).collect(),
            line: String::new(),
        })
    }

    /// Writes one item; `values` in `FeedSpec::fields` order. On
    /// `ForbiddenChar` or `FieldCount` nothing was written.
    pub fn write_item(&mut self, values: &[&str]) -> Result<(), FeedError> {
        if values.len() != self.elements.len() {
            return Err(FeedError::FieldCount {
                expected: self.elements.len(),
                got: values.len(),
            });
        }
        for (element, value) in self.elements.iter().zip(values) {
            if let Some(c) = forbidden_char(value) {
                return Err(FeedError::ForbiddenChar {
                    element: element.clone(),
                    code: c as u32,
                });
            }
        }
        let line = &mut self.line;
        line.clear();
        line.push_str("  <");
        line.push_str(&self.item);
        line.push('>');
        for (element, value) in self.elements.iter().zip(values) {
            line.push('<');
            line.push_str(element);
            line.push('>');
            escape_into(line, value);
            line.push_str("</");
            line.push_str(element);
            line.push('>');
        }
        line.push_str("</");
        line.push_str(&self.item);
        line.push_str(">\n");
        self.out.write_all(line.as_bytes())?;
        Ok(())
    }

    /// Closes the root, flushes and hands the writer back.
    pub fn finish(mut self) -> Result<W, FeedError> {
        writeln!(self.out, "</{}>", self.root)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Escapes text content. `\r` becomes `&#13;` because a reader would turn a
/// raw CR into LF.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn spec(item: &str, fields: &[(&str, &str)]) -> ItemSpec {
        ItemSpec {
            item_path: item.into(),
            fields: fields
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn inv_spec() -> ItemSpec {
        spec(
            "Inventory/Item",
            &[("sku", "SKU"), ("quantity", "Quantity")],
        )
    }

    fn read_all(xml: &[u8], spec: &ItemSpec) -> Result<(Vec<XmlItem>, ReadSummary), XmlError> {
        let mut items = Vec::new();
        let summary = read_items(Cursor::new(xml), spec, |it| {
            items.push(it.clone());
            Ok::<_, BoxError>(())
        })?;
        Ok((items, summary))
    }

    fn vals(item: &XmlItem) -> Vec<Option<&str>> {
        item.values.iter().map(|v| v.as_deref()).collect()
    }

    fn feed_spec() -> FeedSpec {
        FeedSpec {
            root: "Inventory".into(),
            item: "Item".into(),
            fields: vec![
                ("SKU".into(), "sku".into()),
                ("Quantity".into(), "quantity".into()),
            ],
        }
    }

    #[test]
    fn writes_exact_bytes() {
        let mut w = XmlWriter::new(Vec::new(), &feed_spec()).unwrap();
        w.write_item(&["A-1", "5"]).unwrap();
        w.write_item(&["B&B <\"x\"> 'y'", "0"]).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventory>\n\
             \x20 <Item><SKU>A-1</SKU><Quantity>5</Quantity></Item>\n\
             \x20 <Item><SKU>B&amp;B &lt;&quot;x&quot;&gt; &apos;y&apos;</SKU><Quantity>0</Quantity></Item>\n\
             </Inventory>\n"
        );
    }

    #[test]
    fn empty_feed_is_valid() {
        let out = XmlWriter::new(Vec::new(), &feed_spec())
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(
            out,
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventory>\n</Inventory>\n"
        );
        let (items, _) = read_all(&out, &inv_spec()).unwrap();
        assert!(items.is_empty());
    }

    #[test]
    fn writer_rejects_forbidden_chars_and_writes_nothing() {
        let mut w = XmlWriter::new(Vec::new(), &feed_spec()).unwrap();
        let err = w.write_item(&["A\u{1}B", "5"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<SKU>: character U+0001 is not allowed in XML"
        );
        let err = w.write_item(&["A", "5", "x"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "item has 3 values but the feed has 2 fields"
        );
        w.write_item(&["ok\ttab", "1"]).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(out.lines().count(), 4);
        assert_eq!(forbidden_char("fine\u{FFFE}"), Some('\u{FFFE}'));
        assert_eq!(forbidden_char("fine é 漢 😀\r\n\t"), None);
    }

    #[test]
    fn writer_rejects_bad_names() {
        let mut s = feed_spec();
        s.fields[0].0 = "1SKU".into();
        assert_eq!(
            XmlWriter::new(Vec::new(), &s).err().unwrap().to_string(),
            "invalid XML element name \"1SKU\""
        );
        for good in ["Item", "_x", "a.b-c_d9", "Größe"] {
            assert!(valid_element_name(good), "{good}");
        }
        for bad in ["", "1a", "-a", ".a", "a b", "ns:a", "a/b", "a&b", "<a>"] {
            assert!(!valid_element_name(bad), "{bad}");
        }
    }

    #[test]
    fn round_trip() {
        let values = [
            ("A-1", "5"),
            ("amp & lt < gt > quotes \" '", "-3"),
            ("  spaced  ", "+12"),
            ("multi\nline\r\nwith CR", "0"),
            ("unicode é 漢字 😀", "7"),
        ];
        let mut w = XmlWriter::new(Vec::new(), &feed_spec()).unwrap();
        for (s, q) in values {
            w.write_item(&[s, q]).unwrap();
        }
        let out = w.finish().unwrap();
        let (items, summary) = read_all(&out, &inv_spec()).unwrap();
        assert_eq!(summary.items, 5);
        assert_eq!(summary.bytes, out.len() as u64);
        for (i, (item, (s, q))) in items.iter().zip(values).enumerate() {
            assert_eq!(item.ordinal, i as u64 + 1);
            assert_eq!(vals(item), vec![Some(s), Some(q)]);
        }
        // Line of each item start; the 4th value spans three lines (CR is escaped).
        assert_eq!(
            items.iter().map(|i| i.line).collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 9]
        );
    }

    #[test]
    fn attributes_nested_children_and_absent_fields() {
        let xml = br#"<?xml version="1.0"?>
<Feed>
  <Stock>
    <Item qty="12" sku="A&amp;B">
      <Stock><OnHand>4</OnHand><Loc code="X1"/></Stock>
      <Desc>Big <b>bold</b> thing<![CDATA[ <raw> & ]]></Desc>
    </Item>
    <Item qty=" 3 "/>
    <Other><Item qty="99"/></Other>
  </Stock>
</Feed>
"#;
        let s = spec(
            "Feed/Stock/Item",
            &[
                ("sku", "@sku"),
                ("qty", "@qty"),
                ("onhand", "Stock/OnHand"),
                ("loc", "Stock/Loc/@code"),
                ("desc", "Desc"),
            ],
        );
        let (items, summary) = read_all(xml, &s).unwrap();
        assert_eq!(summary.items, 2);
        assert_eq!(summary.lines, 12);
        assert_eq!(items[0].line, 4);
        assert_eq!(
            vals(&items[0]),
            vec![
                Some("A&B"),
                Some("12"),
                Some("4"),
                Some("X1"),
                Some("Big bold thing <raw> & ")
            ]
        );
        assert_eq!(items[1].line, 8);
        assert_eq!(vals(&items[1]), vec![None, Some(" 3 "), None, None, None]);
    }

    #[test]
    fn entities_and_char_refs_are_decoded() {
        let xml = b"<Inventory><Item><SKU>a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;</SKU><Quantity/></Item></Inventory>";
        let (items, _) = read_all(xml, &inv_spec()).unwrap();
        assert_eq!(vals(&items[0]), vec![Some("a&b<>\"'AB"), Some("")]);
    }

    #[test]
    fn duplicate_field_is_an_error() {
        let xml = b"<Inventory>\n<Item><SKU>a</SKU><SKU>b</SKU></Item></Inventory>";
        let err = read_all(xml, &inv_spec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "item 1: field sku (\"SKU\") appears more than once (line 2)"
        );
    }

    #[test]
    fn callback_error_stops_the_read() {
        let xml = b"<Inventory>\n<Item><SKU>a</SKU></Item>\n<Item><SKU>bad</SKU></Item>\n<Item/></Inventory>";
        let mut seen = 0;
        let err = read_items(Cursor::new(&xml[..]), &inv_spec(), |it| {
            seen += 1;
            if it.values[0].as_deref() == Some("bad") {
                Err("quantity missing")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(seen, 2);
        assert_eq!(err.to_string(), "item 2 (line 3): quantity missing");
    }

    #[test]
    fn bad_specs_are_rejected() {
        for (item, field) in [
            ("", "SKU"),
            ("Inventory//Item", "SKU"),
            ("Inventory/Item", "@"),
            ("Inventory/Item", "a b"),
            ("Inventory/Item", "x/@1"),
        ] {
            let s = spec(item, &[("sku", field)]);
            assert!(
                matches!(s.validate(), Err(XmlError::Spec(_))),
                "{item} {field}"
            );
        }
        assert!(inv_spec().validate().is_ok());
        assert!(
            spec("/Inventory/Item", &[("sku", "SKU")])
                .validate()
                .is_ok()
        );
    }

    fn err_of(xml: &[u8]) -> String {
        read_all(xml, &inv_spec()).unwrap_err().to_string()
    }

    #[test]
    fn dtd_refused_billion_laughs() {
        let xml = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Inventory><Item><SKU>&lol9;</SKU></Item></Inventory>"#;
        let mut called = false;
        let err = read_items(Cursor::new(&xml[..]), &inv_spec(), |_| {
            called = true;
            Ok::<_, BoxError>(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "DTD not allowed (line 2)");
        assert!(!called, "no item may be emitted");
    }

    #[test]
    fn dtd_refused_external_entity() {
        let xml = b"<?xml version=\"1.0\"?>\n\n<!DOCTYPE x [ <!ENTITY x SYSTEM \"file:///etc/passwd\"> ]>\n<Inventory><Item><SKU>&x;</SKU></Item></Inventory>";
        assert_eq!(err_of(xml), "DTD not allowed (line 3)");
        // Unclosed DOCTYPE is still a DTD.
        assert_eq!(
            err_of(b"<!DOCTYPE Inventory [ <!ENTITY"),
            "DTD not allowed (line 1)"
        );
        // Anywhere in the document.
        assert_eq!(
            err_of(b"<Inventory>\n<!DOCTYPE x></Inventory>"),
            "DTD not allowed (line 2)"
        );
    }

    #[test]
    fn undefined_entity_without_dtd_is_refused() {
        assert_eq!(
            err_of(b"<Inventory>\n<Item><SKU>&x;</SKU></Item></Inventory>"),
            "undefined entity &x; (line 2)"
        );
        assert_eq!(
            err_of(b"<Inventory>\n\n<Item sku=\"&ext;\"/></Inventory>"),
            "undefined entity &ext; (line 3)"
        );
    }

    #[test]
    fn malformed_corpus_is_rejected_with_lines() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty document: no root element (line 1)"),
            (b"  \n\n", "empty document: no root element (line 3)"),
            (b"<?xml version=\"1.0\"?>\n<!-- only a comment -->\n", "empty document: no root element (line 3)"),
            (b"SKU,Quantity\nA,1\n", "malformed XML: text outside the root element (line 1)"),
            (
                b"<Inventory>\n  <Item><SKU>A</SKU><Quantity>1</Quantity></Item>\n  <Item><SKU>B</SKU>",
                "unexpected end of file: <Item> is not closed (line 3)",
            ),
            (
                b"<Inventory>\n  <Item><SKU>A</SKU></Item>\n",
                "unexpected end of file: <Inventory> is not closed (line 3)",
            ),
            (b"<Inventory>\n  <Item><SKU>A</SKU></Item>\n  <Item><SK", "malformed XML: syntax error: tag not closed: `>` not found before end of input (line 3)"),
            (
                b"<Inventory>\n<Item>\n<SKU>A</Quantity>\n</Item></Inventory>",
                "malformed XML: ill-formed document: expected `</SKU>`, but `</Quantity>` was found (line 3)",
            ),
            (b"<Inventory>\n</Inventory>\n</Inventory>", "malformed XML: ill-formed document: close tag `</Inventory>` does not match any open tag (line 3)"),
            (b"<Inventory/>\n<Inventory/>", "malformed XML: element after the end of the root element (line 2)"),
            (b"<Inventory>\n<Item><SKU>a & b</SKU></Item></Inventory>", "malformed XML: ill-formed document: entity or character reference not closed: `;` not found before end of input (line 2)"),
            (b"<Inventory>\n<Item a=\"1\" a=\"2\"/></Inventory>", "malformed XML: bad attribute: position 11: duplicated attribute, previous declaration at position 5 (line 2)"),
            (b"<Inventory>\n<Item><SKU>&#1;</SKU></Item></Inventory>", "malformed XML: invalid character reference &#1; (line 2)"),
            (b"<Stock>\n</Stock>", "root element is <Stock>, the mapping expects <Inventory> (line 1)"),
            (b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Inventory/>", "unsupported encoding \"ISO-8859-1\": only UTF-8 is accepted (line 1)"),
            (b"<Inventory>\n<Item>\n<SKU>ok</SKU>\n<Quantity>caf\xe9 au lait</Quantity></Item></Inventory>", "invalid UTF-8 (line 4)"),
            (b"<Inventory>\n<Item\n  sku=\"\xff\"/></Inventory>", "invalid UTF-8 (line 3)"),
            (b"\x00\x01\x02binary", "malformed XML: text outside the root element (line 1)"),
        ];
        let mut wrong = Vec::new();
        for (xml, want) in cases {
            let got = read_all(xml, &inv_spec())
                .map(|_| ())
                .unwrap_err()
                .to_string();
            if &got != want {
                wrong.push(format!(
                    "input {:?}\n  got  {got}\n  want {want}",
                    String::from_utf8_lossy(xml)
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn truncated_after_complete_items_is_still_an_error() {
        let mut w = XmlWriter::new(Vec::new(), &feed_spec()).unwrap();
        for i in 0..100 {
            w.write_item(&[&format!("SKU{i}"), "1"]).unwrap();
        }
        let full = w.finish().unwrap();
        let cut = &full[..full.len() - "</Inventory>\n".len()];
        let mut n = 0;
        let err = read_items(Cursor::new(cut), &inv_spec(), |_| {
            n += 1;
            Ok::<_, BoxError>(())
        })
        .unwrap_err();
        assert_eq!(n, 100, "complete items were emitted before the error");
        assert_eq!(
            err.to_string(),
            "unexpected end of file: <Inventory> is not closed (line 103)"
        );
    }

    #[test]
    fn oversized_text_is_refused() {
        let mut xml = b"<Inventory>\n<Item><SKU>".to_vec();
        xml.extend(std::iter::repeat_n(b'x', 2 * MAX_EVENT_BYTES as usize));
        xml.extend(b"</SKU></Item></Inventory>");
        // A small buffer makes the reader go through many fill_buf calls.
        let err = read_items(
            BufReader::with_capacity(4096, &xml[..]),
            &inv_spec(),
            |_| Ok::<_, BoxError>(()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("markup or text longer than {MAX_EVENT_BYTES} bytes (line 2)")
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let xml = format!("<Inventory>{}", "<a>".repeat(MAX_DEPTH + 5));
        let err = read_all(xml.as_bytes(), &inv_spec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("elements nested deeper than {MAX_DEPTH} levels (line 1)")
        );
    }

    #[test]
    fn crlf_lines_and_small_buffers() {
        let xml = b"<Inventory>\r\n<Item>\r\n<SKU>a\r\nb</SKU></Item>\r\n<Item><SKU>c</SKU></Item></Inventory>\r\n";
        let mut items = Vec::new();
        read_items(BufReader::with_capacity(3, &xml[..]), &inv_spec(), |it| {
            items.push(it.clone());
            Ok::<_, BoxError>(())
        })
        .unwrap();
        assert_eq!(items[0].line, 2);
        assert_eq!(items[0].values[0].as_deref(), Some("a\nb"));
        assert_eq!(items[1].line, 5);
    }

    /// ~200 MB generated file, read streaming. Slow in debug builds; run with
    /// `cargo test --release -- --ignored big_file --nocapture`.
    #[test]
    #[ignore]
    fn big_file_streams() {
        use std::time::Instant;
        let dir = std::env::temp_dir().join(format!("xmlsched-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.xml");
        let t0 = Instant::now();
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut w = XmlWriter::new(file, &feed_spec()).unwrap();
        let mut n = 0u64;
        let mut sku = String::new();
        let mut qty = String::new();
        loop {
            use std::fmt::Write as _;
            sku.clear();
            qty.clear();
            write!(sku, "SKU-{n:012}-a&b<c>").unwrap();
            write!(qty, "{}", n % 1000).unwrap();
            w.write_item(&[&sku, &qty]).unwrap();
            n += 1;
            if n.is_multiple_of(100_000) && std::fs::metadata(&path).unwrap().len() >= 200_000_000 {
                break;
            }
        }
        w.finish().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let t1 = Instant::now();
        let reader = BufReader::with_capacity(64 * 1024, std::fs::File::open(&path).unwrap());
        let mut count = 0u64;
        let mut sum = 0u64;
        let summary = read_items(reader, &inv_spec(), |it| {
            count += 1;
            sum += it.values[1].as_deref().unwrap().parse::<u64>().unwrap();
            assert_eq!(it.line, count + 2);
            Ok::<_, BoxError>(())
        })
        .unwrap();
        let t2 = Instant::now();
        assert_eq!(summary.items, n);
        assert_eq!(count, n);
        assert_eq!(summary.bytes, size);
        assert_eq!(sum, (0..n).map(|i| i % 1000).sum::<u64>());
        eprintln!(
            "big_file_streams: {size} bytes, {n} items, write {:.2?}, read {:.2?}",
            t1 - t0,
            t2 - t1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
