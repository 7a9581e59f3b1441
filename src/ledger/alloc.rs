//! Allocation per cart (CONTRACT §5, rules 20–24), backend-neutral: the
//! keys (`buffer`, `percent`, `max_level`), kits, each cart's own item ids
//! (`sku_map`) and the `include`/`exclude` filters. The tables come parsed
//! from above (`crate::tables` reads and caches the files: the ledger reads
//! none). The feed merge ([`super::feed`]) applies them, so `sync` and
//! `explain` share one computation.

use globset::{GlobSet, GlobSetBuilder};
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

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

/// A merchant's kits (rule 21): kit SKU → (component SKU, quantity per kit).
/// Parsed from its file above the ledger (`crate::tables`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kits {
    pub kits: BTreeMap<String, Vec<(String, i64)>>,
}

impl Kits {
    pub fn is_kit(&self, sku: &str) -> bool {
        self.kits.contains_key(sku)
    }
}

/// Why [`SkuMap::new`] refused a pair: the pair (its index) that already
/// holds the SKU, or the cart SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Sku(usize),
    CartSku(usize),
}

/// A cart's own item ids (rule 22): merchant SKU ↔ cart SKU, one to one.
/// One text holds every id (the table's file itself, as read); the two
/// indexes hold pair numbers, not strings, so a table of a million lines
/// costs its file and about 40 bytes a line.
#[derive(Clone, Default)]
pub struct SkuMap {
    text: String,
    /// Each pair's (sku, cart_sku) as (start, length) in `text`.
    pairs: Vec<[(u32, u32); 2]>,
    out: hashbrown::HashTable<u32>,
    back: hashbrown::HashTable<u32>,
    /// foldhash: a feed looks up every SKU it sends.
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for SkuMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SkuMap({} ids)", self.out.len())
    }
}

impl SkuMap {
    /// The map of `pairs` ((sku, cart_sku) spans of `text`), in order; a
    /// pair whose SKU or cart SKU an earlier pair holds is left out and
    /// returned with that pair's index.
    pub fn new(text: String, pairs: Vec<[(u32, u32); 2]>) -> (SkuMap, Vec<(usize, Taken)>) {
        let n = pairs.len();
        let mut m = SkuMap {
            text,
            pairs,
            out: hashbrown::HashTable::with_capacity(n),
            back: hashbrown::HashTable::with_capacity(n),
            hasher: foldhash::fast::RandomState::default(),
        };
        let mut taken = vec![];
        let SkuMap {
            text,
            pairs,
            out,
            back,
            hasher,
        } = &mut m;
        let at = |j: u32, side: usize| {
            let (s, l) = pairs[j as usize][side];
            &text[s as usize..(s + l) as usize]
        };
        for i in 0..n {
            let (sku, cs) = (at(i as u32, 0), at(i as u32, 1));
            let (hs, hc) = (hasher.hash_one(sku), hasher.hash_one(cs));
            // One probe of each index: a vacant entry of `out` is dropped
            // (nothing inserted) when the cart SKU is taken.
            let o = match out.entry(hs, |&j| at(j, 0) == sku, |&j| hasher.hash_one(at(j, 0))) {
                hashbrown::hash_table::Entry::Occupied(e) => {
                    taken.push((i, Taken::Sku(*e.get() as usize)));
                    continue;
                }
                hashbrown::hash_table::Entry::Vacant(v) => v,
            };
            match back.entry(hc, |&j| at(j, 1) == cs, |&j| hasher.hash_one(at(j, 1))) {
                hashbrown::hash_table::Entry::Occupied(e) => {
                    taken.push((i, Taken::CartSku(*e.get() as usize)));
                }
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(i as u32);
                    o.insert(i as u32);
                }
            }
        }
        (m, taken)
    }

    fn side(&self, i: usize, side: usize) -> &str {
        let (s, l) = self.pairs[i][side];
        &self.text[s as usize..(s + l) as usize]
    }

    /// The SKU of pair `i` (as given to [`SkuMap::new`]).
    pub fn pair_sku(&self, i: usize) -> &str {
        self.side(i, 0)
    }

    /// The cart SKU of pair `i`.
    pub fn pair_cart_sku(&self, i: usize) -> &str {
        self.side(i, 1)
    }

    /// The cart's id for a merchant SKU.
    pub fn cart_sku(&self, sku: &str) -> Option<&str> {
        let h = self.hasher.hash_one(sku);
        let &i = self.out.find(h, |&j| self.side(j as usize, 0) == sku)?;
        Some(self.side(i as usize, 1))
    }

    /// The merchant SKU of a cart id.
    pub fn sku(&self, cart_sku: &str) -> Option<&str> {
        let h = self.hasher.hash_one(cart_sku);
        let &i = self
            .back
            .find(h, |&j| self.side(j as usize, 1) == cart_sku)?;
        Some(self.side(i as usize, 0))
    }

    /// The number of ids.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
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
            Some(m) => m.cart_sku(sku).map(Some).ok_or("no alias"),
        }
    }
}

/// The SKUs a kit plan reads: every kit (of `only`, when given: the kits
/// naming that SKU or being it) and every component, sorted.
pub(super) fn kit_skus(kits: &Kits, only: Option<&str>) -> (Vec<String>, Vec<String>) {
    let mut ks = vec![];
    let mut all: Vec<&str> = vec![];
    for (k, comps) in &kits.kits {
        if let Some(s) = only
            && k != s
            && !comps.iter().any(|(c, _)| c == s)
        {
            continue;
        }
        ks.push(k.clone());
        all.push(k);
        all.extend(comps.iter().map(|(c, _)| c.as_str()));
    }
    // Sorted and deduplicated as borrowed strings; owned once at the end.
    all.sort_unstable();
    all.dedup();
    (ks, all.into_iter().map(String::from).collect())
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
