//! The feed merge in plain Rust: rules 2, 4, 5 and 6 and the
//! per-warehouse split, over the key-ordered row streams a backend yields
//! (products, stock, open orders, last-sent values, each in SKU order by
//! byte order, as Rust's `str` compares). No backend type appears here.

use super::{FeedQuery, FeedRow, OrderDraw, SkuRows};
use crate::formats::{FeedItem, WarehouseShare};
use std::collections::{HashMap, VecDeque};

/// One row of a key-ordered scan, held in reusable buffers (no allocation
/// per row once warm): stock (sku, warehouse, quantity, as_of,
/// named_report_id), open orders (sku, warehouse, quantity, ordered_at) or
/// last-sent values (sku, value).
#[derive(Default)]
pub(super) struct KeyedRow {
    pub sku: String,
    /// The warehouse (stock, orders), when not NULL.
    pub text: Option<String>,
    /// The integer columns after the key (and the warehouse), in order.
    pub ints: [i64; 3],
}

/// A backend's key-ordered scan of stock, open orders or last-sent values.
pub(super) trait KeyedScan {
    type Error;
    /// Reads the next row into `row` (its buffers reused); false at the end.
    fn next_into(&mut self, row: &mut KeyedRow) -> Result<bool, Self::Error>;
}

/// A product row, borrowed from its scan.
pub(super) trait ProductRow {
    type Error;
    fn sku(&self) -> Result<&str, Self::Error>;
    /// (upc, description, price), read only for a SKU the feed includes.
    #[allow(clippy::type_complexity)]
    fn details(&self) -> Result<(Option<String>, Option<String>, Option<String>), Self::Error>;
}

/// A backend's scan of a merchant's products in SKU order.
pub(super) trait ProductScan {
    type Error;
    type Row<'r>: ProductRow<Error = Self::Error>
    where
        Self: 'r;
    fn next_row(&mut self) -> Result<Option<Self::Row<'_>>, Self::Error>;
}

/// SQLite's `safe_sum!` on an exact sum: TOTAL (a double), clamped to ±4e18,
/// cast back to an integer.
pub(super) fn safe_total(sum: i128) -> i64 {
    (sum as f64).clamp(-4e18, 4e18) as i64
}

/// One key-ordered scan of the feed merge, its current row held in
/// reusable buffers.
pub(super) struct Cursor<S> {
    scan: S,
    done: bool,
    row: KeyedRow,
}

impl<S: KeyedScan> Cursor<S> {
    pub(super) fn new(scan: S) -> Result<Self, S::Error> {
        let mut c = Cursor {
            scan,
            done: false,
            row: KeyedRow::default(),
        };
        c.advance()?;
        Ok(c)
    }

    pub(super) fn advance(&mut self) -> Result<(), S::Error> {
        if !self.scan.next_into(&mut self.row)? {
            self.done = true;
        }
        Ok(())
    }

    /// Skips rows before `sku`; whether the current row is `sku`'s.
    fn seek(&mut self, sku: &str) -> Result<bool, S::Error> {
        while !self.done && self.row.sku.as_str() < sku {
            self.advance()?;
        }
        Ok(!self.done && self.row.sku == sku)
    }
}

/// The whole-catalog feed as one streaming pass: products, stock, open
/// orders and last-sent values, each scanned in SKU order (SQLite's binary
/// collation is byte order, as Rust's `str`), merged per SKU; or one SKU's
/// rows of each, for `explain`.
pub(super) struct FeedMerge<'q, P: ProductScan, S> {
    pub q: &'q FeedQuery<'q>,
    pub products: P,
    pub stock: Cursor<S>,
    pub orders: Cursor<S>,
    pub sent: Cursor<S>,
    /// The current SKU's counted stock rows: (warehouse, as_of, quantity); buffers reused.
    pub counted: Vec<(String, i64, i64)>,
    /// With a breakdown (`q.locations`): the current SKU's open orders per
    /// warehouse they draw on ("" when no stock was ever counted).
    pub draws: Vec<(String, i128)>,
    pub err: Option<P::Error>,
    /// The feed's kits (rule 21), None without.
    pub kits: Option<KitPlan>,
    /// Rows ready, in SKU order (kits before the product that follows them).
    pub queue: VecDeque<FeedRow>,
    pub products_done: bool,
}

/// Whether a cart counting `warehouses` ([] = all) counts `warehouse`.
fn counts(warehouses: &[String], warehouse: &str) -> bool {
    warehouses.is_empty() || warehouses.iter().any(|w| w == warehouse)
}

impl<P, S> FeedMerge<'_, P, S>
where
    P: ProductScan,
    S: KeyedScan<Error = P::Error>,
{
    fn step(&mut self) -> Result<Option<FeedRow>, P::Error> {
        let q = self.q;
        loop {
            if let Some(r) = self.queue.pop_front() {
                return Ok(Some(r));
            }
            if self.products_done {
                // The kits after the last product, in SKU order.
                let Some(plan) = self.kits.as_mut() else {
                    return Ok(None);
                };
                let Some(kit) = plan.take_before(None) else {
                    return Ok(None);
                };
                if let Some(r) = kit_row(q, plan, &mut self.sent, &kit, (None, None, None))? {
                    return Ok(Some(r));
                }
                continue;
            }
            let Some(p) = self.products.next_row()? else {
                self.products_done = true;
                continue;
            };
            let sku = p.sku()?;
            // Kits without a product row come in SKU order before it.
            if let Some(plan) = self.kits.as_mut() {
                while let Some(kit) = plan.take_before(Some(sku)) {
                    if let Some(r) = kit_row(q, plan, &mut self.sent, &kit, (None, None, None))? {
                        self.queue.push_back(r);
                    }
                }
                if plan.book.contains_key(sku) {
                    // A kit: no stock or orders of its own (rule 21).
                    if plan.next < plan.order.len() && plan.order[plan.next] == sku {
                        plan.next += 1;
                        let details = p.details()?;
                        if let Some(r) = kit_row(q, plan, &mut self.sent, sku, details)? {
                            self.queue.push_back(r);
                        }
                    }
                    continue;
                }
            }
            // Stock counted for this cart: summed (rule 2), latest as-of, last report naming it.
            let mut sum = 0i128;
            let mut any = false;
            let mut latest: Option<i64> = None;
            let mut named: Option<i64> = None;
            let mut n_counted = 0;
            if self.stock.seek(sku)? {
                while !self.stock.done && self.stock.row.sku == sku {
                    let w = self.stock.row.text.as_deref().unwrap_or("");
                    if counts(q.warehouses, w) {
                        let [qty, as_of, nr] = self.stock.row.ints;
                        sum += qty as i128;
                        any = true;
                        latest = latest.max(Some(as_of));
                        named = named.max(Some(nr));
                        if n_counted == self.counted.len() {
                            self.counted.push((String::new(), 0, 0));
                        }
                        let slot = &mut self.counted[n_counted];
                        slot.0.clear();
                        slot.0.push_str(w);
                        slot.1 = as_of;
                        slot.2 = qty;
                        n_counted += 1;
                    }
                    self.stock.advance()?;
                }
            }
            // Open orders since the count of the stock they draw on.
            let mut drawn = 0i128;
            let mut any_drawn = false;
            let breakdown = !q.locations.is_empty();
            self.draws.clear();
            if self.orders.seek(sku)? {
                while !self.orders.done && self.orders.row.sku == sku {
                    let [qty, ordered_at, _] = self.orders.row.ints;
                    let own = self.orders.row.text.as_deref();
                    let counted = &self.counted[..n_counted];
                    if draws(q.warehouses, counted, latest, own, ordered_at) {
                        drawn += qty as i128;
                        any_drawn = true;
                        if breakdown {
                            let counted = &self.counted[..n_counted];
                            let w = self.orders.row.text.as_deref();
                            add_draw(&mut self.draws, draws_on(counted, latest, w), qty);
                        }
                    }
                    self.orders.advance()?;
                }
            }
            // A component: the kit order lines drawing on it (rule 21).
            if let Some(extra) = self.kits.as_ref().and_then(|k| k.extra.get(sku)) {
                let counted = &self.counted[..n_counted];
                for (own, qty, ordered_at) in extra {
                    if draws(q.warehouses, counted, latest, own.as_deref(), *ordered_at) {
                        drawn += *qty as i128;
                        any_drawn = true;
                        if breakdown {
                            add_draw(
                                &mut self.draws,
                                draws_on(counted, latest, own.as_deref()),
                                *qty,
                            );
                        }
                    }
                }
            }
            let stock_q = if any { safe_total(sum) } else { 0 };
            let orders_q = if any_drawn { safe_total(drawn) } else { 0 };
            let parts = Parts {
                available: stock_q - orders_q,
                on_hand: stock_q,
                committed: orders_q,
                named: named.unwrap_or(0),
                latest,
                stock: &self.counted[..n_counted],
                draws: &self.draws,
                kit: None,
            };
            if let Some(r) = finish(q, &mut self.sent, sku, parts, || p.details())? {
                self.queue.push_back(r);
            }
        }
    }
}

/// One SKU's numbers before the cart's keys and its feed's choices.
struct Parts<'a> {
    available: i64,
    on_hand: i64,
    committed: i64,
    named: i64,
    latest: Option<i64>,
    /// Counted rows (warehouse, as_of, quantity) and draws per warehouse,
    /// for the per-warehouse split.
    stock: &'a [(String, i64, i64)],
    draws: &'a [(String, i128)],
    kit: Option<Box<KitExplain>>,
}

/// Rules 5, 20, 22, 23 and 6 on one SKU's numbers: its value, whether the
/// feed includes it and why it leaves it out, the split, the product fields.
#[allow(clippy::type_complexity)]
fn finish<S: KeyedScan>(
    q: &FeedQuery,
    sent: &mut Cursor<S>,
    sku: &str,
    parts: Parts,
    details: impl FnOnce() -> Result<(Option<String>, Option<String>, Option<String>), S::Error>,
) -> Result<Option<FeedRow>, S::Error> {
    let available = parts.available;
    let value = match q.rules {
        Some(r) => r.alloc.value(available, q.min_level),
        None if available < q.min_level => 0,
        None => available.max(0),
    };
    let last = if sent.seek(sku)? {
        Some(sent.row.ints[0])
    } else {
        None
    };
    let changed = last != Some(value);
    let include = q.full || parts.named > q.since_report || changed;
    if !include {
        return Ok(None);
    }
    let (left_out, alias) = match q.rules.map(|r| r.place(sku)) {
        None | Some(Ok(None)) => (None, None),
        Some(Ok(Some(a))) => (None, Some(a)),
        Some(Err(why)) => (Some(why), None),
    };
    let (warehouses, unplaced) = if !q.locations.is_empty() {
        split_by_warehouse(q.locations, parts.stock, parts.draws, value)
    } else {
        (Vec::new(), 0)
    };
    let (upc, description, price) = details()?;
    Ok(Some(FeedRow {
        item: FeedItem {
            sku: alias.unwrap_or(sku).to_string(),
            quantity: value,
            upc,
            description,
            as_of: parts.latest,
            price,
            on_hand: parts.on_hand,
            committed: parts.committed,
            warehouses,
            unplaced,
        },
        available,
        include,
        changed,
        key: alias.map(|_| sku.to_string()),
        left_out,
        kit: parts.kit,
    }))
}

/// A kit's row (rule 21): its build from the plan, then as any SKU.
#[allow(clippy::type_complexity)]
fn kit_row<S: KeyedScan>(
    q: &FeedQuery,
    plan: &KitPlan,
    sent: &mut Cursor<S>,
    kit: &str,
    details: (Option<String>, Option<String>, Option<String>),
) -> Result<Option<FeedRow>, S::Error> {
    let Some(b) = plan.book.get(kit) else {
        return Ok(None);
    };
    let parts = Parts {
        available: b.available,
        on_hand: b.available,
        committed: 0,
        named: b.named,
        latest: b.latest,
        stock: &b.per_warehouse,
        draws: &[],
        kit: plan.explain.then(|| Box::new(b.explain.clone())),
    };
    finish(q, sent, kit, parts, || Ok(details))
}

/// One warehouse of a kit's build, for `explain`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KitWarehouse {
    pub warehouse: String,
    /// Kits buildable there: the least component share, never below 0.
    pub build: i64,
    /// The component whose share is least (the first in kit order on a tie).
    pub limited_by: String,
    pub components: Vec<KitComponent>,
}

/// One component of a kit in one warehouse.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KitComponent {
    pub sku: String,
    pub per_kit: i64,
    /// The component's available in that warehouse (rule 2, kit orders included).
    pub available: i64,
    /// floor(available / per_kit).
    pub share: i64,
}

/// How a kit's available was built, warehouse by warehouse.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KitExplain {
    pub warehouses: Vec<KitWarehouse>,
}

/// An open line of a component: (its warehouse, quantity, ordered_at).
type Line<'a> = (Option<&'a str>, i64, i64);

/// A map of the kit plan: looked up once or twice per SKU of the feed, so
/// hashed with foldhash, not SipHash (the keys are the merchant's SKUs).
type Fast<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One kit's numbers for one cart.
struct KitBuild {
    available: i64,
    named: i64,
    latest: Option<i64>,
    /// (warehouse, 0, build) per counted warehouse.
    per_warehouse: Vec<(String, i64, i64)>,
    explain: KitExplain,
}

/// The kits of a feed, built before the merge (rule 21): each kit's
/// build per counted warehouse, and the kit order lines each component
/// carries (warehouse, quantity × per kit, ordered_at).
pub(super) struct KitPlan {
    order: Vec<String>,
    next: usize,
    book: Fast<String, KitBuild>,
    #[allow(clippy::type_complexity)]
    extra: Fast<String, Vec<(Option<String>, i64, i64)>>,
    explain: bool,
}

impl KitPlan {
    /// The next kit of the feed, in SKU order, when it comes before
    /// `bound` (None: any), taken out of the plan.
    fn take_before(&mut self, bound: Option<&str>) -> Option<String> {
        let next = self.order.get_mut(self.next)?;
        if bound.is_some_and(|b| next.as_str() >= b) {
            return None;
        }
        self.next += 1;
        Some(std::mem::take(next))
    }
}

/// Builds the feed's [`KitPlan`] from the stock rows and open order lines
/// of the kits and their components (`rows_of`, a backend scan of those
/// SKUs); None without kits.
pub(super) fn kit_plan<E>(
    q: &FeedQuery,
    rows_of: impl FnOnce(&[String]) -> Result<SkuRows, E>,
) -> Result<Option<KitPlan>, E> {
    let Some(kits) = q.rules.and_then(|r| r.kits.as_deref()) else {
        return Ok(None);
    };
    if kits.kits.is_empty() {
        return Ok(None);
    }
    let (relevant, skus) = super::alloc::kit_skus(kits, q.sku);
    let mut rows = if skus.is_empty() {
        SkuRows::default()
    } else {
        rows_of(&skus)?
    };
    drop(skus);
    // Counted stock of the components, by (SKU, warehouse): each
    // component's rows one range of them (no copy, no string per row).
    rows.stock
        .retain(|s| counts(q.warehouses, &s.warehouse) && !kits.is_kit(&s.sku));
    rows.stock.sort_unstable_by(|a, b| {
        (a.sku.as_str(), a.warehouse.as_str()).cmp(&(b.sku.as_str(), b.warehouse.as_str()))
    });
    let stock = &rows.stock;
    let mut range: Fast<&str, (u32, u32)> = Fast::default();
    let mut i = 0;
    while i < stock.len() {
        let mut j = i + 1;
        while j < stock.len() && stock[j].sku == stock[i].sku {
            j += 1;
        }
        range.insert(&stock[i].sku, (i as u32, j as u32));
        i = j;
    }
    let of = |c: &str| -> (usize, usize) {
        range
            .get(c)
            .map_or((0, 0), |&(a, b)| (a as usize, b as usize))
    };
    // Kit lines, as lines of each component; and each component's own lines.
    let mut extra: Fast<String, Vec<(Option<String>, i64, i64)>> = Fast::default();
    let mut own: Fast<&str, Vec<Line<'_>>> = Fast::default();
    for o in &rows.orders {
        match kits.kits.get(&o.sku) {
            Some(comps) => {
                for (c, per) in comps {
                    let qty = (i128::from(o.quantity) * i128::from(*per))
                        .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                        as i64;
                    extra.entry(c.clone()).or_default().push((
                        o.warehouse.clone(),
                        qty,
                        o.ordered_at,
                    ));
                }
            }
            None => own.entry(&o.sku).or_default().push((
                o.warehouse.as_deref(),
                o.quantity,
                o.ordered_at,
            )),
        }
    }
    // Each component's available per warehouse (rule 2 for the component):
    // `net[i]` for its counted row `stock[i]`.
    let mut net: Vec<i128> = stock.iter().map(|s| i128::from(s.quantity)).collect();
    for (c, &(a, b)) in &range {
        let rows_c = &stock[a as usize..b as usize];
        let latest = rows_c.iter().map(|r| r.as_of).max();
        let lines = own.get(c).into_iter().flatten().copied().chain(
            extra
                .get(*c)
                .into_iter()
                .flatten()
                .map(|(w, q, t)| (w.as_deref(), *q, *t)),
        );
        for (w, qty, at) in lines {
            if draws(q.warehouses, rows_c, latest, w, at) {
                let on = draws_on(rows_c, latest, w);
                if let Some(k) = rows_c.iter().position(|r| r.warehouse == on) {
                    net[a as usize + k] -= i128::from(qty);
                }
            }
        }
    }
    // The per-warehouse split needs each kit's build per warehouse; a feed
    // without one only its total.
    let split = !q.locations.is_empty();
    let mut book: Fast<String, KitBuild> = Fast::default();
    book.reserve(relevant.len());
    let mut whs: Vec<&str> = Vec::new();
    for k in &relevant {
        let comps = &kits.kits[k];
        whs.clear();
        for (c, _) in comps {
            let (a, b) = of(c);
            whs.extend(stock[a..b].iter().map(|r| r.warehouse.as_str()));
        }
        whs.sort_unstable();
        whs.dedup();
        let mut total = 0i128;
        let mut per_warehouse = Vec::with_capacity(if split { whs.len() } else { 0 });
        let mut explain = KitExplain::default();
        for &w in &whs {
            let mut build: Option<(i128, usize)> = None;
            let mut shown = vec![];
            for (i, (c, per)) in comps.iter().enumerate() {
                let (a, b) = of(c);
                let av = stock[a..b]
                    .iter()
                    .position(|r| r.warehouse == w)
                    .map_or(0, |k| net[a + k]);
                let share = av.div_euclid(i128::from(*per));
                if build.is_none_or(|(b, _)| share < b) {
                    build = Some((share, i));
                }
                if q.sku.is_some() {
                    shown.push(KitComponent {
                        sku: c.clone(),
                        per_kit: *per,
                        available: safe_total(av),
                        share: safe_total(share),
                    });
                }
            }
            let (b, lim) = build.unwrap_or((0, 0));
            let b = b.max(0);
            total += b;
            if split {
                per_warehouse.push((w.to_string(), 0, safe_total(b)));
            }
            if q.sku.is_some() {
                explain.warehouses.push(KitWarehouse {
                    warehouse: w.to_string(),
                    build: safe_total(b),
                    limited_by: comps[lim].0.clone(),
                    components: shown,
                });
            }
        }
        let rows_k = comps.iter().flat_map(|(c, _)| {
            let (a, b) = of(c);
            &stock[a..b]
        });
        let named_k = rows_k.clone().map(|r| r.named_report_id).max().unwrap_or(0);
        let latest = rows_k.map(|r| r.as_of).max();
        book.insert(
            k.clone(),
            KitBuild {
                available: safe_total(total),
                named: named_k,
                latest,
                per_warehouse,
                explain,
            },
        );
    }
    let order = relevant
        .into_iter()
        .filter(|k| q.sku.is_none_or(|s| s == k))
        .collect();
    Ok(Some(KitPlan {
        order,
        next: 0,
        book,
        extra,
        explain: q.sku.is_some(),
    }))
}

/// Rule 2: whether an open order line (its own warehouse, if any, and its
/// time) draws on the stock a cart counts (`warehouses`, [] = all;
/// `counted`: the SKU's counted rows (warehouse, as_of, quantity), `latest`
/// their latest as-of): ordered after the as-of of the stock it draws on
/// (its warehouse's, else the SKU's latest count); a line on a warehouse
/// the cart does not count draws nothing; never-counted stock draws every
/// line.
pub(super) fn draws<C: Counted>(
    warehouses: &[String],
    counted: &[C],
    latest: Option<i64>,
    own: Option<&str>,
    ordered_at: i64,
) -> bool {
    let since = match own {
        None => Some(latest),
        Some(w) if counts(warehouses, w) => Some(
            counted
                .iter()
                .find(|c| c.warehouse() == w)
                .map(Counted::as_of),
        ),
        Some(_) => None,
    };
    since.is_some_and(|since| ordered_at > since.unwrap_or(-9223372036854775807))
}

/// An open order line of one SKU, for [`drawing_lines`].
pub(super) struct OpenLine {
    pub draw: OrderDraw,
    pub warehouse: Option<String>,
}

/// `explain`'s list of the order lines a SKU's value subtracts: rule 2
/// ([`draws`], as the merge applies it) over the SKU's stock rows (a
/// stock scan of that SKU) and its open lines (not cancelled, not after
/// the sync time), in the order given.
pub(super) fn drawing_lines<S: KeyedScan>(
    warehouses: &[String],
    mut stock: S,
    lines: impl IntoIterator<Item = Result<OpenLine, S::Error>>,
) -> Result<Vec<OrderDraw>, S::Error> {
    let mut counted = Vec::new();
    let mut latest = None;
    let mut row = KeyedRow::default();
    while stock.next_into(&mut row)? {
        let w = row.text.as_deref().unwrap_or("");
        if counts(warehouses, w) {
            let [qty, as_of, _] = row.ints;
            latest = latest.max(Some(as_of));
            counted.push((w.to_string(), as_of, qty));
        }
    }
    let mut out = Vec::new();
    for l in lines {
        let l = l?;
        if draws(
            warehouses,
            &counted,
            latest,
            l.warehouse.as_deref(),
            l.draw.ordered_at,
        ) {
            out.push(l.draw);
        }
    }
    Ok(out)
}

/// The warehouse an open order line draws on (rule 2): its own, else the
/// SKU's latest-counted warehouse (the first by name among equal as-ofs),
/// else "" (no stock counted).
fn draws_on<'a, C: Counted>(
    counted: &'a [C],
    latest: Option<i64>,
    own: Option<&'a str>,
) -> &'a str {
    own.or_else(|| {
        counted
            .iter()
            .find(|c| Some(c.as_of()) == latest)
            .map(Counted::warehouse)
    })
    .unwrap_or("")
}

/// A counted stock row as rule 2 reads it: its warehouse and as-of.
pub(super) trait Counted {
    fn warehouse(&self) -> &str;
    fn as_of(&self) -> i64;
}

/// (warehouse, as_of, quantity), as the merge keeps them.
impl Counted for (String, i64, i64) {
    fn warehouse(&self) -> &str {
        &self.0
    }
    fn as_of(&self) -> i64 {
        self.1
    }
}

impl Counted for super::SkuStock {
    fn warehouse(&self) -> &str {
        &self.warehouse
    }
    fn as_of(&self) -> i64 {
        self.as_of
    }
}

fn add_draw(draws: &mut Vec<(String, i128)>, warehouse: &str, qty: i64) {
    match draws.iter_mut().find(|(w, _)| w == warehouse) {
        Some((_, d)) => *d += i128::from(qty),
        None => draws.push((warehouse.to_string(), i128::from(qty))),
    }
}

/// One warehouse while a SKU's value is split.
struct Bucket<'a> {
    warehouse: &'a str,
    listed: bool,
    on_hand: i128,
    drawn: i128,
    share: i128,
}

/// The bucket of warehouse `w`, added (unlisted) when new.
fn bucket_at<'a>(buckets: &mut Vec<Bucket<'a>>, w: &'a str) -> usize {
    match buckets.iter().position(|b| b.warehouse == w) {
        Some(i) => i,
        None => {
            buckets.push(Bucket {
                warehouse: w,
                listed: false,
                on_hand: 0,
                drawn: 0,
                share: 0,
            });
            buckets.len() - 1
        }
    }
}

/// Splits a SKU's value sent over warehouses (per-warehouse 846s), never
/// overselling (rules 4 and 5 hold for the sum):
///
/// - a warehouse's *net* is its latest count minus the open orders drawing
///   on it (`draws`: the line's warehouse, else the SKU's latest-counted);
/// - each warehouse starts with its net, or 0 when the net is negative;
/// - those starting shares exceed `value` by the other warehouses'
///   shortfalls (and by everything when min_level sends 0): that excess is
///   taken away first from warehouses outside `listed` (they cannot be
///   sent), then from the largest share, then the next largest (ties in
///   warehouse name order), until the shares sum to `value` exactly.
///
/// Returns the share of every warehouse in `listed`, in that order (0 for
/// one the SKU has no stock in), and what is left on unlisted warehouses
/// (`unplaced`; the item then cannot be sent per warehouse). Example: W1
/// counts 5, W2 counts 0 with 3 ordered: total 2; W1's 5 loses the excess
/// 3, so W1 = 2, W2 = 0.
pub(super) fn split_by_warehouse<'a>(
    listed: &'a [String],
    stock: &'a [(String, i64, i64)],
    draws: &'a [(String, i128)],
    value: i64,
) -> (Vec<WarehouseShare>, i64) {
    let mut buckets: Vec<Bucket> = listed
        .iter()
        .map(|w| Bucket {
            warehouse: w,
            listed: true,
            on_hand: 0,
            drawn: 0,
            share: 0,
        })
        .collect();
    for (w, _, qty) in stock {
        let i = bucket_at(&mut buckets, w);
        buckets[i].on_hand += i128::from(*qty);
    }
    for (w, d) in draws {
        let i = bucket_at(&mut buckets, w);
        buckets[i].drawn += d;
    }
    for b in &mut buckets {
        b.share = (b.on_hand - b.drawn).max(0);
    }
    let mut excess = buckets.iter().map(|b| b.share).sum::<i128>() - i128::from(value);
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&buckets[a], &buckets[b]);
        x.listed
            .cmp(&y.listed)
            .then(y.share.cmp(&x.share))
            .then(x.warehouse.cmp(y.warehouse))
    });
    for i in order {
        if excess <= 0 {
            break;
        }
        let take = excess.min(buckets[i].share);
        buckets[i].share -= take;
        excess -= take;
    }
    let unplaced = buckets
        .iter()
        .filter(|b| !b.listed)
        .map(|b| b.share)
        .sum::<i128>();
    let shares = buckets
        .iter()
        .filter(|b| b.listed)
        .map(|b| WarehouseShare {
            warehouse: b.warehouse.to_string(),
            quantity: safe_total(b.share),
            on_hand: safe_total(b.on_hand),
            committed: safe_total(b.drawn),
        })
        .collect();
    (shares, safe_total(unplaced))
}

impl<P, S> Iterator for FeedMerge<'_, P, S>
where
    P: ProductScan,
    S: KeyedScan<Error = P::Error>,
{
    type Item = FeedRow;
    fn next(&mut self) -> Option<FeedRow> {
        if self.err.is_some() {
            return None;
        }
        match self.step() {
            Ok(r) => r,
            Err(e) => {
                self.err = Some(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Per-warehouse 846s: shares never exceed a warehouse's own net and
    /// always sum to the value sent (rules 4 and 5 hold for the sum).
    #[test]
    fn split_by_warehouse_never_oversells() {
        let listed = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let stock = |rows: &[(&str, i64)]| {
            rows.iter()
                .map(|(w, q)| (w.to_string(), 1, *q))
                .collect::<Vec<_>>()
        };
        let draws = |rows: &[(&str, i128)]| {
            rows.iter()
                .map(|(w, q)| (w.to_string(), *q))
                .collect::<Vec<_>>()
        };
        let shares = |l: &[String], s: &[(String, i64, i64)], d: &[(String, i128)], v| {
            let (sh, unplaced) = split_by_warehouse(l, s, d, v);
            let q: Vec<(String, i64)> = sh.into_iter().map(|x| (x.warehouse, x.quantity)).collect();
            (q, unplaced)
        };
        let w12 = listed(&["W1", "W2"]);
        let pairs = |v: &[(&str, i64)]| {
            v.iter()
                .map(|(w, q)| (w.to_string(), *q))
                .collect::<Vec<_>>()
        };
        // W1 = 5, W2 = -3: total 2; W2's shortfall is taken from W1.
        assert_eq!(
            shares(&w12, &stock(&[("W1", 5), ("W2", -3)]), &[], 2),
            (pairs(&[("W1", 2), ("W2", 0)]), 0)
        );
        // W1 = 5, W2 = 0 with 3 ordered on W2: total 2, same split.
        assert_eq!(
            shares(
                &w12,
                &stock(&[("W1", 5), ("W2", 0)]),
                &draws(&[("W2", 3)]),
                2
            ),
            (pairs(&[("W1", 2), ("W2", 0)]), 0)
        );
        // min_level sends 0: every share is 0.
        assert_eq!(
            shares(&w12, &stock(&[("W1", 5), ("W2", -3)]), &[], 0),
            (pairs(&[("W1", 0), ("W2", 0)]), 0)
        );
        // The excess comes off the largest share first: W1 10, W2 4, W3 -6 -> 8.
        let w123 = listed(&["W1", "W2", "W3"]);
        assert_eq!(
            shares(&w123, &stock(&[("W1", 10), ("W2", 4), ("W3", -6)]), &[], 8),
            (pairs(&[("W1", 4), ("W2", 4), ("W3", 0)]), 0)
        );
        // Ties go in name order; a listed warehouse without stock gets 0.
        assert_eq!(
            shares(
                &w123,
                &stock(&[("W1", 3), ("W2", 3)]),
                &draws(&[("W1", 1)]),
                5
            ),
            (pairs(&[("W1", 2), ("W2", 3), ("W3", 0)]), 0)
        );
        // An unlisted warehouse gives up its share first...
        let w1 = listed(&["W1"]);
        assert_eq!(
            shares(
                &w1,
                &stock(&[("W1", 5), ("W9", 4)]),
                &draws(&[("W1", 2)]),
                5
            ),
            (pairs(&[("W1", 3)]), 2)
        );
        assert_eq!(
            shares(&w1, &stock(&[("W1", 5), ("W9", -4)]), &[], 1),
            (pairs(&[("W1", 1)]), 0)
        );
        // ... and an order on no counted stock ("") is a shortfall too.
        assert_eq!(
            shares(&w1, &stock(&[("W1", 5)]), &draws(&[("", 2)]), 3),
            (pairs(&[("W1", 3)]), 0)
        );
    }
}
