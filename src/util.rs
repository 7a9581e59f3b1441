//! Small shared helpers: times, hashing, file names.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Ledger times are UTC milliseconds since the epoch: they sort and compare as integers.
pub type Millis = i64;

/// Now. `STOCKGATE_CLOCK_OFFSET` (e.g. `"100d"`, `"-2h"`) moves the
/// process's clock, for trying retention and schedules without waiting.
pub fn now_ms() -> Millis {
    static OFFSET: std::sync::OnceLock<Millis> = std::sync::OnceLock::new();
    let off = *OFFSET.get_or_init(|| {
        let Ok(v) = std::env::var("STOCKGATE_CLOCK_OFFSET") else {
            return 0;
        };
        let (neg, v) = match v.trim().strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, v.trim().to_string()),
        };
        let ms = parse_duration_secs(&v).unwrap_or(0) as Millis * 1000;
        if neg { -ms } else { ms }
    });
    Utc::now().timestamp_millis() + off
}

pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// RFC 3339 with an explicit offset, as the contract asks for JSON.
pub fn rfc3339(ms: Millis) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of a file, read in blocks (files may be far larger than memory).
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), total))
}

pub fn file_mtime_ms(path: &Path) -> std::io::Result<Millis> {
    let m = std::fs::metadata(path)?.modified()?;
    let dt: DateTime<Utc> = m.into();
    Ok(dt.timestamp_millis())
}

/// A path inside `dir` named `name`, or `name~1`, `name~2`, ... when taken,
/// so that nothing archived or quarantined is ever overwritten.
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|i| dir.join(format!("{name}~{i}")))
        .find(|p| !p.exists())
        .expect("unbounded search")
}

/// Copies `src` to a fresh name in `dir` through a temporary file, fsynced,
/// then renamed: a crash never leaves a half-written copy under the final name.
pub fn copy_durable(src: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    private_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let r = (|| {
        std::fs::copy(src, &tmp)?;
        // `copy` keeps the source's mode: the copy is the owner's alone.
        private_file(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        let dest = free_path(dir, name);
        std::fs::rename(&tmp, &dest)?;
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all()?;
        }
        Ok(dest)
    })();
    if r.is_err() {
        // A full or read-only disk leaves no half copy behind.
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// [`copy_durable`] for a file already durable that nothing writes again:
/// a second name for it (a hard link, owner-only) in `dir`, then an fsync
/// of `dir`. Fails where no link can be made (another file system, say),
/// and leaves no link behind when the folder cannot be synced.
pub fn link_durable(src: &Path, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    private_dir(dir)?;
    private_file(src)?;
    let dest = free_path(dir, name);
    std::fs::hard_link(src, &dest)?;
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    Ok(dest)
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

/// Why a name a server listed is not one file of the listed folder, if it
/// is not: it must be one path component (no `/`, `\` or NUL, not `.` or
/// `..`, not empty). Such a name is never fetched, nor sent back to the
/// server, nor joined into a local path.
pub fn remote_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the name is empty")
    } else if name == "." || name == ".." {
        Some("the name is . or ..")
    } else if name.contains('/') {
        Some("the name holds a /")
    } else if name.contains('\\') {
        Some("the name holds a \\")
    } else if name.contains('\0') {
        Some("the name holds a NUL")
    } else {
        None
    }
}

/// The longest local name built from a remote one, in bytes (the archive's
/// and quarantine's own suffixes still fit in a file system's 255).
pub const LOCAL_NAME_MAX: usize = 200;

/// The local name (work, archive and quarantine folders) of a file a server
/// listed: the name itself when it is one safe component (operators find
/// files by name, rule 39), else a safe name derived from it: every `/`,
/// `\` and control character made `_`, cut to [`LOCAL_NAME_MAX`] bytes
/// with `~` and 8 hex digits of its SHA-256 before the extension, so two
/// names never share a derived one by accident.
pub fn safe_local_name(remote: &str) -> std::borrow::Cow<'_, str> {
    if remote_name_problem(remote).is_none()
        && remote.len() <= LOCAL_NAME_MAX
        && !remote.chars().any(char::is_control)
    {
        return std::borrow::Cow::Borrowed(remote);
    }
    let tag = format!("~{}", &hex(&Sha256::digest(remote.as_bytes()))[..8]);
    let clean: String = remote
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    // An extension of up to 16 bytes is kept at the end.
    let (stem, ext) = match clean.rfind('.') {
        Some(i) if i > 0 && clean.len() - i <= 16 => clean.split_at(i),
        _ => (clean, ""),
    };
    let room = LOCAL_NAME_MAX - tag.len() - ext.len();
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = if cut == 0 { "_" } else { &stem[..cut] };
    std::borrow::Cow::Owned(format!("{stem}{tag}{ext}"))
}

/// A shell-style file-name pattern (`*.csv`, `inv-??.txt`, `[ab]*`),
/// compiled once by `globset`; case-sensitive, matched against one name.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    matcher: globset::GlobMatcher,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, globset::Error> {
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()?
            .compile_matcher();
        Ok(Glob {
            text: pattern.to_string(),
            matcher,
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A duration as written in the config: `2s`, `30m`, `1h 30m`.
pub fn show_duration(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

/// Parses a duration as the config writes it, through `humantime`: "30s",
/// "15m", "2h", "1d" (spaces around allowed, as ever), also "1h 30m",
/// "90sec", "1.5h", "2w". Months and years are refused (they have no fixed
/// length: "200y" stays a mistake). Zero only when `zero_ok` ("0", "0s" ...).
pub fn parse_duration(s: &str, zero_ok: bool) -> Option<std::time::Duration> {
    let s = s.trim();
    let calendar = s
        .split(|c: char| !c.is_alphabetic() && c != 'µ')
        .any(|unit| {
            matches!(
                unit,
                "M" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years"
            )
        });
    if calendar {
        return None;
    }
    let d = if s == "0" {
        std::time::Duration::ZERO
    } else {
        humantime::parse_duration(s).ok()?
    };
    (zero_ok || !d.is_zero()).then_some(d)
}

/// [`parse_duration`] in whole seconds, more than zero.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    parse_duration(s, false)
        .map(|d| d.as_secs())
        .filter(|&n| n > 0)
}

/// An error and its causes as one line, "outer: cause: cause", leaving
/// out a cause that repeats its neighbour: one whose text the one before
/// already holds (`ledger X: attempt to write a readonly database` and then
/// `attempt to write a readonly database`), or that only adds a code to it
/// (`Error code 8: attempt to write a readonly database`).
pub fn error_chain<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut out = String::new();
    let mut prev = String::new();
    for e in chain {
        let text = e.to_string();
        let repeats = !prev.is_empty() && (prev.contains(&text) || text.contains(&prev));
        if !repeats && !text.is_empty() {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if !text.is_empty() {
            prev = text;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_says_each_thing_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        fn chain<'a>(
            e: &'a (dyn std::error::Error + 'static),
        ) -> Vec<&'a (dyn std::error::Error + 'static)> {
            let mut v = vec![e];
            while let Some(s) = v.last().unwrap().source() {
                v.push(s);
            }
            v
        }
        // What rusqlite and thiserror give for a read-only ledger.
        let ro = "attempt to write a readonly database";
        let e = E(
            "ledger: attempt to write a readonly database",
            Some(Box::new(E(
                ro,
                Some(Box::new(E(
                    "Error code 8: attempt to write a readonly database",
                    None,
                ))),
            ))),
        );
        assert_eq!(
            error_chain(chain(&e)),
            "ledger: attempt to write a readonly database"
        );
        // Causes that say something new stay, in order.
        let e = E(
            "cannot sync cart shop",
            Some(Box::new(E("disk full", None))),
        );
        assert_eq!(error_chain(chain(&e)), "cannot sync cart shop: disk full");
        let e = E("one", None);
        assert_eq!(error_chain(chain(&e)), "one");
    }

    #[test]
    fn a_linked_archive_entry_is_the_same_bytes_owner_only_under_a_free_name() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("feed.x12");
        std::fs::write(&src, b"ISA~").unwrap();
        let dir = tmp.path().join("archive/cart/2026-11-28");
        let a = link_durable(&src, &dir, "feed.x12").unwrap();
        let b = link_durable(&src, &dir, "feed.x12").unwrap();
        assert_eq!(a, dir.join("feed.x12"));
        assert_ne!(a, b);
        std::fs::remove_file(&src).unwrap();
        for p in [&a, &b] {
            assert_eq!(std::fs::read(p).unwrap(), b"ISA~");
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(link_durable(&src, &dir, "gone.x12").is_err());
        assert!(!dir.join("gone.x12").exists());
    }

    #[test]
    fn globs() {
        let m = |p: &str, n: &str| Glob::new(p).unwrap().is_match(n);
        assert!(m("*.csv", "a.csv"));
        assert!(!m("*.csv", "a.csv.tmp"));
        assert!(!m("*.csv", "A.CSV"));
        assert!(m("inv-??.txt", "inv-01.txt"));
        assert!(m("*", "x"));
        assert!(m("[ab]*.csv", "b1.csv"));
        // What the hand-written matcher took exponential time for.
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*a*b", &"a".repeat(60)));
        assert!(Glob::new("[abc").is_err());
    }

    #[test]
    fn remote_names_that_are_not_one_component_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "/home/x/important.csv",
            "a/b",
            "..\\x",
            "a\0b",
        ] {
            assert!(remote_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["a.csv", "...", ".hidden", "a b.csv", "ünï.csv"] {
            assert_eq!(remote_name_problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn a_safe_name_is_kept_and_any_other_gets_a_bounded_derived_one() {
        assert_eq!(safe_local_name("inv 01.csv"), "inv 01.csv");
        assert!(matches!(
            safe_local_name("inv.csv"),
            std::borrow::Cow::Borrowed(_)
        ));
        let d = safe_local_name("/home/x/important.csv");
        assert_eq!(d.len(), "_home_x_important~12345678.csv".len(), "{d}");
        assert!(
            d.starts_with("_home_x_important~") && d.ends_with(".csv"),
            "{d}"
        );
        assert!(
            safe_local_name("..").starts_with("_~"),
            "{}",
            safe_local_name("..")
        );
        let long = format!("{}.csv", "é".repeat(150));
        let d = safe_local_name(&long);
        assert!(d.len() <= LOCAL_NAME_MAX, "{}", d.len());
        assert!(d.ends_with(".csv") && d.starts_with('é'), "{d}");
        assert_ne!(d, safe_local_name(&format!("{}.csv", "é".repeat(151))));
        assert_eq!(
            d,
            safe_local_name(&long),
            "the same name, the same derived one"
        );
        assert_eq!(safe_local_name("a\nb"), safe_local_name("a\nb"));
        assert!(!safe_local_name("a\nb").contains('\n'));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("30s"), Some(30));
        assert_eq!(parse_duration_secs("15m"), Some(900));
        assert_eq!(parse_duration_secs("0s"), None);
        assert_eq!(parse_duration_secs("5x"), None);
        // Every spelling accepted before humantime still is, to the same value.
        for (s, secs) in [
            ("30s", 30),
            (" 30s ", 30),
            ("30 s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("90d", 90 * 86400),
            ("100d", 100 * 86400),
        ] {
            assert_eq!(parse_duration_secs(s), Some(secs), "{s:?}");
            assert_eq!(
                parse_duration(s, false),
                Some(std::time::Duration::from_secs(secs)),
                "{s:?}"
            );
        }
        // And humantime's own.
        assert_eq!(parse_duration_secs("1h 30m"), Some(5400));
        assert_eq!(parse_duration_secs("90sec"), Some(90));
        for bad in [
            "",
            "30",
            "soon",
            "-1s",
            "5x",
            "30S",
            "s",
            "200y",
            "1M",
            "1h 2years",
        ] {
            assert_eq!(parse_duration(bad, false), None, "{bad:?}");
        }
        for zero in ["0", "0s", "0m", "0h", " 0s "] {
            assert_eq!(parse_duration(zero, true), Some(std::time::Duration::ZERO));
            assert_eq!(parse_duration(zero, false), None, "{zero:?}");
        }
        assert_eq!(
            parse_duration("500ms", false),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(parse_duration_secs("500ms"), None, "less than a second");
    }
}

/// One thing wrong with a config or mapping file, located for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Line (1-based) of `key` inside a TOML table, for error messages.
///
/// `header` names the table: "" for the top level, "columns", "cart" (the
/// `nth` `[[cart]]`, 0-based) or "cart.transport" (the table under that cart).
/// Falls back to the table's header line, then to None. A text scan is
/// enough for hand-edited files and keeps the typed structs free of spans.
pub fn line_of(src: &str, header: &str, nth: usize, key: &str) -> Option<usize> {
    let mut current = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let root = header.split('.').next().unwrap_or("");
    let mut header_line = None;
    for (i, raw) in src.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            current = h.trim().to_string();
            *counts.entry(current.clone()).or_insert(0) += 1;
        } else if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = h.trim().to_string();
        } else if current == header && counts.get(root).copied().unwrap_or(1) == nth + 1 {
            let k = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if !key.is_empty() && line.contains('=') && k == key {
                return Some(i + 1);
            }
            continue;
        } else {
            continue;
        }
        if current == header
            && counts.get(root).copied().unwrap_or(1) == nth + 1
            && header_line.is_none()
        {
            header_line = Some(i + 1);
        }
    }
    header_line
}

/// Line of a byte offset, for parser errors that carry spans.
pub fn line_at(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The field names serde knows for struct `T` (what `deny_unknown_fields`
/// accepts), asked of its `Deserialize` impl: lists of known keys for error
/// messages can never drift from the structs.
pub fn struct_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields probed")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    struct Probe;
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// A name or value as it may be printed or logged: control characters
/// (newlines, ESC, NUL, DEL ...) are shown escaped (`\n`, `\u{1b}`), so input
/// can never forge a log line or drive a terminal.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `max` characters of `s`, control characters escaped, with `…`
/// when cut: every echo of input is bounded.
pub fn bounded(s: &str, max: usize) -> String {
    let e = escape(s);
    match e.char_indices().nth(max) {
        None => e,
        Some((i, _)) => format!("{}…", &e[..i]),
    }
}

/// The longest echo of an input value in a message, in characters.
pub const ECHO_MAX: usize = 200;

/// A value as quoted in an error message: at most [`ECHO_MAX`] characters
/// (with `…` when cut), in double quotes, control characters escaped.
pub fn quoted(s: &str) -> String {
    quoted_max(s, ECHO_MAX)
}

/// [`quoted`] with a tighter bound: at most `max` characters.
pub fn quoted_max(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => format!("{s:?}"),
        Some((i, _)) => format!("{:?}", format!("{}…", &s[..i])),
    }
}

/// `s` as one safe part of a file name: only `[A-Za-z0-9._-]` are kept,
/// anything else becomes `_` (and a part of dots alone becomes `_`).
pub fn safe_name_part(s: &str) -> String {
    let t: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() || t.chars().all(|c| c == '.') {
        "_".into()
    } else {
        t
    }
}

/// Creates `dir` (and its missing parents) owner-only (0700) whatever the
/// umask: archive, quarantine and the ledger's folder hold partners' data.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for d in missing {
        if !d.as_os_str().is_empty() {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Makes a file owner-only (0600), whatever the umask or the mode it was
/// created or copied with.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Creates (truncates) a file owner-only (0600).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    private_file(path)?;
    Ok(f)
}

/// The candidate closest to `word` when it is close enough to be a typo of
/// it (Jaro-Winkler similarity, case-insensitive), for "did you mean".
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .filter_map(|c| {
            let lc = c.to_lowercase();
            let jw = strsim::jaro_winkler(&w, &lc);
            // Short names: one edit away (a typo, a swapped pair) is close.
            let edits = strsim::damerau_levenshtein(&w, &lc);
            let near = edits <= (w.chars().count().max(lc.chars().count()) / 4).max(1);
            (jw >= 0.8 || near).then_some((jw - edits as f64, c))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `; did you mean "x"?` when a candidate is close to `word`, else "".
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean {c:?}?"))
        .unwrap_or_default()
}

/// A serde type error said as the operator needs it, never quoting the
/// value (it may be a secret): `min_level must be a whole number, like
/// min_level = 5`.
pub fn type_message(key: &str, serde_message: &str) -> String {
    let first = serde_message.lines().next().unwrap_or("");
    let expected = first
        .split_once("expected ")
        .map(|(_, e)| e.trim())
        .unwrap_or("");
    let e = expected.to_ascii_lowercase();
    let like = if [
        "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize", "integer",
    ]
    .iter()
    .any(|t| e == *t || e.contains("integer"))
    {
        format!("a whole number, like {key} = 5")
    } else if e.contains("bool") {
        format!("true or false, like {key} = true")
    } else if e.contains("string") || e.contains("path") || e.contains("char") {
        format!("text in quotes, like {key} = \"...\"")
    } else if e.contains("sequence") || e.contains("array") || e.contains("vec") {
        format!("a list, like {key} = [\"...\"]")
    } else if e.contains("struct") || e.contains("map") || e.contains("table") {
        format!("a table, like [{key}]")
    } else {
        return format!("{key} has a value of the wrong type (expected {expected})");
    };
    format!("{key} must be {like}")
}

/// One key a [`deserialize_all`] could not take.
#[derive(Debug, Clone)]
pub struct KeyError {
    /// Table keys (array indexes as numbers) from the root to the key.
    pub path: Vec<String>,
    pub message: String,
}

/// Deserializes `table` into `T`, collecting every wrongly typed key (each
/// removed and the rest tried again) rather than stopping at the first; a
/// missing required key ends it (the message names the key).
pub fn deserialize_all<T: serde::de::DeserializeOwned>(
    mut table: toml::Table,
) -> (Option<T>, Vec<KeyError>) {
    let mut errors: Vec<KeyError> = vec![];
    for _ in 0..200 {
        let e = match serde_path_to_error::deserialize::<_, T>(table.clone()) {
            Ok(t) => return (Some(t), errors),
            Err(e) => e,
        };
        let mut path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let inner = e.inner().to_string();
        let inner = inner.trim();
        if let Some(field) = inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            path.push(field.to_string());
            if !errors.iter().any(|k| k.path == path) {
                errors.push(KeyError {
                    path,
                    message: format!("required key {field:?} is missing"),
                });
            }
            return (None, errors);
        }
        let key = path.last().cloned().unwrap_or_default();
        let message = if inner.starts_with("unknown field") {
            "unknown key".to_string()
        } else if key.parse::<usize>().is_ok() {
            // An item of a list: name the list.
            let list = path
                .iter()
                .rev()
                .find(|k| k.parse::<usize>().is_err())
                .cloned()
                .unwrap_or_default();
            format!("an item of {}", type_message(&list, inner))
        } else {
            type_message(&key, inner)
        };
        let removed = remove_path(&mut table, &path);
        errors.push(KeyError { path, message });
        if !removed {
            return (None, errors);
        }
    }
    (None, errors)
}

fn remove_path(table: &mut toml::Table, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut here: &mut toml::Value = match parents.first() {
        None => return table.remove(last).is_some(),
        Some(first) => match table.get_mut(first) {
            Some(v) => v,
            None => return false,
        },
    };
    for p in &parents[1..] {
        here = match here {
            toml::Value::Table(t) => match t.get_mut(p) {
                Some(v) => v,
                None => return false,
            },
            toml::Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match here {
        toml::Value::Table(t) => t.remove(last).is_some(),
        toml::Value::Array(a) => match last.parse::<usize>() {
            // A bad list item: drop the whole list (its key is reported).
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;

    #[test]
    fn type_messages_name_the_key_and_an_example() {
        assert_eq!(
            type_message("min_level", "invalid type: string \"5\", expected i64"),
            "min_level must be a whole number, like min_level = 5"
        );
        assert_eq!(
            type_message(
                "full_sync",
                "invalid type: string \"yes\", expected a boolean"
            ),
            "full_sync must be true or false, like full_sync = true"
        );
        assert_eq!(
            type_message("schedule", "invalid type: integer `5`, expected a string"),
            "schedule must be text in quotes, like schedule = \"...\""
        );
    }

    #[test]
    fn closest_names() {
        assert_eq!(
            closest("shedule", ["schedule", "merchant"]),
            Some("schedule")
        );
        assert_eq!(closest("zzz", ["schedule", "merchant"]), None);
        assert_eq!(
            closest(
                "Europe/Berln",
                chrono_tz::TZ_VARIANTS.iter().map(|t| t.name())
            ),
            Some("Europe/Berlin")
        );
    }
}

/// A mapping file as an operator finds it: `mappings/NAME.toml` for one in
/// the usual folder, else its path.
pub fn mapping_shown(p: &Path) -> String {
    match (p.parent().and_then(|d| d.file_name()), p.file_name()) {
        (Some(d), Some(f)) if d == "mappings" => format!("mappings/{}", f.to_string_lossy()),
        _ => p.display().to_string(),
    }
}

/// `s` as one word for a POSIX shell: as is when it is plain, else in
/// single quotes.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
