//! Allocation per cart (CONTRACT §5, rules 20–24), backend-neutral: the
//! keys (`buffer`, `percent`, `max_level`), kits, each cart's own item ids
//! (`sku_map`), the `include`/`exclude` filters, and the tables read again
//! when their file changes. The feed merge ([`super::feed`]) applies them,
//! so `sync` and `explain` share one computation.

use globset::{GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A cart's allocation keys (rule 20). The default changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub buffer: i64,
    /// 0–100.
    pub percent: i64,
    /// 0 = no cap.
    pub max_level: i64,
}

impl Default for Allocation {
    fn default() -> Self {
        Allocation {
            buffer: 0,
            percent: 100,
            max_level: 0,
        }
    }
}

/// Each step of rule 20 for one SKU, as `explain` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Steps {
    pub available: i64,
    pub min_level: i64,
    pub buffer: i64,
    pub percent: i64,
    /// `max_level` when above 0.
    pub cap: Option<i64>,
    /// The value the feed sends (None: the feed leaves the SKU out).
    pub value: Option<i64>,
}

impl Allocation {
    pub fn is_default(&self) -> bool {
        *self == Allocation::default()
    }

    /// Rule 20: 0 below `min_level`, else
    /// `max(0, min(cap, floor((available - buffer) * percent / 100)))`.
    pub fn value(&self, available: i64, min_level: i64) -> i64 {
        if available < min_level {
            return 0;
        }
        let held = i128::from(available) - i128::from(self.buffer);
        let share = (held * i128::from(self.percent)).div_euclid(100);
        let capped = if self.max_level > 0 {
            share.min(i128::from(self.max_level))
        } else {
            share
        };
        capped.clamp(0, i128::from(i64::MAX)) as i64
    }

    /// The steps that led to `value`, the value the feed computed for
    /// `available` (None: left out).
    pub fn steps(&self, available: i64, min_level: i64, value: Option<i64>) -> Steps {
        Steps {
            available,
            min_level,
            buffer: self.buffer,
            percent: self.percent,
            cap: (self.max_level > 0).then_some(self.max_level),
            value,
        }
    }
}

/// `include` / `exclude` (rule 23): case-sensitive globs, `*` any characters.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    /// The patterns as written, for `status`.
    pub include_text: Vec<String>,
    pub exclude_text: Vec<String>,
}

/// A pattern of `include` or `exclude` that does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct BadPattern {
    /// The key it was given in: `include` or `exclude`.
    pub key: &'static str,
    pub message: String,
}

impl Filters {
    /// Compiles the patterns; the first bad one of each key is an error.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filters, Vec<BadPattern>> {
        fn set(key: &'static str, pats: &[String]) -> Result<Option<GlobSet>, BadPattern> {
            if pats.is_empty() {
                return Ok(None);
            }
            let mut b = GlobSetBuilder::new();
            for p in pats {
                let g = globset::GlobBuilder::new(p)
                    .literal_separator(false)
                    .case_insensitive(false)
                    .build()
                    .map_err(|e| BadPattern {
                        key,
                        message: format!("bad pattern {p:?}: {}", e.kind()),
                    })?;
                b.add(g);
            }
            b.build().map(Some).map_err(|e| BadPattern {
                key,
                message: e.to_string(),
            })
        }
        match (set("include", include), set("exclude", exclude)) {
            (Ok(inc), Ok(exc)) => Ok(Filters {
                include: inc,
                exclude: exc,
                include_text: include.to_vec(),
                exclude_text: exclude.to_vec(),
            }),
            (i, e) => Err(i.err().into_iter().chain(e.err()).collect()),
        }
    }

    /// Whether the cart's feed leaves `sku` out (`filtered`).
    pub fn filters_out(&self, sku: &str) -> bool {
        self.include.as_ref().is_some_and(|s| !s.is_match(sku))
            || self.exclude.as_ref().is_some_and(|s| s.is_match(sku))
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }
}

/// A problem in a kits or sku_map file: its CSV line (1 = the header).
#[derive(Debug, Clone, PartialEq)]
pub struct TableProblem {
    pub line: Option<usize>,
    pub message: String,
}

/// A value of a table as its messages quote it: at most 80 characters.
fn bounded(s: &str) -> String {
    crate::util::quoted_max(s, 80)
}

/// Reads a CSV table whose header must hold `columns`: each data row's
/// (line, values of those columns, in that order).
#[allow(clippy::type_complexity)]
fn read_csv(text: &str, columns: &[&str]) -> Result<Vec<(usize, Vec<String>)>, Vec<TableProblem>> {
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
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = vec![];
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line() as usize);
                if rec.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                let vals = idx
                    .iter()
                    .map(|&i| rec.get(i).unwrap_or("").trim().to_string())
                    .collect();
                rows.push((line, vals));
            }
            Err(e) => problems.push(TableProblem {
                line: e.position().map(|p| p.line() as usize),
                message: format!("cannot read the row: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

fn check_sku(line: usize, col: &str, v: &str, problems: &mut Vec<TableProblem>) -> bool {
    let bad = v.is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control);
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

/// A merchant's kits (rule 21): kit SKU → (component SKU, quantity per kit).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kits {
    pub kits: BTreeMap<String, Vec<(String, i64)>>,
}

impl Kits {
    /// Parses `kit_sku,component_sku,quantity`; refuses a kit naming itself
    /// or another kit, a quantity that is not a whole number ≥ 1, a
    /// component listed twice for one kit, a missing column.
    pub fn parse(text: &str) -> Result<Kits, Vec<TableProblem>> {
        let rows = read_csv(text, &["kit_sku", "component_sku", "quantity"])?;
        let mut problems = vec![];
        let mut kits: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
        let mut lines: Vec<(usize, String, String)> = vec![];
        for (line, v) in rows {
            let (kit, comp, q) = (&v[0], &v[1], &v[2]);
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
            let entry = kits.entry(kit.clone()).or_default();
            if entry.iter().any(|(c, _)| c == comp) {
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
                entry.push((comp.clone(), q));
                lines.push((line, kit.clone(), comp.clone()));
            }
        }
        for (line, kit, comp) in &lines {
            if kits.contains_key(comp) {
                problems.push(TableProblem {
                    line: Some(*line),
                    message: format!(
                        "kit {} names another kit, {}, as a component (kits of kits are not supported)",
                        bounded(kit),
                        bounded(comp)
                    ),
                });
            }
        }
        problems.sort_by_key(|p| p.line);
        if problems.is_empty() {
            Ok(Kits { kits })
        } else {
            Err(problems)
        }
    }

    pub fn is_kit(&self, sku: &str) -> bool {
        self.kits.contains_key(sku)
    }
}

/// A cart's own item ids (rule 22): merchant SKU ↔ cart SKU, one to one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkuMap {
    pub out: HashMap<String, String>,
    pub back: HashMap<String, String>,
}

impl SkuMap {
    /// Parses `sku,cart_sku`; refuses a SKU mapped twice or two SKUs
    /// mapped to one cart SKU (naming both lines).
    pub fn parse(text: &str) -> Result<SkuMap, Vec<TableProblem>> {
        let rows = read_csv(text, &["sku", "cart_sku"])?;
        let mut problems = vec![];
        let mut m = SkuMap::default();
        let mut line_of_sku: HashMap<String, usize> = HashMap::new();
        let mut line_of_cart: HashMap<String, usize> = HashMap::new();
        for (line, v) in rows {
            let (sku, cs) = (&v[0], &v[1]);
            if !(check_sku(line, "sku", sku, &mut problems)
                & check_sku(line, "cart_sku", cs, &mut problems))
            {
                continue;
            }
            if let Some(first) = line_of_sku.get(sku) {
                problems.push(TableProblem {
                    line: Some(line),
                    message: format!(
                        "sku {} is mapped twice (first on line {first})",
                        bounded(sku)
                    ),
                });
                continue;
            }
            if let Some(first) = line_of_cart.get(cs) {
                problems.push(TableProblem {
                    line: Some(line),
                    message: format!(
                        "cart_sku {} is given to two SKUs (first on line {first})",
                        bounded(cs)
                    ),
                });
                continue;
            }
            line_of_sku.insert(sku.clone(), line);
            line_of_cart.insert(cs.clone(), line);
            m.out.insert(sku.clone(), cs.clone());
            m.back.insert(cs.clone(), sku.clone());
        }
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(problems)
        }
    }
}

/// Everything of rules 20–23 one cart's feed applies, its tables loaded.
#[derive(Debug, Clone, Default)]
pub struct CartRules {
    pub alloc: Allocation,
    pub kits: Option<Arc<Kits>>,
    pub sku_map: Option<Arc<SkuMap>>,
    pub filters: Filters,
}

impl CartRules {
    /// Why the cart's feed leaves `sku` out (rules 22, 23), as its sync
    /// summary counts it; else the id the feed carries (None: the SKU).
    pub fn place<'a>(&'a self, sku: &str) -> Result<Option<&'a str>, &'static str> {
        if self.filters.filters_out(sku) {
            return Err("filtered");
        }
        match &self.sku_map {
            None => Ok(None),
            Some(m) => m.out.get(sku).map(|s| Some(s.as_str())).ok_or("no alias"),
        }
    }
}

/// The last read of one table file: the content's hash, the last good
/// table and, when the file now does not parse, why.
struct Entry<T> {
    hash: [u8; 32],
    good: Option<Arc<T>>,
    error: Option<String>,
}

type Cache<T> = Mutex<HashMap<PathBuf, Entry<T>>>;

fn kits_cache() -> &'static Cache<Kits> {
    static C: std::sync::OnceLock<Cache<Kits>> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

fn map_cache() -> &'static Cache<SkuMap> {
    static C: std::sync::OnceLock<Cache<SkuMap>> = std::sync::OnceLock::new();
    C.get_or_init(Default::default)
}

/// A table file that cannot be used, worded for `status`, the log and
/// `/healthz`: `path:line: message` of its first problem.
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

/// Rule 24: the table at `path`, read again when its content changed
/// (SHA-256 of the file at each call). A file that does not parse keeps
/// the last good table (logged once per change, and listed by
/// [`table_trouble`]); with none, the error.
fn load<T>(
    cache: &'static Cache<T>,
    path: &Path,
    parse: fn(&str) -> Result<T, Vec<TableProblem>>,
    what: &str,
) -> Result<Arc<T>, String> {
    let read = std::fs::read(path);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let why = format!("{what} {}: cannot read: {e}", path.display());
            let entry = c.entry(path.to_path_buf()).or_insert(Entry {
                hash: [0; 32],
                good: None,
                error: None,
            });
            if entry.error.as_deref() != Some(why.as_str()) {
                tracing::warn!("{why}; keeping the last good table");
            }
            entry.hash = [0; 32];
            entry.error = Some(why.clone());
            return entry.good.clone().ok_or(why);
        }
    };
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(e) = c.get(path)
        && e.hash == hash
    {
        return match (&e.good, &e.error) {
            (_, Some(why)) if e.good.is_none() => Err(why.clone()),
            (Some(g), _) => Ok(g.clone()),
            (None, _) => Err(format!("{what} {}: unreadable", path.display())),
        };
    }
    let text = String::from_utf8_lossy(&bytes);
    let entry = c.entry(path.to_path_buf()).or_insert(Entry {
        hash,
        good: None,
        error: None,
    });
    entry.hash = hash;
    match parse(&text) {
        Ok(t) => {
            if entry.error.take().is_some() || entry.good.is_some() {
                tracing::info!("{what} {} read again", path.display());
            }
            let t = Arc::new(t);
            entry.good = Some(t.clone());
            Ok(t)
        }
        Err(ps) => {
            let why = format!("{what} {}", describe(path, &ps));
            tracing::warn!("{why}; keeping the last good table");
            entry.error = Some(why.clone());
            entry.good.clone().ok_or(why)
        }
    }
}

/// Parses `bytes` (the file at `path`, as `check` read it) and, when good,
/// keeps the table for the next [`load_kits`] / [`load_sku_map`] of the
/// same content (a big table is parsed once per change, not twice).
fn prime<T>(
    cache: &'static Cache<T>,
    path: &Path,
    bytes: &[u8],
    parse: fn(&str) -> Result<T, Vec<TableProblem>>,
) -> Result<(), Vec<TableProblem>> {
    let t = parse(&String::from_utf8_lossy(bytes))?;
    let hash: [u8; 32] = Sha256::digest(bytes).into();
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.get(path)
        .is_none_or(|e| e.good.is_none() && e.error.is_none())
    {
        c.insert(
            path.to_path_buf(),
            Entry {
                hash,
                good: Some(Arc::new(t)),
                error: None,
            },
        );
    }
    Ok(())
}

/// `check`'s read of a kits file: its problems, or the table kept.
pub fn check_kits(path: &Path, bytes: &[u8]) -> Result<(), Vec<TableProblem>> {
    prime(kits_cache(), path, bytes, Kits::parse)
}

/// `check`'s read of a sku_map file: its problems, or the table kept.
pub fn check_sku_map(path: &Path, bytes: &[u8]) -> Result<(), Vec<TableProblem>> {
    prime(map_cache(), path, bytes, SkuMap::parse)
}

/// A merchant's kits file, read again when it changed (rule 24).
pub fn load_kits(path: &Path) -> Result<Arc<Kits>, String> {
    load(kits_cache(), path, Kits::parse, "kits file")
}

/// A cart's (or an order source's) sku_map file, read again when it changed.
pub fn load_sku_map(path: &Path) -> Result<Arc<SkuMap>, String> {
    load(map_cache(), path, SkuMap::parse, "sku_map file")
}

/// Every table file this process read that does not parse now (its last
/// good table in use), worded for `status`, the log and `/healthz`.
pub fn table_trouble() -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for e in kits_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        out.extend(e.error.clone());
    }
    for e in map_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        out.extend(e.error.clone());
    }
    out.sort();
    out
}

/// The trouble of one file, if it has some now.
pub fn trouble_of(path: &Path) -> Option<String> {
    let k = kits_cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = k.get(path) {
        return e.error.clone();
    }
    drop(k);
    map_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(path)
        .and_then(|e| e.error.clone())
}

/// The SKUs a kit plan reads: every kit (of `only`, when given: the kits
/// naming that SKU or being it) and every component, sorted.
pub(super) fn kit_skus(kits: &Kits, only: Option<&str>) -> (Vec<String>, Vec<String>) {
    let mut ks = vec![];
    let mut all: HashSet<&str> = HashSet::new();
    for (k, comps) in &kits.kits {
        if let Some(s) = only
            && k != s
            && !comps.iter().any(|(c, _)| c == s)
        {
            continue;
        }
        ks.push(k.clone());
        all.insert(k);
        for (c, _) in comps {
            all.insert(c);
        }
    }
    let mut all: Vec<String> = all.into_iter().map(String::from).collect();
    all.sort();
    (ks, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_20_order_and_rounding() {
        let a = |buffer, percent, max_level| Allocation {
            buffer,
            percent,
            max_level,
        };
        assert_eq!(a(0, 50, 0).value(3, 0), 1);
        assert_eq!(a(2, 100, 0).value(10, 0), 8);
        assert_eq!(a(0, 100, 5).value(10, 0), 5);
        assert_eq!(a(2, 50, 3).value(10, 0), 3);
        assert_eq!(a(2, 50, 0).value(10, 0), 4);
        assert_eq!(a(20, 50, 0).value(10, 0), 0);
        assert_eq!(a(0, 100, 0).value(-4, 0), 0);
        // min_level first: 4 < 5 sends 0 whatever the other keys.
        assert_eq!(a(0, 100, 0).value(4, 5), 0);
        assert_eq!(a(1, 50, 0).value(5, 5), 2);
    }

    #[test]
    fn kits_refusals_name_lines() {
        let p = Kits::parse(
            "kit_sku,component_sku,quantity\nK,K,1\nK,A,0\nK2,K3,1\nK3,A,1\nK4,A,1.5\n",
        )
        .unwrap_err();
        let lines: Vec<_> = p.iter().map(|p| p.line.unwrap()).collect();
        assert_eq!(lines, vec![2, 3, 4, 6]);
        assert!(p[0].message.contains("names itself"));
        assert!(p[2].message.contains("another kit"));
        let p = Kits::parse("kit,component_sku,quantity\n").unwrap_err();
        assert_eq!(p[0].line, Some(1));
        assert!(p[0].message.contains("missing column \"kit_sku\""));
    }

    #[test]
    fn sku_map_refuses_duplicates_either_way() {
        let p = SkuMap::parse("sku,cart_sku\nA,X\nA,Y\nB,X\n").unwrap_err();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].line, Some(3));
        assert!(p[0].message.contains("mapped twice (first on line 2)"));
        assert_eq!(p[1].line, Some(4));
        assert!(p[1].message.contains("two SKUs"));
    }

    #[test]
    fn filters() {
        let f = Filters::new(&["ACME-*".into()], &["*-OLD".into()]).unwrap();
        assert!(!f.filters_out("ACME-1"));
        assert!(f.filters_out("acme-1"));
        assert!(f.filters_out("ACME-1-OLD"));
        assert!(f.filters_out("X"));
        assert!(f.filters_out("ACME-a/b-OLD"));
        assert!(!f.filters_out("ACME-a/b"));
    }
}
