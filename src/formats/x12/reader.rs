//! Streaming X12 segment reader.
//!
//! Separators come from the fixed-width ISA (106 bytes): element separator =
//! byte 4, component separator = ISA16 (byte 105), segment terminator = byte
//! 106. The reader holds one segment in memory at a time, so input size is
//! unbounded while memory is bounded by the segment length limit.

use std::io::BufRead;

use super::error::X12Error;

/// Length of a standard ISA segment including its terminator.
pub const ISA_LEN: usize = 106;
/// Default limit on one segment's length; real segments are a few hundred
/// bytes, so anything this long means a missing terminator or junk input.
pub const DEFAULT_MAX_SEGMENT_LEN: usize = 64 * 1024;

/// Offsets (0-based) of the 16 element separators inside a fixed-width ISA.
const ISA_SEP_OFFSETS: [usize; 16] = [
    3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    pub element: u8,
    pub component: u8,
    /// ISA11 when ISA12 >= 00402 and ISA11 is not alphanumeric or space.
    pub repetition: Option<u8>,
    pub segment: u8,
}

impl Separators {
    /// True when `b` is one of the delimiters (used by writers to refuse values).
    pub fn contains(&self, b: u8) -> bool {
        b == self.element || b == self.component || b == self.segment || self.repetition == Some(b)
    }
}

/// One segment: its text (without the terminator) and where each element
/// ends in it, so an element is a slice of the text, not a `String` of its
/// own. A consumer done with a segment may hand it back with
/// [`Reader::recycle`] (or [`super::Envelope::recycle`]) to have its buffers
/// reused for a later one.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Segment {
    /// The segment as read: the id, then each element after a separator.
    text: String,
    /// Length of the id at the start of `text`.
    id_len: usize,
    /// End (exclusive) in `text` of each element; element 01 starts after
    /// the id and its separator, each next one after the previous end and
    /// its separator.
    ends: Vec<usize>,
    /// 1-based index of the segment in the interchange; ISA = 1.
    pub position: usize,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id())
            .field("elements", &self.elements().collect::<Vec<_>>())
            .field("position", &self.position)
            .finish()
    }
}

impl Segment {
    /// The segment id ("LIN", "ISA", ...).
    pub fn id(&self) -> &str {
        &self.text[..self.id_len]
    }

    /// How many elements the segment has (composites count as one).
    pub fn element_count(&self) -> usize {
        self.ends.len()
    }

    /// Elements 01, 02, ... in order. Composite elements are kept whole;
    /// split them with [`Segment::components`].
    pub fn elements(&self) -> impl Iterator<Item = &str> + '_ {
        (1..=self.ends.len()).map(|n| self.element(n))
    }

    /// Element `n` (1-based), or "" when absent.
    pub fn element(&self, n: usize) -> &str {
        let Some(i) = n.checked_sub(1) else {
            return "";
        };
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = match i {
            0 => self.id_len + 1,
            _ => self.ends[i - 1] + 1,
        };
        &self.text[start..end]
    }

    /// Components of element `n` split on the component separator.
    pub fn components<'a>(&'a self, n: usize, seps: &Separators) -> Vec<&'a str> {
        self.element(n).split(seps.component as char).collect()
    }

    /// Element reference such as "SE01" for messages.
    pub fn element_name(&self, n: usize) -> String {
        format!("{}{:02}", self.id(), n)
    }
}

/// Where each element of `text` ends, after an id of `id_len` bytes.
fn element_ends(text: &[u8], id_len: usize, sep: u8, ends: &mut Vec<usize>) {
    ends.clear();
    if text.len() <= id_len {
        return;
    }
    let from = id_len + 1;
    ends.extend(memchr::memchr_iter(sep, &text[from..]).map(|i| from + i));
    ends.push(text.len());
}

pub struct Reader<R> {
    inner: R,
    seps: Option<Separators>,
    /// Position of the last segment returned.
    position: usize,
    max_len: usize,
    buf: Vec<u8>,
    /// A segment handed back by the consumer, its buffers reused.
    spare: Option<Segment>,
    /// Set after an error or end of input so later calls return None
    /// instead of reading from an inconsistent place.
    finished: bool,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

impl<R: BufRead> Reader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_max_segment_len(inner, DEFAULT_MAX_SEGMENT_LEN)
    }

    pub fn with_max_segment_len(inner: R, max_len: usize) -> Self {
        Reader {
            inner,
            seps: None,
            position: 0,
            max_len: max_len.max(ISA_LEN),
            buf: Vec::new(),
            spare: None,
            finished: false,
        }
    }

    /// Separators, known once the ISA has been read.
    pub fn separators(&self) -> Option<Separators> {
        self.seps
    }

    /// Position of the last segment returned (0 before the first).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Hands back a segment the consumer is done with: the next one read
    /// reuses its buffers instead of allocating.
    pub fn recycle(&mut self, seg: Segment) {
        self.spare = Some(seg);
    }

    /// After an IEA: the next segment, if any, must be the fixed-width ISA
    /// of another interchange (its own separators). At end of input the
    /// next call returns `Err(X12Error::Empty)`. Positions keep counting
    /// from the start of the input.
    pub fn expect_isa(&mut self) {
        self.seps = None;
        self.finished = false;
    }

    /// Next segment, `Ok(None)` at end of input. After an error, returns
    /// `Ok(None)`.
    pub fn next_segment(&mut self) -> Result<Option<Segment>, X12Error> {
        if self.finished {
            return Ok(None);
        }
        let r = self.read_one();
        if !matches!(r, Ok(Some(_))) {
            self.finished = true;
        }
        r
    }

    fn read_one(&mut self) -> Result<Option<Segment>, X12Error> {
        match self.seps {
            None => self.read_isa().map(Some),
            Some(seps) => self.read_segment(seps),
        }
    }

    /// Skip bytes while `pred` holds; returns true if input remains.
    fn skip_while(&mut self, pred: impl Fn(u8) -> bool) -> Result<bool, X12Error> {
        loop {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                return Ok(false);
            }
            let n = avail.iter().take_while(|&&b| pred(b)).count();
            let all = n == avail.len();
            self.inner.consume(n);
            if !all {
                return Ok(true);
            }
        }
    }

    /// Read up to `n` bytes into `self.buf` (fewer only at end of input).
    fn read_exact_or_eof(&mut self, n: usize) -> Result<(), X12Error> {
        self.buf.clear();
        while self.buf.len() < n {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            let take = avail.len().min(n - self.buf.len());
            self.buf.extend_from_slice(&avail[..take]);
            self.inner.consume(take);
        }
        Ok(())
    }

    fn read_isa(&mut self) -> Result<Segment, X12Error> {
        // UTF-8 BOM, then leading whitespace.
        let avail = self.inner.fill_buf()?;
        if avail.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.inner.consume(3);
        }
        if !self.skip_while(is_blank)? {
            return Err(X12Error::Empty);
        }
        self.read_exact_or_eof(ISA_LEN)?;
        let b = &self.buf;
        if !b.starts_with(b"ISA") {
            let found: String = String::from_utf8_lossy(&b[..b.len().min(20)]).into();
            return Err(X12Error::NotIsa { found });
        }
        if b.len() < ISA_LEN {
            return Err(X12Error::BadIsa {
                reason: format!(
                    "input ends after {} bytes; an ISA is {} bytes (fixed width)",
                    b.len(),
                    ISA_LEN
                ),
            });
        }
        let elem = b[3];
        let comp = b[104];
        let term = b[105];
        for (i, &off) in ISA_SEP_OFFSETS.iter().enumerate() {
            if b[off] != elem {
                return Err(X12Error::BadIsa {
                    reason: format!(
                        "expected the element separator {:?} before ISA{:02} at byte {} but found {:?}; ISA fields must be padded to their fixed width",
                        elem as char,
                        i + 1,
                        off + 1,
                        b[off] as char
                    ),
                });
            }
        }
        let seps_ok = |c: u8| c.is_ascii() && !c.is_ascii_alphanumeric();
        if !seps_ok(elem) || is_blank(elem) {
            return Err(X12Error::BadIsa {
                reason: format!("invalid element separator {:?}", elem as char),
            });
        }
        if !seps_ok(comp) || is_blank(comp) {
            return Err(X12Error::BadIsa {
                reason: format!("invalid component separator (ISA16) {:?}", comp as char),
            });
        }
        if !seps_ok(term) || term == b' ' {
            return Err(X12Error::BadIsa {
                reason: format!(
                    "invalid segment terminator {:?} after ISA16 (byte 106)",
                    term as char
                ),
            });
        }
        if elem == comp || elem == term || comp == term {
            return Err(X12Error::BadIsa {
                reason: format!(
                    "separators must differ: element {:?}, component {:?}, segment {:?}",
                    elem as char, comp as char, term as char
                ),
            });
        }
        let body = &b[..105];
        let text = std::str::from_utf8(body).map_err(|_| X12Error::InvalidUtf8 {
            id: "ISA".into(),
            position: 1,
            element: 0,
        })?;
        let mut seg = Segment {
            text: text.to_owned(),
            id_len: 3,
            ends: Vec::with_capacity(16),
            position: 0,
        };
        element_ends(body, 3, elem, &mut seg.ends);
        if seg.element_count() != 16 {
            return Err(X12Error::BadIsa {
                reason: format!(
                    "has {} elements, expected 16 (element separator {:?} inside a field?)",
                    seg.element_count(),
                    elem as char
                ),
            });
        }
        // ISA13, the interchange control number, is exactly nine digits: it
        // is echoed into 997s (and their file names).
        let isa13 = seg.element(13);
        if isa13.len() != 9 || !isa13.bytes().all(|c| c.is_ascii_digit()) {
            return Err(X12Error::BadIsa {
                reason: format!(
                    "ISA13 (interchange control number) must be nine digits, got {}",
                    crate::util::quoted(isa13)
                ),
            });
        }
        let isa11 = b[82];
        // From 00402 on, ISA11 is the repetition separator: one that equals
        // another separator makes the interchange ambiguous.
        if seg.element(12) >= "00402" && (isa11 == comp || isa11 == term) {
            return Err(X12Error::BadIsa {
                reason: format!(
                    "the repetition separator (ISA11) {:?} equals another separator (component {:?}, segment {:?})",
                    isa11 as char, comp as char, term as char
                ),
            });
        }
        let repetition = (seg.element(12) >= "00402"
            && isa11.is_ascii()
            && !isa11.is_ascii_alphanumeric()
            && isa11 != b' '
            && isa11 != elem
            && isa11 != comp
            && isa11 != term)
            .then_some(isa11);
        self.seps = Some(Separators {
            element: elem,
            component: comp,
            repetition,
            segment: term,
        });
        self.position += 1;
        seg.position = self.position;
        Ok(seg)
    }

    fn read_segment(&mut self, seps: Separators) -> Result<Option<Segment>, X12Error> {
        // Line breaks and indentation between segments are not data.
        if !self.skip_while(is_blank)? {
            return Ok(None);
        }
        let position = self.position + 1;
        self.buf.clear();
        let mut terminated = false;
        loop {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            let (take, found) = match avail.iter().position(|&b| b == seps.segment) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if self.buf.len() + take > self.max_len {
                let id = segment_id_guess(&self.buf, &avail[..take], seps.element);
                return Err(X12Error::SegmentTooLong {
                    id,
                    position,
                    limit: self.max_len,
                });
            }
            self.buf.extend_from_slice(&avail[..take]);
            self.inner.consume(take + usize::from(found));
            if found {
                terminated = true;
                break;
            }
        }
        let mut len = self.buf.len();
        if !terminated {
            // A final segment without terminator (seen in real files) is
            // accepted: truncation elsewhere is caught by the envelope checks.
            while len > 0 && is_blank(self.buf[len - 1]) {
                len -= 1;
            }
        } else if seps.segment == b'\n' && self.buf.last() == Some(&b'\r') {
            // CRLF file whose ISA says LF: the CR is line-ending noise.
            len -= 1;
        }
        if len == 0 {
            return Err(X12Error::EmptySegment { position });
        }
        self.position = position;
        // The segment takes the bytes read; the reader keeps the spare's
        // buffer (or a new one) for the next segment.
        let mut seg = self.spare.take().unwrap_or_default();
        let mut spare_buf = std::mem::take(&mut seg.text).into_bytes();
        spare_buf.clear();
        let mut raw = std::mem::replace(&mut self.buf, spare_buf);
        raw.truncate(len);
        parse_segment(raw, seps, position, seg).map(Some)
    }
}

fn segment_id_guess(a: &[u8], b: &[u8], elem: u8) -> String {
    let joined: Vec<u8> = a.iter().chain(b.iter()).take(8).copied().collect();
    let end = joined
        .iter()
        .position(|&c| c == elem)
        .unwrap_or(joined.len());
    String::from_utf8_lossy(&joined[..end.min(3)]).into_owned()
}

fn parse_segment(
    raw: Vec<u8>,
    seps: Separators,
    position: usize,
    mut seg: Segment,
) -> Result<Segment, X12Error> {
    let id_len = raw
        .iter()
        .position(|&b| b == seps.element)
        .unwrap_or(raw.len());
    let id_bytes = &raw[..id_len];
    let id_ok = (2..=3).contains(&id_bytes.len())
        && id_bytes[0].is_ascii_uppercase()
        && id_bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !id_ok {
        let shown = &raw[..raw.len().min(24)];
        let hint = if id_bytes.len() > 3 {
            " (wrong element separator or missing segment terminator?)"
        } else {
            ""
        };
        return Err(X12Error::InvalidSegmentId {
            position,
            found: String::from_utf8_lossy(shown).into_owned(),
            hint,
        });
    }
    // The id is checked ASCII, and separators are ASCII, so the text is
    // valid UTF-8 exactly when every element is.
    let text = match String::from_utf8(raw) {
        Ok(text) => text,
        Err(e) => return Err(element_error(e.as_bytes(), id_len, seps, position)),
    };
    // A line break inside an element: the first one names its element.
    if let Some(at) = memchr::memchr2(b'\r', b'\n', &text.as_bytes()[id_len..]) {
        let before = &text.as_bytes()[..id_len + at];
        return Err(X12Error::LineBreakInElement {
            id: text[..id_len].to_owned(),
            position,
            element: memchr::memchr_iter(seps.element, before).count(),
        });
    }
    element_ends(text.as_bytes(), id_len, seps.element, &mut seg.ends);
    seg.text = text;
    seg.id_len = id_len;
    seg.position = position;
    Ok(seg)
}

/// The error of a segment that is not valid UTF-8: its first element that
/// is invalid or holds a line break, in element order.
fn element_error(raw: &[u8], id_len: usize, seps: Separators, position: usize) -> X12Error {
    let id = String::from_utf8_lossy(&raw[..id_len]).into_owned();
    let mut parts = raw.split(|&b| b == seps.element);
    parts.next();
    for (i, part) in parts.enumerate() {
        let Ok(text) = std::str::from_utf8(part) else {
            return X12Error::InvalidUtf8 {
                id,
                position,
                element: i + 1,
            };
        };
        if text.contains(['\r', '\n']) {
            return X12Error::LineBreakInElement {
                id,
                position,
                element: i + 1,
            };
        }
    }
    // Not reached: separators are ASCII, so valid elements make valid text.
    X12Error::InvalidUtf8 {
        id,
        position,
        element: 0,
    }
}
